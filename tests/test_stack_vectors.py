"""Stacking vectors in text, MATLAB's concatenation (issue 11).

``[u; v]`` of vectors (names h-z are vectors) is the vector of length n + m, a sum dimension;
``[u', v']`` the same vector read as a row; ``[u, v]`` two columns side by side (n x 2),
``[u'; v']`` two rows (2 x n); ``[A; B]`` and ``[A; x']`` stack rows of matrices, ``[A, B]`` and
``[A, x]`` their columns. The derivative of ``[u; v]`` by ``u`` is the stacked
``[eye(n); zeros(m,n)]``. References: NumPy's ``concatenate``/``vstack``/``hstack`` for values,
central differences of the NumPy formula for derivatives.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import finite_difference

RNG = np.random.default_rng(23)
POINT = {
    "u": RNG.standard_normal(2),
    "v": RNG.standard_normal(3),
    "x": RNG.standard_normal(2),
    "y": RNG.standard_normal(3),
    "a": 0.8,
    "A": RNG.standard_normal((4, 2)),
    "B": RNG.standard_normal((3, 2)),
    "C": RNG.standard_normal((4, 3)),
    "S": RNG.standard_normal((5, 5)),
    "z": RNG.standard_normal(4),
}


def _central(f: Callable[[dict], np.ndarray], point: dict, name: str, h: float = 1e-6) -> np.ndarray:
    """d f / d point[name] by central differences (the library's one), shaped ``f.shape + point[name].shape``."""
    return finite_difference(lambda value: f({**point, name: value}), point[name], h)


def _used(e: mc.Expression) -> dict:
    return {k: POINT[k] for k in e.variables}


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("[u; v]", lambda p: np.concatenate([p["u"], p["v"]])),
        ("[u', v']", lambda p: np.concatenate([p["u"], p["v"]])),
        ("[u; a; v]", lambda p: np.concatenate([p["u"], [p["a"]], p["v"]])),
        ("[u; 2*v; u]", lambda p: np.concatenate([p["u"], 2 * p["v"], p["u"]])),
        ("[u, x]", lambda p: np.stack([p["u"], p["x"]], axis=1)),
        ("[u'; x']", lambda p: np.stack([p["u"], p["x"]], axis=0)),
        ("[A; B]", lambda p: np.vstack([p["A"], p["B"]])),
        ("[A; u']", lambda p: np.vstack([p["A"], p["u"]])),
        ("[A, C]", lambda p: np.hstack([p["A"], p["C"]])),
        ("[C, A*u]", lambda p: np.hstack([p["C"], (p["A"] @ p["u"])[:, None]])),
        ("[u; v] + [x; y]", lambda p: np.concatenate([p["u"] + p["x"], p["v"] + p["y"]])),
        ("[u; v]'*S*[u; v]", lambda p: np.concatenate([p["u"], p["v"]]) @ p["S"] @ np.concatenate([p["u"], p["v"]])),
    ],
)
def test_a_stack_has_numpys_values_and_prints_back_to_the_same_graph(text: str, reference: Callable) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the vector reading type-checks: no name is moved
        e = mc.parse(text)
    assert e.notices == ()
    np.testing.assert_allclose(e.evaluate(_used(e)), reference(POINT), rtol=1e-12)
    # A transposed stack prints as the row literal it is: [u; v]' is [u', v'].
    assert str(e) == text.replace("[u; v]'", "[u', v']")
    again = mc.parse(str(e))
    assert again.node is e.node


def test_the_length_of_a_stack_of_vectors_is_a_sum_dimension() -> None:
    e = mc.parse("[u; v]")
    n, m = e.variables["u"].shape[0], e.variables["v"].shape[0]
    assert e.shape == (g.dim_sum(n, m),)
    assert mc.parse("[u; a; v]").shape == (g.dim_sum(n, m, 1),)
    # Whole-number lengths add up to a whole number.
    assert mc.parse("[u; v]", types={"u": (2,), "v": (3,)}).shape == (5,)
    # A vector multiplied with the stack takes the summed length.
    w = mc.parse("[u; v]'*w").variables["w"]
    assert w.shape == (g.dim_sum(n, m),)
    # A sum as a dimension in the text: ones(n + m) is the stack's length.
    total = mc.parse("[u; v] - ones(n + m)")
    assert total.variables["u"].shape == ("n",) and total.variables["v"].shape == ("m",)


def test_the_derivative_of_a_stack_is_the_stacked_identity() -> None:
    du = mc.derivative("[u; v]", "u")
    assert str(du) == "[eye(n); zeros(m,n)]"
    assert du.latex() == "\\begin{bmatrix} I \\\\ \\mathbf{0} \\end{bmatrix}"
    dv = mc.derivative("[u; v]", "v")
    assert str(dv) == "[zeros(n,m); eye(m)]"
    # Transposed (the denominator layout), the blocks stand side by side.
    assert str(mc.derivative("[u; v]", "u", layout="denominator")) == "[eye(n), zeros(n,m)]"
    stacked = lambda p: np.concatenate([p["u"], p["v"]])  # noqa: E731
    np.testing.assert_allclose(du.evaluate(POINT), _central(stacked, POINT, "u"), atol=1e-9)
    np.testing.assert_allclose(dv.evaluate(POINT), _central(stacked, POINT, "v"), atol=1e-9)
    # The printed Jacobian parses back (a stack of matrices) to the same values.
    np.testing.assert_allclose(mc.parse(str(du)).evaluate({}, dims={"n": 2, "m": 3}), du.evaluate(POINT))


