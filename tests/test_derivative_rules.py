"""Every derivative rule against central finite differences, in float64.

Each case is an expression, the variables to differentiate with respect to, and a domain for
each variable's random values (positive for ``log``/``sqrt``, in (-0.9, 0.9) for ``arcsin``,
away from 0 for ``abs``/``sign``/``relu``, a well-conditioned or SPD matrix for ``det``/``inv``).
For order 1 the symbolic derivative (numerator layout: ``f.shape + wrt.shape``) is compared with
central differences of the function; for order 2 the symbolic second derivative is compared with
central differences of the *evaluated symbolic first derivative* (and the first derivative is
checked as well). A variable declared symmetric is perturbed symmetrically: the derivative's
``[i, j]`` entry is the directional derivative along ``(e_i e_j' + e_j e_i')/2``.

The finite-difference helper here is independent of the library's own checking code.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

# ---------------------------------------------------------------------------- types and values

TYPES: dict[str, Any] = {
    "a": "scalar",
    "b": "scalar",
    "c": "scalar",
    "x": (3,),
    "y": (3,),
    "z": (2,),
    "w": (3,),
    "t": (4,),
    "A": (3, 3),
    "B": (3, 3),
    "C": (3, 2),
    "D": (2, 3),
    "W": (4, 3),
    "R": (4, 3),
    "X": (3, 3),
    "S": "symmetric matrix",
    "P": "symmetric matrix",
}
SHAPES: dict[str, tuple[int, ...]] = {
    "a": (),
    "b": (),
    "c": (),
    "x": (3,),
    "y": (3,),
    "z": (2,),
    "w": (3,),
    "t": (4,),
    "A": (3, 3),
    "B": (3, 3),
    "C": (3, 2),
    "D": (2, 3),
    "W": (4, 3),
    "R": (4, 3),
    "X": (3, 3),
    "S": (3, 3),
    "P": (3, 3),
}
SYMMETRIC = {"S", "P"}


def _draw(rng: np.random.Generator, domain: str, shape: tuple[int, ...]) -> np.ndarray:
    if domain == "normal":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    if domain == "away":  # |v| in [0.3, 1.5]: abs, sign, relu, norm1 stay off their kinks
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.3, 1.5, shape)
    if domain == "small":
        return 0.3 * rng.standard_normal(shape)
    n = shape[0]
    if domain == "spd":
        G = rng.standard_normal((n, n))
        return G @ G.T / n + np.eye(n)
    if domain == "wellcond":  # positive definite symmetric part: det > 0, well conditioned
        G = rng.standard_normal((n, n))
        return G @ G.T / n + 2 * np.eye(n) + 0.4 * rng.standard_normal((n, n))
    raise ValueError(domain)


# ---------------------------------------------------------------------------- finite differences

H = 1e-5


def _directions(shape: tuple[int, ...], symmetric: bool) -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
    for idx in np.ndindex(*shape):
        direction = np.zeros(shape)
        if symmetric:
            i, j = idx
            direction[i, j] += 0.5
            direction[j, i] += 0.5
        else:
            direction[idx] = 1.0
        yield idx, direction


def central_difference(
    fn: Callable[[dict[str, Any]], Any], values: Mapping[str, Any], wrt: str, symmetric: bool = False, h: float = H
) -> np.ndarray:
    """``d fn / d values[wrt]`` by central differences: shape ``fn(values).shape + wrt.shape``."""
    x0 = np.asarray(values[wrt], dtype=np.float64)
    result: np.ndarray | None = None
    for idx, direction in _directions(x0.shape, symmetric):
        plus, minus = x0 + h * direction, x0 - h * direction
        if x0.shape == ():
            plus, minus = float(plus), float(minus)
        hi = np.asarray(fn({**values, wrt: plus}), dtype=np.float64)
        lo = np.asarray(fn({**values, wrt: minus}), dtype=np.float64)
        column = (hi - lo) / (2 * h)
        if result is None:
            result = np.zeros(column.shape + x0.shape)
        result[(Ellipsis, *idx)] = column
    assert result is not None
    return result


def assert_close(actual: Any, expected: Any, what: str | Callable[[], str], rtol: float = 1e-5) -> None:
    """Equal to ``rtol`` and an atol of 1e-6 times the magnitude; ``what`` (maybe lazy: printing is slow) on failure."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    describe = what if callable(what) else (lambda: what)
    assert actual.shape == expected.shape, f"{describe()}: shape {actual.shape}, expected {expected.shape}"
    atol = 1e-6 * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    if not np.allclose(actual, expected, rtol=rtol, atol=atol):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=describe())


