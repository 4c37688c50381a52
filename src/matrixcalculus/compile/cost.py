"""The cost model by which compiled code chooses among equal forms. (The sign analysis behind the
symmetric product, ``nonnegative``, is :mod:`matrixcalculus.transform.signs`: simplification uses it too.)

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

from dataclasses import dataclass

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
