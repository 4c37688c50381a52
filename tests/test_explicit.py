"""The explicit small case: a derivative written entry by entry in its variables' components.

Expected entries come from the tutorials (../shared/seeds): the Jacobian of ``x .* z`` is
``diag(z1, ..., zn)``, of ``exp(x)`` ``diag(exp(x1), ...)``, of ``x + z`` the identity, of
``a*x`` ``a*I``; ``d(A*x)/dx = A``; ``d(A*x)/dA`` is m slices of m x n, slice i holding ``x'`` in
its row i (``dy_i/dA_jk = x_k`` if ``i = j``, else 0); ``d(y'*A*x)/dA = y*x'``; the 4-D
``d(R'*R)/dR`` has ``dF_pq/dR_ij = delta_qj R_ip + delta_pj R_iq``; the stacked Jacobian of
``f = 3x^2 y``, ``g = 2x + y^8`` is ``[6xy, 3x^2; 2, 8y^7]``. Every explicit form also evaluates
to the derivative's own value (random expressions, numeric values).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st

import matrixcalculus as mc

from .test_random_derivatives import SHAPES, TYPES, expressions


def texts(explicit: mc.Expression) -> list:
    """The entries' text, as nested lists."""
    return np.vectorize(str, otypes=[object])(explicit.entries).tolist()