# ---------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Rule:
    text: str
    wrts: tuple[str, ...]
    domains: dict[str, str] = field(default_factory=dict)  # per variable; default "normal"
    types: dict[str, Any] = field(default_factory=dict)  # overrides of TYPES
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # overrides of SHAPES

    def all_types(self) -> dict[str, Any]:
        return {**TYPES, **self.types}

    def shape(self, name: str) -> tuple[int, ...]:
        return self.shapes.get(name, SHAPES[name])

    def values(self, seed_text: str) -> dict[str, Any]:
        rng = np.random.default_rng(zlib.crc32(seed_text.encode()))
        expr = mc.parse(self.text, types=self.all_types())
        out = {}
        for name in sorted(set(expr.variables) | set(self.wrts)):
            domain = self.domains.get(name, "normal")
            shape = self.shape(name)
            value = _draw(rng, domain, shape)
            var = expr.variables.get(name)
            if (var.kind == "symmetric") if var is not None else name in SYMMETRIC:
                if domain in ("spd", "wellcond"):
                    value = (value + value.T) / 2
                else:
                    value = np.triu(value) + np.triu(value, 1).T
            out[name] = float(value) if shape == () else value
        return out


def dims_of(expr: mc.Expression, values: Mapping[str, Any]) -> dict[str, int]:
    """Sizes of the expression's named dimensions, read off the values."""
    dims: dict[str, int] = {}
    for name, var in expr.variables.items():
        for d, n in zip(var.shape, np.shape(values[name]), strict=True):
            if isinstance(d, str):
                dims[d] = n
    return dims


def with_wrt_dims(dims: dict[str, int], result_shape: tuple, wrt_shape: tuple[int, ...]) -> dict[str, int]:
    """Add the sizes of the variable's axes (the trailing axes of a numerator-layout result)."""
    out = dict(dims)
    if wrt_shape:
        for d, n in zip(result_shape[-len(wrt_shape) :], wrt_shape, strict=True):
            if isinstance(d, str):
                out[d] = n
    return out


def E(fn: str, domain: str) -> list[Rule]:  # noqa: N802 - short table constructor
    """The element-wise function ``fn`` on a scalar, a vector, a matrix, a symmetric matrix, and inside a form."""
    return [
        Rule(f"{fn}(a)", ("a",), {"a": domain}),
        Rule(f"{fn}(x)", ("x",), {"x": domain}),
        Rule(f"{fn}(C)", ("C",), {"C": domain}),
        Rule(f"{fn}(S)", ("S",), {"S": domain}),
        Rule(f"y'*{fn}(C)*z", ("C", "y", "z"), {"C": domain}),
        Rule(f"sum({fn}(x))", ("x",), {"x": domain}),
        Rule(f"2*{fn}(a)*x", ("a", "x"), {"a": domain}),
    ]


ELEMENTWISE_RULES = [
    *E("exp", "normal"),
    *E("log", "positive"),
    *E("sin", "normal"),
    *E("cos", "normal"),
    *E("tan", "unit"),
    *E("tanh", "normal"),
    *E("sqrt", "positive"),
    *E("abs", "away"),
    *E("sign", "away"),
    *E("relu", "away"),
    *E("sigmoid", "normal"),
    *E("softplus", "normal"),
    *E("arcsin", "unit"),
    *E("arccos", "unit"),
    *E("arctan", "normal"),
]

