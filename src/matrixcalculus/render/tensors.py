"""Tensors out of the way: a matrix-valued contraction rewritten without third-order operands.

Differentiating twice builds third- and fourth-order intermediates: the Hessian of
``cos(det(diag(x)))`` contracts a sum of order three over ``[i,j,j]`` (its diagonal in the last
two axes). The value is a matrix, and a reader wants it in matrix notation, but no
matrix-notation operation takes a third-order operand. Einstein notation is distributive and
associative, so the contraction is the sum, over the terms of such an operand, of one
contraction each, and each of those flattens (``simplify.normal_contract``) into operands of the
sum's terms: vectors, matrices and deltas, which :mod:`~.products` prints (``diag(v)``,
``diag(M)``, ``v .* M``, ...). Only the printer does this; the graph is what differentiation
built, and the printed text parses to the same values.
"""

from __future__ import annotations

from matrixcalculus.ir import graph as g
from matrixcalculus.transform.simplify import normal_contract, normal_sum

# The most terms a distribution may make: past it the result would be longer than the index
# notation it replaces.
MAX_TERMS = 64


def has_tensor_operand(node: g.Node) -> bool:
    """Is ``node`` a contraction of order at most two with a sum of order three or more as an operand?"""
    return isinstance(node, g.Contract) and node.rank <= 2 and any(_distributable(a) for a in node.args)


def without_tensor_operands(node: g.Contract) -> g.Node | None:
    """``node`` as a sum of contractions whose operands are of order at most two, or None.

    Each operand that is a sum of order three or more is distributed (one contraction per
    term, each flattened and simplified); the terms are then merged as simplification merges
    any sum. None when there is nothing to distribute, when a term keeps an operand of order
    three or more (an element-wise function of a tensor), or past :data:`MAX_TERMS` terms.

    >>> x = g.var("x", "vector", ("n",))
    >>> t = g.add([g.contract([x, x, x], [(0,), (1,), (2,)], (0, 1, 2))] * 2)
    >>> without_tensor_operands(g.contract([t], [(0, 1, 1)], (0, 1))) is not None
    True
    """
    if not has_tensor_operand(node):
        return None
    pending: list[g.Node] = [node]
    done: list[g.Node] = []
    while pending:
        term = pending.pop()
        if isinstance(term, g.Add):
            pending.extend(term.args)
            continue
        if not isinstance(term, g.Contract):
            done.append(term)
            continue
        k = next((k for k, a in enumerate(term.args) if _distributable(a)), None)
        if k is None:
            if any(a.rank > 2 for a in term.args):
                return None
            done.append(term)
            continue
        ops, labels = list(term.args), list(term.labels)
        for part in term.args[k].args:
            pending.append(normal_contract(ops[:k] + [part] + ops[k + 1 :], labels, term.out, term.coeff))
        if len(pending) + len(done) > MAX_TERMS:
            return None
    return normal_sum(done)


def _distributable(node: g.Node) -> bool:
    return isinstance(node, g.Add) and node.rank > 2
