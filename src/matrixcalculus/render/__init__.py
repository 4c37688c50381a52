"""Rendering the graph for people: matrix notation, LaTeX, index notation, where-bindings."""
