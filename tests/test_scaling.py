"""Scaling of derivation and printing (issue 9, findings 5 and 6), without timing anything.

Speed is measured in benchmarks/bench_symbolic.py. Here the sizes that made the work blow up
are pinned instead: the printed text of a result grows linearly with the size of its graph
(shared subexpressions are named in a ``where`` clause rather than written out at every use),
and the simplifier still brings long products and long sums to their compact forms. Every
result is also checked against central finite differences, and a ``where`` form against the
full form it stands for: a fast wrong answer is no answer.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir.graph import postorder
from matrixcalculus.numeric.check import check_derivative, random_values
from matrixcalculus.render.printing import needs_bindings, with_bindings


def _fd_ok(f: str, wrt: str, d: mc.Expression, *, order: int = 1, size: int = 3, scale: float = 1.0) -> None:
    expr = mc.parse(f)
    values = random_values(expr.node_variables(), size=size, seed=2)
    values = {k: v * scale for k, v in values.items()}
    lower = mc.derivative(expr, wrt).node if order == 2 else None
    report = check_derivative(expr.node, d.node, expr.variables[wrt].node, values, order, lower)
    assert report.ok, str(report)


def _expand(printed: str) -> str:
    """The full text a ``where`` form stands for: each name replaced by its definition."""
    body, _, rest = printed.partition("\nwhere\n")
    defs = dict(line.strip().split(" = ", 1) for line in rest.splitlines())
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, sorted(defs, key=len, reverse=True))) + r")\b")
    full: dict[str, str] = {}
    for name, text in defs.items():  # in dependency order: a definition uses earlier names only
        full[name] = pattern.sub(lambda m: f"({full[m.group(1)]})", text)
    return pattern.sub(lambda m: f"({full[m.group(1)]})", body)


def _graph_size(*roots) -> int:
    """Nodes plus operand references: what a linear printer's text may be proportional to."""
    order = postorder(*roots)
    return len(order) + sum(len(node.args) for node in order)


def _nested_softmax(depth: int) -> str:
    return "softmax(" * depth + "x" + ")" * depth


# ------------------------------------------------------------------------------ long products


@pytest.mark.parametrize("k", [3, 8, 16, 40])
def test_derivative_of_trace_of_power_is_one_product(k: int) -> None:
    # d tr(A^k)/dA = k*(A^(k-1))': the k terms of the product rule are one term up to operand
    # order, which the canonical form of a contraction must see however many factors tie.
    f = "tr(" + "*".join(["A"] * k) + ")"
    d = mc.derivative(f, "A")
    assert str(d) == f"{k}*(" + "*".join(["A"] * (k - 1)) + ")'"
    if k <= 16:
        # Entries small enough that A^k neither overflows nor vanishes.
        _fd_ok(f, "A", d, scale=0.3)


def test_trace_of_a_longer_chain_with_two_matrices() -> None:
    # Two alternating factors: A and B do not tie, the A's tie in pairs of equal places.
    f = "tr(" + "*".join(["A", "B"] * 6) + ")"
    d = mc.derivative(f, "A")
    assert str(d).startswith("6*")
    _fd_ok(f, "A", d, scale=0.3)


# ------------------------------------------------------------------------------ long sums


@pytest.mark.parametrize("k", [4, 17, 60])
def test_sum_of_quadratic_forms_factors_into_one_product(k: int) -> None:
    # Above 16 terms the factoring takes all terms sharing a factor at once (one rebuild of the
    # common sum instead of one per term); the result is the same product, checked numerically.
    f = " + ".join(f"x'*A{i}*x" for i in range(k))
    d = mc.derivative(f, "x")
    inner = " + ".join(f"A{i} + A{i}'" for i in range(k))
    # Differentiated in simplified form (issue 14), x'*(A0 + ... + A3)*x gives the grouped order.
    grouped = " + ".join([f"A{i}" for i in range(k)] + [f"A{i}'" for i in range(k)])
    assert str(d) in (f"({inner})*x", f"({grouped})*x")
    if k <= 17:
        _fd_ok(f, "x", d)


def test_long_sum_with_coefficients_and_transposes_is_right() -> None:
    # Terms that factor on different operands, with coefficients and transposed factors, in a
    # sum long enough for the grouped factoring.
    terms = []
    for i in range(12):
        terms += [f"{i + 1}*a{i}'*X*b", f"a{i}'*X'*c{i}", f"-{i + 2}*tr(B{i}*X)"]
    f = " + ".join(terms)
    d = mc.derivative(f, "X")
    _fd_ok(f, "X", d)
    # Each group of terms becomes one product, so the text is about as long as the function's.
    assert len(str(d)) < 1.5 * len(f)


