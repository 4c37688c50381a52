"""The expression graph: small immutable, hash-consed tensor nodes.

Every value is a tensor whose axes carry dimensions (an ``int`` or a symbolic name such as
``"n"``). A vector has one axis whatever its orientation: a row vector ``x'`` is the same
tensor as ``x``; orientation is a matter of notation, decided by the printer.

The core is the Einstein-notation :class:`Contract` node of Laue, Mitterreiter & Giesen
("A Simple and Efficient Tensor Calculus", AAAI 2020): matrix product, transpose, trace,
inner and outer products, the Hadamard product, sums of entries, diag and scalar multiples
are all one node with index labels, so later passes need one rule for all of them.

Nodes are interned: building the same expression twice gives the same object, so equal
subexpressions are shared and ``is``/``==`` (identity) decide structural equality in O(1).
"""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from matrixcalculus.errors import ShapeError


@dataclass(frozen=True)
class DimProduct:
    """A dimension that is the product of others: ``kron`` of m x n and p x q is (m*p) x (n*q).

    Normalised by :func:`dim_product` (symbolic factors sorted, whole numbers multiplied into
    ``scale``), so equal products are equal and hash alike: ``m*p`` is ``p*m``.

    >>> dim_product("p", "m", 2)
    DimProduct(factors=('m', 'p'), scale=2)
    """

    factors: tuple[str, ...]
    scale: int = 1

    def __str__(self) -> str:
        return "*".join(([str(self.scale)] if self.scale != 1 else []) + list(self.factors))


@dataclass(frozen=True)
class DimSum:
    """A dimension that is the sum of others: ``[u; v]`` of vectors of lengths n and m has length
    n + m. Normalised by :func:`dim_sum` (symbolic terms sorted, whole numbers added into
    ``offset``), so equal sums are equal: ``n + m`` is ``m + n``.

    >>> dim_sum("n", "m", 1)
    DimSum(terms=('m', 'n'), offset=1)
    """

    terms: tuple[str | DimProduct, ...]
    offset: int = 0

    def __str__(self) -> str:
        return " + ".join([str(t) for t in self.terms] + ([str(self.offset)] if self.offset else []))


Dim = int | str | DimProduct | DimSum
Shape = tuple[Dim, ...]


def dim_sum(*dims: Dim) -> Dim:
    """The sum of dimensions, normalised: ``dim_sum("n", "m")`` is ``m + n``; a sum of whole
    numbers is a whole number, a sum of one name is that name, of nothing is 0."""
    offset = 0
    terms: list[str | DimProduct] = []
    for d in dims:
        if isinstance(d, DimSum):
            offset += d.offset
            terms.extend(d.terms)
        elif isinstance(d, int):
            offset += d
        else:
            terms.append(d)
    if not terms:
        return offset
    if offset == 0 and len(terms) == 1:
        return terms[0]
    return DimSum(tuple(sorted(terms, key=str)), offset)


def dim_difference(total: Dim, part: Dim) -> Dim | None:
    """``total - part`` where it is a dimension (``n + m`` minus ``n`` is ``m``), else None."""
    whole = total if isinstance(total, DimSum) else DimSum((), total) if isinstance(total, int) else DimSum((total,))
    piece = part if isinstance(part, DimSum) else DimSum((), part) if isinstance(part, int) else DimSum((part,))
    terms = list(whole.terms)
    for t in piece.terms:
        if t not in terms:
            return None
        terms.remove(t)
    if whole.offset < piece.offset:
        return None
    return dim_sum(*terms, whole.offset - piece.offset)


def dim_product(*dims: Dim) -> Dim:
    """The product of dimensions, normalised: ``dim_product("m", "p")`` is ``m*p``; a product of
    whole numbers is a whole number, a product of one name is that name, of nothing is 1."""
    scale = 1
    factors: list[str] = []
    for d in dims:
        if isinstance(d, DimSum):
            raise ShapeError(f"a product of dimensions with a sum ({d}) as a factor is not supported")
        if isinstance(d, DimProduct):
            scale *= d.scale
            factors.extend(d.factors)
        elif isinstance(d, str):
            factors.append(d)
        else:
            scale *= d
    if not factors:
        return scale
    if scale == 1 and len(factors) == 1:
        return factors[0]
    return DimProduct(tuple(sorted(factors)), scale)


def dim_size(dim: Dim, size: Callable[[str], int]) -> int:
    """The number a dimension stands for, given the size of each named dimension."""
    if isinstance(dim, int):
        return dim
    if isinstance(dim, str):
        return size(dim)
    if isinstance(dim, DimSum):
        return dim.offset + sum(dim_size(term, size) for term in dim.terms)
    total = dim.scale
    for factor in dim.factors:
        total *= size(factor)
    return total


