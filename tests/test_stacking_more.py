"""A stack of scalars ``[x; y]`` as the variable of every derivative function, the compiler and
the command line.

Expected values are worked out by hand (f = x1^2*x2 + x2^3: gradient [2*x1*x2; x1^2 + 3*x2^2],
Hessian [2*x2, 2*x1; 2*x1, 6*x2]) and compared with central finite differences in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus import cli
from matrixcalculus.api.expression import Expression
from matrixcalculus.errors import DerivativeError, ShapeError
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.evaluate import evaluate

from .test_stacking import _fd_columns

F = "x1^2*x2 + x2^3"
POINT = {"x1": 0.8, "x2": -1.7}


def _gradient_by_hand(x1: float, x2: float) -> np.ndarray:
    return np.array([2 * x1 * x2, x1**2 + 3 * x2**2])


def _hessian_by_hand(x1: float, x2: float) -> np.ndarray:
    return np.array([[2 * x2, 2 * x1], [2 * x1, 6 * x2]])


def test_derivative_of_order_one_by_a_stack_is_the_gradient() -> None:
    d = mc.derivative(F, "[x1; x2]")
    assert isinstance(d, mc.Expression)
    assert d.shape == (2,)
    expected = _gradient_by_hand(**POINT)
    np.testing.assert_allclose(d.evaluate(POINT), expected, rtol=1e-12)
    f = mc.parse(F)
    np.testing.assert_allclose(_fd_columns(f.evaluate, POINT, ["x1", "x2"]), expected, rtol=1e-7)


def test_derivative_of_order_two_and_hessian_by_a_stack() -> None:
    d2 = mc.derivative(F, "[x1; x2]", order=2)
    h = mc.hessian(F, "[x1; x2]")
    assert isinstance(d2, mc.Expression) and isinstance(h, mc.Expression)
    assert str(d2) == "[2*x2, 2*x1; 2*x1, 6*x2]"
    assert mc.equal(d2, "[2*x2, 2*x1; 2*x1, 6*x2]")
    expected = _hessian_by_hand(**POINT)
    np.testing.assert_allclose(d2.evaluate(POINT), expected, rtol=1e-12)
    np.testing.assert_allclose(h.evaluate(POINT), expected, rtol=1e-12)
    # The finite differences of the gradient (worked out by hand) give the same matrix.
    numeric = _fd_columns(lambda p: _gradient_by_hand(p["x1"], p["x2"]), POINT, ["x1", "x2"])
    np.testing.assert_allclose(numeric, expected, rtol=1e-7)


def test_derivative_of_order_three_by_a_stack() -> None:
    d3 = mc.derivative(F, "[x1; x2]", order=3)
    assert isinstance(d3, mc.Expression)
    assert d3.shape == (2, 2, 2)
    numeric = _fd_columns(lambda p: _hessian_by_hand(p["x1"], p["x2"]), POINT, ["x1", "x2"])
    np.testing.assert_allclose(d3.evaluate(POINT), numeric, atol=1e-7)


def test_jacobian_of_a_stack_in_the_numerator_layout_is_the_same_matrix() -> None:
    # f.shape + wrt.shape = (2, 2), and the numerator layout of a vector by a vector is m x n too.
    j = mc.derivative("[3*x^2*y; 2*x + y^8]", "[x; y]", layout="numerator")
    assert isinstance(j, mc.Expression)
    x, y = 0.9, -1.1
    np.testing.assert_allclose(j.evaluate({"x": x, "y": y}), [[6 * x * y, 3 * x**2], [2, 8 * y**7]], rtol=1e-12)
    d = mc.derivative("[3*x^2*y; 2*x + y^8]", "[x; y]", layout="denominator")
    assert isinstance(d, mc.Expression)
    np.testing.assert_allclose(d.evaluate({"x": x, "y": y}), [[6 * x * y, 2], [3 * x**2, 8 * y**7]], rtol=1e-12)


@pytest.mark.parametrize("order", [1, 2])
def test_check_of_a_stack_agrees_with_differences(order: int) -> None:
    report = mc.check(F, "[x1; x2]", order=order)
    assert not isinstance(report, tuple)
    assert report.ok
    assert report.variable == "[x1; x2]"
    assert report.scale > 0


def test_check_of_a_stack_catches_a_wrong_derivative() -> None:
    wrong = mc.parse("[2*x1*x2; x1^2 + 2*x2^2]")  # 2*x2^2 for 3*x2^2
    report = mc.check(F, "[x1; x2]", wrong)
    assert not isinstance(report, tuple)
    assert not report.ok


def test_check_of_a_list_with_a_stack_and_a_name() -> None:
    reports = mc.check("x1^2*x2 + sum(v)*x2", ["[x1; x2]", "v"], types={"x1": "scalar", "x2": "scalar"})
    assert isinstance(reports, tuple) and len(reports) == 2
    assert all(r.ok for r in reports)


def test_compile_by_a_stack_gives_one_gradient_array() -> None:
    fn = mc.compile(F, "[x1; x2]", ("value", "gradient", "hessian"))
    value, grad, hess = fn(POINT)
    x1, x2 = POINT["x1"], POINT["x2"]
    assert float(value) == pytest.approx(x1**2 * x2 + x2**3)
    np.testing.assert_allclose(grad, _gradient_by_hand(x1, x2), rtol=1e-12)
    np.testing.assert_allclose(hess, _hessian_by_hand(x1, x2), rtol=1e-12)


def test_codegen_by_a_stack_returns_the_stacked_gradient() -> None:
    source = mc.codegen(F, "[x1; x2]")
    namespace: dict = {}
    exec(compile(source, "<codegen>", "exec"), namespace)
    value, grad = namespace["derivatives"](POINT["x1"], POINT["x2"])
    np.testing.assert_allclose(grad, _gradient_by_hand(**POINT), rtol=1e-12)
    assert float(value) == pytest.approx(POINT["x1"] ** 2 * POINT["x2"] + POINT["x2"] ** 3)


def test_cli_prints_the_jacobian_literal(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["[3*x^2*y; 2*x + y^8]", "--wrt", "[x; y]", "--check"]) == 0
    out = capsys.readouterr().out
    assert "df/d[x; y] = [6*x*y, 3*x^2; 2, 8*y^7]" in out
    assert "check: df/d[x; y]" in out and "(ok)" in out
    assert "notice" not in out


def test_cli_stack_with_commas_is_one_variable_and_order_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([F, "--wrt", "[x1, x2]", "--order", "2"]) == 0
    assert "= [2*x2, 2*x1; 2*x1, 6*x2]" in capsys.readouterr().out


def test_cli_notices_a_stacked_variable_absent_from_f(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["x1^2", "--wrt", "[x1; x3]"]) == 0
    out = capsys.readouterr().out
    assert "= [2*x1; 0]" in out
    assert "notice: x3 does not occur" in out


def test_a_stack_of_non_scalars_is_refused() -> None:
    with pytest.raises(DerivativeError, match="each is a scalar, but v is"):
        mc.derivative("sum(v)*a", "[v; a]", types={"v": "vector", "a": "scalar"})


def test_a_stack_inside_a_list_of_mixed_blocks_is_refused() -> None:
    with pytest.raises(DerivativeError, match="is a variable of its own here"):
        mc.derivative(F, ["[x1; x2]", "x1"], order=2)
    with pytest.raises(DerivativeError, match="is a variable of its own here"):
        mc.derivative(F, ("[x1; x2]", "x1"))


# Vectors stacked into a longer vector: the graph builds [u; a; v] from unit vectors and 0/1
# block matrices (the language's type checker still takes scalars only).

U = np.array([0.3, -1.2])
V = np.array([2.0, 0.5, -0.7])
A = 1.9


def _stacked_uav() -> tuple[g.Node, dict[str, g.Var]]:
    u, v, a = g.var("u", "vector", (2,)), g.var("v", "vector", (3,)), g.var("a", "scalar", ())
    return g.stack([u, a, v], 3, 1), {"u": u, "a": a, "v": v}


def test_block_embedding_is_the_zero_one_matrix() -> None:
    p = evaluate(g.block_embedding(5, 2, 3), {})
    np.testing.assert_array_equal(p, [[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ShapeError, match="a block of 3 entries at entry 3"):
        g.block_embedding(5, 3, 3)


def test_vectors_and_a_scalar_stack_into_one_vector() -> None:
    node, variables = _stacked_uav()
    assert node.shape == (6,)
    np.testing.assert_array_equal(evaluate(node, {"u": U, "a": A, "v": V}), [*U, A, *V])
    # Printed as its sum form, which reads back to the same values.
    text = str(Expression(node, variables))
    again = mc.parse(text, types={"u": (2,), "v": (3,), "a": "scalar"})
    np.testing.assert_array_equal(again.evaluate({"u": U, "a": A, "v": V}), [*U, A, *V])


def test_derivatives_through_a_stack_of_vectors_need_no_rule() -> None:
    node, variables = _stacked_uav()
    point = {"u": U, "a": A, "v": V}
    jv = mc.jacobian(Expression(node, variables), "v")
    assert isinstance(jv, mc.Expression)
    np.testing.assert_array_equal(jv.evaluate(point), np.vstack([np.zeros((3, 3)), np.eye(3)]))
    # f = |[u; a; v]|^2: its gradient by u, a, v is twice each part.
    f = Expression(g.contract([node, node], [(0,), (0,)], ()), variables)
    grads = mc.gradient(f, ["u", "a", "v"])
    assert isinstance(grads, tuple)
    for grad, part in zip(grads, (U, A, V), strict=True):
        np.testing.assert_allclose(grad.evaluate(point), 2 * np.asarray(part), rtol=1e-12)
    assert all(r.ok for r in mc.check(f, ["u", "a", "v"], values=point))


def test_a_vector_of_symbolic_length_is_stacked_to_a_sum_of_lengths() -> None:
    # Issue 11: the length of [w; u] is n + 2, a sum dimension (it was refused before).
    n_vector, u = g.var("w", "vector", ("n",)), g.var("u", "vector", (2,))
    stacked = g.stack([n_vector, u], 2, 1)
    assert stacked.shape == (g.dim_sum("n", 2),)
    w_value = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        evaluate(stacked, {"w": w_value, "u": np.array([4.0, 5.0])}), [1.0, 2.0, 3.0, 4.0, 5.0]
    )
    with pytest.raises(ShapeError, match="stacks vectors and scalars, not"):
        g.stack([g.var("M", "matrix", (2, 2)), u], 2, 1)


def test_the_language_stacks_vectors_of_whole_number_length() -> None:
    # Issue 11: [u; v] of vectors is the longer vector (it was refused before).
    e = mc.parse("[u; v]", types={"u": (2,), "v": (3,)})
    assert e.shape == (5,)
    np.testing.assert_array_equal(
        e.evaluate({"u": np.array([1.0, 2.0]), "v": np.array([3.0, 4.0, 5.0])}), [1, 2, 3, 4, 5]
    )


def test_a_stacked_wrt_declares_its_names_scalars_without_a_notice() -> None:
    # x and y are vectors by name (h-z); the stack [x; y] says they are scalars, so the tutorial's
    # example reads as written, with no notice that a name was moved.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jac = mc.jacobian("[3*x^2*y; 2*x + y^8]", "[x; y]")
    assert jac.notices == ()
    x, y = 0.7, -1.3
    want = np.array([[6 * x * y, 3 * x**2], [2.0, 8 * y**7]])
    np.testing.assert_allclose(np.asarray(jac.evaluate({"x": x, "y": y}), dtype=float), want, rtol=1e-12)
