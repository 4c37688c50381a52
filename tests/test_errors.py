"""Every kind of bad input gets the library's own error, with a message that helps.

Parse errors point at a column and draw a caret under the input; unknown functions suggest
the closest known name; shape errors name the operands and their dimensions; inference errors
name the variables and the choices; evaluation checks the arrays against the types. User text
is never run as Python.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import matrixcalculus as mc

SRC = Path(__file__).resolve().parents[1] / "src" / "matrixcalculus"


# ---------------------------------------------------------------------------- helpers


def parse_error(text, **kwargs) -> mc.ParseError:
    with pytest.raises(mc.ParseError) as info:
        mc.parse(text, **kwargs)
    return info.value


def caret(exc: Exception) -> tuple[str, int]:
    """The input line shown above the caret, and the caret's offset into that line."""
    lines = str(exc).split("\n")
    marks = [i for i, line in enumerate(lines) if line.strip() == "^"]
    assert marks, f"no caret line in the message:\n{exc}"
    i = marks[-1]
    assert i >= 1, f"nothing above the caret:\n{exc}"
    return lines[i - 1], lines[i].index("^")


def assert_points_at(exc: mc.MatrixCalculusError, text: str, column: int) -> None:
    """``exc`` is about ``text`` at 1-based ``column``, and the caret sits under that column."""
    assert exc.text == text
    assert exc.column == column, str(exc)
    shown, offset = caret(exc)
    # The input is shown as it was typed, with the caret under the offending character.
    assert shown.strip() == text.strip(), str(exc)
    assert shown.endswith(text) or shown.endswith(text.rstrip()), str(exc)
    start = shown.index(text.strip()) - (len(text) - len(text.lstrip()))
    assert offset - start == column - 1, str(exc)


def mentions(message: str, *words: str) -> None:
    for word in words:
        assert word in message, f"{word!r} not in the message:\n{message}"


# ---------------------------------------------------------------------------- the family


def test_the_exception_family():
    for cls in (mc.ParseError, mc.ShapeError, mc.InferenceError, mc.EvaluationError):
        assert issubclass(cls, mc.MatrixCalculusError)
    assert issubclass(mc.MatrixCalculusError, Exception)


# ---------------------------------------------------------------------------- parse errors


@pytest.mark.parametrize(
    ("text", "column", "char"),
    [
        ("2 + $x", 5, "$"),
        ("x @ y", 3, "@"),
        ("x; y", 2, ";"),
        ("x[0]", 3, "0"),  # x[i] is index notation; a number is no index
        ("x = 1", 3, "="),
        ("a*x + b & c", 9, "&"),
        ("x × y", 3, "×"),
        ('x + "y', 5, '"'),
    ],
)
def test_unexpected_character(text, column, char):
    exc = parse_error(text)
    assert_points_at(exc, text, column)
    shown, offset = caret(exc)
    assert shown[offset] == char
    mentions(str(exc), repr(char), f"column {column}")


@pytest.mark.parametrize(
    ("text", "column", "token"),
    [
        ("1 +* 2", 4, "*"),
        ("x + y)", 6, ")"),
        ("exp()", 5, ")"),
        ("x y", 3, "y"),
        ("2 x", 3, "x"),
        ("(x + y) (z)", 9, "("),
        ("x * / y", 5, "/"),
        ("sin(x,)", 7, ")"),
        ("f(x)(y)", None, None),
    ],
)
def test_unexpected_token(text, column, token):
    exc = parse_error(text)
    if column is None:  # just the library's error, pointing somewhere into the text
        assert exc.column is not None and 1 <= exc.column <= len(text) + 1
        return
    assert_points_at(exc, text, column)
    shown, offset = caret(exc)
    assert shown[offset] == token
    mentions(str(exc), f"column {column}", "expected")


@pytest.mark.parametrize(
    "text",
    ["(x + y", "((x)", "x * (y + (z)", "sin(x", "norm2(W*x - t"],
)
def test_unclosed_parenthesis(text):
    exc = parse_error(text)
    assert_points_at(exc, text, len(text) + 1)  # the caret goes just past the end of the input
    mentions(str(exc), "end of input", "')'")


