"""Our derivatives against SymPy's matrix derivatives, evaluated on the same random inputs.

SymPy differentiates ``MatrixSymbol`` expressions with ``.diff``. Its conventions differ from ours
in places, said at each case:

* a scalar (SymPy: a 1 x 1 matrix) w.r.t. a vector or matrix: the gradient, with the variable's
  shape -- the same as ours (a column vector ``n x 1`` in SymPy, a 1-d array in ours);
* a vector w.r.t. a vector: SymPy gives the transpose of our (numerator-layout) Jacobian, e.g.
  ``(A*x).diff(x) == A.T`` where we give ``A``;
* a matrix w.r.t. a matrix: SymPy's array has the variable's axes first (``wrt.shape + f.shape``),
  ours last (``f.shape + wrt.shape``).

SymPy 1.14 leaves ``Determinant(X).diff(X)`` unevaluated and gives 0 for
``log(Determinant(X)).diff(X)``, so the determinant cases use SymPy on a matrix of explicit scalar
symbols (``sympy.Matrix``), differentiated entry by entry (the constant factors enter as numbers).

Then the cases the issue names as beyond SymPy: ``a'*sin(X)*b``, ``a'*log(sin(X))*b``,
``tr(X)*tr(X)``, ``tr(X*X*X*X)``, ``det(inv(X))``. Ours are checked against central finite
differences. SymPy 1.14 in fact handles the first four (its results are compared with ours); for
``det(inv(X))`` its result is unevaluated, and ``.doit()`` of it is 0, which is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import sympy as sp

import matrixcalculus as mc

RTOL = 1e-9  # ours vs SymPy: both exact formulas
RTOL_FD = 1e-6
H = 1e-6
M, N, P = 4, 3, 5  # distinct sizes, so that a wrong transpose cannot go unnoticed

rng = np.random.default_rng(20240611)


def _square(n: int) -> np.ndarray:
    return 0.5 * rng.normal(size=(n, n)) + n * np.eye(n)


# Numeric values shared by SymPy and us: 1-d arrays for our vectors, n x 1 columns for SymPy.
VALUES: dict[str, np.ndarray] = {
    "a": rng.normal(size=N),
    "b": rng.normal(size=N),
    "c": rng.normal(size=N),
    "x": rng.normal(size=N),
    "A": rng.normal(size=(M, N)),
    "B": rng.normal(size=(N, N)),
    "Q": _square(N),
    "R": _square(N),
    "X": _square(N),
    "Y": rng.normal(size=(M, N)),
    "C": rng.normal(size=(N, P)),
    "D": rng.normal(size=(P, M)),
    "u": rng.normal(size=M),
}


def _symbols(names: str) -> dict[str, sp.MatrixSymbol]:
    out = {}
    for name in names.split():
        shape = VALUES[name].shape
        out[name] = sp.MatrixSymbol(name, shape[0], shape[1] if len(shape) == 2 else 1)
    return out


def _sympy_value(expr: Any, symbols: dict[str, sp.MatrixSymbol]) -> np.ndarray:
    """SymPy's expression with the shared values substituted, as a float array."""
    subs = {s: sp.ImmutableMatrix(VALUES[name].reshape(s.shape)) for name, s in symbols.items()}
    value = expr.subs(subs)
    if hasattr(value, "as_explicit"):
        value = value.as_explicit()
    value = value.doit()
    if hasattr(value, "as_explicit"):
        value = value.as_explicit()
    if isinstance(value, sp.NDimArray):
        return np.array(value.tolist(), dtype=float)
    return np.array(sp.Matrix(value).tolist(), dtype=float)


def _vectors(text: str) -> dict[str, str]:
    """The cases' a, b, c, d are vectors, as in SymPy's symbols; by name (a-g) they would be scalars."""
    return {name: "vector" for name in re.findall(r"\b[a-d]\b", text)}


