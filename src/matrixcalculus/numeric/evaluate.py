"""Numeric evaluation: graph + arrays -> array, checking the arrays against the types.

Scalars are 0-d, vectors 1-d (whatever their orientation in the text), matrices 2-d. Every
symbolic dimension must take one size across all the arrays given; a symmetric matrix must
be symmetric. The graph is walked once, children first, so shared subexpressions are
computed once and deep expressions need no recursion.

Domain errors (docs/conventions.md, "Domain errors and non-finite values"): a non-finite
result is an error. The inputs must be finite; if the result is not, the walk goes back down
from the result to the first operation whose value became non-finite from finite arguments,
and the error names it and the entry (``log of a non-positive entry: x[2] = -1 in log(x)``).
``check_finite=False`` returns IEEE values instead. The graph is first lowered to the stable
forms the compiler uses (``log(1 + exp(u))`` is ``softplus(u)``), so both paths give one value.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_array, current_limits
from matrixcalculus.render.printing import to_text
from matrixcalculus.transform.lowering import lower


def bind(
    variables: Mapping[str, g.Var],
    values: Mapping[str, Any],
    dims: Mapping[str, int] | None = None,
    xp: Any = np,
    *,
    check_finite: bool = True,
) -> tuple[dict[str, Any], dict[g.Dim, int]]:
    """Check ``values`` against the variables' types; return the arrays and the size of each dimension.

    ``check_finite``: an array with a nan or infinite entry is an error naming the entry.
    """
    if not isinstance(values, Mapping):
        raise EvaluationError(f"values are a mapping from variable names to arrays, not {type(values).__name__}")
    if dims is not None and not isinstance(dims, Mapping):
        raise EvaluationError(f"dims is a mapping from dimension names to sizes, not {type(dims).__name__}")
    for dim_name, size in (dims or {}).items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise EvaluationError(f"dims: the size of {dim_name} must be a positive whole number, not {size!r}")
    sizes: dict[g.Dim, int] = {d: int(s) for d, s in (dims or {}).items()}
    source: dict[g.Dim, str] = {d: "dims=" for d in sizes}
    arrays: dict[str, Any] = {}
    # An axis whose dimension is a product (kron's m*p) is checked once its factors are sized.
    products: list[tuple[g.DimProduct | g.DimSum, int, str]] = []
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
                f"{tuple(array.shape)}" + (" (vectors are 1-d arrays, also row vectors)" if var.rank == 1 else "")
            )
        for axis, (dim, size) in enumerate(zip(var.shape, array.shape, strict=True)):
            what = _axis_text(name, var, axis)
            if isinstance(dim, int):
                if size != dim:
                    raise EvaluationError(f"{what} must be {dim}, but the value given has {size}")
                continue
            if isinstance(dim, g.DimProduct | g.DimSum):
                products.append((dim, size, what))
                continue
            if dim in sizes and sizes[dim] != size:
                raise EvaluationError(
                    f"dimension {dim} is {sizes[dim]} from {source[dim]} but {size} from {what}; "
                    f"the sizes of one dimension must agree"
                )
            sizes.setdefault(dim, size)
            source.setdefault(dim, what)
        if check_finite and xp is np and not np.all(np.isfinite(array)):
            index = _first_bad(array)
            raise EvaluationError(
                f"the value of {name} has a non-finite entry: {_entry_name(name, index)} = {array[index]}; "
                f"the inputs must be finite (check_finite=False returns IEEE values instead)"
            )
        if var.kind == "symmetric" and xp is np:
            if not np.allclose(array, array.T, rtol=1e-10, atol=1e-12):
                raise EvaluationError(f"{name} is declared symmetric but its value is not symmetric")
        arrays[name] = array
    for product, given, what in products:
        if isinstance(product, g.DimSum):
            # A length n + m (a stack's): the one term no other value sizes is what is left.
            names = g.dim_names(product)
            unknown = sorted(set(names) - set(sizes))
            if len(unknown) == 1 and names.count(unknown[0]) == 1 and unknown[0] in product.terms:
                missing = unknown[0]
                known = g.dim_size(product, {**sizes, missing: 0}.__getitem__)
                if given > known:
                    sizes[missing] = given - known
                    source[missing] = what
            if any(d not in sizes for d in names):
                continue
            if g.dim_size(product, sizes.__getitem__) != given:
                expected = g.dim_size(product, sizes.__getitem__)
                raise EvaluationError(f"{what} must be {product} = {expected}, but the value given has {given}")
            continue
        unknown = sorted(set(product.factors) - set(sizes))
        if len(unknown) == 1 and product.factors.count(unknown[0]) == 1:
            # The one factor no other value sizes is what the product leaves (6 rows of m*p, p = 3: m = 2).
            missing = unknown[0]
            others = {**{f: sizes[f] for f in product.factors if f != missing}, missing: 1}
            known = g.dim_size(product, others.__getitem__)
            if given % known == 0:
                sizes[missing] = given // known
                source[missing] = what
        if unknown and unknown[0] not in sizes:
            continue  # an evaluation that needs the size says so, naming the dimension
        expected = g.dim_size(product, sizes.__getitem__)
        if expected != given:
            raise EvaluationError(f"{what} must be {product} = {expected}, but the value given has {given}")
    return arrays, sizes


def _kind_text(var: g.Var) -> str:
    if var.kind == "scalar":
        return "a scalar"
    if var.kind == "vector":
        return f"a vector (length {var.shape[0]})"
    if var.kind == "tensor":
        return f"a {var.rank}-tensor ({g.shape_text(var.shape)})"
    word = "symmetric matrix" if var.kind == "symmetric" else "matrix"
    return f"a {word} ({var.shape[0]} x {var.shape[1]})"


def _axis_text(name: str, var: g.Var, axis: int) -> str:
    if var.rank == 1:
        return f"the length of {name}"
    return f"the number of {'rows' if axis == 0 else 'columns'} of {name}"


def evaluate(
    root: g.Node,
    values: Mapping[str, Any],
    dims: Mapping[str, int] | None = None,
    xp: Any = np,
    *,
    check_finite: bool = True,
) -> Any:
    """The value of ``root`` for the given variable values (``dims`` sizes dimensions no value fixes).

    With ``check_finite`` (the default) non-finite inputs and a non-finite result raise
    :class:`EvaluationError` naming the variable, or the operation and entry where the value
    first became non-finite; ``check_finite=False`` returns IEEE values (nan, inf) instead.
    """
    variables = {n.name: n for n in g.postorder(root) if isinstance(n, g.Var)}
    arrays, sizes = bind(variables, values, dims, xp, check_finite=check_finite)

    def size(dim: g.Dim) -> int:
        if isinstance(dim, int):
            return dim
        if isinstance(dim, g.DimProduct | g.DimSum):
            return g.dim_size(dim, size)
        if dim not in sizes:
            raise EvaluationError(
                f"the size of dimension {dim} is unknown: no value fixes it; pass dims={{{dim!r}: ...}}"
            )
        return sizes[dim]

    (lowered,) = _lowered(root)
    nodes = g.postorder(lowered)
    # Refuse before computing anything: ones(1e6, 1e6) would be 8 TB.
    budget = current_limits().max_array_bytes
    for node in nodes:
        shape = tuple(size(d) for d in node.shape)
        if 8 * _product(shape) > budget:
            check_array(shape, _text(node))
    cache: dict[g.Node, Any] = {}
    with np.errstate(all="ignore"):
        for node in nodes:
            if isinstance(node, g.Var):
                cache[node] = arrays[node.name]
                continue
            try:
                cache[node] = node.evaluate(xp, [cache[c] for c in node.args], size)
            except MatrixCalculusError as exc:
                if isinstance(node, g.Function):
                    raise EvaluationError(f"{exc.message} in {_text(node)}") from None
                raise
            except np.linalg.LinAlgError as exc:
                raise EvaluationError(f"{_operation(node)}: {exc} in {_text(node)}") from None
            except (ValueError, ArithmeticError) as exc:
                raise EvaluationError(f"evaluating {_text(node)}: {exc}") from None
    result = cache[lowered]
    if xp is np:
        result = np.asarray(result, dtype=np.float64)
        if check_finite and not np.all(np.isfinite(result)):
            raise EvaluationError(_diagnose(lowered, cache))
        return result[()] if result.ndim == 0 else result
    return result


# Lowering is linear in the graph but evaluate is called in loops (finite differences): keep
# the lowered form per root while the root lives (nodes are interned and weakly referenceable).
# A root that lowers to itself is stored as None: a value that held its key would keep it alive.
_LOWERED: weakref.WeakKeyDictionary[g.Node, g.Node | None] = weakref.WeakKeyDictionary()


def _lowered(root: g.Node) -> tuple[g.Node]:
    if root not in _LOWERED:
        new = lower([root])[0]
        _LOWERED[root] = None if new is root else new
    cached = _LOWERED[root]
    return (root if cached is None else cached,)


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for s in shape:
        total *= s
    return total


# ------------------------------------------------------------------ non-finite diagnosis


def _finite(value: Any) -> bool:
    return bool(np.all(np.isfinite(value)))


def _first_bad(value: Any) -> tuple[int, ...]:
    array = np.asarray(value)
    return tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0]) if array.ndim else ()


def _entry_name(name: str, index: tuple[int, ...]) -> str:
    return f"{name}[{','.join(str(i) for i in index)}]" if index else name


def _number(value: Any) -> str:
    return f"{float(value):.6g}"


def _text(node: g.Node, width: int = 60) -> str:
    """The node in the input syntax, shortened: it names where in the expression something happened."""
    try:
        text = to_text(node)
    except Exception:
        text = type(node).__name__.lower()
    return text if len(text) <= width else text[: width - 3] + "..."


def _operation(node: g.Node) -> str:
    if isinstance(node, g.Function):
        return node.name
    return {g.Add: "sum", g.Power: "power", g.Contract: "product"}.get(type(node), type(node).__name__.lower())


def _entry(arg: g.Node, value: Any, index: tuple[int, ...]) -> str:
    """``x[2] = -1`` for a variable argument; ``entry [2] of the argument is -1`` otherwise.

    ``value`` is the argument's whole value; a scalar argument (broadcast) ignores ``index``.
    """
    array = np.asarray(value)
    index = index if array.ndim else ()
    entry = _number(array[index])
    if isinstance(arg, g.Var):
        return f"{_entry_name(arg.name, index)} = {entry}"
    if not index:
        return f"the argument is {entry}"
    return f"entry [{','.join(str(i) for i in index)}] of the argument is {entry}"


def _diagnose(root: g.Node, cache: Mapping[g.Node, Any]) -> str:
    """The message for a non-finite result: the operation that first made a non-finite value.

    Walks down from the result through non-finite arguments to a node whose arguments are all
    finite (inputs are checked finite, so one exists): that operation is where it happened.
    """
    node = root
    while True:
        bad = [a for a in node.args if not _finite(cache[a])]
        if not bad:
            break
        node = bad[0]
    value = cache[node]
    index = _first_bad(value)
    where = _text(node)
    args = [cache[a] for a in node.args]
    if isinstance(node, g.Function):
        # The record says what a non-finite value of its function means (log of a non-positive entry).
        record = node.record
        what = record.nonfinite(args) if callable(record.nonfinite) else record.nonfinite
        if record.elementwise:
            what = what or f"{node.name} is not finite"
            return f"{what}: {_entry(node.args[0], args[0], index)} in {where}"
        return f"{what or f'{node.name} overflows'} in {where}"
    if isinstance(node, g.Power):
        base, exponent = (np.asarray(a) for a in args)
        b = base[index] if base.ndim else base
        e = exponent[index] if exponent.ndim else exponent
        detail = "" if isinstance(node.args[0], g.Const) else f": {_entry(node.args[0], base, index)}"
        if b == 0 and e < 0:
            return f"division by zero{detail} in {where}"
        if b < 0 and e != np.round(e):
            return f"power of a negative entry to the non-integer exponent {_number(e)}{detail} in {where}"
        return f"power overflows{detail} in {where}"
    if isinstance(node, g.Const):
        return f"the number {where} is too large for a float"
    return f"overflow in {where}"
