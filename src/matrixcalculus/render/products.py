"""Products in matrix notation: the interval search over a contraction's operands, and the cases.

A contraction is printed by splitting its operand list into adjacent groups whose partial
results are scalars, vectors or matrices (an interval dynamic programme, as for matrix-chain
ordering), each split being one matrix-notation operation (:data:`CASES`): a scaling ``c*A``,
an inner product ``x'*y``, an outer product ``x*y'``, a Hadamard product ``x .* y``, a
matrix-vector or matrix product ``A*B``, a diagonal scaling ``diag(v)*A``, a trace
``tr(A'*B)``, the diagonal of a product ``diag(A*B')``. Only adjacent groups are merged, so the
operands print in the order they are stored and the text parses back to the same graph.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from matrixcalculus.ir import graph as g
from matrixcalculus.render.style import (
    ATOM,
    MUL,
    POW,
    NotMatrixNotation,
    Piece,
    Style,
    as_col,
    as_row,
    paren,
    transposed,
)
from matrixcalculus.transform.simplify import is_symmetric

if TYPE_CHECKING:
    from matrixcalculus.render.notation import MatrixPrinter

Labels = tuple[int, ...]
# A group of adjacent operands, merged: its printed piece, its free labels, and its node when
# it is a single operand (None once merged).
Group = tuple[Piece, Labels, g.Node | None]


def transposes(text: str) -> int:
    """How many transposes ``text`` shows (what derived expressions have as few of as they can)."""
    return text.count("'") + text.count("\\top")


def chain_order(items: list[Item], out: tuple[int, ...]) -> list[Item]:
    """Operands reordered to walk the index chain: from the first free index, each next operand
    sharing an index with the last; scalars first."""
    rest = [it for it in items if it.labels]
    ordered = [it for it in items if not it.labels]
    current: set[int] = {out[0]} if out else set()
    while rest:
        pick = next((it for it in rest if current & set(it.labels)), None)
        if pick is None:
            pick = rest[0]
        rest.remove(pick)
        ordered.append(pick)
        current = set(pick.labels)
    return ordered


@dataclass(frozen=True)
class Item:
    """One operand of a contraction for the split search: its piece, labels and node."""

    piece: Piece
    labels: Labels
    node: g.Node | None


# The most operands for which best_split searches all split points (O(n^3) merges of texts);
# longer products are associated left to right.
DP_WIDTH = 12


# The merges a split search chose, in an order that makes each part before it is used: steps
# ``(a, split, b, symmetric)`` merge operands ``a..split`` with ``split+1..b``; ``symmetric``:
# the merged group was proved symmetric (so it needs no transpose).
SplitSteps = tuple[tuple[int, int, int, bool], ...]


@dataclass
class SplitMemo:
    """The decisions of one printing call, kept so that printing the same graph again (the second
    pass of ``where`` bindings, with the final names) replays them instead of searching again.

    ``steps``: the merges chosen for a contraction's operand order, by ``(node, order)``;
    ``orders``: which operand order won for a contraction node. Names change only the lengths of
    texts (``t0`` stands in for ``t1``..), never which merges are possible nor their transposes,
    so a replayed decision is the one a new search would make up to ties in length.
    """

    steps: dict[tuple[g.Node, int], SplitSteps] = field(default_factory=dict)
    orders: dict[g.Node, int] = field(default_factory=dict)
    searches: int = 0  # interval searches run (a replay is not one): what tests count
    merges: int = 0  # merges tried (combine calls), searches and replays together

    def replay(
        self, steps: SplitSteps, items: list[Item], out: Labels, st: Style, identity: bool, bases: MatrixPrinter
    ) -> Group | None:
        """The group the recorded ``steps`` make of ``items`` (None if a merge fails: search again)."""
        spans = _Spans(items, out)
        best: dict[tuple[int, int], Group] = {(k, k): (it.piece, it.labels, it.node) for k, it in enumerate(items)}
        keeps = {(k, k): spans.leaf(k) for k in range(len(items))}
        for a, split, b, symmetric in steps:
            self.merges += 1
            keep = keeps[(a, b)] = spans.join(keeps[(a, split)], keeps[(split + 1, b)], a, b)
            merged = combine(best[(a, split)], best[(split + 1, b)], set(keep), st, identity, out, bases)
            if merged is None:
                return None
            if symmetric:
                merged = (_symmetric(merged[0]), merged[1], merged[2])
            best[(a, b)] = merged
        return best.get((0, len(items) - 1))


def _symmetric(p: Piece) -> Piece:
    return Piece(p.text, p.prec, p.row, p.plain, True, p.op)


class _Spans:
    """Which labels a group of adjacent operands ``a..b`` keeps free: those of the output or of
    an operand outside the group. A group's set is made from its two parts' sets (a label that a
    part sums stays summed), so each merge costs the size of those sets, not the group's width:
    a long chain is linear, not quadratic."""

    def __init__(self, items: list[Item], out: Labels):
        self.items = items
        self.out = set(out)
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        for k, item in enumerate(items):
            for lab in item.labels:
                self.first.setdefault(lab, k)
                self.last[lab] = k

    def free(self, lab: int, a: int, b: int) -> bool:
        return lab in self.out or self.first[lab] < a or self.last[lab] > b

    def leaf(self, k: int) -> frozenset[int]:
        return frozenset(lab for lab in self.items[k].labels if self.free(lab, k, k))

    def join(self, left: frozenset[int], right: frozenset[int], a: int, b: int) -> frozenset[int]:
        return frozenset(lab for lab in left | right if self.free(lab, a, b))


def best_split(
    items: list[Item],
    out: Labels,
    st: Style,
    identity: bool,
    bases: MatrixPrinter,
    memo: SplitMemo | None = None,
    key: tuple[g.Node, int] | None = None,
) -> tuple[Piece, tuple[int, ...]]:
    """The shortest matrix-notation rendering of the contraction of ``items`` (adjacent merges only).

    With a ``memo`` and a ``key``, a split tree recorded for ``key`` is replayed (linear in the
    operands) and a new search records its tree.
    """
    if memo is not None and key is not None and key in memo.steps:
        replayed = memo.replay(memo.steps[key], items, out, st, identity, bases)
        if replayed is not None:
            return replayed[0], replayed[1]
    if memo is not None:
        memo.searches += 1
    n = len(items)
    spans = _Spans(items, out)
    keeps: dict[tuple[int, int], frozenset[int]] = {(k, k): spans.leaf(k) for k in range(n)}

    def kept(a: int, b: int) -> frozenset[int]:
        if (a, b) not in keeps:
            keeps[(a, b)] = spans.join(kept(a, a), kept(a + 1, b), a, b)
        return keeps[(a, b)]

    def cost(p: Piece) -> tuple[int, int]:
        # Derived expressions: fewest transposes, then shortest, a diagonal matrix counting two
        # characters more than it shows (between equals, a vector scaled entry by entry reads as
        # (W'*d) .* (u > 0), as backpropagation writes it, not diag(u > 0)*W'*d). Typed ones: shortest.
        if identity:
            return (transposes(p.text), len(p.text) + 2 * p.text.count("diag("))
        return (0, len(p.text))

    def merge(left: Group, right: Group, keep: frozenset[int]) -> Merged:
        if memo is not None:
            memo.merges += 1
        return combine(left, right, set(keep), st, identity, out, bases)

    if n > DP_WIDTH:
        # Long products: fold left to right (the search over all splits is cubic in n).
        acc: Group = (items[0].piece, items[0].labels, items[0].node)
        keep = kept(0, 0)
        for k in range(1, n):
            # The prefix 0..k from the prefix 0..k-1 and operand k (no recursion over the width).
            keep = keeps[(0, k)] = spans.join(keep, kept(k, k), 0, k)
            merged = merge(acc, (items[k].piece, items[k].labels, items[k].node), keep)
            if merged is None:
                raise NotMatrixNotation("no matrix-notation order")
            acc = merged
        if memo is not None and key is not None:
            memo.steps[key] = tuple((0, k - 1, k, False) for k in range(1, n))
        return acc[0], acc[1]
    best: dict[tuple[int, int], Group] = {}
    how: dict[tuple[int, int], tuple[int, bool]] = {}  # interval -> (its split, proved symmetric)
    for k, item in enumerate(items):
        best[(k, k)] = (item.piece, item.labels, item.node)
    for width in range(2, n + 1):
        for a in range(0, n - width + 1):
            b = a + width - 1
            keep = kept(a, b)
            if len(keep) > 2:
                continue
            choice: Group | None = None
            chosen_split = a
            for split in range(a, b):
                left, right = best.get((a, split)), best.get((split + 1, b))
                if left is None or right is None:
                    continue
                merged = merge(left, right, keep)
                if merged is not None and (choice is None or cost(merged[0]) < cost(choice[0])):
                    choice, chosen_split = merged, split
            if choice is not None:
                symmetric = False
                if (
                    identity
                    and len(choice[1]) == 2
                    and width < n
                    and all(items[k].node is not None for k in range(a, b + 1))
                ):
                    # A symmetric partial product needs no transpose: (S*B*S)' is S*B*S.
                    sub = g.contract(
                        [items[k].node for k in range(a, b + 1)],  # type: ignore[misc]
                        [items[k].labels for k in range(a, b + 1)],
                        choice[1],
                    )
                    if is_symmetric(sub):
                        symmetric = True
                        choice = (_symmetric(choice[0]), choice[1], choice[2])
                best[(a, b)] = choice
                how[(a, b)] = (chosen_split, symmetric)
    if (0, n - 1) not in best:
        raise NotMatrixNotation("no matrix-notation order")
    if memo is not None and key is not None:
        memo.steps[key] = _steps(how, n)
    piece, labels, _ = best[(0, n - 1)]
    return piece, labels


def _steps(how: dict[tuple[int, int], tuple[int, bool]], n: int) -> SplitSteps:
    """The merges that make operands ``0..n-1`` by the splits in ``how``, parts first."""
    steps: list[tuple[int, int, int, bool]] = []
    stack = [(0, n - 1)]
    while stack:  # children are pushed after their parent, so reversing gives parts first
        a, b = stack.pop()
        if a == b:
            continue
        split, symmetric = how[(a, b)]
        steps.append((a, split, b, symmetric))
        stack += [(a, split), (split + 1, b)]
    return tuple(reversed(steps))


def is_reciprocal(node: g.Node | None) -> bool:
    """``b^-1`` of a non-constant ``b``: printed as a division ``a/b`` or ``a ./ b``."""
    return (
        isinstance(node, g.Power)
        and isinstance(node.args[1], g.Const)
        and node.args[1].value == -1
        and not isinstance(node.args[0], g.Const)
    )


def base_piece(node: g.Node | None, st: Style, bases: MatrixPrinter, row: bool = False) -> Piece:
    """The printed base of a reciprocal ``b^-1``, for ``a/b`` and ``a ./ b`` (by ``bases``, a
    printer whose memo is kept, so that a base is printed once however often it is met)."""
    assert isinstance(node, g.Power)
    p = bases.piece(node.args[0])
    if node.args[0].rank == 1 and p.row != row:
        p = transposed(p, st)
    return p


# ------------------------------------------------------------------------------ the cases


@dataclass
class Merge:
    """Two adjacent groups ``P`` (labels ``lp``) and ``Q`` (labels ``lq``) to merge into one.

    ``keep``: the labels the merged group keeps free (the others shared by P and Q are summed);
    ``identity``: drop identity factors (``A*eye(n)`` prints ``A``), for derived expressions (an
    expression the user typed keeps them, so that it parses back to the same graph); ``out``:
    the labels of the whole contraction; ``bases``: the printer of reciprocal bases.
    """

    P: Piece
    lp: Labels
    p_node: g.Node | None
    Q: Piece
    lq: Labels
    q_node: g.Node | None
    keep: set[int]
    st: Style
    identity: bool
    out: Labels | None
    bases: MatrixPrinter

    @property
    def shared(self) -> list[int]:
        return [lab for lab in self.lp if lab in self.lq]

    @property
    def summed(self) -> list[int]:
        return [lab for lab in self.shared if lab not in self.keep]

    def mul(self, a: Piece, b: Piece) -> str:
        # A Hadamard product inside a matrix product is parenthesised for the reader,
        # although * and .* bind alike: ((W'*r) .* s)*x'.
        # A left factor that is another kind of product (Hadamard, Kronecker) keeps its parentheses.
        return self.st.mul(paren(a, MUL + (a.op not in (None, "mul")), self.st), paren(b, MUL + 1, self.st))

    def had(self, a: Piece, b: Piece) -> str:
        return self.st.hadamard(paren(a, MUL + (a.op not in (None, "had")), self.st), paren(b, MUL + 1, self.st))

    def orient(self, p: Piece, labs: Labels, want: Labels) -> Piece:
        """``p`` (a matrix with labels ``labs``) read with its labels in the order ``want``."""
        return p if labs == want else transposed(p, self.st)

    def divided(self, numerator: Piece, row: bool = False) -> str:
        """``numerator ./ b`` for the reciprocal ``Q = b^-1``."""
        base = base_piece(self.q_node, self.st, self.bases, row)
        return self.st.hdivide(paren(numerator, MUL, self.st), paren(base, POW, self.st))


Merged = Group | None


def scaling(m: Merge) -> Merged:
    """``c*A``, ``A/c``: one group is a scalar."""
    st = m.st
    P, lp, Q, lq = m.P, m.lp, m.Q, m.lq
    rp = len(lp)
    tensor = lp if rp else lq
    if m.identity and m.out is not None and len(tensor) == 2 and tensor == tuple(m.out[::-1]):
        # c*M' rather than (c*M)': transpose the matrix factor, not the product.
        if rp:
            P, lp = transposed(P, st), lp[::-1]
        else:
            Q, lq = transposed(Q, st), lq[::-1]
    if not lq and is_reciprocal(m.q_node):
        base = base_piece(m.q_node, st, m.bases)
        text = st.divide(P.text, base.text) if st.latex else st.divide(paren(P, MUL, st), paren(base, POW, st))
    else:
        text = m.mul(P, Q)
        if len(tensor) == 1:
            # c*x read as a row is c*x', the factors in the order written (lambda*w'*w), not (c*x)'.
            row = P.row if rp else Q.row
            flipped = m.mul(transposed(P, st), Q) if rp else m.mul(P, transposed(Q, st))
            plain = Piece(flipped, MUL, not row, Piece(text, MUL, row))
            return Piece(text, MUL, row, plain), lp if rp else lq, None
    return Piece(text, MUL, P.row if rp else Q.row), lp if rp else lq, None


def inner_product(m: Merge) -> Merged:
    """``x'*y``: two vectors summed over their common index."""
    st = m.st
    return Piece(m.mul(as_row(m.P, st), as_col(m.Q, st)), MUL, op="mul"), (), None


