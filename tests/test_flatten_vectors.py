"""Flattening with a vector (or a scalar) on one side and a matrix on the other, ``kron`` of a row
or column vector, and the commutation matrix as input.

The forms are the identities of Magnus & Neudecker (and the Matrix Cookbook, section 10.2) with
column-major ``vec``: ``vec(dA*x) = (x' ⊗ I_m) vec(dA)``, ``vec(dx*y') = (y ⊗ I_n) dx``, and a
scalar's Jacobian row ``d(y'*A*x) = vec(y*x')' vec(dA) = kron(x, y)' vec(dA)``; with row-major
``vec`` the factors swap (``kron(eye(m), x')``, ``kron(eye(n), y)``, ``kron(y, x)'``). A vector
in ``kron`` is the n x 1 or 1 x n matrix it is written as, as NumPy's ``kron`` of 2-D arrays.
Every form is checked against ``numpy.reshape`` of the derivative tensor (``order="F"`` for
column-major, ``"C"`` for row-major) and against ``numpy.kron`` of the values; every printed
flattening parses back to an equal expression.
"""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc

SIZES = {"m": 2, "n": 3, "p": 4, "q": 5}
NUMPY_ORDER = {"column": "F", "row": "C"}
RNG = np.random.default_rng(12)


def declared(d: mc.Expression) -> dict[str, tuple]:
    """Every variable of the derivative's function with its shape (names as the derivative has them)."""
    return {name: v.shape for name, v in d._context.items()}


def values_for(d: mc.Expression) -> dict[str, np.ndarray]:
    out = {}
    for name, v in d._context.items():
        shape = tuple(SIZES[x] if isinstance(x, str) else x for x in v.shape)
        out[name] = RNG.normal(size=shape)
    return out


def reshaped(d: mc.Expression, values: dict, order: str, f_rank: int) -> np.ndarray:
    tensor = np.asarray(d.evaluate(values))
    rows = int(np.prod(tensor.shape[:f_rank], dtype=int))
    return np.reshape(tensor, (rows, -1), order=NUMPY_ORDER[order])


# (f, wrt, types, column-major form, row-major form, numpy's kron of the values for each order)
CASES = [
    (
        "A*x",
        "A",
        {"A": ("m", "n"), "x": ("n",)},
        "kron(x', eye(m))",
        "kron(eye(m), x')",
        lambda v: (np.kron(v["x"][None, :], np.eye(2)), np.kron(np.eye(2), v["x"][None, :])),
    ),
    (
        "x'*A",
        "A",
        {"A": ("m", "n"), "x": ("m",)},
        "kron(eye(n), x')",
        "kron(x', eye(n))",
        lambda v: (np.kron(np.eye(3), v["x"][None, :]), np.kron(v["x"][None, :], np.eye(3))),
    ),
    (
        "x*y'",
        "x",
        {"x": ("n",), "y": ("m",)},
        "kron(y, eye(n))",
        "kron(eye(n), y)",
        lambda v: (np.kron(v["y"][:, None], np.eye(3)), np.kron(np.eye(3), v["y"][:, None])),
    ),
    (
        "y'*A*x",
        "A",
        {"A": ("m", "n"), "x": ("n",), "y": ("m",)},
        "kron(x, y)'",
        "kron(y, x)'",
        lambda v: (np.kron(v["x"], v["y"]), np.kron(v["y"], v["x"])),
    ),
    (
        "0.5*norm2(W*x - t)^2",
        "W",
        {"W": ("m", "n"), "x": ("n",), "t": ("m",)},
        "kron(x, W*x - t)'",
        "kron(W*x - t, x)'",
        lambda v: (
            np.kron(v["x"], v["W"] @ v["x"] - v["t"]),
            np.kron(v["W"] @ v["x"] - v["t"], v["x"]),
        ),
    ),
]


@pytest.mark.parametrize(("f", "wrt", "types", "column", "row", "reference"), CASES)
def test_vector_and_matrix_flattenings_are_kronecker_products(f, wrt, types, column, row, reference):
    d = mc.derivative(f, wrt, types=types)
    assert str(d.flatten("column")) == column
    assert str(d.flatten("row")) == row
    values = values_for(d)
    f_rank = len(mc.parse(f, types=types).shape)
    want_column, want_row = reference(values)
    for order, want in (("column", want_column), ("row", want_row)):
        flat = np.asarray(d.flatten(order).evaluate(values))
        tensor = reshaped(d, values, order, f_rank)
        # A scalar's Jacobian is one row: the flattening is that row as a vector.
        assert flat.shape == (tensor.shape if f_rank else tensor.shape[1:])
        assert np.allclose(flat, tensor.reshape(flat.shape), rtol=1e-12, atol=1e-12)
        assert np.allclose(flat, want.reshape(flat.shape), rtol=1e-12, atol=1e-12)


def test_a_scalar_jacobian_row_prints_and_draws_as_a_row():
    flat = mc.derivative("y'*A*x", "A", types={"A": ("m", "n")}).flatten()
    assert flat.latex() == r"\left(x \otimes y\right)^\top"
    explicit = flat.explicit({"m": 2, "n": 2})
    assert explicit.shape == (4,)
    assert str(explicit).startswith("[") and ";" not in str(explicit)  # one row: [a, b, c, d]