def random_values(expr: mc.Expression, sizes: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = {}
    for name, v in expr._context.items():
        shape = tuple(sizes.get(d, d) if isinstance(d, str) else d for d in v.shape)
        value = rng.normal(size=shape)
        if v.kind == "symmetric":
            value = (value + value.T) / 2
        values[name] = value
    return values


# ----------------------------------------------------------------------------- the tutorials


def test_hadamard_jacobian_is_diag_of_the_other_factor():
    x = mc.derivative("x .* z", "x").explicit({"n": 3})
    assert x.shape == (3, 3)
    assert texts(x) == [["z1", "0", "0"], ["0", "z2", "0"], ["0", "0", "z3"]]
    z = mc.derivative("x .* z", "z").explicit({"n": 3})
    assert texts(z) == [["x1", "0", "0"], ["0", "x2", "0"], ["0", "0", "x3"]]


def test_elementwise_function_jacobian_is_diagonal():
    e = mc.derivative("exp(x)", "x").explicit(3)
    assert texts(e) == [["exp(x1)", "0", "0"], ["0", "exp(x2)", "0"], ["0", "0", "exp(x3)"]]
    assert str(e) == "[exp(x1),       0,       0;\n       0, exp(x2),       0;\n       0,       0, exp(x3)]"


def test_sum_and_scalar_expansion():
    assert texts(mc.derivative("x + z", "x").explicit(2)) == [["1", "0"], ["0", "1"]]
    assert texts(mc.derivative("a*x", "x").explicit(2)) == [["a", "0"], ["0", "a"]]
    # x + a with a scalar: d/da is the column of ones.
    assert texts(mc.derivative("x + a", "a", types={"a": "scalar"}).explicit(3)) == ["1", "1", "1"]


def test_matrix_vector_product_by_the_vector_is_the_matrix():
    e = mc.derivative("A*x", "x").explicit({"m": 2, "n": 3})
    assert texts(e) == [["A[1,1]", "A[1,2]", "A[1,3]"], ["A[2,1]", "A[2,2]", "A[2,3]"]]
    assert e.latex() == (r"\begin{bmatrix} A_{11} & A_{12} & A_{13} \\ A_{21} & A_{22} & A_{23} \end{bmatrix}")


def test_matrix_vector_product_by_the_matrix_is_m_slices():
    e = mc.derivative("A*x", "A").explicit({"m": 2, "n": 3})
    assert e.shape == (2, 2, 3)
    # Slice i is dy_i/dA: x' in row i, zeros elsewhere.
    assert texts(e)[0] == [["x1", "x2", "x3"], ["0", "0", "0"]]
    assert texts(e)[1] == [["0", "0", "0"], ["x1", "x2", "x3"]]
    assert str(e).startswith("[1, :, :] =\n[x1, x2, x3;\n  0,  0,  0]\n\n[2, :, :] =")
    # As the tutorial draws it: a column of the m matrices.
    assert e.latex() == (
        r"\begin{pmatrix} \begin{bmatrix} x_{1} & x_{2} & x_{3} \\ 0 & 0 & 0 \end{bmatrix} \\ "
        r"\begin{bmatrix} 0 & 0 & 0 \\ x_{1} & x_{2} & x_{3} \end{bmatrix} \end{pmatrix}"
    )


def test_bilinear_form_by_the_matrix_is_the_outer_product():
    e = mc.derivative("y'*A*x", "A", types={"y": ("m",), "x": ("n",)}).explicit({"m": 2, "n": 3})
    assert texts(e) == [["x1*y1", "x2*y1", "x3*y1"], ["x1*y2", "x2*y2", "x3*y2"]]


def test_gram_matrix_by_the_matrix_is_four_dimensional():
    d = mc.derivative("R'*R", "R")
    e = d.explicit({"m": 2, "n": 2})
    assert e.shape == (2, 2, 2, 2)
    entries = texts(e)
    # dF_pq/dR_ij = delta_qj R_ip + delta_pj R_iq (1-based names).
    for p in range(2):
        for q in range(2):
            for i in range(2):
                for j in range(2):
                    terms = []
                    if q == j:
                        terms.append(f"R[{i + 1},{p + 1}]")
                    if p == j:
                        terms.append(f"R[{i + 1},{q + 1}]")
                    want = "0" if not terms else terms[0] if len(terms) == 1 else f"2*{terms[0]}"
                    assert entries[p][q][i][j] == want, (p, q, i, j)
    latex = e.latex()
    assert latex.startswith(r"\begin{bmatrix} \begin{bmatrix} 2 R_{11} & 0 \\ 2 R_{21} & 0 \end{bmatrix} & ")
    assert "[2, 2, :, :] =" in str(e)


def test_stacked_functions_jacobian():
    e = mc.derivative("[3*x^2*y; 2*x + y^8]", "[x; y]").explicit()
    assert texts(e) == [["6*x*y", "3*x^2"], ["2", "8*y^7"]]


def test_neuron_gradient_entries():
    e = mc.derivative("max(0, w'*x + b)", "w").explicit(2)
    assert texts(e) == ["(w1*x1 + w2*x2 + b > 0)*x1", "(w1*x1 + w2*x2 + b > 0)*x2"]
    scalar = mc.derivative("max(0, w'*x + b)", "b").explicit(2)
    assert scalar.shape == () and str(scalar) == "(w1*x1 + w2*x2 + b > 0)"


def test_numerator_layout_gradient_is_a_row():
    e = mc.derivative("w'*x", "w", layout="numerator").explicit(3)
    assert str(e) == "[x1, x2, x3]"
    assert e.latex() == r"\begin{bmatrix} x_{1} & x_{2} & x_{3} \end{bmatrix}"
    column = mc.derivative("w'*x", "w").explicit(3)
    assert str(column) == "[x1;\n x2;\n x3]"


# ------------------------------------------------------------------------- components


def test_component_names_stay_unambiguous():
    # x and x2 both exist: x's entries are x[1], x[2] (x2 would be the variable x2).
    e = mc.derivative("x'*A*x2", "A").explicit(2)
    assert texts(e) == [["x2[1]*x[1]", "x2[2]*x[1]"], ["x2[1]*x[2]", "x2[2]*x[2]"]]
    values = random_values(e.expression, {"m": 2, "n": 2})
    assert np.allclose(e.evaluate(values), np.outer(values["x"], values["x2"]))


def test_symmetric_components_are_shared():
    e = mc.derivative("x'*S*x", "S", types={"S": "symmetric matrix"}).explicit(2)
    assert texts(e) == [["x1^2", "x1*x2"], ["x1*x2", "x2^2"]]
    e = mc.derivative("tr(S*S)", "S", types={"S": "symmetric matrix"}).explicit(2)
    assert texts(e) == [["2*S[1,1]", "2*S[1,2]"], ["2*S[1,2]", "2*S[2,2]"]]


def test_two_digit_indices_in_latex():
    e = mc.derivative("A*x", "x").explicit({"m": 1, "n": 10})
    assert "A_{1,10}" in e.latex() and "A_{19}" in e.latex()


def test_opaque_functions_are_named_components():
    d = mc.derivative("inv(X)", "X")
    e = d.explicit(2)
    # d inv(X)_ij / dX_kl = -inv(X)_ik inv(X)_lj
    assert texts(e)[0][1][0][0] == "-inv(X)[1,1]*inv(X)[1,2]"
    assert texts(e)[0][1][1][0] == "-inv(X)[1,2]^2"
    assert r"\left(X^{-1}\right)_{12}" in e.latex()
    values = {"X": np.array([[2.0, 0.5], [0.3, 1.5]])}
    assert np.allclose(e.evaluate(values), d.evaluate(values))
    assert set(e.components) == {f"inv(X)[{i},{j}]" for i in (1, 2) for j in (1, 2)}


def test_entries_are_expressions_that_evaluate():
    e = mc.derivative("x .* z", "x").explicit(3)
    entry = e.entries[1, 1]
    assert isinstance(entry, mc.Expression)
    assert entry.evaluate({"z2": 4.0}) == 4.0
    assert e.entries[0, 1].evaluate({}) == 0.0


# ----------------------------------------------------------------------------- errors


def test_sizes_over_the_cap_are_refused():
    d = mc.derivative("A*x", "A")
    with pytest.raises(mc.MatrixCalculusError, match="max_explicit_size"):
        d.explicit(13)
    with pytest.raises(mc.MatrixCalculusError, match="max_explicit_entries"):
        mc.derivative("R'*R", "R").explicit(7)
    with mc.resource_limits(max_explicit_entries=3000):
        assert mc.derivative("R'*R", "R").explicit(7).shape == (7, 7, 7, 7)


def test_bad_sizes_are_clear_errors():
    d = mc.derivative("A*x", "A")
    with pytest.raises(mc.MatrixCalculusError, match=r"k is no dimension.*m, n"):
        d.explicit({"k": 2})
    with pytest.raises(mc.MatrixCalculusError, match="whole number"):
        d.explicit({"m": 2.5})
    with pytest.raises(mc.MatrixCalculusError, match="at least 1"):
        d.explicit(0)
    with pytest.raises(mc.MatrixCalculusError, match="mapping"):
        d.explicit("3")


def test_values_of_other_sizes_are_refused():
    e = mc.derivative("A*x", "x").explicit({"m": 2, "n": 3})
    with pytest.raises(mc.EvaluationError, match="m"):
        e.evaluate({"A": np.ones((3, 3)), "x": np.ones(3)})


# ------------------------------------------------------------------------ evaluation


@pytest.mark.parametrize(
    ("f", "wrt", "types"),
    [
        ("A*x", "A", None),
        ("R'*R", "R", None),
        ("y'*A*x", "A", None),
        ("0.5*norm2(W*x - t)^2", "W", None),
        ("softmax(x)", "x", None),
        ("logsumexp(A*x)", "x", None),
        ("sigmoid(W*x + b)", "W", {"b": "vector"}),
        ("det(X)", "X", None),
        ("X*X", "X", None),
        ("x'*S*x", "S", {"S": "symmetric matrix"}),
        ("kron(A, B)", "A", None),
        ("mean(x .* x)", "x", None),
    ],
)
def test_explicit_entries_evaluate_to_the_derivative(f, wrt, types):
    d = mc.derivative(f, wrt, types=types)
    sizes = {name: 2 + k % 2 for k, name in enumerate(["m", "n", "p", "q"])}
    used = {k: v for k, v in sizes.items() if k in {dim for v in d._context.values() for dim in v.shape}}
    e = d.explicit(used)
    values = random_values(d, used, seed=3)
    if f == "det(X)":
        values["X"] = values["X"] + 3 * np.eye(values["X"].shape[0])
    want = d.evaluate(values)
    assert e.shape == np.shape(want)
    assert np.allclose(e.evaluate(values), want, rtol=1e-10, atol=1e-12)


@given(data=st.data())
def test_random_derivatives_explicit_equals_evaluate(data):
    shape = data.draw(st.sampled_from([(), (3,), (3, 3), (3, 2)]))
    expr = data.draw(expressions(shape, depth=2, top=True))
    f = mc.parse(expr.text, types=TYPES)
    names = [n for n in f.variables if n in SHAPES]
    wrt = data.draw(st.sampled_from(names)) if names else None
    if wrt is None:
        return
    note(f"{expr.text} by {wrt}")
    d = mc.derivative(f, wrt)
    e = d.explicit()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    values = {}
    for name in f.variables:
        value = rng.normal(size=SHAPES[name]) * 0.8
        values[name] = (value + value.T) / 2 if name == "S" else value
    want = d.evaluate(values)
    assert np.allclose(e.evaluate(values), want, rtol=1e-9, atol=1e-9)


def test_kronecker_product_entries_are_products():
    # kron(A, B)[(i,k),(j,l)] = A[i,j]*B[k,l], so its derivative by A[p,q] is B[k,l] where i=p, j=q.
    e = mc.derivative("kron(A, B)", "A").explicit(2)
    entries = texts(e)
    for row in range(4):
        for col in range(4):
            i, k = divmod(row, 2)
            j, l = divmod(col, 2)
            for p in range(2):
                for q in range(2):
                    want = f"B[{k + 1},{l + 1}]" if (p, q) == (i, j) else "0"
                    assert entries[row][col][p][q] == want
    assert e.components.keys() == {f"B[{k},{l}]" for k in (1, 2) for l in (1, 2)}


def test_flattened_jacobian_explicit():
    flat = mc.derivative("X'", "X").flatten()
    e = flat.explicit({"m": 2, "n": 3})
    # The commutation matrix: vec(X')[p + 3q] = X[q, p] is vec(X)[q + 2p].
    want = [["1" if col == (r % 3) * 2 + r // 3 else "0" for col in range(6)] for r in range(6)]
    assert texts(e) == want
    assert e.axis_labels() == ["i: entry of vec(X')", "j: entry of vec(X)"]


# --------------------------------------------------------------- sympy as the reference

sympy = pytest.importorskip("sympy")


def to_sympy(text: str) -> object:
    """An entry's text as a sympy expression: A[1,2] -> A_1_2, z[1] -> z_1, ^ -> **."""
    text = re.sub(r"(\w+)\[(\d+),(\d+)\]", r"\1_\2_\3", text)
    text = re.sub(r"(\w+)\[(\d+)\]", r"\1_\2", text)
    return sympy.sympify(text.replace("^", "**"), locals={"exp": sympy.exp, "tanh": sympy.tanh})


def sym_matrix(name: str, rows: int, cols: int) -> object:
    return sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i + 1}_{j + 1}"))


def sym_vector(name: str, n: int) -> object:
    return sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"{name}{i + 1}"))


