"""The per-call path of a compiled function (issue 15): the quick finite check of its outputs and
which programs silence IEEE warnings. Behaviour only: the speed is measured by
``benchmarks/bench_compiled.py --overhead``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.runtime import _finite, _may_warn, _quick_finite


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "layout",
    [
        lambda a: a,  # C order
        lambda a: a.T,  # Fortran order: read as one buffer, no copy
        lambda a: a[::2, ::3],  # strided: NumPy's reduction
        lambda a: a.reshape(-1),  # a vector
        lambda a: a.reshape(-1)[::5],  # a strided vector
    ],
)
def test_a_nan_or_inf_anywhere_fails_the_quick_check(dtype: type, layout: object) -> None:
    base = np.arange(1.0, 61.0, dtype=dtype).reshape(6, 10)
    view = layout(base)  # type: ignore[operator]
    assert _quick_finite(view)
    for bad in (np.nan, np.inf, -np.inf):
        spoiled = base.copy()
        spoiled[0, 0] = bad  # the first entry is in every layout above
        assert not _quick_finite(layout(spoiled))  # type: ignore[operator]
        assert not _finite(layout(spoiled))  # type: ignore[operator]


def test_large_finite_entries_are_finite_after_the_full_look() -> None:
    # The squares of 1e200 overflow: the quick check cannot tell, the full check can.
    big = np.full((4, 3), 1e200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NumPy's overflow warning from the dot of the quick check
        assert not _quick_finite(big)
        assert _finite(big)
    # float32 is summed, not squared: 1e30 passes the quick check (its square would overflow).
    assert _quick_finite(np.full((4, 3), 1e30, dtype=np.float32))
    fn = mc.compile("2*x", wrt="x", derivatives=("value",))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (value,) = fn({"x": np.full(3, 1e200)})
    assert np.array_equal(value, np.full(3, 2e200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the product's own overflow warning (a product is not silenced)
        with pytest.raises(mc.EvaluationError, match="overflow"):
            fn({"x": np.full(3, 1e308)})  # 2e308 overflows


def test_a_non_finite_matrix_output_in_either_order_is_an_error() -> None:
    # The gradient of tr(A*X) is A' (Fortran order when A is C order): a nan in A is an error.
    fn = mc.compile("tr(A*X)", wrt="X", derivatives=("gradient",))
    rng = np.random.default_rng(0)
    values = {"A": rng.normal(size=(4, 4)), "X": rng.normal(size=(4, 4))}
    (grad,) = fn(values)
    np.testing.assert_allclose(grad, values["A"].T)
    values["A"][2, 1] = np.nan
    with pytest.raises(mc.EvaluationError):
        fn(values)


def test_only_powers_and_functions_that_can_overflow_are_silenced() -> None:
    assert _may_warn("power", ((-1,),))
    assert _may_warn("call", ("exp",)) and _may_warn("call", ("log",)) and _may_warn("call", ("inv",))
    for name in ("relu", "tanh", "sigmoid", "softplus", "softmax", "logsumexp", "abs"):
        assert not _may_warn("call", (name,)), name
    assert not _may_warn("matmul", ()) and not _may_warn("add", ((False, False),))
    relu = mc.compile("0.5*norm2(W*relu(x) - t)^2", wrt="W", derivatives=("gradient",))
    values = {"W": np.ones((2, 3)), "x": np.array([1.0, -2.0, 3.0]), "t": np.zeros(2)}
    assert not relu._entry(values).quiet
    assert mc.compile("sum(exp(x))", wrt="x")._entry({"x": np.ones(3)}).quiet


def test_warning_free_functions_raise_no_warning_at_extreme_arguments() -> None:
    # The forms called without np.errstate: sigmoid as (1 + tanh(x/2))/2, softplus as logaddexp,
    # softmax and logsumexp shifted by their largest entry.
    x = np.array([-1000.0, 0.0, 1000.0])
    for text in ("sum(sigmoid(x))", "sum(softplus(x))", "w'*softmax(x)", "logsumexp(x)", "sum(relu(x))"):
        fn = mc.compile(text, wrt="x", derivatives=("value", "gradient"))
        values = {"x": x, "w": np.array([1.0, 2.0, 3.0])}
        assert not fn._entry(values).quiet, text
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            value, grad = fn(values)
        assert np.isfinite(value) and np.all(np.isfinite(grad)), text


def test_auto_runs_and_shows_the_code_of_the_arrays_library() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"), backend="auto")
    values = {"x": np.array([1.0, 2.0]), "A": np.array([[1.0, 2.0], [0.0, 3.0]])}
    value, grad = fn(values)
    assert value == 1.0 + 2.0 * 2.0 + 3.0 * 4.0  # x'*A*x = 1 + 4 + 12
    np.testing.assert_allclose(grad, (values["A"] + values["A"].T) @ values["x"])
    assert fn.source(values).startswith("import numpy as xp")
    with pytest.raises(mc.EvaluationError, match="A"):
        fn({"x": values["x"]})  # a missing name is named, through the backend's function
