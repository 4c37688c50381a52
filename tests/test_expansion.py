"""MATLAB's implicit expansion (issue 11): a vector beside a matrix is repeated over it.

``W*X + b`` with ``b`` a column of the rows' length adds ``b`` to every column, ``X*W + b'``
adds the row ``b'`` to every row; the same for ``-``, ``.*``, ``./``, ``.^``, comparisons and
``max``/``min``. The graph holds the expansion as a product with ``ones`` (``b*ones(n)'``), so a
derivative sums over the repeated axis: d/db of ``sum(W*X + b)`` is ``n*ones(m)``.

References are independent of the library: values are NumPy's broadcasting (``b[:, None]``),
derivatives are written by hand from the sums, and every derivative is compared with central
differences of the NumPy formula.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.numeric.check import finite_difference

BIAS = {"b": "vector"}
RNG = np.random.default_rng(11)
M, K, N = 3, 4, 5  # W is M x K, X is K x N: W*X is M x N
POINT = {
    "W": RNG.standard_normal((M, K)),
    "X": RNG.standard_normal((K, N)),
    "b": RNG.standard_normal(M),
    "c": RNG.standard_normal(N),
    "a": 0.7,
}


def _central(f: Callable[[dict], np.ndarray], point: dict, name: str, h: float = 1e-6) -> np.ndarray:
    """d f / d point[name] by central differences (the library's one), shaped ``f.shape + point[name].shape``."""
    return finite_difference(lambda value: f({**point, name: value}), point[name], h)


# ----------------------------------------------------------------------------- typing


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        ("W*X + b", lambda v: v["W"] @ v["X"] + v["b"][:, None]),
        ("W*X - b", lambda v: v["W"] @ v["X"] - v["b"][:, None]),
        ("b - W*X", lambda v: v["b"][:, None] - v["W"] @ v["X"]),
        ("W*X .* b", lambda v: (v["W"] @ v["X"]) * v["b"][:, None]),
        ("W*X ./ b", lambda v: (v["W"] @ v["X"]) / v["b"][:, None]),
        ("W*X > b", lambda v: (v["W"] @ v["X"] > v["b"][:, None]).astype(float)),
        ("max(W*X, b)", lambda v: np.maximum(v["W"] @ v["X"], v["b"][:, None])),
        ("min(b, W*X)", lambda v: np.minimum(v["b"][:, None], v["W"] @ v["X"])),
        ("X'*W' + b'", lambda v: v["X"].T @ v["W"].T + v["b"][None, :]),
        ("W*X + c'", lambda v: v["W"] @ v["X"] + v["c"][None, :]),
        ("W*X .* c'", lambda v: (v["W"] @ v["X"]) * v["c"][None, :]),
        ("a + b + W*X", lambda v: v["a"] + v["b"][:, None] + v["W"] @ v["X"]),
    ],
)
def test_a_vector_beside_a_matrix_is_repeated_as_numpy_broadcasts(text: str, reference: Callable) -> None:
    e = mc.parse(text, types={"b": "vector", "c": "vector"})
    assert len(e.shape) == 2
    used = {k: POINT[k] for k in e.variables}
    np.testing.assert_allclose(e.evaluate(used), reference(POINT), rtol=1e-12)


def test_the_vector_takes_the_length_of_the_rows_or_columns() -> None:
    # Dimensions unify as usual: a column b has W's rows, a row b' has X*W's columns.
    column = mc.parse("W*X + b", types=BIAS)
    assert column.variables["b"].shape == (column.variables["W"].shape[0],)
    row = mc.parse("X*W + b'", types=BIAS)
    assert row.variables["b"].shape == (row.variables["W"].shape[1],)
    with pytest.raises(mc.ShapeError, match="rows"):
        mc.parse("W*X + b", types={"W": (3, 4), "X": (4, 5), "b": (5,)})


def test_a_column_and_a_row_are_not_an_outer_sum() -> None:
    # MATLAB would make a matrix of x_i + y_j; here that is a missing transpose, said so with the
    # way to write the outer sum.
    with pytest.raises(mc.ShapeError, match=r"transpose one of them.*\(x\*ones\(m\)'\) \+ \(ones\(n\)\*y'\)"):
        mc.parse("x + y'", types={"x": ("n",), "y": ("m",)})


def test_an_undeclared_scalar_bias_is_still_a_scalar_with_a_notice() -> None:
    e = mc.parse("W*X + b")
    assert e.variables["b"].kind == "scalar"
    assert any("b is a scalar added to every entry of W*X" in n for n in e.notices)
    assert not mc.parse("W*X + b", types=BIAS).notices


def test_python_builders_expand_as_the_parser() -> None:
    W, X, b = mc.matrix("W"), mc.matrix("X"), mc.vector("b")
    for built, text in [
        (W @ X + b, "W*X + b"),
        (X @ W + b.T, "X*W + b'"),
        (b - W @ X, "b - W*X"),
        ((W @ X) * b, "W*X .* b"),
        ((W @ X) / b, "W*X ./ b"),
    ]:
        assert built.node is mc.parse(text, types=BIAS).node, text
    with pytest.raises(mc.ShapeError, match="needs its number of rows"):
        mc.matrix("A", 3, 4) + mc.vector("v", 4)