def hadamard_of_vectors(m: Merge) -> Merged:
    """``x .* y`` (``x ./ y`` for a reciprocal): two vectors over one kept index."""
    st = m.st
    P = m.P
    Q = m.Q if m.Q.row == P.row else transposed(m.Q, st)
    text = m.divided(P, P.row) if is_reciprocal(m.q_node) else m.had(P, Q)
    return Piece(text, MUL, P.row, op="had"), m.lp, None


def outer_product(m: Merge) -> Merged:
    """``x*y'``: two vectors over two different kept indices."""
    st = m.st
    return Piece(m.mul(as_col(m.P, st), as_row(m.Q, st)), MUL, op="mul"), m.lp + m.lq, None


def matrix_vector_product(m: Merge) -> Merged:
    """``A*x`` or ``x'*A``: a vector summed against one index of a matrix."""
    vec_left = len(m.lp) == 1
    V, lv, M, lm = (m.P, m.lp, m.Q, m.lq) if vec_left else (m.Q, m.lq, m.P, m.lp)
    (i,) = lv
    other = lm[1] if lm[0] == i else lm[0]
    if vec_left:
        return Piece(m.mul(as_row(V, m.st), m.orient(M, lm, (i, other))), MUL, True, op="mul"), (other,), None
    return Piece(m.mul(m.orient(M, lm, (other, i)), as_col(V, m.st)), MUL, op="mul"), (other,), None


