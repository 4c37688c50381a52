"""The three layouts: ``shape`` (the default: ``f.shape + wrt.shape``), and the tutorials'
``numerator`` and ``denominator`` layouts.

Expected strings are written from the tutorials (shared/seeds 000, 001, 002) and the standard
numerator-layout table: a scalar by a column vector is the 1 x n row (d(w'x)/dw = x'), a column
vector by a scalar the m x 1 column, a vector by a vector the m x n Jacobian (d(Ax)/dx = A), a
scalar by an m x n matrix the n x m matrix; the denominator layout is the transpose of each.
Every layout is also checked against central finite differences arranged by that definition.
"""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.api.calculus import layout_axes
from matrixcalculus.cli import run

SCALARS = {"a": "scalar", "b": "scalar", "x": "vector", "w": "vector"}

# (f, wrt, types, numerator, denominator): the four shape cases of the tutorials (002: case 1
# scalar by scalar, case 2 scalar by vector, case 3 vector by scalar, case 4 vector by vector).
FOUR_CASES = [
    # 000: f(x) = x^3 + 2x + 1, df/dx = 3x^2 + 2; a scalar has no layout.
    ("x^3 + 2*x + 1", "x", {"x": "scalar"}, "3*x^2 + 2", "3*x^2 + 2"),
    # 001/002: the neuron w'x + b; numerator layout: the gradient is the row x'.
    ("w'*x + b", "w", SCALARS, "x'", "x"),
    ("sum(x)", "x", {}, "ones(n)'", "ones(n)"),
    # 000: a vector-valued function of a scalar is a column in numerator layout.
    ("sin(a)*x", "a", SCALARS, "cos(a)*x", "cos(a)*x'"),
    ("x*a", "a", SCALARS, "x", "x'"),
    # 000: d(Ax)/dx = A (numerator); its transpose in denominator layout.
    ("A*x", "x", {}, "A", "A'"),
    ("exp(x)", "x", {}, "diag(exp(x))", "diag(exp(x))"),
]


@pytest.mark.parametrize(("f", "wrt", "types", "numerator", "denominator"), FOUR_CASES, ids=[c[0] for c in FOUR_CASES])
def test_the_tutorials_four_shape_cases(f: str, wrt: str, types: dict, numerator: str, denominator: str) -> None:
    assert str(mc.derivative(f, wrt, types=types, layout="numerator")) == numerator
    assert str(mc.derivative(f, wrt, types=types, layout="denominator")) == denominator


def test_shape_layout_is_the_default_and_a_gradient_has_its_variables_shape() -> None:
    assert str(mc.derivative("w'*x", "w")) == "x"
    assert str(mc.derivative("w'*x", "w", layout="shape")) == "x"
    assert str(mc.derivative("x'*A*x", "x")) == "(A + A')*x"
    assert mc.derivative("tr(A*X*B)", "X").shape == mc.parse("tr(A*X*B)").variables["X"].shape


def test_scalar_by_matrix_is_the_transpose_in_numerator_layout() -> None:
    # The Matrix Cookbook (denominator layout, the shape of X): d tr(AXB)/dX = A'B'.
    num = mc.derivative("tr(A*X*B)", "X", layout="numerator")
    den = mc.derivative("tr(A*X*B)", "X", layout="denominator")
    x_shape = mc.parse("tr(A*X*B)").variables["X"].shape
    assert num.shape == x_shape[::-1]
    assert den.shape == x_shape
    assert str(num) == "B*A"
    assert mc.equal(den, "A'*B'")


def test_quadratic_form_gradient_is_a_row_in_numerator_layout() -> None:
    assert str(mc.derivative("x'*A*x", "x", layout="numerator")) == "x'*(A + A')"
    assert str(mc.derivative("x'*A*x", "x", layout="denominator")) == "(A + A')*x"


