"""Random well-typed expressions: first and second derivatives against finite differences.

A recursive hypothesis strategy builds expression text over declared variables (scalars ``a, b``;
vectors ``x, y`` of length 3; matrices ``A, B`` 3 x 3 and ``C`` 3 x 2; a symmetric ``S``),
shape-correctly, from every operator and the smooth functions, with arguments kept in safe
domains (``log(1 + e.^2)``, ``arcsin(0.5*tanh(e))``, ``det(eye(3) + 0.1*tanh(M))``, ...).
Then, for a variable drawn from those occurring in the expression, the symbolic first derivative
(numerator layout, ``f.shape + wrt.shape``) is compared with central finite differences of the
function, and for a scalar-valued expression the symbolic Hessian with central finite
differences of the evaluated symbolic gradient. A symmetric variable is perturbed symmetrically.

Functions with kinks (``abs``, ``relu``, ``sign``, ``norm1``, ``norm2``, comparisons) are
allowed; a draw whose kink argument lies within 1e-2 of the kink is ill-conditioned for finite
differences and is rejected with ``assume``, as are draws whose values exceed 1e6 and those where
the function curves so fast that differences with steps h and h/2 disagree (beyond 1e-5 relative).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

import matrixcalculus as mc

from .test_derivative_rules import _directions

Shape = tuple[int, ...]

TYPES: dict[str, Any] = {
    "a": "scalar",
    "b": "scalar",
    "x": (3,),
    "y": (3,),
    "A": (3, 3),
    "B": (3, 3),
    "C": (3, 2),
    "S": "symmetric matrix",
}
SHAPES: dict[str, Shape] = {"a": (), "b": (), "x": (3,), "y": (3,), "A": (3, 3), "B": (3, 3), "C": (3, 2), "S": (3, 3)}
SYMMETRIC = {"S"}
ALL_SHAPES: tuple[Shape, ...] = ((), (3,), (2,), (3, 3), (3, 2), (2, 3))

# Leaves of each shape: variables, and small expressions where no variable has the shape.
LEAVES: dict[Shape, list[str]] = {
    (): ["a", "b", "2", "0.5"],
    (3,): ["x", "y", "ones(3)"],
    (2,): ["(C'*x)", "(C'*y)"],
    (3, 3): ["A", "B", "S", "eye(3)"],
    (3, 2): ["C", "ones(3,2)"],
    (2, 3): ["C'"],
}


@dataclass(frozen=True)
class Expr:
    text: str
    shape: Shape
    kinks: tuple[str, ...] = ()  # expressions that must stay away from 0 (entry-wise)
    norms: tuple[str, ...] = ()  # expressions that must stay away from the zero tensor


def _join(*parts: Expr) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kinks = tuple(k for p in parts for k in p.kinks)
    norms = tuple(k for p in parts for k in p.norms)
    return kinks, norms


def _make(text: str, shape: Shape, *parts: Expr, kinks: tuple[str, ...] = (), norms: tuple[str, ...] = ()) -> Expr:
    k, n = _join(*parts)
    return Expr(f"({text})", shape, k + kinks, n + norms)


# Smooth element-wise wrappers, each safe on any real argument.
SMOOTH: list[str] = [
    "sin({})",
    "cos({})",
    "tanh({})",
    "sigmoid({})",
    "softplus({})",
    "arctan({})",
    "exp(tanh({}))",
    "log(1 + {}.^2)",
    "sqrt(1 + {}.^2)",
    "arcsin(0.5*tanh({}))",
    "arccos(0.5*sin({}))",
    "tan(0.5*tanh({}))",
    "exp(0.5*sin({}))",
    "-{}",
    "2*{}",
    "{}/3",
    "0.5*{}",
    "{}.^2",
    "{}.^3",
    "2 .^ tanh({})",
]
KINKED: list[str] = ["abs({})", "relu({})"]


def _square(shape: Shape) -> bool:
    return len(shape) == 2 and shape[0] == shape[1]


def _inner_dims(m: int | None, n: int | None) -> list[int]:
    """The k for which an (m, k) and a (k, n) matrix are among the generated shapes."""
    return [k for k in (3, 2) if (m is None or (m, k) in ALL_SHAPES) and (n is None or (k, n) in ALL_SHAPES)]


@st.composite
def expressions(draw: st.DrawFn, shape: Shape, depth: int, top: bool = False) -> Expr:
    """A random expression of ``shape``, at most ``depth`` operators deep (at least one at the top)."""
    if depth <= 0 or (not top and draw(st.integers(0, 5)) == 0):
        return Expr(draw(st.sampled_from(LEAVES[shape])), shape)

    def sub(s: Shape) -> Expr:
        return draw(expressions(s, depth - 1))

    choices: list[Callable[[], Expr]] = []

    # ------------------------------------------------------------ any shape
    def smooth() -> Expr:
        e = sub(shape)
        return _make(draw(st.sampled_from(SMOOTH)).format(e.text), shape, e)

    def kinked() -> Expr:
        e = sub(shape)
        return _make(draw(st.sampled_from(KINKED)).format(e.text), shape, e, kinks=(e.text,))

    def signed() -> Expr:
        e, f = sub(shape), sub(shape)
        return _make(f"sign({e.text}) .* {f.text}", shape, e, f, kinks=(e.text,))

    def add() -> Expr:
        e, f = sub(shape), sub(shape)
        return _make(f"{e.text} {draw(st.sampled_from(['+', '-']))} {f.text}", shape, e, f)

    def hadamard() -> Expr:
        e, f = sub(shape), sub(shape)
        return _make(f"{e.text} .* {f.text}", shape, e, f)

    def divide() -> Expr:
        e, f = sub(shape), sub(shape)
        return _make(f"{e.text} ./ (1 + {f.text}.^2)", shape, e, f)

    def scaled() -> Expr:
        s, e = sub(()), sub(shape)
        form = draw(st.sampled_from(["{s}*{e}", "{e}*{s}", "{e}/(2 + sin({s}))", "{s} .* {e}"]))
        return _make(form.format(s=s.text, e=e.text), shape, s, e)

    def variable_power() -> Expr:
        e = sub(shape)
        if draw(st.booleans()):
            p = sub(shape)
        else:
            p = sub(())
        op = "^" if shape == () and draw(st.booleans()) else ".^"
        return _make(f"(1 + {e.text}.^2){op}sin({p.text})", shape, e, p)

    def compared() -> Expr:
        e, f, g = sub(shape), sub(shape), sub(shape)
        op = draw(st.sampled_from([">", "<"]))
        return _make(f"({e.text} {op} {f.text}) .* {g.text}", shape, e, f, g, kinks=(f"{e.text} - {f.text}",))

    choices += [smooth, smooth, smooth, add, add, hadamard, divide, scaled, variable_power, kinked, signed, compared]

    if shape:

        def broadcast() -> Expr:
            s, e = sub(()), sub(shape)
            form = draw(st.sampled_from(["{e} + {s}", "{s} - {e}", "{e} - {s}", "{s} + {e}"]))
            return _make(form.format(s=s.text, e=e.text), shape, s, e)

        choices += [broadcast]

    # ------------------------------------------------------------ scalars
    if shape == ():

        def inner() -> Expr:
            n = draw(st.sampled_from([3, 2]))
            e, f = sub((n,)), sub((n,))
            return _make(f"{e.text}'*{f.text}", (), e, f)

        def form() -> Expr:
            m, n = draw(st.sampled_from([(3, 3), (3, 2), (2, 3)]))
            u, M, v = sub((m,)), sub((m, n)), sub((n,))
            return _make(f"{u.text}'*{M.text}*{v.text}", (), u, M, v)

        def reduce() -> Expr:
            s = draw(st.sampled_from(ALL_SHAPES[1:]))
            e = sub(s)
            kind = draw(st.sampled_from(["sum", "norm2sq", "norm2", "norm1"]))
            if kind == "sum":
                return _make(f"sum({e.text})", (), e)
            if kind == "norm2sq":
                return _make(f"norm2({e.text})^2", (), e)
            if kind == "norm2":
                return _make(f"norm2({e.text})", (), e, norms=(e.text,))
            return _make(f"norm1({e.text})", (), e, kinks=(e.text,))

        def matrix_scalar() -> Expr:
            M = sub((3, 3))
            kind = draw(
                st.sampled_from(
                    [
                        "tr({M})",
                        "det(eye(3) + 0.1*tanh({M}))",
                        "logdet(eye(3) + 0.1*tanh({M}))",
                        "logdet(eye(3) + {M}*{M}')",
                        "tr(inv(eye(3) + 0.1*tanh({M})))",
                    ]
                )
            )
            return _make(kind.format(M=M.text), (), M)

        def vector_scalar() -> Expr:
            n = draw(st.sampled_from([3, 2]))
            v = sub((n,))
            return _make(f"logsumexp({v.text})", (), v)

        def powers() -> Expr:
            e, f = sub(()), sub(())
            form = draw(
                st.sampled_from(
                    [
                        "{e}^2",
                        "{e}^3",
                        "(1 + {e}^2)^0.5",
                        "(1 + {e}^2)^-1",
                        "2^tanh({e})",
                        "(2 + sin({e}))^{f}",
                        "{e}/(1 + {f}^2)",
                        "{e}*{f}",
                    ]
                )
            )
            return _make(form.format(e=e.text, f=f.text), (), e, f)

        choices += [inner, inner, form, reduce, reduce, matrix_scalar, vector_scalar, powers, powers]

    # ------------------------------------------------------------ vectors
    if len(shape) == 1:
        (n,) = shape

        def matvec() -> Expr:
            k = draw(st.sampled_from(_inner_dims(n, None)))
            M, v = sub((n, k)), sub((k,))
            return _make(f"{M.text}*{v.text}", shape, M, v)

        def vecmat() -> Expr:
            k = draw(st.sampled_from(_inner_dims(None, n)))
            v, M = sub((k,)), sub((k, n))
            return _make(f"({v.text}'*{M.text})'", shape, v, M)  # a row vector, transposed back

        def softmax() -> Expr:
            v = sub(shape)
            return _make(f"softmax({v.text})", shape, v)

        def diag_of() -> Expr:
            M = sub((n, n)) if n == 3 else sub((2, 3))
            if n == 3:
                return _make(f"diag({M.text})", shape, M)
            return _make(f"diag({M.text}*{M.text}')", shape, M)

        def solve() -> Expr:
            M, v = sub((n, n)) if n == 3 else sub((2, 3)), sub(shape)
            if n == 3:
                return _make(f"inv(eye(3) + 0.1*tanh({M.text}))*{v.text}", shape, M, v)
            return _make(f"inv(eye(2) + {M.text}*{M.text}')*{v.text}", shape, M, v)

        choices += [matvec, matvec, vecmat, softmax, diag_of, solve]

    # ------------------------------------------------------------ matrices
    if len(shape) == 2:
        m, n = shape

        def matmul() -> Expr:
            k = draw(st.sampled_from(_inner_dims(m, n)))
            M, N = sub((m, k)), sub((k, n))
            return _make(f"{M.text}*{N.text}", shape, M, N)

        def outer() -> Expr:
            u, v = sub((m,)), sub((n,))
            return _make(f"{u.text}*{v.text}'", shape, u, v)

        def transposed() -> Expr:
            M = sub((n, m))
            return _make(f"{M.text}'", shape, M)

        choices += [matmul, matmul, outer, transposed]
        if _square(shape):

            def diag_from() -> Expr:
                v = sub((m,))
                return _make(f"diag({v.text})", shape, v)

            def inverse() -> Expr:
                M = sub(shape)
                return _make(f"inv(eye(3) + 0.1*tanh({M.text}))", shape, M)

            choices += [diag_from, inverse]

    return draw(st.sampled_from(choices))()


@st.composite
def problems(draw: st.DrawFn) -> tuple[Expr, int]:
    shape = draw(st.sampled_from((*ALL_SHAPES, (), ())))  # scalar-valued more often: they get Hessians
    e = draw(expressions(shape, draw(st.integers(1, 5)), top=True))
    seed = draw(st.integers(0, 2**32 - 1))
    return e, seed


# ---------------------------------------------------------------------------- finite differences


def finite_difference(
    fn: Callable[[dict[str, Any]], np.ndarray], values: Mapping[str, Any], wrt: str, symmetric: bool, h: float = 1e-4
) -> tuple[np.ndarray, float]:
    """Central differences with one Richardson step (error O(h^4)): shape ``fn(values).shape + wrt.shape``.

    Also returns the largest gap between the steps ``h`` and ``h/2``: a large gap means the function
    curves too fast for finite differences to be trusted there. For a symmetric variable, entry
    ``[i, j]`` is the derivative along ``(e_i e_j' + e_j e_i')/2``.
    """
    x0 = np.asarray(values[wrt], dtype=np.float64)

    def central(direction: np.ndarray, step: float) -> np.ndarray:
        def at(point: np.ndarray) -> np.ndarray:
            value = float(point) if point.shape == () else point
            return np.asarray(fn({**values, wrt: value}), dtype=np.float64)

        return (at(x0 + step * direction) - at(x0 - step * direction)) / (2 * step)

    out: np.ndarray | None = None
    gap = 0.0
    for idx, direction in _directions(x0.shape, symmetric):
        coarse, fine = central(direction, h), central(direction, h / 2)
        column = (4 * fine - coarse) / 3
        gap = max(gap, float(np.max(np.abs(fine - coarse), initial=0.0)))
        if out is None:
            out = np.zeros(column.shape + x0.shape)
        out[(Ellipsis, *idx)] = column
    assert out is not None
    return out, gap


def assert_close(actual: np.ndarray, expected: np.ndarray, scale: float, what: Callable[[], str]) -> None:
    """``actual`` equals ``expected`` to rtol 1e-5, atol 1e-6 * scale; ``what()`` (printing is slow) on failure."""
    assert actual.shape == expected.shape, f"{what()}: shape {actual.shape}, expected {expected.shape}"
    atol = 1e-6 * max(1.0, scale)
    if not np.allclose(actual, expected, rtol=1e-5, atol=atol):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=atol, err_msg=what())


def _values(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for name, shape in SHAPES.items():
        v = 0.8 * rng.standard_normal(shape)
        if name in SYMMETRIC:
            v = (v + v.T) / 2
        out[name] = float(v) if shape == () else v
    return out


def _dims(
    expr: mc.Expression, values: Mapping[str, Any], derivative: mc.Expression | None = None, wrt: str | None = None
) -> dict[str, int]:
    dims: dict[str, int] = {}
    for name, var in expr.variables.items():
        for d, n in zip(var.shape, np.shape(values[name]), strict=True):
            if isinstance(d, str):
                dims[d] = n
    if derivative is not None and wrt is not None and SHAPES[wrt]:
        k = len(SHAPES[wrt])
        for d, n in zip(derivative.shape[-k:], SHAPES[wrt], strict=True):
            if isinstance(d, str):
                dims[d] = n
    return dims


def _well_conditioned(*arrays: np.ndarray) -> bool:
    return all(np.all(np.isfinite(a)) and float(np.max(np.abs(a), initial=0.0)) <= 1e6 for a in arrays)


@given(problems(), st.data())
def test_random_expression_derivatives_match_finite_differences(problem: tuple[Expr, int], data: st.DataObject) -> None:
    e, seed = problem
    f = mc.parse(e.text, types=TYPES)
    assert len(f.shape) == len(e.shape), f"{e.text}: shape {f.shape}, built as {e.shape}"
    values = _values(seed)
    present = sorted(f.variables)
    wrt = data.draw(st.sampled_from(present or sorted(SHAPES)), label="wrt")
    symmetric = wrt in SYMMETRIC
    note(f"f = {e.text}   wrt = {wrt}")

    # Ill-conditioned draws: near a kink, or values too large for finite differences.
    for kink in e.kinks:
        k = np.asarray(mc.parse(kink, types=TYPES).evaluate(values), dtype=np.float64)
        assume(bool(np.all(np.abs(k) > 1e-2)))
    for arg in e.norms:
        n = np.asarray(mc.parse(arg, types=TYPES).evaluate(values), dtype=np.float64)
        assume(float(np.sqrt(np.sum(n * n))) > 1e-2)
    dims = _dims(f, values)
    value = np.asarray(f.evaluate(values, dims=dims), dtype=np.float64)
    assert value.shape == e.shape, f"{e.text}: value of shape {value.shape}, built as {e.shape}"
    assume(_well_conditioned(value))

    d1 = mc.derivative(f, wrt, types=TYPES)
    assert isinstance(d1, mc.Expression)
    expected_shape = value.shape + SHAPES[wrt]
    assert len(d1.shape) == len(expected_shape), f"d/d{wrt} has shape {d1.shape}, expected {expected_shape}"
    dims1 = _dims(f, values, d1, wrt)
    got1 = np.asarray(d1.evaluate(values, dims=dims1), dtype=np.float64)
    fd1, gap1 = finite_difference(
        lambda v: np.asarray(f.evaluate(v, dims=dims), dtype=np.float64), values, wrt, symmetric
    )
    assume(_well_conditioned(fd1))
    scale1 = max(float(np.max(np.abs(fd1), initial=0.0)), float(np.max(np.abs(value), initial=0.0)))
    assume(gap1 <= 1e-5 * max(1.0, scale1))
    assert_close(got1, fd1, scale1, lambda: f"first derivative of {e.text} w.r.t. {wrt}: {d1}")

    if e.shape != ():
        return
    d2 = mc.derivative(f, wrt, types=TYPES, order=2)
    assert isinstance(d2, mc.Expression)
    got2 = np.asarray(d2.evaluate(values, dims=_dims(f, values, d2, wrt)), dtype=np.float64)
    fd2, gap2 = finite_difference(
        lambda v: np.asarray(d1.evaluate(v, dims=dims1), dtype=np.float64), values, wrt, symmetric
    )
    assume(_well_conditioned(fd2))
    scale2 = max(float(np.max(np.abs(fd2), initial=0.0)), scale1)
    assume(gap2 <= 1e-5 * max(1.0, scale2))
    assert_close(got2, fd2, scale2, lambda: f"second derivative of {e.text} w.r.t. {wrt}: {d2} (first: {d1})")
