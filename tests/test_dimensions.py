"""Values that are dimensions (``sum(x)/n``, ``mean``) and product dimensions (``kron``).

Checked against independent references: NumPy (``np.kron``, ``np.mean``, ``np.var``,
``np.reshape``) for values, and central differences of those NumPy functions, in float64, for
first derivatives; second derivatives against central differences of the (checked) first
derivative. Compiled code must equal the interpreter. The finite-difference helper here is
independent of the library's own checking code.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.evaluate import evaluate
from matrixcalculus.transform.differentiation import pullback

H = 1e-5


def central_difference(fn: Callable[[dict[str, Any]], Any], values: Mapping[str, Any], wrt: str) -> np.ndarray:
    """``d fn / d values[wrt]`` by central differences: shape ``fn(values).shape + wrt.shape``."""
    x0 = np.asarray(values[wrt], dtype=np.float64)
    columns = []
    for idx in np.ndindex(*x0.shape):
        step = np.zeros(x0.shape)
        step[idx] = H
        hi = np.asarray(fn({**values, wrt: x0 + step}), dtype=np.float64)
        lo = np.asarray(fn({**values, wrt: x0 - step}), dtype=np.float64)
        columns.append((hi - lo) / (2 * H))
    stacked = np.stack(columns, axis=-1)
    return stacked.reshape(stacked.shape[:-1] + x0.shape)


def assert_close(actual: Any, expected: Any, what: str, rtol: float = 1e-6) -> None:
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    atol = 1e-6 * max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)


RNG = np.random.default_rng(20240610)
# Distinct sizes (m, n, p, q = 2, 3, 4, 5) so that a transposed or swapped axis cannot pass.
KRON_VALUES = {
    "A": RNG.standard_normal((2, 3)),
    "B": RNG.standard_normal((4, 5)),
    "C": RNG.standard_normal((15, 8)),
    "x": RNG.standard_normal(15),
    "u": RNG.standard_normal(3),
    "v": RNG.standard_normal(4),
}
KRON_CASES: list[tuple[str, Callable[[dict[str, Any]], Any], tuple[str, ...]]] = [
    ("tr(kron(A, B)*C)", lambda v: np.trace(np.kron(v["A"], v["B"]) @ v["C"]), ("A", "B", "C")),
    ("norm2(kron(A, B)*x)^2", lambda v: np.sum((np.kron(v["A"], v["B"]) @ v["x"]) ** 2), ("A", "B", "x")),
    ("sum(kron(u, v))", lambda v: np.sum(np.kron(v["u"], v["v"])), ("u", "v")),
]


def _values(expr: mc.Expression) -> dict[str, np.ndarray]:
    return {name: KRON_VALUES[name] for name in expr.variables}


# ------------------------------------------------------------------------------ kron


@pytest.mark.parametrize(("text", "reference", "wrts"), KRON_CASES, ids=[c[0] for c in KRON_CASES])
def test_kron_value_and_derivatives_against_numpy(
    text: str, reference: Callable[[dict[str, Any]], Any], wrts: tuple[str, ...]
) -> None:
    expr = mc.parse(text)
    values = _values(expr)
    assert_close(expr.evaluate(values), reference(values), f"value of {text}")
    for w in wrts:
        first = mc.derivative(expr, w)
        numeric = central_difference(reference, values, w)
        assert_close(first.evaluate(values), numeric, f"d/d{w} of {text}: {first}")

        def first_value(vals: dict[str, Any], first: mc.Expression = first) -> Any:
            return first.evaluate(vals)

        for w2 in wrts:
            # Order 2, also mixed: the derivative of the (checked) first derivative.
            second = mc.derivative(first, w2)
            assert_close(
                second.evaluate(values),
                central_difference(first_value, values, w2),
                f"d2/d{w}d{w2} of {text}",
                rtol=1e-5,
            )
        same = mc.derivative(expr, w, order=2)
        assert_close(same.evaluate(values), central_difference(first_value, values, w), f"order 2 in {w} of {text}")


BACKENDS = ["numpy", "dask"] + [name for name in ("torch", "jax") if importlib.util.find_spec(name) is not None]


@pytest.fixture(autouse=True)
def _jax_in_float64() -> None:
    """The comparisons are in float64: jax computes in float32 unless told otherwise."""
    if "jax" in BACKENDS:
        import jax

        jax.config.update("jax_enable_x64", True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("text", "reference", "wrts"), KRON_CASES, ids=[c[0] for c in KRON_CASES])
def test_kron_compiled_equals_evaluated(
    text: str, reference: Callable[[dict[str, Any]], Any], wrts: tuple[str, ...], backend: str
) -> None:
    expr = mc.parse(text)
    values = _values(expr)
    compiled = mc.compile(expr, list(wrts), ["value", "gradient", "hessian"], backend=backend, dense=True)
    inputs: dict[str, Any] = values
    if backend == "torch":
        import torch

        inputs = {k: torch.tensor(v) for k, v in values.items()}
    if backend == "dask":
        import dask.array as da

        inputs = {k: da.from_array(v) for k, v in values.items()}
    value, gradients, hessians = compiled(inputs)
    if backend == "dask":
        import dask

        value, gradients, hessians = dask.compute(value, gradients, hessians)
    assert_close(np.asarray(value), expr.evaluate(values), f"{backend} value of {text}")
    for w, grad, hess in zip(wrts, gradients, hessians, strict=True):
        assert_close(np.asarray(grad), mc.derivative(expr, w).evaluate(values), f"{backend} d/d{w} of {text}")
        expected = mc.derivative(expr, w, order=2).evaluate(values)
        assert_close(np.asarray(hess), expected, f"{backend} d2/d{w}2 of {text}")


def test_kron_shape_is_a_product_of_dimensions() -> None:
    expr = mc.parse("kron(A, B)", types={"A": ("m", "n"), "B": ("p", "q")})
    mp, _ = expr.shape
    assert mp == g.dim_product("m", "p") == g.dim_product("p", "m")
    assert hash(mp) == hash(g.dim_product("p", "m"))
    assert g.shape_text(expr.shape) == "(m*p) x (n*q)"
    assert expr.latex() == r"A \otimes B"
    # Whole numbers multiply out: a kron of 2 x 3 and 4 x 5 is 8 x 15.
    fixed = mc.parse("kron(A, B)", types={"A": (2, 3), "B": (4, 5)})
    assert fixed.shape == (8, 15)


def test_product_dimension_normal_form() -> None:
    assert g.dim_product("n") == "n"
    assert g.dim_product(2, 3) == 6
    assert g.dim_product() == 1
    assert g.dim_product(g.dim_product("q", 2), "m") == g.DimProduct(("m", "q"), 2)
    assert str(g.dim_product("q", 2, "m")) == "2*m*q"
    assert g.dim_size(g.dim_product("m", "p", 2), {"m": 3, "p": 5}.__getitem__) == 30


def test_kron_unifies_products_with_other_dimensions() -> None:
    # C takes kron's shape; its rows are m*p, so its value is checked against A's and B's sizes.
    expr = mc.parse("tr(kron(A, B)*C)", types={"A": ("m", "n"), "B": ("p", "q")})
    assert expr.variables["C"].shape == (g.dim_product("n", "q"), g.dim_product("m", "p"))
    values = {"A": np.ones((2, 3)), "B": np.ones((4, 5)), "C": np.ones((15, 7))}
    with pytest.raises(mc.EvaluationError, match=r"number of columns of C must be m\*p = 8, but the value given has 7"):
        expr.evaluate(values)
    # Two krons of undeclared factors: the factors unify one by one.
    both = mc.parse("kron(A, B) + kron(C, D)")
    a, b, c, d = (both.variables[k].shape for k in "ABCD")
    assert (a, b) == (c, d)
    # A number that equals the product once the factors are known.
    sized = mc.parse("kron(A, B)*x", types={"A": (2, 3), "B": (4, 5), "x": (15,)})
    assert sized.shape == (8,)


@pytest.mark.parametrize(
    ("text", "types", "message"),
    [
        ("kron(A, B)*x", {"A": (2, 3), "B": (4, 5), "x": (14,)}, "kron"),
        ("kron(A, B) + C", {"A": ("m", "n"), "B": ("p", "q"), "C": ("k", "l")}, "cannot add|shape"),
        ("kron(A, a)", {"A": "matrix", "a": "scalar"}, "kron at column 1 needs two matrices or vectors"),
        ("kron(A, B) + A", None, "kron\\(A, B\\) is a \\(\\?\\*\\?\\)x\\(\\?\\*\\?\\) matrix but A is a matrix"),
        ("kron(A)", None, "kron takes 2 arguments, not 1"),
    ],
)
def test_kron_errors(text: str, types: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(MatrixCalculusError, match=message):
        mc.parse(text, types=types)


def test_reshape_node_evaluates_and_differentiates_like_numpy() -> None:
    X = g.var("X", "matrix", (g.dim_product("m", "p"), "n"))
    value = RNG.standard_normal((6, 5))
    split = g.reshape(X, ("m", "p", "n"))
    assert_close(evaluate(split, {"X": value}, {"m": 2, "p": 3}), value.reshape(2, 3, 5), "reshape")
    assert g.reshape(split, X.shape) is X  # a reshape of a reshape is one reshape
    with pytest.raises(mc.ShapeError, match="not as many entries"):
        g.reshape(X, ("m", "n"))
    # f(X) = <reshape(X, m x (p*n)), W>: its gradient, by the VJP, against central differences.
    W = g.var("W", "matrix", ("m", g.dim_product("p", "n")))
    weights = RNG.standard_normal((2, 15))
    f = g.contract([g.reshape(X, ("m", g.dim_product("p", "n"))), W], [(0, 1), (0, 1)], ())
    (grad,) = pullback(f, [X], g.const(1), 0)
    values = {"X": value, "W": weights}
    numeric = central_difference(lambda v: np.sum(v["X"].reshape(2, 15) * v["W"]), values, "X")
    assert_close(evaluate(grad, values, {"m": 2, "p": 3}), numeric, "VJP of reshape")


# ------------------------------------------------------------------------------ values that are dimensions


def test_a_named_dimension_used_as_a_value_is_its_size() -> None:
    x = RNG.standard_normal(5)
    declared = mc.parse("sum(x)/n", types={"x": ("n",)})
    assert isinstance(declared.node, g.Contract) and any(isinstance(a, g.Power) for a in declared.node.args)
    assert declared.evaluate({"x": x}) == pytest.approx(np.mean(x))
    assert str(declared) == "sum(x)/n"
    assert declared.latex() == r"\frac{\operatorname{sum}\left(x\right)}{n}"
    # eye(n) names n too; the value n is then the size of x (read off eye(n)'s use with x).
    quadratic = mc.parse("x'*eye(n)*x/n")
    assert quadratic.evaluate({"x": x}) == pytest.approx(np.dot(x, x) / 5)
    assert set(quadratic.variables) == {"x"}
    # A name declared a variable stays a variable, also when it names a dimension.
    variable = mc.parse("sum(x)/n", types={"x": ("n",), "n": "scalar"})
    assert set(variable.variables) == {"x", "n"}
    assert variable.evaluate({"x": x, "n": 2.0}) == pytest.approx(np.sum(x) / 2)
    # Without a named dimension n, n is a variable as ever.
    assert set(mc.parse("sum(x)/n").variables) == {"x", "n"}


def test_dimension_value_has_derivative_zero_and_stays_symbolic() -> None:
    d = mc.derivative("sum(x)/n", "x", types={"x": ("n",)})
    assert str(d) == "ones(n)/n"
    assert_close(d.evaluate({"x": np.ones(4)}), np.full(4, 0.25), "d(sum(x)/n)/dx")
    # The size of a dimension no value fixes is asked for by name.
    with pytest.raises(mc.EvaluationError, match="size of dimension n is unknown"):
        evaluate(g.size_of("n"), {})
    assert evaluate(g.size_of("n"), {}, {"n": 7}) == 7.0
    assert g.size_of(3) is g.const(3)


MEAN_CASES: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("mean(x)", lambda v: np.mean(v["x"])),
    ("mean(X)", lambda v: np.mean(v["X"])),
    ("mean(A*x)", lambda v: np.mean(v["A"] @ v["x"])),
    ("sum((x - mean(x)).^2)/n", lambda v: np.var(v["x"])),
    ("mean(exp(x))*mean(x)", lambda v: np.mean(np.exp(v["x"])) * np.mean(v["x"])),
]
MEAN_VALUES = {"x": RNG.standard_normal(5), "X": RNG.standard_normal((3, 4)), "A": RNG.standard_normal((3, 5))}


@pytest.mark.parametrize(("text", "reference"), MEAN_CASES, ids=[c[0] for c in MEAN_CASES])
def test_mean_and_variance_against_numpy(text: str, reference: Callable[[dict[str, Any]], Any]) -> None:
    expr = mc.parse(text, types={"x": ("n",)})
    values = {name: MEAN_VALUES[name] for name in expr.variables}
    assert_close(expr.evaluate(values), reference(values), f"value of {text}")
    for w in expr.variables:
        first = mc.derivative(expr, w)
        assert_close(first.evaluate(values), central_difference(reference, values, w), f"d/d{w} of {text}: {first}")

        def first_value(vals: dict[str, Any], first: mc.Expression = first) -> Any:
            return first.evaluate(vals)

        second = mc.derivative(expr, w, order=2)
        assert_close(
            second.evaluate(values), central_difference(first_value, values, w), f"d2/d{w}2 of {text}", rtol=1e-5
        )
    for backend in BACKENDS[:1] + BACKENDS[2:]:
        wrts = list(expr.variables)
        compiled = mc.compile(expr, wrts, ["value", "gradient", "hessian"], backend=backend, dense=True)
        inputs: dict[str, Any] = values
        if backend == "torch":
            import torch

            inputs = {k: torch.tensor(v) for k, v in values.items()}
        value, gradients, hessians = compiled(inputs)
        if len(wrts) == 1:
            gradients, hessians = (gradients,), (hessians,)
        assert_close(np.asarray(value), expr.evaluate(values), f"{backend} value of {text}")
        for w, grad, hess in zip(wrts, gradients, hessians, strict=True):
            assert_close(np.asarray(grad), mc.derivative(expr, w).evaluate(values), f"{backend} d/d{w} of {text}")
            assert_close(np.asarray(hess), mc.derivative(expr, w, order=2).evaluate(values), f"{backend} d2/d{w}2")


def test_mean_prints_and_its_gradient_is_ones_over_n() -> None:
    expr = mc.parse("mean(x)")
    assert str(expr) == "mean(x)"
    assert expr.latex() == r"\operatorname{mean}\left(x\right)"
    grad = mc.derivative(expr, "x")
    assert str(grad) == "ones(n)/n"
    assert_close(grad.evaluate({"x": np.arange(4.0)}), np.full(4, 0.25), "gradient of mean")
    matrix = mc.derivative("mean(X)", "X")
    assert_close(matrix.evaluate({"X": np.ones((2, 3))}), np.full((2, 3), 1 / 6), "gradient of mean(X)")
    # The compiled code reads n off x's shape; no dialect spells mean (it is sum(x)/n).
    source = mc.codegen("mean(x)", "x", ["value", "gradient"])
    assert "x.shape[0]" in source and "mean" not in source


# ------------------------------------------------------------------------------ printing round trips


ROUND_TRIPS = [
    "tr(kron(A, B)*C)",
    "norm2(kron(A, B)*x)^2",
    "sum(kron(u, v))",
    "kron(A, B)' + kron(A', B')",
    "kron(A + A, B)*x/2",
    "sum((x - mean(x)).^2)/n",
    "mean(A*x) + sum(x)/n",
    "ones(n*q)'*kron(A, B)*x",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_printed_text_parses_back_to_an_equal_value(text: str) -> None:
    types = {"x": ("n",)} if "mean" in text or "/n" in text else None
    expr = mc.parse(text, types=types)
    values = {name: _round_trip_value(expr, name) for name in expr.variables}
    declared: dict[str, Any] = {name: v.shape for name, v in expr.variables.items()}
    printed = str(expr)
    again = mc.parse(printed, types={k: v for k, v in declared.items() if all(isinstance(d, str | int) for d in v)})
    assert_close(again.evaluate(values), expr.evaluate(values), f"{text} printed as {printed}")


def _round_trip_value(expr: mc.Expression, name: str) -> np.ndarray:
    sizes = {"m": 2, "n": 3, "p": 4, "q": 5}
    shape = tuple(g.dim_size(d, sizes.__getitem__) for d in expr.variables[name].shape)
    return np.random.default_rng(len(name) + sum(shape)).standard_normal(shape)


def test_index_notation_indexes_product_dimensions_by_pairs() -> None:
    # d tr(kron(A, B)*C)/dA[i,j] = sum_kl C'[(i,k),(j,l)] B[k,l]: the cotangent C' split by pairs.
    assert str(mc.derivative("tr(kron(A, B)*C)", "A")) == "sum_kl C[(j,l),(i,k)]*B[k,l]"
    # A second derivative merges and splits again: pair indices, never a bare reshape.
    hessian = mc.derivative("norm2(kron(A, B)*x)^2", "A", order=2)
    assert "reshape" not in str(hessian) and "(c,d)" in str(hessian)
