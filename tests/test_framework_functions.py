"""``mc.differentiable``: a torch.autograd.Function / jax.custom_vjp function with our derived VJP,
checked against the frameworks' own autodiff (torch.autograd.grad, jax.grad) in float64."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

torch = pytest.importorskip("torch")


def _data(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((4, 3)),
        "x": rng.standard_normal(3),
        "t": rng.standard_normal(4),
        "X": rng.standard_normal((6, 3)),
        "w": rng.standard_normal(3),
        "y": rng.integers(0, 2, 6).astype(float),
        "Z": 3 * rng.standard_normal((4, 5)),
        "Y": np.eye(4)[:, rng.integers(0, 4, 5)],
        "Q": rng.standard_normal((5, 2)),
        "K": rng.standard_normal((6, 2)),
        "V": rng.standard_normal((6, 3)),
        "T": rng.standard_normal((5, 3)),
    }


# (our text, the variables, the same loss written in the framework: xp is torch or jax.numpy, nn
# holds log_softmax / softmax / sigmoid spelled for it).
LOSSES: list[tuple[str, tuple[str, ...], Callable[..., Any]]] = [
    ("norm2(W*x - t)^2/2", ("W", "x", "t"), lambda xp, nn, W, x, t: xp.sum((W @ x - t) ** 2) / 2),
    (
        "-y'*log(sigmoid(X*w)) - (1 - y)'*log(1 - sigmoid(X*w))",
        ("X", "w", "y"),
        lambda xp, nn, X, w, y: -y @ xp.log(nn.sigmoid(X @ w)) - (1 - y) @ xp.log(1 - nn.sigmoid(X @ w)),
    ),
    (
        "-sum(sum(Y .* log(softmax(Z, 1))))",
        ("Z", "Y"),
        lambda xp, nn, Z, Y: -xp.sum(Y * nn.log_softmax(Z, 0)),
    ),
    (
        "sum(sum(T .* (softmax(Q*K'/sqrt(2), 2)*V)))",
        ("Q", "K", "V", "T"),
        lambda xp, nn, Q, K, V, T: xp.sum(T * (nn.softmax(Q @ K.T / 2**0.5, 1) @ V)),
    ),
]
TYPES = {"t": "vector", "y": "vector", "w": "vector"}
IDS = ["least-squares", "logistic", "cross-entropy", "attention"]


class _TorchNN:
    sigmoid = staticmethod(lambda u: torch.sigmoid(u))
    log_softmax = staticmethod(lambda u, axis: torch.log_softmax(u, dim=axis))
    softmax = staticmethod(lambda u, axis: torch.softmax(u, dim=axis))


@pytest.mark.parametrize(("text", "names", "loss"), LOSSES, ids=IDS)
def test_torch_autograd_function_against_torch_autograd(text: str, names: tuple[str, ...], loss: Any) -> None:
    data = _data()
    fn = mc.differentiable(text, backend="torch", types=TYPES)
    assert set(fn.arguments) == set(names)
    ours = {n: torch.tensor(data[n], dtype=torch.float64, requires_grad=True) for n in fn.arguments}
    theirs = {n: torch.tensor(data[n], dtype=torch.float64, requires_grad=True) for n in fn.arguments}
    value = fn(*(ours[n] for n in fn.arguments))
    want = loss(torch, _TorchNN, *(theirs[n] for n in names))
    assert float(value.detach()) == pytest.approx(float(want.detach()), rel=1e-12)
    got_grads = torch.autograd.grad(value, [ours[n] for n in fn.arguments])
    want_grads = torch.autograd.grad(want, [theirs[n] for n in fn.arguments])
    for n, a, b in zip(fn.arguments, got_grads, want_grads, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{text}: d/d{n}")


def test_torch_only_the_variables_asked_for_get_gradients() -> None:
    data = _data()
    fn = mc.differentiable("norm2(W*x - t)^2/2", wrt="W", backend="torch", types=TYPES)
    W, x, t = (torch.tensor(data[n], requires_grad=True) for n in ("W", "x", "t"))
    fn(W=W, x=x, t=t).backward()
    np.testing.assert_allclose(W.grad.numpy(), np.outer(data["W"] @ data["x"] - data["t"], data["x"]), rtol=1e-12)
    assert x.grad is None and t.grad is None


def test_torch_training_step_in_a_loop_and_under_torch_compile() -> None:
    # Gradient descent on least squares: our backward drives torch.optim, compiled by torch.compile.
    data = _data()
    fn = mc.differentiable("norm2(X*w - y)^2/2", wrt="w", backend="torch", types=TYPES, check_finite=False)
    X, y = torch.tensor(data["X"]), torch.tensor(data["y"])
    ours = torch.compile(lambda w: fn(X, w, y), backend="eager")

    def theirs(w: Any) -> Any:
        return torch.sum((X @ w - y) ** 2) / 2

    trajectories = []
    for loss in (ours, theirs):
        w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
        optimiser = torch.optim.Adam([w], lr=0.05)
        for _ in range(100):
            optimiser.zero_grad()
            loss(w).backward()
            optimiser.step()
        trajectories.append(w.detach().numpy())
    np.testing.assert_allclose(trajectories[0], trajectories[1], rtol=1e-10)
    best = float(theirs(torch.tensor(np.linalg.lstsq(data["X"], data["y"], rcond=None)[0])))
    assert float(theirs(torch.tensor(trajectories[0]))) < best + 1e-3  # it trained


@pytest.fixture
def jax_modules() -> tuple[Any, Any]:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


@pytest.mark.parametrize(("text", "names", "loss"), LOSSES, ids=IDS)
def test_jax_custom_vjp_against_jax_grad(text: str, names: tuple[str, ...], loss: Any, jax_modules: Any) -> None:
    jax, jnp = jax_modules

    class NN:
        sigmoid = staticmethod(jax.nn.sigmoid)
        log_softmax = staticmethod(lambda u, axis: jax.nn.log_softmax(u, axis=axis))
        softmax = staticmethod(lambda u, axis: jax.nn.softmax(u, axis=axis))

    data = _data()
    fn = mc.differentiable(text, backend="jax", types=TYPES)
    arrays = [jnp.asarray(data[n]) for n in fn.arguments]
    order = [fn.arguments.index(n) for n in names]

    def theirs(*a: Any) -> Any:
        return loss(jnp, NN, *(a[k] for k in order))

    argnums = tuple(range(len(arrays)))
    assert float(fn(*arrays)) == pytest.approx(float(theirs(*arrays)), rel=1e-12)
    got = jax.grad(fn.native, argnums=argnums)(*arrays)
    want = jax.grad(theirs, argnums=argnums)(*arrays)
    jitted = jax.jit(jax.grad(fn.native, argnums=argnums))(*arrays)
    for n, a, b, c in zip(fn.arguments, got, want, jitted, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12, err_msg=f"{text}: d/d{n}")
        np.testing.assert_allclose(np.asarray(c), np.asarray(b), rtol=1e-10, atol=1e-12, err_msg=f"jit {text}: d/d{n}")


def test_jax_variables_outside_wrt_get_zero_cotangents(jax_modules: Any) -> None:
    jax, jnp = jax_modules
    data = _data()
    fn = mc.differentiable("norm2(W*x - t)^2/2", wrt=["W"], backend="jax", types=TYPES)
    W, x, t = (jnp.asarray(data[n]) for n in ("W", "x", "t"))
    dW, dx = jax.grad(fn.native, argnums=(0, 1))(W, x, t)
    np.testing.assert_allclose(np.asarray(dW), np.outer(data["W"] @ data["x"] - data["t"], data["x"]), rtol=1e-12)
    assert not np.any(np.asarray(dx))


def test_bad_calls_are_named() -> None:
    with pytest.raises(mc.MatrixCalculusError, match="torch or jax, not 'numpy'"):
        mc.differentiable("x'*x", backend="numpy")
    fn = mc.differentiable("x'*A*x", backend="torch")
    assert fn.arguments == ("x", "A")
    with pytest.raises(mc.MatrixCalculusError, match=r"2 arrays expected \(x, A\), not 1"):
        fn(torch.ones(2))
    with pytest.raises(mc.MatrixCalculusError, match="no value given for A"):
        fn(x=torch.ones(2))
    with pytest.raises(mc.MatrixCalculusError, match="no variable named B"):
        fn(x=torch.ones(2), B=torch.eye(2))