def _ours(text: str, wrt: str, types: dict[str, Any] | None = None) -> np.ndarray:
    d = mc.derivative(text, wrt, types={**_vectors(text), **(types or {})})
    assert isinstance(d, mc.Expression)
    return np.asarray(d.evaluate(VALUES))


# ------------------------------------------------------------------------- SymPy handles these


def _scalar_gradient(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient of a scalar: same convention; SymPy's vector is an n x 1 column."""
    return ours, theirs.reshape(ours.shape)


def _vector_jacobian(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector w.r.t. vector: SymPy's is the transpose of our numerator-layout Jacobian."""
    return ours, theirs.T


def _matrix_by_matrix(ours: np.ndarray, theirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matrix w.r.t. matrix: SymPy's axes are (wrt, f), ours (f, wrt)."""
    return ours, np.transpose(theirs, (2, 3, 0, 1))


Case = tuple[str, str, str, str, Callable[[dict[str, sp.MatrixSymbol]], Any], Callable[..., Any]]

CASES: list[Case] = [
    # (ours, wrt, symbols, id, SymPy's expression, how to line up the layouts)
    ("a'*x", "x", "a x", "linear a'x", lambda s: s["a"].T * s["x"], _scalar_gradient),
    ("u'*A*x", "x", "u A x", "bilinear u'Ax wrt x", lambda s: s["u"].T * s["A"] * s["x"], _scalar_gradient),
    ("u'*A*x", "A", "u A x", "bilinear u'Ax wrt A", lambda s: s["u"].T * s["A"] * s["x"], _scalar_gradient),
    ("a'*X'*b", "X", "a X b", "linear a'X'b", lambda s: s["a"].T * s["X"].T * s["b"], _scalar_gradient),
    ("A*x", "x", "A x", "Jacobian of A*x", lambda s: s["A"] * s["x"], _vector_jacobian),
    ("x'*B*x", "x", "B x", "quadratic x'Bx", lambda s: s["x"].T * s["B"] * s["x"], _scalar_gradient),
    (
        "(x - a)'*(x - a)",
        "x",
        "x a",
        "squared distance",
        lambda s: (s["x"] - s["a"]).T * (s["x"] - s["a"]),
        _scalar_gradient,
    ),
    ("b'*Y'*Y*c", "Y", "b Y c", "b'Y'Yc", lambda s: s["b"].T * s["Y"].T * s["Y"] * s["c"], _scalar_gradient),
    (
        "tr(A*X*C*D)",
        "X",
        "A X C D",
        "tr(AXCD)",
        lambda s: sp.Trace(s["A"] * s["X"] * s["C"] * s["D"]),
        _scalar_gradient,
    ),
    ("tr(Y'*Y)", "Y", "Y", "tr(Y'Y)", lambda s: sp.Trace(s["Y"].T * s["Y"]), _scalar_gradient),
    ("tr(Y*B*Y')", "Y", "Y B", "tr(YBY')", lambda s: sp.Trace(s["Y"] * s["B"] * s["Y"].T), _scalar_gradient),
    ("tr(Q*X*R*X)", "X", "Q X R", "tr(QXRX)", lambda s: sp.Trace(s["Q"] * s["X"] * s["R"] * s["X"]), _scalar_gradient),
    ("a'*inv(X)*b", "X", "a X b", "a'inv(X)b", lambda s: s["a"].T * s["X"].I * s["b"], _scalar_gradient),
    (
        "tr(Q*inv(X)*R)",
        "X",
        "Q X R",
        "tr(Q inv(X) R)",
        lambda s: sp.Trace(s["Q"] * s["X"].I * s["R"]),
        _scalar_gradient,
    ),
    ("inv(X)", "X", "X", "inverse (4-d)", lambda s: s["X"].I, _matrix_by_matrix),
    ("X*Q", "X", "X Q", "X*Q (4-d)", lambda s: s["X"] * s["Q"], _matrix_by_matrix),
]


@pytest.mark.parametrize("case", CASES, ids=[c[3] for c in CASES])
def test_matches_sympy(case: Case) -> None:
    text, wrt, names, _, build, line_up = case
    symbols = _symbols(names)
    theirs = _sympy_value(build(symbols).diff(symbols[wrt]), symbols)
    ours, theirs = line_up(_ours(text, wrt), theirs)
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=RTOL * max(1.0, float(np.abs(theirs).max())))


# Determinants: SymPy on explicit scalar entries (see the module docstring).


def _explicit_gradient(build: Callable[..., Any], names: list[str]) -> np.ndarray:
    """d f/dX[i,j] for a scalar f of X (scalar symbols) and constants (numbers), at the shared values."""
    rows, cols = VALUES["X"].shape
    X = sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"X_{i}{j}"))
    constants = {n: sp.Matrix(VALUES[n]) for n in names if n != "X"}
    f = build(X, **constants)
    at = {X[i, j]: float(VALUES["X"][i, j]) for i, j in np.ndindex(rows, cols)}
    grad = sp.Matrix(rows, cols, lambda i, j: sp.diff(f, X[i, j]).xreplace(at))
    return np.array(grad.evalf().tolist(), dtype=float)


