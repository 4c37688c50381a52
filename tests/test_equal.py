"""``mc.equal`` and ``Expression.equals``: checking a derivation by hand.

The expected verdicts come from the mathematics (the Matrix Cookbook's d tr(AXB)/dX = A'B', the
gradient of x'Ax is (A + A')x, which is 2Ax only for a symmetric A), never from the code.
"""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc


def test_cookbook_trace_gradient_equals_a_transpose_b_transpose() -> None:
    result = mc.equal(mc.gradient("tr(A*X*B)", "X"), "A'*B'")
    assert result and result.equal
    assert "equal" in str(result) and "not equal" not in str(result)


def test_same_canonical_form_is_equal_symbolically() -> None:
    result = mc.equal("(A + A')*x", "A*x + A'*x")
    assert result.equal and result.how == "symbolic"
    assert mc.parse("A*x").equals("A*x").how == "symbolic"


def test_equal_functions_written_differently_are_equal_numerically() -> None:
    result = mc.equal("A*x", "(x'*A')'")
    assert result.equal
    result = mc.equal("tr(A*B)", "tr(B*A)")
    assert result.equal and result.how == "numeric" and result.draws >= 2


def test_gradient_of_a_quadratic_form_is_not_2ax_for_a_general_a() -> None:
    gradient = mc.gradient("x'*A*x", "x")
    result = mc.equal(gradient, "2*A*x")
    assert not result
    assert result.relation is None
    # The counterexample is real: both values at its inputs, and A is not symmetric there.
    a, x = result.inputs["A"], result.inputs["x"]
    assert not np.allclose(a, a.T)
    np.testing.assert_allclose(result.left, (a + a.T) @ x)
    np.testing.assert_allclose(result.right, 2 * a @ x)
    text = str(result)
    assert text.startswith("not equal") and "counterexample" in text and "A = " in text and "x = " in text


def test_gradient_of_a_quadratic_form_is_2ax_for_a_symmetric_a() -> None:
    types = {"A": "symmetric"}
    assert mc.equal(mc.gradient("x'*A*x", "x", types=types), "2*A*x", types=types)


def test_a_transpose_is_diagnosed() -> None:
    result = mc.equal("A*x", "x'*A'")  # the same entries, as a row
    assert not result and result.relation == "transpose"
    assert "differ only by a transpose" in str(result)
    result = mc.equal("A*B", "B'*A'")
    assert not result and result.relation == "transpose"
    # A numerator-layout gradient is the transpose of the shape-layout one.
    row = mc.derivative("w'*x", "w", layout="numerator")
    assert mc.equal(row, "x'")
    assert mc.equal(row, "x").relation == "transpose"


def test_a_constant_factor_is_diagnosed() -> None:
    result = mc.equal("0.5*norm2(W*x - t)^2", "norm2(W*x - t)^2")
    assert not result and result.relation == "factor" and result.factor == pytest.approx(2.0)
    assert "constant factor" in str(result) and "is 2 times" in str(result)
    result = mc.equal("A*x", "-3*x'*A'")
    assert result.relation == "transposed factor" and result.factor == pytest.approx(-3.0)


def test_a_non_constant_difference_is_no_factor() -> None:
    result = mc.equal("x", "a*x", types={"a": "scalar"})
    assert not result and result.relation is None


def test_different_shapes_are_not_equal() -> None:
    result = mc.equal("x'*x", "x")
    assert not result and result.how == "shape"


def test_inputs_are_drawn_inside_the_domains() -> None:
    # log and logdet would fail on unconstrained normal inputs.
    assert mc.equal(mc.gradient("logdet(X)", "X"), "inv(X)'")
    assert mc.equal(mc.gradient("sum(log(x))", "x"), "1./x")


def test_a_variable_of_two_kinds_is_an_error() -> None:
    with pytest.raises(mc.MatrixCalculusError, match="declare its type"):
        mc.equal(mc.parse("2*x", types={"x": "scalar"}), mc.parse("x + x"))
