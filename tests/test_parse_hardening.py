"""Issue 9, findings 4, 8 and 10: numbers, constant folding and error positions in parsing.

* number literals are exact when cheap, range-checked without building huge integers, and a
  literal beyond the doubles is an error at its column (never a hang, never a 400-digit integer);
* a division by a constant zero, and a folded constant beyond the doubles, is a library error at
  the column (never ``ZeroDivisionError`` or ``ValueError`` from ``fractions``);
* every error that comes from the text points into it, whatever the text.
"""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import matrixcalculus as mc

# A per-input bound that only a hang or a blow-up can exceed (it is not a speed test).
HANG = 5.0


def parse_error(text: str) -> mc.MatrixCalculusError:
    start = time.perf_counter()
    with pytest.raises(mc.MatrixCalculusError) as info:
        mc.parse(text)
    assert time.perf_counter() - start < HANG, text
    return info.value


def assert_caret_at(exc: mc.MatrixCalculusError, text: str, column: int) -> None:
    assert exc.column == column, (str(exc), column)
    lines = str(exc).split("\n")
    assert lines[-2] == "  " + text
    assert lines[-1] == "  " + " " * (column - 1) + "^"


# ------------------------------------------------------------------------------ finding 4


@pytest.mark.parametrize(
    ("text", "column", "literal"),
    [
        ("1e400*x", 1, "1e400"),
        ("1e5000*x", 1, "1e5000"),
        ("1e9999999*x", 1, "1e9999999"),
        ("x + 2e308", 5, "2e308"),
        ("ones(1e400)", 6, "1e400"),
    ],
)
def test_a_number_beyond_the_doubles_is_an_error_at_its_column(text, column, literal):
    exc = parse_error(text)
    assert isinstance(exc, mc.ParseError)
    assert exc.message == f"number {literal} at column {column} is too large (over 1.8e308)"
    assert_caret_at(exc, text, column)


def test_a_huge_exponent_never_prints_a_huge_integer():
    for text in ("1e400*x", "1e" + "9" * 5000 + "*x", "9" * 400 + "*x"):
        message = str(parse_error(text))
        assert not re.search(r"\d{60}", message.split("\n")[0]), message[:200]
        assert len(message) < 600


@pytest.mark.parametrize(("text", "column"), [("1e-400*x", 1), ("x/1e-99999999", 3), ("0." + "0" * 400 + "1*x", 1)])
def test_a_nonzero_number_below_the_doubles_is_an_error_not_a_silent_zero(text, column):
    exc = parse_error(text)
    assert isinstance(exc, mc.ParseError)
    assert "too small" in exc.message
    assert exc.column == column


@given(
    mantissa=st.integers(min_value=0, max_value=10**40),
    point=st.integers(min_value=0, max_value=45),
    exponent=st.integers(min_value=-300, max_value=300),
)
def test_a_literal_in_range_is_exact(mantissa, point, exponent):
    digits = str(mantissa)
    digits = "0" * max(0, point - len(digits) + 1) + digits
    split = len(digits) - point
    literal = f"{digits[:split]}.{digits[split:]}e{exponent}" if point else f"{digits}e{exponent}"
    expected = Fraction(literal)  # Python's own decimal reader is the reference
    # Within the doubles' range only: the point shifts the exponent, and out-of-range literals
    # are errors (tested above), not exact values.
    assume(expected == 0 or Fraction(10) ** -307 <= expected <= Fraction(10) ** 307)
    node = mc.parse(literal).node
    assert node.value == expected


@pytest.mark.parametrize("literal", ["0e99999999", "0.000e-99999999", "0" * 5000])
def test_zero_with_any_exponent_or_length_is_zero(literal):
    assert mc.parse(literal).node.value == 0


def test_a_literal_with_very_many_digits_is_its_nearest_double():
    literal = "1." + "3" * 2000
    start = time.perf_counter()
    value = mc.parse(literal).node.value
    assert time.perf_counter() - start < HANG
    assert float(value) == float(literal)
    assert abs(value - Fraction(4, 3)) < Fraction(1, 10**15)


