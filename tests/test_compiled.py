"""Compiled derivatives: the generated code computes what the interpreter computes, and does it
the fast way (each property of the issue's list is checked on the generated source)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.structured import Factored
from matrixcalculus.numeric.check import random_values

from .conftest import require

CASES = [
    # (function, wrt, types)
    ("x'*A*x", "x", None),
    ("x'*S*x", "S", {"S": "symmetric matrix"}),
    ("sum(log(1 + exp(-y .* (X*w))))", "w", None),
    ("norm2(T - U*V')^2", "U", None),
    ("0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "W1", None),
    ("0.5*norm2(A*x - b)^2", "x", None),
    ("logdet(X) + tr(A*X)", "X", None),
    ("det(X)", "X", None),
    ("tr(inv(X)*A)", "X", None),
    ("logsumexp(W*x) - y'*W*x", "W", None),
    ("sigmoid(w'*x) + softplus(a'*x)", "x", None),
    ("norm2(x - a)", "x", None),
    ("a'*sin(X)*b + sum(exp(X))", "X", None),
    ("x'*diag(s)*x + sum(x.^3)", "x", None),
    ("tr(X*X*X*X)", "X", None),
    ("(x'*x)^0.5 + x'*y/2", "x", None),
    ("norm1(x) + softmax(x)'*y", "x", None),
    ("X*X", "X", None),
    ("A*x", "A", None),
]


def _values(expr: mc.Expression, n: int = 4) -> dict:
    values = random_values(expr.node_variables(), size=n, seed=3)
    for name in ("y",):
        if name in values and values[name].ndim == 1:
            values[name] = np.sign(values[name]) + (values[name] == 0)
    return values


def _reference(f: str, wrt: str, types: dict | None, values: dict, kinds: tuple[str, ...]) -> list:
    expr = mc.parse(f, types=types)
    out = []
    for kind in kinds:
        if kind == "value":
            out.append(expr.evaluate(values))
        else:
            d = mc.derivative(expr, wrt, order=2 if kind == "hessian" else 1)
            out.append(d.evaluate(values))
    return out


@pytest.mark.parametrize(("f", "wrt", "types"), CASES)
def test_numpy_compiled_equals_interpreted(f: str, wrt: str, types: dict | None) -> None:
    expr = mc.parse(f, types=types)
    kinds = ("value", "gradient") + (("hessian",) if not expr.shape else ())
    values = _values(expr)
    fn = mc.compile(f, wrt=wrt, derivatives=kinds, types=types)
    got = fn(values)
    want = _reference(f, wrt, types, values, kinds)
    assert len(got) == len(kinds)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float), rtol=1e-10, atol=1e-10)


def test_several_wrt_give_tuples() -> None:
    loss = "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2"
    fn = mc.compile(loss, wrt=["W1", "b1", "W2", "b2"], derivatives=("value", "gradient"))
    expr = mc.parse(loss)
    values = _values(expr)
    _value, grads = fn(values)
    assert isinstance(grads, tuple) and len(grads) == 4
    for name, grad in zip(["W1", "b1", "W2", "b2"], grads, strict=True):
        np.testing.assert_allclose(grad, mc.gradient(loss, name).evaluate(values), rtol=1e-12)


def _statements(source: str) -> list[str]:
    return [line.split("=", 1)[1].strip() for line in source.splitlines() if re.match(r"\s+t\d+ = ", line)]


@pytest.mark.parametrize(("f", "wrt", "types"), CASES)
def test_common_subexpressions_are_computed_once(f: str, wrt: str, types: dict | None) -> None:
    expr = mc.parse(f, types=types)
    kinds = ("value", "gradient") + (("hessian",) if not expr.shape else ())
    source = mc.codegen(f, wrt, kinds, types=types)
    statements = _statements(source)
    assert len(statements) == len(set(statements)), source


def test_standalone_source_needs_only_numpy() -> None:
    source = mc.codegen("sum(log(1 + exp(-y .* (X*w))))", "w", ("value", "gradient", "hessian"))
    assert "matrixcalculus" not in source
    namespace: dict = {}
    exec(source, namespace)  # the generated code, as a user would paste it
    X = np.random.default_rng(0).standard_normal((8, 4))
    y = np.sign(np.random.default_rng(1).standard_normal(8))
    w = np.random.default_rng(2).standard_normal(4)
    value, _grad, _hess = namespace["derivatives"](y, X, w)
    assert np.isclose(value, np.sum(np.logaddexp(0, -y * (X @ w))))


def test_logistic_regression_is_blas_and_broadcasting_without_einsum() -> None:
    # X'*diag(s)*X with s = sigmoid*(1 - sigmoid) >= 0 runs as B.T @ B, B = X * sqrt(s)[:, None]:
    # a broadcast scaling, then one symmetric product (issue 15: BLAS syrk, half the flops).
    source = mc.codegen(
        "sum(log(1 + exp(-y .* (X*w))))", "w", ("value", "gradient", "hessian"), sizes={"n": 2000, "m": 1000}
    )
    assert "einsum" not in source
    assert re.search(r"\(X \* t\d+\[:, None\]\)", source), source
    assert re.search(r"\((t\d+)\.T @ \1\)", source), source
    assert "diag" not in source and "eye" not in source


@pytest.mark.parametrize("f", ["norm2(T - U*V')^2", "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "x'*A*x"])
def test_no_einsum_fallback_on_the_benchmark_problems(f: str) -> None:
    wrt = {"norm2(T - U*V')^2": "U", "x'*A*x": "x"}.get(f, "W1")
    assert "einsum" not in mc.codegen(f, wrt, ("value", "gradient"))


def test_sum_with_transpose_runs_as_two_matrix_vector_products() -> None:
    # (A + A')*x is A @ x + A.T @ x: no n x n sum is formed.
    source = mc.codegen("x'*A*x", "x", ("gradient",))
    assert "A + " not in source and "+ A" not in source
    assert source.count(" @ x") == 2, source


def test_scalar_factor_scales_the_smallest_array() -> None:
    # -X'*v: the minus sign goes on a vector, never on the matrix X.
    source = mc.codegen("-X'*v", "v", ("value",))
    assert not re.search(r"-1\.0 \* X", source) and "(-X" not in source, source
    source = mc.codegen("norm2(T - U*V')^2", "U", ("gradient",), sizes={"m": 1000, "n": 1000, "p": 10})
    # The factor -2 meets the m x p product, not the m x n matrix T.
    assert not re.search(r"2\.0 \* T\b", source) and re.search(r"-2\.0 \* t\d+", source), source


def test_stable_forms() -> None:
    source = mc.codegen("sum(log(1 + exp(-y .* (X*w))))", "w", ("value", "gradient"))
    assert "logaddexp" in source and "xp.exp(" not in source and "tanh" in source
    source = mc.codegen("log(sum(exp(x)))", "x", ("value",))
    assert "_logsumexp" in source
    # Stable for large arguments where the naive forms overflow.
    fn = mc.compile("sum(log(1 + exp(-y .* (X*w))))", wrt="w", derivatives=("value", "gradient"))
    X = np.array([[1000.0], [-1000.0]])
    value, grad = fn({"X": X, "y": np.array([1.0, 1.0]), "w": np.array([1.0])})
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value == pytest.approx(1000.0)


def test_compiled_code_is_cached_per_shape() -> None:
    fn = mc.compile("x'*A*x", wrt="x")
    fn({"x": np.ones(3), "A": np.eye(3)})
    fn({"x": np.ones(3), "A": np.eye(3)})
    fn({"x": np.ones(5), "A": np.eye(5)})
    assert len(fn._cache) == 2


def test_bad_backend_and_derivative_names() -> None:
    with pytest.raises(mc.MatrixCalculusError, match="backend"):
        mc.compile("x'*x", wrt="x", backend="fortran")
    with pytest.raises(mc.MatrixCalculusError, match="derivative"):
        mc.compile("x'*x", wrt="x", derivatives=("gradient", "laplacian"))


def test_dask_gradient_over_a_tall_chunked_matrix_matches_numpy() -> None:
    da = require("dask.array")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4000, 20))
    y = np.sign(rng.standard_normal(4000))
    w = rng.standard_normal(20) * 0.1
    t = rng.standard_normal(4000)
    for f, values in [
        ("sum(log(1 + exp(-y .* (X*w))))", {"X": X, "y": y, "w": w}),
        ("0.5*norm2(X*w - t)^2", {"X": X, "t": t, "w": w}),
    ]:
        numpy_fn = mc.compile(f, wrt="w", derivatives=("value", "gradient", "hessian"))
        dask_fn = mc.compile(f, wrt="w", derivatives=("value", "gradient", "hessian"), backend="dask")
        chunked = {
            k: da.from_array(v, chunks=(500,) + v.shape[1:]) if v.shape[0] == 4000 else da.from_array(v)
            for k, v in values.items()
        }
        lazy = dask_fn(chunked)
        import dask

        computed = dask.compute(*lazy)
        for a, b in zip(computed, numpy_fn(values), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_other_backends_match_numpy(backend: str) -> None:
    if backend == "torch":
        torch = require("torch")
        convert = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    else:
        jax = require("jax")
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp

        convert = jnp.asarray
    for f, wrt, types in CASES:
        expr = mc.parse(f, types=types)
        kinds = ("value", "gradient") + (("hessian",) if not expr.shape else ())
        values = _values(expr)
        fn = mc.compile(f, wrt=wrt, derivatives=kinds, types=types, backend=backend)
        got = fn({k: convert(v) for k, v in values.items()})
        want = mc.compile(f, wrt=wrt, derivatives=kinds, types=types)(values)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-9, atol=1e-9, err_msg=f"{backend}: {f}")


def test_auto_backend_follows_the_arrays() -> None:
    from matrixcalculus.compile.runtime import backend_of

    assert backend_of([np.ones(2)]) == "numpy"
    fn = mc.compile("x'*A*x", wrt="x", backend="auto")
    value, grad = fn({"x": np.ones(3), "A": np.eye(3)})
    assert float(value) == 3.0 and grad.tolist() == [2.0, 2.0, 2.0]
    da = require("dask.array")
    value, _grad = fn({"x": da.ones(3), "A": da.eye(3)})
    assert backend_of([da.ones(3)]) == "dask" and float(value.compute()) == 3.0


def test_kronecker_structured_hessian_stays_structured() -> None:
    # d2/dU2 norm2(T - U*V')^2 = 2*delta(i,k)*(V'*V)[j,l]: an identity times an r x r matrix.
    f = "norm2(T - U*V')^2"
    rng = np.random.default_rng(0)
    values = {"T": rng.standard_normal((6, 5)), "U": rng.standard_normal((6, 2)), "V": rng.standard_normal((5, 2))}
    (hess,) = mc.compile(f, wrt="U", derivatives=("hessian",))(values)
    assert isinstance(hess, Factored) and hess.shape == (6, 2, 6, 2)
    kinds = [factor[0] if isinstance(factor, tuple) else "array" for factor, _ in hess.factors]
    assert sorted(kinds) == ["array", "eye"]  # the identity is never formed
    dense = mc.hessian(f, "U").evaluate(values)
    np.testing.assert_allclose(np.asarray(hess), dense, rtol=1e-12)
    direction = rng.standard_normal((6, 2))
    np.testing.assert_allclose(hess.contract(direction), np.einsum("ijkl,kl->ij", dense, direction), rtol=1e-12)
    (dense_again,) = mc.compile(f, wrt="U", derivatives=("hessian",), dense=True)(values)
    assert isinstance(dense_again, np.ndarray)
    np.testing.assert_allclose(dense_again, dense, rtol=1e-12)
    source = mc.codegen(f, "U", ("hessian",), dense=False)
    assert "xp.eye" not in source and "V.T @ V" in source and "Kronecker" in source
