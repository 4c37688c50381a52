"""Powers of a positive base merge; other powers do not.

The simplifier rules ``power_of_exponential`` (``exp(u).^q = exp(q*u)``), ``power_of_power``
(``(u.^p).^q = u.^(p*q)`` where ``u > 0``) and ``softplus`` (``log(1 + exp(u)) = softplus(u)``)
came from a fuzz finding: the second derivative of ``log1p(((exp(X).^b).^100).^c)`` was computed
as a difference of terms near 1e60 that cancel to order 1. Each rule is checked here against
central finite differences at orders 1 and 2, by the canonical form it must share with the
merged expression written by hand, and by the cases where merging would be wrong:
``(x.^2).^(1/2)`` is ``|x|``, not ``x``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import check_derivative, random_values
from matrixcalculus.transform.signs import positive
from matrixcalculus.transform.simplify import simplify, traced

SCALARS = {"a": "scalar", "b": "scalar", "c": "scalar"}


def _fd_check(f: str, wrt: str, order: int, values: dict[str, np.ndarray] | None = None) -> None:
    expr = mc.parse(f, types=SCALARS)
    values = values or random_values(expr.node_variables(), size=3, seed=7, within=expr.node)
    first = mc.derivative(expr, wrt)
    derivative = first if order == 1 else mc.derivative(first, wrt)
    report = check_derivative(
        expr.node, derivative.node, expr.variables[wrt].node, values, order, first.node if order == 2 else None
    )
    assert report.ok, f"{f} by {wrt}: {report}"


MERGED = [
    # (expression, wrt): each rule, alone and in chains of powers.
    ("sum(exp(x).^b)", "x"),
    ("sum(exp(x).^b)", "b"),
    ("sum((exp(x).^b).^c)", "x"),
    ("sum(((exp(A*x).^b).^3).^c)", "x"),
    ("sum((sigmoid(x).^3).^c)", "x"),
    ("sum((sigmoid(x).^b).^c)", "c"),
    ("sum((softplus(x).^3).^0.5)", "x"),
    ("sum((exp(x).^2).^(1/3))", "x"),
    ("sum(log1p(exp(A*x)))", "x"),
    ("sum(log(1 + exp(x)))", "x"),
    ("log1p(((exp(a)^b)^100)^c)", "a"),
]


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize(("f", "wrt"), MERGED)
def test_merged_powers_agree_with_finite_differences(f: str, wrt: str, order: int) -> None:
    _fd_check(f, wrt, order)


def test_the_fuzz_finding_is_stable_where_the_nested_form_cancelled() -> None:
    # log1p(exp(k*a)) with k = 100*b*c is softplus(k*a): its second derivative is
    # k^2*sigmoid(k*a)*(1 - sigmoid(k*a)), at most k^2/4, computed without cancellation.
    b, c, a = 1.84, math.asin(math.sin(0.5) / 2), 0.178
    k = 100 * b * c
    second = mc.derivative(mc.derivative("log1p(((exp(a)^b)^100)^c)", "a", types=SCALARS), "a")
    s = 1 / (1 + math.exp(-k * a))
    got = float(second.evaluate({"a": a, "b": b, "c": c}))
    assert got == pytest.approx(k**2 * s * (1 - s), rel=1e-9)
    # Where exp(k*a) is far beyond what a double holds, softplus still gives the exact limits.
    far = float(second.evaluate({"a": 40.0, "b": b, "c": c}))
    assert 0 <= far < 1e-100


@pytest.mark.parametrize(
    ("nested", "merged"),
    [
        ("exp(x).^b", "exp(b*x)"),
        ("exp(A*x).^(b + c)", "exp((b + c)*(A*x))"),
        ("((exp(x).^b).^100).^c", "exp(100*b*c*x)"),
        ("(sigmoid(x).^b).^c", "sigmoid(x).^(b*c)"),
        ("(softmax(x).^2).^0.5", "softmax(x)"),
        ("((1 + x.^2).^3).^(1/2)", "(1 + x.^2).^(3/2)"),
        ("log1p(exp(x))", "softplus(x)"),
        ("log(1 + exp(A*x))", "softplus(A*x)"),
    ],
)
def test_nested_powers_simplify_to_the_merged_expressions(nested: str, merged: str) -> None:
    comparison = mc.equal(nested, merged, types=SCALARS)
    assert comparison, str(comparison)
    # Merged: no power of a power or of an exponential is left, no log of one plus an exponential,
    # and the form has the merged expression's size (the scalars' order in a product may differ).
    node = simplify(mc.parse(nested, types=SCALARS).node)
    assert not _unmerged(node)
    assert len(list(g.postorder(node))) == len(list(g.postorder(simplify(mc.parse(merged, types=SCALARS).node))))


def _unmerged(node: g.Node) -> list[g.Node]:
    def exponential(n: g.Node) -> bool:
        return isinstance(n, g.Function) and n.name == "exp"

    return [
        n
        for n in g.postorder(node)
        if (isinstance(n, g.Power) and (isinstance(n.args[0], g.Power) or exponential(n.args[0])))
        or (isinstance(n, g.Function) and n.name == "log1p" and exponential(n.args[0]))
        or (isinstance(n, g.Function) and n.name == "log" and any(exponential(m) for m in n.args[0].args))
    ]


@pytest.mark.parametrize(
    ("expression", "rule"),
    [
        ("exp(x).^b", "power_of_exponential"),
        ("(sigmoid(x).^b).^c", "power_of_power"),
        ("log1p(exp(x))", "softplus"),
        ("log(1 + exp(x))", "softplus"),
    ],
)
def test_explanations_name_the_rule(expression: str, rule: str) -> None:
    with traced() as steps:
        simplify(mc.parse(expression, types=SCALARS).node)
    assert rule in [name for name, _, _ in steps]


# ---------------------------------------------------------------- where merging would be wrong


def test_the_square_root_of_a_square_is_the_absolute_value() -> None:
    nested = simplify(mc.parse("(x.^2).^0.5").node)
    assert nested is not simplify(mc.parse("x").node)
    x = np.array([-1.5, 2.0, -3.0])
    assert np.allclose(mc.parse("(x.^2).^0.5").evaluate({"x": x}), np.abs(x))
    # Its derivative is sign(x), also where x < 0 (a merged x would give 1 there).
    d = mc.derivative("sum((x.^2).^0.5)", "x")
    assert np.allclose(d.evaluate({"x": x}), np.sign(x))
    expr = mc.parse("sum((x.^2).^0.5)")
    report = check_derivative(expr.node, d.node, expr.variables["x"].node, {"x": x})
    assert report.ok, str(report)


def test_a_power_of_a_scalar_of_either_sign_is_not_merged() -> None:
    # (a^2)^b = |a|^(2*b): with a = -1.3 and b = 0.7, a^(2*b) is not a real number.
    with traced() as steps:
        simplify(mc.parse("(a^2)^b", types=SCALARS).node)
    assert "power_of_power" not in [name for name, _, _ in steps]
    values = {"a": np.array(-1.3), "b": np.array(0.7)}
    assert float(mc.parse("(a^2)^b", types=SCALARS).evaluate(values)) == pytest.approx(1.3**1.4)
    _fd_check("(a^2)^b", "a", 1, values)
    _fd_check("(a^2)^b", "a", 2, values)


def test_a_number_power_of_an_exponential_stays_a_power_so_that_quotients_cancel() -> None:
    # exp(x).^2 and exp(x).^-1 keep the base exp(x): exp(x) .* exp(x).^-1 cancels to 1.
    assert str(mc.derivative("sum(exp(x).^2)", "x")) == "2*exp(x).^2"
    assert mc.equal("exp(x) ./ exp(x)", "ones(n)").how == "symbolic"
    assert mc.equal("exp(x).^2", "exp(2*x)")  # the same function (numerically)


# ---------------------------------------------------------------- printed results, from the math


def test_printed_derivatives() -> None:
    # d/dx sum(exp(b*x)) = b*exp(b*x); d/da log(1 + exp(a)) = sigmoid(a), whose derivative is
    # sigmoid(a)*(1 - sigmoid(a)).
    assert str(mc.derivative("sum(exp(x).^b)", "x", types=SCALARS)) == "b*exp(b*x)"
    # The fuzz finding's function, of a vector: log1p(exp(k*x)) = softplus(k*x), k = 100*b*c, whose
    # Jacobian is diagonal with entries k*sigmoid(k*x).
    jacobian = mc.derivative("log1p(((exp(x).^b).^100).^c)", "x", types=SCALARS)
    assert str(jacobian) == "100*b*c*diag(sigmoid(100*b*c*x))"
    assert str(mc.derivative("log(1 + exp(a))", "a", types=SCALARS)) == "sigmoid(a)"
    assert str(mc.derivative("sigmoid(a)", "a", types=SCALARS)) == "sigmoid(a)*(1 - sigmoid(a))"
    assert mc.equal(mc.hessian("sum(log1p(exp(x)))", "x"), "diag(sigmoid(x) .* (1 - sigmoid(x)))")


# ---------------------------------------------------------------- the sign analysis


def test_positive_bases() -> None:
    x = g.var("x", "vector", ("n",))
    c = g.var("c", "scalar", ())
    square = g.power(x, g.const(2))
    assert positive(g.apply("exp", x)) and positive(g.apply("sigmoid", x)) and positive(g.apply("softplus", x))
    assert positive(g.const("1/2")) and not positive(g.const(0)) and not positive(g.const(-2))
    assert positive(g.power(g.apply("exp", x), c))  # any real power of a positive base
    assert positive(g.add([g.ones(("n",)), square]))  # 1 + x.^2
    assert positive(g.contract([g.apply("exp", x)], [(0,)], ()))  # sum(exp(x))
    assert not positive(x) and not positive(square)  # x.^2 is 0 at x = 0
    assert not positive(g.apply("sqrt", x)) and not positive(g.apply("abs", x)) and not positive(g.apply("relu", x))
    assert not positive(g.contract([g.apply("exp", x)], [(0,)], (0,), -1))  # -exp(x)