def test_a_row_prints_as_a_row_in_latex_and_builds_on_as_a_row() -> None:
    d = mc.derivative("w'*x", "w", layout="numerator")
    assert d.latex() == "x^\\top"
    assert (d @ mc.vector("x")).shape == ()  # x'*x: a row times a column is a scalar
    assert str(d @ mc.matrix("A")) == "x'*A"  # a row times a matrix is a row


def test_unknown_layout_names_the_three() -> None:
    with pytest.raises(mc.DerivativeError, match="'shape', 'numerator' or 'denominator'"):
        mc.derivative("w'*x", "w", layout="jacobian")


def test_layout_axes_follow_the_definition() -> None:
    # f scalar, wrt matrix: numerator reverses the matrix's axes; denominator keeps them.
    assert layout_axes(0, 2, "numerator") == (1, 0)
    assert layout_axes(0, 2, "denominator") == (0, 1)
    # f vector, wrt vector: numerator is the Jacobian, denominator its transpose.
    assert layout_axes(1, 2, "numerator") == (0, 1)
    assert layout_axes(1, 2, "denominator") == (1, 0)
    assert layout_axes(2, 4, "shape") == (0, 1, 2, 3)


NUMERIC_CASES = [
    ("x'*A*x", "x"),
    ("x'*A*x", "A"),
    ("A*x", "x"),
    ("A*x", "A"),
    ("tr(A*X*B)", "X"),
    ("sin(W*x)", "W"),
    ("x*a", "a"),
    ("softmax(W*x)", "x"),
]


@pytest.mark.parametrize("layout", ["shape", "numerator", "denominator"])
@pytest.mark.parametrize(("f", "wrt"), NUMERIC_CASES, ids=[f"{f} | {w}" for f, w in NUMERIC_CASES])
def test_every_layout_against_finite_differences(f: str, wrt: str, layout: str) -> None:
    types = {"a": "scalar"}
    shape_layout = mc.derivative(f, wrt, types=types)
    arranged = mc.derivative(f, wrt, types=types, layout=layout)
    expr = mc.parse(f, types=types)
    report = mc.check(f, wrt, arranged, types=types, layout=layout)
    assert report.ok, report
    # The arrangement is the permutation of the definition, entry by entry.
    point = {name: np.random.default_rng(2).standard_normal(len(v.shape) * (3,)) for name, v in expr.variables.items()}
    full = np.asarray(shape_layout.evaluate(point), dtype=np.float64)
    full = np.broadcast_to(full, tuple(3 for _ in shape_layout.shape))
    got = np.asarray(arranged.evaluate(point), dtype=np.float64)
    axes = layout_axes(len(expr.shape), full.ndim, layout)
    np.testing.assert_allclose(np.broadcast_to(got, full.transpose(axes).shape), full.transpose(axes), atol=1e-12)


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_second_derivatives_check_in_every_layout(layout: str) -> None:
    for f, wrt in [("x'*A*x", "x"), ("tr(X*X*A)", "X"), ("sin(a)*x", "a")]:
        report = mc.check(f, wrt, types={"a": "scalar"}, order=2, layout=layout)
        assert report.ok, (f, report)


def test_cli_shape_line_says_row_and_column() -> None:
    out, status = run(["w'*x", "--wrt", "w", "--layout", "numerator", "--check"])
    assert status == 0
    assert "df/dw = x'" in out.splitlines()
    assert "shape of df/dw: 1 x n (numerator layout: a row)" in out
    out, _ = run(["x*a", "--types", "a=scalar", "--wrt", "a", "--layout", "numerator"])
    assert "shape of df/da: n x 1 (numerator layout: a column)" in out
    out, _ = run(["x*a", "--types", "a=scalar", "--wrt", "a", "--layout", "denominator", "--check"])
    assert "df/da = x'" in out.splitlines()
    assert "shape of df/da: 1 x n (denominator layout: a row)" in out
    assert "(ok)" in out
    out, _ = run(["A*x", "--wrt", "x"])
    assert "shape of df/dx: m x n (shape layout)" in out