def test_sum_of_distinct_functions_is_right() -> None:
    f = " + ".join(f"sum(exp({i + 1}*x) .* sin(A{i}*x))" for i in range(20))
    d = mc.derivative(f, "x")
    _fd_ok(f, "x", d, scale=0.2)


# ------------------------------------------------------------------------------ printing


def test_small_results_print_without_where() -> None:
    d = mc.derivative("x'*A*x", "x")
    assert not needs_bindings([d.node])
    assert str(d) == "(A + A')*x"
    assert d.latex() == "\\left(A + A^\\top\\right) x"


@pytest.mark.parametrize("wrt_sum", [True, False])
def test_nested_softmax_prints_linearly_in_depth(wrt_sum: bool) -> None:
    # Written out in full, the derivative repeats softmax(...) at every level: 2.2 times longer per
    # level (1.3 MB at depth 12). Depths are tried in increasing order, so a regression fails
    # at the small one before the large one could take long.
    lengths = {}
    for depth in (6, 12, 24):
        f = f"w'*{_nested_softmax(depth)}" if wrt_sum else _nested_softmax(depth)
        d = mc.derivative(f, "x")
        text = str(d)
        size = _graph_size(d.node)
        assert len(text) <= 20 * size, (depth, len(text), size)
        lengths[depth] = len(text)
        if depth > 6:
            assert lengths[depth] <= 2.5 * lengths[depth // 2], lengths
        assert len(d.latex()) <= 40 * size


@pytest.mark.parametrize("wrt_sum", [True, False])
def test_where_form_stands_for_the_derivative(wrt_sum: bool) -> None:
    depth = 6
    f = f"w'*{_nested_softmax(depth)}" if wrt_sum else _nested_softmax(depth)
    d = mc.derivative(f, "x")
    text = str(d)
    assert "\nwhere\n" in text
    # The where form, expanded by text substitution, parses to the same values...
    full = mc.parse(_expand(text))
    values = random_values(full.node_variables(), size=4, seed=3)
    np.testing.assert_allclose(full.evaluate(values), d.evaluate(values), rtol=1e-12, atol=1e-12)
    # ...and the derivative is right.
    _fd_ok(f, "x", d, size=4)


def test_hessian_prints_linearly_and_is_right() -> None:
    f = "w'*softmax(softmax(softmax(x)))"
    d = mc.derivative(f, "x", order=2)
    text = str(d)
    assert len(text) <= 20 * _graph_size(d.node)
    np.testing.assert_allclose(
        mc.parse(_expand(text)).evaluate({"x": np.array([0.3, -1.0, 2.0]), "w": np.array([1.0, -2.0, 0.5])}),
        d.evaluate({"x": np.array([0.3, -1.0, 2.0]), "w": np.array([1.0, -2.0, 0.5])}),
        rtol=1e-12,
        atol=1e-12,
    )
    _fd_ok(f, "x", d, order=2)


@pytest.mark.parametrize("f", ["x'*inv(A + x*x')*inv(B + x*x')*x", "tr(inv(X'*C*X)*(X'*B*X)*(X'*D*X))"])
def test_moderate_hessians_print_linearly(f: str) -> None:
    # These took seconds to print: each part printed in index notation was printed again from
    # scratch, and with it every part beneath it.
    wrt = "x" if "x" in f else "X"
    d = mc.derivative(f, wrt, order=2)
    assert len(str(d)) <= 20 * _graph_size(d.node)
    _fd_ok(f, wrt, d, order=2, size=3)


def test_several_results_share_names_linearly() -> None:
    # The command line prints several derivatives with one where clause (with_bindings).
    f = f"w'*{_nested_softmax(16)} + x'*A*x"
    dx, da = mc.derivative(f, ["x", "A"])
    texts, bindings = with_bindings([dx.node, da.node], {"x", "A", "w"})
    total = sum(map(len, texts)) + sum(len(t) for _, t in bindings)
    assert total <= 20 * _graph_size(dx.node, da.node)
    names = [name for name, _ in bindings]
    assert len(set(names)) == len(names) and not {"x", "A", "w", "n"} & set(names)
