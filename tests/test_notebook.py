"""Notebook display: ``examples/tour.ipynb`` executed in a real Jupyter kernel (nbclient +
ipykernel), its outputs read back by MIME type.

A cell ending in a derivative shows typeset mathematics (``text/latex``) beside the plain text;
the expected derivatives are the tutorials' (the notebook walks their path).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if not os.environ.get("CI"):
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
import nbformat
from nbclient import NotebookClient

import matrixcalculus as mc

TOUR = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"

# The last line of a cell -> what the tutorials derive (the plain text) and a piece of its LaTeX.
EXPECTED = {
    'mc.derivative("x^3 + 2*x + 1", "x")': ("3*x^2 + 2", "3 x^{2} + 2"),
    'mc.derivative("10*x^2*y^2", "x")': ("20*x*y^2", "20 x y^{2}"),
    'mc.derivative("w\'*x", "w")': ("x", "x"),
    'mc.derivative("w\'*x", "w", layout="numerator")': ("x'", "x^\\top"),
    'mc.derivative("x + a", "a")': ("ones(n)", "\\mathbf{1}"),
    'mc.derivative("a*x", "x")': ("a*eye(n)", "a I"),
    'mc.derivative("x .* z", "x")': ("diag(z)", "\\operatorname{diag}\\left(z\\right)"),
    'mc.derivative("exp(x)", "x")': ("diag(exp(x))", "\\exp"),
    'mc.derivative("sum(x)", "x")': ("ones(n)", "\\mathbf{1}"),
    'mc.derivative("A*x", "x")': ("A", "A"),
    'mc.derivative("A*x", "A")': ("delta(i,j)*x[k]", "m \\times m \\times n"),
    'mc.vjp("A*x", "A", cotangent="g")': ("g*x'", "g x^\\top"),
    "dw": ("(w'*x + b > 0)*x", "\\left(w^\\top x + b > 0\\right) x"),
    "db": ("(w'*x + b > 0)", "w^\\top x + b > 0"),
    'mc.jacobian("[3*x^2*y; 2*x + y^8]", "[x; y]")': ("[6*x*y, 3*x^2; 2, 8*y^7]", "\\begin{bmatrix}"),
    'mc.derivative("y\'*A*x", "A")': ("y*x'", "y x^\\top"),
    'mc.derivative("0.5*norm2(W*x - t)^2", "W")': ("(W*x - t)*x'", "\\left(W x - t\\right) x^\\top"),
    'mc.derivative("R\'*R", "R")': ("delta(i,l)*R[k,j] + delta(j,l)*R[k,i] -> [i,j,k,l]", "\\delta_{il}"),
    'grads["W2"]': ("(W2*relu(W1*x + b1) + b2 - t)*relu(W1*x + b1)'", "\\operatorname{relu}"),
    'mc.hessian("x\'*A*x", "x")': ("A + A'", "A + A^\\top"),
}


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    notebook = nbformat.read(TOUR, as_version=4)
    NotebookClient(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(TOUR.parent)}}
    ).execute()
    return notebook


def _results(notebook: nbformat.NotebookNode) -> dict[str, dict]:
    """Last line of each code cell -> the data of its displayed result."""
    shown = {}
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for output in cell.outputs:
                if output.output_type == "execute_result":
                    shown[cell.source.strip().splitlines()[-1]] = output.data
    return shown


def test_the_shipped_tour_has_no_stored_outputs() -> None:
    # Outputs are made by running it (here and by readers), never pasted in.
    notebook = nbformat.read(TOUR, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


def test_the_tour_runs_without_errors(executed: nbformat.NotebookNode) -> None:
    for cell in executed.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.output_type == "error"]
            assert not errors, f"{cell.source!r}: {errors}"


def test_each_derivative_shows_as_typeset_math_with_the_tutorials_result(executed: nbformat.NotebookNode) -> None:
    shown = _results(executed)
    for line, (text, latex) in EXPECTED.items():
        data = shown[line]
        assert set(data) >= {"text/plain", "text/latex"}, line
        plain = data["text/plain"]
        assert plain.startswith("Expression(") and plain[11] == plain[-2] and plain[11] in "'\"", plain
        assert plain[12:-2].replace(" ", "") == text.replace(" ", ""), (line, plain)
        assert data["text/latex"].startswith("$\\displaystyle ") and data["text/latex"].endswith("$")
        assert latex in data["text/latex"], (line, data["text/latex"])


def test_the_explicit_jacobian_shows_as_a_matrix_and_its_picture_as_svg(executed: nbformat.NotebookNode) -> None:
    shown = _results(executed)
    # x .* z by x at n = 3: diag(z1, z2, z3), entry by entry.
    latex = shown["J"]["text/latex"]
    assert latex.startswith("$\\displaystyle \\begin{bmatrix}")
    assert latex.replace(" ", "").count("z_{") == 3 and "z_{3}" in latex
    svg = next(data for line, data in shown.items() if line.startswith("SVG("))
    assert "<svg" in svg["image/svg+xml"]


def test_a_derivation_shows_its_steps_with_math_and_picture(executed: nbformat.NotebookNode) -> None:
    shown = _results(executed)
    data = shown['mc.explain("max(0, w\'*x + b)", "w")']
    assert {"text/html", "text/markdown", "text/plain"} <= set(data)
    page = data["text/html"]
    # The neuron's derivation names u = w'x + b and multiplies the local Jacobians (the chain rule).
    assert "The chain rule" in page and "Intermediate variables" in page
    assert "<math" in page and "<svg" in page  # formulas typeset, the explicit case's picture drawn
    assert "$$" in data["text/markdown"]


def test_printed_cells_show_the_check_and_the_code(executed: nbformat.NotebookNode) -> None:
    streams = "".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
    assert "df/dW: max abs error" in streams and "(ok)" in streams
    assert "def derivatives(W, x, t):" in streams


def test_repr_latex_of_a_tensor_names_its_indices_and_shape() -> None:
    # d(A*x)/dA: entry [i,j,k] = delta(i,j)*x[k], an m x m x n tensor (the first tutorial).
    shown = mc.derivative("A*x", "A")._repr_latex_()
    assert "\\delta_{ij}" in shown and "indices i,j,k" in shown and "m \\times m \\times n" in shown
    assert mc.parse("x'*A*x")._repr_latex_() == "$\\displaystyle x^\\top A x$"