DETERMINANTS: list[tuple[str, list[str], Callable[..., Any]]] = [
    # (method="lu": the same polynomial as the default Bareiss, much faster with float constants)
    ("det(X)", ["X"], lambda X: X.det(method="lu")),
    ("logdet(X)", ["X"], lambda X: sp.log(X.det(method="lu"))),
    ("det(Q*X*R)", ["Q", "X", "R"], lambda X, Q, R: (Q * X * R).det(method="lu")),
    ("det(X'*Q*X)", ["Q", "X"], lambda X, Q: (X.T * Q * X).det(method="lu")),
    ("tr(Q*inv(X))", ["Q", "X"], lambda X, Q: (Q * X.adjugate()).trace() / X.det(method="lu")),
]


@pytest.mark.parametrize("case", DETERMINANTS, ids=[c[0] for c in DETERMINANTS])
def test_determinants_match_sympy_on_entries(case: tuple[str, list[str], Callable[..., Any]]) -> None:
    text, names, build = case
    theirs = _explicit_gradient(build, names)
    ours = _ours(text, "X")
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(theirs).max())))


def test_sympy_layout_notes_hold() -> None:
    """The conventions assumed above, checked on SymPy itself."""
    A, x = sp.MatrixSymbol("A", 3, 4), sp.MatrixSymbol("x", 4, 1)
    assert (A * x).diff(x) == A.T  # vector by vector: the transpose of our A
    X = sp.MatrixSymbol("X", 3, 4)
    assert X.diff(X).shape == (3, 4, 3, 4)
    assert (sp.Trace(X.T * A)).diff(X) == A  # scalar by matrix: the gradient, like ours


# ------------------------------------------------------------------------- beyond SymPy (per the issue)

HARD: list[tuple[str, tuple[float, float] | None]] = [
    # (expression, range to draw X from; None: a well-conditioned X)
    ("a'*sin(X)*b", None),
    ("a'*log(sin(X))*b", (0.3, 2.8)),  # sin(X) > 0
    ("tr(X)*tr(X)", None),
    ("tr(X*X*X*X)", None),
    ("det(inv(X))", None),
]


def _hard_values(text: str, x_range: tuple[float, float] | None) -> dict[str, np.ndarray]:
    local = np.random.default_rng(7)
    X = 0.5 * local.normal(size=(N, N)) + N * np.eye(N) if x_range is None else local.uniform(*x_range, size=(N, N))
    values = {"a": local.normal(size=N), "b": local.normal(size=N), "X": X}
    return {k: v for k, v in values.items() if k in mc.parse(text, types=_vectors(text)).variables}


