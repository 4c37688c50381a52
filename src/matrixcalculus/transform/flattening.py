"""Flattening: the Jacobian of ``vec(F)`` with respect to ``vec(X)`` as a matrix, in Kronecker form
where one exists.

A derivative of ``F`` (axes ``f``) by ``X`` (axes ``x``) in the shape layout is the tensor
``D[f, x]``. Flattening both in column-major order (``vec`` stacks columns, as in the Matrix
Cookbook and Magnus & Neudecker) gives ``J[vec f, vec x]``, which is ``numpy.reshape(D, (|F|, |X|),
order="F")``; in row-major order (NumPy's ``ravel``) ``numpy.reshape(D, (|F|, |X|))``.

For a matrix ``F`` by a matrix ``X``, a term ``c * P[f0, x0] * Q[f1, x1]`` (the factors share no
summed index) is a Kronecker product: column-major ``vec(P*X*Q')`` gives ``kron(Q, P)``, so
``d(A*X*B)/dX`` is ``kron(B', A)`` and ``d inv(X)/dX`` is ``-kron(inv(X)', inv(X))``; row-major
gives ``kron(P, Q)``. A term ``P[f0, x1] * Q[f1, x0]`` pairs each axis of ``F`` with the other
axis of ``X``: the same Kronecker product times the commutation matrix ``K`` (``K vec(X) =
vec(X')``), so ``d(X')/dX`` is ``K`` itself. Any other term is its entries reshaped.

The commutation matrix is an entry permutation: a product of two Kronecker deltas reshaped
(``K[(i,j),(k,l)] = delta(i,l)*delta(j,k)`` over pairs of the factors' dimensions), so it
evaluates and compiles as any reshape does.
"""

from __future__ import annotations

from collections.abc import Sequence

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.transform.simplify import simplify

ORDERS = ("column", "row")

_KRON = FUNCTIONS["kron"].name


def commutation(m: g.Dim, n: g.Dim) -> g.Node:
    """The commutation matrix ``K`` of an ``m x n`` matrix: ``K*vec(X) = vec(X')``, column-major
    ``vec``; rows are indexed by the entries of ``X'`` (n x m), columns by those of ``X``.

    >>> commutation(2, 3).shape
    (6, 6)
    """
    # Pairs are read row-major, so column-major vec(X)[k + m*l] = X[k,l] is column (l, k), and
    # vec(X')[p + n*q] = X'[p,q] = X[q,p] is row (q, p): K[(q,p),(l,k)] = delta(q,k)*delta(p,l).
    delta_m, delta_n = g.delta(m), g.delta(n)
    tensor = g.contract([delta_m, delta_n], [(0, 3), (1, 2)], (0, 1, 2, 3))
    return g.reshape(tensor, (g.dim_product(m, n), g.dim_product(n, m)))


def commutation_dims(node: g.Node) -> tuple[g.Dim, g.Dim] | None:
    """``(m, n)`` when ``node`` is :func:`commutation` ``(m, n)``, else None (for printing it by name).

    >>> commutation_dims(commutation("m", "n"))
    ('m', 'n')
    """
    if not isinstance(node, g.Reshape):
        return None
    inner = node.args[0]
    if not (isinstance(inner, g.Contract) and inner.coeff == 1 and len(inner.args) == 2 and inner.rank == 4):
        return None
    if not all(isinstance(op, g.Delta) for op in inner.args):
        return None
    q, p, l, k = inner.out
    pairs = {frozenset(labs): op.shape[0] for op, labs in zip(inner.args, inner.labels, strict=True)}
    m, n = pairs.get(frozenset((q, k))), pairs.get(frozenset((p, l)))
    if m is None or n is None or node.shape != (g.dim_product(m, n), g.dim_product(n, m)):
        return None
    return m, n


