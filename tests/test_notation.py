"""The notation the tutorials and their readers write (issue 11): ``x^T`` and ``x.'``, ``max``/``min``,
``trace``, ``transpose``, ``norm(x, p)``, ``dot``, ``pi``.

Expected values come from the mathematics: NumPy computes each function directly, and
derivatives are compared with central finite differences of those NumPy values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

RNG = np.random.default_rng(11)


def _same(a: str, b: str, types: dict[str, Any] | None = None) -> bool:
    """Do the two texts build one node (the graph is interned)?"""
    return mc.parse(a, types=types).node is mc.parse(b, types=types).node


def _fd(f: Callable[[dict[str, Any]], Any], values: dict[str, Any], wrt: str, h: float = 1e-6) -> np.ndarray:
    """d f / d wrt by central differences, axes of f then axes of wrt."""
    x = np.asarray(values[wrt], dtype=float)
    columns = []
    for i in np.ndindex(x.shape or (1,)):
        step = np.zeros(x.shape)
        step[i if x.shape else ()] = h
        columns.append((np.asarray(f({**values, wrt: x + step})) - np.asarray(f({**values, wrt: x - step}))) / (2 * h))
    out = np.stack(columns, axis=-1)
    return out.reshape(out.shape[:-1] + x.shape)


def _apart(n: int, gap: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Two random vectors whose entries differ by more than ``gap`` everywhere (away from ties)."""
    x = RNG.standard_normal(n)
    y = x + RNG.choice([-1.0, 1.0], n) * RNG.uniform(gap, 1.5, n)
    return x, y


# ------------------------------------------------------------------------ transposes


def test_hat_t_and_dot_quote_are_transposes() -> None:
    assert _same("x^T*A*x", "x'*A*x")
    assert _same("x.'*y", "x'*y")
    assert _same("(A*B)^T", "(A*B)'")
    assert _same("A.'*B.'", "A'*B'")
    assert str(mc.parse("x^T*y")) == "x'*y"
    assert str(mc.parse("A.'")) == "A'"


def test_a_gradient_written_with_hat_t() -> None:
    # d(x'Ax)/dx = (A + A')x
    A, x = RNG.standard_normal((4, 4)), RNG.standard_normal(4)
    got = mc.derivative("x^T*A*x", "x").evaluate({"A": A, "x": x})
    np.testing.assert_allclose(got, (A + A.T) @ x, rtol=1e-12)


def test_hat_t_is_a_power_when_t_is_declared() -> None:
    expr = mc.parse("x^T", types={"x": "scalar", "T": "scalar"})
    assert str(expr) == "x^T"
    assert float(expr.evaluate({"x": 2.0, "T": 3.0})) == 8.0


def test_a_bound_t_is_its_value() -> None:
    # A where-bound T is the expression it names: x^T is then a power of the scalar x.
    expr = mc.parse("x^T where T = 2", types={"x": "scalar"})
    assert float(expr.evaluate({"x": 3.0})) == 9.0


# ------------------------------------------------------------------------ max and min


def test_the_neuron_max_0_is_relu() -> None:
    types = {"b": "scalar"}
    assert _same("max(0, w'*x + b)", "relu(w'*x + b)", types)
    assert _same("max(w'*x + b, 0)", "relu(w'*x + b)", types)
    assert _same("max(0, A*x)", "relu(A*x)")
    first = mc.derivative("max(0, w'*x + b)", "w", types=types)
    assert first.node is mc.derivative("relu(w'*x + b)", "w", types=types).node
    # d relu(w'x + b)/dw = [w'x + b > 0] x
    w, x = RNG.standard_normal(5), RNG.standard_normal(5)
    for b in (abs(w @ x) + 1, -abs(w @ x) - 1):
        want = x if w @ x + b > 0 else 0 * x
        np.testing.assert_allclose(first.evaluate({"w": w, "x": x, "b": b}), want, atol=1e-15)


def test_max_and_min_print_as_written() -> None:
    assert str(mc.parse("max(x, y)")) == "max(x, y)"
    assert str(mc.parse("min(x, 2*y)")) == "min(x, 2*y)"
    assert mc.parse("max(x, y)").latex() == r"\max\left(x, y\right)"
    assert _same(str(mc.parse("min(x, 2*y)")), "min(x, 2*y)")


