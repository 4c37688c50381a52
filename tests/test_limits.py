"""Deeply nested and very long expressions: they work, or fail with the library's own error.

Never a RecursionError, and within seconds. The wall-clock bounds here are robustness limits
(generous, far above the expected times), not benchmarks. The command line turns bad input
into a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

LIMIT_S = 20.0  # per case: parse, print, LaTeX, index notation and evaluation together

# A 3x3 cyclic permutation: its powers stay exact, so long products have a known value.
P = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
X = np.array([1.0, 2.0, 3.0])


class Outcome:
    """What happened at each step: a value, or the library's error."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.errors: dict[str, mc.MatrixCalculusError] = {}
        self.recursion: list[str] = []
        self.elapsed = 0.0

    def __getitem__(self, step: str) -> Any:
        assert step not in self.errors, f"{step} failed: {self.errors[step]}"
        return self.values[step]


def run_steps(steps: list[tuple[str, Callable[[], Any]]], outcome: Outcome) -> None:
    for name, step in steps:
        try:
            outcome.values[name] = step()
        except RecursionError:
            outcome.recursion.append(name)
        except mc.MatrixCalculusError as exc:
            outcome.errors[name] = exc
        # Anything else propagates and fails the test: it is neither a result nor our error.


def exercise(
    text: str,
    types: Mapping[str, Any] | None = None,
    values: Mapping[str, Any] | None = None,
    dims: Mapping[str, int] | None = None,
    roundtrip: bool = True,
) -> Outcome:
    """Parse ``text``, print it three ways, evaluate it and (optionally) re-parse the printed text."""
    outcome = Outcome()
    start = time.perf_counter()
    holder: dict[str, mc.Expression] = {}

    def parse() -> mc.Expression:
        holder["e"] = mc.parse(text, types=types)
        return holder["e"]

    run_steps([("parse", parse)], outcome)
    if "e" in holder:
        e = holder["e"]
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("str", lambda: str(e)),
            ("latex", e.latex),
            ("index", e.index_notation),
        ]
        if values is not None:
            steps.append(("evaluate", lambda: e.evaluate(values, dims=dims)))
        run_steps(steps, outcome)
        if roundtrip and "str" in outcome.values:
            run_steps([("roundtrip", lambda: mc.parse(outcome.values["str"], types=types) == e)], outcome)
    outcome.elapsed = time.perf_counter() - start
    assert not outcome.recursion, f"RecursionError in: {', '.join(outcome.recursion)}"
    assert outcome.elapsed < LIMIT_S, f"took {outcome.elapsed:.1f} s"
    for step, value in outcome.values.items():
        if step in ("str", "latex", "index"):
            assert isinstance(value, str) and value
    if "roundtrip" in outcome.values:
        assert outcome.values["roundtrip"] is True, "the printed text parses to another graph"
    return outcome


def assert_works(outcome: Outcome) -> None:
    """This input is valid: every step must give a result, none the library's error."""
    assert not outcome.errors, {step: str(exc) for step, exc in outcome.errors.items()}


# ---------------------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [5_000, 20_000])
def test_nested_parentheses(depth):
    out = exercise("(" * depth + "x" + ")" * depth, values={"x": X})
    assert_works(out)
    assert out["str"] == "x"
    assert np.array_equal(out["evaluate"], X)


@pytest.mark.parametrize("depth", [5_000, 5_001])
def test_nested_negation(depth):
    out = exercise("-(" * depth + "x" + ")" * depth, values={"x": X})
    assert_works(out)
    sign = -1 if depth % 2 else 1
    assert out["str"] == ("-x" if sign < 0 else "x")
    assert np.array_equal(out["evaluate"], sign * X)


def test_long_run_of_unary_minus():
    out = exercise("- " * 5_000 + "x", values={"x": X})
    assert_works(out)
    assert np.array_equal(out["evaluate"], X)


def test_nested_exp():
    depth = 2_000
    text = "exp(" * depth + "x" + ")" * depth
    out = exercise(text, types={"x": "scalar"})
    assert_works(out)
    assert out["str"].count("exp(") == depth
    assert out["latex"].count(r"\exp") == depth
    expected = -800.0
    with np.errstate(all="ignore"):
        for _ in range(depth):
            expected = np.exp(expected)
    assert expected == np.inf  # the sixth exp overflows
    # A non-finite result is an error naming the function (docs/conventions.md); IEEE on request.
    e = mc.parse(text, types={"x": "scalar"})
    with pytest.raises(mc.EvaluationError, match="exp overflows"):
        e.evaluate({"x": -800.0})
    assert e.evaluate({"x": -800.0}, check_finite=False) == expected


