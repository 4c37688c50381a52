"""Forms chosen by the cost model (issue 15): each choice flips with the sizes, and every form
computes the same values as the interpreter.

The facts checked: ``(T - U*V')*V = T*V - U*(V'*V)`` (distributivity; at rank p the right side
costs about 2 n p^2 + n^2 p multiply-adds against 2 n^2 p and an n x n temporary), and
``X'*diag(d)*X = B'*B`` with ``B = diag(sqrt(d))*X`` when ``d >= 0`` (half the multiply-adds: the
product is symmetric). The sign analysis behind the second is checked on its own.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.cost import Cost, estimate
from matrixcalculus.ir import graph as g
from matrixcalculus.transform.signs import entry_range, nonnegative

MF = "norm2(T - U*V')^2"
MF_TYPES = {"T": "matrix", "U": "matrix", "V": "matrix"}


def _mf_values(m: int, n: int, p: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"T": rng.standard_normal((m, n)), "U": rng.standard_normal((m, p)), "V": rng.standard_normal((n, p))}


@pytest.mark.parametrize(("m", "n", "p", "distributed"), [(200, 150, 3, True), (40, 30, 60, False)])
def test_a_product_over_a_sum_is_distributed_only_when_cheaper(m: int, n: int, p: int, distributed: bool) -> None:
    fn = mc.compile(MF, wrt="U", derivatives=("gradient",), types=MF_TYPES)
    values = _mf_values(m, n, p)
    source = fn.source(values)
    # Distributed: the m x n product U*V' is never formed, V'*V (p x p) is.
    assert ("U @ V.T" not in source) is distributed, source
    assert ("V.T @ V" in source) is distributed, source
    assert ("distributed a product over a sum" in source) is distributed
    (grad,) = fn(values)
    T, U, V = values["T"], values["U"], values["V"]
    np.testing.assert_allclose(grad, -2 * (T - U @ V.T) @ V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, mc.gradient(MF, "U", types=MF_TYPES).evaluate(values), rtol=1e-10, atol=1e-10)


def test_each_signature_gets_its_own_choice() -> None:
    # One compiled function, two size signatures: code (and the choice) per signature.
    fn = mc.compile(MF, wrt="U", derivatives=("gradient",), types=MF_TYPES)
    small_rank, large_rank = _mf_values(120, 100, 2), _mf_values(20, 10, 40)
    assert "V.T @ V" in fn.source(small_rank)
    assert "V.T @ V" not in fn.source(large_rank)
    for values in (small_rank, large_rank):
        (grad,) = fn(values)
        T, U, V = values["T"], values["U"], values["V"]
        np.testing.assert_allclose(grad, 2 * (U @ (V.T @ V) - T @ V), rtol=1e-10, atol=1e-10)


LOGREG = "sum(log(1 + exp(-y .* (X*w))))"
LOGREG_TYPES = {"X": "matrix", "y": "vector", "w": "vector"}


def _logreg_values(n: int, m: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "X": rng.standard_normal((n, m)),
        "y": np.where(rng.random(n) < 0.5, -1.0, 1.0),
        "w": rng.standard_normal(m) / math.sqrt(m),
    }


def _symmetric_product(source: str) -> bool:
    return re.search(r"\((t\d+)\.T @ \1\)", source) is not None


def test_a_hessian_with_a_nonnegative_diagonal_is_a_symmetric_product() -> None:
    # d = y.^2 .* s .* (1 - s), s = sigmoid(...): proved >= 0, so X'*diag(d)*X is B'*B.
    fn = mc.compile(LOGREG, wrt="w", derivatives=("hessian",), types=LOGREG_TYPES)
    values = _logreg_values(60, 20)
    assert _symmetric_product(fn.source(values))
    (hess,) = fn(values)
    X, y, w = values["X"], values["y"], values["w"]
    s = 1 / (1 + np.exp(y * (X @ w)))
    np.testing.assert_allclose(hess, X.T @ (X * (s * (1 - s))[:, None]), rtol=1e-10, atol=1e-12)


def test_one_column_keeps_the_general_product() -> None:
    # With m = 1 the symmetric product saves no multiply-add and costs a square root per row.
    fn = mc.compile(LOGREG, wrt="w", derivatives=("hessian",), types=LOGREG_TYPES)
    values = _logreg_values(50, 1)
    assert not _symmetric_product(fn.source(values))
    np.testing.assert_allclose(
        fn(values)[0], mc.hessian(LOGREG, "w", types=LOGREG_TYPES).evaluate(values), rtol=1e-10, atol=1e-12
    )


def test_a_diagonal_of_unknown_sign_keeps_the_general_product() -> None:
    # 0.5*sum(y .* (X*w).^2) has the Hessian X'*diag(y)*X: y may be negative, no square root of it.
    f = "0.5*sum(y .* (X*w).^2)"
    fn = mc.compile(f, wrt="w", derivatives=("hessian",), types=LOGREG_TYPES)
    rng = np.random.default_rng(2)
    values = {"X": rng.standard_normal((30, 8)), "y": rng.standard_normal(30), "w": rng.standard_normal(8)}
    assert not _symmetric_product(fn.source(values))
    X, y = values["X"], values["y"]
    np.testing.assert_allclose(fn(values)[0], X.T @ (y[:, None] * X), rtol=1e-10, atol=1e-12)
    # Its square is >= 0 whatever y is: then the symmetric product holds.
    g2 = "0.5*sum((y.^2) .* (X*w).^2)"
    fn2 = mc.compile(g2, wrt="w", derivatives=("hessian",), types=LOGREG_TYPES)
    assert _symmetric_product(fn2.source(values))
    np.testing.assert_allclose(fn2(values)[0], X.T @ ((y**2)[:, None] * X), rtol=1e-10, atol=1e-12)


def test_sign_analysis() -> None:
    x = g.var("x", "vector", ("n",))
    y = g.var("y", "vector", ("n",))
    s = g.apply("sigmoid", x)
    one_minus = g.add([g.ones(("n",)), g.contract([s], [(0,)], (0,), -1)])
    assert entry_range(s) == (0.0, 1.0)
    assert entry_range(one_minus) == (0.0, 1.0)
    assert nonnegative(g.contract([s, one_minus], [(0,), (0,)], (0,)))  # s .* (1 - s)
    assert nonnegative(g.contract([y, y], [(0,), (0,)], (0,)))  # y .* y
    assert not nonnegative(y)
    assert not nonnegative(g.contract([y, s], [(0,), (0,)], (0,)))  # y .* s: the sign of y
    assert not nonnegative(g.contract([s, one_minus], [(0,), (0,)], (0,), -1))  # -s .* (1 - s)
    assert nonnegative(g.apply("exp", y)) and not nonnegative(g.apply("tanh", y))
    # A sum over an index is not bounded entry by entry: x'*x >= 0 is beyond this analysis (it says
    # "unknown", never a wrong "yes").
    assert not nonnegative(g.contract([y, x], [(0,), (0,)], ()))


def test_estimate_weighs_traffic() -> None:
    assert estimate(Cost(flops=100, traffic=0)) < estimate(Cost(flops=0, traffic=100))


def test_softmax_cross_entropy_hessian_is_distributed_into_a_symmetric_product() -> None:
    # sum(y)*(A'*diag(s)*A - (A'*s)*(A'*s)'), s = softmax(A*w): the first term is B'*B
    # (s >= 0), which makes distributing the product over the sum the cheaper form.
    f = "-y'*log(softmax(A*w))"
    types = {"A": "matrix", "y": "vector", "w": "vector"}
    rng = np.random.default_rng(3)
    n = 300
    values = {"A": rng.standard_normal((n, n)) / n**0.5, "y": rng.random(n), "w": rng.standard_normal(n)}
    fn = mc.compile(f, wrt="w", derivatives=("hessian",), types=types)
    source = fn.source(values)
    assert "distributed a product over a sum" in source and _symmetric_product(source), source
    A, y, w = values["A"], values["y"], values["w"]
    z = A @ w
    s = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    u = A.T @ s
    np.testing.assert_allclose(
        fn(values)[0], y.sum() * (A.T @ (s[:, None] * A) - np.outer(u, u)), rtol=1e-9, atol=1e-12
    )


def test_attention_row_normalisation_is_a_vector_power() -> None:
    # exp(S) ./ (exp(S)*ones*ones'): the reciprocal of the row sums is taken of the vector of row
    # sums, not of the s x s matrix of its copies (no "** -" of a matrix in the code).
    f = "0.5*norm2((exp(X*W*X') ./ (exp(X*W*X')*ones(s)*ones(s)'))*X - T)^2"
    types = {"X": "matrix", "W": "matrix", "T": "matrix"}
    rng = np.random.default_rng(4)
    values = {
        "X": rng.standard_normal((12, 5)) / 3,
        "W": rng.standard_normal((5, 5)) / 3,
        "T": rng.standard_normal((12, 5)),
    }
    fn = mc.compile(f, wrt="W", derivatives=("gradient",), types=types)
    powers = [s for s in fn._entry(values).program.block.statements if s.op.name == "power"]
    assert powers and all(s.target.rank == 1 for s in powers), fn.source(values)
    (grad,) = fn(values)
    np.testing.assert_allclose(grad, mc.gradient(f, "W", types=types).evaluate(values), rtol=1e-9, atol=1e-12)
    X, W, T = values["X"], values["W"], values["T"]
    # The value is the softmax attention's gradient, written with a row-wise softmax.
    S = X @ W @ X.T
    P = np.exp(S) / np.exp(S).sum(axis=1, keepdims=True)
    R = P @ X - T
    dP = R @ X.T
    dS = P * (dP - (dP * P).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(grad, X.T @ dS @ X, rtol=1e-9, atol=1e-12)


def test_a_factor_shared_by_every_term_is_hoisted() -> None:
    # A*x + A*y = A*(x + y): one matrix-vector product instead of two.
    f = "sum(A*x + A*y)"
    rng = np.random.default_rng(5)
    values = {"A": rng.standard_normal((40, 30)), "x": rng.standard_normal(30), "y": rng.standard_normal(30)}
    fn = mc.compile(f, wrt="x", derivatives=("value",), types={"A": "matrix", "x": "vector", "y": "vector"})
    source = fn.source(values)
    assert "hoisted a factor shared by 2 terms" in source and source.count(" @ ") == 1, source
    A, x, y = values["A"], values["x"], values["y"]
    assert fn(values)[0] == pytest.approx(np.sum(A @ x + A @ y), rel=1e-12)


def test_an_entrywise_factor_is_not_hoisted_across_its_axis() -> None:
    # The Hessian of sum(tanh(tanh(A))) is diagonal: delta(i,k)*delta(j,l)*h[i,j] terms whose
    # deltas share their axes with h entry by entry; hoisting a delta out would sum h.
    f = "sum(tanh(tanh(A)))"
    rng = np.random.default_rng(6)
    values = {"A": rng.standard_normal((3, 3))}
    (hess,) = mc.compile(f, wrt="A", derivatives=("hessian",), dense=True)(values)
    np.testing.assert_allclose(hess, mc.hessian(f, "A").evaluate(values), rtol=1e-10, atol=1e-12)