def test_max_of_two_vectors_against_finite_differences() -> None:
    x, y = _apart(6)
    values = {"x": x, "y": y}
    np.testing.assert_array_equal(mc.parse("max(x, y)").evaluate(values), np.maximum(x, y))
    for wrt in ("x", "y"):
        got = mc.derivative("max(x, y)", wrt).evaluate(values)
        want = _fd(lambda v: np.maximum(v["x"], v["y"]), values, wrt)
        np.testing.assert_allclose(got, want, atol=1e-8)
    # The indicator of the larger argument: d max(x, y)/dx = diag(x > y).
    np.testing.assert_array_equal(mc.derivative("max(x, y)", "x").evaluate(values), np.diag(1.0 * (x > y)))


def test_min_with_a_scaled_argument_against_finite_differences() -> None:
    x, y2 = _apart(5)
    values = {"x": x, "y": y2 / 2}
    np.testing.assert_array_equal(mc.parse("min(x, 2*y)").evaluate(values), np.minimum(x, y2))
    for wrt in ("x", "y"):
        got = mc.derivative("sum(min(x, 2*y))", wrt).evaluate(values)
        want = _fd(lambda v: np.sum(np.minimum(v["x"], 2 * v["y"])), values, wrt)
        np.testing.assert_allclose(got, want, atol=1e-8)
    # d sum(min(x, 2y))/dy = 2 where 2y is the smaller
    np.testing.assert_allclose(mc.derivative("sum(min(x, 2*y))", "y").evaluate(values), 2.0 * (y2 < x))


def test_max_0_of_a_matrix_product_against_finite_differences() -> None:
    A = RNG.standard_normal((4, 3))
    x = RNG.standard_normal(3)
    while np.min(np.abs(A @ x)) < 0.2:  # away from the kink
        x = RNG.standard_normal(3)
    values = {"A": A, "x": x}
    np.testing.assert_allclose(mc.parse("max(0, A*x)").evaluate(values), np.maximum(A @ x, 0), rtol=1e-15)
    for wrt in ("A", "x"):
        got = mc.derivative("max(0, A*x)", wrt).evaluate(values)
        want = _fd(lambda v: np.maximum(0, v["A"] @ v["x"]), values, wrt)
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_a_scalar_argument_is_repeated_over_the_other() -> None:
    types = {"a": "scalar"}
    x = np.array([-1.0, 0.5, 2.0, 3.0])
    values = {"a": 1.0, "x": x}
    assert mc.parse("max(a, x)", types=types).shape == mc.parse("x").shape
    np.testing.assert_array_equal(mc.parse("max(a, x)", types=types).evaluate(values), [1.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(mc.parse("min(x, a)", types=types).evaluate(values), [-1.0, 0.5, 1.0, 1.0])
    # d max(a, x)/da: 1 where a is the larger entry; d sum(max(a, x))/da counts them.
    np.testing.assert_array_equal(mc.derivative("max(a, x)", "a", types=types).evaluate(values), [1, 1, 0, 0])
    assert float(mc.derivative("sum(max(a, x))", "a", types=types).evaluate(values)) == 2.0


def test_ties_go_to_the_first_argument_unless_the_second_is_a_constant() -> None:
    # docs/conventions.md, "Kinks": at a tie the first argument takes the derivative; a constant
    # argument takes it wherever it stands, so max(z, 0) = max(0, z) = relu(z) has derivative 0 at 0.
    v = {"x": np.array([1.0, -2.0]), "y": np.array([1.0, -2.0])}
    np.testing.assert_array_equal(mc.derivative("sum(max(x, y))", "x").evaluate(v), [1, 1])
    np.testing.assert_array_equal(mc.derivative("sum(max(x, y))", "y").evaluate(v), [0, 0])
    np.testing.assert_array_equal(mc.derivative("sum(min(x, y))", "x").evaluate(v), [1, 1])
    np.testing.assert_array_equal(mc.derivative("sum(min(x, y))", "y").evaluate(v), [0, 0])
    z = {"z": np.array([0.0, 1.0, -1.0])}
    for text in ("max(z, 0)", "max(0, z)", "min(z, 0)", "min(0, z)"):
        got = mc.derivative(f"sum({text})", "z").evaluate(z)
        want = [0, 1, 0] if text.startswith("max") else [0, 0, 1]
        np.testing.assert_array_equal(got, want, err_msg=text)
    got = mc.derivative("sum(max(z, 2))", "z").evaluate({"z": np.array([2.0, 3.0])})
    np.testing.assert_array_equal(got, [0, 1])


def test_max_of_two_shapes_is_refused() -> None:
    with pytest.raises(mc.MatrixCalculusError, match=r"max at column 1 needs arguments of one shape"):
        mc.parse("max(x, A)", types={"x": (3,), "A": (4, 5)})
    with pytest.raises(mc.MatrixCalculusError, match="transpose one of them"):
        mc.parse("min(x, y')", types={"x": "vector", "y": "vector"})


def test_max_compiles() -> None:
    x, y = _apart(5)
    fn = mc.compile("sum(max(x, y) + min(0, x))", wrt=["x", "y"])
    value, (gx, gy) = fn({"x": x, "y": y})
    assert value == pytest.approx(np.sum(np.maximum(x, y) + np.minimum(0, x)), rel=1e-14)
    np.testing.assert_array_equal(gx, 1.0 * (x > y) + 1.0 * (x < 0))
    np.testing.assert_array_equal(gy, 1.0 * (y > x))


# ------------------------------------------------------------------------ aliases


def test_other_names_are_ours() -> None:
    assert _same("trace(A*B)", "tr(A*B)")
    assert _same("transpose(X)*y", "X'*y")
    assert _same("norm(x)", "norm2(x)")
    assert _same("norm(x, 2)", "norm2(x)")
    assert _same("norm(x, 1)", "norm1(x)")
    assert _same("norm(X, 'fro')", "norm2(X)")
    assert _same('norm(X, "fro")', "norm2(X)")
    assert _same("dot(x, y)", "x'*y")


def test_alias_values() -> None:
    X, x, y = RNG.standard_normal((3, 4)), RNG.standard_normal(4), RNG.standard_normal(4)
    assert float(mc.parse("norm(X, 'fro')").evaluate({"X": X})) == pytest.approx(np.linalg.norm(X, "fro"))
    assert float(mc.parse("norm(x, 1)").evaluate({"x": x})) == pytest.approx(np.linalg.norm(x, 1))
    assert float(mc.parse("dot(x, y)").evaluate({"x": x, "y": y})) == pytest.approx(np.dot(x, y))
    assert float(mc.parse("mean(X)").evaluate({"X": X})) == pytest.approx(np.mean(X))
    # d norm(x)/dx = x/||x||
    np.testing.assert_allclose(mc.derivative("norm(x)", "x").evaluate({"x": x}), x / np.linalg.norm(x))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("norm(x, 3)", r"norm's second argument is 1, 2 or 'fro', not 3 \(column 9\)"),
        ("norm(X, 'nuc')", r"norm's second argument is 1, 2 or 'fro', not 'nuc'"),
        ("norm('fro')", "norm takes no quoted argument"),
        ("exp('fro')", r"exp takes no quoted argument such as 'fro' \(column 5\)"),
        ("x + 'fro'", "unexpected quoted text 'fro' at column 5; a quoted argument is norm's 'fro' only"),
        ('"x"', 'unexpected quoted text "x" at column 1'),
        ("trace(A, B)", "trace takes 1 argument, not 2"),
        ("dot(x)", "dot takes 2 arguments, not 1"),
        ("tranpose(A)", "did you mean 'transpose'"),
    ],
)
def test_alias_errors(text: str, message: str) -> None:
    with pytest.raises(mc.ParseError, match=message):
        mc.parse(text)