def diagonal_scaling(m: Merge) -> Merged:
    """``diag(v)*A`` or ``A*diag(v)``: a vector over a kept index of a matrix scales its rows or columns."""
    vec_left = len(m.lp) == 1
    V, lv, M, lm, mnode = (m.P, m.lp, m.Q, m.lq, m.q_node) if vec_left else (m.Q, m.lq, m.P, m.lp, m.p_node)
    (i,) = lv
    other = lm[1] if lm[0] == i else lm[0]
    D = Piece(m.st.call("diag", V.text), ATOM, sym=True)
    if isinstance(mnode, g.Delta):
        return D, (i, other), None
    if vec_left:
        return Piece(m.mul(D, m.orient(M, lm, (i, other))), MUL, op="mul"), (i, other), None
    return Piece(m.mul(m.orient(M, lm, (other, i)), D), MUL, op="mul"), (other, i), None


def matrix_product(m: Merge) -> Merged:
    """``A*B``: two matrices summed over one common index (``A'*B``, ``A*B'`` as the labels say)."""
    st = m.st
    P, lp, Q, lq = m.P, m.lp, m.Q, m.lq
    (s,) = m.shared
    po = lp[1] if lp[0] == s else lp[0]
    qo = lq[1] if lq[0] == s else lq[0]
    Pm, Qm = m.orient(P, lp, (po, s)), m.orient(Q, lq, (s, qo))
    if m.identity and isinstance(m.q_node, g.Delta):
        return Pm, (po, qo), None
    if m.identity and isinstance(m.p_node, g.Delta):
        return Qm, (po, qo), None
    direct = Piece(m.mul(Pm, Qm), MUL, op="mul")
    if m.identity:
        # (Q*P)' may need fewer transposes than P'*Q' for the same value.
        swapped = transposed(Piece(m.mul(m.orient(Q, lq, (qo, s)), m.orient(P, lp, (s, po))), MUL, op="mul"), st)
        if transposes(swapped.text) < transposes(direct.text):
            return swapped, (po, qo), None
    return direct, (po, qo), None


