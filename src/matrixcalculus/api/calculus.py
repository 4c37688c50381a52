"""The public derivative functions: derivative, gradient, jacobian, hessian, vjp, jvp.

>>> import matrixcalculus as mc
>>> print(mc.derivative("x'*A*x", "x"))
(A + A')*x
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
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


def _expression(f: str | Expression, types: Mapping[str, Any] | None, wrt: object = None) -> Expression:
    """``f`` as an expression; the scalars of a stacked ``wrt`` (``"[x; y]"``) are declared scalars
    by it (a stack holds scalars), so they need no declaration of their own and raise no notice."""
    types = _stack_types(types, wrt)
    if isinstance(f, Expression):
        if types:
            return parse(f._text(), types={**f._declared(), **types})
        return f
    if isinstance(f, str):
        return parse(f, types=types)
    raise DerivativeError(f"expected an expression or its text, not {type(f).__name__}")


def _stack_types(types: Mapping[str, Any] | None, wrt: object) -> Mapping[str, Any] | None:
    items = list(wrt) if isinstance(wrt, list | tuple) else [wrt]
    # Upper-case names are matrices by name: a stack does not silently make them scalars.
    stacked = [
        n for item in items if isinstance(item, str) for n in (_stacked_names(item) or []) if not n[:1].isupper()
    ]
    if not stacked:
        return types
    return {**{n: "scalar" for n in stacked}, **(types or {})}


def _names(wrt: Wrt, *, stacks: bool = False) -> tuple[list[str], bool]:
    """The variable names of ``wrt`` and whether one (not a list) was given; with ``stacks``, a
    stack of scalar variables such as ``"[x; y]"`` passes as one name (see :func:`_stacked_names`)."""
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
        elif isinstance(item, str) and _stacked_names(item) is not None:
            if not stacks:
                raise DerivativeError(
                    f"with respect to: the stack {item!r} is a variable of its own here, not an entry of a list "
                    f"or a tuple"
                )
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
    if shape is None and decl.kind == "tensor":
        shape = tuple(next(spare) for _ in range(decl.order or 3))
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
    result._notices = expr._notices  # how f's names were typed holds for its derivatives too
    result._written = expr._written_dims()  # ones(k) of f: k stays written in the result
    if row:
        # A 1 x n row (numerator layout of a scalar by a vector): prints x', builds on as a row.
        result._form = "r"
    # The function's variables stay as context: their values size the result's dimensions.
    result._context = {name: Variable(v) for name, v in variables.items()}
    return result


Blocks = Expression | tuple["Blocks", ...]


def derivative(
    f: str | Expression,
    wrt: Wrt,
    *,
    types: Mapping[str, Any] | None = None,
    order: int = 1,
    layout: str = "shape",
) -> Expression | tuple[Blocks, ...]:
    """The derivative of ``f`` with respect to ``wrt``.

    ``wrt`` is one of:

    * a name: the derivative of order ``order``, one expression;
    * a list of names: one derivative per name, a tuple (order 1); for ``order`` k >= 2 every
      block, nested k deep as ``jax.hessian`` with several ``argnums`` returns them:
      ``derivative(f, ["W", "b"], order=2)[i][j]`` is d/d(wrt[j]) of df/d(wrt[i]), of shape
      ``f.shape + wrt[i].shape + wrt[j].shape`` (so ``[0][1]`` is d²f/dW db, ``[1][0]`` its
      transpose d²f/db dW);
    * a tuple of names: one mixed derivative, by the first name, then the second, ...:
      ``derivative(f, ("W", "b"))`` is d/db (df/dW), of shape ``f.shape + W.shape + b.shape``
      (its order is the tuple's length; leave ``order`` at 1);
    * a stack of scalar variables, ``"[x1; x2]"``: the derivative by that vector, each order
      appending an axis of its length (``derivative("x1^2*x2 + x2^3", "[x1; x2]", order=2)`` is
      ``[2*x2, 2*x1; 2*x1, 6*x2]``).

    ``layout="shape"`` (the default): shape ``f.shape + wrt.shape``, each further order
    appending ``wrt.shape`` again (as matrixcalculus.org and JAX); a gradient has its
    variable's shape. ``layout="numerator"``: the tutorials' numerator layout (a scalar by a
    column vector is the 1 x n row, by an m x n matrix the n x m matrix; a vector by a vector
    the m x n Jacobian); ``layout="denominator"``: its transpose (see :func:`layout_axes`).

    >>> str(derivative("x'*A*x", "x"))
    "(A + A')*x"
    >>> str(derivative("w'*x", "w", layout="numerator"))
    "x'"
    >>> str(derivative("x'*A*y", ("x", "y")))
    'A'
    """
    # A tuple: one mixed derivative, by its variables in turn.
    sequence = list(wrt) if isinstance(wrt, tuple) else None
    if sequence is not None and order != 1:
        raise DerivativeError(
            f"a tuple of variables {wrt!r} is one mixed derivative of order {len(sequence)}; leave out order "
            f"(for every block of order {order}, give a list)"
        )
    _validate(len(sequence) if sequence is not None else order, layout)
    expr = _expression(f, types, wrt)
    stacked = _stacked_names(wrt)
    if stacked is not None:
        wrts = _stack_variables(expr, stacked, types)
        return _finished(_stack_node(expr.node, wrts, order), expr, wrts, layout)
    names, single = _names(sequence if sequence is not None else wrt)
    wrts = [_variable(expr, n, types) for n in names]
    if sequence is not None:
        node = expr.node
        for w in wrts:
            (node,) = jacobian_nodes(node, [w])
            check_nodes([node], "the derivative", DerivativeError)
        return _finished(node, expr, wrts, layout)
    if single or order == 1:
        results = tuple(_finished(node, expr, wrts, layout) for node in _pure(expr.node, wrts, order))
        return results[0] if single else results
    return _blocks(expr.node, wrts, order, lambda node: _finished(node, expr, wrts, layout))


def _validate(order: Any, layout: str) -> None:
    if layout not in LAYOUTS:
        raise DerivativeError(f"layout is 'shape', 'numerator' or 'denominator', not {layout!r}")
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise DerivativeError(f"order is a whole number of at least 1, not {order!r}")
    if order > current_limits().max_order:
        # Each order multiplies the work; a huge order would run for ever instead of failing.
        raise limit_error(DerivativeError, "max_order", f"a derivative of order {order:,} was asked for")


def _finished(node: g.Node, expr: Expression, wrts: Sequence[g.Var], layout: str) -> Expression:
    """A shape-layout derivative of ``expr`` as the result in ``layout``."""
    f_rank = expr.node.rank
    node = _arrange(node, f_rank, layout)
    result = _result(node, expr, wrts, row=is_row(f_rank, node.rank, layout))
    source = expr._source if expr._source is not None else str(expr)
    result._jacobian = (f_rank, layout, " ".join(source.split()), tuple(w.name for w in wrts))
    return result


def _pure(node: g.Node, wrts: Sequence[g.Var], order: int) -> list[g.Node]:
    """d^order f / d w^order for each variable w of ``wrts`` (the shape layout)."""
    nodes = jacobian_nodes(node, list(wrts))
    check_nodes(nodes, "the derivative", DerivativeError)
    for _ in range(order - 1):
        nodes = [jacobian_nodes(n, [w])[0] for n, w in zip(nodes, wrts, strict=True)]
        check_nodes(nodes, "the derivative", DerivativeError)
    return nodes


def _blocks(
    node: g.Node, wrts: Sequence[g.Var], order: int, finished: Callable[[g.Node], Expression]
) -> tuple[Blocks, ...]:
    """Every block of the derivative of ``order``, nested ``order`` deep: ``[i][j]`` is
    d/d(wrts[j]) of d``node``/d(wrts[i]). Each level differentiates by all variables at once
    (one reverse sweep shares the work)."""
    nodes = jacobian_nodes(node, list(wrts))
    check_nodes(nodes, "the derivative", DerivativeError)
    if order == 1:
        return tuple(finished(n) for n in nodes)
    return tuple(_blocks(n, wrts, order - 1, finished) for n in nodes)


def pure_derivatives(
    f: str | Expression,
    wrt: Sequence[str | Expression | Variable],
    *,
    types: Mapping[str, Any] | None = None,
    order: int = 1,
    layout: str = "shape",
) -> tuple[Expression, ...]:
    """d^order f / d w^order for each name w of ``wrt``: the diagonal blocks only, one per name
    (what ``--order 2`` prints and ``compile(..., derivatives=("hessian",))`` computes).

    >>> [str(d) for d in pure_derivatives("x'*A*x + a^3", ["x", "a"], types={"a": "scalar"}, order=2)]
    ["A + A'", '6*a']
    """
    _validate(order, layout)
    expr = _expression(f, types, wrt)
    names, _ = _names(list(wrt), stacks=True)
    if all(_stacked_names(n) is None for n in names):
        wrts = [_variable(expr, n, types) for n in names]
        return tuple(_finished(node, expr, wrts, layout) for node in _pure(expr.node, wrts, order))
    # A stack "[x; y]" among the names: its own derivative, by all its scalars at once.
    results = []
    for name in names:
        stacked = _stacked_names(name)
        wrts = _stack_variables(expr, stacked, types) if stacked is not None else [_variable(expr, name, types)]
        node = _stack_node(expr.node, wrts, order) if stacked is not None else _pure(expr.node, wrts, order)[0]
        results.append(_finished(node, expr, wrts, layout))
    return tuple(results)


def gradient(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None
) -> Expression | tuple[Expression, ...]:
    """The gradient of a scalar function: the shape of each variable.

    >>> str(gradient("0.5*norm2(W*x - t)^2", "W"))
    "(W*x - t)*x'"
    """
    expr = _expression(f, types, wrt)
    if expr.shape:
        raise DerivativeError(
            f"a gradient is of a scalar function, but {expr} has shape {g.shape_text(expr.shape)}; "
            f"use jacobian() or vjp()"
        )
    return _first_order(expr, wrt, types, "shape")


def jacobian(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None, layout: str = "shape"
) -> Expression | tuple[Expression, ...]:
    """The Jacobian: shape ``f.shape + wrt.shape``; ``jacobian("A*x", "x")`` is ``A``
    (``layout`` as in :func:`derivative`); several variables (a list or a tuple): one each."""
    return _first_order(f, wrt, types, layout)


def _first_order(
    f: str | Expression, wrt: Wrt, types: Mapping[str, Any] | None, layout: str
) -> Expression | tuple[Expression, ...]:
    """The first derivative by each variable of ``wrt`` (a tuple is a list here, never mixed)."""
    stacked = _stacked_names(wrt)
    if stacked is not None:
        return _by_stack(f, stacked, types, layout)
    names, single = _names(list(wrt) if isinstance(wrt, tuple) else wrt)
    found = pure_derivatives(f, names, types=types, layout=layout)
    return found[0] if single else found


def _stacked_names(wrt: Wrt) -> list[str] | None:
    """The names of a stacked ``wrt`` such as ``"[x; y]"`` (or ``"[x, y]"``), else None."""
    if not isinstance(wrt, str) or not wrt.strip().startswith("["):
        return None
    inner = wrt.strip()
    if not inner.endswith("]"):
        raise DerivativeError(f"with respect to: {wrt!r} opens a stack '[' that it does not close")
    parts = [part.strip() for part in inner[1:-1].replace(",", ";").split(";")]
    for part in parts:
        if not part.isidentifier():
            raise DerivativeError(f"with respect to: {wrt!r} stacks variable names, and {part!r} is none")
    if len(set(parts)) != len(parts):
        raise DerivativeError(f"with respect to: {wrt!r} names a variable twice")
    return parts


def _by_stack(f: str | Expression, names: list[str], types: Mapping[str, Any] | None, layout: str) -> Expression:
    """The derivative by the vector ``[w1; w2; ...]`` of scalar variables: the derivatives by each
    stacked along a last axis, so ``jacobian("[x^2*y; x + y]", "[x; y]")`` is
    ``[2*x*y, x^2; 1, 1]``."""
    expr = _expression(f, types, [f"[{'; '.join(names)}]"])
    wrts = _stack_variables(expr, names, types)
    return _finished(_stack_node(expr.node, wrts, 1), expr, wrts, layout)


def _stack_variables(expr: Expression, names: list[str], types: Mapping[str, Any] | None) -> list[g.Var]:
    """The scalar variables of a stacked ``wrt`` (an undeclared one absent from ``expr`` is a scalar)."""
    wrts = [_variable(expr, name, {**(types or {}), name: (types or {}).get(name, "scalar")}) for name in names]
    for w in wrts:
        if w.shape:
            raise DerivativeError(
                f"with respect to a stack of variables: each is a scalar, but {w.name} is {g.shape_text(w.shape)}"
            )
    return wrts


def _stack_node(node: g.Node, wrts: Sequence[g.Var], order: int) -> g.Node:
    """The derivative of ``order`` of ``node`` by the vector of the scalars ``wrts`` (the shape
    layout: each order appends an axis of length ``len(wrts)``); the derivatives by each scalar
    are stacked with unit vectors, so the Hessian of ``x1^2*x2`` by ``[x1; x2]`` is
    ``[2*x2, 2*x1; 2*x1, 0]``."""
    n = len(wrts)
    for _ in range(order):
        parts = jacobian_nodes(node, list(wrts))
        check_nodes(parts, "the derivative", DerivativeError)
        axes = tuple(range(node.rank))
        terms = [
            g.contract([part, g.embed(n, k)], [axes, (len(axes),)], (*axes, len(axes))) for k, part in enumerate(parts)
        ]
        node = simplify(g.add(terms))
    return node


def _entry(node: g.Node, n: int, k: int) -> g.Node:
    """Entry ``k`` of ``node`` along its last axis (of length ``n``): a contraction with ``e_k``."""
    axes = tuple(range(node.rank - 1))
    return simplify(g.contract([node, g.embed(n, k)], [(*axes, node.rank - 1), (node.rank - 1,)], axes))


def hessian(
    f: str | Expression, wrt: Wrt, *, types: Mapping[str, Any] | None = None
) -> Expression | tuple[Blocks, ...]:
    """The Hessian of a scalar function: ``hessian("x'*A*x", "x")`` is ``A + A'``; of several
    variables (a list or a tuple), every block, ``[i][j]`` = d/d(wrt[j]) of df/d(wrt[i]), as
    :func:`derivative` with ``order=2``."""
    expr = _expression(f, types, wrt)
    if expr.shape:
        raise DerivativeError(
            f"a Hessian is of a scalar function, but {expr} has shape {g.shape_text(expr.shape)}; "
            f"use derivative(..., order=2)"
        )
    return derivative(expr, list(wrt) if isinstance(wrt, tuple) else wrt, types=types, order=2)


def _named_like(name: str | Expression, shape: g.Shape, expr: Expression, role: str) -> g.Node:
    if isinstance(name, Expression):
        if name.shape != shape:
            raise DerivativeError(f"the {role} has shape {g.shape_text(name.shape)}, not {g.shape_text(shape)}")
        return name.node
    if not isinstance(name, str) or not name.isidentifier():
        raise DerivativeError(f"the {role} is a variable name, not {name!r}")
    if name in expr.variables:
        raise DerivativeError(f"the {role} {name!r} is already a variable of the expression; choose another name")
    kind = ("scalar", "vector", "matrix")[len(shape)] if len(shape) <= 2 else "tensor"
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

    A tuple ``wrt`` checks the one mixed derivative (``derivative(f, ("W", "b"))``): the
    differences of d/dW f along b.

    >>> check("sum(log(x))", "x").ok
    True
    >>> check("x'*A*y", ("x", "y")).ok
    True
    """
    if layout not in LAYOUTS:
        raise DerivativeError(f"layout is 'shape', 'numerator' or 'denominator', not {layout!r}")
    expr = _expression(f, types, wrt)
    if isinstance(wrt, tuple) and len(wrt) >= 2:
        return _check_mixed(expr, wrt, derivative_, types, layout, values, size, seed)
    names, single = _names(wrt, stacks=True)
    if derivative_ is None:
        results: tuple[Expression, ...] = pure_derivatives(expr, names, types=types, order=order, layout=layout)
    else:
        results = (derivative_,) if isinstance(derivative_, Expression) else tuple(derivative_)
        if len(results) != len(names):
            raise DerivativeError(f"{len(results)} derivatives given for {len(names)} variables")
    variables = expr.node_variables()
    point = dict(values) if values is not None else random_values(variables, size, seed, within=expr.node)
    reports = []
    for name, result in zip(names, results, strict=True):
        stacked = _stacked_names(name)
        if stacked is not None:
            reports.append(_check_stack(expr, name, stacked, result, types, order, layout, point, size, seed))
            continue
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


def _check_stack(
    expr: Expression,
    text: str,
    names: list[str],
    result: Expression,
    types: Mapping[str, Any] | None,
    order: int,
    layout: str,
    point: dict[str, Any],
    size: int,
    seed: int,
) -> CheckResult:
    """:func:`check` of a derivative by a stack ``[x; y]`` of scalars: each entry along the last
    axis against central differences, by that scalar, of the derivative of one order less."""
    wrts = _stack_variables(expr, names, types)
    for w in wrts:
        if w.name not in point:
            # Absent from f (the derivative is zero): it still needs a value.
            point.update(random_values({w.name: w}, size, seed + 1))
    node = to_shape_layout(result.node, expr.node.rank, layout)
    lower = _stack_node(expr.node, wrts, order - 1) if order >= 2 else None
    reports = [
        check_derivative(expr.node, _entry(node, len(wrts), k), w, point, order, lower) for k, w in enumerate(wrts)
    ]
    max_abs = max(r.max_abs_error for r in reports)
    scale = max(r.scale for r in reports)
    return CheckResult(text, order, max_abs, max_abs / max(scale, 1e-300), scale)


def _check_mixed(
    expr: Expression,
    wrt: tuple[str | Expression | Variable, ...],
    derivative_: Expression | Sequence[Expression] | None,
    types: Mapping[str, Any] | None,
    layout: str,
    values: Mapping[str, Any] | None,
    size: int,
    seed: int,
) -> CheckResult:
    """:func:`check` of one mixed derivative: central differences, along the last variable, of
    the derivative by all the others (computed and itself checkable in the same way)."""
    names, _ = _names(list(wrt))
    if derivative_ is None:
        found = derivative(expr, tuple(names), types=types, layout=layout)
    elif isinstance(derivative_, Expression):
        found = derivative_
    else:
        raise DerivativeError("a mixed derivative (a tuple of variables) is one expression, not a list")
    assert isinstance(found, Expression)
    lower = derivative(expr, tuple(names[:-1]) if len(names) > 2 else names[0], types=types)
    assert isinstance(lower, Expression)
    variables = expr.node_variables()
    point = dict(values) if values is not None else random_values(variables, size, seed, within=expr.node)
    last = _variable(expr, names[-1], types)
    for name in names:
        if name not in point:
            # Absent from f (the derivative is zero): it still needs a value.
            point.update(random_values({name: _variable(expr, name, types)}, size, seed + 1))
    node = to_shape_layout(found.node, expr.node.rank, layout)
    report = check_derivative(expr.node, node, last, point, len(names), lower.node)
    return dataclasses.replace(report, variables=tuple(names))
