"""The named functions of the language: one registry record each (see :mod:`matrixcalculus.ir.registry`).

A record keeps everything about one function together: what its arguments must be, its evaluation
against an array namespace ``xp`` (numerically stable where it matters), its derivative, its LaTeX
form and its spelling in compiled code. Element-wise functions give their scalar derivative
``f'(x)`` as an expression; the others give their vector-Jacobian product.

Adding a function is one record here plus its tests (``tests/test_registry.py`` checks every
record on every backend). For example::

    >>> FUNCTIONS["exp"].spelling("numpy")
    'xp.exp({0})'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from matrixcalculus.errors import EvaluationError
from matrixcalculus.ir.graph import (
    Const,
    Contract,
    Node,
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
    size_of,
    transpose,
    zeros,
)
from matrixcalculus.ir.registry import FUNCTIONS, FunctionRecord, register

__all__ = ["FUNCTIONS", "hadamard", "one_minus", "one_plus"]

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


def _elementwise(
    name: str,
    evaluate: Callable[[Any, Any], Any] | None,
    latex: str,
    derivative: Callable[[Node], Node],
    spellings: dict[str, str] | None = None,
    **more: Any,
) -> None:
    """Register an element-wise function; ``latex`` without ``{0}``/``{p0}`` is an operator name
    applied to the argument in parentheses. Its spelling is ``xp.name`` unless given."""
    template = latex if ("{0}" in latex or "{p0}" in latex) else latex + r"\left({0}\right)"
    register(
        FunctionRecord(
            name,
            ("any",),
            "same",
            elementwise=True,
            evaluate=evaluate,
            latex=template,
            derivative=derivative,
            spellings={"default": f"xp.{name}({{0}})"} if spellings is None else spellings,
            **more,
        )
    )


# ---------------------------------------------------------------- element-wise functions

_REAL = (-math.inf, math.inf)
_POSITIVE = (0.0, math.inf)
_UNIT = (-1.0, 1.0)

# Each derivative is f'(x), an expression in x; the chain rule multiplies it entry-wise.
_elementwise("exp", lambda xp, x: xp.exp(x), r"\exp", lambda x: apply("exp", x), nonfinite="exp overflows")
_elementwise(
    "log",
    lambda xp, x: xp.log(x),
    r"\log",
    lambda x: _pow(x, -1),
    aliases=("ln",),
    domain=_POSITIVE,
    undoes="exp",
    nonfinite="log of a non-positive entry",
)
_elementwise("sin", lambda xp, x: xp.sin(x), r"\sin", lambda x: apply("cos", x))
_elementwise("cos", lambda xp, x: xp.cos(x), r"\cos", lambda x: scale(-1, apply("sin", x)))
_elementwise(
    "tan",
    lambda xp, x: xp.tan(x),
    r"\tan",
    lambda x: one_plus(_pow(apply("tan", x), 2)),
    domain=(-math.pi / 2, math.pi / 2),
)
_elementwise("tanh", lambda xp, x: xp.tanh(x), r"\tanh", lambda x: one_minus(_pow(apply("tanh", x), 2)))
_elementwise(
    "sqrt",
    lambda xp, x: xp.sqrt(x),
    r"\sqrt{{0}}",
    lambda x: scale(Fraction(1, 2), _pow(apply("sqrt", x), -1)),
    domain=_POSITIVE,
    nonfinite="sqrt of a negative entry",
)
# |x|' = sign(x), with abs'(0) = 0 as in the field's autodiff systems.
_elementwise("abs", lambda xp, x: xp.abs(x), r"\left|{0}\right|", lambda x: apply("sign", x), kinks=(0.0,))
_elementwise("sign", lambda xp, x: xp.sign(x), r"\operatorname{sign}", lambda x: zeros(x.shape), kinks=(0.0,))
# relu'(0) = 0: the derivative is the indicator x > 0.
_elementwise(
    "relu",
    lambda xp, x: xp.maximum(x, 0.0),
    r"\operatorname{relu}",
    lambda x: compare(">", x, const(0)),
    {"default": "xp.maximum({0}, 0.0)", "torch": "torch.relu({0})"},
    kinks=(0.0,),
)
# sigmoid(x) = 1/(1 + exp(-x)) = exp(-log(1 + exp(-x))): logaddexp keeps it finite for any x.
# Compiled: (1 + tanh(x/2))/2, one transcendental, no overflow.
_elementwise(
    "sigmoid",
    lambda xp, x: xp.exp(-xp.logaddexp(0.0, -x)),
    r"\sigma",
    lambda x: hadamard(apply("sigmoid", x), one_minus(apply("sigmoid", x))),
    {
        "default": "0.5 * (1.0 + xp.tanh(0.5 * {0}))",
        "jax": "jax.nn.sigmoid({0})",
        "torch": "torch.sigmoid({0})",
    },
    aliases=("sigm", "logistic"),
)
_elementwise(
    "softplus",
    lambda xp, x: xp.logaddexp(0.0, x),
    r"\operatorname{softplus}",
    lambda x: apply("sigmoid", x),
    {"default": "xp.logaddexp(0.0, {0})", "torch": "torch.nn.functional.softplus({0})"},
)
_elementwise(
    "arcsin",
    lambda xp, x: xp.arcsin(x),
    r"\arcsin",
    lambda x: _pow(one_minus(_pow(x, 2)), "-1/2"),
    aliases=("asin",),
    domain=_UNIT,
    nonfinite="arcsin of an entry outside [-1, 1]",
)
_elementwise(
    "arccos",
    lambda xp, x: xp.arccos(x),
    r"\arccos",
    lambda x: scale(-1, _pow(one_minus(_pow(x, 2)), "-1/2")),
    aliases=("acos",),
    domain=_UNIT,
    nonfinite="arccos of an entry outside [-1, 1]",
)
_elementwise(
    "arctan", lambda xp, x: xp.arctan(x), r"\arctan", lambda x: _pow(one_plus(_pow(x, 2)), -1), aliases=("atan",)
)

# log1p(x) = log(1 + x) and expm1(x) = exp(x) - 1, exact where x is tiny (1 + 1e-17 is 1).
_elementwise(
    "log1p",
    lambda xp, x: xp.log1p(x),
    r"\log\left(1 + {0}\right)",
    lambda x: _pow(one_plus(x), -1),
    domain=(-1.0, math.inf),
    nonfinite="log1p of an entry at most -1",
)
_elementwise(
    "expm1",
    lambda xp, x: xp.expm1(x),
    r"\left(\exp\left({0}\right) - 1\right)",
    lambda x: apply("exp", x),
    nonfinite="expm1 overflows",
)


def _erf(xp: Any, x: Any) -> Any:
    # NumPy has no erf; math.erf per entry is correctly rounded C code and needs no SciPy.
    return xp.vectorize(math.erf, otypes=[xp.float64])(x)


# erf'(x) = 2/sqrt(pi) exp(-x^2); the constant to the 17 digits that fix a double.
_elementwise(
    "erf",
    _erf,
    r"\operatorname{erf}",
    lambda x: scale(Fraction("1.1283791670955126"), apply("exp", scale(-1, _pow(x, 2)))),
    {
        "default": "_erf({0})",
        "torch": "torch.special.erf({0})",
        "jax": "jax.scipy.special.erf({0})",
    },
    helpers={
        "default": {
            "_erf": "def _erf(x):\n    import math\n\n    return xp.vectorize(math.erf, otypes=[xp.float64])(x)"
        },
        "dask": {
            "_erf": (
                "def _erf(x):\n    import math\n\n"
                "    return xp.asarray(x).map_blocks(np.vectorize(math.erf, otypes=[np.float64]), dtype=np.float64)"
            )
        },
        "cupy": {"_erf": "def _erf(x):\n    import cupyx.scipy.special\n\n    return cupyx.scipy.special.erf(x)"},
    },
)


def _over_sqrt2(x: Node) -> Node:
    """``x/sqrt(2)``, exact in the graph (it prints so)."""
    return hadamard(x, _pow(apply("sqrt", const(2)), -1))


def _gelu(x: Node) -> Node:
    """gelu(x) = x .* (1 + erf(x/sqrt(2)))/2 = x .* Phi(x), Phi the standard normal distribution."""
    return scale(Fraction(1, 2), hadamard(x, one_plus(apply("erf", _over_sqrt2(x)))))


# gelu'(x) = Phi(x) + x .* phi(x) = (1 + erf(x/sqrt(2)))/2 + x .* exp(-x^2/2)/sqrt(2 pi).
_elementwise(
    "gelu",
    None,
    r"\operatorname{GELU}",
    lambda x: add(
        [
            scale(Fraction(1, 2), one_plus(apply("erf", _over_sqrt2(x)))),
            scale(
                Fraction("0.3989422804014327"),
                hadamard(x, apply("exp", scale(Fraction(-1, 2), _pow(x, 2)))),
            ),
        ]
    ),
    {},
    definition=_gelu,
)


# ---------------------------------------------------------------- matrix functions


def _linalg(what: str, fn: Callable[[Any], Any], x: Any) -> Any:
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


def _logdet_nonfinite(values: Sequence[Any]) -> str:
    import numpy as np

    sign, _ = np.linalg.slogdet(values[0])
    why = "the matrix is singular" if sign == 0 else "its determinant is negative"
    return f"logdet of a matrix with non-positive determinant ({why})"


def _logsumexp(xp: Any, x: Any, dim: int | None = None) -> Any:
    # Shifted by the largest entry (of each column or row along an axis): no overflow.
    if dim is None:
        top = xp.max(x)
        return top + xp.log(xp.sum(xp.exp(x - top)))
    top = xp.max(x, axis=dim - 1, keepdims=True)
    return xp.squeeze(top, axis=dim - 1) + xp.log(xp.sum(xp.exp(x - top), axis=dim - 1))


def _softmax(xp: Any, x: Any, dim: int | None = None) -> Any:
    axis = None if dim is None else dim - 1
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _norm2(xp: Any, x: Any, dim: int | None = None) -> Any:
    return xp.sqrt(xp.sum(x * x, axis=None if dim is None else dim - 1))


# Compiled code, with or without an axis ({axis} counts from 0): the same max-shift as the evaluation.
_SHIFTED_HELPERS = {
    "_softmax": (
        "def _softmax(x, axis=None):\n"
        "    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))\n"
        "    return e / xp.sum(e, axis=axis, keepdims=True)"
    ),
    "_logsumexp": (
        "def _logsumexp(x, axis=None):\n"
        "    top = xp.max(x, axis=axis, keepdims=True)\n"
        "    return xp.squeeze(top, axis=axis) + xp.log(xp.sum(xp.exp(x - top), axis=axis))"
    ),
}


def _kept(dim: int, i: int, j: int) -> tuple[int, ...]:
    """The label of the axis a reduction along ``dim`` keeps, of a matrix labelled ``(i, j)``."""
    return (j,) if dim == 1 else (i,)


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
# Each takes the arguments, the value y, the cotangent g and the number of batch axes, and gives
# one cotangent per argument.
def _vjp_det(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    (x,) = args
    b = tuple(range(batch))
    return (_outer_with(contract([g, y], [b, ()], b), batch, transpose(apply("inv", x))),)


def _vjp_logdet(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    (x,) = args
    return (_outer_with(g, batch, transpose(apply("inv", x))),)


def _vjp_inv(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    b = tuple(range(batch))
    i, j, k, l = batch, batch + 1, batch + 2, batch + 3
    # x_bar[b, k, l] = - sum_ij g[b, i, j] * y[i, k] * y[l, j]
    return (contract([g, y, y], [b + (i, j), (i, k), (l, j)], b + (k, l), -1),)


def _vjp_norm2(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    (x,) = args
    dim = y.dim  # type: ignore[attr-defined]
    if dim is not None:
        # Along an axis: x_bar[b, i, j] = g[b, j] x[i, j] / y[j] (axis 1; axis 2 keeps i).
        b, i, j = tuple(range(batch)), batch, batch + 1
        kept = _kept(dim, i, j)
        return (contract([g, x, power(y, const(-1))], [b + kept, (i, j), kept], b + (i, j)),)
    return (_outer_with(g, batch, contract([x, power(y, const(-1))], [_ij(x), ()], _ij(x))),)


def _vjp_norm1(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    (x,) = args
    return (_outer_with(g, batch, apply("sign", x)),)


def _vjp_logsumexp(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    (x,) = args
    dim = y.dim  # type: ignore[attr-defined]
    if dim is not None:
        # x_bar[b, i, j] = g[b, j] softmax(x, 1)[i, j] (axis 1; axis 2 keeps i).
        b, i, j = tuple(range(batch)), batch, batch + 1
        kept = _kept(dim, i, j)
        return (contract([g, apply("softmax", x, dim=dim)], [b + kept, (i, j)], b + (i, j)),)
    return (_outer_with(g, batch, apply("softmax", x)),)


def _vjp_softmax(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    b = tuple(range(batch))
    i, j = batch, batch + 1
    dim = y.dim  # type: ignore[attr-defined]
    if dim is not None:
        # Each column (axis 1) or row (axis 2) is a softmax of its own:
        # x_bar[b, i, j] = s[i, j] (g[b, i, j] - sum_k g[b, k, j] s[k, j])   (axis 1).
        k = batch + 2
        ij = (i, j)
        summed = (k, j) if dim == 1 else (i, k)
        first = contract([g, y], [b + ij, ij], b + ij)
        second = contract([g, y, y], [b + summed, summed, ij], b + ij, -1)
        return (add([first, second]),)
    # x_bar[b, i] = s_i * (g[b, i] - sum_j g[b, j] s_j)
    first = contract([g, y], [b + (i,), (i,)], b + (i,))
    second = contract([g, y, y], [b + (j,), (j,), (i,)], b + (i,), -1)
    return (add([first, second]),)


# log|det| alone would be a wrong number for a negative determinant: + log(sign) makes it nan
# (and -inf for a singular matrix), which the finite check of compiled code then reports.
_LOGDET_HELPERS = {
    "default": {
        "_logdet": "def _logdet(x):\n    sign, logabs = xp.linalg.slogdet(x)\n    return logabs + xp.log(sign)",
    },
    # dask has no determinant: the factorisation runs in NumPy, in memory (a small square matrix).
    "dask": {
        "_logdet": "def _logdet(x):\n    sign, logabs = np.linalg.slogdet(x)\n    return logabs + np.log(sign)",
    },
    "torch": {
        "_logdet": "def _logdet(x):\n    sign, logabs = torch.linalg.slogdet(x)\n    return logabs + torch.log(sign)",
    },
}

register(
    FunctionRecord(
        "det",
        ("square",),
        "scalar",
        evaluate=lambda xp, x: _linalg("det", xp.linalg.det, x),
        derivative=_vjp_det,
        latex=r"\det\left({0}\right)",
        spellings={"default": "xp.linalg.det({0})", "dask": "np.linalg.det(np.asarray({0}))"},
        domain="square",
    )
)
register(
    FunctionRecord(
        "logdet",
        ("square",),
        "scalar",
        evaluate=_logdet,
        derivative=_vjp_logdet,
        latex=r"\log\det\left({0}\right)",
        spellings={"default": "_logdet({0})", "dask": "_logdet(np.asarray({0}))"},
        helpers=_LOGDET_HELPERS,
        aliases=("log_det",),
        domain="positive definite",
        nonfinite=_logdet_nonfinite,
    )
)
register(
    FunctionRecord(
        "inv",
        ("square",),
        "same",
        evaluate=lambda xp, x: _linalg("inv", xp.linalg.inv, x),
        derivative=_vjp_inv,
        latex="{p0}^{-1}",
        spellings={"default": "xp.linalg.inv({0})"},
        aliases=("inverse",),
        domain="invertible",
        undoes="inv",
        keeps_symmetry=True,
        nonfinite="inv of a singular matrix",
    )
)
register(
    FunctionRecord(
        "norm1",
        ("any",),
        "scalar",
        evaluate=lambda xp, x: xp.sum(xp.abs(x)),
        derivative=_vjp_norm1,
        latex=r"\left\| {0} \right\|_1",
        spellings={"default": "xp.sum(xp.abs({0}))", "torch": "torch.sum(torch.abs({0}))"},
        domain="any",
    )
)
# norm2 is Euclidean for vectors and Frobenius for matrices: the root of the sum of squares.
register(
    FunctionRecord(
        "norm2",
        ("any",),
        "scalar",
        evaluate=_norm2,
        derivative=_vjp_norm2,
        latex=r"\left\| {0} \right\|_2",
        spellings={"default": "xp.sqrt(xp.sum({0} * {0}))"},
        axis_spellings={
            "default": "xp.sqrt(xp.sum({0} * {0}, axis={axis}))",
            "torch": "torch.sqrt(torch.sum({0} * {0}, dim={axis}))",
        },
        dim=True,
        aliases=("fro", "frobenius"),
        domain="any",
    )
)
register(
    FunctionRecord(
        "softmax",
        ("vector",),
        "same",
        evaluate=_softmax,
        derivative=_vjp_softmax,
        latex=r"\operatorname{softmax}\left({0}\right)",
        spellings={"default": "_softmax({0})", "jax": "jax.nn.softmax({0})", "torch": "torch.softmax({0}, dim=0)"},
        axis_spellings={
            "default": "_softmax({0}, {axis})",
            "jax": "jax.nn.softmax({0}, axis={axis})",
            "torch": "torch.softmax({0}, dim={axis})",
        },
        dim=True,
        helpers={"default": {"_softmax": _SHIFTED_HELPERS["_softmax"]}},
        aliases=("soft_max",),
        domain="any",
    )
)
register(
    FunctionRecord(
        "logsumexp",
        ("vector",),
        "scalar",
        evaluate=_logsumexp,
        derivative=_vjp_logsumexp,
        latex=r"\operatorname{logsumexp}\left({0}\right)",
        spellings={
            "default": "_logsumexp({0})",
            "jax": "jax.nn.logsumexp({0})",
            "torch": "torch.logsumexp({0}, dim=0)",
        },
        axis_spellings={
            "default": "_logsumexp({0}, {axis})",
            "jax": "jax.nn.logsumexp({0}, axis={axis})",
            "torch": "torch.logsumexp({0}, dim={axis})",
        },
        dim=True,
        helpers={"default": {"_logsumexp": _SHIFTED_HELPERS["_logsumexp"]}},
        aliases=("logsum",),
        domain="any",
    )
)


# ---------------------------------------------------------------- mean and kron


def _entries(x: Node) -> Node:
    """The number of entries of ``x`` as a value: ``n`` for a vector of length n, ``m*n`` for a matrix."""
    return size_of(dim_product(*x.shape))


def _reciprocal(value: Node) -> Node:
    """``1/value``; of a product of scalars (a size m*n) the product of the reciprocals, so that
    it cancels against the sizes a derivative counts (``m*n/(m*n)`` is 1)."""
    if isinstance(value, Const):
        return const(1 / value.value)
    if isinstance(value, Contract) and not value.out and all(not op.rank for op in value.args):
        parts = [_reciprocal(op) for op in value.args]
        return contract(parts, [()] * len(parts), (), 1 / value.coeff)
    return power(value, const(-1))


def _mean(x: Node, dim: int | None = None) -> Node:
    """``mean(x) = sum(x)/n``, with ``n`` the number of entries (a symbolic size); along an axis
    of an m x n matrix, ``mean(X, 1) = sum(X, 1)/m`` (each column's mean)."""
    if dim is not None:
        kept = _kept(dim, 0, 1)
        return contract([x, _reciprocal(size_of(x.shape[dim - 1]))], [(0, 1), ()], kept)
    return contract([x, _reciprocal(_entries(x))], [_ij(x), ()], ())


def _vjp_mean(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node]:
    # d mean(x) = sum(dx)/n -> ones(shape)/n; along axis 1: g[b, j]/m at every (i, j).
    (x,) = args
    b = tuple(range(batch))
    dim = y.dim  # type: ignore[attr-defined]
    if dim is not None:
        i, j = batch, batch + 1
        size = _reciprocal(size_of(x.shape[dim - 1]))
        return (contract([g, size, ones(x.shape)], [b + _kept(dim, i, j), (), (i, j)], b + (i, j)),)
    idx = tuple(range(batch, batch + x.rank))
    return (contract([g, _reciprocal(_entries(x)), ones(x.shape)], [b, (), idx], b + idx),)


# mean is its definition: evaluation and every dialect compute sum(x)/n, n read off x's shape.
register(
    FunctionRecord(
        "mean",
        ("any",),
        "scalar",
        derivative=_vjp_mean,
        latex=r"\operatorname{mean}\left({0}\right)",
        definition=_mean,
        dim=True,
        domain="any",
    )
)


def _vjp_kron(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node, Node]:
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


# kron(A, B) of m x n and p x q is (m*p) x (n*q): the "product" result (see the registry).
# dask has no kron: the outer product with the factors' axes interleaved, then reshaped.
_KRON_DASK = """def _kron(a, b):
    if a.ndim == 1:
        return xp.reshape(xp.einsum("i,k->ik", a, b), (a.shape[0] * b.shape[0],))
    rows, cols = a.shape[0] * b.shape[0], a.shape[1] * b.shape[1]
    return xp.reshape(xp.einsum("ij,kl->ikjl", a, b), (rows, cols))"""

register(
    FunctionRecord(
        "kron",
        ("any", "any"),
        "product",
        evaluate=lambda xp, a, b: xp.kron(a, b),
        derivative=_vjp_kron,
        latex=r"{p0} \otimes {p1}",
        spellings={"default": "xp.kron({0}, {1})", "dask": "_kron({0}, {1})"},
        helpers={"dask": {"_kron": _KRON_DASK}},
        domain="any",
    )
)


# ---------------------------------------------------------------- max and min


def _larger_or_smaller(a: Node, b: Node, bigger: bool) -> tuple[Node, Node]:
    """The indicators (0/1, of the result's shape) of where ``max(a, b)`` (``bigger``) or
    ``min(a, b)`` takes ``a`` and where it takes ``b``. At a tie the value is the first argument's,
    unless only the second is a constant: a constant takes the tie (docs/conventions.md, "Kinks"),
    so ``max(z, 0)`` and ``max(0, z)`` both have relu's derivative 0 at ``z = 0``."""
    op, strict = ("<", ">") if bigger else (">", "<")
    if isinstance(b, Const) and not isinstance(a, Const):
        takes_a = compare(strict, a, b)  # a strictly beyond b: a tie goes to the constant b
        return takes_a, one_minus(takes_a)
    takes_b = compare(op, a, b)  # b strictly beyond a: a tie goes to a
    return one_minus(takes_b), takes_b


def _select(a: Node, b: Node, bigger: bool) -> Node:
    # a .* [takes a] + b .* [takes b]: exact (a 0/1 weight), and a composition every dialect has.
    takes_a, takes_b = _larger_or_smaller(a, b, bigger)
    return add([hadamard(a, takes_a), hadamard(b, takes_b)])


def _vjp_select(bigger: bool) -> Callable[..., tuple[Node, Node]]:
    def vjp(args: tuple[Node, ...], y: Node, g: Node, batch: int) -> tuple[Node, Node]:
        # d max(a, b) = [takes a] .* da + [takes b] .* db; a scalar argument that was repeated
        # over the result collects the sum over its entries.
        a, b = args
        bl = tuple(range(batch))
        idx = tuple(range(batch, batch + y.rank))
        indicators = _larger_or_smaller(a, b, bigger)
        return tuple(  # type: ignore[return-value]
            contract([g, ind], [bl + idx, idx], bl + (idx if arg.rank else ()))
            for arg, ind in zip(args, indicators, strict=True)
        )

    return vjp


def _max_rewrite(a: Node, b: Node) -> Node | None:
    """``max(0, z) = max(z, 0) = relu(z)``: one node for the neuron however it is written."""
    for zero, z in ((a, b), (b, a)):
        if isinstance(zero, Const) and zero.value == 0 and not isinstance(z, Const):
            return apply("relu", z)
    return None


# Element-wise, a scalar argument repeated over the other (max(0, A*x)); given by a definition,
# so evaluation and every dialect compute a .* [a wins] + b .* [b wins].
for _name, _bigger in (("max", True), ("min", False)):
    register(
        FunctionRecord(
            _name,
            ("any", "any"),
            "broadcast",
            derivative=_vjp_select(_bigger),
            latex=rf"\{_name}\left({{0}}, {{1}}\right)",
            definition=lambda a, b, bigger=_bigger: _select(a, b, bigger),
            rewrite=_max_rewrite if _bigger else None,
            aliases=("maximum",) if _bigger else ("minimum",),
            domain="any",
        )
    )