def test_the_largest_and_smallest_doubles_are_accepted():
    assert float(mc.parse("1.7976931348623157e308").node.value) == 1.7976931348623157e308
    assert float(mc.parse("5e-324").node.value) == 5e-324


def test_powers_too_large_to_fold_stay_powers():
    # Folding 2^99999 exactly is 30,000 digits; (2^99999)^99999 would be billions.
    for text in ("2^99999*a", "(2^99999)^99999*a"):
        start = time.perf_counter()
        result = mc.derivative(mc.parse(text), "a")
        assert time.perf_counter() - start < HANG
        assert "^" in str(result)


def test_small_constant_powers_are_still_exact():
    result = mc.derivative(mc.parse("(2^3)^2*a + 3^-2*a", types={"a": "scalar"}), "a")
    assert result.evaluate({"a": 1.0}) == pytest.approx(64 + 1 / 9)


# ------------------------------------------------------------------------------ finding 8


@pytest.mark.parametrize(
    ("text", "column"),
    [
        ("x/0", 3),
        ("(0/0)*x", 4),
        ("1/0*x", 3),
        ("x./0", 4),
        ("0^-1*sum(x)", 2),
        ("a/(0*b)", 3),
        ("x./(0*y)", 4),
        ("zeros(3).^-1", 9),
        ("x/0.0", 3),
    ],
)
def test_division_by_a_constant_zero_is_an_error_at_the_column(text, column):
    exc = parse_error(text)
    assert isinstance(exc, mc.ParseError)
    assert exc.message.startswith(f"division by zero at column {column}"), exc.message
    assert_caret_at(exc, text, column)


@pytest.mark.parametrize(
    ("text", "column", "problem"),
    [
        ("1e200*1e200*x", 6, "too large"),
        ("x/1e-300/1e-300", 9, "too large"),
        ("1e-200*1e-200*x", 7, "too small"),
        ("*".join(["1.000001"] * 1000) + "*x", None, "too many digits"),
    ],
)
def test_a_folded_constant_beyond_the_doubles_is_an_error_at_the_column(text, column, problem):
    exc = parse_error(text)
    assert isinstance(exc, mc.ParseError)
    assert problem in exc.message
    assert exc.column is not None and 1 <= exc.column <= len(text)
    if column is not None:
        assert exc.column == column
    assert not re.search(r"\d{60}", exc.message)


def test_folded_constants_in_range_are_exact():
    assert mc.parse("1e200*1e-200*3").node.value == 3
    assert mc.parse("x/1e-300*1e-8", types={"x": "scalar"}).node.coeff == Fraction(10**292)


# ------------------------------------------------------------------------------ finding 10


@pytest.mark.parametrize("text", ["", " ", "   \n\t", "\n"])
def test_an_empty_expression_points_at_column_one(text):
    exc = parse_error(text)
    assert exc.message == "empty expression"
    assert exc.column == 1
    assert str(exc).split("\n")[-1] == "  ^"


@pytest.mark.parametrize(
    ("text", "name", "column"),
    [("h*x + x*h", "h", 1), ("x*y + y*x", "x", 1), ("exp(y)*x + x*y", "y", 5), ("2 + (y)*x + x*y", "y", 6)],
)
def test_an_ambiguity_points_at_the_first_occurrence_of_the_undecided_name(text, name, column):
    exc = parse_error(text)
    assert isinstance(exc, mc.InferenceError)
    assert exc.message.startswith(f"ambiguous types for {name}"), exc.message
    assert_caret_at(exc, text, column)


def test_an_error_in_multi_line_input_points_into_the_flattened_line():
    exc = parse_error("h*x +\nx*h")
    assert exc.column == 1
    assert str(exc).split("\n")[-2] == "  h*x + x*h"