# ------------------------------------------------------------------------ pi


def test_pi_is_the_constant() -> None:
    x = np.array([0.5, 1.0, 0.25])
    np.testing.assert_allclose(mc.parse("sin(pi*x)").evaluate({"x": x}), np.sin(math.pi * x), rtol=1e-15)
    # d sum(sin(pi x))/dx = pi cos(pi x)
    got = mc.derivative("sum(sin(pi*x))", "x")
    np.testing.assert_allclose(got.evaluate({"x": x}), math.pi * np.cos(math.pi * x), rtol=1e-14)
    assert str(got) == "pi*cos(pi*x)"
    assert float(mc.parse("pi").evaluate({})) == math.pi


@pytest.mark.parametrize(
    ("text", "printed", "latex"),
    [
        ("pi", "pi", r"\pi"),
        ("2*pi*x", "2*pi*x", r"2 \pi x"),
        ("pi/2", "pi/2", r"\frac{\pi}{2}"),
        ("-3*pi/4", "-3*pi/4", r"-\frac{3 \pi}{4}"),
    ],
)
def test_pi_prints_as_pi(text: str, printed: str, latex: str) -> None:
    expr = mc.parse(text)
    assert str(expr) == printed
    assert expr.latex() == latex
    assert mc.parse(printed).node is expr.node


def test_a_declared_pi_is_a_variable() -> None:
    expr = mc.parse("pi*x", types={"pi": "scalar"})
    assert "pi" in expr.variables
    np.testing.assert_allclose(expr.evaluate({"pi": 2.0, "x": np.array([1.0, 3.0])}), [2.0, 6.0])


def test_a_typed_decimal_is_not_pi() -> None:
    assert str(mc.parse("3.14159*x")) == "3.14159*x"
