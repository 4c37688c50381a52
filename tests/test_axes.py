"""Axis arguments, MATLAB's numbering (1: down the columns, 2: along the rows).

``sum(X, d)``, ``mean(X, d)``, ``softmax(Z, d)``, ``logsumexp(Z, d)`` and ``norm2(X, d)``: every
axis form goes through what the registry test does for a record (parse and shape, value against
NumPy written from the definition, first and second derivatives against central differences of
that reference, compiled code on every backend), then the models they exist for: attention, a
batched cross-entropy, a layer norm over a batch, checked against torch autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.codegen import DIALECTS
from matrixcalculus.ir.functions import FUNCTIONS
from tests.test_registry import BACKENDS, _assert_close, _finite_difference, _to_backend, _to_numpy


def _softmax(x: Any, axis: int) -> Any:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# References from the definitions (NumPy axis = MATLAB axis - 1).
REFERENCE: dict[str, Callable[[Any, int], Any]] = {
    "sum": lambda X, axis: np.sum(X, axis=axis),
    "mean": lambda X, axis: np.sum(X, axis=axis) / X.shape[axis],
    "softmax": _softmax,
    "logsumexp": lambda X, axis: np.log(np.sum(np.exp(X), axis=axis)),
    "norm2": lambda X, axis: np.sqrt(np.sum(X * X, axis=axis)),
}
AXIS_RECORDS = sorted(name for name, record in FUNCTIONS.items() if record.dim)
CASES = [(name, dim) for name in sorted(REFERENCE) for dim in (1, 2)]
IDS = [f"{name}-{dim}" for name, dim in CASES]


def _values(name: str, dim: int) -> dict[str, Any]:
    rng = np.random.default_rng(sum(map(ord, name)) + dim)
    return {"X": rng.standard_normal((3, 4))}


def test_every_record_with_an_axis_has_a_reference_and_a_spelling() -> None:
    # The registry decides which functions take an axis; each one is tested here, by name.
    assert set(AXIS_RECORDS) <= set(REFERENCE), f"no reference for {set(AXIS_RECORDS) - set(REFERENCE)}"
    for name in AXIS_RECORDS:
        record = FUNCTIONS[name]
        for dialect in DIALECTS:
            spelling = record.spelling(dialect, axis=True)
            assert spelling is not None or record.definition is not None, f"{name}: no axis spelling for {dialect}"
            if spelling is not None:
                assert "{axis}" in spelling, f"{name}: the {dialect} axis spelling ignores the axis"


@pytest.mark.parametrize(("name", "dim"), CASES, ids=IDS)
def test_shape_value_and_round_trip(name: str, dim: int) -> None:
    values = _values(name, dim)
    text = f"{name}(X, {dim})"
    expr = mc.parse(text, types={"X": (3, 4)})
    want = REFERENCE[name](values["X"], dim - 1)
    assert expr.shape == want.shape
    _assert_close(expr.evaluate(values), want, text, 1e-12)
    again = mc.parse(str(expr), types={"X": (3, 4)})
    _assert_close(again.evaluate(values), want, f"{text} printed as {expr}", 1e-12)


def test_orientation_is_matlabs() -> None:
    # sum(X, 1) is a 1 x n row, sum(X, 2) an m x 1 column: products with them type as in MATLAB.
    assert mc.parse("sum(X, 1)*A*x").shape == ()  # row * matrix * column
    assert mc.parse("y'*sum(X, 2)").shape == ()
    assert mc.parse("logsumexp(Z, 1)*ones(n)", types={"Z": ("m", "n")}).shape == ()
    with pytest.raises(mc.MatrixCalculusError, match="shape mismatch"):
        mc.parse("sum(X, 1)*sum(X, 1)")  # a row times a row
    assert mc.parse("softmax(Z, 2)", types={"Z": (3, 5)}).shape == (3, 5)
    assert mc.parse("mean(X, 2)", types={"X": (3, 5)}).shape == (3,)
    assert mc.parse("norm2(X, 1)", types={"X": (3, 5)}).shape == (5,)
    assert str(mc.parse("sum(X, 1)*A")).replace(" ", "") in ("ones(m)'*X*A", "(X'*ones(m))'*A")
    assert str(mc.parse("logsumexp(Z, 1)*A")) == "logsumexp(Z, 1)*A"


def test_an_axis_along_a_vector_is_the_vectors_own_call() -> None:
    x = np.array([0.5, -1.0, 2.0])
    assert mc.parse("softmax(x, 1)").evaluate({"x": x}) == pytest.approx(_softmax(x, 0))
    assert mc.parse("sum(x', 2)").evaluate({"x": x}) == pytest.approx(x.sum())
    assert mc.parse("logsumexp(x, 1)").evaluate({"x": x}) == pytest.approx(np.log(np.exp(x).sum()))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sum(X, 3)", r"axis, 1 \(down the columns\) or 2 \(along the rows\), not '3' \(column 8\)"),
        ("softmax(X, n)", r"axis, 1 \(down the columns\) or 2 \(along the rows\), not 'n' \(column 12\)"),
        ("mean(X, 1.5)", r"not '1.5' \(column 9\)"),
        ("logsumexp(X, 0)", r"not '0'"),
        ("softmax(x, 2)", r"softmax at column 1 along axis 2 \(along the rows\) needs a matrix or a row vector"),
        ("norm2(a, 1)", r"needs a matrix or a column vector, but a is a scalar"),
        ("exp(X, 1)", r"exp takes 1 argument"),
        ("tr(X, 1)", r"tr takes 1 argument"),
    ],
)
def test_a_bad_axis_is_an_error_at_its_column(text: str, message: str) -> None:
    types = {"x": "vector", "a": "scalar"}
    with pytest.raises(mc.MatrixCalculusError, match=message):
        mc.parse(text, types={k: v for k, v in types.items() if k in text})


def test_softmax_of_a_matrix_without_an_axis_asks_for_a_vector() -> None:
    # docs/conventions.md: no silent default axis; the error is the vector-argument error.
    with pytest.raises(mc.InferenceError, match="softmax at column 1 needs a vector, but Z is a matrix"):
        mc.parse("softmax(Z)")
    # sum without an axis sums every entry, as before.
    X = np.arange(6.0).reshape(2, 3)
    assert mc.parse("sum(X)").evaluate({"X": X}) == 15.0


@pytest.mark.parametrize(("name", "dim"), CASES, ids=IDS)
def test_derivatives_against_finite_differences(name: str, dim: int) -> None:
    values = _values(name, dim)
    text = f"{name}(X, {dim})"
    types = {"X": (3, 4)}

    def ref(v: dict[str, Any]) -> Any:
        return REFERENCE[name](v["X"], dim - 1)

    first = mc.derivative(text, "X", types=types).evaluate(values)
    _assert_close(first, _finite_difference(ref, values, "X"), f"d {text}/dX", 1e-6)
    second = mc.derivative(text, "X", types=types, order=2).evaluate(values)
    fd2 = _finite_difference(lambda v: _finite_difference(ref, v, "X", 1e-4), values, "X", 1e-4)
    _assert_close(second, fd2, f"d2 {text}/dX2", 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "dim"), CASES, ids=IDS)
def test_compiled_equals_evaluated(name: str, dim: int, backend: str) -> None:
    convert = _to_backend(backend)
    values = _values(name, dim)
    # A scalar of the axis form, so that a Hessian is compiled too: weighted by a fixed matrix.
    reduced = f"{name}(X, 1)*w" if dim == 1 else f"w'*{name}(X, 2)"  # a row times a column
    text = f"sum(sum(W .* {name}(X, {dim})))" if name == "softmax" else reduced
    types = {"X": (3, 4), "W": (3, 4), "w": (4,) if dim == 1 else (3,)}
    rng = np.random.default_rng(7)
    values = {**values, "W": rng.standard_normal((3, 4)), "w": rng.standard_normal(types["w"])}
    used = {k: v for k, v in values.items() if k in mc.parse(text, types=types).variables}
    fn = mc.compile(text, wrt="X", derivatives=("value", "gradient", "hessian"), types=types, backend=backend)
    got = _to_numpy(fn({k: convert(v) for k, v in used.items()}))
    _assert_close(got[0], mc.parse(text, types=types).evaluate(used), f"{backend}: value of {text}", 1e-10)
    _assert_close(got[1], mc.derivative(text, "X", types=types).evaluate(used), f"{backend}: gradient", 1e-10)
    hessian = mc.derivative(text, "X", types=types, order=2).evaluate(used)
    _assert_close(got[2], hessian, f"{backend}: Hessian of {text}", 1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_softmax_and_logsumexp_along_an_axis_do_not_overflow(backend: str) -> None:
    convert = _to_backend(backend)
    Z = np.array([[1e4, -1e4, 0.0], [3.0, 1e4, -2.0]])
    text = "sum(logsumexp(Z, 2)) + sum(sum(softmax(Z, 1)))"
    fn = mc.compile(text, wrt="Z", backend=backend)
    value, gradient = _to_numpy(fn({"Z": convert(Z)}))
    want = np.sum(np.max(Z, axis=1) + np.log(np.sum(np.exp(Z - Z.max(axis=1, keepdims=True)), axis=1))) + 3
    assert value == pytest.approx(want, rel=1e-12)
    assert np.all(np.isfinite(gradient))
    assert mc.parse(text).evaluate({"Z": Z}) == pytest.approx(want, rel=1e-12)


# ------------------------------------------------------------------------ models


def _torch_grads(loss: Callable[..., Any], values: dict[str, Any], wrt: list[str]) -> list[Any]:
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v, dtype=torch.float64, requires_grad=k in wrt) for k, v in values.items()}
    grads = torch.autograd.grad(loss(torch, **tensors), [tensors[w] for w in wrt])
    return [g.numpy() for g in grads]


def test_attention_against_torch_autograd() -> None:
    rng = np.random.default_rng(1)
    values = {
        "Q": rng.standard_normal((5, 3)),
        "K": rng.standard_normal((6, 3)),
        "V": rng.standard_normal((6, 2)),
        "T": rng.standard_normal((5, 2)),
    }
    text = "sum(sum(T .* (softmax(Q*K'/sqrt(3), 2)*V)))"

    def loss(torch: Any, Q: Any, K: Any, V: Any, T: Any) -> Any:
        return torch.sum(T * (torch.softmax(Q @ K.T / 3**0.5, dim=1) @ V))

    want = _torch_grads(loss, values, ["Q", "K", "V"])
    for w, grad in zip(["Q", "K", "V"], want, strict=True):
        _assert_close(mc.derivative(text, w).evaluate(values), grad, f"d/d{w}", 1e-12)
        assert mc.check(text, w).ok
    # The matrix-valued attention itself: its Jacobian against central differences.
    for w in ("Q", "K", "V"):
        assert mc.check("softmax(Q*K'/sqrt(3), 2)*V", w).ok


def test_batched_cross_entropy_against_torch_autograd() -> None:
    rng = np.random.default_rng(2)
    Z = 5 * rng.standard_normal((4, 6))  # 4 classes, a batch of 6 columns
    Y = np.eye(4)[:, rng.integers(0, 4, 6)]
    values = {"Z": Z, "Y": Y}

    def loss(torch: Any, Z: Any, Y: Any) -> Any:
        return -torch.sum(Y * torch.log_softmax(Z, dim=0))

    (want,) = _torch_grads(loss, values, ["Z"])
    value = -np.sum(Y * np.log(_softmax(Z, 0)))
    for text in ("-sum(sum(Y .* log(softmax(Z, 1))))", "sum(logsumexp(Z, 1)) - sum(sum(Y .* Z))"):
        _assert_close(mc.parse(text).evaluate(values), value, text, 1e-12)
        _assert_close(mc.derivative(text, "Z").evaluate(values), want, f"d {text}/dZ", 1e-12)
        fn = mc.compile(text, wrt="Z")
        _assert_close(fn(values)[1], want, f"compiled d {text}/dZ", 1e-12)


def test_layer_norm_over_a_batch_against_torch_autograd() -> None:
    # Columns are the samples: each is centred and scaled by its own mean and variance (axis 1).
    rng = np.random.default_rng(3)
    values = {"X": rng.standard_normal((5, 4)), "T": rng.standard_normal((5, 4))}
    types = {"X": ("m", "n"), "T": ("m", "n")}
    centred = "(X - ones(m)*mean(X, 1))"
    text = f"sum(sum(T .* ({centred} ./ (ones(m)*sqrt(mean({centred} .^ 2, 1) + 0.001)))))"

    def loss(torch: Any, X: Any, T: Any) -> Any:
        return torch.sum(T * torch.nn.functional.layer_norm(X.T, (5,), eps=0.001).T)

    (want,) = _torch_grads(loss, values, ["X"])
    _assert_close(mc.derivative(text, "X", types=types).evaluate(values), want, "d layer norm/dX", 1e-10)
    assert mc.check(text, "X", types=types).ok


def test_the_command_line_reads_an_axis() -> None:
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "matrixcalculus.cli", *args], capture_output=True, text=True)

    done = cli("sum(logsumexp(Z, 1)) - sum(sum(Y .* Z))", "--wrt", "Z", "--check")
    assert done.returncode == 0, done.stderr
    assert "softmax(Z, 1) - Y" in done.stdout
    bad = cli("softmax(Z, 3)", "--wrt", "Z")
    assert bad.returncode == 2 and "axis, 1 (down the columns) or 2 (along the rows)" in bad.stderr
