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

The commutation matrix (:func:`~matrixcalculus.ir.graph.commutation`, typed
``commutation(m, n)``) is an entry permutation: a product of two Kronecker deltas reshaped
(``K[(i,j),(k,l)] = delta(i,l)*delta(j,k)`` over pairs of the factors' dimensions), so it
evaluates and compiles as any reshape does.
"""

from __future__ import annotations

from collections.abc import Sequence

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.graph import commutation, commutation_dims
from matrixcalculus.transform.simplify import simplify

__all__ = ["ORDERS", "commutation", "commutation_dims", "vec_jacobian"]

ORDERS = ("column", "row")

_KRON = FUNCTIONS["kron"].name


def _groups(node: g.Contract) -> list[tuple[list[int], set[int]]]:
    """The operands joined by summed labels: (operand positions, free labels) per group."""
    free = set(node.out)
    return [
        (ops, {lab for k in ops for lab in node.labels[k] if lab in free})
        for ops in g.joined_operands(node.labels, lambda lab: lab not in free)
    ]


def _factor(node: g.Contract, groups: Sequence[tuple[list[int], set[int]]], out: tuple[int, ...]) -> g.Node:
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


def _vec_order(labels: Sequence[int], order: str) -> list[int]:
    """The axes of a matrix as ``kron`` pairs them, outer first: column-major ``vec`` runs down the
    columns (the column index is the outer one), row-major along the rows."""
    return list(labels[::-1] if order == "column" else labels)


def _as_operand(node: g.Node, row: int | None, column: int | None, rank: int) -> g.Node:
    """A factor with its row axis ``row`` and column axis ``column`` (None: one entry along it)
    as a ``kron`` operand: a matrix, or a vector as the 1 x n or n x 1 matrix it stands for;
    for a result of ``rank`` one, the vector itself."""
    if rank == 1 or node.rank == 2:
        return node
    (size,) = node.shape
    return g.reshape(node, (1, size) if row is None else (size, 1))


def _vector_kronecker_term(term: g.Node, f_rank: int, order: str) -> g.Node | None:
    """One term of a derivative with a vector or a scalar on one side and a matrix on the other
    (``A*x`` by ``A``, ``x*y'`` by ``x``, ``y'*A*x`` by ``A``), whose factors split into one for
    each of the two axes of the matrix side, as a Kronecker product, or None.

    ``d(A*x) = dA*x`` flattens to ``kron(x', eye(m))`` (column-major: ``vec(dA*x) = (x' ⊗ I)
    vec(dA)``) and to ``kron(eye(m), x')`` (row-major); a scalar's row ``vec(y*x')'`` is
    ``kron(x, y)'`` (a vector, as a scalar's Jacobian row is)."""
    if not isinstance(term, g.Contract):
        return None
    f_labels, x_labels = list(term.out[:f_rank]), list(term.out[f_rank:])
    rows, columns = _vec_order(f_labels, order), _vec_order(x_labels, order)
    rank = 1 if len(rows) == 0 or len(columns) == 0 else 2
    groups = _groups(term)
    scalars = [grp for grp in groups if not grp[1]]

    def splits(axes: list[int]) -> list[tuple[int | None, int | None]]:
        # (outer factor's axis, inner factor's axis); a single axis may go to either factor.
        if len(axes) == 2:
            return [(axes[0], axes[1])]
        if len(axes) == 1:
            return [(axes[0], None), (None, axes[0])]
        return [(None, None)]

    for p_row, q_row in splits(rows):
        for p_col, q_col in splits(columns):
            p_labels = {lab for lab in (p_row, p_col) if lab is not None}
            q_labels = {lab for lab in (q_row, q_col) if lab is not None}
            if not p_labels or not q_labels:
                continue
            outer = [grp for grp in groups if grp[1] and grp[1] <= p_labels]
            inner = [grp for grp in groups if grp[1] and grp[1] <= q_labels]
            if len(outer) + len(inner) + len(scalars) != len(groups) or not outer or not inner:
                continue
            covered_p = set().union(*(grp[1] for grp in outer))
            covered_q = set().union(*(grp[1] for grp in inner))
            if covered_p != p_labels or covered_q != q_labels:
                continue
            p_out = tuple(lab for lab in (p_row, p_col) if lab is not None)
            q_out = tuple(lab for lab in (q_row, q_col) if lab is not None)
            p = _as_operand(_factor(term, [*outer, *scalars], p_out), p_row, p_col, rank)
            q = _as_operand(_factor(term, inner, q_out), q_row, q_col, rank)
            return g.scale(term.coeff, g.apply(_KRON, p, q))
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
    if not f_shape or not x_shape:
        # A scalar's Jacobian is one row, one by a scalar one column: a vector either way.
        return g.reshape(node, (cols if not f_shape else rows,))
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
    if f_rank <= 1 and x_rank <= 1:
        # A vector by a vector is the Jacobian itself; a scalar's row, a column by a scalar, a
        # scalar by a scalar are the derivative as it is.
        return node
    if {f_rank, x_rank} in ({1, 2}, {0, 2}):
        terms = node.args if isinstance(node, g.Add) else (node,)
        forms = [_vector_kronecker_term(t, f_rank, order) for t in terms]
        if all(f is not None for f in forms):
            return simplify(g.add([f for f in forms if f is not None]))
    return _reshaped(node, f_rank, order)
