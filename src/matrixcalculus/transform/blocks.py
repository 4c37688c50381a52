"""Simplification of the blocks that place a vector in a longer one (stacks ``[u; v]``).

A stack ``[u; v]`` is ``B1*u + B2*v`` with ``B1 = [eye(n); zeros(m,n)]`` and
``B2 = [zeros(n,m); eye(m)]`` (:class:`~matrixcalculus.ir.graph.Block`). Its derivatives are
products with the transposed blocks, ``B1'*(...)``, which these rules read off: ``B1'*B1`` is the
identity, ``B1'*B2`` is zero (the blocks of one stack do not overlap), ``B1'*ones(n + m)`` is
``ones(n)``, and ``B1'*[u; v]`` is ``u``.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction

from matrixcalculus.ir import graph as g

Labels = tuple[int, ...]
Rewrite = tuple[list[g.Node], list[Labels], Labels] | None


def _disjoint(a: g.Block, b: g.Block) -> bool:
    """Whether two blocks of one total cover no common entry: one ends where (or before) the other starts."""
    (_, oa, la), (_, ob, lb) = a.params, b.params
    return g.dim_difference(ob, g.dim_sum(oa, la)) is not None or g.dim_difference(oa, g.dim_sum(ob, lb)) is not None


def _placed_by(term: g.Node, at: int) -> g.Block | None:
    """The block of a term ``B*e`` of a stack whose axis ``at`` is the block's long axis."""
    if not isinstance(term, g.Contract):
        return None
    blocks = [(a, labs) for a, labs in zip(term.args, term.labels, strict=True) if isinstance(a, g.Block)]
    if len(blocks) != 1 or at >= len(term.out) or blocks[0][1][0] != term.out[at]:
        return None
    return blocks[0][0]


