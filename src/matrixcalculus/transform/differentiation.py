"""Derivatives: reverse-mode differentiation of the expression graph, symbolically.

One loop does all the work (:func:`pullback`): walk the graph from the output back to the
inputs, and at each node hand its cotangent to its arguments by the node's own ``vjp`` rule
(kept with the primitive in ``graph.py`` and ``functions.py``). Everything else is a choice
of seed and a layout:

* a gradient of a scalar function seeds with 1;
* a vector-Jacobian product seeds with the cotangent ``g``;
* a Jacobian seeds with the identity (a product of Kronecker deltas over the output's axes),
  carried as leading "batch" axes; simplification then removes the deltas;
* a Hessian is the Jacobian of the gradient.

The result has shape ``out.shape + wrt.shape`` (numerator layout, as matrixcalculus.org, JAX
and PyTorch); ``layout="denominator"`` gives ``wrt.shape + out.shape``.

For a symmetric variable the derivative is the symmetric gradient ``(G + G')/2``: the unique
symmetric matrix with ``f(S + dS) ~ f(S) + <grad, dS>`` for every symmetric ``dS``. (The
Matrix Cookbook's ``G + G' - G.*I`` is another, contested convention; we do not use it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from matrixcalculus.errors import DerivativeError
from matrixcalculus.ir import graph as g
from matrixcalculus.transform.simplify import simplify


def pullback(root: g.Node, wrts: Sequence[g.Var], seed: g.Node, batch: int) -> list[g.Node]:
    """Cotangents of ``wrts`` for the cotangent ``seed`` (shape ``batch_shape + root.shape``).

    Unsimplified; variables that ``root`` does not depend on get zeros.
    """
    order = g.postorder(root)
    targets = set(wrts)
    depends: set[g.Node] = set()
    for node in order:
        if node in targets or any(a in depends for a in node.args):
            depends.add(node)
    batch_shape = seed.shape[:batch]
    position = {node: k for k, node in enumerate(order)}
    # Each contribution is kept with the position of the node it came from, so that a sum of
    # contributions lists them in the order their terms appear in the expression.
    cotangents: dict[g.Node, list[tuple[int, g.Node]]] = {root: [(0, seed)]} if root in depends else {}
    totals: dict[g.Node, g.Node] = {}
    for node in reversed(order):
        if node not in cotangents:
            continue
        parts = [part for _, part in sorted(cotangents.pop(node), key=lambda p: p[0])]
        total = parts[0] if len(parts) == 1 else g.add(parts)
        if node in targets:
            totals[node] = total
        for arg, part in zip(node.args, node.vjp(total, batch), strict=True):
            if part is not None and arg in depends:
                cotangents.setdefault(arg, []).append((position[node], part))
    return [totals.get(w, g.zeros(batch_shape + w.shape)) for w in wrts]


def identity_seed(shape: g.Shape) -> g.Node:
    """The identity on a tensor of ``shape``: ``delta[i,a] delta[j,b] ...`` with shape ``shape + shape``."""
    if not shape:
        return g.const(1)
    r = len(shape)
    ops = [g.delta(d) for d in shape]
    labels = [(k, r + k) for k in range(r)]
    return g.contract(ops, labels, tuple(range(2 * r)))


def symmetrize_last(node: g.Node, batch: int) -> g.Node:
    """``(G + G')/2`` over the last two axes."""
    b = tuple(range(batch))
    i, j = batch, batch + 1
    swapped = g.contract([node], [b + (i, j)], b + (j, i))
    return g.contract([g.add([node, swapped])], [b + (i, j)], b + (i, j), Fraction(1, 2))


def jacobian_nodes(f: g.Node, wrts: Sequence[g.Var]) -> list[g.Node]:
    """Numerator-layout derivatives of ``f`` w.r.t. each of ``wrts``, simplified."""
    seed = identity_seed(f.shape)
    # Differentiated in simplified form: exp(x)/sum(exp(x)) is softmax(x), whose derivative is
    # short (diag(s) - s*s'), where the quotient rule's is not.
    parts = pullback(simplify(f), wrts, seed, f.rank)
    out = []
    for w, part in zip(wrts, parts, strict=True):
        if w.kind == "symmetric":
            part = symmetrize_last(part, f.rank)
        out.append(simplify(part))
    return out


def vjp_nodes(f: g.Node, wrts: Sequence[g.Var], cotangent: g.Node) -> list[g.Node]:
    if cotangent.shape != f.shape:
        raise DerivativeError(
            f"the cotangent has shape {g.shape_text(cotangent.shape)} but the function has shape "
            f"{g.shape_text(f.shape)}; they must match"
        )
    parts = pullback(simplify(f), wrts, cotangent, 0)
    return [simplify(symmetrize_last(p, 0) if w.kind == "symmetric" else p) for w, p in zip(wrts, parts, strict=True)]


def jvp_node(f: g.Node, wrt: g.Var, tangent: g.Node) -> g.Node:
    """``sum_w J[o, w] V[w]``: the directional derivative along ``tangent``."""
    if tangent.shape != wrt.shape:
        raise DerivativeError(
            f"the tangent has shape {g.shape_text(tangent.shape)} but {wrt.name} has shape "
            f"{g.shape_text(wrt.shape)}; they must match"
        )
    (jac,) = jacobian_nodes(f, [wrt])
    o = tuple(range(f.rank))
    w = tuple(range(f.rank, f.rank + wrt.rank))
    return simplify(g.contract([jac, tangent], [o + w, w], o))


def to_denominator(node: g.Node, out_rank: int) -> g.Node:
    """Move the variable's axes in front of the function's."""
    r = node.rank
    if out_rank == 0 or out_rank == r:
        return node
    labels = tuple(range(r))
    return simplify(g.contract([node], [labels], labels[out_rank:] + labels[:out_rank]))
