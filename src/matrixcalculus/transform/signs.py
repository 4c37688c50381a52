"""Sign analysis: what can be proved about the entries of a node whatever its variables' values.

Compiled code asks whether a Hessian's diagonal is non-negative (``nonnegative``: then
``X'*diag(d)*X`` is computed as ``B'*B``); simplification asks whether a base is positive
(``positive``: then ``(u.^p).^q`` is ``u.^(p*q)`` for any real ``p``, ``q``).

>>> x = g.var("x", "vector", ("n",))
>>> positive(g.power(g.apply("sigmoid", x), g.const("1/2"))), positive(x)
(True, False)
"""

from __future__ import annotations

import math
import weakref
from collections.abc import MutableMapping
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS

Interval = tuple[float, float]
_EVERYTHING: Interval = (-math.inf, math.inf)

# The range of every entry of a function's value (a fact about each function, named once at import, as lowering
# names the functions of its stable forms): what the sign analysis knows.
_IMAGES: dict[str, Interval] = {
    FUNCTIONS[name].name: image
    for name, image in (
        ("sigmoid", (0.0, 1.0)),
        ("exp", (0.0, math.inf)),
        ("softplus", (0.0, math.inf)),
        ("tanh", (-1.0, 1.0)),
        ("sqrt", (0.0, math.inf)),
        ("abs", (0.0, math.inf)),
        ("relu", (0.0, math.inf)),
        ("softmax", (0.0, 1.0)),
    )
    if name in FUNCTIONS
}


def _times(a: Interval, b: Interval) -> Interval:
    products = [x * y for x in a for y in b if not (x == 0 and math.isinf(y)) and not (y == 0 and math.isinf(x))]
    products += [0.0] if len(products) < 4 else []  # 0 * inf: the entry is 0 there
    return min(products), max(products)


def _power(a: Interval, k: int) -> Interval:
    """The entries of ``u .^ k`` (``u`` in ``a``): an even power is non-negative."""
    lo, hi = a
    if k % 2:
        return lo**k, hi**k
    low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi)) ** k
    return low, max(abs(lo), abs(hi)) ** k


def _scaled(c: Fraction, a: Interval) -> Interval:
    lo, hi = float(c) * a[0], float(c) * a[1]
    return (min(lo, hi), max(lo, hi)) if c != 0 else (0.0, 0.0)


def entry_range(node: g.Node, memo: dict[g.Node, Interval] | None = None) -> Interval:
    """An interval holding every entry of ``node``, for any values of its variables (interval
    arithmetic over entry-wise sums and products; a square is non-negative).

    >>> x = g.var("x", "vector", ("n",))
    >>> s = g.apply("sigmoid", x)
    >>> entry_range(g.add([g.ones(("n",)), g.contract([s], [(0,)], (0,), -1)]))  # 1 - sigmoid(x)
    (0.0, 1.0)
    """
    memo = {} if memo is None else memo
    for sub in g.postorder(node):
        if sub not in memo:
            memo[sub] = _range_here(sub, memo)
    return memo[node]


def _range_here(node: g.Node, memo: dict[g.Node, Interval]) -> Interval:
    if isinstance(node, g.Const):
        v = float(node.value)
        return (v, v)
    if isinstance(node, g.Ones):
        return (1.0, 1.0)
    if isinstance(node, g.Zeros):
        return (0.0, 0.0)
    if isinstance(node, g.Delta):
        return (0.0, 1.0)
    if isinstance(node, g.Function):
        # Entry-wise functions, and softmax (each entry in [0, 1]).
        return _IMAGES.get(node.name, _EVERYTHING)
    if isinstance(node, g.Add):
        lo = sum(memo[a][0] for a in node.args)
        hi = sum(memo[a][1] for a in node.args)
        return (lo, hi)
    if isinstance(node, g.Power):
        exponent = node.args[1]
        if isinstance(exponent, g.Const) and exponent.value.denominator == 1 and exponent.value.numerator % 2 == 0:
            return (0.0, math.inf)
        return _EVERYTHING
    if isinstance(node, g.Contract):
        summed = {lab for labs in node.labels for lab in labs} - set(node.out)
        if summed:
            return _EVERYTHING  # a sum of products: interval bounds would grow with the sizes
        result: Interval = (1.0, 1.0)
        seen: dict[tuple[g.Node, tuple[int, ...]], int] = {}
        for arg, labs in zip(node.args, node.labels, strict=True):
            seen[(arg, labs)] = seen.get((arg, labs), 0) + 1
        for (arg, _), count in seen.items():
            result = _times(result, _power(memo[arg], count))
        return _scaled(node.coeff, result)
    return _EVERYTHING


def nonnegative(node: g.Node, memo: dict[g.Node, Interval] | None = None) -> bool:
    """Is every entry of ``node`` at least 0 whatever its variables' values?"""
    return entry_range(node, memo)[0] >= 0


# The functions whose every entry is strictly positive for every real argument (their images are
# open at 0: exp(u) > 0, sigmoid(u) > 0, softplus(u) = log(1 + exp(u)) > 0, a softmax's entries > 0).
POSITIVE_FUNCTIONS = frozenset(
    FUNCTIONS[name].name for name in ("exp", "sigmoid", "softplus", "softmax") if name in FUNCTIONS
)


def positive(node: g.Node, memo: MutableMapping[g.Node, bool] | None = None) -> bool:
    """Is every entry of ``node`` strictly positive whatever its variables' values? A positive
    number, ``ones``, exp, sigmoid, softplus, softmax, any real power of a positive base, products
    and sums of positive factors (a sum over an index of positive terms is positive), and a sum of
    non-negative terms one of which is positive.

    >>> y = g.var("y", "vector", ("n",))
    >>> positive(g.add([g.ones(("n",)), g.power(y, g.const(2))])), positive(g.power(y, g.const(2)))
    (True, False)
    """
    # Nodes are interned and immutable: a fact proved once holds for good (simplification asks
    # about the same bases again on every pass).
    memo = _POSITIVE if memo is None else memo
    ranges: dict[g.Node, Interval] = {}
    for sub in g.postorder(node):
        if sub not in memo:
            memo[sub] = _positive_here(sub, memo, ranges)
    return memo[node]


_POSITIVE: weakref.WeakKeyDictionary[g.Node, bool] = weakref.WeakKeyDictionary()


def _positive_here(node: g.Node, memo: MutableMapping[g.Node, bool], ranges: dict[g.Node, Interval]) -> bool:
    if isinstance(node, g.Const):
        return node.value > 0
    if isinstance(node, g.Ones):
        return True
    if isinstance(node, g.Function):
        return node.name in POSITIVE_FUNCTIONS
    if isinstance(node, g.Power):
        return memo[node.args[0]]  # b > 0: b^p = exp(p*log(b)) > 0 for every real p
    if isinstance(node, g.Contract):
        # Every entry is a sum (over non-empty ranges) of products of positive entries.
        return node.coeff > 0 and all(memo[a] for a in node.args)
    if isinstance(node, g.Add):
        return any(memo[a] for a in node.args) and all(memo[a] or nonnegative(a, ranges) for a in node.args)
    if isinstance(node, g.Reshape):
        return memo[node.args[0]]
    return False
