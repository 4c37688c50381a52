"""``where`` bindings: shared subexpressions printed once, by name.

A derived expression that uses a subexpression many times would repeat its text at every
use; here such subexpressions get temporary names ``t1, t2, ...`` (skipping every name in use:
variables, dimensions, functions), printed as ``body`` then ``where`` and one ``name = text``
per binding, each binding using only names bound before it. That text is input syntax
(``frontend.syntax``): it parses back to the same values.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.registry import FUNCTIONS
from matrixcalculus.render.index import free_indices, index_entry
from matrixcalculus.render.notation import MatrixPrinter
from matrixcalculus.render.products import SplitMemo
from matrixcalculus.render.style import ATOM, TEXT, Piece, Style

# Names of the input language that a binding must not shadow (t1 is none of them, but a
# dimension or variable may be called t1).
_LANGUAGE_NAMES = frozenset(FUNCTIONS) | {"sum", "tr", "diag", "vector", "matrix", "eye", "ones", "zeros", "where"}


def binding_names(reserved: set[str]) -> Iterator[str]:
    """Temporary names ``t1, t2, ...``, skipping the ``reserved`` ones (variables, dimensions).

    >>> list(itertools.islice(binding_names({"t2"}), 3))
    ['t1', 't3', 't4']
    """
    return (
        name for name in (f"t{k}" for k in itertools.count(1)) if name not in reserved and name not in _LANGUAGE_NAMES
    )


# Written out in full, a derived expression repeats each shared subexpression at every use: its
# text grows with the number of nodes of the graph unfolded into a tree, which is exponential in
# depth for nested softmax or Hessians of deep compositions. Up to this many unfolded nodes (or
# four times the graph's own size, whichever is more) the full text is printed, as it always
# was; above, shared subexpressions are named in a ``where`` clause.
SHARE_TREE_LIMIT = 1000


def needs_bindings(roots: Sequence[g.Node]) -> bool:
    """Would the full text of ``roots`` repeat shared subexpressions too often (see above)?"""
    order = g.postorder(*roots)
    limit = max(SHARE_TREE_LIMIT, 4 * len(order))
    size: dict[g.Node, int] = {}
    for node in order:
        # Capped: only "more than the limit" matters, and the uncapped count can be huge.
        size[node] = min(limit + 1, 1 + sum(size[a] for a in node.args))
    return sum(size[r] for r in roots) > limit


def taken_names(node: g.Node) -> set[str]:
    """Names a ``where`` name must not be: the variables and the named dimensions."""
    taken: set[str] = set()
    for sub in g.postorder(node):
        if isinstance(sub, g.Var):
            taken.add(sub.name)
        if isinstance(sub, g.DimSize):
            taken.update(g.dim_names(sub.dim))
        for d in sub.shape:
            taken.update(g.dim_names(d))
    return taken


def with_bindings(
    roots: Sequence[g.Node],
    reserved: set[str],
    style: Style = TEXT,
    min_length: int = 12,
    rows: frozenset[g.Node] = frozenset(),
) -> tuple[list[str], list[tuple[str, str]]]:
    """Print several derived expressions together, naming repeated subexpressions.

    Returns the texts and the ``where`` bindings ``[(name, text), ...]`` in dependency order:
    a subexpression is named when it is used at least twice and its text is at least
    ``min_length`` characters, so that naming it shortens the result. Outer subexpressions
    get the first names.

    Where the full texts would be long (:func:`needs_bindings`), the length that decides is that
    of the text with the names already chosen inside it (:func:`shared_text`): linear time.
    ``rows``: the roots that are rows (numerator-layout gradients), printed transposed (``x'``).
    """
    if needs_bindings(roots):
        return shared_text(roots, reserved, style, frozenset(), min_length, rows)
    uses = _uses(roots)
    order = g.postorder(*roots)
    plain = MatrixPrinter(style, True)
    plain.piece_all(order)
    chosen = [
        node for node in order if uses.get(node, 0) >= 2 and node.args and len(plain.memo[node].text) >= min_length
    ]
    return _name_all_used(roots, order, chosen, uses, reserved, style, frozenset(), rows)


def _name_all_used(
    roots: Sequence[g.Node],
    order: Sequence[g.Node],
    chosen: Sequence[g.Node],
    uses: dict[g.Node, int],
    reserved: set[str],
    style: Style,
    scalars: frozenset[str],
    rows: frozenset[g.Node],
    probe: MatrixPrinter | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Print ``roots`` with the ``chosen`` nodes named, the most used (then the outermost)
    getting the first name; a name the text would not use is dropped and the rest named again,
    so that every bound name is used.

    ``probe``: a printer that has printed ``order`` with the same nodes named (by stand-in
    names): its pieces of the parts that contain no named node are taken as they are, and its
    split decisions replayed for the rest, so that no interval search runs twice.
    """
    position = {node: k for k, node in enumerate(order)}
    chosen = sorted(chosen, key=lambda node: (-uses[node], -position[node]))
    while True:
        spare = binding_names(reserved)
        name_of = {node: next(spare) for node in chosen}
        texts, bindings = _print_named(roots, order, name_of, style, scalars, rows, probe)
        unused = _unused(texts, bindings, name_of.values(), style)
        if not unused:
            return texts, bindings
        # Rare (a named node that its users print from its parts); each round drops a name.
        chosen = [node for node in chosen if name_of[node] not in unused]


def _print_named(
    roots: Sequence[g.Node],
    order: Sequence[g.Node],
    name_of: dict[g.Node, str],
    style: Style,
    scalars: frozenset[str],
    rows: frozenset[g.Node],
    probe: MatrixPrinter | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """The texts of ``roots`` and the bindings, each node of ``name_of`` printed by its name.

    The printer knows the names (``share``), so that no part of it looks inside a named node
    (a negative term of a sum, the base of a quotient): a named part is printed by its name
    everywhere, never written out again. A named tensor of order three or more is bound in
    index notation, ``t1[i,j,k] = ...``.
    """
    printer = MatrixPrinter(style, True, scalars, share=True)
    printer.names = dict(name_of)
    printer.rows = rows
    printer.keep_values(order)
    # Parts with no named node inside print as the probe printed them (same printer, same names).
    clean: set[g.Node] = set()
    if probe is not None:
        printer.splits = probe.splits
        # (with what index notation those pieces hold: render.index keeps nested names apart)
        printer.index_names.update(probe.index_names)
        printer.opened.update(probe.opened)
        for node in order:
            named = node in name_of or node in probe.names
            if not named and node not in rows and node in probe.memo and all(a in clean for a in node.args):
                clean.add(node)
    bindings: list[tuple[str, str]] = []
    for node in order:
        if node in clean:
            assert probe is not None
            printer.memo[node] = probe.memo[node]
            continue
        piece = printer.render(node)
        if node in name_of:
            name = name_of[node]
            if node.rank > 2:
                free = free_indices(node, set(name_of.values()))
                bindings.append((index_entry(style.name(name), free, style), piece.text))
            else:
                bindings.append((name, piece.text))
            piece = Piece(style.name(name), ATOM, piece.row, sym=piece.sym)
        printer.memo[node] = piece
    return [printer.output(r).text for r in roots], bindings


# A name as it stands in a text: t1, or t_{1} in LaTeX.
_WORD = r"[A-Za-z_][A-Za-z0-9_]*(?:\{[0-9]+\})?"


def _unused(texts: Sequence[str], bindings: Sequence[tuple[str, str]], names: Iterable[str], style: Style) -> set[str]:
    """The ``names`` that neither a text nor a binding's text mentions (linear in the texts)."""
    words: set[str] = set()
    for text in [*texts, *(text for _, text in bindings)]:
        words.update(re.findall(_WORD, text))
    return {name for name in names if style.name(name) not in words}


def _uses(roots: Sequence[g.Node]) -> dict[g.Node, int]:
    """How often each node is used: as an argument (counted per use) or as a root."""
    uses: dict[g.Node, int] = {}
    for node in g.postorder(*roots):
        for arg in node.args:
            uses[arg] = uses.get(arg, 0) + 1
    for root in roots:
        uses[root] = uses.get(root, 0) + 1
    return uses


def shared_text(
    roots: Sequence[g.Node],
    reserved: set[str],
    style: Style,
    scalars: frozenset[str],
    min_length: int = 12,
    rows: frozenset[g.Node] = frozenset(),
    splits: SplitMemo | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """:func:`with_bindings` in time linear in the graph: each node is printed with the nodes
    named before it (children first) printed by their names, so no text repeats a shared part.

    Two passes: the first decides which nodes to name (used at least twice, and a text of at
    least ``min_length`` characters with the names inside it), the second prints with the final
    names, the most used (then outermost) node getting the first name. The second pass searches
    nothing again: it takes the first pass's pieces of the parts with no named node inside and
    replays its split decisions (:class:`~.products.SplitMemo`) for the others. A named tensor of
    order three or more is bound in index notation, ``t1[i,j,k] = ...`` (as the result it is part
    of prints), so that its text is not repeated either.
    """
    uses = _uses(roots)
    order = g.postorder(*roots)
    probe = MatrixPrinter(style, True, scalars, share=True)
    probe.keep_values(order)
    # The split searches of the first pass are replayed by the second (``splits``: pass one in to
    # read how many searches and merges the call made).
    probe.splits = splits if splits is not None else SplitMemo()
    chosen: list[g.Node] = []
    for node in order:
        piece = probe.render(node)
        if uses.get(node, 0) >= 2 and node.args and len(piece.text) >= min_length:
            chosen.append(node)
            probe.names[node] = "t0"  # a stand-in as long as most names
            piece = Piece(style.name("t0"), ATOM, piece.row, sym=piece.sym)
        probe.memo[node] = piece
    return _name_all_used(roots, order, chosen, uses, reserved, style, scalars, rows, probe)
