"""float32 end to end (issue 15): the inputs decide the dtype of compiled code.

float32 in, float32 out, no silent upcast: the arrays the code makes (identities, ones, number
arrays, indicators) take the inputs' dtype; mixed float32 and float64 inputs compute in float64
as NumPy promotes. The stable forms (softplus, logsumexp, sigmoid) stay finite in float32 where
the naive forms overflow (``exp(100)`` is beyond float32's 3.4e38).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import matrixcalculus as mc

LOGREG = "sum(log(1 + exp(-y .* (X*w))))"
TYPES = {"X": "matrix", "y": "vector", "w": "vector"}


def _logreg(dtype: type) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "X": rng.standard_normal((40, 6)).astype(dtype),
        "y": np.where(rng.random(40) < 0.5, -1.0, 1.0).astype(dtype),
        "w": rng.standard_normal(6).astype(dtype),
    }


def test_float32_in_float32_out_close_to_float64() -> None:
    fn = mc.compile(LOGREG, wrt="w", derivatives=("value", "gradient", "hessian"), types=TYPES)
    single = fn(_logreg(np.float32))
    double = fn(_logreg(np.float64))
    for a, b in zip(single, double, strict=True):
        assert np.asarray(a).dtype == np.float32
        assert np.asarray(b).dtype == np.float64
        # float32 has 24 bits: about 7 digits, less a few for the sums of 40 terms.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert len(fn._cache) == 2  # one code per dtype


@pytest.mark.parametrize(
    ("f", "wrt", "kinds"),
    [
        ("x'*x", "x", ("hessian",)),  # 2*eye(n): an identity made by the code
        ("sum(relu(A*x))", "x", ("gradient",)),  # an indicator (A*x > 0)
        ("sum(x)", "x", ("gradient",)),  # ones(n)
        ("x'*A*x + 3", "x", ("value", "gradient", "hessian")),
    ],
)
def test_arrays_the_code_makes_take_the_input_dtype(f: str, wrt: str, kinds: tuple[str, ...]) -> None:
    rng = np.random.default_rng(1)
    values = {"x": rng.standard_normal(5).astype(np.float32), "A": rng.standard_normal((5, 5)).astype(np.float32)}
    fn = mc.compile(f, wrt=wrt, derivatives=kinds, types={"A": "matrix", "x": "vector"})
    names = [name for name in ("x", "A") if name in fn.source(values)]
    out = fn({k: values[k] for k in names})
    for a in out:
        assert np.asarray(a).dtype == np.float32, fn.source(values)
    assert "float64" not in fn.source(values)


def test_mixed_dtypes_compute_in_float64() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    (grad,) = fn({"x": np.ones(3, np.float32), "A": np.eye(3)})
    assert grad.dtype == np.float64


@pytest.mark.parametrize(
    ("f", "x", "expected"),
    [
        # log(1 + exp(100)) is 100 + log(1 + exp(-100)); exp(100) alone overflows float32.
        ("sum(log(1 + exp(x)))", [100.0, -100.0, 0.0], 100.0 + np.log(2.0)),
        ("log(sum(exp(x)))", [100.0, 99.0, -50.0], 100.0 + np.log1p(np.exp(-1.0))),
    ],
)
def test_stable_forms_hold_in_float32(f: str, x: list[float], expected: float) -> None:
    fn = mc.compile(f, wrt="x", derivatives=("value", "gradient"))
    value, grad = fn({"x": np.array(x, np.float32)})
    assert np.asarray(value).dtype == np.float32 and grad.dtype == np.float32
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert float(value) == pytest.approx(expected, rel=1e-6)
    # The gradients are sigmoid(x) and softmax(x): in [0, 1], finite at these arguments.
    assert np.all((grad >= 0) & (grad <= 1))


def test_a_nonfinite_float32_output_is_an_error() -> None:
    # The policy holds in float32: exp(100) overflows float32 and the result is not finite.
    fn = mc.compile("sum(exp(x))", wrt="x", derivatives=("value",))
    with pytest.raises(mc.EvaluationError):
        fn({"x": np.array([100.0], np.float32)})


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_torch_float32() -> None:
    import torch

    fn = mc.compile(LOGREG, wrt="w", derivatives=("gradient", "hessian"), types=TYPES, backend="torch")
    values = {k: torch.from_numpy(v) for k, v in _logreg(np.float32).items()}
    grad, hess = fn(values)
    assert grad.dtype == torch.float32 and hess.dtype == torch.float32
    reference = mc.compile(LOGREG, wrt="w", derivatives=("gradient", "hessian"), types=TYPES)(_logreg(np.float64))
    np.testing.assert_allclose(grad.numpy(), reference[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hess.numpy(), reference[1], rtol=1e-4, atol=1e-5)


def test_logsumexp_gradient_is_a_softmax() -> None:
    # exp(x)/sum(exp(x)) overflows at x = 1000 in float64 (89 in float32); it runs as softmax(x).
    fn = mc.compile("log(sum(exp(x)))", wrt="x", derivatives=("gradient",))
    (grad,) = fn({"x": np.array([1000.0, 999.0, -50.0])})
    np.testing.assert_allclose(grad, [1 / (1 + np.exp(-1.0)), np.exp(-1.0) / (1 + np.exp(-1.0)), 0.0], atol=1e-15)


def test_log_softmax_gradient_survives_an_underflowing_softmax() -> None:
    # d/dz -y'*log(softmax(z)) = softmax(z)*sum(y) - y: no 1/softmax(z) (which is inf where the
    # softmax underflows to 0 in float32, and 0*inf is nan).
    fn = mc.compile("-y'*log(softmax(z))", wrt="z", derivatives=("gradient",), types={"y": "vector", "z": "vector"})
    z = np.array([0.0, -200.0, 5.0], np.float32)
    y = np.array([0.2, 0.3, 0.5], np.float32)
    (grad,) = fn({"z": z, "y": y})
    s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(grad, s * y.sum() - y, rtol=1e-5, atol=1e-6)
