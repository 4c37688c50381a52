"""The block rewrites of compile/rewrites.py: the same values in fewer passes.

Each rewrite is checked twice: on the generated source (the form it promises) and on the values
(central differences in float64, or the backprop an expert writes, computed here by hand).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.rewrites import BOOLEAN, rewrite
from matrixcalculus.compile.statements import Block, Lit, Op, View
from matrixcalculus.numeric.check import finite_difference

RNG = np.random.default_rng(20261130)


def _fd_gradient(f, x: np.ndarray) -> np.ndarray:
    return finite_difference(f, x)


# ------------------------------------------------------------------------------ boolean masks


def test_relu_mask_stays_boolean_and_the_gradient_is_backprop() -> None:
    types = {"W1": "matrix", "W2": "matrix", "x": "vector", "b1": "vector", "b2": "vector", "t": "vector"}
    f = "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2"
    fn = mc.compile(f, wrt="W1", derivatives=("gradient",), types=types)
    n, h, m = 5, 7, 3
    v = {
        "W1": RNG.standard_normal((h, n)),
        "W2": RNG.standard_normal((m, h)),
        "x": RNG.standard_normal(n),
        "b1": RNG.standard_normal(h),
        "b2": RNG.standard_normal(m),
        "t": RNG.standard_normal(m),
    }
    source = fn.source(v)
    assert "asarray" not in source and "> 0.0)" in source, source
    (grad,) = fn(v)
    # Backprop written out: delta = (W2' r) .* [a > 0], gradient delta x'.
    a = v["W1"] @ v["x"] + v["b1"]
    r = v["W2"] @ np.maximum(a, 0) + v["b2"] - v["t"]
    expected = np.outer((v["W2"].T @ r) * (a > 0), v["x"])
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, expected, rtol=1e-12, atol=1e-12)


def test_a_mask_that_is_the_output_is_a_float_array() -> None:
    fn = mc.compile("sum(relu(x))", wrt="x", derivatives=("gradient",))
    x = np.array([-1.0, 2.0, -3.0, 4.0])
    (grad,) = fn({"x": x})
    assert grad.dtype == np.float64 and grad.tolist() == [0.0, 1.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_mask_scaled_by_a_number_keeps_the_dtype(dtype: type) -> None:
    # 2.0 * (x > 0) would be float64 in NumPy whatever the inputs: the mask stays a float indicator.
    fn = mc.compile("2*sum(relu(x))", wrt="x", derivatives=("gradient",))
    (grad,) = fn({"x": np.array([-1.0, 2.0], dtype=dtype)})
    assert grad.dtype == dtype and grad.tolist() == [0.0, 2.0]


def test_masks_on_other_backends_match_numpy() -> None:
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    types = {"W": "matrix", "x": "vector", "t": "vector"}
    f = "0.5*norm2(relu(W*x) - t)^2"
    v = {"W": RNG.standard_normal((6, 4)), "x": RNG.standard_normal(4), "t": RNG.standard_normal(6)}
    (expected,) = mc.compile(f, wrt="W", derivatives=("gradient",), types=types)(v)
    for backend, convert in (("torch", torch.from_numpy), ("jax", jnp.asarray)):
        fn = mc.compile(f, wrt="W", derivatives=("gradient",), types=types, backend=backend)
        (got,) = fn({k: convert(a) for k, a in v.items()})
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ sums and negations


def test_a_sum_containing_an_earlier_sum_reads_it() -> None:
    b = Block()
    x, y, z = (b.argument(name, ("n",)) for name in "xyz")
    first = b.assign(Op("add", (View(x), View(y)), ((False, False),)), ("n",))
    both = b.assign(Op("add", (View(z), View(x), View(y)), ((True, False, False),)), ("n",))
    b.outputs += [View(first), View(both)]
    out = rewrite(b)
    last = out.statements[-1].op
    # -z + x + y is (x + y) - z: two operands, the positive one first.
    assert last.args == (View(first), View(z)) and last.params == ((False, True),)


def test_a_sum_of_flipped_terms_subtracts_the_earlier_sum() -> None:
    b = Block()
    x, y, z = (b.argument(name, ("n",)) for name in "xyz")
    first = b.assign(Op("add", (View(x), View(y)), ((False, True),)), ("n",))  # x - y
    later = b.assign(Op("add", (View(z), View(x), View(y)), ((False, True, False),)), ("n",))  # z - x + y
    b.outputs += [View(first), View(later)]
    last = rewrite(b).statements[-1].op
    assert set(zip(last.args, last.params[0], strict=True)) == {(View(first), True), (View(z), False)}


def test_a_negated_product_read_by_sums_only_is_subtracted() -> None:
    b = Block()
    x, y = b.argument("x", ("n",)), b.argument("y", ("n",))
    scaled = b.assign(Op("mul", (Lit(Fraction(-3)), View(y))), ("n",))
    b.outputs.append(View(b.assign(Op("add", (View(x), View(scaled)), ((False, False),)), ("n",))))
    out = rewrite(b)
    mul, add = (s.op for s in out.statements)
    assert mul.args == (Lit(Fraction(3)), View(y))
    assert add.params == ((False, True),)


def test_a_negated_product_read_elsewhere_keeps_its_sign() -> None:
    b = Block()
    x, y = b.argument("x", ("n",)), b.argument("y", ("n",))
    minus = b.assign(Op("mul", (Lit(Fraction(-1)), View(y))), ("n",))
    b.outputs += [View(minus), View(b.assign(Op("add", (View(x), View(minus)), ((False, False),)), ("n",)))]
    out = rewrite(b)
    assert out.statements[0].op.args[0] == Lit(Fraction(-1))


def _layernorm(x: np.ndarray, t: np.ndarray) -> float:
    c = x - x.mean()
    return float(t @ (c / np.sqrt(np.mean(c * c) + 1e-5)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_norm_gradient_in_fewer_passes(dtype: type) -> None:
    f = "t'*((x - mean(x)) / sqrt(mean((x - mean(x)).^2) + 0.00001))"
    fn = mc.compile(f, wrt="x", derivatives=("gradient",), types={"x": "vector", "t": "vector"})
    x, t = RNG.standard_normal(9), RNG.standard_normal(9)
    values = {"x": x.astype(dtype), "t": t.astype(dtype)}
    source = fn.source(values)
    # The size is a scalar of the inputs' type (not a 0-d array), and no sum is added twice.
    assert f"xp.{np.dtype(dtype).name}(_n)" in source and "asarray" not in source, source
    lines = [line for line in source.splitlines() if " = (" in line and (" + " in line or " - " in line)]
    terms = [frozenset(line.split("= ", 1)[1].strip("()").replace(" - ", " + ").split(" + ")) for line in lines]
    assert not any(a < b for a in terms for b in terms), source
    (grad,) = fn(values)
    assert grad.dtype == dtype
    expected = _fd_gradient(lambda z: _layernorm(z, t), x)
    tol = 1e-7 if dtype == np.float64 else 2e-3
    np.testing.assert_allclose(grad, expected, rtol=tol, atol=tol)


def test_no_size_is_read_that_no_statement_uses() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    values = {"x": np.ones(3), "A": np.arange(9.0).reshape(3, 3)}
    assert ".shape[" not in fn.source(values)
    (grad,) = fn(values)
    np.testing.assert_allclose(grad, (values["A"] + values["A"].T) @ values["x"])


def test_attention_has_no_negation_pass() -> None:
    f = "0.5*norm2((exp(X*Wq*Wk'*X'/8) ./ (exp(X*Wq*Wk'*X'/8)*ones(s)*ones(s)'))*X*Wv - T)^2"
    types = {"X": "matrix", "Wq": "matrix", "Wk": "matrix", "Wv": "matrix", "T": "matrix"}
    fn = mc.compile(f, wrt=["Wq"], derivatives=("gradient",), types=types)
    s, d = 5, 4
    v = {k: 0.3 * RNG.standard_normal((s, d) if k in "XT" else (d, d)) for k in ("X", "Wq", "Wk", "Wv", "T")}
    source = fn.source(v)
    assert "-1.0 *" not in source and "= (-" not in source, source
    (grad,) = fn(v)

    def loss(wq: np.ndarray) -> float:
        scores = v["X"] @ wq @ v["Wk"].T @ v["X"].T / 8
        a = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        return 0.5 * float(np.sum((a @ v["X"] @ v["Wv"] - v["T"]) ** 2))

    np.testing.assert_allclose(grad, _fd_gradient(loss, v["Wq"]), rtol=1e-6, atol=1e-8)


def test_boolean_marker_is_a_parameter_of_the_comparison() -> None:
    b = Block()
    a, g = b.argument("a", ("n",)), b.argument("g", ("n",))
    mask = b.assign(Op("compare", (View(a), Lit(Fraction(0))), (">",)), ("n",))
    b.outputs.append(View(b.assign(Op("mul", (View(g), View(mask))), ("n",))))
    compare = rewrite(b).statements[0].op
    assert compare.params == (">", BOOLEAN)


# ------------------------------------------------------------------------------ in place

IN_PLACE_CASES = [
    ("norm2(T - U*V')^2", "U", {"T": (6, 5), "U": (6, 2), "V": (5, 2)}),
    ("0.5*norm2(W*x + b - t)^2", "W", {"W": (4, 3), "x": (3,), "b": (4,), "t": (4,)}),
    ("sum(exp(A*B + C))", "A", {"A": (3, 4), "B": (4, 5), "C": (3, 5)}),
    ("t'*((x - mean(x)) / sqrt(mean((x - mean(x)).^2) + 0.00001))", "x", {"x": (7,), "t": (7,)}),
    ("trace(X*X*X)", "X", {"X": (4, 4)}),
]


@pytest.mark.parametrize(("f", "wrt", "shapes"), IN_PLACE_CASES)
def test_in_place_code_leaves_the_arguments_alone_and_agrees_with_the_interpreter(
    f: str, wrt: str, shapes: dict[str, tuple[int, ...]]
) -> None:
    types = {k: {1: "vector", 2: "matrix"}[len(s)] for k, s in shapes.items()}
    values = {k: RNG.standard_normal(s) for k, s in shapes.items()}
    copies = {k: v.copy() for k, v in values.items()}
    fn = mc.compile(f, wrt=wrt, derivatives=("value", "gradient"), types=types)
    value, grad = fn(values)
    for k in values:
        np.testing.assert_array_equal(values[k], copies[k], err_msg=f"argument {k} was written to")
    expr = mc.parse(f, types=types)
    np.testing.assert_allclose(value, expr.evaluate(values), rtol=1e-12)
    np.testing.assert_allclose(grad, mc.derivative(expr, wrt).evaluate(values), rtol=1e-10, atol=1e-12)
    # A second call on the same arguments gives the same numbers (no state kept between calls).
    np.testing.assert_array_equal(fn(values)[1], grad)


def test_mf_gradient_is_computed_in_place_only_for_one_floating_type() -> None:
    fn = mc.compile("norm2(T - U*V')^2", wrt="U", derivatives=("gradient",))
    shapes = {"T": (6, 5), "U": (6, 2), "V": (5, 2)}
    same = {k: RNG.standard_normal(s) for k, s in shapes.items()}
    assert " -= " in fn.source(same) and " *= " in fn.source(same)
    mixed = dict(same, V=same["V"].astype(np.float32))
    assert "=" in fn.source(mixed) and " -= " not in fn.source(mixed)
    (g64,) = fn(same)
    (gmixed,) = fn(mixed)
    assert gmixed.dtype == np.float64
    np.testing.assert_allclose(gmixed, g64, rtol=1e-6)
    integers = {k: np.arange(np.prod(s)).reshape(s) % 3 for k, s in shapes.items()}
    (gint,) = fn(integers)
    T, U, V = (integers[k].astype(float) for k in "TUV")
    np.testing.assert_allclose(gint, -2 * (T - U @ V.T) @ V)