@pytest.mark.parametrize(("text", "column"), [("x + y)", 6), ("(x))", 4), (")x(", 1), ("x)", 2)])
def test_unopened_parenthesis(text, column):
    exc = parse_error(text)
    assert_points_at(exc, text, column)
    shown, offset = caret(exc)
    assert shown[offset] == ")"
    mentions(str(exc), "')'")


@pytest.mark.parametrize("text", ["x +", "x + ", "x *", "x .^", "x''*", "-", "x >", "2^", "a*x + b/"])
def test_trailing_operator(text):
    exc = parse_error(text)
    assert_points_at(exc, text, len(text.rstrip()) + 1)
    mentions(str(exc), "end of input", "expected")


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_empty_input(text):
    exc = parse_error(text)
    assert "empty" in str(exc)


@pytest.mark.parametrize("value", [3, 2.5, None, b"x", ["x"], np.ones(3)])
def test_non_string_input(value):
    exc = parse_error(value)
    mentions(str(exc), "text", type(value).__name__)


def test_parse_error_in_a_long_input_shows_the_neighbourhood():
    text = "a" * 150 + " + " + "b" * 150 + " $ c"
    exc = parse_error(text)
    assert exc.column == text.index("$") + 1
    shown, offset = caret(exc)
    assert shown[offset] == "$"
    assert len(shown) < 150  # a window around the column, not the whole line
    assert len(str(exc)) < 600


def test_parse_error_in_multi_line_input_points_at_the_character():
    # Newlines are whitespace in the language, so multi-line input is valid text; the caret
    # must still sit under the offending character.
    text = "x +\n  y $ 1"
    exc = parse_error(text)
    shown, offset = caret(exc)
    assert shown[offset] == "$", str(exc)


def test_unknown_function_in_multi_line_input_points_at_the_name():
    text = "x +\n  sine(y)"
    exc = parse_error(text)
    mentions(str(exc), "'sine'", "'sin'")
    shown, offset = caret(exc)
    assert shown[offset:].startswith("sine"), str(exc)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("2 + sine(x)", "sin"),
        ("soft_max(x)", "softmax"),
        ("sofmax(x)", "softmax"),
        ("sigmod(x)", "sigmoid"),
        ("logsumxp(x)", "logsumexp"),
        ("nrom2(x)", "norm2"),
        ("tanhh(x)", "tanh"),
        ("exps(x)", "exp"),
        ("lgodet(A)", "logdet"),
        ("SIN(x)", "sin"),
    ],
)
def test_unknown_function_suggests_the_closest_name(text, suggestion):
    exc = parse_error(text)
    name = text[: text.index("(")].split()[-1]
    assert_points_at(exc, text, text.index(name) + 1)
    mentions(str(exc), f"unknown function '{name}'", f"did you mean '{suggestion}'?")


def test_unknown_function_far_from_any_name_lists_the_known_ones():
    exc = parse_error("zzzzqqq(x)")
    mentions(str(exc), "'zzzzqqq'", "sin", "softmax", "eye")


@pytest.mark.parametrize(
    ("text", "name", "count"),
    [
        ("tr(A, B)", "tr", 2),
        ("sin(x, y)", "sin", 2),
        ("sum(x, 1, 2)", "sum", 3),
        ("eye(n, m)", "eye", 2),
        # zeros(2, 3, 4) and ones(m, n, p) are tensors (issue 14): tests/test_tensors.py
        ("softmax(x, y, z)", "softmax", 3),
    ],
)
def test_wrong_argument_count(text, name, count):
    exc = parse_error(text)
    assert_points_at(exc, text, 1)
    mentions(str(exc), name, f"not {count}", "argument")


@pytest.mark.parametrize("text", ["exp()", "tr()", "eye()"])
def test_no_arguments(text):
    exc = parse_error(text)
    assert_points_at(exc, text, len(text))
    shown, offset = caret(exc)
    assert shown[offset] == ")"


@pytest.mark.parametrize(
    ("text", "arg"),
    [
        ("eye(x-1)", "x-1"),  # a sum (n + 1, a stack's length) is a dimension; a difference is not
        ("eye(0)", "0"),
        ("eye(2.5)", "2.5"),
        ("eye(-1)", "-1"),
        ("ones(x')", "x'"),
        ("zeros(3, n/2)", "n/2"),  # a product (n*2) is a dimension; a quotient is not
        ("ones(sin(n))", "sin(n)"),
    ],
)
def test_dimension_function_takes_dimensions(text, arg):
    exc = parse_error(text)
    fname = text[: text.index("(")]
    mentions(str(exc), fname, "dimension", f"'{arg}'")
    assert exc.column is not None
    shown, offset = caret(exc)
    assert text.index(arg) <= offset - shown.index(text) < text.index(arg) + len(arg)


