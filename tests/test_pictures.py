"""Pictures of an explicit Jacobian's structure (matplotlib, the ``plot`` extra).

A picture is checked as a file: SVG that parses as XML with its labels as text, PNG bytes with
the PNG signature; a diagonal Jacobian shows its diagonal entries, a 3-D tensor one panel per
slice, a 4-D tensor one per block; without matplotlib the error names the extra.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

import pytest

import matrixcalculus as mc

from .conftest import require

require("matplotlib")

SVG = "{http://www.w3.org/2000/svg}"


def svg_texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return ["".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")]


def test_diagonal_jacobian_svg():
    svg = mc.derivative("x .* z", "x").picture({"n": 3})
    assert isinstance(svg, str)
    texts = svg_texts(svg)
    # The entries on the diagonal, the axes and what they count, the title.
    assert {"z1", "z2", "z3"} <= set(texts)
    assert "i: entry of x .* z" in texts and "j: entry of x" in texts
    assert "∂(x .* z)/∂x at n = 3" in texts
    assert {"zero", "nonzero constant", "formula of the variables"} <= set(texts)


def test_png_bytes():
    png = mc.derivative("exp(x)", "x").picture(3, format="png")
    assert isinstance(png, bytes)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 1000


def test_three_dimensional_result_is_its_slices():
    texts = svg_texts(mc.derivative("A*x", "A").explicit({"m": 2, "n": 3}).picture())
    assert "i = 1" in texts and "i = 2" in texts and "i = 3" not in texts
    assert "j: row of A" in texts and "k: column of A" in texts
    assert any(t.startswith("∂(A*x)/∂A at m = 2, n = 3") for t in texts)


def test_four_dimensional_result_is_its_blocks():
    texts = svg_texts(mc.derivative("R'*R", "R").picture(2))
    blocks = {t for t in texts if t.startswith("(i, j) = ")}
    assert blocks == {"(i, j) = (1, 1)", "(i, j) = (1, 2)", "(i, j) = (2, 1)", "(i, j) = (2, 2)"}
    assert "2*R[1,1]" in texts


def test_layout_labels_follow_the_axes():
    texts = svg_texts(mc.derivative("A*x", "x", layout="denominator").picture({"m": 2, "n": 3}))
    # The denominator layout is n x m: rows count x, columns count A*x.
    assert "i: entry of x" in texts and "j: entry of A*x" in texts


def test_an_expression_that_is_no_derivative():
    texts = svg_texts(mc.parse("A*B").picture(2))
    assert "A*B at m = 2, n = 2, p = 2" in texts


def test_bad_format():
    with pytest.raises(mc.MatrixCalculusError, match="'svg' or 'png'"):
        mc.derivative("x .* z", "x").picture(2, format="jpeg")


def test_missing_matplotlib_names_the_extra(monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(mc.MatrixCalculusError, match=r'pip install "matrixcalculus\[plot\]"'):
        mc.derivative("x .* z", "x").picture(3)


def test_titles_and_labels_of_higher_orders_and_stacks():
    hessian = mc.hessian("sum(exp(A*x))", "x").explicit({"m": 2, "n": 3})
    assert hessian.title() == "∂²sum(exp(A*x))/∂x∂x at m = 2, n = 3"
    assert hessian.axis_labels() == ["i: entry of x", "j: entry of x"]
    mixed = mc.derivative("x'*A*y", ("x", "y"), types={"x": ("m",), "y": ("n",)}).explicit({"m": 2, "n": 3})
    assert mixed.title() == "∂²(x'*A*y)/∂x∂y at m = 2, n = 3"
    stacked = mc.derivative("[3*x^2*y; 2*x + y^8]", "[x; y]").explicit()
    assert stacked.axis_labels() == ["i: entry of [3*x^2*y; 2*x + y^8]", "j: entry of [x; y]"]
    flat = mc.derivative("A*X*B", "X").flatten().explicit(2)
    assert flat.title().startswith("∂vec(A*X*B)/∂vec(X) at ")
    assert mc.parse("A*B").explicit(2).axis_labels() == ["i: axis 1", "j: axis 2"]
