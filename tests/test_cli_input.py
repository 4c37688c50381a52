"""The command line as a new user types it, and ``--check`` inside each function's domain.

Options before the expression, consistent labels for ``--order 2``, a notice for a variable
that does not occur, ``--vjp``/``--jvp``/``--compare``, and checks of correct derivatives that
need positive or positive definite inputs (they must never report MISMATCH or a domain error).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.cli import run
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import domains, random_values


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "matrixcalculus.cli", *args], capture_output=True, text=True)


def test_options_before_the_expression() -> None:
    result = _cli("--types", "A=symmetric", "x'*A*x", "--wrt", "x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "df/dx = 2*A*x"
    out, _ = run(["--types", "A=symmetric", "c=scalar", "c*x'*A*x", "--wrt", "x"])
    assert out.splitlines()[0] == "df/dx = 2*c*A*x"
    out, _ = run(["--wrt", "x", "--types", "A=symmetric", "x'*A*x"])
    assert out.splitlines()[0] == "df/dx = 2*A*x"


def test_no_expression_is_a_one_line_error() -> None:
    result = _cli("--types", "A=symmetric")
    assert result.returncode == 2
    assert result.stderr.startswith("matrixcalculus: error: no expression given")


def test_order_two_labels_agree_on_every_line() -> None:
    out, status = run(["0.5*norm2(W*x - t)^2", "--wrt", "W", "--order", "2", "--check"])
    assert status == 0
    labelled = [line for line in out.splitlines() if "/dW" in line]
    assert len(labelled) == 3  # result, shape, check
    assert all("d^2f/dW^2" in line for line in labelled), labelled
    assert "df/dW" not in out
    out, _ = run(["x'*A*x", "--wrt", "x", "--order", "3"])
    assert out.splitlines()[0].startswith("d^3f/dx^3")


def test_a_variable_that_does_not_occur_gets_a_notice() -> None:
    result = _cli("x'*A*x", "--wrt", "y")
    assert result.returncode == 0
    assert "notice: y does not occur in x'*A*x" in result.stdout
    assert "zero" in result.stdout
    out, _ = run(["x'*A*x", "--wrt", "x"])
    assert "notice" not in out


def test_vjp_with_a_named_cotangent() -> None:
    # 000: the VJP of y = Ax w.r.t. A is dL/dy x'.
    out, status = run(["A*x", "--wrt", "A", "--vjp", "g"])
    assert status == 0
    assert out.splitlines()[0] == "vjp of f w.r.t. A with cotangent g = g*x'"
    assert "g: the cotangent" in out
    out, _ = run(["A*x", "--wrt", "x", "--vjp", "dy"])
    assert out.splitlines()[0] == "vjp of f w.r.t. x with cotangent dy = A'*dy"


def test_jvp_with_a_named_tangent() -> None:
    out, status = run(["A*x", "--wrt", "A", "--jvp", "V"])
    assert status == 0
    assert out.splitlines()[0] == "jvp of f w.r.t. A along V = V*x"
    out, _ = run(["x'*A*x", "--wrt", "x", "--jvp", "v"])
    assert mc.equal(out.splitlines()[0].split(" = ")[1], "v'*(A + A')*x")


def test_vjp_and_jvp_errors_are_library_errors() -> None:
    for args in (
        ["A*x", "--wrt", "A", "--vjp", "x"],  # the cotangent's name is taken
        ["A*x", "--wrt", "A", "--vjp", "g", "--jvp", "V"],
        ["A*x", "--wrt", "A,x", "--jvp", "V"],
        ["A*x", "--wrt", "A", "--vjp", "g", "--check"],
    ):
        result = _cli(*args)
        assert result.returncode == 2, args
        assert result.stderr.startswith("matrixcalculus: error:") and "Traceback" not in result.stderr


def test_compare_exit_status() -> None:
    result = _cli("x'*A*x", "--wrt", "x", "--compare", "2*A*x")
    assert result.returncode == 1
    assert "compare: not equal" in result.stdout and "counterexample" in result.stdout
    result = _cli("x'*A*x", "--wrt", "x", "--compare", "A*x + A'*x")
    assert result.returncode == 0
    assert "compare: equal" in result.stdout
    result = _cli("(A + A')*x", "--compare", "A*x + A'*x")
    assert result.returncode == 0


# ---------------------------------------------------------------------------- domains of checks

DOMAIN_CASES = [
    ("sum(log(x))", "x"),
    ("sum(sqrt(x))", "x"),
    ("sum(x.^0.5)", "x"),
    ("sum(x.^(1/3))", "x"),
    ("sum(x.^-1)", "x"),
    ("sum(x.^y)", "x"),
    ("sum(x.^y)", "y"),
    ("log(x'*y)", "x"),
    ("logdet(X)", "X"),
    ("det(X)", "X"),
    ("tr(inv(X))", "X"),
    ("y'*inv(X)*y", "X"),
    ("sqrt(x'*S*x)", "x"),
    ("sqrt(x'*S*x)", "S"),
    ("logdet(S)", "S"),
    ("sum(arcsin(x))", "x"),
    ("sum(arccos(x))", "x"),
    ("log(det(X*X'))", "X"),
]


@pytest.mark.parametrize(("f", "wrt"), DOMAIN_CASES, ids=[f"{f} | {w}" for f, w in DOMAIN_CASES])
def test_check_of_a_correct_derivative_never_mismatches(f: str, wrt: str) -> None:
    types = {"S": "symmetric"}
    for seed in range(3):
        report = mc.check(f, wrt, types=types, seed=seed)
        assert report.ok, (f, seed, report)
    types_arg = ["--types", "S=symmetric"] if "S" in f else []
    out, status = run([f, "--wrt", wrt, "--check", *types_arg])
    assert status == 0 and "(ok)" in out, out


def test_domains_walk_the_graph() -> None:
    n = ("n",)
    x, y = g.var("x", "vector", n), g.var("y", "vector", n)
    square = g.var("X", "matrix", ("n", "n"))
    wide = g.var("W", "matrix", ("m", "n"))
    assert domains(g.apply("log", x)) == {"x": "positive"}
    assert domains(g.add([g.apply("logdet", square), g.contract([x, y], [(0,), (0,)], ())])) == {"X": "definite"}
    # A non-square matrix under a log gets positive entries, not a definite value.
    assert domains(g.apply("log", g.contract([wide, x], [(0, 1), (1,)], (0,)))) == {"W": "positive", "x": "positive"}
    assert domains(g.power(x, g.const(2))) == {}
    assert domains(g.apply("sin", x)) == {}


def test_random_values_lie_in_their_domains() -> None:
    expr = mc.parse("sum(log(x)) + logdet(X) + sum(arcsin(z)) + sum(y)")
    values = random_values(expr.node_variables(), 4, 7, within=expr.node)
    assert np.all(values["x"] > 0)
    assert np.allclose(values["X"], values["X"].T) and np.all(np.linalg.eigvalsh(values["X"]) > 0)
    assert np.all(np.abs(values["z"]) < 1)
    # The unconstrained variable is drawn as without domains.
    plain = random_values(expr.node_variables(), 4, 7)
    np.testing.assert_array_equal(values["y"], plain["y"])