def _ours_at(text: str, values: dict[str, np.ndarray]) -> np.ndarray:
    d = mc.derivative(text, "X", types=_vectors(text))
    assert isinstance(d, mc.Expression)
    return np.asarray(d.evaluate(values))


def _fd_gradient(text: str, values: dict[str, np.ndarray]) -> np.ndarray:
    f = mc.parse(text, types=_vectors(text))
    x0 = values["X"]
    out = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        e = np.zeros_like(x0)
        e[idx] = H
        out[idx] = (f.evaluate({**values, "X": x0 + e}) - f.evaluate({**values, "X": x0 - e})) / (2 * H)
    return out


@pytest.mark.parametrize("case", HARD, ids=[c[0] for c in HARD])
def test_beyond_sympy_matches_finite_differences(case: tuple[str, tuple[float, float] | None]) -> None:
    text, x_range = case
    values = _hard_values(text, x_range)
    ours = _ours_at(text, values)
    fd = _fd_gradient(text, values)
    np.testing.assert_allclose(ours, fd, rtol=RTOL_FD, atol=RTOL_FD * max(1.0, float(np.abs(fd).max())))


def _hard_sympy(text: str, s: dict[str, sp.MatrixSymbol]) -> Any:
    a, b, X = s["a"], s["b"], s["X"]
    return {
        "a'*sin(X)*b": lambda: a.T * X.applyfunc(sp.sin) * b,
        "a'*log(sin(X))*b": lambda: a.T * X.applyfunc(sp.sin).applyfunc(sp.log) * b,
        "tr(X)*tr(X)": lambda: sp.Trace(X) * sp.Trace(X),
        "tr(X*X*X*X)": lambda: sp.Trace(X * X * X * X),
        "det(inv(X))": lambda: sp.Determinant(X.I),
    }[text]()


@pytest.mark.parametrize("case", HARD, ids=[c[0] for c in HARD])
def test_beyond_sympy_where_sympy_answers_it_agrees(case: tuple[str, tuple[float, float] | None]) -> None:
    """What SymPy makes of these cases, checked without assuming its version.

    SymPy 1.14 differentiates the first four (the issue's claim predates it): its value must equal
    ours. For ``det(inv(X))`` it returns an unevaluated ``Derivative`` whose ``.doit()`` is 0, which
    is wrong (the gradient is ``-det(inv(X))*inv(X)'``, never 0): then ours must be that nonzero
    value. Should SymPy learn it, its value must again equal ours.
    """
    text, x_range = case
    values = _hard_values(text, x_range)
    s = {"a": sp.MatrixSymbol("a", N, 1), "b": sp.MatrixSymbol("b", N, 1), "X": sp.MatrixSymbol("X", N, N)}
    subs = {sym: sp.ImmutableMatrix(values[k].reshape(sym.shape)) for k, sym in s.items() if k in values}
    ours = _ours_at(text, values)
    derivative = _hard_sympy(text, s).diff(s["X"])
    theirs = None if derivative.has(sp.Derivative) else derivative.subs(subs).doit()
    if theirs is None or theirs == 0 or getattr(theirs, "is_ZeroMatrix", False):
        assert text == "det(inv(X))", f"SymPy no longer differentiates {text}: {derivative}"
        assert np.abs(ours).max() > 1e-3  # SymPy is unevaluated or wrong (0); ours is the true gradient
        return
    theirs = np.array(sp.Matrix(theirs.as_explicit()).tolist(), dtype=float)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9 * max(1.0, float(np.abs(theirs).max())))


def test_det_of_inverse_is_also_checked_against_the_closed_form() -> None:
    """d det(inv(X))/dX = -det(inv(X))*inv(X)' (Matrix Cookbook), evaluated directly."""
    values = _hard_values("det(inv(X))", None)
    X = values["X"]
    expected = -np.linalg.det(np.linalg.inv(X)) * np.linalg.inv(X).T
    np.testing.assert_allclose(_ours_at("det(inv(X))", values), expected, rtol=1e-10, atol=1e-14)
