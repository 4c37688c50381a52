"""The ``where`` clause: every bound name is used, and a shared subexpression is bound once.

Layer norm with several ``--wrt`` used to bind a name (a negative term of a sum) that the text
then wrote out in full twice instead of using.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.cli import run
from matrixcalculus.render.bindings import with_bindings
from matrixcalculus.render.printing import LATEX, TEXT

LAYER_NORM = "(x - sum(x)/n*ones(n)) ./ sqrt(sum((x - sum(x)/n*ones(n)).^2)/n + eps)"
LAYER_NORM_TYPES = {"x": "vector", "eps": "scalar"}
CASES = [
    (LAYER_NORM, ["x", "eps"], LAYER_NORM_TYPES),
    ("sum(tanh(W*x + b).^2) + sum(exp(-(W*x + b)))", ["W", "x", "b"], {"b": "vector"}),
]


def _split(text: str) -> tuple[list[str], list[tuple[str, str]]]:
    """The result lines (before ``where``) and the ``name = text`` bindings of a CLI output."""
    lines = text.splitlines()
    body = [line.split(" = ", 1)[1] for line in lines[: lines.index("where")]]
    bindings = []
    for line in lines[lines.index("where") + 1 :]:
        if not line.startswith("  ") or " = " not in line:
            break
        name, rhs = line.strip().split(" = ", 1)
        bindings.append((name, rhs))
    return body, bindings


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", text) is not None


@pytest.mark.parametrize(("text", "wrt", "types"), CASES)
def test_every_bound_name_is_used_and_no_bound_text_is_repeated(text: str, wrt: list[str], types: dict) -> None:
    argv = [text]
    for name in wrt:
        argv += ["--wrt", name]
    argv += ["--types", *(f"{k}={v}" for k, v in types.items())]
    output, status = run(argv)
    assert status == 0
    body, bindings = _split(output)
    assert bindings, output
    for k, (name, rhs) in enumerate(bindings):
        elsewhere = body + [r for j, (_, r) in enumerate(bindings) if j != k]
        assert any(_mentions(t, name) for t in elsewhere), f"{name} is bound but never used:\n{output}"
        # Bound once: its text is not also written out somewhere else.
        assert not any(rhs in t for t in elsewhere), f"{name} = {rhs} is also written out:\n{output}"


def test_layer_norm_where_clause_names_the_negative_term() -> None:
    output, _ = run([LAYER_NORM, "--wrt", "x", "--wrt", "eps", "--types", "x=vector", "eps=scalar"])
    body, bindings = _split(output)
    # The term -(x - mean)(x - mean)'/(n s^3) of d/dx occurs twice in d/dx: named, used by name.
    assert not any(text.count("t1*t1'") > 0 for text in body), output
    assert sum(rhs.count("t1*t1'") for _, rhs in bindings) == 1, output


@pytest.mark.parametrize(("text", "wrt", "types"), CASES)
def test_the_where_form_has_the_values_of_the_derivatives(text: str, wrt: list[str], types: dict) -> None:
    results = mc.derivative(text, wrt, types=types)
    roots = [r.node for r in results]
    reserved = {v for r in results for v in r.variables} | {"n", "m"}
    texts, bindings = with_bindings(roots, reserved, TEXT)
    assert bindings
    # Substitute the bindings back (in parentheses), parse, and compare values.
    rng = np.random.default_rng(0)
    values = {
        name: (rng.standard_normal(var.shape and tuple(3 if isinstance(d, str) else d for d in var.shape)))
        for r in results
        for name, var in r.variables.items()
    }
    values["eps"] = 0.1
    for result, body in zip(results, texts, strict=True):
        full = body
        for name, rhs in reversed(bindings):
            full = re.sub(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", f"({rhs})", full)
        reparsed = mc.parse(full, types={k: v for k, v in types.items()})
        used = {k: values[k] for k in reparsed.variables}
        np.testing.assert_allclose(
            np.asarray(reparsed.evaluate(used, dims={"n": 3, "m": 3})),
            np.asarray(result.evaluate(values, dims={"n": 3, "m": 3})),
            atol=1e-10,
        )


def test_latex_bindings_are_used_too() -> None:
    results = mc.derivative(LAYER_NORM, ["x", "eps"], types=LAYER_NORM_TYPES)
    roots = [r.node for r in results]
    texts, bindings = with_bindings(roots, {"x", "eps", "n"}, LATEX)
    for name, _ in bindings:
        written = LATEX.name(name)
        assert any(written in t for t in [*texts, *(rhs for _, rhs in bindings)]), name
