"""The call of the last signature (issue 15, "no per-call overhead"): after a NumPy call a compiled
function runs one generated frame that reads the arguments, compares their shapes and dtypes with
the signature's, runs the code and checks each output. These tests make sure it is exactly the
general call: other shapes, dtypes, layouts and libraries get their own code, and a non-finite
output is still an error naming the function, on the fast path as on the first call.

Expected values come from the mathematics: the gradient of x'*A*x is (A + A')*x, its value
sum_ij x_i A_ij x_j; the gradient of sum(log(x)) is 1 ./ x; the gradient of logdet(X) is inv(X)'.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matrixcalculus as mc


def _quad(n: int, dtype: type = np.float64, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal(n).astype(dtype), "A": rng.standard_normal((n, n)).astype(dtype)}


def _quad_gradient(values: dict[str, np.ndarray]) -> np.ndarray:
    A, x = values["A"].astype(np.float64), values["x"].astype(np.float64)
    return (A + A.T) @ x


def test_the_first_numpy_call_installs_the_fast_call_and_later_calls_agree() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
    assert fn._fast is None  # nothing before the first call
    first = _quad(4)
    fn(first)
    assert fn._fast is not None  # the tests below run through it
    for seed in range(3):
        values = _quad(4, seed=seed)
        value, grad = fn(values)
        x, A = values["x"], values["A"]
        assert float(value) == pytest.approx(float(np.einsum("i,ij,j->", x, A, x)))
        np.testing.assert_allclose(grad, _quad_gradient(values), rtol=1e-12)


def test_another_shape_or_dtype_gets_its_own_code_each_time() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    # Alternating signatures: each call misses the last signature's guard once and is served by
    # its own code (the float32 code computes in float32).
    for values in [_quad(3), _quad(5), _quad(3, np.float32), _quad(3), _quad(5, np.float32), _quad(5)] * 2:
        (grad,) = fn(values)
        assert grad.shape == values["x"].shape
        assert grad.dtype == values["x"].dtype
        tolerance = 1e-5 if grad.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(grad, _quad_gradient(values), rtol=tolerance, atol=tolerance)
    assert len(fn._cache) == 4


def test_the_signature_decides_the_dtype_of_the_code() -> None:
    # The Jacobian of mean(x)*x is x/n * 1' + mean(x)*I: its code makes an identity and a number
    # of the signature's dtype, so float64 code on float32 arrays would return float64.
    fn = mc.compile("mean(x)*x", wrt="x", derivatives=("gradient",))
    for dtype in (np.float64, np.float32, np.float64, np.float32):
        x = np.array([1.0, 2.0, 6.0], dtype=dtype)
        (jacobian,) = fn({"x": x})
        assert jacobian.dtype == dtype
        expected = np.outer(x, np.ones(3)) / 3 + x.mean() * np.eye(3)
        np.testing.assert_allclose(jacobian, expected, rtol=1e-6)


def test_arguments_that_disagree_in_size_are_reported_after_the_fast_call() -> None:
    # The argument checks run once per signature: a new shape is a new signature, checked again
    # (NumPy would broadcast a length-1 y silently).
    fn = mc.compile("sum(x.*y)", wrt="x", derivatives=("gradient",))
    np.testing.assert_array_equal(fn({"x": np.ones(3), "y": np.arange(3.0)})[0], np.arange(3.0))
    assert fn._fast is not None
    with pytest.raises(mc.EvaluationError, match="dimension n is 3 from the length of x but 1 from the length of y"):
        fn({"x": np.ones(3), "y": np.ones(1)})
    with pytest.raises(mc.EvaluationError, match=r"y is a vector .* has shape \(3, 1\)"):
        fn({"x": np.ones(3), "y": np.ones((3, 1))})


def test_a_non_finite_value_alone_is_an_error() -> None:
    # sum(x) overflows at 1e308 + 1e308 while its gradient (ones) stays finite.
    fn = mc.compile("sum(x)", wrt="x", derivatives=("value", "gradient"))
    value, grad = fn({"x": np.ones(2)})
    assert value == 2.0 and np.array_equal(grad, np.ones(2))
    # float32 overflows where the interpreter (float64) does not: the error says so.
    for dtype, big, message in (
        (np.float64, 1e308, r"overflow in sum\(x\) \(computing the value\)"),
        (np.float32, 3e38, "the value is not finite in the compiled code"),
    ):
        fn({"x": np.ones(2, dtype)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(mc.EvaluationError, match=message):
                fn({"x": np.full(2, big, dtype)})


def test_mixed_dtypes_compute_in_float64() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    fn(_quad(3))
    values = {"x": _quad(3)["x"].astype(np.float32), "A": _quad(3)["A"]}  # float32 and float64
    (grad,) = fn(values)
    assert grad.dtype == np.float64
    np.testing.assert_allclose(grad, _quad_gradient(values), rtol=1e-6)


def test_arrays_of_another_library_get_their_library_code() -> None:
    torch = pytest.importorskip("torch")
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",), backend="auto")
    numpy_values = _quad(3)
    fn(numpy_values)
    assert fn._fast is not None  # auto takes NumPy's signature call, guarded by the arrays' type
    torch_values = {k: torch.from_numpy(v.copy()) for k, v in numpy_values.items()}
    (grad,) = fn(torch_values)  # same shapes: the signature alone must not pick the NumPy code
    assert isinstance(grad, torch.Tensor)
    np.testing.assert_allclose(grad.numpy(), _quad_gradient(numpy_values), rtol=1e-12)
    (grad,) = fn(numpy_values)
    assert type(grad) is np.ndarray
    # The torch code has no fast call: the general path checks its outputs.
    bad = {k: v.clone() for k, v in torch_values.items()}
    bad["A"][0, 0] = float("nan")
    with pytest.raises(mc.EvaluationError):
        fn(bad)


def test_jax_arrays_get_jax_code_after_numpy_calls() -> None:
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as the other jax tests: float64 arrays
    import jax.numpy as jnp

    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",), backend="auto")
    numpy_values = _quad(3)
    fn(numpy_values)
    assert fn._fast is not None
    jax_values = {k: jnp.asarray(v) for k, v in numpy_values.items()}
    assert all(a.dtype == np.float64 for a in jax_values.values())  # the NumPy signature's dtypes
    (grad,) = fn(jax_values)
    assert isinstance(grad, jax.Array)  # computed by the jax code, not the NumPy code
    np.testing.assert_allclose(np.asarray(grad), _quad_gradient(numpy_values), rtol=1e-12)


def _outcome(fn: mc.CompiledDerivatives, values: dict[str, object]) -> tuple[str, type]:
    """What a call gives: the type of its first output, or the type of the error it raises."""
    try:
        return "value", type(fn(values)[0])
    except Exception as exc:  # the comparison is of whatever happens
        return "error", type(exc)


def test_auto_looks_at_every_value_given() -> None:
    # backend="auto" picks the library from all the values given, also those no argument reads:
    # after NumPy calls, such a mapping goes the general way and gets what a first call gets.
    # The gradient of logdet(X) is inv(X)': NumPy's inv of a tensor is an ndarray, torch's inv
    # of an ndarray an error, so the outcome tells which library's code ran.
    torch = pytest.importorskip("torch")
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    for extra in (torch.ones(2), np.ones(2)):
        fn = mc.compile("logdet(X)", wrt="X", derivatives=("gradient",), backend="auto")
        for _ in range(2):
            np.testing.assert_allclose(fn({"X": X})[0], np.linalg.inv(X).T)
        assert fn._fast is not None
        fresh = mc.compile("logdet(X)", wrt="X", derivatives=("gradient",), backend="auto")
        assert _outcome(fn, {"X": X, "unused": extra}) == _outcome(fresh, {"X": X, "unused": extra})
    (grad,) = fn({"X": torch.from_numpy(X)})
    assert isinstance(grad, torch.Tensor)
    subclass = np.ma.masked_array(X)  # an ndarray subclass: the general path
    np.testing.assert_allclose(np.asarray(fn({"X": subclass})[0]), np.linalg.inv(X).T)


def test_auto_gives_jax_arrays_jax_code() -> None:
    # jax float64 arrays have NumPy's dtype and a tuple shape: only the type guard tells them apart.
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    fn = mc.compile("logdet(X)", wrt="X", derivatives=("gradient",), backend="auto")
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    for _ in range(2):
        fn({"X": X})
    assert fn._fast is not None
    (grad,) = fn({"X": jnp.asarray(X)})
    assert isinstance(grad, jax.Array)  # NumPy's code would return an ndarray (np.linalg.inv)
    np.testing.assert_allclose(np.asarray(grad), np.linalg.inv(X).T, rtol=1e-12)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_output_on_the_fast_path_is_an_error(bad: float) -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
    fn(_quad(3))
    assert fn._fast is not None
    values = _quad(3)
    values["A"][1, 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # inf - inf in the products: the error says what went wrong
        with pytest.raises(mc.EvaluationError, match=r"the value of A has a non-finite entry: A\[1,2\]"):
            fn(values)
    # The fast call is still the good one afterwards.
    np.testing.assert_allclose(fn(_quad(3))[1], _quad_gradient(_quad(3)), rtol=1e-12)


def test_the_error_names_the_function_on_the_fast_path() -> None:
    fn = mc.compile("sum(log(x))", wrt="x", derivatives=("gradient",))
    np.testing.assert_allclose(fn({"x": np.array([1.0, 2.0, 4.0])})[0], [1.0, 0.5, 0.25])
    assert fn._fast is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mc.EvaluationError, match=r"division by zero.*computing the gradient w\.r\.t\. x"):
            fn({"x": np.array([0.0, 2.0, 4.0])})  # 1/0: an inf in the gradient
    exp = mc.compile("sum(exp(x))", wrt="x", derivatives=("gradient",))
    exp({"x": np.zeros(3)})
    with pytest.raises(mc.EvaluationError, match="exp overflows"):
        exp({"x": np.array([1000.0, 0.0, 0.0])})


def test_a_singular_matrix_on_the_fast_path_names_the_function() -> None:
    fn = mc.compile("logdet(X)", wrt="X", derivatives=("gradient",))
    X = np.array([[2.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(fn({"X": X})[0], np.linalg.inv(X).T)
    assert fn._fast is not None
    with pytest.raises(mc.EvaluationError, match="inv of a singular matrix"):
        fn({"X": np.zeros((2, 2))})


def test_entries_whose_squares_overflow_are_looked_at_one_by_one() -> None:
    # 1e200 is finite but its square is not: the quick check (a dot product) fails, the full
    # look finds every entry finite, and the values come back; 2e308 overflows and is an error.
    fn = mc.compile("2*x", wrt="x", derivatives=("value",))
    fn({"x": np.ones(3)})
    matrix = mc.compile("2*X", wrt="X", derivatives=("value",))
    matrix({"X": np.ones((3, 2))})
    assert fn._fast is not None and matrix._fast is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's overflow warning from the dot of the quick check
        (value,) = fn({"x": np.full(3, 1e200)})
        assert np.array_equal(value, np.full(3, 2e200))
        (value,) = matrix({"X": np.full((3, 2), 1e200)})
        assert np.array_equal(value, np.full((3, 2), 2e200))
        with pytest.raises(mc.EvaluationError, match="overflow"):
            fn({"x": np.full(3, 1e308)})
        with pytest.raises(mc.EvaluationError, match="overflow"):
            matrix({"X": np.full((3, 2), 1e308)})


@pytest.mark.parametrize(
    "layout",
    [
        lambda a: a,  # C order
        lambda a: np.asfortranarray(a),  # Fortran order
        lambda a: np.repeat(np.repeat(a, 2, axis=0), 3, axis=1)[::2, ::3],  # strided view, same values
    ],
)
def test_outputs_in_any_layout_are_checked_and_returned(layout: object) -> None:
    # The value of A' is a view of A: its layout follows the argument's, which the signature does
    # not record. The first call sees a C-order A (its transpose is in Fortran order); later calls
    # give other layouts of the same shape.
    fn = mc.compile("A'", wrt="A", derivatives=("value",))
    base = np.arange(1.0, 13.0).reshape(4, 3)
    fn({"A": base})
    assert fn._fast is not None
    A = layout(base)  # type: ignore[operator]
    (value,) = fn({"A": A})
    np.testing.assert_array_equal(value, base.T)
    for bad in (np.nan, np.inf):
        spoiled = base.copy()
        spoiled[3, 2] = bad
        with pytest.raises(mc.EvaluationError, match=r"non-finite entry: A\[3,2\]"):
            fn({"A": layout(spoiled)})  # type: ignore[operator]


def test_a_fortran_order_gradient_on_the_fast_path() -> None:
    # The gradient of tr(A*X) w.r.t. X is A': Fortran order for a C-order A.
    fn = mc.compile("tr(A*X)", wrt="X", derivatives=("gradient",))
    rng = np.random.default_rng(1)
    values = {"A": rng.normal(size=(4, 4)), "X": rng.normal(size=(4, 4))}
    (grad,) = fn(values)
    assert grad.flags.f_contiguous and not grad.flags.c_contiguous
    values["A"][3, 0] = np.nan
    with pytest.raises(mc.EvaluationError):
        fn(values)


def test_float32_outputs_on_the_fast_path() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
    values = _quad(4, np.float32)
    fn(values)
    value, grad = fn(values)
    assert type(value) is np.float32 and grad.dtype == np.float32
    np.testing.assert_allclose(grad, _quad_gradient(values), rtol=1e-5)
    # Entries of 1e30: their squares would overflow float32, their sum does not (summed, not squared).
    big = mc.compile("2*x", wrt="x", derivatives=("value",))
    big({"x": np.ones(3, np.float32)})
    (value,) = big({"x": np.full(3, 1e30, np.float32)})
    np.testing.assert_allclose(value, np.full(3, 2e30, np.float32))
    bad = _quad(4, np.float32)
    bad["x"][0] = np.nan
    with pytest.raises(mc.EvaluationError):
        fn(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(mc.EvaluationError, match="overflow"):
            big({"x": np.full(3, 3e38, np.float32)})  # 6e38 overflows float32


def test_several_wrt_come_back_grouped() -> None:
    fn = mc.compile("x'*A*x", wrt=["x", "A"], derivatives=("value", "gradient"))
    values = _quad(3)
    for _ in range(2):  # the first call (general) and the second (fast) return the same structure
        value, (gx, gA) = fn(values)
        np.testing.assert_allclose(gx, _quad_gradient(values), rtol=1e-12)
        np.testing.assert_allclose(gA, np.outer(values["x"], values["x"]), rtol=1e-12)
        assert float(value) == pytest.approx(float(values["x"] @ values["A"] @ values["x"]))
    assert fn._fast is not None


def test_numbers_missing_names_and_bad_mappings_after_the_fast_call() -> None:
    fn = mc.compile("a*x'*x", wrt="x", derivatives=("gradient",), types={"a": "scalar"})
    (grad,) = fn({"a": np.float64(2.0), "x": np.ones(3)})
    np.testing.assert_allclose(grad, 4.0 * np.ones(3))
    assert fn._fast is not None
    (grad,) = fn({"a": 3.0, "x": np.ones(3)})  # a Python number: the general path
    np.testing.assert_allclose(grad, 6.0 * np.ones(3))
    with pytest.raises(mc.EvaluationError, match="no value given for a"):
        fn({"x": np.ones(3)})
    with pytest.raises(mc.EvaluationError, match="mapping"):
        fn([np.ones(3)])  # type: ignore[arg-type]
    (grad,) = fn({"a": np.float64(0.5), "x": np.ones(3)})
    np.testing.assert_allclose(grad, np.ones(3))


def test_without_the_check_the_fast_call_returns_ieee_values() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",), check_finite=False)
    fn(_quad(3))
    assert fn._fast is not None
    values = _quad(3)
    values["A"][0, 0] = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (grad,) = fn(values)
    assert not np.all(np.isfinite(grad))


def test_structured_outputs_keep_the_general_path() -> None:
    # The Hessian of a function of a matrix comes back as factors (Factored): no fast call.
    fn = mc.compile("norm2(T - U*V')^2", wrt="U", derivatives=("hessian",))
    rng = np.random.default_rng(2)
    values = {"T": rng.normal(size=(4, 5)), "U": rng.normal(size=(4, 2)), "V": rng.normal(size=(5, 2))}
    for _ in range(2):
        (hessian,) = fn(values)
        dense = np.asarray(hessian.dense())
        # H[i,j,k,l] = 2 delta(i,k) (V'V)[j,l]
        expected = 2.0 * np.einsum("ik,jl->ijkl", np.eye(4), values["V"].T @ values["V"])
        np.testing.assert_allclose(dense, expected, rtol=1e-12)
    assert fn._fast is None


def test_variables_named_like_the_call_s_own_names() -> None:
    # The call runs the generated statements in its own frame: its names (values, flat, o0, the
    # namespace's _run, _MISS ...) step aside for the variables'. The gradient of
    # values'*flat*o0 w.r.t. values is flat*o0, w.r.t. o0 it is flat'*values.
    fn = mc.compile(
        "values'*flat*o0 + sum(call) + _k0*sum(_run)",
        wrt=["values", "o0"],
        derivatives=("value", "gradient"),
        types={"flat": "matrix", "_k0": "scalar", "call": "vector", "_run": "vector"},
    )
    rng = np.random.default_rng(3)
    arrays = {"values": rng.normal(size=3), "flat": rng.normal(size=(3, 3)), "o0": rng.normal(size=3)}
    arrays.update(call=rng.normal(size=3), _k0=np.float64(2.0), _run=rng.normal(size=3))
    for _ in range(3):
        value, (g_values, g_o0) = fn(arrays)
        v, F, o = arrays["values"], arrays["flat"], arrays["o0"]
        expected = v @ F @ o + arrays["call"].sum() + 2.0 * arrays["_run"].sum()
        assert float(value) == pytest.approx(float(expected))
        np.testing.assert_allclose(g_values, F @ o, rtol=1e-12)
        np.testing.assert_allclose(g_o0, F.T @ v, rtol=1e-12)
    assert fn._fast is not None
    arrays["flat"][0, 0] = np.nan
    with pytest.raises(mc.EvaluationError):
        fn(arrays)


def test_programs_with_helpers_and_silenced_warnings() -> None:
    # softmax is a helper function of the generated module; exp is run with IEEE warnings
    # silenced (an overflow then raises our error, not a warning).
    ce = mc.compile("-y'*log(softmax(A*w))", wrt="w", derivatives=("gradient",))
    rng = np.random.default_rng(4)
    values = {"y": np.array([0.0, 1.0, 0.0, 0.0]), "A": rng.normal(size=(4, 3)), "w": rng.normal(size=3)}
    for _ in range(2):
        (grad,) = ce(values)
        z = values["A"] @ values["w"]
        s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        np.testing.assert_allclose(grad, values["A"].T @ (s * values["y"].sum() - values["y"]), rtol=1e-10)
    assert ce._fast is not None
    exp = mc.compile("sum(exp(x))", wrt="x", derivatives=("gradient",))
    for _ in range(2):
        np.testing.assert_allclose(exp({"x": np.zeros(2)})[0], np.ones(2))
    assert exp._fast is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(mc.EvaluationError, match="exp overflows"):
            exp({"x": np.array([1000.0, 0.0])})