# Tokens of the language and a few that are not, to make both near-valid and broken text.
TOKENS = [
    "x",
    "y",
    "z",
    "A",
    "B",
    "S",
    "a",
    "b",
    "n",
    "0",
    "1",
    "2",
    "0.5",
    "3.",
    ".5",
    "1e3",
    "1e400",
    "1e-400",
    "1e200",
    "+",
    "-",
    "*",
    "/",
    ".*",
    "./",
    "^",
    ".^",
    "'",
    "(",
    ")",
    ",",
    ">",
    "<",
    " ",
    "\n",
    "\t",
    "sum(",
    "tr(",
    "diag(",
    "eye(",
    "ones(",
    "zeros(",
    "exp(",
    "log(",
    "inv(",
    "det(",
    "logdet(",
    "softmax(",
    "norm2(",
    "vector(",
    "matrix(",
    "sin(",
    "sine(",
    "@",
    "#",
    "1e",
    "..",
    "x1",
    "_",
    "é",
    "\x00",
    "λ",
]
NAMES = ["x", "y", "z", "A", "B", "S", "a", "b", "W"]
NUMBERS = ["0", "1", "2", "0.5", "1e200", "1e-200", "3e308", "1e400", "0.0", "10"]
UNARY = [
    "sum",
    "tr",
    "diag",
    "exp",
    "log",
    "inv",
    "det",
    "logdet",
    "softmax",
    "norm2",
    "vector",
    "matrix",
    "relu",
    "logsumexp",
    "sqrt",
]
BINARY = ["+", "-", "*", "/", ".*", "./", "^", ".^", ">", "<"]

token_text = st.lists(st.sampled_from(TOKENS), max_size=16).map("".join)
leaves = st.sampled_from(NAMES + NUMBERS)
grammar_text = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(BINARY), inner).map("".join),
        st.tuples(st.sampled_from(UNARY), inner).map(lambda p: f"{p[0]}({p[1]})"),
        st.sampled_from(["eye(n)", "ones(3)", "zeros(2,m)", "eye(0)", "ones(x)"]),
        inner.map(lambda e: f"({e})"),
        inner.map(lambda e: f"{e}'"),
        inner.map(lambda e: f"-{e}"),
    ),
    max_leaves=12,
)


@st.composite
def mutated(draw) -> str:
    """A grammar-made expression with a random piece cut out or put in."""
    text = draw(grammar_text)
    at = draw(st.integers(0, len(text)))
    cut = draw(st.integers(0, 3))
    piece = draw(st.sampled_from(["", "(", ")", "'", "*", "1e400", ",", "x", "/0", "^-1"]))
    return text[:at] + piece + text[at + cut :]


def check_only_pointed_library_errors(text: str) -> None:
    start = time.perf_counter()
    try:
        mc.parse(text)
    except mc.MatrixCalculusError as exc:
        # Every error from the text points into it (one past the end for "unexpected end").
        assert exc.column is not None, (text, str(exc))
        assert 1 <= exc.column <= len(text) + 1, (text, exc.column, str(exc))
        assert str(exc).split("\n")[-1].endswith("^"), str(exc)
    assert time.perf_counter() - start < HANG, text


@given(token_text)
def test_token_soup_gives_only_library_errors_with_a_column(text):
    check_only_pointed_library_errors(text)


@given(st.one_of(grammar_text, mutated()))
def test_grammar_made_and_mutated_text_gives_only_library_errors_with_a_column(text):
    check_only_pointed_library_errors(text)


@pytest.mark.parametrize(("text", "column"), [("x ./ (1 + -1.^2)", 6), ("x/(1-1)", 3), ("sum(x)/(2*3 - 6)", 8)])
def test_division_by_a_constant_sum_that_is_zero_points_at_the_divisor(text: str, column: int) -> None:
    # 1 + (-1)^2... is exactly 0: refused where it is written, not folded later into a 0^-1.
    with pytest.raises(mc.ParseError, match=f"division by zero at column {column}"):
        mc.parse(text)
    assert str(mc.parse(text.replace("1-1", "2-1").replace("-1.^2", "1").replace("- 6", "- 5")))