MATRIX_FUNCTION_RULES = [
    # det
    Rule("det(A)", ("A",), {"A": "wellcond"}),
    Rule("det(S)", ("S",), {"S": "spd"}),
    Rule("det(A*B)", ("A", "B"), {"A": "wellcond", "B": "wellcond"}),
    Rule("det(C'*C)", ("C",)),
    Rule("a*det(A) + det(A')", ("a", "A"), {"A": "wellcond"}),
    # logdet
    Rule("logdet(S)", ("S",), {"S": "spd"}),
    Rule("logdet(A)", ("A",), {"A": "wellcond"}),
    Rule("logdet(C'*C + eye(2))", ("C",)),
    Rule("logdet(S + x*x')", ("S", "x"), {"S": "spd"}),
    Rule("logdet((C + exp(a))'*(C + exp(a)))", ("a", "C")),
    Rule("sum(inv((C + a^2)'*(C + a^2)))", ("a", "C")),
    # inv
    Rule("inv(A)", ("A",), {"A": "wellcond"}),
    Rule("inv(S)", ("S",), {"S": "spd"}),
    Rule("x'*inv(A)*y", ("x", "A", "y"), {"A": "wellcond"}),
    Rule("tr(inv(A))", ("A",), {"A": "wellcond"}),
    Rule("inv(A)*x", ("A", "x"), {"A": "wellcond"}),
    Rule("det(inv(A))", ("A",), {"A": "wellcond"}),
    # norm1 (away from zero entries)
    Rule("norm1(x)", ("x",), {"x": "away"}),
    Rule("norm1(C)", ("C",), {"C": "away"}),
    Rule("norm1(S)", ("S",), {"S": "away"}),
    Rule("a*norm1(x)", ("a", "x"), {"x": "away"}),
    # norm2
    Rule("norm2(x)", ("x",)),
    Rule("norm2(C)", ("C",)),
    Rule("norm2(S)", ("S",)),
    Rule("norm2(A*x - y)", ("A", "x", "y")),
    Rule("norm2(x)^2", ("x",)),
    Rule("0.5*norm2(C)^2", ("C",)),
    Rule("0.5*norm2(W*x - t)^2", ("W", "x", "t")),
    # softmax, logsumexp
    Rule("softmax(x)", ("x",)),
    Rule("softmax(A*x)", ("A", "x")),
    Rule("y'*softmax(x)", ("x", "y")),
    Rule("logsumexp(x)", ("x",)),
    Rule("logsumexp(A*x + y)", ("A", "x", "y")),
    Rule("logsumexp(softmax(x))", ("x",)),
    # tr
    Rule("tr(A)", ("A",)),
    Rule("tr(S)", ("S",)),
    Rule("tr(A*B)", ("A", "B")),
    Rule("tr(A'*B*A)", ("A", "B")),
    Rule("tr(C*D)", ("C", "D")),
    Rule("tr(S*A)", ("S", "A")),
    Rule("tr(A)*tr(A)", ("A",)),
    Rule("tr(X*X*X*X)", ("X",)),
    # diag, both ways
    Rule("diag(x)", ("x",)),
    Rule("diag(A)", ("A",)),
    Rule("diag(S)", ("S",)),
    Rule("x'*diag(y)*x", ("x", "y")),
    Rule("diag(diag(A))", ("A",)),
    Rule("diag(A*x)", ("A", "x")),
    Rule("sum(diag(A).^2)", ("A",)),
    # sum
    Rule("sum(x)", ("x",)),
    Rule("sum(C)", ("C",)),
    Rule("sum(S)", ("S",)),
    Rule("sum(A*x)", ("A", "x")),
    Rule("sum(x .* y)", ("x", "y")),
    Rule("sum(a*x)", ("a", "x")),
    Rule("sum(x)^2", ("x",)),
    Rule("sum(A)^2", ("A",)),
    Rule("sin(sum(A))", ("A",)),
    Rule("sum(C)*sum(C)", ("C",)),
    Rule("(x'*A*ones(3))^2", ("x", "A")),
]

