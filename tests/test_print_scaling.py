"""Printing large derived expressions does work linear in their graph (issue 15).

What is counted, never timed: the interval searches and merges of the matrix-notation printer
(``render.products.SplitMemo``) when a derivative is printed with ``where`` names. Each
contraction's operand orders are searched once over both passes of ``shared_text`` (the second
pass replays the first's decisions), and the work grows in proportion to the graph.
"""

from __future__ import annotations

import matrixcalculus as mc
from matrixcalculus.ir import graph as g
from matrixcalculus.render.bindings import shared_text, taken_names
from matrixcalculus.render.notation import MatrixPrinter
from matrixcalculus.render.products import Item, SplitMemo, best_split
from matrixcalculus.render.style import TEXT, Piece


def _nested_softmax(k: int) -> str:
    return "sum(" + "softmax(" * k + "x" + ")" * (k + 1)


def _tanh_chain(depth: int) -> str:
    text = "x"
    for i in range(depth):
        text = f"tanh(W{i}*{text})"
    return f"sum({text})"


def _printed(node: g.Node) -> tuple[SplitMemo, str]:
    memo = SplitMemo()
    texts, bindings = shared_text([node], taken_names(node), TEXT, frozenset(), splits=memo)
    return memo, "\n".join([texts[0], *(f"{n} = {t}" for n, t in bindings)])


def _contractions(node: g.Node) -> int:
    return sum(isinstance(n, g.Contract) for n in g.postorder(node))


def test_each_operand_order_is_searched_once_over_both_passes() -> None:
    # Three operand orders at most per contraction (as stored, along the index chain, reversed):
    # without the replay the second pass would search them all again (up to 6 per contraction).
    for text in (_nested_softmax(6), _tanh_chain(12)):
        node = mc.derivative(text, "x", order=2 if "softmax" in text else 1).node
        memo, _ = _printed(node)
        assert 0 < memo.searches <= 3 * _contractions(node)


def test_the_replayed_text_is_the_searched_text() -> None:
    # The result printed with replayed decisions equals the one printed by a fresh printer
    # (to_text, which runs the same two passes with its own memo) and parses back to the same values.
    node = mc.derivative(_nested_softmax(5), "x", order=2).node
    _, text = _printed(node)
    _, again = _printed(node)
    assert text == again
    assert "where" in str(mc.derivative(_nested_softmax(5), "x", order=2))


def test_merges_grow_linearly_with_depth() -> None:
    # Doubling the depth of the composition doubles the graph, the printed text and the merges
    # tried (a quadratic printer would quadruple them).
    counts, lengths, nodes = [], [], []
    for depth in (8, 16, 32):
        node = mc.derivative(_nested_softmax(depth), "x", order=2).node
        memo, text = _printed(node)
        counts.append(memo.merges)
        lengths.append(len(text))
        nodes.append(len(g.postorder(node)))
    for k in (1, 2):
        assert counts[k] / counts[k - 1] < 2.5
        assert lengths[k] / lengths[k - 1] < 2.5
        assert nodes[k] / nodes[k - 1] < 2.5


def test_tanh_chain_gradient_text_is_linear_in_depth() -> None:
    # Deep enough that the shared parts are named (a short chain is written out in full, which
    # repeats them: bindings.SHARE_TREE_LIMIT bounds that text).
    lengths = []
    for depth in (40, 80):
        text = str(mc.derivative(_tanh_chain(depth), "x"))
        assert "where" in text
        lengths.append(len(text))
    assert 1.5 < lengths[1] / lengths[0] < 2.5


def test_a_recorded_split_is_replayed_without_a_search() -> None:
    # A*B*x: recorded once, the same key replays it (one merge per operand but one, no search).
    n = "n"
    A, B = g.var("A", "matrix", (n, n)), g.var("B", "matrix", (n, n))
    x = g.var("x", "vector", (n,))
    items = [Item(Piece("A", 9), (0, 1), A), Item(Piece("B", 9), (1, 2), B), Item(Piece("x", 9), (2,), x)]
    memo = SplitMemo()
    printer = MatrixPrinter(TEXT, True)
    node = g.contract([A, B, x], [(0, 1), (1, 2), (2,)], (0,))
    first = best_split(items, (0,), TEXT, True, printer, memo, (node, 0))
    searches, merges = memo.searches, memo.merges
    second = best_split(items, (0,), TEXT, True, printer, memo, (node, 0))
    assert first == second
    assert first[0].text == "A*B*x"
    assert memo.searches == searches and memo.merges == merges + 2
