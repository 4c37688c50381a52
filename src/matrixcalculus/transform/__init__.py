"""Transformations of the graph: differentiation, simplification, lowering to stable forms."""