# ----------------------------------------------------------------------------- derivatives


def test_the_bias_gradient_of_a_sum_is_a_count_times_ones() -> None:
    # sum_ij (W*X)_ij + b_i: each b_i is added N times.
    # The count p is X's number of columns; X is not in the result, so the size prints as the
    # sum of ones that it is (a bare p would read back as a variable named p).
    grad = mc.gradient("sum(W*X + b)", "b", types=BIAS)
    assert str(grad) == "sum(ones(p))*ones(m)"
    assert "diag" not in str(grad)
    np.testing.assert_allclose(grad.evaluate(POINT), np.full(M, N))
    row = mc.gradient("sum(X*W + b')", "b", types=BIAS)
    assert str(row) == "sum(ones(m))*ones(p)"
    # Where a variable of the result carries the dimension (y has length n), the size prints by
    # its name.
    assert str(mc.gradient("mean(x) + x'*y", "x")) == "ones(n)/n + y"


LOSSES = [
    ("sum(W*X + b)", lambda v: np.sum(v["W"] @ v["X"] + v["b"][:, None])),
    ("sum(tanh(W*X + b))", lambda v: np.sum(np.tanh(v["W"] @ v["X"] + v["b"][:, None]))),
    ("norm2(W*X + b)", lambda v: np.linalg.norm(v["W"] @ v["X"] + v["b"][:, None])),
    ("sum(sum((W*X - b).^2))", lambda v: np.sum((v["W"] @ v["X"] - v["b"][:, None]) ** 2)),
    ("sum(W*X .* b)", lambda v: np.sum((v["W"] @ v["X"]) * v["b"][:, None])),
    ("sum(exp(X'*W' + b'))", lambda v: np.sum(np.exp(v["X"].T @ v["W"].T + v["b"][None, :]))),
    ("sum(W*X ./ b)", lambda v: np.sum((v["W"] @ v["X"]) / v["b"][:, None])),
]


@pytest.mark.parametrize(("text", "reference"), LOSSES)
@pytest.mark.parametrize("name", ["b", "W"])
def test_gradients_through_an_expansion_match_central_differences(text: str, reference: Callable, name: str) -> None:
    point = dict(POINT, b=np.abs(POINT["b"]) + 0.5)  # away from 0 for ./ b
    grad = mc.gradient(text, name, types=BIAS)
    np.testing.assert_allclose(grad.evaluate(point), _central(reference, point, name), rtol=1e-6, atol=1e-7)
    assert mc.check(text, name, types=BIAS).ok


@pytest.mark.parametrize(("text", "reference"), LOSSES[1:4])
def test_hessians_through_an_expansion_match_central_differences(text: str, reference: Callable) -> None:
    grad = mc.gradient(text, "b", types=BIAS)
    hess = mc.hessian(text, "b", types=BIAS)
    np.testing.assert_allclose(
        hess.evaluate(POINT), _central(lambda v: grad.evaluate(v), POINT, "b"), rtol=1e-6, atol=1e-6
    )
    mixed = mc.derivative(text, ("W", "b"), types=BIAS)
    assert mc.check(text, ("W", "b"), mixed, types=BIAS).ok
    assert mc.check(text, "b", types=BIAS, order=2).ok


def test_the_neuron_layer_gradient_by_its_bias() -> None:
    # 0.5*||relu(W*X + b)||^2: d/db = (relu(Z) .* (Z > 0))*ones(N), Z = W*X + b 1'.
    text = "0.5*norm2(relu(W*X + b))^2"
    grad = mc.gradient(text, "b", types=BIAS)
    z = POINT["W"] @ POINT["X"] + POINT["b"][:, None]
    np.testing.assert_allclose(grad.evaluate(POINT), (np.maximum(z, 0) * (z > 0)).sum(axis=1), rtol=1e-12)


# ----------------------------------------------------------------------------- compiled code


@pytest.mark.parametrize(("text", "reference"), LOSSES[:5])
def test_compiled_code_equals_numpy_broadcasting(text: str, reference: Callable) -> None:
    fn = mc.compile(text, wrt=["W", "b"], derivatives=("value", "gradient"), types=BIAS)
    used = {k: POINT[k] for k in ("W", "X", "b")}
    value, (grad_w, grad_b) = fn(used)
    np.testing.assert_allclose(value, reference(POINT), rtol=1e-12)
    np.testing.assert_allclose(grad_b, _central(reference, POINT, "b"), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grad_w, mc.gradient(text, "W", types=BIAS).evaluate(used), rtol=1e-12)


def test_compiled_expansion_of_a_matrix_valued_function() -> None:
    fn = mc.compile("tanh(W*X + b)", wrt="b", derivatives=("value", "gradient"), types=BIAS)
    used = {k: POINT[k] for k in ("W", "X", "b")}
    value, jac = fn(used)
    z = np.tanh(POINT["W"] @ POINT["X"] + POINT["b"][:, None])
    np.testing.assert_allclose(value, z, rtol=1e-12)
    np.testing.assert_allclose(
        jac, _central(lambda v: np.tanh(v["W"] @ v["X"] + v["b"][:, None]), POINT, "b"), atol=1e-7
    )