# ---------------------------------------------------------------------------- never Python


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "__import__('os').system('echo hi')",
        "x.__class__",
        "x.__class__.__mro__",
        "os.system('ls')",
        "lambda: 0",
        "[x for x in y]",
        "x if y else z",
        "x.T",
        "x @ y",
        "open('/etc/passwd')",
        "globals()",
    ],
)
def test_python_is_not_the_input_language(text):
    exc = parse_error(text)
    assert exc.column is not None


def test_parsing_runs_no_user_code(tmp_path):
    target = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {target}')", f"open('{target}', 'w')"):
        with pytest.raises(mc.MatrixCalculusError):
            mc.parse(text)
    assert not target.exists()


def test_names_that_look_like_python_are_just_variables():
    e = mc.parse("exec + eval", types={"exec": "scalar", "eval": "scalar"})
    assert set(e.variables) == {"exec", "eval"}
    assert e.evaluate({"exec": 1.0, "eval": 2.0}) == 3.0
    with pytest.raises(mc.ParseError, match="unknown function 'eval'"):
        mc.parse("eval(x)")


def _code_lines(text: str) -> dict[int, str]:
    """The source without its strings and comments, line by line (so docstrings may say eval())."""
    lines: dict[int, list[str]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.STRING, tokenize.COMMENT) or not tok.string.strip():
            continue
        lines.setdefault(tok.start[0], []).append(tok.string)
    return {number: " ".join(parts) for number, parts in lines.items()}


# The one exec in the package runs the source that codegen generated from the graph (names are
# identifiers the parser checked; no user text is ever spliced in), or the per-signature call
# made of runtime.py's own text and such generated statements: compile/runtime.py's
# _run_generated, these two lines.
GENERATED_CODE_EXEC = {
    ("runtime.py", 'code = builtins.compile(source, filename, "exec")'),
    ("runtime.py", "exec(code, namespace)"),
}


def test_source_never_calls_eval_or_exec():
    files = sorted(SRC.rglob("*.py"))
    assert files
    # (A definition, such as the public mc.compile, is not a call.)
    pattern = re.compile(r"(?<![\w.])(?<!def )(eval|exec|compile|__import__)\s*\(")
    allowed_lines: set[int] = set()
    for path in files:
        text = path.read_text(encoding="utf-8")
        raw = text.splitlines()
        for number, line in _code_lines(text).items():
            if (path.name, raw[number - 1].strip()) in GENERATED_CODE_EXEC:
                allowed_lines.add(number)
                continue
            assert not pattern.search(line), f"{path.name}:{number}: {line}"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call):
                f = node.func
                called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id == "builtins"):
                    continue  # a method such as node.evaluate(...) or re.compile
                if path.name == "runtime.py" and node.lineno in allowed_lines:
                    continue
                assert called not in {"eval", "exec", "compile", "__import__"}, f"{path.name}:{node.lineno}"
    assert len(allowed_lines) == len(GENERATED_CODE_EXEC)


def test_generated_code_contains_no_user_text_beyond_checked_names():
    # Whatever the user writes, only identifiers reach the generated source, as variable names.
    for bad in ("__import__('os')", "x; import os", "x.__class__", "exec('1')"):
        with pytest.raises(mc.MatrixCalculusError):
            mc.codegen(bad, "x")


# ---------------------------------------------------------------------------- shape errors


def shape_error(text, types=None) -> mc.ShapeError:
    with pytest.raises(mc.ShapeError) as info:
        mc.parse(text, types=types)
    return info.value


def test_matrix_times_vector_of_the_wrong_length():
    text = "A*x"
    exc = shape_error(text, {"A": (3, 4), "x": (5,)})
    assert_points_at(exc, text, 2)
    mentions(exc.message, "A", "x", "3x4", "4 columns", "5 rows")


def test_mismatch_inside_a_larger_expression_names_the_subexpressions():
    text = "inv(A)*x + b"
    exc = shape_error(text, {"A": (3, 3), "x": (4,), "b": "vector"})
    assert_points_at(exc, text, 7)
    mentions(exc.message, "inv(A)", "x", "3x3", "3 columns", "4 rows")


