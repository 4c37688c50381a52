"""Stacking: ``[a; b; c]``, ``[a, b; c, d]`` and derivatives by a stack of scalar variables.

Expected values are written by hand from the tutorials (matrixcalculus.org tutorial 002) and
checked against central finite differences; printed literals must read back to equal values.
"""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.errors import DerivativeError, MatrixCalculusError, ParseError
from matrixcalculus.ir import graph as g

VALUES = {"x": 1.3, "y": -0.7, "z": 0.4}
# x, y, z are vectors by name (h-z); these tests stack scalars, so they say so (issue 11: a stack
# of vectors is a longer vector, see tests/test_stack_vectors.py).
SCALARS = {"x": "scalar", "y": "scalar", "z": "scalar"}


def _fd_columns(f, point: dict[str, float], names: list[str], h: float = 1e-6) -> np.ndarray:
    """Central differences of ``f(values)`` by each scalar in ``names``, stacked along a last axis."""
    columns = []
    for name in names:
        up, down = dict(point), dict(point)
        up[name] += h
        down[name] -= h
        columns.append((np.asarray(f(up)) - np.asarray(f(down))) / (2 * h))
    return np.stack(columns, axis=-1)


def test_column_of_scalars_is_a_vector() -> None:
    e = mc.parse("[x; 2*y; x*y + z]", types=SCALARS)
    assert e.shape == (3,)
    x, y, z = VALUES["x"], VALUES["y"], VALUES["z"]
    np.testing.assert_allclose(e.evaluate(VALUES), [x, 2 * y, x * y + z])


def test_row_of_scalars_is_a_vector_that_reads_as_a_row() -> None:
    e = mc.parse("[x, y]*[1; 2]", types=SCALARS)
    assert e.shape == ()
    assert e.evaluate(VALUES) == pytest.approx(VALUES["x"] + 2 * VALUES["y"])


def test_two_by_two_literal_is_a_matrix() -> None:
    e = mc.parse("[x, 1; y, x*y]")
    assert e.shape == (2, 2)
    x, y = VALUES["x"], VALUES["y"]
    np.testing.assert_allclose(e.evaluate(VALUES), [[x, 1], [y, x * y]])


def test_a_matrix_literal_multiplies_as_a_matrix() -> None:
    e = mc.parse("[1, 2; 3, 4]*[x; y]")
    x, y = VALUES["x"], VALUES["y"]
    np.testing.assert_allclose(e.evaluate(VALUES), [x + 2 * y, 3 * x + 4 * y])


def test_one_entry_is_that_entry() -> None:
    # Brackets around one entry change nothing (MATLAB): [x*y] is x*y, typed alike.
    assert mc.parse("[x*y]").node is mc.parse("x*y").node
    assert mc.parse("[x*y]", types=SCALARS).node is mc.parse("x*y", types=SCALARS).node


def test_literals_print_back() -> None:
    for text in ("[x; 2*y; x*y + z]", "[x, 1; y, x*y]"):
        assert str(mc.parse(text, types=SCALARS)) == text


def test_ragged_rows_are_a_parse_error() -> None:
    with pytest.raises(ParseError, match="every row has as many"):
        mc.parse("[x, y; z]")


def test_vector_entries_of_a_block_matrix_are_refused_with_their_text() -> None:
    # [x; y] of vectors is a longer vector (issue 11); block matrices are not supported.
    with pytest.raises(MatrixCalculusError, match=r"cannot stack \[x, y; y, x\].*block matrices"):
        mc.parse("[x, y; y, x]", types={"x": "vector", "y": "vector"})


def test_unit_vector_leaf() -> None:
    np.testing.assert_array_equal(g.embed(4, 2).evaluate(np, [], lambda d: 0), [0, 0, 1, 0])
    with pytest.raises(MatrixCalculusError):
        g.embed(2, 2)


