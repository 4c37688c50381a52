"""Numerical checks: a symbolic derivative against central finite differences in float64.

The same check the field uses (JAX's ``check_grads``, PyTorch's ``gradcheck``): perturb each
entry of the variable by ``+-h``, difference the function, compare with the derivative
evaluated at the same point. A symmetric variable is perturbed symmetrically: the entry
``[i, j]`` of its derivative is the directional derivative along ``(E_ij + E_ji)/2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from matrixcalculus.errors import EvaluationError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_array, current_limits, limit_error
from matrixcalculus.numeric.evaluate import bind, evaluate


def random_values(variables: Mapping[str, g.Var], size: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Well-conditioned random values: normal entries; square matrices shifted by ``size*I``
    (so inverses and determinants are tame), symmetric ones symmetrised. Symbolic dimensions
    all get ``size``."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise EvaluationError(f"the size of the random inputs must be a positive whole number, not {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise EvaluationError(f"the random seed must be a whole number of at least 0, not {seed!r}")
    shapes = {name: tuple(g.dim_size(d, lambda _: size) for d in var.shape) for name, var in variables.items()}
    # Before drawing any: a size such as 10^6 would ask for terabytes.
    for name, shape in shapes.items():
        check_array(shape, f"the random value of {name}")
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name, var in variables.items():
        shape = shapes[name]
        value = rng.standard_normal(shape)
        if var.rank == 2 and var.shape[0] == var.shape[1]:
            if var.kind == "symmetric":
                value = (value + value.T) / 2
            value = value + shape[0] * np.eye(shape[0])
        values[name] = value
    return values


def finite_difference(
    fn: Callable[[np.ndarray], Any], x: np.ndarray, h: float = 1e-6, symmetric: bool = False
) -> np.ndarray:
    """``d fn / d x`` by central differences: shape ``fn(x).shape + x.shape``."""
    x = np.asarray(x, dtype=np.float64)
    f0 = np.asarray(fn(x), dtype=np.float64)
    result = np.zeros(f0.shape + x.shape)
    for idx in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        if symmetric:
            i, j = idx
            step[i, j] += h / 2
            step[j, i] += h / 2
        else:
            step[idx] = h
        plus = np.asarray(fn(x + step), dtype=np.float64)
        minus = np.asarray(fn(x - step), dtype=np.float64)
        result[(...,) + idx] = (plus - minus) / (2 * h)
    return result


@dataclass(frozen=True)
class CheckResult:
    """How far a derivative is from finite differences: max absolute and relative error."""

    variable: str
    order: int
    max_abs_error: float
    max_rel_error: float
    scale: float

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= 1e-5 * max(1.0, self.scale)

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (
            f"d{'^2' if self.order == 2 else ''}/d{self.variable}: max abs error {self.max_abs_error:.2e}, "
            f"relative {self.max_rel_error:.2e} against central differences ({verdict})"
        )


def check_derivative(
    f: g.Node,
    derivative: g.Node,
    wrt: g.Var,
    values: Mapping[str, Any],
    order: int = 1,
    lower: g.Node | None = None,
    dims: Mapping[str, int] | None = None,
) -> CheckResult:
    """Compare ``derivative`` (numerator layout, of ``f``, or of ``lower`` for order 2) with
    central differences at ``values``."""
    target = f if order == 1 else lower
    assert target is not None
    # Sizes come from all the values, also those of variables the derivative no longer mentions.
    known = {n.name: n for n in g.postorder(f) if isinstance(n, g.Var)}
    known[wrt.name] = wrt
    _, sizes = bind(known, values, dims)
    dims = {d: size for d, size in sizes.items() if isinstance(d, str)}

    def fn(x: np.ndarray) -> Any:
        return evaluate(target, {**values, wrt.name: x}, dims)

    x0 = np.asarray(values[wrt.name], dtype=np.float64)
    # Two evaluations per entry of the variable, and a result of f.shape + x.shape: refuse
    # before starting what would not finish.
    if x0.size > current_limits().max_check_entries:
        raise limit_error(
            EvaluationError,
            "max_check_entries",
            f"a finite-difference check perturbs each of the {x0.size:,} entries of {wrt.name}",
        )
    f_shape = tuple(g.dim_size(d, lambda name: sizes.get(name, 1)) for d in target.shape)
    check_array(f_shape + x0.shape, "the finite-difference derivative")
    numeric = finite_difference(fn, x0, symmetric=wrt.kind == "symmetric")
    symbolic = np.asarray(evaluate(derivative, values, dims), dtype=np.float64)
    symbolic = np.broadcast_to(symbolic, numeric.shape) if symbolic.shape != numeric.shape else symbolic
    err = np.abs(symbolic - numeric)
    scale = float(np.max(np.abs(numeric))) if numeric.size else 0.0
    max_abs = float(np.max(err)) if err.size else 0.0
    return CheckResult(wrt.name, order, max_abs, max_abs / max(scale, 1e-300), scale)