OPERATOR_RULES = [
    # + and -
    Rule("x + y", ("x", "y")),
    Rule("x - y", ("x", "y")),
    Rule("-x", ("x",)),
    Rule("A + B", ("A", "B")),
    Rule("A - B'", ("A", "B")),
    Rule("a - b", ("a", "b")),
    Rule("-(C - 2*C)", ("C",)),
    # products
    Rule("a*b", ("a", "b")),
    Rule("a*x", ("a", "x")),
    Rule("x*a", ("x", "a")),
    Rule("a*C", ("a", "C")),
    Rule("W*x", ("W", "x")),
    Rule("A*B", ("A", "B")),
    Rule("C'*A*C", ("C", "A")),
    Rule("x*y'", ("x", "y")),
    Rule("x'*y", ("x", "y")),
    Rule("x'*A*y", ("x", "A", "y")),
    Rule("x'*A*x", ("x", "A")),
    Rule("x'*S*x", ("x", "S")),
    Rule("S*x", ("S", "x")),
    Rule("S*A", ("S", "A")),
    Rule("10*x^2*y^2", ("x", "y"), types={"x": "scalar", "y": "scalar"}, shapes={"x": (), "y": ()}),
    # division by scalars, element-wise division
    Rule("x/a", ("x", "a"), {"a": "positive"}),
    Rule("C/a", ("C", "a"), {"a": "positive"}),
    Rule("S/a", ("S", "a"), {"a": "positive"}),
    Rule("a/b", ("a", "b"), {"b": "positive"}),
    Rule("1/a", ("a",), {"a": "positive"}),
    Rule("C/2", ("C",)),
    Rule("x/(x'*x)", ("x",)),
    Rule("x ./ y", ("x", "y"), {"y": "positive"}),
    Rule("a ./ x", ("a", "x"), {"x": "positive"}),
    Rule("x ./ a", ("x", "a"), {"a": "positive"}),
    Rule("A ./ B", ("A", "B"), {"B": "positive"}),
    Rule("S ./ P", ("S", "P"), {"P": "positive"}),
    Rule("1 ./ x", ("x",), {"x": "positive"}),
    # element-wise products
    Rule("x .* y", ("x", "y")),
    Rule("A .* B", ("A", "B")),
    Rule("a .* x", ("a", "x")),
    Rule("C .* C", ("C",)),
    Rule("S .* A", ("S", "A")),
    # powers: constant and variable exponents
    Rule("x^3", ("x",), types={"x": "scalar"}, shapes={"x": ()}),
    Rule("x^3 + 2*x + 1", ("x",), types={"x": "scalar"}, shapes={"x": ()}),
    Rule("a^3", ("a",)),
    Rule("a^2", ("a",)),
    Rule("a^-1", ("a",), {"a": "positive"}),
    Rule("a^0.5", ("a",), {"a": "positive"}),
    Rule("a^-2.5", ("a",), {"a": "positive"}),
    Rule("a^b", ("a", "b"), {"a": "positive"}),
    Rule("2^a", ("a",)),
    Rule("(a^2 + 1)^b", ("a", "b")),
    Rule("(x'*x)^0.5", ("x",)),
    Rule("(a*5^0.5)^2", ("a",)),
    Rule("2^0.5*2^0.5*a", ("a",)),
    Rule("sin(a*5^0.5)", ("a",)),
    Rule("(x'*y)^2", ("x", "y")),
    Rule("(x'*x)^a", ("x", "a")),
    Rule("x.^3", ("x",)),
    Rule("x.^2", ("x",)),
    Rule("x.^y", ("x", "y"), {"x": "positive"}),
    Rule("x.^a", ("x", "a"), {"x": "positive"}),
    Rule("a.^x", ("a", "x"), {"a": "positive"}),
    Rule("2.^x", ("x",)),
    Rule("C.^2", ("C",)),
    Rule("A.^B", ("A", "B"), {"A": "positive"}),
    Rule("S.^3", ("S",)),
    Rule("x.^-1", ("x",), {"x": "positive"}),
    Rule("x.^0.5", ("x",), {"x": "positive"}),
    # transposes
    Rule("A'", ("A",)),
    Rule("C'", ("C",)),
    Rule("S'", ("S",)),
    Rule("(A*B)'", ("A", "B")),
    Rule("x'*A'*y", ("x", "A", "y")),
    Rule("(C'*x)'*z", ("C", "x", "z")),
    Rule("x'", ("x",)),
    # scalar broadcasting
    Rule("x + a", ("x", "a")),
    Rule("a + x", ("a", "x")),
    Rule("a - x", ("a", "x")),
    Rule("A + a", ("A", "a")),
    Rule("C - a", ("C", "a")),
    Rule("S + a", ("S", "a")),
    Rule("a + x'*y", ("a", "x", "y")),
    # comparisons: derivative 0 (and a gate that multiplies)
    Rule("x > y", ("x", "y")),
    Rule("A < B", ("A", "B")),
    Rule("a > b", ("a", "b")),
    Rule("(x > 0) .* x", ("x",), {"x": "away"}),
    Rule("(a < 0)*x", ("a", "x"), {"a": "away"}),
    # constants
    Rule("x + ones(3)", ("x",)),
    Rule("eye(3)*x", ("x",)),
    Rule("A + eye(3)", ("A",)),
    Rule("zeros(3,2) + C", ("C",)),
    Rule("x .* vector(c)", ("x", "c")),
    Rule("C + matrix(c)", ("C", "c")),
    Rule("sum(eye(3))*x", ("x",)),
    Rule("tr(eye(3))*x", ("x",)),
    Rule("sum(ones(3))*A*C", ("A", "C")),
]

JACOBIAN_RULES = [
    Rule("A*x", ("A", "x"), types={"A": (4, 3)}, shapes={"A": (4, 3)}),  # d/dA: 4 x 4 x 3
    Rule("R'*R", ("R",)),  # 3 x 3 x 4 x 3
    Rule("X*X", ("X",)),
    Rule("S*S", ("S",)),
    Rule("x*x'", ("x",)),
    Rule("A*B*x", ("A", "B", "x")),
    Rule("exp(A*x) .* y", ("A", "x", "y")),
    Rule("relu(w'*x + b)", ("w", "x", "b")),
    Rule("x'*A*x + c*sin(y)'*x", ("x", "y", "c", "A"), types={"A": "symmetric matrix"}),
    Rule("tanh(W*x + t)", ("W", "x", "t")),
    Rule("softmax(W'*t)", ("W", "t")),
    Rule("0.5*norm2(W*relu(A*x + y) - t)^2", ("W", "A", "x", "y"), {"y": "normal"}),
    Rule("C*z", ("C", "z")),
    Rule("x'*C", ("x", "C")),
    Rule("z'*D", ("z", "D")),
    Rule("C*D", ("C", "D")),
    Rule("D*C", ("D", "C")),
    Rule("x*z'", ("x", "z")),
    Rule("inv(C'*C)", ("C",)),
    Rule("diag(C*z)", ("C", "z")),
    Rule("x*y' + a", ("x", "y", "a")),
    Rule("S*C", ("S", "C")),
    Rule("inv(S)*x", ("S", "x"), {"S": "spd"}),
    Rule("x'*inv(S)*x", ("S", "x"), {"S": "spd"}),
    Rule("tr(S*S*S)", ("S",)),
    Rule("exp(sin(x))", ("x",)),
    Rule("log(sigmoid(x))", ("x",)),
    Rule("softplus(tanh(A*x))", ("A", "x")),
    Rule("sqrt(exp(x))", ("x",)),
    Rule("sigmoid(C)'*x", ("C", "x")),
    Rule("a'*sin(X)*b", ("X",), types={"a": (3,), "b": (3,)}, shapes={"a": (3,), "b": (3,)}),
    Rule("a'*log(sin(X))*b", ("X",), {"X": "positive"}, types={"a": (3,), "b": (3,)}, shapes={"a": (3,), "b": (3,)}),
]

