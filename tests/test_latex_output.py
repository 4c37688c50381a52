"""``--latex``: the whole output is one LaTeX ``align*`` environment that compiles: formulas
as ``lhs &= rhs`` rows, every other line (types, shapes, checks, notices) as ``\\text{...}``.

Before, only the formulas were LaTeX; the labels (``df/dW =``), the types and the shape and
check lines stayed plain text, which LaTeX rejects (``_``, ``^`` outside math, bare words).
"""

from __future__ import annotations

import re

import pytest

from matrixcalculus.cli import run, tex_label, tex_text

CASES = [
    ["0.5*norm2(W*x + b - t)^2", "--wrt", "W", "--check", "--index", "--types", "b=vector"],
    [
        "(x - sum(x)/n*ones(n)) ./ sqrt(sum((x - sum(x)/n*ones(n)).^2)/n + eps)",
        "--wrt",
        "x",
        "--wrt",
        "eps",
        "--wrt",
        "y_2",
        "--types",
        "x=vector",
        "eps=scalar",
    ],
    ["0.5*norm2(W*x + b - t)^2", "--wrt", "W", "--wrt2", "b", "--types", "b=vector", "--check"],
    ["0.5*norm2(W2*tanh(W1*x + b1) + b2 - t)^2", "--wrt", "W1", "--order", "2", "--types", "b1=vector", "b2=vector"],
    ["x'*A*x", "--evaluate", "--index", "--compare", "x'*A'*x"],
    ["A*x", "--wrt", "A", "--vjp", "g"],
    ["A*x", "--wrt", "A", "--jvp", "V"],
    ["w'*x", "--wrt", "w", "--layout", "numerator", "--check"],
]

# \text{...}, whose escapes may carry an empty group: \^{}, \~{}, \textbackslash{}.
_TEXT_GROUP = re.compile(r"\\text\{((?:[^{}\\]|\\(?:[A-Za-z]+|.)(?:\{\})?)*)\}")


def _strip_groups(row: str) -> str:
    """The row without its text groups and the arguments of name-like commands."""
    row = _TEXT_GROUP.sub(" ", row)
    row = re.sub(r"\\(?:mathit|operatorname|mathbf|mathrm)\{[^{}]*\}", " ", row)
    row = re.sub(r"\\[A-Za-z]+", " ", row)
    return re.sub(r"_\{[a-z0-9,_{}]*\}", " ", row)  # index subscripts: _{ijkl}


def _balanced(row: str) -> bool:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", row):
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def _rows(output: str) -> list[str]:
    lines = output.splitlines()
    assert lines[0] == "\\begin{align*}" and lines[-1] == "\\end{align*}", output
    body = lines[1:-1]
    assert body
    for line in body[:-1]:
        assert line.endswith(" \\\\"), line
    assert not body[-1].endswith("\\\\")
    return [line.removesuffix(" \\\\") for line in body]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a)[:40])
def test_latex_output_is_one_align_environment_of_valid_rows(argv: list[str]) -> None:
    output, _ = run([*argv, "--latex"])
    for row in _rows(output):
        assert _balanced(row), row
        assert row.count("\\left") == row.count("\\right"), row
        assert row.count("&") - row.count("\\&") == 1, f"one alignment point per row: {row}"
        # Every text group escapes LaTeX's specials.
        for text in _TEXT_GROUP.findall(row):
            assert not re.search(r"(?<!\\)[_^%#$&~]", text), text
        # Outside the text groups it is mathematics: no words, no plain-text labels.
        math = _strip_groups(row)
        assert not re.search(r"[A-Za-z]{3,}", math), f"plain text outside \\text: {row}"
        assert "d^" not in math and "df/d" not in math, row


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a)[:40])
def test_latex_output_parses_as_mathml(argv: list[str]) -> None:
    converter = pytest.importorskip("latex2mathml.converter")
    output, _ = run([*argv, "--latex"])
    for row in _rows(output):
        mathml = converter.convert(row.replace("&", "", 1))
        assert mathml.startswith("<math") and "<merror" not in mathml, row
    assert converter.convert(output).startswith("<math")


def test_text_mode_is_unchanged_by_the_latex_machinery() -> None:
    output, _ = run(["0.5*norm2(W*x + b - t)^2", "--wrt", "W", "--types", "b=vector"])
    assert output.splitlines()[0] == "df/dW = (W*x + b - t)*x'"
    assert "\\" not in output


def test_tex_text_escapes_and_labels() -> None:
    assert tex_text("a_b^2 50% #1 $x & {y} ~") == r"\text{a\_b\^{}2 50\% \#1 \$x \& \{y\} \~{}}"
    assert tex_label("W") == r"\frac{\partial f}{\partial W}"
    assert tex_label("x", 2) == r"\frac{\partial^{2} f}{\partial x^{2}}"
    assert tex_label(("W", "b")) == r"\frac{\partial^{2} f}{\partial W \, \partial b}"