def test_nested_element_wise_functions_on_a_vector():
    depth = 2_000
    names = ["sin", "tanh", "sigmoid", "cos"]
    text = "".join(f"{names[i % 4]}(" for i in range(depth)) + "x" + ")" * depth
    assert_works(exercise(text, values={"x": X}))


def test_nested_softmax():
    depth = 1_000
    out = exercise("softmax(" * depth + "x" + ")" * depth, values={"x": X})
    assert_works(out)
    assert out["evaluate"] == pytest.approx(np.full(3, 1 / 3))


@pytest.mark.parametrize("count", [5_000, 5_001])
def test_long_run_of_transposes_of_a_vector(count):
    out = exercise("x" + "'" * count, values={"x": X})
    assert_works(out)
    assert np.array_equal(out["evaluate"], X)  # vectors evaluate to 1-d arrays either way


@pytest.mark.parametrize("count", [5_000, 5_001])
def test_long_run_of_transposes_of_a_matrix(count):
    A = np.arange(6.0).reshape(2, 3)
    out = exercise("A" + "'" * count, values={"A": A})
    assert_works(out)
    assert np.array_equal(out["evaluate"], A.T if count % 2 else A)


def test_transposes_inside_a_product():
    out = exercise("(" + "x" + "'" * 5_001 + ")*y", types={"x": "vector", "y": "vector"}, values={"x": X, "y": X})
    assert_works(out)
    assert out["evaluate"] == pytest.approx(14.0)


def test_left_associative_power_chain():
    out = exercise("^".join(["x"] * 2_000), types={"x": "scalar"}, values={"x": 1.0})
    assert_works(out)
    assert out["evaluate"] == 1.0


# ---------------------------------------------------------------------------- length


def test_sum_of_five_thousand_scalars():
    n = 5_000
    text = " + ".join(f"x{i}" for i in range(1, n + 1))
    types = {f"x{i}": "scalar" for i in range(1, n + 1)}
    values = {f"x{i}": float(i) for i in range(1, n + 1)}
    out = exercise(text, types=types, values=values, roundtrip=False)
    assert_works(out)
    assert out["evaluate"] == n * (n + 1) / 2
    assert out["str"].count("+") == n - 1


def test_sum_of_five_thousand_copies_of_a_times_x():
    out = exercise(
        " + ".join(["a*x"] * 5_000), types={"a": "scalar", "x": "vector"}, values={"a": 2.0, "x": X}, roundtrip=False
    )
    assert_works(out)
    assert np.allclose(out["evaluate"], 5_000 * 2.0 * X)


def test_long_difference():
    out = exercise("x" + " - x" * 1_000, values={"x": X})
    assert_works(out)
    assert np.allclose(out["evaluate"], -999 * X)


def test_sum_of_many_constants():
    out = exercise("a" + "".join(f" + {i}" for i in range(1_000)), types={"a": "scalar"}, values={"a": 1.0})
    assert_works(out)
    assert out["evaluate"] == 1.0 + sum(range(1_000))


def test_product_chain_of_two_thousand_matrices():
    factors = 2_000
    out = exercise("A*" * factors + "x", types={"A": "matrix", "x": "vector"}, values={"A": P, "x": X})
    assert_works(out)
    assert np.array_equal(out["evaluate"], np.linalg.matrix_power(P, factors) @ X)


def test_product_chain_of_five_hundred_matrices_in_index_notation():
    # The same limit at a smaller size, to show that it is not the size of the numbers.
    out = exercise("A*" * 500 + "x", types={"A": "matrix", "x": "vector"}, values={"A": P, "x": X})
    assert_works(out)


def test_chain_of_matrix_inverses():
    out = exercise("A" + "*inv(A)" * 500, values={"A": P})
    assert_works(out)
    assert np.allclose(out["evaluate"], P @ np.linalg.matrix_power(P.T, 500))


def test_element_wise_product_chain():
    out = exercise("x" + " .* x" * 2_000, values={"x": np.ones(3)})
    assert_works(out)
    assert np.array_equal(out["evaluate"], np.ones(3))


def test_scalar_product_chain():
    factors = 2_001
    out = exercise("*".join(["a"] * factors), types={"a": "scalar"}, values={"a": -1.0})
    assert_works(out)
    assert out["evaluate"] == (-1.0) ** factors


def test_outer_and_inner_products_alternating():
    u = X / np.linalg.norm(X)
    out = exercise("x'" + "*x*x'" * 1_000 + "*x", values={"x": u})
    assert_works(out)
    assert out["evaluate"] == pytest.approx(1.0)


def test_very_long_variable_name():
    name = "v" * 100_000
    out = exercise(f"{name}'*{name}", values={name: X})
    assert_works(out)
    assert out["evaluate"] == pytest.approx(14.0)


# ---------------------------------------------------------------------------- errors at scale


