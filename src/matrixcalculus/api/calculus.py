"""The public derivative functions: derivative, gradient, jacobian, hessian, vjp, jvp.

>>> import matrixcalculus as mc
>>> print(mc.derivative("x'*A*x", "x"))
(A + A')*x
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matrixcalculus.api.expression import Expression, Variable, parse
from matrixcalculus.errors import DerivativeError
from matrixcalculus.frontend.infer import declare, fresh_dimension_names
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_nodes, current_limits, limit_error
from matrixcalculus.numeric.check import CheckResult, check_derivative, random_values
from matrixcalculus.transform.differentiation import jacobian_nodes, jvp_node, vjp_nodes
from matrixcalculus.transform.simplify import simplify

Wrt = str | Expression | Variable | Sequence[str | Expression | Variable]

LAYOUTS = ("shape", "numerator", "denominator")


def layout_axes(f_rank: int, rank: int, layout: str) -> tuple[int, ...]:
    """Where each axis of a derivative in ``layout`` comes from in the shape layout.

    The shape layout is ``f.shape + wrt.shape`` (each further order appends ``wrt.shape``).
    The numerator layout keeps ``f``'s axes first and reverses the variable's: a scalar by an
    m x n matrix is n x m, a vector by a vector the m x n Jacobian. The denominator layout is
    the numerator layout with every axis reversed (for a result of order two, its transpose).

    >>> layout_axes(0, 2, "numerator"), layout_axes(1, 2, "denominator")
    ((1, 0), (1, 0))
    """
    f_axes, wrt_axes = tuple(range(f_rank)), tuple(range(f_rank, rank))
    if layout == "shape":
        return f_axes + wrt_axes
    numerator = f_axes + wrt_axes[::-1]
    return numerator if layout == "numerator" else numerator[::-1]


def is_row(f_rank: int, rank: int, layout: str) -> bool:
    """Is a derivative of order one in ``layout`` a row (a 1 x n matrix, printed ``x'``)?

    Numerator layout: a scalar by a vector is the row of partial derivatives; denominator
    layout, its transpose: a vector by a scalar is a row. The shape layout has no rows.
    """
    if rank != 1 or layout == "shape":
        return False
    return f_rank == 0 if layout == "numerator" else f_rank == 1


def _arrange(node: g.Node, f_rank: int, layout: str) -> g.Node:
    """The shape-layout derivative ``node`` in ``layout`` (a permutation of its axes)."""
    axes = layout_axes(f_rank, node.rank, layout)
    if axes == tuple(range(node.rank)):
        return node
    labels = tuple(range(node.rank))
    return simplify(g.contract([node], [labels], axes))


def to_shape_layout(node: g.Node, f_rank: int, layout: str) -> g.Node:
    """The inverse of the layout: a derivative in ``layout`` back in the shape layout."""
    axes = layout_axes(f_rank, node.rank, layout)
    if axes == tuple(range(node.rank)):
        return node
    inverse = tuple(sorted(range(node.rank), key=lambda k: axes[k]))
    labels = tuple(range(node.rank))
    return simplify(g.contract([node], [labels], inverse))


def _expression(f: str | Expression, types: Mapping[str, Any] | None) -> Expression:
    if isinstance(f, Expression):
        if types:
            return parse(f._text(), types={**f._declared(), **types})
        return f
    if isinstance(f, str):
        return parse(f, types=types)
    raise DerivativeError(f"expected an expression or its text, not {type(f).__name__}")


def _names(wrt: Wrt) -> tuple[list[str], bool]:
    """The variable names of ``wrt`` and whether one (not a list) was given."""
    items: list[str | Expression | Variable]
    if isinstance(wrt, str | Expression | Variable):
        single, items = True, [wrt]
    else:
        single, items = False, list(wrt)
    names = []
    for item in items:
        if isinstance(item, Variable):
            names.append(item.name)
        elif isinstance(item, Expression):
            if not isinstance(item.node, g.Var):
                raise DerivativeError(f"can only differentiate with respect to a variable, not {item}")
            names.append(item.node.name)
        elif isinstance(item, str) and item.isidentifier():
            names.append(item)
        else:
            raise DerivativeError(f"with respect to: expected a variable name, not {item!r}")
    if not names:
        raise DerivativeError("with respect to: no variable given")
    return names, single


def _variable(expr: Expression, name: str, types: Mapping[str, Any] | None) -> g.Var:
    """The variable ``name`` of ``expr``, or a fresh one (declared type, else convention) if absent."""
    if name in expr.variables:
        return expr.variables[name].node
    if name in expr._context:
        # A variable of the function a derivative came from (d/dB of d/dA f): its own shape.
        return expr._context[name].node
    used = {d for v in expr.variables.values() for d in v.shape if isinstance(d, str)}
    spare = fresh_dimension_names(used)
    spec = (types or {}).get(name)
    if spec is None:
        kind = "matrix" if name[:1].isupper() else "vector"
        decl = declare(name, kind)
    else:
        decl = declare(name, spec)
    shape = decl.shape
    if shape is None:
        rank = {"scalar": 0, "vector": 1}.get(decl.kind, 2)
        first = next(spare) if rank else None
        shape = (
            ()
            if rank == 0
            else (first,)
            if rank == 1
            else ((first, first) if decl.kind == "symmetric" else (first, next(spare)))
        )
    return g.var(name, decl.kind, tuple(shape))


def _result(node: g.Node, expr: Expression, extra: Sequence[g.Var] = (), *, row: bool = False) -> Expression:
    variables = {name: v.node for name, v in {**expr._context, **expr.variables}.items()}
    for var in extra:
        variables[var.name] = var
    # Keep only the variables the result still mentions, in the original order.
    present = {n for n in g.postorder(node) if isinstance(n, g.Var)}
    kept = {name: v for name, v in variables.items() if v in present}
    # The dimension names the user gave stay fixed when the result is built on.
    result = Expression(node, kept, result=True, fixed=expr._fixed)
    if row:
        # A 1 x n row (numerator layout of a scalar by a vector): prints x', builds on as a row.
        result._form = "r"
    # The function's variables stay as context: their values size the result's dimensions.
    result._context = {name: Variable(v) for name, v in variables.items()}
    return result


def derivative(
    f: str | Expression,
    wrt: Wrt,
    *,
    types: Mapping[str, Any] | None = None,
    order: int = 1,
    layout: str = "shape",
) -> Expression | tuple[Expression, ...]:
    """The derivative of ``f`` with respect to ``wrt`` (a name, or a list of names for a tuple).

    ``layout="shape"`` (the default): shape ``f.shape + wrt.shape``, each further order
    appending ``wrt.shape`` again (as matrixcalculus.org and JAX); a gradient has its
    variable's shape. ``layout="numerator"``: the tutorials' numerator layout (a scalar by a
    column vector is the 1 x n row, by an m x n matrix the n x m matrix; a vector by a vector
    the m x n Jacobian); ``layout="denominator"``: its transpose (see :func:`layout_axes`).

    >>> str(derivative("x'*A*x", "x"))
    "(A + A')*x"
    >>> str(derivative("w'*x", "w", layout="numerator"))
    "x'"
    """
    if layout not in LAYOUTS:
        raise DerivativeError(f"layout is 'shape', 'numerator' or 'denominator', not {layout!r}")
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise DerivativeError(f"order is a whole number of at least 1, not {order!r}")
    if order > current_limits().max_order:
        # Each order multiplies the work; a huge order would run for ever instead of failing.
        raise limit_error(DerivativeError, "max_order", f"a derivative of order {order:,} was asked for")
    expr = _expression(f, types)
    names, single = _names(wrt)
    wrts = [_variable(expr, n, types) for n in names]
    nodes = jacobian_nodes(expr.node, wrts)
    check_nodes(nodes, "the derivative", DerivativeError)
    for _ in range(order - 1):
        nodes = [jacobian_nodes(node, [w])[0] for node, w in zip(nodes, wrts, strict=True)]
        check_nodes(nodes, "the derivative", DerivativeError)
    f_rank = expr.node.rank
    nodes = [_arrange(node, f_rank, layout) for node in nodes]
    results = tuple(_result(node, expr, wrts, row=is_row(f_rank, node.rank, layout)) for node in nodes)
    return results[0] if single else results


def gradient(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None
) -> Expression | tuple[Expression, ...]:
    """The gradient of a scalar function: the shape of each variable.

    >>> str(gradient("0.5*norm2(W*x - t)^2", "W"))
    "(W*x - t)*x'"
    """
    expr = _expression(f, types)
    if expr.shape:
        raise DerivativeError(
            f"a gradient is of a scalar function, but {expr} has shape {g.shape_text(expr.shape)}; "
            f"use jacobian() or vjp()"
        )
    return derivative(expr, wrt, types=types)


def jacobian(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None, layout: str = "shape"
) -> Expression | tuple[Expression, ...]:
    """The Jacobian: shape ``f.shape + wrt.shape``; ``jacobian("A*x", "x")`` is ``A``
    (``layout`` as in :func:`derivative`)."""
    return derivative(f, wrt, types=types, layout=layout)


def hessian(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None
) -> Expression | tuple[Expression, ...]:
    """The Hessian of a scalar function: ``hessian("x'*A*x", "x")`` is ``A + A'``."""
    expr = _expression(f, types)
    if expr.shape:
        raise DerivativeError(
            f"a Hessian is of a scalar function, but {expr} has shape {g.shape_text(expr.shape)}; "
            f"use derivative(..., order=2)"
        )
    return derivative(expr, wrt, types=types, order=2)


def _named_like(name: str | Expression, shape: g.Shape, expr: Expression, role: str) -> g.Node:
    if isinstance(name, Expression):
        if name.shape != shape:
            raise DerivativeError(f"the {role} has shape {g.shape_text(name.shape)}, not {g.shape_text(shape)}")
        return name.node
    if not isinstance(name, str) or not name.isidentifier():
        raise DerivativeError(f"the {role} is a variable name, not {name!r}")
    if name in expr.variables:
        raise DerivativeError(f"the {role} {name!r} is already a variable of the expression; choose another name")
    kind = ("scalar", "vector", "matrix")[len(shape)] if len(shape) <= 2 else None
    if kind is None:
        raise DerivativeError(f"a {role} of order {len(shape)} has no variable kind")
    return g.var(name, kind, shape)


def vjp(
    f: str | Expression, wrt: Wrt, cotangent: str | Expression = "g", *, types: Mapping[str, Any] | None = None
) -> Expression | tuple[Expression, ...]:
    """The vector-Jacobian product ``sum_o g[o] df[o]/dwrt``, without forming the Jacobian.

    >>> str(vjp("A*x", "A", cotangent="g"))
    "g*x'"
    """
    expr = _expression(f, types)
    names, single = _names(wrt)
    wrts = [_variable(expr, n, types) for n in names]
    seed = _named_like(cotangent, expr.shape, expr, "cotangent")
    nodes = vjp_nodes(expr.node, wrts, seed)
    check_nodes(nodes, "the vector-Jacobian product", DerivativeError)
    extra = [seed] if isinstance(seed, g.Var) else []
    results = tuple(_result(node, expr, [*wrts, *extra]) for node in nodes)
    return results[0] if single else results


def jvp(
    f: str | Expression,
    wrt: str | Expression | Variable,
    tangent: str | Expression = "V",
    *,
    types: Mapping[str, Any] | None = None,
) -> Expression:
    """The Jacobian-vector product (directional derivative) along ``tangent``.

    >>> str(jvp("A*x", "A", tangent="V"))
    'V*x'
    """
    expr = _expression(f, types)
    names, single = _names(wrt)
    if not single:
        raise DerivativeError("jvp takes one variable")
    w = _variable(expr, names[0], types)
    seed = _named_like(tangent, w.shape, expr, "tangent")
    node = jvp_node(expr.node, w, seed)
    check_nodes([node], "the Jacobian-vector product", DerivativeError)
    return _result(node, expr, [w] + ([seed] if isinstance(seed, g.Var) else []))


def check(
    f: str | Expression,
    wrt: Wrt,
    derivative_: Expression | Sequence[Expression] | None = None,
    *,
    types: Mapping[str, Any] | None = None,
    order: int = 1,
    layout: str = "shape",
    values: Mapping[str, Any] | None = None,
    size: int = 3,
    seed: int = 0,
) -> CheckResult | tuple[CheckResult, ...]:
    """Compare a derivative with central finite differences in float64 (a list ``wrt``: a tuple).

    ``derivative_``: the derivative to check, in ``layout`` (by default :func:`derivative`'s).
    ``values``: the point (by default random, of ``size`` and ``seed``, drawn inside each
    function's domain: positive under ``log`` and roots, symmetric positive definite under
    ``logdet``, ``inv``, ``det``; see ``docs/conventions.md``, "Checks").

    >>> check("sum(log(x))", "x").ok
    True
    """
    if layout not in LAYOUTS:
        raise DerivativeError(f"layout is 'shape', 'numerator' or 'denominator', not {layout!r}")
    expr = _expression(f, types)
    names, single = _names(wrt)
    if derivative_ is None:
        found = derivative(expr, names, types=types, order=order, layout=layout)
        assert isinstance(found, tuple)
        results: tuple[Expression, ...] = found
    else:
        results = (derivative_,) if isinstance(derivative_, Expression) else tuple(derivative_)
        if len(results) != len(names):
            raise DerivativeError(f"{len(results)} derivatives given for {len(names)} variables")
    variables = expr.node_variables()
    point = dict(values) if values is not None else random_values(variables, size, seed, within=expr.node)
    reports = []
    for name, result in zip(names, results, strict=True):
        if name in variables:
            wrt_var = variables[name]
        elif name in result.variables or name in expr._context:
            # Absent from f (its derivative is zero) or a variable of an outer function: give it a value too.
            wrt_var = (result.variables.get(name) or expr._context[name]).node
            if name not in point:
                point.update(random_values({name: wrt_var}, size, seed + 1))
        else:
            raise DerivativeError(f"{name} does not occur in {expr}; nothing to check")
        node = to_shape_layout(result.node, expr.node.rank, layout)
        lower = None
        if order >= 2:
            first = derivative(expr, name, types=types, order=order - 1)
            assert isinstance(first, Expression)
            lower = first.node
        reports.append(check_derivative(expr.node, node, wrt_var, point, order, lower))
    return reports[0] if single else tuple(reports)
