"""mc.explain: every worked example of the four tutorials (../shared/seeds), explained.

The expected statements come from the tutorials, never from the code's output: the intermediate
variables they name (u = w'x + b, u = w .* x, r = Wx - t), the local derivatives and shapes they
write (du/dw = x', a 1 x n row; diag(x); 1'), the chain rule as a product of Jacobians with
shapes, the element-wise formulas (dy_i/da_jk = x_k if i = j), the VJP dL/dA = g x', the
backpropagated signal delta*z'. A formula shown by an explanation is read back with mc.parse and
compared with the tutorial's formula by mc.equal (same function), so the test does not depend on
how the printer orders a product.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.transform import simplify as simplify_module

# Undeclared scalars such as the a of x + a are read as the tutorials mean them; no notice needed.
pytestmark = pytest.mark.filterwarnings("ignore::matrixcalculus.MatrixCalculusNotice")


def step(d: mc.Derivation, title: str) -> mc.Step:
    found = [s for s in d.steps if s.title == title]
    assert found, f"no step {title!r} in {[s.title for s in d.steps]}"
    return found[0]


def formula(d: mc.Derivation, title: str, lhs: str, last: bool = False) -> str:
    """The right-hand side of the formula ``lhs = ...`` shown in a step (shape notes removed), the
    first one or with ``last`` the last one."""
    found = [
        re.sub(r"\s{4}\(.*\)$", "", text[len(lhs) + 3 :]).strip()
        for kind, text, _ in step(d, title).parts
        if kind == "math" and text.startswith(lhs + " = ")
    ]
    if found:
        return found[-1] if last else found[0]
    raise AssertionError(f"no formula {lhs} = ... in step {title!r}:\n{step(d, title).text}")


def same(text: str, expected: str, types: dict | None = None) -> bool:
    """Whether the formula ``text`` is the function ``expected`` (both parsed with ``types``)."""
    return bool(mc.equal(mc.parse(text, types=types), mc.parse(expected, types=types)))


# ------------------------------------------------------------------ the neuron (tutorial 001, section 6)


def test_neuron_by_w_names_u_and_multiplies_the_row_x_by_the_max_derivative():
    d = mc.explain("max(0, w'*x + b)", "w")
    # "let z = w'x + b": one intermediate, the argument of max.
    assert same(formula(d, "Intermediate variables", "u"), "w'*x + b", {"b": "scalar"})
    # d(w'x + b)/dw = x' (numerator layout: a 1 x n row).
    assert formula(d, "Intermediate variables", "du/dw") == "x'"
    assert "du/dw = x'    (1×n)" in step(d, "Intermediate variables").text
    # The vector chain rule with shapes: a scalar by a vector is 1 x n = (1 x 1)(1 x n).
    chain_text = step(d, "The chain rule").text
    assert "df/dw = df/du · du/dw" in chain_text
    assert "1×n = (1×1)(1×n)" in chain_text


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_neuron_derivative_is_x_where_active_and_zero_where_not(sign):
    # "1 * dz/dw = x' where w'x + b > 0; 0 * dz/dw = 0' where w'x + b <= 0"
    d = mc.explain("max(0, w'*x + b)", "w", layout="numerator")
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=4), rng.normal(size=4)
    b = sign * (abs(w @ x) + 1.0)  # makes w'x + b positive or negative
    value = d.answer.evaluate({"w": w, "x": x, "b": b})
    np.testing.assert_allclose(np.ravel(value), x if sign > 0 else np.zeros(4))


def test_neuron_by_b_goes_through_u_with_du_db_one():
    d = mc.explain("max(0, w'*x + b)", "b")
    assert same(formula(d, "Intermediate variables", "u"), "w'*x + b", {"b": "scalar"})
    assert formula(d, "Intermediate variables", "du/db") == "1"
    assert "1×1 = (1×1)(1×1)" in step(d, "The chain rule").text
    w, x = np.ones(3), np.array([1.0, 2.0, 3.0])
    assert d.answer.evaluate({"w": w, "x": x, "b": 1.0}) == 1.0
    assert d.answer.evaluate({"w": w, "x": x, "b": -10.0}) == 0.0


# ------------------------------------------------------------------ sum(w .* x) (tutorial 001, section 6)


def test_dot_product_as_sum_of_hadamard_product():
    d = mc.explain("sum(w .* x)", "w")
    text = step(d, "Intermediate variables").text
    # u = w (x) x  =>  du/dw = diag(x);   y = sum(u)  =>  dy/du = 1'
    assert same(formula(d, "Intermediate variables", "u"), "w .* x")
    assert formula(d, "Intermediate variables", "du/dw") == "diag(x)"
    assert "(n×n)" in text
    assert formula(d, "Intermediate variables", "df/du") in ("ones(n)'", "1'")
    # dy/dw = dy/du du/dw = 1' diag(x) = x'
    chain_text = step(d, "The chain rule").text
    assert "1×n = (1×n)(n×n)" in chain_text
    assert formula(d, "The chain rule", "df/dw", last=True) in ("x", "x'")
    assert "df/dw = ones(n)' · diag(x)" in chain_text
    assert str(mc.explain("sum(w .* x)", "w", layout="numerator").answer) == "x'"


# ------------------------------------------------------------------ the four cases (tutorial 002)


@pytest.mark.parametrize(
    ("f", "wrt", "types", "case", "shape"),
    [
        ("3*a^2 + a", "a", None, 1, "1×1"),  # f and x scalars: the Jacobian is a scalar
        ("w'*x", "w", None, 2, "1×n"),  # f scalar, x vector: the transpose of x's dimensions
        ("a*x", "a", None, 3, "n×1"),  # f vector, x scalar: the dimensions of f
        ("A*x", "x", None, 4, "m×n"),  # both vectors: m x n
    ],
)
def test_the_four_shape_cases(f, wrt, types, case, shape):
    d = mc.explain(f, wrt, types=types, layout="numerator")
    text = step(d, "The question and its shapes").text
    assert f"case {case}" in text
    assert f"numerator layout is {shape}" in text


# ------------------------------------------------------------------ element-wise operations (tutorial 000)


def test_vector_scalar_addition_is_identity_by_x_and_ones_by_a():
    dx = mc.explain("x + a", "x")
    assert "Scalar expansion" in step(dx, "The question and its shapes").text
    assert str(dx.answer) == "eye(n)"
    # ones along the diagonal, zeros everywhere else
    assert "diagonal" in step(dx, "The element-wise view").text
    np.testing.assert_array_equal(dx.answer.evaluate({"x": np.zeros(3), "a": 1.0}), np.eye(3))
    da = mc.explain("x + a", "a")
    assert str(da.answer) == "ones(n)"  # dy/da = 1 in R^n


def test_vector_scalar_multiplication_is_a_identity_by_x_and_x_by_a():
    dx = mc.explain("a*x", "x")
    assert "Scalar expansion" in step(dx, "The question and its shapes").text
    # dy/dx = aI: a diagonal Jacobian
    assert "diagonal" in step(dx, "The element-wise view").text
    values = {"a": 2.5, "x": np.arange(3.0)}
    np.testing.assert_allclose(dx.answer.evaluate(values), 2.5 * np.eye(3))
    assert str(mc.explain("a*x", "a").answer) == "x"  # dy/da = x


@pytest.mark.parametrize(("f", "diagonal"), [("x .* z", lambda v: v["z"]), ("exp(x)", lambda v: np.exp(v["x"]))])
def test_elementwise_operations_have_diagonal_jacobians(f, diagonal):
    d = mc.explain(f, "x")
    view = step(d, "The element-wise view")
    # off-diagonal elements all go to zero: dy_i/dx_j = 0 for i != j
    assert "diagonal" in view.text and "delta(i,j)" in view.text
    rng = np.random.default_rng(0)
    values = {"x": rng.normal(size=3), "z": rng.normal(size=3)}
    np.testing.assert_allclose(d.answer.evaluate(values), np.diag(diagonal(values)))


# ------------------------------------------------------------------ A*x (tutorial 000, matrix-vector)


def test_matrix_vector_product_by_x_is_a():
    d = mc.explain("A*x", "x")
    assert str(d.answer) == "A"  # dy/dx = A, m x n
    assert "m×n" in step(d, "The question and its shapes").text


def test_matrix_vector_product_by_a_is_a_third_order_tensor_collapsed_by_the_vjp():
    d = mc.explain("A*x", "A")
    question = step(d, "The question and its shapes").text
    assert "tensor of order 3" in question and "m×m×n" in question
    # dy_i/da_jk = x_k if i = j, 0 otherwise
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(2, 3)), rng.normal(size=3)
    expected = np.einsum("ij,k->ijk", np.eye(2), x)
    np.testing.assert_allclose(d.answer.evaluate({"A": A, "x": x}), expected)
    view = step(d, "The element-wise view").text
    assert "delta(i,j)*x[k]" in view and "Kronecker delta" in view
    # The VJP: dL/dA = dL/dy x'
    vjp = formula(d, "The chain rule", "dL/dA")
    assert same(vjp, "g*x'", {"g": "vector"})


# ------------------------------------------------------------------ matrix gradients (tutorial 003)


def test_linear_form_gradient_is_the_outer_product_y_x():
    d = mc.explain("y'*A*x", "A")
    # df/dA_ij = y_i x_j, so grad_A f = y x'
    assert same(str(d.answer), "y*x'")
    assert "outer product" in step(d, "The element-wise view").text


def test_squared_error_names_the_residual_and_collapses_to_r_x():
    d = mc.explain("0.5*norm2(W*x - t)^2", "W")
    # Let r = Wx - t be the residual; L = 1/2 sum r_i^2
    names = [t for k, t, _ in step(d, "Intermediate variables").parts if k == "math"]
    residual = next(t.split(" = ", 1) for t in names if t.split(" = ")[1] in ("W*x - t",))
    assert same(residual[1], "W*x - t")
    # grad_W L = (Wx - t) x'
    assert same(str(d.answer), "(W*x - t)*x'")
    chain_text = step(d, "The chain rule").text
    assert "tensor of order 3" in chain_text  # dr/dW, never formed
    delta = formula(d, "The chain rule", "delta")
    assert same(delta.split(" = ")[-1], residual[0], {residual[0]: "vector"})
    assert same(formula(d, "The chain rule", "df/dW", last=True), "delta*x'", {"delta": "vector"})


def test_r_transpose_r_is_a_fourth_order_tensor():
    d = mc.explain("R'*R", "R")
    question = step(d, "The question and its shapes").text
    assert "tensor of order 4" in question and "n×n×m×n" in question
    # F_pq = sum_i R_ip R_iq  =>  dF_pq/dR_ij = delta_jp R_iq + R_ip delta_jq
    rng = np.random.default_rng(2)
    R = rng.normal(size=(4, 3))
    eye = np.eye(3)
    expected = np.einsum("jp,iq->pqij", eye, R) + np.einsum("ip,jq->pqij", R, eye)
    np.testing.assert_allclose(d.answer.evaluate({"R": R}), expected)


def test_two_layer_network_backpropagates_delta_times_z():
    types = {"b1": "vector", "b2": "vector"}
    d = mc.explain("0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", ["W1", "b1", "W2", "b2"], types=types)
    names = {"z": "vector", "x": "vector", "delta_1": "vector", "delta_2": "vector", "u1": "vector", "u2": "vector"}
    # z = sigma(u), u = W z_prev + b: the tutorial's intermediates
    assert same(formula(d, "Intermediate variables", "z"), "relu(u1)", names)
    assert same(formula(d, "Intermediate variables", "u1"), "W1*x + b1", {**names, **types})
    # grad_W L = delta z_prev' for each layer; grad_b L = delta
    assert same(formula(d, "The chain rule", "df/dW2"), "delta_2*z'", names)
    assert same(formula(d, "The chain rule", "df/dW1"), "delta_1*x'", names)
    assert same(formula(d, "The chain rule", "df/db1"), "delta_1", names)
    # delta_i = dL/dz_i sigma'(u_i), dL/dz = W2' delta_2
    delta_1 = formula(d, "The chain rule", "delta_1").split(" = ")[-1]
    assert same(delta_1, "(W2'*delta_2) .* (u1 > 0)", names)
    # delta = (Wx - t) takes the role of the error signal at the top
    assert same(formula(d, "The chain rule", "delta_2").split(" = ")[-1], "u2", names)
    assert "outer product" in step(d, "The element-wise view").text


def test_stacked_functions_have_the_gradients_as_rows():
    # J = [grad f; grad g]
    d = mc.explain("[3*x^2*y; 2*x + y^8]", "[x; y]")
    scalars = {"x": "scalar", "y": "scalar"}
    assert same(formula(d, "The chain rule", "grad f_1"), "[6*x*y, 3*x^2]", scalars)
    assert same(formula(d, "The chain rule", "grad f_2"), "[2, 8*y^7]", scalars)
    assert same(formula(d, "The chain rule", "df/d[x; y]"), "[6*x*y, 3*x^2; 2, 8*y^7]", scalars)


# ------------------------------------------------------------------ depth, layouts, checks


def _mlp(depth: int) -> tuple[str, list[str], dict[str, str]]:
    text = "x"
    for k in range(1, depth + 1):
        inner = f"W{k}*{text} + b{k}"
        text = inner if k == depth else f"relu({inner})"
    params = [p for k in range(1, depth + 1) for p in (f"W{k}", f"b{k}")]
    return f"0.5*norm2({text} - t)^2", params, {f"b{k}": "vector" for k in range(1, depth + 1)}


def test_deep_network_names_each_error_signal_once_and_grows_linearly():
    sizes = []
    for depth in (2, 3, 4, 5):
        f, params, types = _mlp(depth)
        d = mc.explain(f, params, types=types)
        chain_text = step(d, "The chain rule").text
        for k in range(1, depth + 1):
            assert len(re.findall(rf"^\s*delta_{k} = ", chain_text, re.M)) == 1
        sizes.append(len(str(d)))
    steps = np.diff(sizes)
    # Linear: each layer adds about the same amount of text (no re-derivation per parameter).
    assert max(steps) <= 1.3 * min(steps), sizes


def test_layouts_side_by_side_when_they_differ():
    d = mc.explain("w'*x", "w")
    both = step(d, "Both layouts").text
    assert "numerator:   df/dw = x'    (1×n)" in both
    assert "denominator: df/dw = x    (n×1)" in both
    assert all(s.title != "Both layouts" for s in mc.explain("a^2", "a").steps)


def test_numeric_check_line():
    d = mc.explain("x'*A*x", "x")
    assert "against central differences (ok)" in step(d, "A numeric check").text


def test_simplification_steps_name_the_rules():
    d = mc.explain("sum(w .* x)", "w")
    text = step(d, "Simplification").text
    assert "eliminate_delta" in text  # the identity of diag(x) disappears
    assert "drop_ones" in text  # the ones of the sum


def test_steps_are_frozen_and_carry_text_latex_and_expression():
    d = mc.explain("A*x", "x")
    s = d.steps[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.title = "other"  # type: ignore[misc]
    assert s.text and s.latex and isinstance(s.expression, mc.Expression)
    assert str(d).startswith("df/dx of f = A*x")


def test_renderings_markdown_latex_html():
    converter = pytest.importorskip("latex2mathml.converter")
    d = mc.explain("sum(relu(x) .* (x > a))", "x")
    md = d.markdown()
    assert md.count("\n### ") == len(d.steps)
    tex = d.latex()
    assert tex.count("\\subsection*") == len(d.steps)
    for block in re.findall(r"\\\[ (.*?) \\\]", tex):
        converter.convert(block)  # every formula is LaTeX that latex2mathml reads
    page = d.html()
    assert page.count("<math") == sum(kind == "math" for s in d.steps for kind, _, _ in s.parts)
    # User text is escaped: the comparison's '>' never reaches the page raw.
    assert "x &gt; a" in page and "x > a" not in page.replace("<", " ").replace("&gt;", " ")


@pytest.mark.parametrize(
    ("f", "wrt", "types"),
    [
        ("0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", ["W1", "b1", "W2", "b2"], {"b1": "vector", "b2": "vector"}),
        ("R'*R", "R", None),
        ("[3*x^2*y; 2*x + y^8]", "[x; y]", None),
        ("sum(log(1 + exp(-y .* (X*w))))", "w", None),
        ("sigma2*x'*x + tr(A*X*B)", "X", None),
    ],
)
def test_every_formula_is_latex_that_latex2mathml_reads(f, wrt, types):
    converter = pytest.importorskip("latex2mathml.converter")
    d = mc.explain(f, wrt, types=types, size=2)
    for s in d.steps:
        for kind, _, tex in s.parts:
            if kind == "math":
                converter.convert(tex)  # raises on LaTeX it cannot read (a double subscript, ...)


def test_errors_are_library_errors():
    with pytest.raises(mc.DerivativeError, match="layout"):
        mc.explain("A*x", "x", layout="rows")
    with pytest.raises(mc.DerivativeError, match="size"):
        mc.explain("A*x", "x", size=0)
    with pytest.raises(mc.ParseError):
        mc.explain("A*", "x")


def test_simplify_trace_records_only_inside_traced():
    x = g.var("x", "vector", ("n",))
    product = g.contract([g.delta("n"), x], [(0, 1), (1,)], (0,))
    with simplify_module.traced() as steps:
        simplify_module.simplify(product)
    assert [name for name, _, _ in steps] == ["eliminate_delta"]
    assert simplify_module._TRACE.get() is None
    assert set(simplify_module.RULE_STATEMENTS) >= {name for name, _, _ in steps}


def test_cli_explain_prints_the_derivation():
    result = subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", "max(0, w'*x + b)", "--wrt", "w", "--explain"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(mc.explain("max(0, w'*x + b)", "w")).strip()
    bad = subprocess.run(
        [sys.executable, "-m", "matrixcalculus.cli", "A*x", "--explain"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "give --wrt" in bad.stderr


# ------------------------------------------------------------------ the explicit small case and flattening


def explicit_text(d: mc.Derivation) -> str:
    (text,) = [t for kind, t, _ in step(d, "The explicit small case").parts if kind == "math"]
    return text


@pytest.mark.parametrize(
    ("f", "diagonal"),
    [("x .* z", ["z1", "z2", "z3"]), ("exp(x)", ["exp(x1)", "exp(x2)", "exp(x3)"])],
)
def test_diagonal_jacobians_written_out_at_size_3(f, diagonal):
    # The first tutorial's matrices: diag(z1 ... zn), diag(e^x1 ... e^xn), zeros off the diagonal.
    d = mc.explain(f, "x", size=3)
    shown = " ".join(explicit_text(d).split())
    a, b, c = diagonal
    expected = f"[{a}, 0, 0; 0, {b}, 0; 0, 0, {c}]"
    scalars = {f"{v}{k}": "scalar" for v in "xz" for k in (1, 2, 3)}
    assert same(shown, expected, scalars), shown


def test_matrix_vector_product_by_a_written_as_its_slices():
    # Slice i of dy/dA is the m x n matrix with x' in row i and zeros elsewhere.
    d = mc.explain("A*x", "A", size=3)
    slices = re.findall(r"\[(\d), :, :\] =\n(\[.*?\])", explicit_text(d), re.S)
    assert [int(i) for i, _ in slices] == [1, 2, 3]
    scalars = {f"x{k}": "scalar" for k in (1, 2, 3)}
    for i, block in slices:
        rows = ["0, 0, 0"] * 3
        rows[int(i) - 1] = "x1, x2, x3"
        assert same(" ".join(block.split()), "[" + "; ".join(rows) + "]", scalars), block


def test_r_transpose_r_blocks_and_both_flattenings():
    d = mc.explain("R'*R", "R", size=2)
    blocks = re.findall(r"\[(\d), (\d), :, :\] =", explicit_text(d))
    assert blocks == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2")]  # one block per entry F_pq
    flattening = step(d, "Flattening")
    orders = [t.split(":")[0] for kind, t, _ in flattening.parts if kind == "math"]
    assert orders == ["column-major", "row-major"]
    # vec in each order: the tutorial's dF_pq/dR_ij = delta_jp R_iq + R_ip delta_jq, reshaped.
    rng = np.random.default_rng(5)
    R = rng.normal(size=(3, 2))
    tensor = np.einsum("jp,iq->pqij", np.eye(2), R) + np.einsum("ip,jq->pqij", R, np.eye(2))
    answer = mc.derivative("R'*R", "R")
    for order, numpy_order in (("column", "F"), ("row", "C")):
        flat = answer.flatten(order)
        assert f"= {flat}" in flattening.text
        np.testing.assert_allclose(flat.evaluate({"R": R}), np.reshape(tensor, (4, 6), order=numpy_order))
    only = mc.explain("R'*R", "R", flatten="row")
    assert [t.split(":")[0] for k, t, _ in step(only, "Flattening").parts if k == "math"] == ["row-major"]


def test_picture_of_the_explicit_jacobian():
    pytest.importorskip("matplotlib")
    d = mc.explain("x .* z", "x")
    svg = d.picture()
    assert isinstance(svg, str) and "<svg" in svg
    png = mc.explain("A*x", "A", size=2).picture("png")
    assert isinstance(png, bytes) and png.startswith(b"\x89PNG")
    pytest.importorskip("latex2mathml")
    page = d.html(picture=True)
    assert page.count("<svg") == 1 and "<?xml" not in page


# ------------------------------------------------------------------ the levels multiply back to the derivative


@pytest.mark.parametrize("seed", range(24))
def test_random_expressions_the_chain_multiplies_back_to_the_derivative(seed):
    """For random well-typed expressions (the fuzzer's grammar): explaining never fails outside the
    library's errors, and where the chain rule is multiplied out, the product of the local
    derivatives is the derivative (the same function, by mc.equal)."""
    import random

    from tests.fuzzing import TYPES, RandomChooser, expression, variables_in

    rng = random.Random(seed)
    text = expression(RandomChooser(rng), rng.choice("svm"), depth=3).text
    names = [n for n in variables_in(text) if n in TYPES]
    if not names:
        pytest.skip("no variable in " + text)
    wrt = rng.choice(names)
    try:
        d = mc.explain(text, wrt, types=TYPES)
    except mc.MatrixCalculusError:
        return  # a clear error is an allowed answer (e.g. a derivative beyond the limits)
    chain_step = [s for s in d.steps if s.title == "The chain rule"]
    if chain_step and "Multiplied out" in chain_step[0].text:
        product = formula(d, "The chain rule", f"df/d{wrt}", last=True)
        if product != str(d.answer) and "where" not in product and "[" not in product:
            assert mc.equal(mc.parse(product, types=TYPES), d.answer), (text, wrt, product)
