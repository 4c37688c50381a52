"""Flattening: the Jacobian of vec(F) by vec(X), in Kronecker form where one exists.

The forms are the standard identities (Magnus & Neudecker; the Matrix Cookbook, section 10.2):
with column-major vec, ``vec(A*X*B) = kron(B', A)*vec(X)``, ``d vec(inv(X)) = -kron(inv(X)',
inv(X)) d vec(X)``, ``vec(X') = K*vec(X)`` with the commutation matrix K, ``d vec(X) = I``; with
row-major vec the Kronecker factors swap (``kron(A, B')``). Every flattening evaluates to
``numpy.reshape`` of the derivative tensor, ``order="F"`` for column-major and ``"C"`` for
row-major: fixed cases and a property test over random expressions of matrix variables.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import matrixcalculus as mc

from .test_random_derivatives import SHAPES, TYPES, expressions

SIZES = {"m": 2, "n": 3, "p": 4, "q": 2}
NUMPY_ORDER = {"column": "F", "row": "C"}


def values_for(d: mc.Expression, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, v in d._context.items():
        shape = tuple(SIZES[x] if isinstance(x, str) else x for x in v.shape)
        value = rng.normal(size=shape)
        if len(shape) == 2 and shape[0] == shape[1]:
            value = value + 3 * np.eye(shape[0])  # invertible, for inv and det
        out[name] = value
    return out


def reshaped(d: mc.Expression, values: dict, order: str, f_rank: int) -> np.ndarray:
    tensor = np.asarray(d.evaluate(values))
    rows = int(np.prod(tensor.shape[:f_rank], dtype=int))
    return np.reshape(tensor, (rows, -1), order=NUMPY_ORDER[order])


@pytest.mark.parametrize(
    ("f", "wrt", "column", "row"),
    [
        ("A*X*B", "X", "kron(B', A)", "kron(A, B')"),
        ("inv(X)", "X", "-kron(inv(X)', inv(X))", "-kron(inv(X), inv(X)')"),
        ("X'", "X", "commutation(m, n)", "commutation(n, m)"),
        ("X", "X", "eye(m*n)", "eye(m*n)"),
        ("A*X", "X", "kron(eye(p), A)", "kron(A, eye(p))"),  # X is n x p
        ("X*B", "X", "kron(B', eye(m))", "kron(eye(m), B')"),
    ],
)
def test_kronecker_forms(f, wrt, column, row):
    d = mc.derivative(f, wrt)
    assert str(d.flatten("column")) == column
    assert str(d.flatten()) == column  # column-major is the default
    assert str(d.flatten("row")) == row


@pytest.mark.parametrize(
    ("f", "wrt", "f_rank"),
    [
        ("A*X*B", "X", 2),
        ("inv(X)", "X", 2),
        ("X'", "X", 2),
        ("X", "X", 2),
        ("R'*R", "R", 2),
        ("A*X'*B", "X", 2),
        ("X*X", "X", 2),
        ("X .* X", "X", 2),
        ("exp(A*X)", "X", 2),
        ("A*x", "A", 1),
        ("y'*A*x", "A", 0),
        ("A*x", "x", 1),
        ("x*x'", "x", 2),
        ("det(X)*X", "X", 2),
    ],
)
@pytest.mark.parametrize("order", ["column", "row"])
def test_flattening_is_the_reshaped_tensor(f, wrt, f_rank, order):
    d = mc.derivative(f, wrt)
    flat = d.flatten(order)
    # A scalar's Jacobian is one row: a (row) vector, as the gradient's numerator row is.
    assert flat.node.rank == (1 if f_rank == 0 else 2)
    values = values_for(d, seed=len(f))
    assert np.allclose(flat.evaluate(values), reshaped(d, values, order, f_rank))


def test_gram_matrix_flattenings():
    d = mc.derivative("R'*R", "R")
    # d(R'R) = dR' R + R' dR: vec gives kron(R', I) K + kron(I, R') (column-major).
    assert str(d.flatten("column")) == "kron(R', eye(n))*commutation(m, n) + kron(eye(n), R')"
    assert str(d.flatten("row")) == "kron(eye(n), R')*commutation(n, m) + kron(R', eye(n))"
    assert d.flatten("column").latex() == r"\left(R^\top \otimes I\right) K_{m,n} + I \otimes R^\top"


def test_commutation_matrix_transposes_vec():
    k = mc.derivative("X'", "X").flatten("column")
    x = np.arange(6.0).reshape(2, 3)
    matrix = k.evaluate({"X": x})
    assert matrix.shape == (6, 6)
    assert np.array_equal(matrix @ x.reshape(-1, order="F"), x.T.reshape(-1, order="F"))
    assert np.array_equal(matrix @ matrix.T, np.eye(6))


def test_flattenings_compile():
    d = mc.derivative("R'*R", "R")
    for order in ("column", "row"):
        flat = d.flatten(order)
        fn = mc.compile(flat, "R", "value")
        values = values_for(d)
        assert np.allclose(fn(values), reshaped(d, values, order, 2))


@pytest.mark.parametrize("layout", ["numerator", "denominator"])
def test_flattening_does_not_depend_on_the_layout(layout):
    for f in ("A*X*B", "A*x", "y'*A*x"):
        shape = mc.derivative(f, "X" if "X" in f else "A")
        other = mc.derivative(f, "X" if "X" in f else "A", layout=layout)
        values = values_for(shape)
        for order in ("column", "row"):
            assert np.allclose(other.flatten(order).evaluate(values), shape.flatten(order).evaluate(values))


def test_flatten_errors():
    d = mc.derivative("A*X*B", "X")
    with pytest.raises(mc.MatrixCalculusError, match=r"'column'.*'row'"):
        d.flatten("diagonal")
    tensor = mc.derivative("A*x", "A")
    assert tensor.flatten().node.rank == 2
    # A three-axis tensor that is no derivative: its split is unknown.
    odd = mc.Expression(tensor.node, tensor.node_variables())
    with pytest.raises(mc.MatrixCalculusError, match="not a derivative"):
        odd.flatten()


@given(data=st.data())
def test_random_matrix_flattenings_are_reshapes(data):
    shape = data.draw(st.sampled_from([(3, 3), (3, 2), (3,)]))
    expr = data.draw(expressions(shape, depth=2, top=True))
    f = mc.parse(expr.text, types=TYPES)
    matrices = [n for n in f.variables if len(SHAPES.get(n, ())) == 2]
    if not matrices:
        return
    wrt = data.draw(st.sampled_from(matrices))
    note(f"{expr.text} by {wrt}")
    d = mc.derivative(f, wrt)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    values = {}
    for name in f.variables:
        value = rng.normal(size=SHAPES[name]) * 0.8
        values[name] = (value + value.T) / 2 if name == "S" else value
    tensor = np.asarray(d.evaluate(values))
    for order in ("column", "row"):
        flat = d.flatten(order)
        want = np.reshape(tensor, (int(np.prod(shape, dtype=int)), -1), order=NUMPY_ORDER[order])
        assert np.allclose(flat.evaluate(values), want, rtol=1e-9, atol=1e-9)