def _reference_cases() -> list:
    m, n = 2, 3
    A, R, W, X = sym_matrix("A", m, n), sym_matrix("R", m, n), sym_matrix("W", m, n), sym_matrix("X", n, n)
    x, y, z, t = sym_vector("x", n), sym_vector("y", m), sym_vector("z", n), sym_vector("t", m)
    sizes = {"m": m, "n": n}
    return [
        # (f, wrt, types, sizes, F as a sympy matrix, the variable's sympy matrix)
        ("x .* z", "x", None, {"n": n}, x.multiply_elementwise(z), x),
        ("exp(x)", "x", None, {"n": n}, x.applyfunc(sympy.exp), x),
        ("A*x", "x", None, sizes, A * x, x),
        ("A*x", "A", None, sizes, A * x, A),
        ("y'*A*x", "A", {"y": ("m",), "x": ("n",)}, sizes, y.T * A * x, A),
        ("R'*R", "R", None, sizes, R.T * R, R),
        ("X*X", "X", None, {"n": n}, X * X, X),
        ("0.5*norm2(W*x - t)^2", "W", None, sizes, ((W * x - t).T * (W * x - t)) / 2, W),
        ("tanh(A*x)", "x", None, sizes, (A * x).applyfunc(sympy.tanh), x),
    ]


@pytest.mark.parametrize("case", range(len(_reference_cases())))
def test_explicit_entries_equal_sympy_derivatives(case):
    f, wrt, types, sizes, F, V = _reference_cases()[case]
    e = mc.derivative(f, wrt, types=types).explicit(sizes)
    # The derivative's shape layout: f's shape (a column vector has one axis) then the variable's.
    f_shape = () if F.shape == (1, 1) else (F.rows,) if F.cols == 1 else F.shape
    v_shape = (V.rows,) if V.cols == 1 else V.shape
    assert e.shape == f_shape + v_shape
    for f_index in np.ndindex(*f_shape):
        entry = F[f_index[0], f_index[1] if len(f_index) == 2 else 0] if f_shape else F[0, 0]
        for v_index in np.ndindex(*v_shape):
            variable = V[v_index[0], v_index[1] if len(v_index) == 2 else 0]
            want = sympy.diff(entry, variable)
            got = to_sympy(str(e.entries[f_index + v_index]))
            assert sympy.simplify(got - want) == 0, (f_index, v_index, got, want)