def dim_names(dim: Dim) -> tuple[str, ...]:
    """The named dimensions a dimension is made of: ``m*p`` -> ``("m", "p")``."""
    if isinstance(dim, str):
        return (dim,)
    if isinstance(dim, DimProduct):
        return dim.factors
    if isinstance(dim, DimSum):
        return tuple(name for term in dim.terms for name in dim_names(term))
    return ()


def dim_text(dim: Dim) -> str:
    """A dimension as text in a shape: ``n``, ``3``, ``(m*p)``, ``(m + n)``."""
    return f"({dim})" if isinstance(dim, DimProduct | DimSum) else str(dim)


# The kinds of a variable and the number of axes each has; a tensor has three or more (its
# order is its shape's length: a 3-tensor, a 4-tensor, ...).
KINDS = {"scalar": 0, "vector": 1, "matrix": 2, "symmetric": 2, "tensor": 3}

_TABLE: weakref.WeakValueDictionary[tuple, Node] = weakref.WeakValueDictionary()


def _intern(cls: type[Node], args: tuple[Node, ...], params: tuple) -> Any:
    key = (cls, args, params)
    node = _TABLE.get(key)
    if node is None:
        node = object.__new__(cls)
        node.args = args
        node.params = params
        node.shape = cls.shape_rule(args, params)
        node._hash = hash(key)
        # A digest that is stable across runs (hash() of str is not): orders operands canonically.
        node.digest = hashlib.blake2b(
            repr((cls.__name__, params)).encode() + b"".join(a.digest for a in args), digest_size=12
        ).digest()
        _TABLE[key] = node
    return node


class Node:
    """A node of the expression graph. Build nodes with the module's constructor functions."""

    __slots__ = ("__weakref__", "_hash", "args", "digest", "params", "shape")
    args: tuple[Node, ...]
    params: tuple
    shape: Shape
    _hash: int  # hash of the interning key, computed once
    digest: bytes  # stable across runs, unlike hash(); orders operands canonically

    def __new__(cls, *a: Any, **k: Any) -> Node:  # pragma: no cover - guard
        raise TypeError(f"build {cls.__name__} nodes with the constructor functions")

    def __hash__(self) -> int:
        return self._hash

    def __reduce__(self) -> Any:
        return (_intern, (type(self), self.args, self.params))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        raise NotImplementedError

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        """The value of this node from its arguments' values (``xp`` is the array namespace)."""
        raise NotImplementedError

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        """The vector-Jacobian product: for a cotangent ``g`` of shape ``batch_shape + self.shape``,
        the cotangent of each argument (shape ``batch_shape + arg.shape``), or None where the
        node does not depend differentiably on that argument. Leaves have no arguments."""
        return ()

    def __repr__(self) -> str:
        # Structural: matrix notation is a later stage (render/); Expression prints it for users.
        inner = ", ".join([*(repr(p) for p in self.params), *(f"<{type(a).__name__}#{id(a):x}>" for a in self.args)])
        return f"{type(self).__name__}({inner})"