@pytest.mark.parametrize(
    ("f", "wrt", "printed"),
    [
        ("norm2([u; v])^2", "u", "2*u"),
        ("norm2([u; 3*v])^2", "v", "18*v"),
        ("sum([u; v])", "u", "ones(n)"),
        ("sum([u; a; v])", "a", "1"),
        ("[u; v]'*[x; y]", "y", "v"),
        # Across a sum: d/du of ||[u; v]||^2 + sum(exp([u; v])) = 2u + (the u-part of exp([u; v])).
        ("norm2([u; v])^2 + sum(exp([u; v]))", "u", "2*u + [eye(n), zeros(n,m)]*exp([u; v])"),
        ("norm2([u; v] - w)^2", "u", "2*u - 2*[eye(n), zeros(n,m)]*w"),
    ],
)
def test_derivatives_through_a_stack_read_off_its_parts(f: str, wrt: str, printed: str) -> None:
    # d/du ||[u; v]||^2 = 2u: the transposed block picks u out of the stack.
    assert str(mc.derivative(f, wrt)) == printed


LOSSES = [
    ("norm2([u; v])^2", "u", lambda p: np.sum(np.concatenate([p["u"], p["v"]]) ** 2)),
    ("sum(exp([u; v]))", "v", lambda p: np.sum(np.exp(np.concatenate([p["u"], p["v"]])))),
    ("sum(tanh([A; B]*u))", "A", lambda p: np.sum(np.tanh(np.vstack([p["A"], p["B"]]) @ p["u"]))),
    ("[u; v]'*S*[u; v]", "v", lambda p: (lambda s: s @ p["S"] @ s)(np.concatenate([p["u"], p["v"]]))),
    ("norm2([A, C]'*z)^2/2", "C", lambda p: np.sum((np.hstack([p["A"], p["C"]]).T @ p["z"]) ** 2) / 2),
    ("sum(sin([u; a; v]))", "a", lambda p: np.sum(np.sin(np.concatenate([p["u"], [p["a"]], p["v"]])))),
]


@pytest.mark.parametrize(("f", "wrt", "reference"), LOSSES)
def test_gradients_through_stacks_match_central_differences(f: str, wrt: str, reference: Callable) -> None:
    grad = mc.gradient(f, wrt)
    used = {k: POINT[k] for k in mc.parse(f).variables}
    np.testing.assert_allclose(grad.evaluate(used), _central(reference, used, wrt), rtol=1e-6, atol=1e-7)
    assert mc.check(f, wrt).ok


@pytest.mark.parametrize(("f", "wrt"), [("norm2([u; v])^4", "u"), ("sum(exp([u; v]))", "v"), ("[u; v]'*S*[u; v]", "u")])
def test_second_derivatives_through_stacks_match_central_differences(f: str, wrt: str) -> None:
    grad = mc.gradient(f, wrt)
    hess = mc.hessian(f, wrt)
    used = {k: POINT[k] for k in mc.parse(f).variables}
    np.testing.assert_allclose(hess.evaluate(used), _central(grad.evaluate, used, wrt), rtol=1e-6, atol=1e-6)
    assert mc.check(f, wrt, order=2).ok


def test_compiled_stacks_equal_evaluation() -> None:
    for f, wrt in [("sum(exp([u; v]))", "v"), ("[u; v]'*S*[u; v]", "u"), ("sum(tanh([A; B]*u))", "A")]:
        used = {k: POINT[k] for k in mc.parse(f).variables}
        value, grad = mc.compile(f, wrt=wrt)(used)
        np.testing.assert_allclose(value, mc.parse(f).evaluate(used), rtol=1e-12)
        np.testing.assert_allclose(grad, mc.gradient(f, wrt).evaluate(used), rtol=1e-12)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[A; C]", ["cannot stack [A; C]", "as many columns", "C"]),
        ("[u, v]", ["cannot stack [u, v]", "as many rows"]),
        ("[u; v']", ["cannot stack [u; v']", "one column", "v'"]),
        ("[u, v; v, u]", ["block matrices"]),
    ],
)
def test_stacks_that_do_not_fit_are_errors_naming_the_entry(text: str, words: list[str]) -> None:
    types = {"u": (2,), "v": (3,), "A": (4, 2), "C": (4, 3)}
    with pytest.raises(mc.MatrixCalculusError) as info:
        mc.parse(text, types=types)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_evaluation_sizes_the_parts_of_a_summed_length() -> None:
    # w has length n + m; with u of length 2 given, w of length 5 makes v's length 3.
    e = mc.parse("[u; v]'*w")
    value = e.evaluate({"u": POINT["u"], "v": POINT["v"], "w": np.arange(5.0)})
    assert value == pytest.approx(np.concatenate([POINT["u"], POINT["v"]]) @ np.arange(5.0))
    with pytest.raises(mc.EvaluationError, match="must be m \\+ n = 5"):
        e.evaluate({"u": POINT["u"], "v": POINT["v"], "w": np.arange(4.0)})


def test_a_stacked_wrt_of_scalars_still_reads_its_names_as_scalars() -> None:
    # The tutorials' Jacobian: [x; y] as wrt declares x and y scalars, with no notice.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jac = mc.jacobian("[3*x^2*y; 2*x + y^8]", "[x; y]")
    assert str(jac) == "[6*x*y, 3*x^2; 2, 8*y^7]"