ALL_RULES = ELEMENTWISE_RULES + MATRIX_FUNCTION_RULES + OPERATOR_RULES + JACOBIAN_RULES


def _params() -> list[Any]:
    out = []
    for rule in ALL_RULES:
        for wrt in rule.wrts:
            out.append(pytest.param(rule, wrt, id=f"{rule.text} | {wrt}"))
    return out


PARAMS = _params()


def _check_numerics(values: Mapping[str, Any]) -> None:
    for name, v in values.items():
        assert np.all(np.isfinite(v)), name


class Problem:
    """One rule and one variable, with random values, ready to differentiate and evaluate."""

    def __init__(self, rule: Rule, wrt: str) -> None:
        self.rule, self.wrt = rule, wrt
        self.types = rule.all_types()
        self.f = mc.parse(rule.text, types=self.types)
        self.values = rule.values(f"{rule.text}|{wrt}")
        _check_numerics(self.values)
        self.dims = dims_of(self.f, self.values)
        self.wrt_shape = rule.shape(wrt)
        var = self.f.variables.get(wrt)
        self.symmetric = var is not None and var.kind == "symmetric"
        self.f_value = np.asarray(self.evaluate(self.f, self.values), dtype=np.float64)

    def evaluate(self, e: mc.Expression, values: Mapping[str, Any], wrt_axes: int = 0) -> np.ndarray:
        dims = with_wrt_dims(self.dims, tuple(e.shape), self.wrt_shape) if wrt_axes else self.dims
        return np.asarray(e.evaluate(values, dims=dims), dtype=np.float64)

    def derivative(self, order: int, layout: str = "shape") -> mc.Expression:
        d = mc.derivative(self.rule.text, self.wrt, types=self.types, order=order, layout=layout)
        assert isinstance(d, mc.Expression)
        return d

    def fd_of_f(self) -> np.ndarray:
        return central_difference(lambda v: self.evaluate(self.f, v), self.values, self.wrt, self.symmetric)

    def expected_shape(self, order: int) -> tuple[int, ...]:
        return tuple(self.f_value.shape) + tuple(self.wrt_shape) * order


def check_first(p: Problem) -> np.ndarray:
    d1 = p.derivative(1)
    assert len(d1.shape) == p.f_value.ndim + len(p.wrt_shape), f"{p.rule.text} d/d{p.wrt}: shape {d1.shape}"
    got = p.evaluate(d1, p.values, 1)
    assert got.shape == p.expected_shape(1), f"{p.rule.text} d/d{p.wrt} = {d1}: shape {got.shape}"
    fd = p.fd_of_f()
    assert_close(got, fd, lambda: f"first derivative of {p.rule.text} w.r.t. {p.wrt}: {d1}")
    return got


@pytest.mark.parametrize(("rule", "wrt"), PARAMS)
def test_first_derivative(rule: Rule, wrt: str) -> None:
    check_first(Problem(rule, wrt))


@pytest.mark.parametrize(("rule", "wrt"), PARAMS)
def test_second_derivative(rule: Rule, wrt: str) -> None:
    p = Problem(rule, wrt)
    check_first(p)
    d1 = p.derivative(1)
    d2 = p.derivative(2)
    got = p.evaluate(d2, p.values, 2)
    assert got.shape == p.expected_shape(2), f"{rule.text} d2/d{wrt}2 = {d2}: shape {got.shape}"
    fd = central_difference(lambda v: p.evaluate(d1, v, 1), p.values, wrt, p.symmetric)
    assert_close(got, fd, lambda: f"second derivative of {rule.text} w.r.t. {wrt}: {d2} (first: {d1})")


# ---------------------------------------------------------------------------- layouts


