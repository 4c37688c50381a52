"""The named functions of the language, one table row each.

A row keeps everything about one function together: its shape rule, its NumPy-style
evaluation (written against an array namespace ``xp``, numerically stable where it matters),
its LaTeX form, and its derivative. Element-wise functions give their scalar derivative
``f'(x)`` as an expression; matrix functions give their vector-Jacobian product.

Adding a function is one row here plus one test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from matrixcalculus.errors import EvaluationError, ShapeError
from matrixcalculus.ir.graph import (
    Const,
    Function,
    Node,
    Shape,
    add,
    apply,
    compare,
    const,
    contract,
    dim_product,
    ones,
    power,
    reshape,
    scale,
    shape_text,
    size_of,
    transpose,
    zeros,
)


@dataclass(frozen=True)
class FunctionRule:
    name: str
    kind: str  # "elementwise" or "matrix"
    shape: Callable[..., Shape]  # one shape per argument
    evaluate: Callable[..., Any]  # (xp, *arguments)
    # LaTeX: "{}" is the argument as printed, "{p}" the argument in parentheses unless it is atomic.
    latex: str
    # Element-wise: x -> f'(x) as an expression. Matrix functions: (x, f(x), g, batch) -> x_bar,
    # the vector-Jacobian product for a cotangent g of shape batch + f(x).shape.
    derivative: Callable[..., Any] | None = None
    doc: str = ""
    argument: str = field(default="a scalar, vector or matrix")
    # A function defined as a composition of primitives (mean(x) = sum(x)/n): evaluation and
    # compiled code run the composition (transform/lowering.py expands it), so no dialect spells it.
    definition: Callable[..., Node] | None = None
    arity: int = 1


RULES: dict[str, FunctionRule] = {}
Function.rules = RULES


def _elementwise(name: str, evaluate: Callable[[Any, Any], Any], latex: str, derivative: Any) -> None:
    template = latex if ("{}" in latex or "{p}" in latex) else latex + r"\left({}\right)"
    RULES[name] = FunctionRule(name, "elementwise", lambda s: s, evaluate, template, derivative)


def _matrix(
    name: str,
    shape: Callable[[Shape], Shape],
    evaluate: Callable[[Any, Any], Any],
    latex: str,
    derivative: Any,
    argument: str,
) -> None:
    template = latex if ("{}" in latex or "{p}" in latex) else latex + r"\left({}\right)"
    RULES[name] = FunctionRule(name, "matrix", shape, evaluate, template, derivative, argument=argument)


# ---------------------------------------------------------------- expression helpers


def hadamard(a: Node, b: Node) -> Node:
    """``a .* b`` for two tensors of one shape (or a scalar times a tensor)."""
    if not a.shape or not b.shape:
        la, lb = tuple(range(a.rank)), tuple(range(b.rank))
        return contract([a, b], [la, lb], la if a.shape else lb)
    idx = tuple(range(a.rank))
    return contract([a, b], [idx, idx], idx)


def one_minus(x: Node) -> Node:
    """``1 - x`` entry-wise."""
    return add([ones(x.shape), scale(-1, x)])


def one_plus(x: Node) -> Node:
    return add([ones(x.shape), x])


def _pow(x: Node, p: int | str) -> Node:
    return power(x, const(p))


# ---------------------------------------------------------------- element-wise functions

# Each derivative is f'(x), an expression in x; the chain rule multiplies it entry-wise.
_elementwise("exp", lambda xp, x: xp.exp(x), r"\exp", lambda x: apply("exp", x))
_elementwise("log", lambda xp, x: xp.log(x), r"\log", lambda x: _pow(x, -1))
_elementwise("sin", lambda xp, x: xp.sin(x), r"\sin", lambda x: apply("cos", x))
_elementwise("cos", lambda xp, x: xp.cos(x), r"\cos", lambda x: scale(-1, apply("sin", x)))
_elementwise("tan", lambda xp, x: xp.tan(x), r"\tan", lambda x: one_plus(_pow(apply("tan", x), 2)))
_elementwise("tanh", lambda xp, x: xp.tanh(x), r"\tanh", lambda x: one_minus(_pow(apply("tanh", x), 2)))
_elementwise(
    "sqrt", lambda xp, x: xp.sqrt(x), r"\sqrt{{}}", lambda x: scale(Fraction(1, 2), _pow(apply("sqrt", x), -1))
)
# |x|' = sign(x), with abs'(0) = 0 as in the field's autodiff systems.
_elementwise("abs", lambda xp, x: xp.abs(x), r"\left|{}\right|", lambda x: apply("sign", x))
_elementwise("sign", lambda xp, x: xp.sign(x), r"\operatorname{sign}", lambda x: zeros(x.shape))
# relu'(0) = 0: the derivative is the indicator x > 0.
_elementwise("relu", lambda xp, x: xp.maximum(x, 0.0), r"\operatorname{relu}", lambda x: compare(">", x, const(0)))
# sigmoid(x) = 1/(1 + exp(-x)) = exp(-log(1 + exp(-x))): logaddexp keeps it finite for any x.
_elementwise(
    "sigmoid",
    lambda xp, x: xp.exp(-xp.logaddexp(0.0, -x)),
    r"\sigma",
    lambda x: hadamard(apply("sigmoid", x), one_minus(apply("sigmoid", x))),
)
_elementwise("softplus", lambda xp, x: xp.logaddexp(0.0, x), r"\operatorname{softplus}", lambda x: apply("sigmoid", x))
_elementwise("arcsin", lambda xp, x: xp.arcsin(x), r"\arcsin", lambda x: _pow(one_minus(_pow(x, 2)), "-1/2"))
_elementwise(
    "arccos",
    lambda xp, x: xp.arccos(x),
    r"\arccos",
    lambda x: scale(-1, _pow(one_minus(_pow(x, 2)), "-1/2")),
)
_elementwise("arctan", lambda xp, x: xp.arctan(x), r"\arctan", lambda x: _pow(one_plus(_pow(x, 2)), -1))


# ---------------------------------------------------------------- matrix functions


def _square(name: str) -> Callable[[Shape], Shape]:
    def rule(shape: Shape) -> Shape:
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ShapeError(f"{name} needs a square matrix, not {shape_text(shape)}")
        return ()

    return rule


def _square_same(shape: Shape) -> Shape:
    _square("inv")(shape)
    return shape


def _vector(name: str, result: Callable[[Shape], Shape]) -> Callable[[Shape], Shape]:
    def rule(shape: Shape) -> Shape:
        if len(shape) != 1:
            raise ShapeError(f"{name} needs a vector, not {shape_text(shape)}")
        return result(shape)

    return rule


def _any_to_scalar(shape: Shape) -> Shape:
    return ()


def _linalg(xp: Any, what: str, fn: Callable[[Any], Any], x: Any) -> Any:
    import numpy as np

    try:
        return fn(x)
    except np.linalg.LinAlgError as exc:
        # NumPy says "Singular matrix"; the message names our function (evaluate adds where).
        reason = "a singular matrix" if "singular" in str(exc).lower() else f"a matrix it cannot factor ({exc})"
        raise EvaluationError(f"{what} of {reason}") from None


def _logdet(xp: Any, x: Any) -> Any:
    # IEEE values: log of a negative determinant is nan, of a zero one -inf. evaluate turns a
    # non-finite result into an error naming logdet (docs/conventions.md, domain errors).
    sign, logabs = xp.linalg.slogdet(x)
    return xp.where(sign > 0, logabs, xp.where(sign < 0, xp.nan, -xp.inf))


def _logsumexp(xp: Any, x: Any) -> Any:
    top = xp.max(x)
    return top + xp.log(xp.sum(xp.exp(x - top)))


def _softmax(xp: Any, x: Any) -> Any:
    e = xp.exp(x - xp.max(x))
    return e / xp.sum(e)


def _ij(node: Node) -> tuple[int, ...]:
    return tuple(range(node.rank))


def _outer_with(g: Node, batch: int, m: Node) -> Node:
    """``g_b * m_ij``: a cotangent of batch shape times a matrix or vector ``m``."""
    gl = tuple(range(batch))
    ml = tuple(range(batch, batch + m.rank))
    return contract([g, m], [gl, ml], gl + ml)


# VJP rules, each from the differential d f = <G, dX> of the Matrix Cookbook:
#   d det(X) = det(X) tr(inv(X) dX)      -> det(X) inv(X)'
#   d logdet(X) = tr(inv(X) dX)          -> inv(X)'
#   d inv(X) = -inv(X) dX inv(X)         -> -inv(X)' G inv(X)'
#   d norm2(X) = <X, dX> / norm2(X)      -> X / norm2(X)
#   d norm1(X) = <sign(X), dX>
#   d logsumexp(x) = <softmax(x), dx>
#   d softmax(x) = (diag(s) - s s') dx   -> s .* (g - s'g)
def _vjp_det(x: Node, y: Node, g: Node, batch: int) -> Node:
    return _outer_with(
        contract([g, y], [tuple(range(batch)), ()], tuple(range(batch))), batch, transpose(apply("inv", x))
    )


def _vjp_logdet(x: Node, y: Node, g: Node, batch: int) -> Node:
    return _outer_with(g, batch, transpose(apply("inv", x)))


def _vjp_inv(x: Node, y: Node, g: Node, batch: int) -> Node:
    b = tuple(range(batch))
    i, j, k, l = batch, batch + 1, batch + 2, batch + 3
    # x_bar[b, k, l] = - sum_ij g[b, i, j] * y[i, k] * y[l, j]
    return contract([g, y, y], [b + (i, j), (i, k), (l, j)], b + (k, l), -1)


def _vjp_norm2(x: Node, y: Node, g: Node, batch: int) -> Node:
    return _outer_with(g, batch, contract([x, power(y, const(-1))], [_ij(x), ()], _ij(x)))


def _vjp_norm1(x: Node, y: Node, g: Node, batch: int) -> Node:
    return _outer_with(g, batch, apply("sign", x))


def _vjp_logsumexp(x: Node, y: Node, g: Node, batch: int) -> Node:
    return _outer_with(g, batch, apply("softmax", x))


def _vjp_softmax(x: Node, y: Node, g: Node, batch: int) -> Node:
    b = tuple(range(batch))
    i, j = batch, batch + 1
    # x_bar[b, i] = s_i * (g[b, i] - sum_j g[b, j] s_j)
    first = contract([g, y], [b + (i,), (i,)], b + (i,))
    second = contract([g, y, y], [b + (j,), (j,), (i,)], b + (i,), -1)
    return add([first, second])


_matrix("det", _square("det"), lambda xp, x: _linalg(xp, "det", xp.linalg.det, x), r"\det", _vjp_det, "a square matrix")
_matrix("logdet", _square("logdet"), _logdet, r"\log\det", _vjp_logdet, "a square matrix")
_matrix(
    "inv", _square_same, lambda xp, x: _linalg(xp, "inv", xp.linalg.inv, x), "{p}^{-1}", _vjp_inv, "a square matrix"
)
_matrix(
    "norm1", _any_to_scalar, lambda xp, x: xp.sum(xp.abs(x)), r"\left\| {} \right\|_1", _vjp_norm1, "a vector or matrix"
)
# norm2 is Euclidean for vectors and Frobenius for matrices: the root of the sum of squares.
_matrix(
    "norm2",
    _any_to_scalar,
    lambda xp, x: xp.sqrt(xp.sum(x * x)),
    r"\left\| {} \right\|_2",
    _vjp_norm2,
    "a vector or matrix",
)
_matrix("softmax", _vector("softmax", lambda s: s), _softmax, r"\operatorname{softmax}", _vjp_softmax, "a vector")
_matrix(
    "logsumexp", _vector("logsumexp", lambda s: ()), _logsumexp, r"\operatorname{logsumexp}", _vjp_logsumexp, "a vector"
)


# ---------------------------------------------------------------- mean and kron
# Small self-contained rows (issue 10): mean is defined as a composition, kron takes two arguments.


def _entries(x: Node) -> Node:
    """The number of entries of ``x`` as a value: ``n`` for a vector of length n, ``m*n`` for a matrix."""
    return size_of(dim_product(*x.shape))


def _reciprocal(value: Node) -> Node:
    return const(1 / value.value) if isinstance(value, Const) else power(value, const(-1))


def _mean(x: Node) -> Node:
    """``mean(x) = sum(x)/n``, with ``n`` the number of entries (a symbolic size)."""
    return contract([x, _reciprocal(_entries(x))], [_ij(x), ()], ())


def _vjp_mean(x: Node, y: Node, g: Node, batch: int) -> Node:
    # d mean(x) = sum(dx)/n -> ones(shape)/n
    b = tuple(range(batch))
    idx = tuple(range(batch, batch + x.rank))
    return contract([g, _reciprocal(_entries(x)), ones(x.shape)], [b, (), idx], b + idx)


RULES["mean"] = FunctionRule(
    "mean",
    "matrix",
    _any_to_scalar,
    lambda xp, x: xp.mean(x),
    r"\operatorname{mean}\left({}\right)",
    _vjp_mean,
    argument="a vector or matrix",
    definition=_mean,
)


def _kron_shape(a: Shape, b: Shape) -> Shape:
    if len(a) != len(b) or len(a) not in (1, 2):
        raise ShapeError(f"kron needs two matrices or two vectors, not {shape_text(a)} and {shape_text(b)}")
    return tuple(dim_product(da, db) for da, db in zip(a, b, strict=True))


def _vjp_kron(args: tuple[Node, Node], y: Node, g: Node, batch: int) -> tuple[Node, Node]:
    # y[(i,k),(j,l)] = a[i,j] b[k,l] (row-major pairs): split the cotangent's axes into
    # (m, p, n, q) and contract with the other factor:
    #   a_bar[i,j] = sum_kl G[i,k,j,l] b[k,l],   b_bar[k,l] = sum_ij G[i,k,j,l] a[i,j].
    a, b = args
    bl = tuple(range(batch))
    if a.rank == 1:
        i, k = batch, batch + 1
        split = reshape(g, g.shape[:batch] + (a.shape[0], b.shape[0]))
        return (
            contract([split, b], [bl + (i, k), (k,)], bl + (i,)),
            contract([split, a], [bl + (i, k), (i,)], bl + (k,)),
        )
    i, k, j, l = batch, batch + 1, batch + 2, batch + 3
    split = reshape(g, g.shape[:batch] + (a.shape[0], b.shape[0], a.shape[1], b.shape[1]))
    return (
        contract([split, b], [bl + (i, k, j, l), (k, l)], bl + (i, j)),
        contract([split, a], [bl + (i, k, j, l), (i, j)], bl + (k, l)),
    )


RULES["kron"] = FunctionRule(
    "kron",
    "matrix",
    _kron_shape,
    lambda xp, a, b: xp.kron(a, b),
    r"{0} \otimes {1}",
    _vjp_kron,
    argument="two matrices or two vectors",
    arity=2,
)


ELEMENTWISE = tuple(name for name, rule in RULES.items() if rule.kind == "elementwise")
MATRIX_FUNCTIONS = tuple(name for name, rule in RULES.items() if rule.kind == "matrix")