def assert_short_error(exc: mc.MatrixCalculusError) -> None:
    """An error about a huge input still fits on a screen."""
    assert len(str(exc)) < 2_000, f"a message of {len(str(exc))} characters"


def test_unclosed_parentheses_at_depth():
    text = "(" * 20_000 + "x"
    start = time.perf_counter()
    with pytest.raises(mc.ParseError) as info:
        mc.parse(text)
    assert time.perf_counter() - start < LIMIT_S
    assert info.value.column == len(text) + 1
    assert_short_error(info.value)


def test_unexpected_character_at_depth():
    text = "(" * 20_000 + "x $ y" + ")" * 20_000
    with pytest.raises(mc.ParseError) as info:
        mc.parse(text)
    assert info.value.column == text.index("$") + 1
    assert_short_error(info.value)


def test_shape_error_at_depth():
    text = "(" * 5_000 + "x*y" + ")" * 5_000
    with pytest.raises(mc.ShapeError) as info:
        mc.parse(text, types={"x": "vector", "y": "vector"})
    assert "inner" in str(info.value)
    assert_short_error(info.value)


def test_shape_error_at_the_end_of_a_long_sum():
    n = 5_000
    # A column plus a row is refused (a matrix beside the columns would be an implicit expansion).
    text = " + ".join(f"x{i}" for i in range(1, n + 1)) + " + y'"
    types = {**{f"x{i}": "vector" for i in range(1, n + 1)}, "y": "vector"}
    start = time.perf_counter()
    with pytest.raises(mc.ShapeError) as info:
        mc.parse(text, types=types)
    assert time.perf_counter() - start < LIMIT_S
    assert "y'" in info.value.message
    assert_short_error(info.value)


def test_evaluation_error_in_a_deep_expression():
    e = mc.parse("exp(" * 2_000 + "x'*A*x" + ")" * 2_000)
    with pytest.raises(mc.EvaluationError, match="dimension"):
        e.evaluate({"x": np.ones(3), "A": np.eye(4)})


# ---------------------------------------------------------------------------- the command line


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", *args], capture_output=True, text=True, timeout=120
    )


BAD_INPUT = [
    (["x +"], "unexpected end of input"),
    (["2 + sine(x)"], "did you mean 'sin'?"),
    (["(" * 20_000 + "x"], "')'"),
    (["__import__('os')"], "unknown function '__import__'"),
    ([""], "empty"),
    (["A*x", "--types", "A=3x4", "x=5"], "4 columns"),
    (["x", "--types", "x=tensor"], "unknown type 'tensor'"),
    (["x", "--types", "x"], "NAME=TYPE"),
    (["inv(A)", "--evaluate", "--size", "0"], "--size"),
    (["x", "--size", "abc"], "--size"),
    ([], "expression"),
]

GOOD_INPUT = [
    (["x'*A*x", "--types", "A=symmetric", "--latex", "--index", "--evaluate"], "A: symmetric matrix"),
    (["(" * 5_000 + "x" + ")" * 5_000, "--latex", "--index", "--evaluate"], "x: vector"),
    (["exp(" * 2_000 + "x" + ")" * 2_000, "--types", "x=scalar", "--latex", "--index"], r"\exp"),
    (["tanh(" * 2_000 + "x" + ")" * 2_000, "--types", "x=scalar", "--latex", "--index", "--evaluate"], r"\tanh"),
    (["A*" * 2_000 + "x", "--index"], "A: matrix"),
    (["sum(ones(n))", "--evaluate"], "3"),
    (["-x^2"], "-x^2"),
]


@pytest.fixture(scope="module")
def cli_results() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every command line of this module, run once, a few at a time (each start costs a fraction of a second)."""
    runs = [tuple(args) for args, _ in BAD_INPUT + GOOD_INPUT]
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(runs, pool.map(lambda args: cli(*args), runs), strict=True))


@pytest.mark.parametrize(("args", "fragment"), BAD_INPUT)
def test_cli_bad_input(cli_results, args, fragment):
    result = cli_results[tuple(args)]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("matrixcalculus: error:") == 1, result.stderr
    assert fragment in result.stderr
    assert result.stdout == ""


def test_cli_caret_under_the_input(cli_results):
    result = cli_results[("2 + sine(x)",)]
    lines = result.stderr.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip() == "^")
    assert lines[i - 1][lines[i].index("^") :].startswith("sine")


@pytest.mark.parametrize(("args", "fragment"), GOOD_INPUT)
def test_cli_good_input(cli_results, args, fragment):
    result = cli_results[tuple(args)]
    assert result.returncode == 0, result.stderr[-2_000:]
    assert "Traceback" not in result.stderr
    assert fragment in result.stdout