def test_derivative_of_a_stack_is_the_stack_of_derivatives() -> None:
    f = "[3*x^2*y; 2*x + y^8]"
    d = mc.derivative(f, "x")
    x, y = VALUES["x"], VALUES["y"]
    np.testing.assert_allclose(d.evaluate(VALUES), [6 * x * y, 2])
    assert mc.check(f, "x").ok


def test_jacobian_by_a_stack_of_scalars_tutorial_002() -> None:
    f = "[3*x^2*y; 2*x + y^8]"
    jac = mc.jacobian(f, "[x; y]")
    assert jac.shape == (2, 2)
    assert str(jac) == "[6*x*y, 3*x^2; 2, 8*y^7]"
    x, y = VALUES["x"], VALUES["y"]
    hand = np.array([[6 * x * y, 3 * x**2], [2, 8 * y**7]])
    np.testing.assert_allclose(jac.evaluate(VALUES), hand)
    value = mc.parse(f)
    fd = _fd_columns(value.evaluate, VALUES, ["x", "y"])
    np.testing.assert_allclose(jac.evaluate(VALUES), fd, rtol=1e-7, atol=1e-7)
    # The printed matrix literal reads back to the same value.
    np.testing.assert_allclose(mc.parse(str(jac)).evaluate(VALUES), hand)
    assert "bmatrix" in jac.latex()


def test_gradient_by_a_stack_of_scalars() -> None:
    f = "x1^2 + 2*x1*x2 + 1"
    scalars = {"x2": "scalar"}  # x1 is a scalar by x1^2; x2 would be a vector by name (h-z)
    grad = mc.gradient(f, "[x1; x2]", types=scalars)
    assert str(grad) == "[2*x1 + 2*x2; 2*x1]"
    point = {"x1": 0.9, "x2": -1.7}
    hand = [2 * 0.9 + 2 * -1.7, 2 * 0.9]
    np.testing.assert_allclose(grad.evaluate(point), hand)
    fd = _fd_columns(mc.parse(f, types=scalars).evaluate, point, ["x1", "x2"])
    np.testing.assert_allclose(grad.evaluate(point), fd, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(mc.parse(str(grad), types={**scalars, "x1": "scalar"}).evaluate(point), hand)
    # The numerator layout makes the gradient of a scalar a row: the row literal.
    assert str(mc.jacobian(f, "[x1; x2]", types=scalars, layout="numerator")) == "[2*x1 + 2*x2, 2*x1]"


def test_stacked_wrt_must_name_distinct_scalars() -> None:
    with pytest.raises(DerivativeError, match="names a variable twice"):
        mc.jacobian("[x; y]", "[x; x]")
    with pytest.raises(DerivativeError, match="is none"):
        mc.jacobian("[x; y]", "[x; 2]")
    with pytest.raises(DerivativeError, match="each is a scalar"):
        mc.jacobian("x'*A*x", "[x; A]")
    with pytest.raises(DerivativeError, match="does not close"):
        mc.jacobian("[x; y]", "[x; y")


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_compiled_stack_equals_evaluated(backend: str) -> None:
    if backend != "numpy":
        pytest.importorskip(backend)
    jac = mc.jacobian("[3*x^2*y; 2*x + y^8]", "[x; y]")
    compiled = mc.compile(jac, "x", ("value", "gradient"), backend=backend)
    arrays = {name: np.float64(v) for name, v in VALUES.items() if name in ("x", "y")}
    if backend == "torch":
        import torch

        arrays = {name: torch.tensor(v, dtype=torch.float64) for name, v in arrays.items()}
    value, by_x = (np.asarray(out, dtype=np.float64) for out in compiled(arrays))
    tol = 1e-12 if backend != "jax" else 1e-5  # jax computes in float32 unless x64 is enabled
    np.testing.assert_allclose(value, jac.evaluate(VALUES), rtol=tol)
    x, y = VALUES["x"], VALUES["y"]
    np.testing.assert_allclose(by_x, [[6 * y, 6 * x], [0, 0]], rtol=tol, atol=tol)