def trace_of_product(m: Merge) -> Merged:
    """``tr(A'*B)``, ``tr(A*B)``: two matrices summed over both indices (a Frobenius inner product)."""
    st = m.st
    if m.lq == m.lp:
        return Piece(st.call("tr", m.mul(transposed(m.P, st), m.Q)), ATOM), (), None
    return Piece(st.call("tr", m.mul(m.P, m.Q)), ATOM), (), None


def hadamard_of_matrices(m: Merge) -> Merged:
    """``A .* B`` (``A ./ B`` for a reciprocal): two matrices over both indices kept."""
    if is_reciprocal(m.q_node) and m.lq == m.lp:
        text = m.divided(m.P)
    else:
        text = m.had(m.P, m.orient(m.Q, m.lq, m.lp))
    return Piece(text, MUL, op="had"), m.lp, None


def diagonal_of_product(m: Merge) -> Merged:
    """``sum(A .* B, 2)``: ``sum_j A[i,j] B[i,j]``, two matrices sharing a kept and a summed index,
    summed along the rows with no m x m product formed (a batch's bias gradient); an expression
    the user typed as ``diag(A*B')`` keeps that form."""
    (kept_lab,) = [lab for lab in m.lp if lab in m.keep]
    (summed_lab,) = m.summed
    if m.identity:
        rows = m.had(m.orient(m.P, m.lp, (kept_lab, summed_lab)), m.orient(m.Q, m.lq, (kept_lab, summed_lab)))
        return Piece(m.st.call("sum", rows + ", 2"), ATOM), (kept_lab,), None
    prod = m.mul(m.orient(m.P, m.lp, (kept_lab, summed_lab)), m.orient(m.Q, m.lq, (summed_lab, kept_lab)))
    return Piece(m.st.call("diag", prod), ATOM), (kept_lab,), None


