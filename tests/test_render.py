"""Printing (``matrixcalculus.render``): numbers, rank-2 results with tensor intermediates, ``where``
bindings as input syntax, index notation beyond the alphabet, and the matrix-notation cases.

Every printed text is parsed again and evaluated; results are also checked against references
written from the mathematics (NumPy formulas), never against the printer's own output.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.render import numbers
from matrixcalculus.render.index import free_indices, index_name
from matrixcalculus.render.printing import TEXT, MatrixPrinter, to_text
from matrixcalculus.render.products import (
    Merge,
    case_of,
    diagonal_of_product,
    diagonal_scaling,
    hadamard_of_matrices,
    hadamard_of_vectors,
    inner_product,
    matrix_product,
    matrix_vector_product,
    outer_product,
    scaling,
    trace_of_product,
)
from matrixcalculus.render.style import Piece

RNG = np.random.default_rng(7)


def _reparsed(e: mc.Expression, types: dict[str, str]) -> mc.Expression:
    inferred = {n: ("symmetric matrix" if v.kind == "symmetric" else v.kind) for n, v in e.variables.items()}
    return mc.parse(str(e), types={**inferred, **types})


def _index_free(text: str) -> bool:
    return "sum_" not in text and "[" not in text and "delta(" not in text


# ---------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "literal",
    ["1e-320", "4.9e-324", "1e300", "3.5e-200", "1.5e308", "-2.5e-310", "1e21", "7.25e100"],
)
def test_long_constants_print_in_exponent_form_and_parse_back_exactly(literal: str) -> None:
    e = mc.parse(f"{literal}*x")
    # The literal is the shortest exact text of its value; it is what prints.
    assert str(e) == f"{literal}*x"
    assert mc.parse(str(e)).node is e.node


@pytest.mark.parametrize(
    ("text", "printed"),
    [("x/2", "x/2"), ("0.5*x", "x/2"), ("3*x", "3*x"), ("0.001*x", "0.001*x"), ("x/3", "x/3"), ("2*x/7", "2*x/7")],
)
def test_ordinary_constants_keep_their_forms(text: str, printed: str) -> None:
    assert str(mc.parse(text)) == printed


def test_exponent_form_of_fractions() -> None:
    # 1/(3*10^40) = 10^-40 / 3: the power of ten in the decimal, the rest as a divisor.
    assert numbers.exponent_form(Fraction(1, 3 * 10**40)) == "1e-40/3"
    assert numbers.exponent_form(Fraction(-7, 2 * 10**30)) == "-3.5e-30"
    assert numbers.exponent_form(Fraction(12 * 10**30)) == "1.2e31"
    e = mc.parse("1e-320/3*x")
    assert mc.parse(str(e)).node is e.node


def test_python_constants_are_combined_in_exponent_form() -> None:
    x = mc.vector("x")
    assert str(x * 1e-320) == "1e-320*x"
    assert str(1e300 * x) == "1e300*x"


def test_long_constants_in_latex() -> None:
    assert mc.parse("1e-320*x").latex() == "10^{-320} x"
    assert mc.parse("3.5e200*x").latex() == "3.5 \\cdot 10^{200} x"


@given(
    mantissa=st.integers(min_value=1, max_value=10**12),
    exponent=st.integers(min_value=-330, max_value=300),
    negative=st.booleans(),
)
def test_any_constant_in_the_double_range_prints_and_parses_back(mantissa: int, exponent: int, negative: bool) -> None:
    value = Fraction(mantissa) * Fraction(10) ** exponent * (-1 if negative else 1)
    if not Fraction(5, 10**324) <= abs(value) < Fraction(10**308):
        return  # outside the doubles, which the parser refuses
    node = g.contract([g.var("x", "vector", ("n",))], [(0,)], (0,), value)
    text = to_text(node)
    again = mc.parse(text, types={"x": "vector"})
    assert again.node is node, text
    assert len(text) < 40, text


# ---------------------------------------------------------------------------- rank-2 results in matrix notation


def _second(text: str, types: dict[str, str], wrt: str) -> mc.Expression:
    d = mc.derivative(text, wrt, types=types, order=2)
    assert isinstance(d, mc.Expression)
    return d


def _check(d: mc.Expression, types: dict[str, str], values: dict[str, Any], want: np.ndarray) -> None:
    text = str(d)
    assert _index_free(text), text
    got = np.asarray(d.evaluate(values), dtype=float)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    again = np.asarray(_reparsed(d, types).evaluate(values), dtype=float)
    np.testing.assert_allclose(again, want, rtol=1e-9, atol=1e-12)


def test_hessian_of_cos_det_diag_prints_in_matrix_notation() -> None:
    types = {"x": "vector"}
    x = RNG.uniform(0.5, 1.5, 4)
    # f = cos(p), p = prod(x): grad p = p ./ x, hess p = p (1/x)(1/x)' off the diagonal, 0 on it.
    p = np.prod(x)
    u = 1 / x
    hess_p = p * (np.outer(u, u) - np.diag(u * u))
    want = -np.cos(p) * p**2 * np.outer(u, u) - np.sin(p) * hess_p
    _check(_second("cos(det(diag(x)))", types, "x"), types, {"x": x}, want)


def test_second_derivative_of_inverse_of_scaled_matrix_prints_in_matrix_notation() -> None:
    types = {"c": "scalar", "S": "symmetric matrix"}
    a = RNG.normal(size=(3, 3))
    S = a @ a.T
    c = 0.3
    # inv(10^c (S + 2I)) = 10^-c inv(S + 2I): its second derivative in c is log(10)^2 times it.
    want = np.log(10) ** 2 * 10**-c * np.linalg.inv(S + 2 * np.eye(3))
    _check(_second("inv(10^c*(S + 2*eye(3)))", types, "c"), types, {"c": c, "S": S}, want)


def test_hessian_of_logdet_of_diag_plus_outer_prints_in_matrix_notation() -> None:
    types = {"z": "vector"}
    n = 4
    z = RNG.normal(size=n) * 0.5
    e = np.exp(z)
    W = np.linalg.inv(np.diag(e) + np.outer(z, z))
    # grad = diag(W) .* e + 2 W z; differentiate each term along the unit direction k, with
    # dM = e_k e_k' e_k-th entry of exp(z) + e_k z' + z e_k' and dW = -W dM W.
    want = np.zeros((n, n))
    for k in range(n):
        ek = np.eye(n)[k]
        dM = e[k] * np.outer(ek, ek) + np.outer(ek, z) + np.outer(z, ek)
        dW = -W @ dM @ W
        want[:, k] = np.diag(dW) * e + np.diag(W) * e * ek + 2 * dW @ z + 2 * W[:, k]
    _check(_second("logdet(diag(exp(z)) + z*z')", types, "z"), types, {"z": z}, want)


def test_second_derivative_of_entrywise_power_in_its_exponent_prints_in_matrix_notation() -> None:
    types = {"c": "scalar"}
    B = RNG.normal(size=(3, 2))
    c = 0.7
    # sqrt(exp(B).^c) = exp(c B / 2) entry-wise: its second derivative in c is (B/2).^2 .* exp(c B/2).
    want = (B / 2) ** 2 * np.exp(c * B / 2)
    _check(_second("sqrt(exp(B).^c)", types, "c"), types, {"c": c, "B": B}, want)
    _check(_second("sum(sqrt(exp(B).^c))", types, "c"), types, {"c": c, "B": B}, np.sum(want))


def test_hessian_of_a_diagonal_quadratic_form() -> None:
    types = {"x": "vector"}
    x = RNG.normal(size=5)
    # f = x' diag(x) x = sum x_i^3: the Hessian is diag(6 x).
    d = _second("x'*diag(x)*x", types, "x")
    _check(d, types, {"x": x}, np.diag(6 * x))


def test_third_order_results_stay_in_index_notation() -> None:
    d = mc.derivative("A*x", "A")
    assert isinstance(d, mc.Expression)
    # d(A x)_i / dA_jk = delta_ij x_k.
    assert str(d) == "delta(i,j)*x[k]"


# ---------------------------------------------------------------------------- where bindings


def test_where_clause_on_one_line_is_the_full_expression() -> None:
    full = mc.parse("A*x + (A*x) .* exp(A*x)")
    assert mc.parse("t1 + t1 .* t2 where t1 = A*x, t2 = exp(t1)").node is full.node
    # Line breaks (the printed form) or commas between bindings.
    assert mc.parse("t1 + t1 .* t2\nwhere\n  t1 = A*x\n  t2 = exp(t1)").node is full.node


def test_where_binding_of_a_sum_used_in_a_sum() -> None:
    assert mc.parse("t1 + c where t1 = a + b").node is mc.parse("a + b + c").node
    assert mc.parse("t1 - t1' where t1 = A + B").node is mc.parse("A + B - (A + B)'").node


def test_parenthesised_where_clause_binds_inside() -> None:
    e = mc.parse("(t1 + t1' where t1 = A*B)*C")
    assert e.node is mc.parse("(A*B + (A*B)')*C").node


def test_where_names_shadow_nothing_outside_and_dimensions_stay_dimensions() -> None:
    e = mc.parse("t1*eye(n)*x where t1 = A'*A", types={"x": ("n",)})
    assert e.node is mc.parse("A'*A*eye(n)*x", types={"x": ("n",)}).node


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x where t1 = y", "t1 is bound but never used"),
        ("t1 where t1 = t1 + x", "t1 is used in its own binding"),
        ("t1 + t2 where t1 = t2, t2 = x", "t2 is used in the binding of t1, before it is bound"),
        ("t1 where t1 = x, t1 = y", "t1 is bound twice"),
        ("x where", "unexpected end of input"),
        ("x where t1 x", "unexpected"),
    ],
)
def test_bad_where_clauses_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(mc.ParseError, match=message):
        mc.parse(text)


def _nested_softmax(depth: int) -> str:
    return "softmax(" * depth + "x" + ")" * depth


@pytest.mark.parametrize("depth", [6, 12])
def test_printed_where_form_parses_to_the_same_graph(depth: int) -> None:
    d = mc.derivative(_nested_softmax(depth), "x", types={"x": "vector"})
    assert isinstance(d, mc.Expression)
    text = str(d)
    assert "\nwhere\n" in text
    again = mc.parse(text, types={"x": "vector"})
    full = mc.parse(to_text(d.node, result=True), types={"x": "vector"})
    assert again.node is full.node
    x = RNG.normal(size=4)
    np.testing.assert_allclose(again.evaluate({"x": x}), d.evaluate({"x": x}), rtol=1e-12, atol=1e-15)


def test_where_names_are_temporary_and_avoid_names_in_use() -> None:
    # Variables called t1 and t3: the bindings take other names.
    text = _nested_softmax(12).replace("(x)", "(t1 + t3)")
    d = mc.derivative(text, "t1", types={"t1": "vector", "t3": "vector"})
    assert isinstance(d, mc.Expression)
    printed = str(d)
    _, _, bindings = printed.partition("\nwhere\n")
    names = [line.split("=")[0].strip() for line in bindings.splitlines()]
    assert names and all(n[0] == "t" and n[1:].isdigit() for n in names)
    assert "t1" not in names and "t3" not in names
    again = mc.parse(printed, types={"t1": "vector", "t3": "vector"})
    vals = {"t1": RNG.normal(size=3), "t3": RNG.normal(size=3)}
    np.testing.assert_allclose(again.evaluate(vals), d.evaluate(vals), rtol=1e-12, atol=1e-15)


def test_large_third_order_result_prints_in_linear_size() -> None:
    # The Hessian of a vector function (order three): shared tensors are bound by name too.
    d = mc.derivative(_nested_softmax(12), "x", types={"x": "vector"}, order=2)
    assert isinstance(d, mc.Expression)
    text = str(d)
    assert len(text) < 20_000
    assert "\nwhere\n" in text


# ---------------------------------------------------------------------------- index notation


def test_index_names_beyond_the_alphabet_are_numbered() -> None:
    assert [index_name(k) for k in (0, 1, 19, 20, 21)] == ["i", "j", "w", "i1", "i2"]
    with mc.resource_limits(max_order=30):
        d = mc.derivative("sum(exp(x))", "x", order=25)
    assert isinstance(d, mc.Expression)
    free = free_indices(d.node)
    assert len(free) == 25 and len(set(free)) == 25
    text = str(d)
    # d^25 sum(exp(x)) is exp(x_i) where all 25 indices are equal: 24 deltas and one entry.
    assert text.count("delta(") == 24 and "exp(x)[" in text
    assert all(name in text for name in free)


def test_index_names_skip_variable_names() -> None:
    d = mc.derivative("A*i", "A", types={"i": "vector"})
    assert isinstance(d, mc.Expression)
    assert free_indices(d.node) == ("j", "k", "l")


# ---------------------------------------------------------------------------- matrix-notation cases


def _merge(lp: tuple[int, ...], lq: tuple[int, ...], keep: set[int]) -> Merge:
    p, q = Piece("P", 7), Piece("Q", 7)
    return Merge(p, lp, None, q, lq, None, keep, TEXT, False, None, MatrixPrinter(TEXT))


@pytest.mark.parametrize(
    ("lp", "lq", "keep", "case"),
    [
        ((), (0, 1), {0, 1}, scaling),
        ((0,), (0,), set(), inner_product),
        ((0,), (0,), {0}, hadamard_of_vectors),
        ((0,), (1,), {0, 1}, outer_product),
        ((0, 1), (1,), {0}, matrix_vector_product),
        ((0,), (0, 1), {0, 1}, diagonal_scaling),
        ((0, 1), (1, 2), {0, 2}, matrix_product),
        ((0, 1), (0, 1), set(), trace_of_product),
        ((0, 1), (0, 1), {0, 1}, hadamard_of_matrices),
        ((0, 1), (0, 1), {0}, diagonal_of_product),
        ((0,), (1, 2), {0, 1, 2}, None),  # a Kronecker-type product: no matrix notation
        ((0, 1), (2, 3), {0, 1, 2, 3}, None),
    ],
)
def test_each_label_pattern_has_its_named_case(
    lp: tuple[int, ...], lq: tuple[int, ...], keep: set[int], case: Any
) -> None:
    assert case_of(_merge(lp, lq, keep)) is case


@pytest.mark.parametrize(
    ("text", "types"),
    [
        ("x'*y", {}),
        ("x*y'", {}),
        ("x .* y", {}),
        ("A*x", {}),
        ("x'*A", {}),
        ("diag(x)*A", {}),
        ("A*B", {}),
        ("tr(A'*B)", {}),
        ("A .* B", {}),
        ("diag(A*B')", {}),
        ("2*A", {}),
        ("x ./ y", {}),
    ],
)
def test_each_case_prints_as_typed(text: str, types: dict[str, str]) -> None:
    e = mc.parse(text, types=types)
    assert str(e) == text
