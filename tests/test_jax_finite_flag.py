"""The jax backend checks its outputs inside the jitted program (one flag back per call)."""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.structured import Factored
from matrixcalculus.errors import EvaluationError

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy


def test_finite_outputs_come_back_as_jax_arrays_and_agree_with_numpy() -> None:
    types = {"W": "matrix", "x": "vector", "t": "vector"}
    f = "0.5*norm2(relu(W*x) - t)^2"
    rng = np.random.default_rng(1)
    v = {"W": rng.standard_normal((5, 4)), "x": rng.standard_normal(4), "t": rng.standard_normal(5)}
    fn = mc.compile(f, wrt=["W", "x"], derivatives=("value", "gradient"), types=types, backend="jax")
    value, (gw, gx) = fn({k: jnp.asarray(a) for k, a in v.items()})
    assert fn._entry({k: jnp.asarray(a) for k, a in v.items()}).fused
    reference = mc.compile(f, wrt=["W", "x"], derivatives=("value", "gradient"), types=types)(v)
    assert isinstance(gw, jax.Array)
    np.testing.assert_allclose(float(value), reference[0], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(gw), reference[1][0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(gx), reference[1][1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("f", "x", "named"),
    [
        ("sum(log(x))", [1.0, -2.0], "log"),  # nan
        ("sum(exp(x))", [1.0, 800.0], "exp"),  # overflow to inf
    ],
)
def test_a_non_finite_output_raises_and_names_the_function(f: str, x: list[float], named: str) -> None:
    fn = mc.compile(f, wrt="x", backend="jax")
    with pytest.raises(EvaluationError, match=named):
        fn({"x": jnp.asarray(x)})
    # The same code without the check returns the IEEE values.
    unchecked = mc.compile(f, wrt="x", backend="jax", check_finite=False)
    value, _ = unchecked({"x": jnp.asarray(x)})
    assert not np.isfinite(float(value))


def test_structured_outputs_are_checked_too() -> None:
    types = {"T": "matrix", "U": "matrix", "V": "matrix"}
    fn = mc.compile("norm2(T - U*V')^2", wrt="U", derivatives=("hessian",), types=types, backend="jax")
    rng = np.random.default_rng(2)
    v = {"T": rng.standard_normal((4, 3)), "U": rng.standard_normal((4, 2)), "V": rng.standard_normal((3, 2))}
    (h,) = fn({k: jnp.asarray(a) for k, a in v.items()})
    assert isinstance(h, Factored)
    expected = np.einsum("ik,jl->ijkl", np.eye(4), 2 * v["V"].T @ v["V"])
    np.testing.assert_allclose(np.asarray(h.dense()), expected, rtol=1e-12)
    bad = dict(v, V=np.full((3, 2), 1e200))
    with pytest.raises(EvaluationError):
        fn({k: jnp.asarray(a) for k, a in bad.items()})
