"""Compilation: graphs -> standalone array code for NumPy, PyTorch, JAX, CuPy and Dask."""