LAYOUT_CASES = [
    ("x'*A*x", "x"),
    ("x'*A*x", "A"),
    ("A*x", "x"),
    ("A*x", "A"),
    ("W*x", "W"),
    ("C'*x", "C"),
    ("exp(x)", "x"),
    ("R'*R", "R"),
    ("x*y'", "x"),
    ("a*x", "a"),
    ("a*C", "C"),
    ("inv(A)", "A"),
    ("softmax(W*x)", "W"),
    ("x'*S*x", "S"),
    ("S*x", "S"),
    ("det(A)", "A"),
    ("a^3", "a"),
]


@pytest.mark.parametrize(("text", "wrt"), LAYOUT_CASES, ids=[f"{t} | {w}" for t, w in LAYOUT_CASES])
def test_denominator_layout_is_the_transpose(text: str, wrt: str) -> None:
    rule = Rule(text, (wrt,), {"A": "wellcond"} if "inv" in text or "det" in text else {})
    p = Problem(rule, wrt)
    num = p.evaluate(p.derivative(1), p.values, 1)
    den_expr = p.derivative(1, layout="denominator")
    r = p.f_value.ndim
    assert len(den_expr.shape) == num.ndim
    # In denominator layout the variable's axes come first, then the function's in reverse
    # (the transpose of the numerator layout: f's axes, then the variable's in reverse).
    dims = dict(p.dims)
    for d, n in zip(den_expr.shape[: len(p.wrt_shape)], p.wrt_shape, strict=True):
        if isinstance(d, str):
            dims[d] = n
    den = np.asarray(den_expr.evaluate(p.values, dims=dims), dtype=np.float64)
    axes = tuple(range(r, num.ndim)) + tuple(range(r))[::-1]
    assert den.shape == tuple(np.transpose(num, axes).shape)
    np.testing.assert_allclose(den, np.transpose(num, axes), rtol=1e-12, atol=1e-12)
    assert_close(den, np.transpose(p.fd_of_f(), axes), lambda: f"denominator layout of {text} w.r.t. {wrt}")