def test_quadratic_form_with_the_wrong_sizes():
    exc = shape_error("x'*A*x", {"x": (3,), "A": (4, 4)})
    mentions(exc.message, "x'", "A", "4x4", "3")


def test_adding_a_row_and_a_column_vector():
    text = "x + y'"
    exc = shape_error(text, {"x": "vector", "y": "vector"})
    assert_points_at(exc, text, 3)
    mentions(exc.message, "x", "y'", "column vector", "row vector", "transpose")


def test_comparing_a_row_and_a_column_vector():
    exc = shape_error("x > y'", {"x": "vector", "y": "vector"})
    mentions(exc.message, "x", "y'", "column", "row")


@pytest.mark.parametrize(
    ("text", "types", "words"),
    [
        ("x + y", {"x": (3,), "y": (4,)}, ["x", "y", "length 3", "length 4"]),
        ("A + B", {"A": (2, 3), "B": (3, 2)}, ["A", "B", "2x3", "3x2"]),
        ("A - B", {"A": (2, 3), "B": (3, 2)}, ["A", "B", "2x3", "3x2"]),
        ("A .* B", {"A": (2, 3), "B": (3, 2)}, ["A", "B", "2x3", "3x2"]),
        # A vector beside a matrix is repeated over it (implicit expansion) when its length fits.
        ("x + A", {"x": (3,), "A": (4, 5)}, ["x", "A", "length 3", "4x5", "rows"]),
        ("x .* A", {"x": (3,), "A": (4, 5)}, ["x", "A", "length 3", "4x5"]),
    ],
)
def test_element_wise_mismatch_names_both_operands(text, types, words):
    exc = shape_error(text, types)
    mentions(exc.message, *words)
    assert exc.column is not None


def test_product_of_two_vectors_suggests_the_products():
    text = "x*y"
    exc = shape_error(text, {"x": "vector", "y": "vector"})
    assert_points_at(exc, text, 2)
    mentions(exc.message, "x", "y", "inner", "outer", "element-wise", "x'*y", "x*y'", "x.*y")


def test_product_of_two_row_vectors():
    exc = shape_error("x'*y'", {"x": "vector", "y": "vector"})
    mentions(exc.message, "x'", "y'", "row vector", "transpose")


def test_matrix_product_of_built_vectors():
    with pytest.raises(mc.ShapeError, match="inner"):
        mc.vector("x") @ mc.vector("y")


@pytest.mark.parametrize(("text", "column"), [("x^2", 2), ("2^x", 2), ("(x + y)^2", 8)])
def test_power_of_a_vector_suggests_element_wise_power(text, column):
    exc = shape_error(text, {"x": "vector", "y": "vector"})
    assert_points_at(exc, text, column)
    mentions(exc.message, "'^'", "scalar", "'.^'", "vector")


def test_power_of_a_matrix_suggests_element_wise_power():
    exc = shape_error("A^2", {"A": (3, 3)})
    mentions(exc.message, "'^'", "A", "matrix", "'.^'")


def test_division_by_a_vector_suggests_element_wise_division():
    exc = shape_error("x/y", {"x": "vector", "y": "vector"})
    mentions(exc.message, "'/'", "y", "scalar", "'./'")


@pytest.mark.parametrize("fname", ["det", "inv", "tr", "logdet"])
def test_square_matrix_functions_of_a_non_square_matrix(fname):
    text = f"{fname}(A)"
    exc = shape_error(text, {"A": (3, 4)})
    assert_points_at(exc, text, 1)
    mentions(exc.message, fname, "square", "A", "3x4")


@pytest.mark.parametrize("fname", ["det", "inv", "tr", "logdet"])
def test_square_matrix_functions_of_a_vector(fname):
    exc = shape_error(f"{fname}(x)", {"x": "vector"})
    mentions(exc.message, fname, "square matrix", "x", "vector")


@pytest.mark.parametrize("fname", ["det", "inv", "tr"])
def test_square_matrix_functions_of_a_scalar(fname):
    exc = shape_error(f"{fname}(a)", {"a": "scalar"})
    mentions(exc.message, fname, "square matrix", "a", "scalar")


