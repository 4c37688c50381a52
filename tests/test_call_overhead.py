"""A compiled function does per call only what hand-written code does (issue 15): the checks of
the arguments, the code generation and the choice of forms happen once per signature (shapes and
dtypes); a call looks the signature up, runs the code and checks the outputs are finite.

Functional assertions only: what is cached and what each call still checks (the timings are in
benchmarks/bench_compiled.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matrixcalculus as mc


def _quad(n: int, dtype: type = np.float64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal(n).astype(dtype), "A": rng.standard_normal((n, n)).astype(dtype)}


def test_one_entry_per_signature_looked_up_by_shape_and_dtype() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    first = fn._entry(_quad(4))
    # New dictionaries and new arrays of the same shapes and dtype: the same code, not regenerated.
    assert fn._entry(_quad(4)) is first
    assert fn._entry(dict(_quad(4))) is first
    assert fn._entry(_quad(5)) is not first
    assert fn._entry(_quad(4, np.float32)) is not first
    assert len(fn._cache) == 3
    for values in (_quad(4), _quad(5), _quad(4, np.float32)):
        (grad,) = fn(values)
        np.testing.assert_allclose(grad, (values["A"] + values["A"].T) @ values["x"], rtol=1e-5)


def test_a_missing_or_bad_argument_is_still_reported() -> None:
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    fn(_quad(3))
    with pytest.raises(mc.EvaluationError, match="no value given for A"):
        fn({"x": np.ones(3)})
    with pytest.raises(mc.EvaluationError, match="mapping"):
        fn([np.ones(3), np.eye(3)])  # type: ignore[arg-type]


def test_numbers_without_a_dtype_are_scalars() -> None:
    fn = mc.compile("a*x'*x", wrt="x", derivatives=("gradient",), types={"a": "scalar"})
    (grad,) = fn({"a": 2.0, "x": np.ones(3, np.float32)})
    np.testing.assert_allclose(grad, 4.0 * np.ones(3))
    assert grad.dtype == np.float32  # a Python number follows the arrays, as in NumPy


def test_the_output_check_stays_on_every_call() -> None:
    # The policy (docs/conventions.md): a non-finite result is an error, on the first call and
    # after it; check_finite=False gives the IEEE values.
    fn = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    fn(_quad(3))
    bad = _quad(3)
    bad["A"][0, 0] = np.inf
    with pytest.raises(mc.EvaluationError):
        fn(bad)
    loose = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",), check_finite=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (grad,) = loose(bad)
    assert not np.all(np.isfinite(grad))


def test_ieee_warnings_are_silenced_only_where_functions_raise_them() -> None:
    linear = mc.compile("x'*A*x", wrt="x", derivatives=("gradient",))
    assert not linear._entry(_quad(3)).quiet  # products and sums: nothing to silence
    absorbed = mc.compile("sum(exp(-exp(x)))", wrt="x", derivatives=("value",))
    values = {"x": np.array([1000.0, 0.0])}
    assert absorbed._entry(values).quiet
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp(1000) overflows on the way: IEEE's right answer, no warning
        (value,) = absorbed(values)
    assert value == pytest.approx(np.exp(-1.0))