@pytest.mark.parametrize(
    ("f", "wrt"),
    [
        ("A*x", "A"),
        ("x'*A", "A"),
        ("x*y'", "x"),
        ("y'*A*x", "A"),
        ("0.5*norm2(W*x - t)^2", "W"),
        ("exp(A*x)", "A"),
        ("A*X*B", "X"),
        ("inv(X)", "X"),
        ("X'", "X"),
        ("A*X'*B", "X"),
        ("R'*R", "R"),
        ("X'*X*X'", "X"),
        ("x'*A*x", "x"),
    ],
)
@pytest.mark.parametrize("order", ["column", "row"])
def test_every_printed_flattening_parses_back_to_an_equal_expression(f, wrt, order):
    d = mc.derivative(f, wrt)
    flat = d.flatten(order)
    again = mc.parse(str(flat), types=declared(d))
    assert again.shape == flat.shape
    assert mc.equal(again, flat)
    # The text is a fixed point: what reads back prints the same. (The graphs may differ in the
    # order of a product's operands, x'*B against B'*x, which canonical forms do not yet sort.)
    assert str(again) == str(flat)


# ------------------------------------------------------------------ kron of a row or column vector


@pytest.mark.parametrize(
    ("text", "shape", "reference"),
    [
        ("kron(x', B)", (4, 15), lambda x, y, B: np.kron(x[None, :], B)),
        ("kron(B, x')", (4, 15), lambda x, y, B: np.kron(B, x[None, :])),
        ("kron(x, B)", (12, 5), lambda x, y, B: np.kron(x[:, None], B)),
        ("kron(x, y')", (3, 2), lambda x, y, B: np.outer(x, y)),  # a column by a row: x*y'
        ("kron(x', y)", (2, 3), lambda x, y, B: np.outer(y, x)),
        ("kron(x, y)", (6,), lambda x, y, B: np.kron(x, y)),  # two columns: a column, as before
    ],
)
def test_kron_reads_a_vector_as_the_row_or_column_it_is_written_as(text, shape, reference):
    types = {"x": (3,), "y": (2,), "B": (4, 5)}
    e = mc.parse(text, types=types)
    assert e.shape == shape
    x, y, B = RNG.normal(size=3), RNG.normal(size=2), RNG.normal(size=(4, 5))
    assert np.allclose(e.evaluate({"x": x, "y": y, "B": B}), reference(x, y, B))
    assert mc.parse(str(e), types=types).node is e.node  # prints as typed


@pytest.mark.parametrize(
    ("f", "wrt"), [("sum(kron(x', B))", "x"), ("y'*kron(x', B)*z", "B"), ("tr(kron(x, y')*A)", "y")]
)
def test_kron_of_a_vector_differentiates_correctly(f, wrt):
    assert mc.check(f, wrt).ok


def test_kron_of_a_scalar_is_an_error_that_says_what_it_takes():
    with pytest.raises(
        mc.MatrixCalculusError,
        match="kron at column 1 needs two matrices or vectors, but A is a matrix and a is a scalar",
    ):
        mc.parse("kron(A, a)", types={"a": "scalar"})


# ------------------------------------------------------------------ the commutation matrix as input


@pytest.mark.parametrize(("m", "n"), [(2, 3), (3, 2), (1, 4), (3, 3)])
def test_commutation_matrix_transposes_vec(m, n):
    k = mc.parse(f"commutation({m}, {n})")
    assert k.shape == (m * n, m * n)
    value = np.asarray(k.evaluate({}))
    x = RNG.normal(size=(m, n))
    assert np.array_equal(value @ x.reshape(-1, order="F"), x.T.reshape(-1, order="F"))
    assert np.array_equal(value @ value.T, np.eye(m * n))  # a permutation
    # K of an m x n matrix is the transpose of K of an n x m one.
    assert np.array_equal(np.asarray(mc.parse(f"commutation({n}, {m})").evaluate({})), value.T)


def test_commutation_with_named_dimensions_prints_and_reads_back():
    k = mc.parse("commutation(m, n)")
    assert str(k) == "commutation(m, n)"
    assert k.latex() == "K_{m,n}"
    assert mc.parse(str(k)).node is k.node
    value = np.asarray(k.evaluate({}, {"m": 2, "n": 3}))
    x = RNG.normal(size=(2, 3))
    assert np.array_equal(value @ x.reshape(-1, order="F"), x.T.reshape(-1, order="F"))
    # It is the flattening of d(X')/dX.
    assert mc.parse("commutation(m, n)").node is mc.derivative("X'", "X", types={"X": ("m", "n")}).flatten().node


def test_commutation_in_a_product_with_kron():
    types = {"A": (2, 3), "B": (4, 5)}
    e = mc.parse("kron(B', A)*commutation(3, 4)", types=types)
    A, B = RNG.normal(size=(2, 3)), RNG.normal(size=(4, 5))
    K = np.asarray(mc.parse("commutation(3, 4)").evaluate({}))
    assert np.allclose(e.evaluate({"A": A, "B": B}), np.kron(B.T, A) @ K)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("commutation(m)", "commutation takes 2 arguments"),
        ("commutation(x + 1, 2)", "dimensions"),
        ("commutation(2, 0)", "0"),
    ],
)
def test_commutation_errors(text, message):
    with pytest.raises(mc.MatrixCalculusError, match=message):
        mc.parse(text)
