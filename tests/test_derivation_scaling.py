"""Deriving a deep chain does work linear in its depth (issue 15).

What is counted, never timed: the operands of every product the simplifier puts in normal form
(``transform.simplify.flatten``, which inlines the operands of nested products) while reverse mode
differentiates an L-layer network. Reverse mode builds each layer's cotangent from the one above
it; were the simplifier to inline the error signal below (``W'*delta``) into each layer's product,
the product at layer k would have about k operands and the total would grow as L^2. Kept as one
node (``simplify.is_error_signal``), every product has a bounded number of operands.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.transform import simplify


def _mlp(layers: int) -> tuple[str, str, dict[str, str]]:
    """0.5*norm2(W_L*tanh(...tanh(W1*x + b1)...) + b_L - t)^2, w.r.t. W1 (the deepest layer)."""
    text = "x"
    for i in range(1, layers):
        text = f"tanh(W{i}*{text} + b{i})"
    return f"0.5*norm2(W{layers}*{text} + b{layers} - t)^2", "W1", {f"b{i}": "vector" for i in range(1, layers + 1)}


def _tanh_chain(depth: int) -> tuple[str, str, dict[str, str]]:
    text = "x"
    for i in range(depth):
        text = f"tanh(W{i}*{text})"
    return f"sum({text})", "x", {}


def _counted(
    monkeypatch: pytest.MonkeyPatch, build: Callable[[int], tuple[str, str, dict[str, str]]], depth: int
) -> tuple[int, int, int]:
    """(operands flattened in all, the most in one product, nodes of the result) for one derivation."""
    flattened = [0, 0]
    original = simplify.flatten

    def counting(ops, labels, coeff, out=None):  # type: ignore[no-untyped-def]
        result = original(ops, labels, coeff, out)
        flattened[0] += len(result[0])
        flattened[1] = max(flattened[1], len(result[0]))
        return result

    monkeypatch.setattr(simplify, "flatten", counting)
    text, wrt, types = build(depth)
    result = mc.derivative(text, wrt, types=types)
    monkeypatch.setattr(simplify, "flatten", original)
    return flattened[0], flattened[1], len(g.postorder(result.node))


@pytest.mark.parametrize("build", [_mlp, _tanh_chain], ids=["mlp", "tanh chain"])
def test_derivation_work_grows_linearly_with_depth(monkeypatch: pytest.MonkeyPatch, build: Callable) -> None:
    counts = [_counted(monkeypatch, build, depth) for depth in (8, 16, 32, 64)]
    for (work, widest, nodes), (more_work, more_widest, more_nodes) in itertools.pairwise(counts):
        # Doubling the depth doubles the work (a quadratic simplifier would quadruple it) ...
        assert more_work / work < 2.3
        assert more_nodes / nodes < 2.3
        # ... and no product grows with the depth.
        assert more_widest == widest <= 4


def test_inlining_the_error_signals_would_be_quadratic(monkeypatch: pytest.MonkeyPatch) -> None:
    # The count above can fail: with every error signal inlined, the widest product and the
    # total work grow with the depth (what ``simplify.is_error_signal`` prevents).
    monkeypatch.setattr(simplify, "is_error_signal", lambda op: False)
    (work, widest, _), (more_work, more_widest, _) = (_counted(monkeypatch, _tanh_chain, d) for d in (16, 32))
    assert more_widest >= 2 * widest - 1
    assert more_work / work > 3
