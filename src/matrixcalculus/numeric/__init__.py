"""Numbers: evaluation of a graph with NumPy-like arrays and finite-difference checks."""