def test_square_matrix_function_of_a_non_square_product():
    exc = shape_error("det(A*B)", {"A": (2, 3), "B": (3, 4)})
    mentions(exc.message, "det", "square", "A*B", "2x4")


@pytest.mark.parametrize("fname", ["softmax", "logsumexp"])
def test_vector_functions_of_a_matrix(fname):
    text = f"{fname}(A)"
    exc = shape_error(text, {"A": (3, 3)})
    assert_points_at(exc, text, 1)
    mentions(exc.message, fname, "vector", "A", "matrix")


def test_diag_of_a_non_square_matrix_or_a_scalar():
    mentions(shape_error("diag(A)", {"A": (2, 3)}).message, "diag", "square", "A", "2x3")
    mentions(shape_error("diag(a)", {"a": "scalar"}).message, "diag", "a", "scalar")


def test_broadcast_constructor_needs_a_scalar():
    mentions(shape_error("vector(x)", {"x": "vector"}).message, "vector", "scalar", "x")


def test_shape_error_with_dimension_names():
    exc = shape_error("x'*y", {"x": ("n",), "y": ("m",)})
    mentions(exc.message, "x'", "y", "n", "m")


# ---------------------------------------------------------------------------- inference errors


@pytest.mark.parametrize("word", ["tensor", "symmetric vector", "vec", "Matrx", ""])
def test_unknown_type_word(word):
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("x", types={"x": word})
    mentions(str(info.value), "x", repr(word), "scalar", "vector", "matrix", "symmetric")


@pytest.mark.parametrize(
    ("shape", "words"),
    [
        ((0,), ["0"]),
        ((-3,), ["-3"]),
        ((1.5,), ["1.5"]),
        ((True,), ["True"]),
        (("3",), ["'3'"]),
        (("n m",), ["'n m'"]),
        ((None, 3), ["None"]),
        # (1, 2, 3) declares a 3-tensor (issue 14): tests/test_tensors.py
    ],
)
def test_bad_shape_tuple(shape, words):
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("x", types={"x": shape})
    mentions(str(info.value), "x", *words)


@pytest.mark.parametrize("spec", [3, None, 2.0, {"kind": "vector"}])
def test_type_that_is_neither_a_word_nor_a_shape(spec):
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("x", types={"x": spec})
    mentions(str(info.value), "x", type(spec).__name__)


def test_types_that_are_not_a_mapping():
    with pytest.raises(mc.MatrixCalculusError):
        mc.parse("x", types=["x"])


def test_symmetric_declaration_of_a_non_square_shape():
    with pytest.raises(mc.ShapeError) as info:
        mc.matrix("S", 3, 4, symmetric=True)
    message = str(info.value)
    mentions(message, "S", "symmetric", "square")
    assert re.search(r"3\s*x\s*4", message), message


@pytest.mark.parametrize(("text", "names"), [("h*x + x*h", ["h", "x"]), ("x*y + y*x", ["x", "y"])])
def test_ambiguous_use_names_the_variables_and_the_choices(text, names):
    with pytest.raises(mc.InferenceError) as info:
        mc.parse(text)
    message = str(info.value)
    mentions(message, "ambiguous", *names, "scalar", "vector", "types=")


@pytest.mark.parametrize(
    ("text", "name", "kinds"),
    [
        ("softmax(a) + a^2", "a", ["vector", "scalar"]),
        ("x^2 + det(x)", "x", ["square matrix", "scalar"]),
        ("det(X) + X^2", "X", ["scalar", "matrix"]),
    ],
)
def test_inconsistent_use_names_the_variable(text, name, kinds):
    with pytest.raises(mc.ShapeError) as info:  # InferenceError is a ShapeError
        mc.parse(text)
    exc = info.value
    mentions(exc.message, name, *kinds)
    assert exc.column is not None


def test_inconsistent_declaration_and_use():
    with pytest.raises(mc.ShapeError) as info:
        mc.parse("softmax(a) + a*x", types={"a": "scalar"})
    mentions(info.value.message, "softmax", "a", "vector", "scalar")


def test_builders_with_conflicting_kinds():
    with pytest.raises(mc.InferenceError) as info:
        mc.vector("x") + mc.scalar("x")
    mentions(str(info.value), "x", "vector", "scalar")


