"""Numerical checks: a symbolic derivative against central finite differences in float64.

The same check the field uses (JAX's ``check_grads``, PyTorch's ``gradcheck``): perturb each
entry of the variable by ``+-h``, difference the function, compare with the derivative
evaluated at the same point. A symmetric variable is perturbed symmetrically: the entry
``[i, j]`` of its derivative is the directional derivative along ``(E_ij + E_ji)/2``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from matrixcalculus.errors import EvaluationError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_array, current_limits, limit_error
from matrixcalculus.numeric.evaluate import bind, evaluate

# The domains a random input must lie in. An element-wise log, a root or any power that is not
# a whole number of at least zero needs positive entries (a negative power also keeps its base
# away from zero); arcsin and arccos need entries inside (-1, 1); det, logdet, inv and a
# fractional power of a quadratic form (sqrt(x'*S*x)) need a square matrix that is symmetric
# positive definite. A variable anywhere inside such an argument gets the domain: inside
# log(1 + exp(x)), x is drawn positive too, which is harmless.
_POSITIVE_FUNCTIONS = frozenset({"log", "sqrt"})
_UNIT_FUNCTIONS = frozenset({"arcsin", "arccos"})
_DEFINITE_FUNCTIONS = frozenset({"det", "logdet", "inv"})


def _needs_positive(node: g.Node) -> bool:
    """Does ``node`` need its argument (the base, for a power) to be positive?"""
    if isinstance(node, g.Function):
        return node.name in _POSITIVE_FUNCTIONS
    if isinstance(node, g.Power):
        exponent = node.args[1]
        if not isinstance(exponent, g.Const):
            return True  # x.^y: log(x) is part of its derivative
        value = Fraction(exponent.value)
        return value.denominator != 1 or value < 0
    return False


def domains(root: g.Node) -> dict[str, str]:
    """The domain each variable of ``root`` is drawn from for checks: ``"positive"`` (entries
    positive), ``"definite"`` (symmetric positive definite, with positive entries), ``"unit"``
    (entries inside (-1, 1)); absent: any real value.

    >>> from matrixcalculus.ir import graph as g
    >>> x = g.var("x", "vector", ("n",))
    >>> domains(g.apply("log", x))
    {'x': 'positive'}
    """
    # Each node's requirement on the variables below it, pushed down from the root.
    need: dict[g.Node, set[str]] = {root: set()}
    found: dict[str, set[str]] = {}
    for node in reversed(g.postorder(root)):
        here = need.get(node, set())
        if isinstance(node, g.Var):
            found.setdefault(node.name, set()).update(here)
            continue
        below = set(here)
        if _needs_positive(node):
            below.add("positive")
        if isinstance(node, g.Function) and node.name in _UNIT_FUNCTIONS:
            below.add("unit")
        if isinstance(node, g.Function) and node.name in _DEFINITE_FUNCTIONS:
            below.add("definite")
        for k, arg in enumerate(node.args):
            if isinstance(node, g.Power) and k == 1 and isinstance(arg, g.Const):
                continue
            need.setdefault(arg, set()).update(below)
    result: dict[str, str] = {}
    for name, wants in found.items():
        var = next(n for n in g.postorder(root) if isinstance(n, g.Var) and n.name == name)
        square = var.rank == 2 and var.shape[0] == var.shape[1]
        if square and wants & {"definite", "positive"}:
            # A positive definite matrix keeps x'*S*x positive under a root or a log.
            result[name] = "definite"
        elif "positive" in wants:
            result[name] = "positive"
        elif "unit" in wants:
            result[name] = "unit"
    return result


def random_values(
    variables: Mapping[str, g.Var],
    size: int = 3,
    seed: int = 0,
    *,
    within: g.Node | None = None,
    dims: Mapping[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """Well-conditioned random values: normal entries; square matrices shifted by ``size*I``
    (so inverses and determinants are tame), symmetric ones symmetrised. Symbolic dimensions
    all get ``size`` (or their size in ``dims``).

    ``within``: an expression whose functions' domains the values must lie in (see
    :func:`domains`): positive entries ``|z| + 1/2``, entries ``tanh(z)/2`` inside (-1, 1),
    symmetric positive definite ``B*B'/n + I`` (``B`` with entries ``|z|``). The normal draws
    are the same with or without ``within``; only their transformation differs.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise EvaluationError(f"the size of the random inputs must be a positive whole number, not {size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise EvaluationError(f"the random seed must be a whole number of at least 0, not {seed!r}")
    sized = dict(dims or {})
    shapes = {
        name: tuple(g.dim_size(d, lambda name: sized.get(name, size)) for d in var.shape)
        for name, var in variables.items()
    }
    # Before drawing any: a size such as 10^6 would ask for terabytes.
    for name, shape in shapes.items():
        check_array(shape, f"the random value of {name}")
    domain = domains(within) if within is not None else {}
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name, var in variables.items():
        shape = shapes[name]
        value = rng.standard_normal(shape)
        kind = domain.get(name)
        if kind == "definite" and len(shape) == 2 and shape[0] == shape[1]:
            base = np.abs(value)
            value = base @ base.T / shape[0] + np.eye(shape[0])
        elif kind == "positive":
            value = np.abs(value) + 0.5
        elif kind == "unit":
            value = np.tanh(value) / 2
        elif var.rank == 2 and var.shape[0] == var.shape[1]:
            if var.kind == "symmetric":
                value = (value + value.T) / 2
            value = value + shape[0] * np.eye(shape[0])
        values[name] = value
    return values


def derivative_label(name: str | tuple[str, ...], order: int = 1, f: str = "f") -> str:
    """``df/dW``, ``d^2f/dW^2``, ``d^3f/dW^3``: the one spelling of a derivative's name; a
    tuple of names is a mixed derivative, by the first name first: ``d^2f/dW db``.

    >>> derivative_label("W", 2), derivative_label(("W", "b"))
    ('d^2f/dW^2', 'd^2f/dW db')
    """
    if isinstance(name, tuple):
        if len(set(name)) == 1:
            return derivative_label(name[0], len(name), f)
        return f"d^{len(name)}{f}/" + " ".join(f"d{n}" for n in name)
    if order == 1:
        return f"d{f}/d{name}"
    return f"d^{order}{f}/d{name}^{order}"


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
    # A mixed derivative: the variables in the order of differentiation (``variable`` the last).
    variables: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.max_abs_error <= 1e-5 * max(1.0, self.scale)

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (
            f"{derivative_label(self.variables or self.variable, self.order)}: max abs error {self.max_abs_error:.2e}, "
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
