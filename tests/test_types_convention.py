"""The type rule (issue 11, "Types: one rule, stated, shown").

Names start from matrixcalculus.org's convention (a-g scalars, h-z vectors, A-Z matrices, Greek
names scalars); declarations win; the expression moves a lower-case name only where the default
reading is ill-typed, and says so in a notice; an undeclared scalar repeated over a tensor gets a
notice too; nothing moves to avoid a broadcast.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.cli import command_line_fix, main, run


def _quiet(text: str, **kw: object) -> mc.Expression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mc.MatrixCalculusNotice)
        return mc.parse(text, **kw)  # type: ignore[arg-type]


def _kinds(e: mc.Expression) -> dict[str, str]:
    return {name: v.kind for name, v in e.variables.items()}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a", "scalar"),
        ("b1", "scalar"),
        ("g", "scalar"),
        ("h", "vector"),
        ("x", "vector"),
        ("z_2", "vector"),
        ("A", "matrix"),
        ("W1", "matrix"),
        ("Sigma", "matrix"),
        ("alpha", "scalar"),
        ("omega", "scalar"),
        ("eps", "scalar"),
        ("lam", "scalar"),
        ("lambda", "scalar"),
        ("sigma2", "scalar"),
    ],
)
def test_a_bare_name_has_its_default_kind(name: str, kind: str) -> None:
    e = mc.parse(name)
    assert _kinds(e) == {name: kind}
    assert e.notices == ()


@pytest.mark.parametrize(("name", "kind"), [("a", "vector"), ("x", "scalar"), ("A", "vector"), ("alpha", "matrix")])
def test_a_declaration_wins(name: str, kind: str) -> None:
    e = mc.parse(name, types={name: kind})
    assert _kinds(e) == {name: kind}
    assert e.notices == ()


def test_a_power_moves_x_to_a_scalar_and_says_so() -> None:
    with pytest.warns(mc.MatrixCalculusNotice) as caught:
        e = mc.parse("x^3")
    assert len(caught) == 1
    assert _kinds(e) == {"x": "scalar"}
    assert e.notices == (
        'x is read as a scalar because x^3 needs one (names h-z are vectors); declare types={"x": "vector"} '
        "to change that",
    )
    # The derivative keeps the notice; it does not warn again.
    with warnings.catch_warnings():
        warnings.simplefilter("error", mc.MatrixCalculusNotice)
        d = mc.derivative(e, "x")
    assert d.notices == e.notices
    assert d.evaluate({"x": 2.0}) == pytest.approx(12.0)


def test_x_minus_its_sum_keeps_x_a_vector() -> None:
    e = mc.parse("x - sum(x)")
    assert _kinds(e) == {"x": "vector"} and len(e.shape) == 1
    assert e.notices == ()
    x = np.array([0.3, -1.2, 2.0, 0.5])
    jac = np.asarray(mc.jacobian(e, "x").evaluate({"x": x}))
    np.testing.assert_allclose(jac, np.eye(4) - np.ones((4, 4)), atol=1e-12)  # not the zero of a scalar x


def test_x_plus_its_squared_norm_keeps_x_a_vector() -> None:
    e = mc.parse("x + x'*x")
    assert _kinds(e) == {"x": "vector"} and len(e.shape) == 1
    assert e.notices == ()
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(e.evaluate({"x": x}), x + x @ x)


def test_an_undeclared_bias_is_a_scalar_with_a_notice() -> None:
    e = _quiet("W*x + b")
    assert _kinds(e) == {"W": "matrix", "x": "vector", "b": "scalar"}
    assert e.notices == (
        'b is a scalar added to every entry of W*x (names a-g are scalars); declare types={"b": "vector"} '
        "for a bias vector",
    )
    declared = mc.parse("W*x + b", types={"b": "vector"})
    assert declared.variables["b"].kind == "vector" and declared.notices == ()


def test_the_neuron_reads_with_scalars_b_and_no_notice() -> None:
    e = mc.parse("max(0, w'*x + b)")
    assert _kinds(e) == {"w": "vector", "x": "vector", "b": "scalar"}
    assert e.notices == ()


def test_the_smallest_departure_moves_one_name_by_one_step() -> None:
    e = _quiet("x*y")
    assert _kinds(e) == {"x": "scalar", "y": "vector"}
    (notice,) = e.notices
    assert notice.startswith("x is read as a scalar because x*y does not type-check with x as a vector")


def test_a_vector_named_a_g_moves_only_where_a_scalar_is_ill_typed() -> None:
    e = _quiet("(a'*x)^(1/3)")
    assert _kinds(e) == {"a": "vector", "x": "vector"}
    (notice,) = e.notices
    assert "a is read as a vector" in notice and 'types={"a": "scalar"}' in notice


def test_attention_scores_keep_q_and_k_matrices() -> None:
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("softmax(Q*K'/sqrt(d))")
    message = str(info.value)
    assert "softmax" in message and "Q, K matrices (names A-Z are matrices)" in message
    assert "d a scalar (names a-g are scalars)" in message and 'types={"Q": "vector"}' in message
    # Declared, the reading is the user's.
    e = mc.parse("softmax(q*k'/sqrt(d))*v", types={"q": "scalar", "v": "scalar"})
    assert _kinds(e) == {"q": "scalar", "k": "vector", "d": "scalar", "v": "scalar"}


def test_cross_entropy_of_matrices_names_the_readings() -> None:
    with pytest.raises(mc.InferenceError) as info:
        mc.parse("-sum(Y .* log(softmax(X*W)))")
    message = str(info.value)
    assert "X, W matrices" in message and "types=" in message
    e = mc.parse("-sum(y .* log(softmax(X*w)))")
    assert _kinds(e) == {"y": "vector", "X": "matrix", "w": "vector"} and e.notices == ()


def test_an_upper_case_name_never_moves() -> None:
    with pytest.raises(mc.InferenceError, match="A a matrix"):
        mc.parse("A^2")


def test_the_command_line_prints_notices_with_its_own_fix(capsys: pytest.CaptureFixture[str]) -> None:
    text, status = run(["x^3", "--wrt", "x"])
    assert status == 0
    assert (
        "  notice: x is read as a scalar because x^3 needs one (names h-z are vectors); "
        "declare --types x=vector to change that"
    ) in text.splitlines()
    text, _ = run(["W*x + b"])
    assert "declare --types b=vector for a bias vector" in text
    text, _ = run(["W*x + b", "--types", "b=vector"])
    assert "notice" not in text
    assert main(["h*x + x*h"]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "--types h=" in err and "types={" not in err


def test_command_line_fix_rewrites_both_quote_styles() -> None:
    assert command_line_fix("""e.g. types={'x': 'symmetric matrix'} or types={"y": "vector"}.""") == (
        "e.g. --types x=symmetric or --types y=vector."
    )
