"""An explanation writes each intermediate level as the user typed it: the tutorials' neuron
``y = max(0, u)``, not the library's normal form ``relu(u)``; ``0.5*norm2(u)^2`` as typed. Where
the typed text cannot stand for the level (it does not read back as the level's definition), the
definition is printed from the graph as before."""

from __future__ import annotations

import matrixcalculus as mc


def definitions(d) -> list[str]:
    (step,) = [s for s in d.steps if s.title == "Intermediate variables"]
    return [
        line.strip() for line in step.text.splitlines() if " = " in line and not line.strip().startswith(("d", "∂"))
    ]


def test_the_neuron_is_written_with_max_as_typed():
    d = mc.explain("max(0, w'*x + b)", "w")
    assert definitions(d) == ["u = w'*x + b", "f = max(0, u)"]
    # relu typed stays relu.
    assert definitions(mc.explain("relu(w'*x + b)", "w")) == ["u = w'*x + b", "f = relu(u)"]


def test_parentheses_around_a_typed_part_are_dropped():
    d = mc.explain("max(0, (w'*x + b))", "w")
    assert definitions(d) == ["u = w'*x + b", "f = max(0, u)"]


def test_a_network_keeps_its_typed_spelling():
    d = mc.explain("0.5*norm2(W2*max(0, W1*x + b1) + b2 - t)^2", ["W1", "W2"], types={"b1": "vector", "b2": "vector"})
    assert definitions(d) == ["u1 = W1*x + b1", "z = max(0, u1)", "u2 = W2*z + b2 - t", "f = 0.5*norm2(u2)^2"]


def test_the_typed_text_reads_back_as_the_definition():
    # The answer is the same whatever the spelling: the typed text is only how a level is shown.
    typed = mc.explain("max(0, w'*x + b)", "w")
    normal = mc.explain("relu(w'*x + b)", "w")
    assert mc.equal(typed.answer, normal.answer).how == "symbolic"


def test_a_where_binding_falls_back_to_the_graph():
    # The bound part is typed elsewhere (after `where`): the level is printed from the graph.
    d = mc.explain("max(0, u) where u = w'*x + b", "w")
    assert definitions(d) == ["u = w'*x + b", "f = relu(u)"]


def test_the_latex_shows_what_was_typed_too():
    d = mc.explain("max(0, w'*x + b)", "w")
    assert r"f = \max\left(0, w^\top x + b\right)" in d.steps[0].latex
    (step,) = [s for s in d.steps if s.title == "Intermediate variables"]
    assert r"f = \max\left(0, u\right)" in step.latex
    assert "relu" not in step.latex
    # relu typed stays relu in LaTeX.
    assert r"\operatorname{relu}\left(u\right)" in mc.explain("relu(w'*x + b)", "w").steps[1].latex
