"""The domain-error policy of ``evaluate`` and the resource limits (issue 9, findings 3, 7 and 11).

Policy (docs/conventions.md, "Domain errors and non-finite values"): a non-finite result is an
error naming the operation and entry where the value first became non-finite; non-finite
inputs are an error naming the variable; ``check_finite=False`` returns IEEE values. The stable
forms are those of compiled code, checked against mpmath at 50 digits.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import check_derivative, random_values

mpmath.mp.dps = 50
BIG = np.array([1000.0, -1000.0, 0.0])


def value(text: str, values: dict, **kw):
    return mc.parse(text).evaluate(values, **kw)


def error(text: str, values: dict, **kw) -> str:
    with pytest.raises(mc.EvaluationError) as info:
        mc.parse(text, **kw).evaluate(values)
    return str(info.value)


# ------------------------------------------------------------------ stable forms


def test_softplus_written_out_is_stable():
    reference = sum(mpmath.log(1 + mpmath.exp(v)) for v in BIG)
    got = value("sum(log(1 + exp(x)))", {"x": BIG})
    assert got == pytest.approx(float(reference), rel=1e-14)
    assert got == pytest.approx(1000.6931471805599, rel=1e-14)


def test_log_sum_exp_written_out_is_stable():
    reference = mpmath.log(sum(mpmath.exp(v) for v in BIG))
    assert value("log(sum(exp(x)))", {"x": BIG}) == pytest.approx(float(reference), rel=1e-14)
    assert value("logsumexp(x)", {"x": BIG}) == pytest.approx(float(reference), rel=1e-14)


def test_softmax_and_sigmoid_are_stable_at_large_arguments():
    total = sum(mpmath.exp(v) for v in BIG)
    np.testing.assert_allclose(
        value("softmax(x)", {"x": BIG}), [float(mpmath.exp(v) / total) for v in BIG], rtol=1e-14, atol=1e-300
    )
    np.testing.assert_allclose(
        value("sigmoid(x)", {"x": BIG}), [float(1 / (1 + mpmath.exp(-v))) for v in BIG], rtol=1e-14, atol=1e-300
    )


def test_evaluate_and_compiled_agree_on_the_stable_form():
    text = "sum(log(1 + exp(x)))"
    (compiled,) = mc.compile(text, "x", "value")({"x": BIG})
    assert compiled == pytest.approx(value(text, {"x": BIG}), rel=1e-14)


# ------------------------------------------------------------------ errors naming where


def test_log_of_a_non_positive_entry_names_the_entry():
    assert error("sum(log(x))", {"x": np.array([1.0, 2.0, -1.0])}) == "log of a non-positive entry: x[2] = -1 in log(x)"


def test_log_of_an_expression_names_the_entry_of_the_argument():
    message = error("sum(log(x - 3))", {"x": np.array([5.0, 1.0])})
    assert message.startswith("log of a non-positive entry: entry [1] of the argument is -2 in log(x - 3)")


def test_logdet_of_a_negative_determinant():
    assert "logdet of a matrix with non-positive determinant (its determinant is negative) in logdet(A)" in error(
        "logdet(A)", {"A": -np.eye(3)}
    )
    assert "the matrix is singular" in error("logdet(A)", {"A": np.zeros((3, 3))})


def test_inv_of_a_singular_matrix_is_our_error_even_without_checks():
    singular = np.array([[1.0, 2.0], [2.0, 4.0]])
    assert error("sum(inv(A))", {"A": singular}) == "inv of a singular matrix in inv(A)"
    with pytest.raises(mc.EvaluationError, match="inv of a singular matrix"):
        value("sum(inv(A))", {"A": singular}, check_finite=False)


def test_division_by_zero():
    with pytest.raises(mc.ParseError, match="division by zero at column 2"):
        mc.parse("0^-1*sum(x)")  # a constant: refused where it is written
    assert "division by zero: y[1] = 0" in error("sum(x./y)", {"x": np.ones(3), "y": np.array([1.0, 0.0, 2.0])})


def test_overflows():
    assert error("sum(exp(x))", {"x": np.array([1.0, 1000.0])}) == "exp overflows: x[1] = 1000 in exp(x)"
    assert error("x'*x", {"x": np.array([1e200, 1.0])}).startswith("overflow in x'*x")
    assert error("det(A)", {"A": 1e200 * np.eye(3)}) == "det overflows in det(A)"
    assert "power overflows: x[0] = 1e+200" in error("sum(x.^3)", {"x": np.array([1e200, 1.0])})


def test_other_domains():
    assert "sqrt of a negative entry: x[0] = -4" in error("sum(sqrt(x))", {"x": np.array([-4.0, 4.0])})
    assert "arcsin of an entry outside [-1, 1]: x[1] = 2" in error("sum(arcsin(x))", {"x": np.array([0.5, 2.0])})
    assert "power of a negative entry to the non-integer exponent 0.5: x[1] = -1" in error(
        "sum(x.^0.5)", {"x": np.array([1.0, -1.0])}
    )


def test_matrix_entries_are_named_by_row_and_column():
    a = np.ones((2, 3))
    a[1, 2] = -5.0
    assert "log of a non-positive entry: A[1,2] = -5 in log(A)" in error("sum(log(A))", {"A": a})


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_name_the_variable(bad):
    x = np.array([1.0, bad, 2.0])
    message = error("x'*x", {"x": x})
    assert message.startswith(f"the value of x has a non-finite entry: x[1] = {bad}")
    # A derivative checks the function's values too (they size its dimensions).
    d = mc.derivative("x'*A*x", "x")
    with pytest.raises(mc.EvaluationError, match="the value of A has a non-finite entry"):
        d.evaluate({"x": np.ones(2), "A": np.array([[1.0, bad], [0.0, 1.0]])})


def test_check_finite_false_returns_ieee_values():
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(
            value("log(x)", {"x": np.array([1.0, 0.0, -1.0])}, check_finite=False), np.log(np.array([1.0, 0.0, -1.0]))
        )
    assert np.isnan(value("logdet(A)", {"A": -np.eye(3)}, check_finite=False))
    assert value("logdet(A)", {"A": np.zeros((2, 2))}, check_finite=False) == -np.inf
    assert value("sum(exp(x))", {"x": np.array([1000.0])}, check_finite=False) == np.inf
    assert np.isnan(value("x'*x", {"x": np.array([np.nan])}, check_finite=False))


def test_the_result_is_checked_not_an_absorbed_intermediate():
    # exp(1000) overflows, but exp(-inf) = 0 is the right value of exp(-exp(1000)) in floats:
    # the policy is about the result, as in compiled code, which checks its outputs.
    assert value("exp(-exp(x))", {"x": np.array([1000.0])})[0] == 0.0


def test_finite_differences_report_the_domain_error():
    f = mc.parse("sum(log(x))")
    d = mc.derivative(f, "x")
    with pytest.raises(mc.EvaluationError, match="log of a non-positive entry"):
        check_derivative(f.node, d.node, f.variables["x"].node, {"x": np.array([1.0, -1.0])})


# ------------------------------------------------------------------ resource limits


def test_defaults_and_scoped_overrides():
    default = mc.current_limits()
    assert default == mc.Limits()
    with mc.resource_limits(max_order=9) as inside:
        assert inside.max_order == 9 and mc.current_limits().max_order == 9
        with mc.resource_limits(max_nodes=50):
            assert mc.current_limits().max_order == 9 and mc.current_limits().max_nodes == 50
    assert mc.current_limits() == default


@pytest.mark.parametrize(
    "overrides", [{"max_order": 0}, {"max_nodes": -1}, {"max_length": 2.5}, {"max_order": True}, {"max_orders": 3}]
)
def test_bad_overrides_are_our_error(overrides):
    with pytest.raises(mc.MatrixCalculusError, match=r"max_order|max_nodes|max_length"):
        with mc.resource_limits(**overrides):
            pass


def test_max_order():
    with pytest.raises(mc.DerivativeError, match=r"order 1,000,000,000 .* the limit is 6 \(max_order"):
        mc.derivative("x'*x", "x", order=1_000_000_000)
    with pytest.raises(mc.DerivativeError, match="max_order"):
        mc.derivative("sum(exp(x))", "x", order=7)
    with mc.resource_limits(max_order=7):
        third = mc.derivative("sum(exp(x))", "x", order=7)
    assert third.shape == ("n",) * 7


def test_max_length_points_past_the_limit():
    with mc.resource_limits(max_length=10):
        mc.parse("x'*A*x + 1")  # exactly 10 characters
        with pytest.raises(mc.ParseError) as info:
            mc.parse("x'*A*x + 12")
    assert info.value.column == 11 and "max_length" in str(info.value)
    assert info.value.limit == "max_length"


def test_max_nodes_at_parse_and_derivative():
    text = " + ".join(f"sin(a{i}*x)" for i in range(30))
    nodes = len(g.postorder(mc.parse(text).node))
    with mc.resource_limits(max_nodes=nodes - 1), pytest.raises(mc.ParseError, match="max_nodes"):
        mc.parse(text)
    with mc.resource_limits(max_nodes=nodes):
        f = mc.parse(text)
        with pytest.raises(mc.DerivativeError, match=r"the derivative has .* nodes"):
            mc.derivative(f, "x", order=2)


def test_max_array_bytes_refuses_before_allocating():
    with pytest.raises(mc.EvaluationError, match=r"ones\(1000000,1000000\) would be a 1000000 x 1000000 array of 8 TB"):
        mc.parse("sum(ones(1e6,1e6))").evaluate({})
    with pytest.raises(mc.EvaluationError, match="max_array_bytes"):
        mc.parse("sum(ones(n,n))").evaluate({}, dims={"n": 10**6})
    with pytest.raises(mc.EvaluationError, match="the random value of A would be"):
        random_values(mc.parse("x'*A*x").node_variables(), size=10**6)
    with mc.resource_limits(max_array_bytes=10**13):
        # Raised far enough, the same size is only a size (evaluation is then not attempted here).
        random_values(mc.parse("x").node_variables(), size=10**6)


def test_max_check_entries():
    f = mc.parse("x'*x")
    d = mc.derivative(f, "x")
    values = {"x": np.ones(101)}
    with mc.resource_limits(max_check_entries=100), pytest.raises(mc.EvaluationError, match="max_check_entries"):
        check_derivative(f.node, d.node, f.variables["x"].node, values)
    assert check_derivative(f.node, d.node, f.variables["x"].node, values).ok


@pytest.mark.parametrize("size, seed", [(0, 0), (3, -1), (2.5, 0), (3, 1.5)])
def test_random_values_reject_bad_size_and_seed(size, seed):
    with pytest.raises(mc.EvaluationError):
        random_values(mc.parse("x").node_variables(), size=size, seed=seed)