def select_block(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``B'*B = I``, ``B1'*B2 = 0``, ``B'*ones = ones``, ``B1'*[u; v] = u``: a block summed over its
    long axis against one other factor (or none: its column sums are ones)."""
    for k, (op, labs) in enumerate(zip(ops, labels, strict=True)):
        if not isinstance(op, g.Block) or labs[0] in out or labs[0] == labs[1]:
            continue
        t, short = labs
        holders = [j for j, other in enumerate(labels) if j != k and t in other]
        if len(holders) > 1 or (holders and labels[holders[0]].count(t) != 1):
            continue
        if not holders:
            # Summed over its long axis alone: every column of a block has one 1.
            rest_ops = [o for m, o in enumerate(ops) if m != k]
            rest_labels = [x for m, x in enumerate(labels) if m != k]
            return [*rest_ops, g.ones((op.params[2],))], [*rest_labels, (short,)], out
        (j,) = holders
        other, other_labs = ops[j], labels[j]
        at = other_labs.index(t)
        rest = [m for m in range(len(ops)) if m not in (k, j)]
        kept_ops, kept_labels = [ops[m] for m in rest], [labels[m] for m in rest]
        if isinstance(other, g.Block) and at == 0 and other.params[0] == op.params[0]:
            if other.params == op.params:
                return [*kept_ops, g.delta(op.params[2])], [*kept_labels, (short, other_labs[1])], out
            if _disjoint(op, other):
                return (
                    [*kept_ops, g.zeros((op.params[2], other.params[2]))],
                    [*kept_labels, (short, other_labs[1])],
                    out,
                )
            continue
        if isinstance(other, g.Ones):
            shape = tuple(op.params[2] if lab == t else d for lab, d in zip(other_labs, other.shape, strict=True))
            new = tuple(short if lab == t else lab for lab in other_labs)
            return [*kept_ops, g.ones(shape)], [*kept_labels, new], out
        if isinstance(other, g.Add):
            places = [_placed_by(term, at) for term in other.args]
            if any(p is None or p.params[0] != op.params[0] for p in places):
                continue
            chosen = [
                term for term, p in zip(other.args, places, strict=True) if p is not None and p.params == op.params
            ]
            if not all(p is not None and (p.params == op.params or _disjoint(op, p)) for p in places):
                continue
            if len(chosen) == len(other.args):
                continue  # nothing to drop
            if not chosen:
                shape = tuple(op.params[2] if lab == t else d for lab, d in zip(other_labs, other.shape, strict=True))
                return (
                    [*kept_ops, g.zeros(shape)],
                    [*kept_labels, tuple(short if x == t else x for x in other_labs)],
                    out,
                )
            picked = g.add(chosen)
            if not isinstance(picked, g.Contract):
                return [*kept_ops, op, picked], [*kept_labels, labs, other_labs], out
            # One term B1*u left: written out, so that B1'*B1 meets (its coefficient a factor).
            inner_ops, inner_labels, coeff = _inline(picked, other_labs, labels)
            factor = [g.const(coeff)] if coeff != 1 else []
            return (
                [*kept_ops, op, *inner_ops, *factor],
                [*kept_labels, labs, *inner_labels, *([()] if factor else [])],
                out,
            )
    return None


def _inline(term: g.Contract, labs: Labels, labels: list[Labels]) -> tuple[list[g.Node], list[Labels], Fraction]:
    """The operands of ``term`` (used with labels ``labs``) with labels renamed apart from ``labels``."""
    top = 1 + max((lab for other in labels for lab in other), default=-1)
    args, inner, _ = inlined(term, labs, top)
    return args, inner, term.coeff


def inlined(term: g.Contract, labs: Labels, top: int) -> tuple[list[g.Node], list[Labels], int]:
    """The operands of ``term`` and their labels in a product that uses ``term`` with labels
    ``labs``: its output labels become ``labs``, its summed labels new ones from ``top`` on;
    and the next free label. (The coefficient is the caller's to multiply in.)"""
    rename = dict(zip(term.out, labs, strict=True))
    for inner in term.labels:
        for lab in inner:
            if lab not in rename:
                rename[lab] = top
                top += 1
    return list(term.args), [tuple(rename[lab] for lab in inner) for inner in term.labels], top


def split_over_stack(
    ops: list[g.Node],
    labels: list[Labels],
    out: Labels,
    coeff: Fraction,
    contract: Callable[[list[g.Node], list[Labels], Labels, Fraction], g.Node],
    add: Callable[[list[g.Node]], g.Node],
) -> g.Node | None:
    """``B1'*(2*[u; v] + e)`` is ``2*u + B1'*e``: a block summed against a sum some of whose terms
    are stacks (of its total) distributes over that sum, so :func:`select_block` reads each stack.
    ``contract`` and ``add`` simplify the pieces (the simplifier's own functions)."""
    for k, (op, labs) in enumerate(zip(ops, labels, strict=True)):
        if not isinstance(op, g.Block) or labs[0] in out:
            continue
        holders = [j for j, other in enumerate(labels) if j != k and labs[0] in other]
        if len(holders) != 1 or not isinstance(ops[holders[0]], g.Add):
            continue
        (j,) = holders
        at = labels[j].index(labs[0])
        if not any(_stacked(term, at, op.params[0]) for term in ops[j].args):
            continue
        parts = [contract([*ops[:j], term, *ops[j + 1 :]], labels, out, coeff) for term in ops[j].args]
        return add(parts)
    return None


def _stacked(term: g.Node, at: int, total: g.Dim) -> bool:
    """Whether ``term`` is (a multiple of) a stack of length ``total`` along its axis ``at``."""
    placed = _placed_by(term, at)
    if placed is not None:
        return bool(placed.params[0] == total)
    if isinstance(term, g.Contract) and len(term.args) == 1 and isinstance(term.args[0], g.Add):
        inner = term.labels[0].index(term.out[at]) if at < len(term.out) else -1
        return inner >= 0 and any(_stacked(t, inner, total) for t in term.args[0].args)
    return False
