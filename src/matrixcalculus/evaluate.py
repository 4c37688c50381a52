"""Numeric evaluation: graph + arrays -> array, checking the arrays against the types.

Scalars are 0-d, vectors 1-d (whatever their orientation in the text), matrices 2-d. Every
symbolic dimension must take one size across all the arrays given; a symmetric matrix must
be symmetric. The graph is walked once, children first, so shared subexpressions are
computed once and deep expressions need no recursion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import graph as g
from .errors import EvaluationError, MatrixCalculusError


def bind(variables: Mapping[str, g.Var], values: Mapping[str, Any], dims: Mapping[str, int] | None = None,
         xp: Any = np) -> tuple[dict[str, Any], dict[g.Dim, int]]:
    """Check ``values`` against the variables' types; return the arrays and the size of each dimension."""
    if not isinstance(values, Mapping):
        raise EvaluationError(f"values are a mapping from variable names to arrays, not {type(values).__name__}")
    if dims is not None and not isinstance(dims, Mapping):
        raise EvaluationError(f"dims is a mapping from dimension names to sizes, not {type(dims).__name__}")
    for dim, size in (dims or {}).items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise EvaluationError(f"dims: the size of {dim} must be a positive whole number, not {size!r}")
    sizes: dict[g.Dim, int] = {d: int(s) for d, s in (dims or {}).items()}
    source: dict[g.Dim, str] = {d: "dims=" for d in sizes}
    arrays: dict[str, Any] = {}
    for name, var in variables.items():
        if name not in values:
            raise EvaluationError(f"no value given for {name} ({_kind_text(var)})")
        raw = values[name]
        if raw is None or isinstance(raw, str | bytes | Mapping):
            raise EvaluationError(f"the value of {name} is not a real numeric array: {type(raw).__name__}")
        try:
            array = xp.asarray(raw)
            if xp is np:
                if array.dtype.kind not in "biuf":
                    raise TypeError(f"its entries are of type {array.dtype}")
                array = array.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise EvaluationError(f"the value of {name} is not a real numeric array: {exc}") from None
        if array.ndim != var.rank:
            raise EvaluationError(
                f"{name} is {_kind_text(var)} and needs a {var.rank}-d array, but the value given has shape "
                f"{tuple(array.shape)}" + (" (vectors are 1-d arrays, also row vectors)" if var.rank == 1 else ""))
        for axis, (dim, size) in enumerate(zip(var.shape, array.shape, strict=True)):
            what = _axis_text(name, var, axis)
            if isinstance(dim, int):
                if size != dim:
                    raise EvaluationError(f"{what} must be {dim}, but the value given has {size}")
                continue
            if dim in sizes and sizes[dim] != size:
                raise EvaluationError(
                    f"dimension {dim} is {sizes[dim]} from {source[dim]} but {size} from {what}; "
                    f"the sizes of one dimension must agree")
            sizes.setdefault(dim, size)
            source.setdefault(dim, what)
        if var.kind == "symmetric" and xp is np:
            if not np.allclose(array, array.T, rtol=1e-10, atol=1e-12):
                raise EvaluationError(f"{name} is declared symmetric but its value is not symmetric")
        arrays[name] = array
    return arrays, sizes


def _kind_text(var: g.Var) -> str:
    if var.kind == "scalar":
        return "a scalar"
    if var.kind == "vector":
        return f"a vector (length {var.shape[0]})"
    word = "symmetric matrix" if var.kind == "symmetric" else "matrix"
    return f"a {word} ({var.shape[0]} x {var.shape[1]})"


def _axis_text(name: str, var: g.Var, axis: int) -> str:
    if var.rank == 1:
        return f"the length of {name}"
    return f"the number of {'rows' if axis == 0 else 'columns'} of {name}"


def evaluate(root: g.Node, values: Mapping[str, Any], dims: Mapping[str, int] | None = None,
             xp: Any = np) -> Any:
    """The value of ``root`` for the given variable values (``dims`` sizes dimensions no value fixes)."""
    variables = {n.name: n for n in g.postorder(root) if isinstance(n, g.Var)}
    arrays, sizes = bind(variables, values, dims, xp)

    def size(dim: g.Dim) -> int:
        if isinstance(dim, int):
            return dim
        if dim not in sizes:
            raise EvaluationError(
                f"the size of dimension {dim} is unknown: no value fixes it; pass dims={{{dim!r}: ...}}")
        return sizes[dim]

    cache: dict[g.Node, Any] = {}
    with np.errstate(all="ignore"):
        for node in g.postorder(root):
            if isinstance(node, g.Var):
                cache[node] = arrays[node.name]
                continue
            try:
                cache[node] = node.evaluate(xp, [cache[c] for c in node.args], size)
            except MatrixCalculusError:
                raise
            except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:  # pragma: no cover - defensive
                raise EvaluationError(f"evaluating {type(node).__name__}: {exc}") from None
    result = cache[root]
    if xp is np:
        result = np.asarray(result, dtype=np.float64)
        return result[()] if result.ndim == 0 else result
    return result