def _groups(node: g.Contract) -> list[tuple[list[int], set[int]]]:
    """The operands joined by summed labels: (operand positions, free labels) per group."""
    free = set(node.out)
    parent = list(range(len(node.args)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[int, int] = {}
    for k, labs in enumerate(node.labels):
        for lab in labs:
            if lab in free:
                continue
            if lab in owner:
                parent[find(k)] = find(owner[lab])
            else:
                owner[lab] = k
    groups: dict[int, tuple[list[int], set[int]]] = {}
    for k, labs in enumerate(node.labels):
        ops, labels = groups.setdefault(find(k), ([], set()))
        ops.append(k)
        labels.update(lab for lab in labs if lab in free)
    return list(groups.values())


def _factor(node: g.Contract, groups: Sequence[tuple[list[int], set[int]]], out: tuple[int, int]) -> g.Node:
    ops = [k for group, _ in groups for k in group]
    return simplify(g.contract([node.args[k] for k in ops], [node.labels[k] for k in ops], out))


def _kron(p: g.Node, q: g.Node) -> g.Node:
    if isinstance(p, g.Delta) and isinstance(q, g.Delta):
        return g.delta(g.dim_product(p.shape[0], q.shape[0]))  # kron(I, I) is I
    return g.apply(_KRON, p, q)


def _kronecker_term(term: g.Node, order: str) -> g.Node | None:
    """One term of a matrix-by-matrix derivative (axes f0, f1, x0, x1) as Kronecker products and
    a commutation matrix, or None when it has no such form."""
    if isinstance(term, g.Delta | g.Var) or not isinstance(term, g.Contract):
        return None
    f0, f1, x0, x1 = term.out
    groups = _groups(term)
    scalars = [grp for grp in groups if not grp[1]]
    for first, second, swapped in (({f0, x0}, {f1, x1}, False), ({f0, x1}, {f1, x0}, True)):
        a = [grp for grp in groups if grp[1] and grp[1] <= first]
        b = [grp for grp in groups if grp[1] and grp[1] <= second]
        if len(a) + len(b) + len(scalars) != len(groups):
            continue
        if not a or not b:
            continue
        # P[f0, x] and Q[f1, x'] (the scalar factors ride with P).
        p = _factor(term, [*a, *scalars], (f0, x1 if swapped else x0))
        q = _factor(term, b, (f1, x0 if swapped else x1))
        m, n = term.shape[2], term.shape[3]
        if order == "column":
            # vec(P dX Q') = kron(Q, P) vec(dX); a swapped term reads dX' = K dX first.
            core = _kron(q, p)
            if swapped:
                return g.contract([core, commutation(m, n)], [(0, 1), (1, 2)], (0, 2), term.coeff)
        else:
            core = _kron(p, q)
            if swapped:
                # Row-major vec(dX) is column-major vec(dX'): K of the n x m matrix dX' (K_mn' = K_nm).
                return g.contract([core, commutation(n, m)], [(0, 1), (1, 2)], (0, 2), term.coeff)
        return g.scale(term.coeff, core)
    return None


def _reshaped(node: g.Node, f_rank: int, order: str) -> g.Node:
    """The derivative's entries reshaped: ``numpy.reshape(D, (|F|, |X|), order)``."""
    f_shape, x_shape = node.shape[:f_rank], node.shape[f_rank:]
    rows, cols = g.dim_product(*f_shape), g.dim_product(*x_shape)
    if order == "column":
        # Column-major over each group is row-major over the group's axes reversed.
        axes = tuple(range(f_rank))[::-1] + tuple(range(f_rank, node.rank))[::-1]
        labels = tuple(range(node.rank))
        node = simplify(g.contract([node], [labels], axes))
    return g.reshape(node, (rows, cols))


def vec_jacobian(node: g.Node, f_rank: int, order: str) -> g.Node:
    """The Jacobian of ``vec(F)`` by ``vec(X)`` (a ``|F| x |X|`` matrix) of the shape-layout
    derivative ``node`` whose first ``f_rank`` axes are ``F``'s; ``order`` is ``"column"`` or
    ``"row"``. A vector by a vector is the Jacobian itself.

    >>> A, B = g.var("A", "matrix", ("m", "p")), g.var("B", "matrix", ("q", "n"))
    >>> d = g.contract([A, B], [(0, 2), (3, 1)], (0, 1, 2, 3))  # d(A*X*B)/dX, X of p x q
    >>> vec_jacobian(d, 2, "column").args == (g.transpose(B), A)
    True
    """
    if order not in ORDERS:
        raise ValueError(f"order is 'column' or 'row', not {order!r}")
    x_rank = node.rank - f_rank
    if f_rank == 2 and x_rank == 2:
        terms = node.args if isinstance(node, g.Add) else (node,)
        forms = [_kronecker_term(t, order) for t in terms]
        if all(f is not None for f in forms):
            return simplify(g.add([f for f in forms if f is not None]))
    if f_rank <= 1 and x_rank <= 1 and f_rank + x_rank == 2:
        return node
    return _reshaped(node, f_rank, order)
