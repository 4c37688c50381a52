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
from matrixcalculus.frontend.infer import declare
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_nodes, current_limits, limit_error
from matrixcalculus.transform.differentiation import jacobian_nodes, jvp_node, to_denominator, vjp_nodes

Wrt = str | Expression | Variable | Sequence[str | Expression | Variable]


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
    single = isinstance(wrt, str | Expression | Variable)
    items = [wrt] if single else list(wrt)  # type: ignore[list-item]
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
    spare = (d for d in ("n", "m", "p", "q", "k", "l", "r", "s") if d not in used)
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


def _result(node: g.Node, expr: Expression, extra: Sequence[g.Var] = ()) -> Expression:
    variables = {name: v.node for name, v in {**expr._context, **expr.variables}.items()}
    for var in extra:
        variables[var.name] = var
    # Keep only the variables the result still mentions, in the original order.
    present = {n for n in g.postorder(node) if isinstance(n, g.Var)}
    kept = {name: v for name, v in variables.items() if v in present}
    result = Expression(node, kept, result=True)
    # The function's variables stay as context: their values size the result's dimensions.
    result._context = {name: Variable(v) for name, v in variables.items()}
    return result


def derivative(
    f: str | Expression,
    wrt: Wrt,
    *,
    types: Mapping[str, Any] | None = None,
    order: int = 1,
    layout: str = "numerator",
) -> Expression | tuple[Expression, ...]:
    """The derivative of ``f`` with respect to ``wrt`` (a name, or a list of names for a tuple).

    The result has shape ``f.shape + wrt.shape`` (``layout="numerator"``, each further order
    appends ``wrt.shape`` again) or ``wrt.shape + f.shape`` (``layout="denominator"``).

    >>> str(derivative("x'*A*x", "x"))
    "(A + A')*x"
    """
    if layout not in ("numerator", "denominator"):
        raise DerivativeError(f"layout is 'numerator' or 'denominator', not {layout!r}")
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
    if layout == "denominator":
        nodes = [to_denominator(node, expr.node.rank) for node in nodes]
    results = tuple(_result(node, expr, wrts) for node in nodes)
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
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None, layout: str = "numerator"
) -> Expression | tuple[Expression, ...]:
    """The Jacobian: shape ``f.shape + wrt.shape``; ``jacobian("A*x", "x")`` is ``A``."""
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