@pytest.mark.parametrize(
    "build",
    [
        lambda: mc.vector("1x"),
        lambda: mc.vector("x y"),
        lambda: mc.scalar(3),
        lambda: mc.matrix("A", 3),
        lambda: mc.vector("x") + "y",
        lambda: mc.vector("x") + None,
    ],
)
def test_bad_builder_input(build):
    with pytest.raises(mc.MatrixCalculusError):
        build()


# ---------------------------------------------------------------------------- evaluation errors


def evaluation_error(text, values, types=None, dims=None) -> mc.EvaluationError:
    e = mc.parse(text, types=types)
    with pytest.raises(mc.EvaluationError) as info:
        e.evaluate(values, dims=dims)
    return info.value


def test_missing_variable():
    exc = evaluation_error("x'*A*x", {"x": np.ones(3)})
    mentions(str(exc), "no value", "A", "matrix")


def test_all_variables_missing():
    mentions(str(evaluation_error("a*x", {})), "no value")


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("x", np.ones((3, 1)), ["x", "vector", "1-d", "(3, 1)"]),
        ("x", np.float64(2.0), ["x", "vector", "1-d", "()"]),
        ("A", np.ones(3), ["A", "matrix", "2-d", "(3,)"]),
        ("A", np.ones((3, 3, 1)), ["A", "matrix", "2-d", "(3, 3, 1)"]),
        ("a", np.ones(2), ["a", "scalar", "0-d", "(2,)"]),
        ("a", [[1.0]], ["a", "scalar", "0-d", "(1, 1)"]),
    ],
)
def test_wrong_number_of_dimensions(name, value, words):
    values = {"x": np.ones(3), "A": np.eye(3), "a": 2.0}
    values[name] = value
    exc = evaluation_error("a*x'*A*x", values, types={"a": "scalar"})
    mentions(str(exc), *words)


@pytest.mark.parametrize(
    ("text", "values", "words"),
    [
        ("x'*A*x", {"x": np.ones(3), "A": np.eye(4)}, ["length of x", "rows of A", "3", "4"]),
        ("x'*y", {"x": np.ones(3), "y": np.ones(4)}, ["length of x", "length of y", "3", "4"]),
        ("A*x", {"A": np.ones((2, 4)), "x": np.ones(3)}, ["columns of A", "length of x", "3", "4"]),
        ("A + B", {"A": np.ones((2, 3)), "B": np.ones((2, 4))}, ["columns of A", "columns of B", "3", "4"]),
        ("A*B", {"A": np.ones((2, 3)), "B": np.ones((2, 3))}, ["columns of A", "rows of B", "3", "2"]),
    ],
)
def test_mismatched_sizes_name_both_sources(text, values, words):
    exc = evaluation_error(text, values)
    mentions(str(exc), *words)


def test_symmetric_matrix_given_a_non_symmetric_value():
    exc = evaluation_error(
        "x'*A*x", {"x": np.ones(3), "A": np.arange(9.0).reshape(3, 3)}, types={"A": "symmetric matrix"}
    )
    mentions(str(exc), "A", "symmetric")
    # A symmetric value passes.
    e = mc.parse("x'*A*x", types={"A": "symmetric matrix"})
    assert e.evaluate({"x": np.ones(3), "A": np.eye(3)}) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"A": np.ones((3, 4)), "x": np.ones(5)}, ["length of x", "4", "5"]),
        ({"A": np.ones((3, 5)), "x": np.ones(4)}, ["columns of A", "4", "5"]),
        ({"A": np.ones((2, 4)), "x": np.ones(4)}, ["rows of A", "3", "2"]),
    ],
)
def test_concrete_declared_size_violated(values, words):
    exc = evaluation_error("A*x", values, types={"A": (3, 4)})
    mentions(str(exc), *words)


@pytest.mark.parametrize(
    ("values", "name"),
    [
        ({"a": "hello", "x": np.ones(3)}, "a"),
        ({"a": 1.0, "x": ["p", "q", "r"]}, "x"),
        ({"a": {"q": 1}, "x": np.ones(3)}, "a"),
        ({"a": 1 + 2j, "x": np.ones(3)}, "a"),
        ({"a": object(), "x": np.ones(3)}, "a"),
        ({"a": 1.0, "x": [[1.0, 2.0], [3.0]]}, "x"),
        ({"a": None, "x": np.ones(3)}, "a"),
    ],
)
def test_non_numeric_values(values, name):
    exc = evaluation_error("a*x", values, types={"a": "scalar"})
    mentions(str(exc), name)


