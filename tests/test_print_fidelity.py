"""Printing keeps what was typed (issue 11), and every print parses back to the same graph.

* An expansion prints the way it was typed: a scalar or a vector repeated beside a term of the
  full shape prints without its ``ones`` (``x + a``, ``W*X + b``, ``X*W + b'``), since parsing
  expands it back; so do results (``1 - tanh(x).^2``, never ``ones(3) - tanh(x).^2``).
* Scalar factors keep their written order, and a divisor typed after the leading scalar stays
  there: ``lambda/2*w'*w`` echoes as typed, never ``(lambda*w)'*w/2`` (``lambda*w'*w/2`` typed
  echoes so too: both are one graph, the text decides).
* Named dimensions survive a round trip: a dimension that only the text names (``ones(k)``) or
  that is used as a value (``sum(x)/n``) keeps its ``ones(k)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matrixcalculus as mc

BIAS = {"b": "vector"}


def _kinds(e: mc.Expression) -> dict[str, str]:
    return {n: ("symmetric matrix" if v.kind == "symmetric" else v.kind) for n, v in e.variables.items()}


@pytest.mark.parametrize(
    ("text", "types", "printed"),
    [
        ("x + a", None, "x + a"),
        ("a + x", None, "a + x"),
        ("x - a", None, "x - a"),
        ("W*x + b", None, "W*x + b"),  # b a scalar (names a-g), added to every entry
        ("W*X + b", BIAS, "W*X + b"),
        ("X*W + b'", BIAS, "X*W + b'"),
        ("b - W*X", BIAS, "b - W*X"),
        ("W*X + b + a", BIAS, "W*X + b + a"),
        ("W*X .* b", BIAS, "(W*X) .* b"),
        ("W*X ./ b", BIAS, "W*X ./ b"),
        ("X .* b'", BIAS, "X .* b'"),
        ("max(W*X, b)", BIAS, "max(W*X, b)"),
        ("W*X > b", BIAS, "(W*X > b)"),
        ("x'", None, "x'"),
        ("lambda/2*w'*w", None, "lambda/2*w'*w"),
        ("lambda*w'*w/2", None, "lambda*w'*w/2"),
        ("-lambda/2*w'*w", None, "-lambda/2*w'*w"),
        ("(a + b)/2*x", None, "(a + b)/2*x"),
        ("a*x/2", None, "a*x/2"),
        ("a*x'*A*x", None, "a*x'*A*x"),
        ("1 - tanh(x).^2", {"x": (3,)}, "1 - tanh(x).^2"),
        ("x - sum(x)", None, "x - sum(x)"),
        ("x - sum(x)*ones(k)", None, "x - sum(x)*ones(k)"),
        ("x + ones(3)", None, "x + ones(3)"),  # the 3 is only in the text
        ("x + ones(3)", {"x": (3,)}, "x + 1"),  # declared: the 1 is repeated over x's 3 entries
    ],
)
def test_an_expression_echoes_as_typed_and_parses_back_to_the_same_graph(
    text: str, types: dict | None, printed: str
) -> None:
    e = mc.parse(text, types=types)
    assert str(e) == printed
    again = mc.parse(str(e), types={**_kinds(e), **(types or {})})
    assert again.node is e.node
    assert {n: v.shape for n, v in again.variables.items()} == {n: v.shape for n, v in e.variables.items()}


def test_a_named_dimension_survives_the_round_trip_without_declarations() -> None:
    # k is named by ones(k) only: printing x - sum(x) would make it n when read again.
    e = mc.parse("x - sum(x)*ones(k)")
    assert e.variables["x"].shape == ("k",)
    again = mc.parse(str(e))
    assert again.node is e.node
    assert again.variables["x"].shape == ("k",)
    # A dimension used as a value keeps its ones too: sum(x)/n reads n as a size only if ones(n) names it.
    mean = mc.parse("x - sum(x)/n*ones(n)")
    assert str(mean) == "x - sum(x)/n*ones(n)"
    assert mc.parse(str(mean)).node is mean.node


def test_a_declared_named_dimension_needs_no_ones() -> None:
    e = mc.parse("x - sum(x)*ones(k)", types={"x": ("k",)})
    assert str(e) == "x - sum(x)"
    assert mc.parse(str(e), types={"x": ("k",)}).node is e.node


@pytest.mark.parametrize(
    ("f", "wrt", "types", "printed"),
    [
        ("sum(tanh(x))", "x", {"x": (3,)}, "1 - tanh(x).^2"),
        ("sum(tanh(x))", "x", None, "1 - tanh(x).^2"),
        ("lambda/2*w'*w", "w", None, "lambda*w"),
        ("sum(tanh(W*X + b))", "W", BIAS, "(1 - tanh(W*X + b).^2)*X'"),
        ("sum(W*X + b)", "b", BIAS, "sum(ones(p))*ones(m)"),
        ("0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "b1", {"b1": "vector", "b2": "vector"},
         "(W2'*(W2*relu(W1*x + b1) + b2 - t)) .* (W1*x + b1 > 0)"),
    ],
)  # fmt: skip
def test_results_print_without_the_ones_of_an_expansion(f: str, wrt: str, types: dict | None, printed: str) -> None:
    d = mc.derivative(f, wrt, types=types)
    assert str(d) == printed
    assert "ones(3)" not in str(d)


@pytest.mark.parametrize(
    ("f", "wrt", "types"),
    [
        ("sum(tanh(W*X + b))", "b", BIAS),
        ("norm2(X*W + b')", "W", BIAS),
        ("sum(max(W*X, b))", "b", BIAS),
        ("sum((x - sum(x)*ones(k)).^2)", "x", None),
        ("lambda/2*w'*w + sum(log(1 + exp(-y .* (X*w))))", "w", None),
    ],
)
def test_results_parse_back_to_the_same_values(f: str, wrt: str, types: dict | None) -> None:
    d = mc.derivative(f, wrt, types=types)
    again = mc.parse(str(d), types={**_kinds(d), **(types or {})})
    rng = np.random.default_rng(5)
    sizes = {}
    values = {}
    for name, var in {**d.variables, **mc.parse(f, types=types).variables}.items():
        shape = tuple(sizes.setdefault(dim, 3 + len(sizes)) for dim in var.shape)
        values[name] = rng.standard_normal(shape) if shape else 0.5
    used = {k: values[k] for k in again.variables}
    np.testing.assert_allclose(again.evaluate(used), d.evaluate(values), rtol=1e-12)


def test_latex_of_expansions_drops_the_ones_too() -> None:
    assert mc.parse("W*X + b", types=BIAS).latex() == "W X + b"
    assert mc.parse("X*W + b'", types=BIAS).latex() == "X W + b^\\top"
    assert mc.parse("x + a").latex() == "x + a"


def test_a_column_and_a_row_expansion_before_the_matrix_print_in_full() -> None:
    # c*ones(n)' + ones(m)*r' + X: printed c + r' + X the parser would refuse c + r' (a column
    # plus a row); the first term stays written out, the rest expand against it.
    e = mc.parse("c*ones(n)' + ones(m)*r' + X", types={"c": ("m",), "r": ("n",), "X": ("m", "n")})
    assert str(e) == "c*ones(n)' + r' + X"
    assert mc.parse(str(e), types={"c": ("m",), "r": ("n",), "X": ("m", "n")}).node is e.node


# Terms of a sum over an m x n matrix: matrices, columns (m), rows (n) and scalars, with the
# NumPy value each stands for once broadcast.
_TERMS = {
    "W*X": lambda v: v["W"] @ v["X"],
    "tanh(W*X)": lambda v: np.tanh(v["W"] @ v["X"]),
    "b": lambda v: v["b"][:, None],
    "2*b": lambda v: 2 * v["b"][:, None],
    "W*y": lambda v: (v["W"] @ v["y"])[:, None],
    "c'": lambda v: v["c"][None, :],
    "y'*X": lambda v: (v["y"] @ v["X"])[None, :],
    "a": lambda v: v["a"],
    "sum(b)": lambda v: np.sum(v["b"]),
}
_FORMS = {"W*X": "m", "tanh(W*X)": "m", "b": "c", "2*b": "c", "W*y": "c", "c'": "r", "y'*X": "r"}


@given(
    picks=st.lists(st.sampled_from(sorted(_TERMS)), min_size=2, max_size=5),
    signs=st.lists(st.sampled_from(["+", "-"]), min_size=4, max_size=4),
)
@settings(max_examples=150, deadline=None)
def test_random_sums_with_expansions_print_back_to_the_same_graph(picks: list[str], signs: list[str]) -> None:
    forms = [_FORMS.get(p, "s") for p in picks]
    if "m" not in forms:
        return  # the sums of vectors and scalars are other tests' business
    text = picks[0] + "".join(f" {sign} {p}" for sign, p in zip(signs, picks[1:], strict=False))
    types = {"b": "vector", "c": "vector", "y": "vector", "a": "scalar"}
    try:
        e = mc.parse(text, types=types)
    except mc.ShapeError:
        # Only a column meeting a row before any matrix is refused.
        assert {"c", "r"} <= set(forms[: forms.index("m")]), text
        return
    values = {
        "W": np.arange(6.0).reshape(2, 3) / 7,
        "X": np.arange(12.0).reshape(3, 4) / 11 - 0.5,
        "b": np.array([0.3, -0.2]),
        "c": np.array([0.1, 0.2, -0.4, 0.5]),
        "y": np.array([1.0, -1.0, 0.5]),
        "a": 0.25,
    }
    want = _TERMS[picks[0]](values)
    for sign, p in zip(signs, picks[1:], strict=False):
        want = want + _TERMS[p](values) if sign == "+" else want - _TERMS[p](values)
    got = e.evaluate({k: values[k] for k in e.variables})
    np.testing.assert_allclose(got, np.broadcast_to(want, np.shape(got)), rtol=1e-12, atol=1e-14, err_msg=text)
    again = mc.parse(str(e), types=types)
    assert again.node is e.node, (text, str(e))
