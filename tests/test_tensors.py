"""Tensors of any order (issue 14): declaring them, evaluating, differentiating (orders 1 and 2
against central differences and against torch autograd), compiling (NumPy, torch, jax), the
command line, and the fourth tutorial's §5.2 examples: a batch of sequences ``X[b,t,d]`` times
``W[d,e]`` and a convolution, whose weights are [filters x channels x height x width].
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import matrixcalculus as mc
from tests.conftest import require

warnings.simplefilter("ignore", mc.MatrixCalculusNotice)

RNG = np.random.default_rng(5)


def draw(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape)


# ------------------------------------------------------------------------------ declarations


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ((4, 5, 6), (4, 5, 6)),
        ("4x5x6", (4, 5, 6)),
        ("b x n x d", ("b", "n", "d")),
        (("b", 3, "d", 2), ("b", 3, "d", 2)),
    ],
)
def test_a_tensor_is_declared_by_its_shape(spec, shape):
    e = mc.parse("T", types={"T": spec})
    (v,) = e.variables.values()
    assert v.kind == "tensor" and v.shape == shape
    assert repr(v) == f"T: {len(shape)}-tensor ({' x '.join(map(str, shape))})"


def test_a_tensor_is_declared_by_its_order():
    e = mc.parse("T", types={"T": "4-tensor"})
    assert len(e.shape) == 4 and e.variables["T"].kind == "tensor"
    assert len(mc.parse("T[i,j,k]*x[k]", types={"T": "3-tensor"}).variables["T"].shape) == 3


@pytest.mark.parametrize(("spec", "words"), [("2-tensor", ["matrix", "three or more"]), ("tensor", ["3-tensor"])])
def test_bad_tensor_declarations(spec, words):
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("T", types={"T": spec})
    for word in words:
        assert word in str(info.value)


def test_zeros_and_ones_take_a_dimension_per_axis():
    assert mc.parse("zeros(2, 3, 4)").evaluate({}).shape == (2, 3, 4)
    assert np.all(mc.parse("ones(2, 3, 4, 5)").evaluate({}) == 1)


# ------------------------------------------------------------------------------ values


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("tanh(T) + 2*T", lambda T, u, v, w: np.tanh(T) + 2 * T),
        ("sum(T .* T)", lambda T, u, v, w: np.sum(T * T)),
        ("max(0, T)", lambda T, u, v, w: np.maximum(T, 0)),
        ("(T > 0) .* T", lambda T, u, v, w: (T > 0) * T),
        ("T[i,j,k]*u[i]*v[j]", lambda T, u, v, w: np.einsum("ijk,i,j->k", T, u, v)),
        ("exp(T[i,j,k]*w[k]) -> [j,i]", lambda T, u, v, w: np.exp(np.einsum("ijk,k->ji", T, w))),
    ],
)
def test_tensor_values_are_numpys(text, reference):
    types = {"T": (2, 3, 4), "u": (2,), "v": (3,), "w": (4,)}
    values = {"T": draw(2, 3, 4), "u": draw(2), "v": draw(3), "w": draw(4)}
    e = mc.parse(text, types=types)
    assert np.allclose(e.evaluate(values), reference(**values))


def test_a_wrong_array_names_the_tensor():
    e = mc.parse("sum(T)", types={"T": (2, 3, 4)})
    with pytest.raises(mc.EvaluationError, match=r"T is a 3-tensor \(2 x 3 x 4\)"):
        e.evaluate({"T": np.ones((2, 3))})


# ------------------------------------------------------------------------------ derivatives


CASES = [
    # (f, wrt, types)
    ("sum(tanh(T[i,j,k]*u[i]*v[j]))", "T", {"T": (2, 3, 4), "u": (2,), "v": (3,)}),
    ("tanh(T[i,j,k]*w[k])", "T", {"T": (2, 3, 4), "w": (4,)}),
    ("sum_ijk T[i,j,k]^2*u[i]", "T", {"T": (2, 3, 4), "u": (2,)}),
    ("sum(sigmoid(T) .* T)", "T", {"T": (2, 3, 2, 2)}),
    ("log(sum(exp(X[b,t,d]*W[d,e])))", "W", {"X": (2, 3, 4), "W": (4, 2)}),
    ("sum(tanh(X[b,t,d]*W[d,e]))", "X", {"X": (2, 3, 4), "W": (4, 2)}),
    ("T[i,j,k]*u[i]*v[j]", "u", {"T": (2, 3, 4), "u": (2,), "v": (3,)}),
]


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(("f", "wrt", "types"), CASES)
def test_tensor_derivatives_match_central_differences(f, wrt, types, order):
    result = mc.check(f, wrt, types=types, order=order)
    assert result.ok, str(result)


def _torch_values(torch, values):
    return {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in values.items()}


def test_batched_sequences_gradient_is_torch_autograds():
    """A batch of sequences X[b,t,d] through a linear map W[d,e] and tanh: the gradient in W is
    sum_bt X[b,t,d]*(1 - tanh(Y)^2)[b,t,e], as torch autograd computes it (an independent
    reference), and the gradient in X likewise."""
    torch = require("torch")
    types = {"X": "b x t x d", "W": "d x e"}
    f = "sum(tanh(X[b,t,d]*W[d,e]))"
    values = {"X": draw(3, 5, 4), "W": draw(4, 2)}
    (grads,) = mc.compile(f, wrt=["W", "X"], types=types, derivatives=("gradient",))(values)
    t = _torch_values(torch, values)
    torch.tanh(torch.einsum("btd,de->bte", t["X"], t["W"])).sum().backward()
    assert np.allclose(grads[0], t["W"].grad.numpy(), rtol=1e-12, atol=1e-12)
    assert np.allclose(grads[1], t["X"].grad.numpy(), rtol=1e-12, atol=1e-12)
    y = np.einsum("btd,de->bte", values["X"], values["W"])
    assert np.allclose(grads[0], np.einsum("btd,bte->de", values["X"], 1 - np.tanh(y) ** 2))


def _patches(torch, image, kh, kw):
    """im2col: P[b,p,c,h,w] is the kh x kw patch at position p of channel c of image b."""
    n, c = image.shape[:2]
    cols = torch.nn.functional.unfold(image, (kh, kw))  # (n, c*kh*kw, positions)
    return cols.reshape(n, c, kh, kw, -1).permute(0, 4, 1, 2, 3)


def test_convolution_gradient_is_torch_conv2d_autograds():
    """The tutorial's convolution weights K[f,c,h,w] (filters x channels x height x width): the
    output at image b, position p and filter f is sum_chw P[b,p,c,h,w]*K[f,c,h,w] for the image
    patches P. The gradient of a squared error in K is torch.nn.functional.conv2d's, by
    autograd: a 5-d and a 4-d tensor contracted, differentiated and compiled."""
    torch = require("torch")
    n, c, size, f, kh, kw = 2, 3, 6, 4, 3, 3
    image = torch.tensor(draw(n, c, size, size))
    kernel = torch.tensor(draw(f, c, kh, kw), requires_grad=True)
    out = torch.nn.functional.conv2d(image, kernel)  # (n, f, 4, 4)
    target = torch.tensor(draw(*out.shape))
    (0.5 * ((out - target) ** 2).sum()).backward()

    text = "0.5*sum((P[b,p,c,h,w]*K[f,c,h,w] - R[b,p,f])^2)"
    types = {"P": "5-tensor", "K": "4-tensor", "R": "3-tensor"}
    values = {
        "P": _patches(torch, image, kh, kw).numpy(),
        "K": kernel.detach().numpy(),
        "R": target.reshape(n, f, -1).permute(0, 2, 1).numpy(),
    }
    value, grad = mc.compile(text, wrt="K", types=types, derivatives=("value", "gradient"))(values)
    assert value == pytest.approx(0.5 * float(((out - target) ** 2).sum().detach()), rel=1e-12)
    assert np.allclose(grad, kernel.grad.numpy(), rtol=1e-11, atol=1e-11)
    # The same through the torch backend.
    tvalues = {name: torch.tensor(v) for name, v in values.items()}
    _, tgrad = mc.compile(text, wrt="K", types=types, derivatives=("value", "gradient"), backend="torch")(tvalues)
    assert np.allclose(tgrad.numpy(), kernel.grad.numpy(), rtol=1e-11, atol=1e-11)


def test_convolution_hessian_matches_central_differences():
    text = "0.5*sum((P[b,p,c,h,w]*K[f,c,h,w] - R[b,p,f])^2)"
    types = {"P": (2, 3, 2, 2, 2), "K": (2, 2, 2, 2), "R": (2, 3, 2)}
    assert mc.check(text, "K", types=types, order=2).ok


# ------------------------------------------------------------------------------ compiled code


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize(("f", "wrt", "types"), CASES[:5])
def test_compiled_tensor_derivatives_equal_evaluation(f, wrt, types, backend):
    """Value, gradient (Jacobian) and, for scalars, the Hessian: compiled code for each backend
    equals the evaluation of the derived expressions."""
    rng = np.random.default_rng(1)
    values = {name: rng.standard_normal(shape) for name, shape in types.items()}
    e = mc.parse(f, types=types)
    kinds = ("value", "gradient", "hessian") if not e.shape else ("value", "gradient")
    expected = [e.evaluate(values), mc.derivative(e, wrt).evaluate(values)]
    if "hessian" in kinds:
        expected.append(mc.derivative(e, wrt, order=2).evaluate(values))
    if backend == "numpy":
        given = values
    elif backend == "torch":
        torch = require("torch")
        given = {name: torch.tensor(v) for name, v in values.items()}
    else:
        jax = require("jax")
        jax.config.update("jax_enable_x64", True)
        given = {name: jax.numpy.asarray(v) for name, v in values.items()}
    results = mc.compile(e, wrt=wrt, derivatives=kinds, backend=backend, dense=True)(given)
    for got, want in zip(results, expected, strict=True):
        got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
        assert np.allclose(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------ command line


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.parametrize("declaration", ["T=4x5x6", "T=3-tensor"])
def test_command_line_declares_tensors(declaration):
    run = _cli("sum(tanh(T[i,j,k]*u[i]*v[j]))", "--wrt", "T", "--types", declaration, "--check")
    assert run.returncode == 0, run.stderr
    assert "T: 3-tensor (" in run.stdout
    assert "(ok)" in run.stdout
    # The printed gradient is input syntax: it parses back.
    line = next(line for line in run.stdout.splitlines() if line.startswith("df/dT"))
    shape = (4, 5, 6) if "4x5x6" in declaration else "3-tensor"
    back = mc.parse(line.split(" = ", 1)[1], types={"T": shape})
    assert len(back.shape) == 3


def test_command_line_index_error_points_at_the_column():
    run = _cli("x[i]*y[i]*z[i]", "--wrt", "x")
    assert run.returncode == 2
    assert "index i is used 3 times" in run.stderr
    caret = run.stderr.splitlines()[-1]
    assert caret.index("^") == len("  x[i]*y[i]*z["), run.stderr