def test_values_that_are_not_a_mapping():
    e = mc.parse("x")
    for values in (None, 3, "x"):
        with pytest.raises(mc.MatrixCalculusError):
            e.evaluate(values)


def test_inverse_of_a_singular_matrix():
    exc = evaluation_error("inv(A)", {"A": np.ones((3, 3))})
    mentions(str(exc), "inv")
    assert "singular" in str(exc).lower()


def test_inverse_inside_an_expression_of_a_singular_matrix():
    exc = evaluation_error("x'*inv(A)*x", {"x": np.ones(2), "A": np.zeros((2, 2))})
    assert "singular" in str(exc).lower()


def test_determinant_of_a_singular_matrix_is_zero_and_its_log_is_an_error():
    assert mc.parse("det(A)").evaluate({"A": np.ones((3, 3))}) == pytest.approx(0.0)
    exc = evaluation_error("logdet(A)", {"A": np.zeros((3, 3))})
    mentions(str(exc), "logdet")


def test_dimension_that_no_value_fixes():
    exc = evaluation_error("sum(ones(n))", {})
    mentions(str(exc), "dimension n", "dims=")
    assert mc.parse("sum(ones(n))").evaluate({}, dims={"n": 3}) == pytest.approx(3.0)
    assert mc.parse("sum(zeros(m, n)) + tr(eye(k))").evaluate({}, dims={"m": 2, "n": 3, "k": 4}) == 4.0


def test_dims_for_another_dimension_does_not_help():
    exc = evaluation_error("sum(ones(n))", {}, dims={"m": 3})
    mentions(str(exc), "dimension n", "dims=")


def test_dims_that_contradict_a_value_name_both_sources():
    exc = evaluation_error("x'*ones(n)", {"x": np.ones(3)}, dims={"n": 4})
    mentions(str(exc), "dims=", "length of x", "3", "4")


@pytest.mark.parametrize("size", [-1, 2.5, "three", None])
def test_bad_dims_values(size):
    with pytest.raises(mc.MatrixCalculusError):
        mc.parse("sum(ones(n))").evaluate({}, dims={"n": size})


def test_evaluation_errors_do_not_leak_other_exception_types():
    e = mc.parse("W*x + b", types={"b": "vector"})
    good = {"W": np.ones((2, 3)), "x": np.ones(3), "b": np.ones(2)}
    assert np.allclose(e.evaluate(good), 4.0)
    bad = [
        {"W": np.ones((2, 3)), "x": np.ones(3)},
        {"W": np.ones((2, 3)), "x": np.ones(4), "b": np.ones(2)},
        {"W": np.ones((2, 3)), "x": np.ones(3), "b": np.ones(3)},
        {"W": np.ones(6), "x": np.ones(3), "b": np.ones(2)},
        {"W": "W", "x": np.ones(3), "b": np.ones(2)},
    ]
    for values in bad:
        with pytest.raises(mc.EvaluationError):
            e.evaluate(values)


# ---------------------------------------------------------------------------- fuzzing

_PIECES = [
    "x",
    "y",
    "A",
    "B",
    "a",
    "2",
    "0.5",
    "1e-3",
    "+",
    "-",
    "*",
    "/",
    ".*",
    "./",
    ".^",
    "^",
    "'",
    ">",
    "<",
    "(",
    ")",
    ",",
    " ",
    "sin(",
    "exp(",
    "sum(",
    "tr(",
    "det(",
    "inv(",
    "softmax(",
    "norm2(",
    "eye(",
    "ones(",
    "zeros(",
    "diag(",
    "sine(",
    "$",
    ".",
    "@",
    "[",
    "\n",
]


@given(st.lists(st.sampled_from(_PIECES), min_size=0, max_size=14))
def test_any_text_parses_or_gives_the_librarys_error(pieces):
    text = "".join(pieces)
    try:
        e = mc.parse(text)
    except mc.MatrixCalculusError as exc:
        assert str(exc)
        if isinstance(exc, mc.ParseError) and exc.column is not None:
            assert 1 <= exc.column <= len(text) + 1
        return
    # Whatever parses prints, and the printed text parses again.
    assert isinstance(str(e), str) and isinstance(e.latex(), str)