@pytest.mark.parametrize(("text", "wrt"), [("x'*A*x", "x"), ("det(A)", "A"), ("a^b", "a"), ("norm2(C)^2", "C")])
def test_denominator_layout_of_a_scalar_hessian_is_the_hessian(text: str, wrt: str) -> None:
    p = Problem(Rule(text, (wrt,), {"A": "wellcond", "a": "positive"}), wrt)
    num = p.evaluate(p.derivative(2), p.values, 2)
    den = p.evaluate(p.derivative(2, layout="denominator"), p.values, 2)
    np.testing.assert_allclose(den, num, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------- vjp and jvp


PRODUCT_CASES = [
    ("A*x", "A"),
    ("A*x", "x"),
    ("x'*A*x", "x"),
    ("x'*A*x", "A"),
    ("exp(x)", "x"),
    ("W*x", "W"),
    ("R'*R", "R"),
    ("inv(A)", "A"),
    ("softmax(x)", "x"),
    ("C'*A*C", "C"),
    ("x*y'", "y"),
    ("a*x", "a"),
    ("tanh(W*x + t)", "W"),
    ("x'*S*x", "S"),
    ("S*x", "S"),
    ("sin(C)", "C"),
    ("diag(x)", "x"),
    ("diag(A)", "A"),
    ("a^2", "a"),
    ("sum(C)", "C"),
]


def _random_like(rng: np.random.Generator, shape: tuple[int, ...], symmetric: bool = False) -> Any:
    v = rng.standard_normal(shape)
    if symmetric:
        v = (v + v.T) / 2
    return float(v) if shape == () else v


@pytest.mark.parametrize(("text", "wrt"), PRODUCT_CASES, ids=[f"{t} | {w}" for t, w in PRODUCT_CASES])
def test_vjp_contracts_the_jacobian_with_the_cotangent(text: str, wrt: str) -> None:
    p = Problem(Rule(text, (wrt,), {"A": "wellcond"}), wrt)
    jac = p.evaluate(p.derivative(1), p.values, 1)
    rng = np.random.default_rng(7)
    g = _random_like(rng, p.f_value.shape)
    v = mc.vjp(text, wrt, cotangent="g", types=p.types)
    assert isinstance(v, mc.Expression)
    dims = with_wrt_dims(p.dims, tuple(v.shape), p.wrt_shape)
    got = np.asarray(v.evaluate({**p.values, "g": g}, dims=dims), dtype=np.float64)
    expected = np.tensordot(np.asarray(g), jac, axes=p.f_value.ndim)
    assert got.shape == p.wrt_shape
    assert_close(got, expected, lambda: f"vjp of {text} w.r.t. {wrt}: {v}")
    # and against finite differences of <g, f>
    fd = central_difference(lambda vals: np.sum(np.asarray(g) * p.evaluate(p.f, vals)), p.values, wrt, p.symmetric)
    assert_close(got, fd, lambda: f"vjp of {text} w.r.t. {wrt} against finite differences: {v}")


@pytest.mark.parametrize(("text", "wrt"), PRODUCT_CASES, ids=[f"{t} | {w}" for t, w in PRODUCT_CASES])
def test_jvp_contracts_the_jacobian_with_the_tangent(text: str, wrt: str) -> None:
    p = Problem(Rule(text, (wrt,), {"A": "wellcond"}), wrt)
    jac = p.evaluate(p.derivative(1), p.values, 1)
    rng = np.random.default_rng(11)
    V = _random_like(rng, p.wrt_shape, p.symmetric)
    j = mc.jvp(text, wrt, tangent="V", types=p.types)
    got = np.asarray(j.evaluate({**p.values, "V": V}, dims=p.dims), dtype=np.float64)
    expected = np.tensordot(jac, np.asarray(V), axes=len(p.wrt_shape))
    assert got.shape == p.f_value.shape
    assert_close(got, expected, lambda: f"jvp of {text} w.r.t. {wrt}: {j}")
    h = 1e-5
    plus = p.evaluate(p.f, {**p.values, wrt: p.values[wrt] + h * V})
    minus = p.evaluate(p.f, {**p.values, wrt: p.values[wrt] - h * V})
    assert_close(got, (plus - minus) / (2 * h), lambda: f"jvp of {text} w.r.t. {wrt} against finite differences: {j}")


def test_vjp_of_several_variables_matches_each() -> None:
    text = "tanh(W*x + t)"
    p = Problem(Rule(text, ("W", "x", "t")), "W")
    g = np.random.default_rng(3).standard_normal(4)
    parts = mc.vjp(text, ["W", "x", "t"], cotangent="g", types=p.types)
    assert isinstance(parts, tuple) and len(parts) == 3
    for name, part in zip(["W", "x", "t"], parts, strict=True):
        fd = central_difference(lambda vals: g @ p.evaluate(p.f, vals), p.values, name)
        assert_close(part.evaluate({**p.values, "g": g}), fd, lambda n=name, e=part: f"vjp of {text} w.r.t. {n}: {e}")


def test_derivative_of_several_variables_matches_each() -> None:
    text = "0.5*norm2(W*relu(A*x + y) - t)^2"
    names = ["W", "A", "y", "t"]
    p = Problem(Rule(text, tuple(names)), "W")
    parts = mc.derivative(text, names, types=p.types)
    assert isinstance(parts, tuple) and len(parts) == 4
    for name, part in zip(names, parts, strict=True):
        single = mc.derivative(text, name, types=p.types)
        assert isinstance(single, mc.Expression)
        np.testing.assert_allclose(part.evaluate(p.values), single.evaluate(p.values), rtol=1e-12, atol=1e-12)
        fd = central_difference(lambda vals: p.evaluate(p.f, vals), p.values, name)
        assert_close(part.evaluate(p.values), fd, lambda n=name, e=part: f"d({text})/d{n}: {e}")


def test_gradient_jacobian_hessian_agree_with_derivative() -> None:
    p = Problem(Rule("x'*A*x + a*sum(exp(x))", ("x",)), "x")
    grad = p.evaluate(mc.gradient("x'*A*x + a*sum(exp(x))", "x", types=p.types), p.values)
    hess = p.evaluate(mc.hessian("x'*A*x + a*sum(exp(x))", "x", types=p.types), p.values)
    assert_close(grad, p.evaluate(p.derivative(1), p.values), "gradient")
    assert_close(hess, p.evaluate(p.derivative(2), p.values), "hessian")
    assert_close(grad, p.fd_of_f(), "gradient against finite differences")
    q = Problem(Rule("softmax(A*x)", ("A",)), "A")
    jac = q.evaluate(mc.jacobian("softmax(A*x)", "A", types=q.types), q.values)
    assert_close(jac, q.fd_of_f(), "jacobian against finite differences")


# ---------------------------------------------------------------------------- absent variables


ABSENT_CASES = [
    # text, wrt, expected numeric shape (numerator layout, order 1)
    ("sum(x)", "y", (3,)),
    ("x'*A*x", "B", (3, 3)),
    ("x'*A*x", "a", ()),
    ("A*x", "y", (3, 3)),
    ("A*x", "C", (3, 3, 2)),
    ("A*B", "x", (3, 3, 3)),
    ("a*b", "c", ()),
    ("exp(x)", "S", (3, 3, 3)),
    ("C", "a", (3, 2)),
]


@pytest.mark.parametrize(("text", "wrt", "shape"), ABSENT_CASES, ids=[f"{t} | {w}" for t, w, _ in ABSENT_CASES])
@pytest.mark.parametrize("order", [1, 2])
def test_absent_variable_gives_zeros_of_the_right_shape(text: str, wrt: str, shape: tuple, order: int) -> None:
    rule = Rule(text, (wrt,))
    p = Problem(rule, wrt)
    d = p.derivative(order)
    expected = p.expected_shape(order)
    if order == 1:
        assert expected == shape
    got = p.evaluate(d, p.values, order)
    assert got.shape == expected, f"d({text})/d{wrt} = {d}: shape {got.shape}"
    assert np.all(got == 0), f"d({text})/d{wrt} = {d}"
    den = mc.derivative(text, wrt, types=p.types, layout="denominator", order=order)
    assert len(den.shape) == len(expected)


# ---------------------------------------------------------------------------- kinks


def _at(text: str, wrt: str, values: dict[str, Any], order: int = 1, types: dict[str, Any] | None = None) -> np.ndarray:
    d = mc.derivative(text, wrt, types={**TYPES, **(types or {})}, order=order)
    return np.asarray(d.evaluate(values), dtype=np.float64)


def test_relu_derivative_at_zero_is_zero() -> None:
    x = np.array([0.0, 1.5, -2.0])
    np.testing.assert_array_equal(_at("relu(x)", "x", {"x": x}), np.diag([0.0, 1.0, 0.0]))
    assert _at("relu(a)", "a", {"a": 0.0}) == 0.0
    assert _at("relu(a)", "a", {"a": 0.0}, order=2) == 0.0
    np.testing.assert_array_equal(_at("sum(relu(x))", "x", {"x": x}), [0.0, 1.0, 0.0])
    # the example: relu(w'*x + b) w.r.t. b is the indicator w'*x + b > 0
    w, xv = np.array([1.0, 2.0, 0.0]), np.array([1.0, -0.5, 3.0])
    assert _at("relu(w'*x + b)", "b", {"w": w, "x": xv, "b": 0.0}, types={"b": "scalar"}) == 0.0
    np.testing.assert_array_equal(
        _at("relu(w'*x + b)", "w", {"w": w, "x": xv, "b": 0.0}, types={"b": "scalar"}), np.zeros(3)
    )


def test_abs_derivative_at_zero_is_zero() -> None:
    x = np.array([0.0, 1.5, -2.0])
    np.testing.assert_array_equal(_at("abs(x)", "x", {"x": x}), np.diag([0.0, 1.0, -1.0]))
    assert _at("abs(a)", "a", {"a": 0.0}) == 0.0
    assert _at("abs(a)", "a", {"a": 0.0}, order=2) == 0.0
    np.testing.assert_array_equal(_at("norm1(x)", "x", {"x": x}), [0.0, 1.0, -1.0])
    C = np.array([[0.0, 1.0], [-1.0, 0.0], [2.0, 0.0]])
    np.testing.assert_array_equal(_at("norm1(C)", "C", {"C": C}), np.sign(C))


def test_sign_derivative_is_zero_everywhere() -> None:
    x = np.array([0.0, 1.5, -2.0])
    np.testing.assert_array_equal(_at("sign(x)", "x", {"x": x}), np.zeros((3, 3)))
    assert _at("sign(a)", "a", {"a": 0.0}) == 0.0
    assert _at("sign(a)", "a", {"a": 0.0}, order=2) == 0.0
    np.testing.assert_array_equal(_at("sum(sign(x))", "x", {"x": x}), np.zeros(3))
    # abs'' = sign' = 0, at 0 too
    np.testing.assert_array_equal(_at("sum(abs(x))", "x", {"x": x}, order=2), np.zeros((3, 3)))


def test_comparison_derivative_is_zero_at_ties() -> None:
    x = np.array([0.0, 1.0, -1.0])
    np.testing.assert_array_equal(_at("x > y", "x", {"x": x, "y": x.copy()}), np.zeros((3, 3)))
    np.testing.assert_array_equal(_at("(x > 0) .* x", "x", {"x": x}), np.diag([0.0, 1.0, 0.0]))


# ---------------------------------------------------------------------------- evaluation of results


def test_a_derivative_evaluates_from_the_functions_values_alone() -> None:
    """``d.evaluate(values)`` with the values of the function's variables, no ``dims=`` needed."""
    rng = np.random.default_rng(0)
    values = {"A": rng.standard_normal((4, 3)), "x": rng.standard_normal(3)}
    d = mc.derivative("A*x", "A")
    got = np.asarray(d.evaluate(values))
    fd = central_difference(lambda v: mc.parse("A*x").evaluate(v), values, "A")
    assert_close(got, fd, lambda: f"d(A*x)/dA = {d}")
