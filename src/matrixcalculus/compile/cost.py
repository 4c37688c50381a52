"""The cost model by which compiled code chooses among equal forms, and the sign analysis behind
the symmetric product.

A form's estimated cost is its multiply-adds plus :data:`TRAFFIC_WEIGHT` times the array entries
it reads and writes (each pairwise product reads its two operands and writes its result; an
entry-wise sum of k terms reads k arrays and writes one). On the 2-core development machine
(OpenBLAS, float64) a matrix product runs at about 0.04-0.07 ns per multiply-add and an
entry-wise pass at about 0.3 ns per entry moved, so an entry moved costs about as much as eight
multiply-adds. The estimates are for the sizes of a call's signature: compiled code is generated
(and the choice made) once per signature.

>>> estimate(Cost(flops=1000, traffic=10))
1080
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS

# One array entry read or written costs about as much as this many multiply-adds (see above).
TRAFFIC_WEIGHT = 8


@dataclass(frozen=True)
class Cost:
    """Multiply-adds and array entries moved (read plus written) by a form."""

    flops: int = 0
    traffic: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.flops + other.flops, self.traffic + other.traffic)


def estimate(cost: Cost) -> int:
    """The one number by which forms are compared."""
    return cost.flops + TRAFFIC_WEIGHT * cost.traffic


# --------------------------------------------------------------------------- sign analysis

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
