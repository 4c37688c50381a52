"""The worked examples of the tutorials our users learn from, exactly as they write them.

Each row states a derivative identity; the test checks the printed form (whitespace aside)
and the value against central finite differences on random float64 inputs.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir.graph import postorder
from matrixcalculus.numeric.check import check_derivative, random_values


def _same(text: str, expected: str) -> bool:
    return text.replace(" ", "") == expected.replace(" ", "")


def _fd_ok(f: str, wrt: str, d: mc.Expression, types: dict | None = None, order: int = 1) -> None:
    expr = mc.parse(f, types=types)
    values = random_values(expr.node_variables(), size=4, seed=1)
    lower = None
    if order == 2:
        first = mc.derivative(expr, wrt)
        lower = first.node
    report = check_derivative(expr.node, d.node, expr.variables[wrt].node, values, order, lower)
    assert report.ok, str(report)


EXAMPLES = [
    # (function, wrt, types, printed derivative)
    ("x^3 + 2*x + 1", "x", None, "3*x^2 + 2"),
    ("10*x^2*y^2", "x", None, "20*x*y^2"),
    ("x + a", "a", {"a": "scalar"}, "ones(n)"),
    ("x + a", "x", {"a": "scalar"}, "eye(n)"),
    ("x + z", "z", None, "eye(n)"),
    ("a*x", "a", {"a": "scalar"}, "x"),
    ("a*x", "x", {"a": "scalar"}, "a*eye(n)"),
    ("x .* z", "x", None, "diag(z)"),
    ("x .* z", "z", None, "diag(x)"),
    ("exp(x)", "x", None, "diag(exp(x))"),
    ("sum(x)", "x", None, "ones(n)"),
    ("A*x", "x", None, "A"),
    ("relu(w'*x + b)", "w", None, "(w'*x + b > 0)*x"),
    ("relu(w'*x + b)", "b", None, "(w'*x + b > 0)"),
    ("y'*A*x", "A", None, "y*x'"),
    ("0.5*norm2(W*x - t)^2", "W", None, "(W*x - t)*x'"),
    ("0.5*norm2(A)^2", "A", None, "A"),
    ("x'*S*x", "S", {"S": "symmetric matrix"}, "x*x'"),
    ("x'*S*x", "x", {"S": "symmetric matrix"}, "2*S*x"),
    ("logdet(X)", "X", None, "inv(X)'"),
    ("x'*A*x", "x", None, "(A + A')*x"),
    ("x'*A*x + c*sin(y)'*x", "x", {"A": "symmetric matrix", "c": "scalar"}, "2*A*x + c*sin(y)"),
]


@pytest.mark.parametrize(("f", "wrt", "types", "expected"), EXAMPLES)
def test_worked_example(f: str, wrt: str, types: dict | None, expected: str) -> None:
    d = mc.derivative(f, wrt, types=types)
    assert _same(str(d), expected), f"d/d{wrt} {f} printed {d}, expected {expected}"
    _fd_ok(f, wrt, d, types)
    # Text output re-parses to the same values.
    reparsed = mc.parse(str(d), types={n: v.kind for n, v in d.variables.items()})
    expr = mc.parse(f, types=types)
    values = random_values(expr.node_variables(), size=4, seed=2)
    n = 4
    np.testing.assert_allclose(
        np.asarray(reparsed.evaluate(values, dims={"n": n, "m": n})),
        np.asarray(d.evaluate(values)),
        rtol=1e-12,
        atol=1e-12,
    )
    assert d.latex()


def test_jacobian_of_ax_wrt_a_is_a_third_order_tensor_in_index_notation() -> None:
    d = mc.derivative("A*x", "A")
    assert d.shape == ("m", "m", "n")
    # d y_i / d A_jk = delta_ij x_k
    assert _same(d.index_notation(), "delta(i,j)*x[k]")
    assert _same(str(d), "delta(i,j)*x[k]")
    _fd_ok("A*x", "A", d)


def test_vjp_collapses_the_tensor() -> None:
    assert _same(str(mc.vjp("A*x", "A", cotangent="g")), "g*x'")
    assert _same(str(mc.jvp("A*x", "A", tangent="V")), "V*x")


def test_rtr_is_a_fourth_order_tensor() -> None:
    d = mc.derivative("R'*R", "R")
    assert d.node.rank == 4
    assert "delta" in d.index_notation()
    _fd_ok("R'*R", "R", d)


@pytest.mark.parametrize(("f", "expected"), [("x'*A*x", "A + A'"), ("0.5*norm2(A*x - b)^2", "A'*A")])
def test_hessians(f: str, expected: str) -> None:
    h = mc.hessian(f, "x")
    assert _same(str(h), expected)
    _fd_ok(f, "x", h, order=2)


def test_backpropagation_through_layers_shares_the_residual() -> None:
    loss = "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2"
    biases = {"b1": "vector", "b2": "vector"}  # bias vectors (names a-g are scalars unless declared)
    gW1, gb1, gW2, gb2 = mc.gradient(loss, ["W1", "b1", "W2", "b2"], types=biases)
    r = "(W2*relu(W1*x + b1) + b2 - t)"
    assert _same(str(gW1), f"((W2'*{r}) .* (W1*x + b1 > 0))*x'")
    assert _same(str(gb1), f"(W2'*{r}) .* (W1*x + b1 > 0)")
    assert _same(str(gW2), f"{r}*relu(W1*x + b1)'")
    assert _same(str(gb2), r[1:-1])
    # One residual node shared by all four results.
    residual = gb2.node
    for g in (gW1, gb1, gW2):
        assert residual in postorder(g.node)
    for name, d in zip(["W1", "b1", "W2", "b2"], (gW1, gb1, gW2, gb2), strict=True):
        _fd_ok(loss, name, d, biases)


def test_gradient_of_non_scalar_is_an_error() -> None:
    with pytest.raises(mc.DerivativeError, match="scalar"):
        mc.gradient("A*x", "x")


def test_variable_that_does_not_occur_gives_zeros() -> None:
    d = mc.derivative("x'*x", "A", types={"A": (3, 4)})
    assert d.shape == (3, 4)
    np.testing.assert_array_equal(d.evaluate({"x": np.ones(2)}), np.zeros((3, 4)))


def test_layout_denominator_is_the_transpose() -> None:
    num = mc.jacobian("A*x", "x")
    den = mc.jacobian("A*x", "x", layout="denominator")
    assert _same(str(num), "A") and _same(str(den), "A'")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_cli_prints_derivative_types_and_check() -> None:
    out = _cli("x'*A*x", "--wrt", "x", "--check")
    assert out.returncode == 0, out.stderr
    assert "df/dx = (A + A')*x" in out.stdout
    assert "A: matrix (n x n)" in out.stdout
    assert "(ok)" in out.stdout


def test_cli_several_wrt_share_a_where_binding() -> None:
    out = _cli(
        "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "--wrt", "W1,b1,W2,b2", "--check", "--types", "b1=vector,b2=vector"
    )
    assert out.returncode == 0, out.stderr
    assert "where" in out.stdout and "t1 = W2*" in out.stdout
    assert "df/db2 = t1\n" in out.stdout
    assert out.stdout.count("(ok)") == 4


def test_cli_options() -> None:
    out = _cli("x'*A*x", "--wrt", "x", "--order", "2", "--types", "A=symmetric", "--latex", "--check")
    assert out.returncode == 0, out.stderr
    assert "2 A" in out.stdout
    out = _cli("A*x", "--wrt", "A", "--index")
    assert "delta(i,j)*x[k]" in out.stdout
    out = _cli("A*x", "--wrt", "x", "--layout", "denominator")
    assert "df/dx = A'" in out.stdout


@pytest.mark.parametrize(
    "bad", [["x'*A*", "--wrt", "x"], ["x'*A*x", "--wrt", "1x"], ["A*x", "--types", "A=3x4", "x=5"]]
)
def test_cli_bad_input_exits_2_without_traceback(bad: list[str]) -> None:
    out = _cli(*bad)
    assert out.returncode == 2
    assert "matrixcalculus: error:" in out.stderr
    assert "Traceback" not in out.stderr