def postorder(*roots: Node) -> list[Node]:
    """All nodes reachable from ``roots``, each once, children before parents.

    Iterative, so expressions nested thousands deep need no recursion.
    """
    seen: set[Node] = set()
    order: list[Node] = []
    stack: list[tuple[Node, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if node in seen:
            continue
        seen.add(node)
        stack.append((node, True))
        for child in reversed(node.args):
            if child not in seen:
                stack.append((child, False))
    return order


def shape_text(shape: Shape) -> str:
    """``(m, n)`` -> ``"m x n"``; ``()`` -> ``"scalar"``; ``(n,)`` -> ``"vector (n)"``."""
    if not shape:
        return "scalar"
    if len(shape) == 1:
        return f"vector ({shape[0]})"
    return " x ".join(dim_text(d) for d in shape)


# ---------------------------------------------------------------------------------- leaves


class Var(Node):
    """A variable: ``params = (name, kind, shape)``; kind is one of :data:`KINDS`."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return params[2]

    @property
    def name(self) -> str:
        return self.params[0]

    @property
    def kind(self) -> str:
        return self.params[1]

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        raise AssertionError("variables are bound by the evaluator")


def var(name: str, kind: str, shape: Shape) -> Var:
    if kind not in KINDS:
        raise ShapeError(f"variable {name}: unknown kind {kind!r}; one of {', '.join(KINDS)}")
    expected = KINDS[kind]
    if kind == "tensor" and len(shape) < expected:
        raise ShapeError(f"variable {name}: a tensor has three or more axes, not {len(shape)}")
    if kind != "tensor" and len(shape) != expected:
        raise ShapeError(f"variable {name}: a {kind} has {expected} axes, not {len(shape)}")
    if kind == "symmetric" and shape[0] != shape[1]:
        raise ShapeError(f"variable {name}: a symmetric matrix is square, not {shape_text(shape)}")
    return _intern(Var, (), (name, kind, tuple(shape)))


class Const(Node):
    """A scalar number, kept exact as a :class:`~fractions.Fraction`."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return ()

    @property
    def value(self) -> Fraction:
        return self.params[0]

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.asarray(float(self.params[0]))


# pi, the constant of the language: the nearest double to π, exact in the graph as every constant
# is; printing writes its rational multiples as pi (2*pi, pi/2), so it reads back the same.
PI = Fraction(math.pi)


def const(value: int | float | Fraction | str) -> Const:
    return _intern(Const, (), (Fraction(value),))


class Delta(Node):
    """The Kronecker delta (identity matrix) ``eye(n)``."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return (params[0], params[0])

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.eye(size(self.params[0]))


def delta(dim: Dim) -> Delta:
    return _intern(Delta, (), (dim,))


class Ones(Node):
    """The all-ones tensor ``ones(n)`` (or ``ones(m,n)``)."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return params[0]

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.ones(tuple(size(d) for d in self.shape))


class DimSize(Node):
    """The size of a dimension as a scalar value: the ``n`` of ``sum(x)/n`` (``params = (dim,)``).

    A leaf: its value is fixed by the arrays an expression is evaluated at, so its derivative is
    zero and ``1/n`` stays symbolic, a number only at evaluation.
    """

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return ()

    @property
    def dim(self) -> Dim:
        return self.params[0]

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.asarray(float(size(self.params[0])))


def size_of(dim: Dim) -> Node:
    """The size of ``dim`` as a value: a number for a whole-number dimension, else a :class:`DimSize`.

    >>> size_of(3) is const(3)
    True
    """
    if isinstance(dim, int):
        return const(dim)
    if isinstance(dim, DimProduct):
        # m*n as the product of the sizes m and n, so that n*m/(m*n) cancels to 1 (the sizes
        # of its factors are what the arrays fix; the product has no value of its own).
        factors = [_intern(DimSize, (), (f,)) for f in dim.factors]
        return contract(factors, [()] * len(factors), (), dim.scale)
    return _intern(DimSize, (), (dim,))


def ones(shape: Shape) -> Node:
    return _intern(Ones, (), (tuple(shape),)) if shape else const(1)


class Zeros(Node):
    """The zero tensor ``zeros(m,n)``; derivatives of expressions that do not depend on a variable."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return params[0]

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.zeros(tuple(size(d) for d in self.shape))


def zeros(shape: Shape) -> Node:
    return _intern(Zeros, (), (tuple(shape),)) if shape else const(0)


class Embed(Node):
    """The unit vector ``e_k`` of length ``n``, ``params = (n, k)`` (``k`` counts from 0): 1 at
    entry ``k``, 0 elsewhere. A stack ``[a; b]`` is the sum ``a*e_0 + b*e_1`` (see :func:`stack`),
    so its derivative is the stack of the derivatives with no rule of its own.

    >>> embed(3, 1).shape
    (3,)
    """

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        n, k = params
        if not isinstance(n, int) or not isinstance(k, int) or not 0 <= k < n:
            raise ShapeError(f"unit vector: entry {k} of a vector of length {n}")
        return (n,)

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        n, k = self.params
        return xp.eye(n)[k]


def embed(n: int, k: int) -> Embed:
    """The unit vector ``e_k`` of length ``n`` (``k`` from 0)."""
    return _intern(Embed, (), (n, k))


def stack(entries: Sequence[Node], rows: int, columns: int) -> Node:
    """The literal ``[a, b; c, d]`` of scalar ``entries`` (row-major): a vector of length
    ``rows*columns`` when there is one row or one column (a vector has one axis, whatever its
    orientation), else a ``rows x columns`` matrix; one entry is that entry. A single row or
    column may also stack vectors of whole-number length, ``[u; v]`` (see :func:`block_embedding`).

    >>> stack([const(1), const(2)], 2, 1).shape
    (2,)
    """
    if len(entries) != rows * columns:
        raise ShapeError(f"a {rows}x{columns} stack has {rows * columns} entries, not {len(entries)}")
    if (rows == 1 or columns == 1) and any(entry.rank == 1 for entry in entries):
        return _stack_vectors(entries)
    for entry in entries:
        if entry.shape:
            raise ShapeError(f"a stack's entries are scalars here, not {shape_text(entry.shape)}")
    if rows * columns == 1:
        return entries[0]
    terms: list[Node] = []
    for k, entry in enumerate(entries):
        if rows == 1 or columns == 1:
            terms.append(contract([entry, embed(rows * columns, k)], [(), (0,)], (0,)))
        else:
            i, j = divmod(k, columns)
            terms.append(contract([entry, embed(rows, i), embed(columns, j)], [(), (0,), (1,)], (0, 1)))
    return add(terms)


def block_embedding(total: int, offset: int, length: int) -> Node:
    """The ``total x length`` 0/1 matrix that puts a vector of ``length`` at entries
    ``offset, ..., offset + length - 1`` of a vector of ``total``: the sum of the outer products
    ``e_(offset+j) e_j'``, so a stack built with it needs no derivative rule of its own.

    >>> block_embedding(5, 2, 3).shape
    (5, 3)
    """
    if not 0 <= offset <= offset + length <= total:
        raise ShapeError(f"a block of {length} entries at entry {offset} of a vector of length {total}")
    return add([contract([embed(total, offset + j), embed(length, j)], [(0,), (1,)], (0, 1)) for j in range(length)])


def _stack_vectors(entries: Sequence[Node]) -> Node:
    """``[u; v; a]`` of vectors (whole-number lengths) and scalars: one vector of the summed
    length, each vector entry placed by :func:`block_embedding`, each scalar by a unit vector."""
    lengths: list[int] = []
    for entry in entries:
        if entry.rank > 1:
            raise ShapeError(f"a stack of vectors stacks vectors and scalars, not {shape_text(entry.shape)}")
        length = entry.shape[0] if entry.shape else 1
        if not isinstance(length, int):
            # The result's length is a sum such as n + m: placed by blocks of symbolic size.
            return concatenate(entries)
        lengths.append(length)
    total = sum(lengths)
    terms: list[Node] = []
    offset = 0
    for entry, length in zip(entries, lengths, strict=True):
        if entry.shape:
            terms.append(contract([block_embedding(total, offset, length), entry], [(0, 1), (1,)], (0,)))
        else:
            terms.append(contract([entry, embed(total, offset)], [(), (0,)], (0,)))
        offset += length
    return add(terms)


class Block(Node):
    """The ``total x length`` 0/1 matrix that puts a vector of ``length`` at entries ``offset``,
    ..., ``offset + length - 1`` of a vector of ``total`` (``params = (total, offset, length)``,
    dimensions that may be symbolic: ``[u; v]`` of lengths n and m is ``B1*u + B2*v`` with
    ``B1 = [eye(n); zeros(m,n)]``, ``B2 = [zeros(n,m); eye(m)]`` of ``total`` n + m). A stack built
    with it needs no derivative rule of its own.

    >>> block(dim_sum("n", "m"), "n", "m").shape
    (DimSum(terms=('m', 'n'), offset=0), 'm')
    """

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        total, offset, length = params
        if dim_difference(total, dim_sum(offset, length)) is None:
            raise ShapeError(f"a block of {length} entries at entry {offset} of a vector of length {total}")
        return (total, length)

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        total, offset, length = (size(d) for d in self.params)
        return xp.eye(total, length, k=-offset)


def block(total: Dim, offset: Dim, length: Dim) -> Block:
    """The :class:`Block` that places a vector of ``length`` at ``offset`` in one of ``total``."""
    return _intern(Block, (), (total, offset, length))


def concatenate(entries: Sequence[Node], axis: int = 0, matrix: bool | None = None) -> Node:
    """Entries one after the other along ``axis``: vectors and scalars into one vector (``[u; v; a]``,
    lengths that may be symbolic, the result's a :class:`DimSum`), or matrices, vectors read as
    ``1 x n`` rows (``axis=0``) or ``m x 1`` columns (``axis=1``), and scalars into one matrix
    (``[A; x']``, ``[A, x]``, ``[u, v]``: pass ``matrix=True`` for vectors side by side). Each
    entry is placed by a :class:`Block`.

    >>> concatenate([var("u", "vector", ("n",)), var("v", "vector", ("m",))]).shape
    (DimSum(terms=('m', 'n'), offset=0),)
    """
    if matrix is None:
        matrix = any(entry.rank == 2 for entry in entries)
    lengths = [
        (entry.shape[axis] if entry.rank == 2 else 1 if matrix or not entry.rank else entry.shape[0])
        for entry in entries
    ]
    total = dim_sum(*lengths)
    terms: list[Node] = []
    offset: Dim = 0
    for entry, length in zip(entries, lengths, strict=True):
        place = block(total, offset, length)
        if not matrix:
            terms.append(contract([place, entry], [(0, 1), (1,)[: entry.rank]], (0,)))
        elif axis == 0:
            # rows offset... of the result: B[i, k] entry[k, j] (a vector is one row, a scalar one entry)
            labels = {2: (1, 2), 1: (2,), 0: ()}[entry.rank]
            terms.append(contract([place, entry], [(0, 1), labels], (0, 2)))
        else:
            labels = {2: (0, 1), 1: (0,), 0: ()}[entry.rank]
            terms.append(contract([entry, place], [labels, (2, 1)], (0, 2)))
        offset = dim_sum(offset, length)
    return add(terms)


def is_zero(node: Node) -> bool:
    return isinstance(node, Zeros) or (isinstance(node, Const) and node.value == 0)


# ----------------------------------------------------------------------------- contraction


class Contract(Node):
    """``coeff * sum over summed labels of prod_k operand_k[labels_k]`` with free labels ``out``.

    ``params = (coeff, labels, out)``: ``labels[k]`` names the axes of operand ``k`` by integers;
    a label in ``out`` is free, any other is summed (einsum semantics). Labels are renumbered
    canonically (``out`` first, then in order of appearance), so equal contractions are one node.

    ``A*x``   is ``Contract(1, (A, x), ((0, 1), (1,)), (0,))``;
    ``x'*y``  is ``((0,), (0,)) -> ()``; ``x .* y`` is ``((0,), (0,)) -> (0,)``;
    ``A'``    is ``((0, 1),) -> (1, 0)``; ``tr(A)`` is ``((0, 0),) -> ()``.
    """

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        _, labels, out = params
        dims: dict[int, Dim] = {}
        for operand, labs in zip(args, labels, strict=True):
            if len(labs) != operand.rank:
                raise ShapeError(f"contraction: operand of rank {operand.rank} given {len(labs)} labels")
            for lab, dim in zip(labs, operand.shape, strict=True):
                if dims.setdefault(lab, dim) != dim:
                    raise ShapeError(f"contraction: index {lab} has dimensions {dims[lab]} and {dim}")
        if len(set(out)) != len(out):
            raise ShapeError("contraction: a free index occurs twice in the output")
        try:
            return tuple(dims[lab] for lab in out)
        except KeyError:
            raise ShapeError("contraction: an output index occurs in no operand") from None

    @property
    def coeff(self) -> Fraction:
        return self.params[0]

    @property
    def labels(self) -> tuple[tuple[int, ...], ...]:
        return self.params[1]

    @property
    def out(self) -> tuple[int, ...]:
        return self.params[2]

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        # The product rule, once for every kind of product: the cotangent of operand k is the
        # contraction of g with all the other operands, keeping operand k's labels free.
        top = 1 + max((lab for labs in self.labels for lab in labs), default=-1)
        b = tuple(range(top, top + batch))
        dims = {
            lab: d
            for arg, labs in zip(self.args, self.labels, strict=True)
            for lab, d in zip(labs, arg.shape, strict=True)
        }
        result: list[Node | None] = []
        for k, labs in enumerate(self.labels):
            ops: list[Node] = [g]
            ops_labels: list[tuple[int, ...]] = [b + self.out]
            for j, (arg, other) in enumerate(zip(self.args, self.labels, strict=True)):
                if j != k:
                    ops.append(arg)
                    ops_labels.append(other)
            present = {lab for other in ops_labels for lab in other}
            free: list[int] = []
            fresh = top + batch
            for lab in labs:
                if lab in free:
                    # A repeated label (trace, diagonal): the cotangent lives on the diagonal.
                    ops.append(delta(dims[lab]))
                    ops_labels.append((lab, fresh))
                    free.append(fresh)
                    fresh += 1
                    continue
                if lab not in present:
                    # Summed in operand k alone (sum of entries): the cotangent is spread by ones.
                    ops.append(ones((dims[lab],)))
                    ops_labels.append((lab,))
                    present.add(lab)
                free.append(lab)
            result.append(contract(ops, ops_labels, b + tuple(free), self.coeff))
        return tuple(result)

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        operands: list[Any] = []
        for value, labs in zip(values, self.labels, strict=True):
            operands += [value, list(labs)]
        result = _einsum(xp, operands, list(self.out))
        return result if self.coeff == 1 else result * float(self.coeff)


def _einsum(xp: Any, operands: list[Any], out: list[int]) -> Any:
    import numpy as np

    if xp is np:
        return np.einsum(*operands, out, optimize=len(operands) > 4)
    # Other namespaces take the string form.
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    spec = ",".join("".join(letters[i] for i in labs) for labs in operands[1::2])
    return xp.einsum(spec + "->" + "".join(letters[i] for i in out), *operands[0::2])


def canonical_labels(
    labels: Sequence[Sequence[int]], out: Sequence[int]
) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """Renumber labels 0, 1, ... in order of first appearance, ``out`` first."""
    rename: dict[int, int] = {}
    for lab in out:
        rename.setdefault(lab, len(rename))
    for labs in labels:
        for lab in labs:
            rename.setdefault(lab, len(rename))
    return tuple(tuple(rename[lab] for lab in labs) for labs in labels), tuple(rename[lab] for lab in out)


def contract(
    operands: Sequence[Node],
    labels: Sequence[Sequence[int]],
    out: Sequence[int],
    coeff: int | Fraction = 1,
) -> Node:
    """Build a contraction, folding numbers into ``coeff`` and dropping trivial wrappers.

    Numeric factors are pulled out of operands (``(2*A)*x`` and ``A*(2*x)`` are both
    ``2*(A*x)`` as one node); a zero factor gives :func:`zeros`; one operand with its own
    labels and coefficient 1 is that operand.
    """
    coeff = Fraction(coeff)
    ops: list[Node] = []
    labs: list[tuple[int, ...]] = []
    for operand, lab in zip(operands, labels, strict=True):
        lab = tuple(lab)
        if isinstance(operand, Const):
            coeff *= operand.value
            continue
        if isinstance(operand, Contract) and operand.coeff != 1:
            coeff *= operand.coeff
            operand = _intern(Contract, operand.args, (Fraction(1), operand.labels, operand.out))
            operand = _unwrap(operand)
        ops.append(operand)
        labs.append(lab)
    out = tuple(out)
    if len(ops) == 1 and isinstance(ops[0], Contract) and _is_relabelling(labs[0], out):
        # Scaling or transposing a contraction is that contraction with other free labels:
        # (A*x)/2 and A*(x/2) are one node, as are tr(A)/2 and tr(A/2).
        inner = ops[0]
        position = {lab: k for k, lab in enumerate(labs[0])}
        permuted = tuple(inner.out[position[lab]] for lab in out)
        return contract(inner.args, inner.labels, permuted, coeff * inner.coeff)
    # A zero coefficient folds here; a zeros(m,n) operand is left to simplification, so that an
    # expression as typed (sum(zeros(n,m)), with its named dimensions) prints back as typed.
    if coeff == 0:
        shape = Contract.shape_rule(tuple(ops), (coeff, tuple(labs), out))
        return zeros(shape)
    if not ops:
        if out:
            raise ShapeError("contraction: free indices without operands")
        return const(coeff)
    canon_labels, canon_out = canonical_labels(labs, out)
    return _unwrap(_intern(Contract, tuple(ops), (coeff, canon_labels, canon_out)))


def _is_diag(node: Contract) -> bool:
    """``diag(v)``: a vector times the identity over the vector's index, both indices free."""
    if len(node.args) != 2 or node.rank != 2:
        return False
    (v, d), (lv, ld) = node.args, node.labels
    if isinstance(v, Delta):
        (v, d), (lv, ld) = (d, v), (ld, lv)
    return isinstance(d, Delta) and v.rank == 1 and lv[0] in ld and set(ld) == set(node.out)


def _is_scaled_symmetric(node: Contract) -> bool:
    """``c*S`` for an identity or a symmetric variable ``S``."""
    (op,) = node.args if len(node.args) == 1 else (None,)
    symmetric = isinstance(op, Delta) or (isinstance(op, Var) and op.kind == "symmetric")
    return symmetric and node.labels[0] == node.out


def _is_relabelling(labels: tuple[int, ...], out: tuple[int, ...]) -> bool:
    return len(set(labels)) == len(labels) and sorted(labels) == sorted(out)


def _unwrap(node: Node) -> Node:
    if isinstance(node, Contract) and node.coeff == 1 and len(node.args) == 1 and node.labels[0] == node.out:
        return node.args[0]
    return node


def scale(coeff: int | Fraction, node: Node) -> Node:
    """``coeff * node``."""
    idx = tuple(range(node.rank))
    return contract([node], [idx], idx, coeff)


def transpose(node: Node) -> Node:
    """The transpose of a matrix; vectors and scalars are their own transpose in the core."""
    if node.rank != 2:
        return node
    if (isinstance(node, Var) and node.kind == "symmetric") or isinstance(node, Delta):
        return node
    if isinstance(node, Contract):
        if _is_diag(node) or _is_scaled_symmetric(node):
            return node  # diag(v), -S and 2*eye(n) are their own transposes
        # Transposing a contraction permutes its free indices; no new level of nesting.
        a, b = node.out
        return contract(node.args, node.labels, (b, a), node.coeff)
    return contract([node], [(0, 1)], (1, 0))


# ------------------------------------------------------------------------------------ sum


class Add(Node):
    """A sum of two or more terms of one shape."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        shape = args[0].shape
        for term in args[1:]:
            if term.shape != shape:
                raise ShapeError(f"cannot add {shape_text(shape)} and {shape_text(term.shape)}")
        return shape

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        return tuple(g for _ in self.args)

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        total = values[0]
        for value in values[1:]:
            total = total + value
        return total


def add(terms: Iterable[Node]) -> Node:
    """The sum of ``terms``; nested sums are flattened (addition is associative)."""
    flat: list[Node] = []
    for term in terms:
        flat.extend(term.args if isinstance(term, Add) else (term,))
    if not flat:
        raise ShapeError("empty sum")
    if len(flat) == 1:
        return flat[0]
    return _intern(Add, tuple(flat), ())


# --------------------------------------------------------------------- element-wise binary


def _broadcast_shape(a: Node, b: Node, what: str) -> Shape:
    if a.shape == b.shape or not b.shape:
        return a.shape
    if not a.shape:
        return b.shape
    raise ShapeError(f"{what}: operands of shapes {shape_text(a.shape)} and {shape_text(b.shape)}")


class Power(Node):
    """Element-wise power ``base .^ exponent``; a scalar exponent applies to every entry."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        base, exponent = args
        if exponent.shape and exponent.shape != base.shape:
            raise ShapeError(
                f"power: exponent of shape {shape_text(exponent.shape)} for a base of shape {shape_text(base.shape)}"
            )
        return base.shape

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        # d(b^p) = p b^(p-1) db + b^p log(b) dp, entry-wise; a scalar exponent collects a sum.
        base, exponent = self.args
        b = tuple(range(batch))
        idx = tuple(range(batch, batch + base.rank))
        e_idx = idx if exponent.rank else ()
        if isinstance(exponent, Const):
            lowered = power(base, const(exponent.value - 1))
            d_base = contract([lowered, g], [idx, b + idx], b + idx, exponent.value)
            return d_base, None
        lowered = power(base, add([exponent, scale(-1, ones(exponent.shape))]))
        d_base = contract([g, exponent, lowered], [b + idx, e_idx, idx], b + idx)
        d_exp = contract([g, self, apply("log", base)], [b + idx, idx, idx], b + e_idx)
        return d_base, d_exp

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        base, exponent = values
        if isinstance(self.args[1], Const):
            value = self.args[1].value
            if value.denominator == 1:
                # Integer powers of negative numbers are real: use the integer exponent.
                return xp.asarray(base) ** int(value)
        return xp.asarray(base) ** exponent


def power(base: Node, exponent: Node) -> Node:
    if isinstance(exponent, Const) and exponent.value == 1:
        return base
    if isinstance(exponent, Const) and exponent.value == 0:
        return ones(base.shape)
    return _intern(Power, (base, exponent), ())


class Compare(Node):
    """Element-wise comparison giving 0/1: ``a > b`` or ``a < b`` (scalars broadcast)."""

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return _broadcast_shape(args[0], args[1], f"comparison '{params[0]}'")

    @property
    def op(self) -> str:
        return self.params[0]

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        return (None, None)  # piecewise constant: the derivative is zero wherever it exists

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        a, b = values
        result = a > b if self.params[0] == ">" else a < b
        return xp.asarray(result, dtype=xp.float64)


def compare(op: str, a: Node, b: Node) -> Node:
    return _intern(Compare, (a, b), (op,))


# ------------------------------------------------------------------------------ reshape


class Reshape(Node):
    """The entries of a tensor read in row-major (C) order into another shape, ``params = (shape,)``.

    The shapes hold the same number of entries: the products of their dimensions are equal
    (``(m*p) x (n*q)`` reshapes to ``m x p x n x q``). The VJP of ``kron`` splits its cotangent
    this way.
    """

    __slots__ = ()

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        (new,) = params
        if dim_product(*args[0].shape) != dim_product(*new):
            raise ShapeError(f"reshape: {shape_text(args[0].shape)} has not as many entries as {shape_text(new)}")
        return new

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        # A reshape only moves entries: the cotangent moves back (batch axes lead, so row-major
        # order over the whole tensor is row-major order over the trailing axes).
        (x,) = self.args
        return (reshape(g, g.shape[:batch] + x.shape),)

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        return xp.reshape(values[0], tuple(size(d) for d in self.shape))


def reshape(x: Node, shape: Shape) -> Node:
    """``x`` reshaped (row-major) to ``shape``; a reshape of a reshape is one reshape.

    >>> reshape(ones(("m", "p")), (dim_product("m", "p"),)) is ones((dim_product("m", "p"),))
    True
    """
    shape = tuple(shape)
    if isinstance(x, Reshape):
        x = x.args[0]
    if shape == x.shape:
        return x
    if isinstance(x, Ones | Zeros):
        Reshape.shape_rule((x,), (shape,))
        return ones(shape) if isinstance(x, Ones) else zeros(shape)
    return _intern(Reshape, (x,), (shape,))


def commutation(m: Dim, n: Dim) -> Node:
    """The commutation matrix ``K`` of an ``m x n`` matrix: ``K*vec(X) = vec(X')``, column-major
    ``vec``; rows are indexed by the entries of ``X'`` (n x m), columns by those of ``X``.

    >>> commutation(2, 3).shape
    (6, 6)
    """
    # Pairs are read row-major, so column-major vec(X)[k + m*l] = X[k,l] is column (l, k), and
    # vec(X')[p + n*q] = X'[p,q] = X[q,p] is row (q, p): K[(q,p),(l,k)] = delta(q,k)*delta(p,l).
    delta_m, delta_n = delta(m), delta(n)
    tensor = contract([delta_m, delta_n], [(0, 3), (1, 2)], (0, 1, 2, 3))
    return reshape(tensor, (dim_product(m, n), dim_product(n, m)))


def commutation_dims(node: Node) -> tuple[Dim, Dim] | None:
    """``(m, n)`` when ``node`` is :func:`commutation` ``(m, n)``, else None (for printing it by name).

    >>> commutation_dims(commutation("m", "n"))
    ('m', 'n')
    """
    if not isinstance(node, Reshape):
        return None
    inner = node.args[0]
    if not (isinstance(inner, Contract) and inner.coeff == 1 and len(inner.args) == 2 and inner.rank == 4):
        return None
    if not all(isinstance(op, Delta) for op in inner.args):
        return None
    q, p, l, k = inner.out
    pairs = {frozenset(labs): op.shape[0] for op, labs in zip(inner.args, inner.labels, strict=True)}
    m, n = pairs.get(frozenset((q, k))), pairs.get(frozenset((p, l)))
    if m is None or n is None or node.shape != (dim_product(m, n), dim_product(n, m)):
        return None
    return m, n


# ------------------------------------------------------------------------------ functions


class Function(Node):
    """A named function of one or more tensors, ``params = (name,)``, or ``(name, dim)`` for a
    function that takes a whole-number axis. Its record (in the registry, ``ir/registry.py``) holds
    its shape rule, value and derivative."""

    __slots__ = ()
    # Filled by ir/registry.py (which imports this module): name -> FunctionRecord.
    rules: ClassVar[dict[str, Any]] = {}

    @classmethod
    def shape_rule(cls, args: tuple[Node, ...], params: tuple) -> Shape:
        return cls.rules[params[0]].shape(tuple(a.shape for a in args), *params[1:])

    @property
    def name(self) -> str:
        return self.params[0]

    @property
    def record(self) -> Any:
        return self.rules[self.params[0]]

    def vjp(self, g: Node, batch: int) -> tuple[Node | None, ...]:
        record = self.record
        if record.elementwise:
            # The chain rule for an entry-wise function: g .* f'(x).
            (x,) = self.args
            b = tuple(range(batch))
            idx = tuple(range(batch, batch + x.rank))
            return (contract([g, record.derivative(x)], [b + idx, idx], b + idx),)
        return tuple(record.derivative(self.args, self, g, batch))

    @property
    def dim(self) -> int | None:
        """The axis argument of a function that takes one, else None."""
        return self.params[1] if len(self.params) > 1 else None

    def evaluate(self, xp: Any, values: Sequence[Any], size: Callable[[Dim], int]) -> Any:
        if len(self.params) > 1:
            return self.record.value(xp, *values, dim=self.params[1])
        return self.record.value(xp, *values)


# Inside as_typed(): functions are built as written, their records' rewrites not applied.
_AS_TYPED: ContextVar[bool] = ContextVar("as_typed", default=False)


@contextmanager
def as_typed() -> Iterator[None]:
    """Build functions as they are written, without their records' rewrites, for showing what was
    typed: ``apply("max", const(0), u)`` is then ``max(0, u)``, not ``relu(u)``. Only for display:
    the library computes with the rewritten nodes.

    >>> u = var("u", "scalar", ())
    >>> with as_typed():
    ...     typed = apply("max", const(0), u)
    >>> typed.name, apply("max", const(0), u).name
    ('max', 'relu')
    """
    token = _AS_TYPED.set(True)
    try:
        yield
    finally:
        _AS_TYPED.reset(token)


def apply(name: str, *args: Node, dim: int | None = None) -> Node:
    """``name(x, ...)`` for a function in the registry (a ``KeyError`` for an unknown name);
    ``dim``: the axis, for a function that takes one."""
    record = Function.rules[name]
    if len(args) != record.arity:
        raise ShapeError(f"{name} takes {record.arity} argument{'s' if record.arity > 1 else ''}, not {len(args)}")
    if dim is not None and not record.dim:
        raise ShapeError(f"{name} takes no axis argument")
    if record.rewrite is not None and dim is None and not _AS_TYPED.get():
        simpler = record.rewrite(*args)
        if simpler is not None:
            return simpler
    return _intern(Function, tuple(args), (name,) if dim is None else (name, dim))


def joined_operands(
    labels: Sequence[Sequence[int]], joining: Callable[[int], bool] = lambda lab: True
) -> list[list[int]]:
    """The operand positions of a contraction grouped into parts that share no ``joining`` label
    (union-find over the labels; parts in order of their first operand).

    >>> joined_operands([(0, 1), (1, 2), (3,)])
    [[0, 1], [2]]
    """
    parent = list(range(len(labels)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    owner: dict[int, int] = {}
    for k, labs in enumerate(labels):
        for lab in labs:
            if not joining(lab):
                continue
            if lab in owner:
                parent[find(k)] = find(owner[lab])
            else:
                owner[lab] = k
    groups: dict[int, list[int]] = {}
    for k in range(len(labels)):
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())