Case = Callable[[Merge], Merged]


def case_of(m: Merge) -> Case | None:
    """Which operation merges ``m``'s two groups, by their orders and common indices (None: no
    matrix-notation operation does, such as a Kronecker-type product with no common index)."""
    rp, rq = len(m.lp), len(m.lq)
    shared, summed = m.shared, m.summed
    if rp == 0 or rq == 0:
        return scaling
    if rp == rq == 1:
        if shared:
            return inner_product if summed else hadamard_of_vectors
        return outer_product if set(m.lp + m.lq) <= m.keep else None
    if rp + rq == 3:
        if not shared:
            return None
        return matrix_vector_product if summed else diagonal_scaling
    return MATRIX_CASES.get((len(shared), len(summed)))


# Two matrices, by (common indices, summed indices).
MATRIX_CASES: dict[tuple[int, int], Case] = {
    (1, 1): matrix_product,
    (2, 2): trace_of_product,
    (2, 0): hadamard_of_matrices,
    (2, 1): diagonal_of_product,
}


def combine(
    left: Group,
    right: Group,
    keep: set[int],
    st: Style,
    identity: bool,
    out: Labels | None,
    bases: MatrixPrinter,
) -> Merged:
    """One matrix-notation operation merging two adjacent groups, or None if there is none."""
    m = Merge(*left, *right, keep, st, identity, out, bases)
    case = case_of(m)
    return None if case is None else case(m)
