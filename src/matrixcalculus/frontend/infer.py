"""Typing: a syntax tree and declared types -> the typed expression graph.

Each variable is a scalar, a (column) vector, a matrix or a symmetric matrix. Its type comes
from, in order:

1. a declaration, ``types={"A": "symmetric matrix", "x": (4,)}`` (always wins);
2. the name (:func:`default_kind`, matrixcalculus.org's convention): ``a``-``g`` scalars,
   ``h``-``z`` vectors, ``A``-``Z`` matrices, Greek names scalars;
3. only where that reading is ill-typed, the smallest departure of lower-case names: what the
   expression forces (the base and exponent of ``^`` are scalars; the argument of ``det``,
   ``inv``, ``tr`` ... is a matrix), else the fewest names moved by the smallest steps; ties
   prefer no broadcast and scalars written first, then are reported as ambiguous.

A reading that type-checks with the defaults stands, broadcasts included (``x - sum(x)`` keeps
``x`` a vector). Each move, and each undeclared scalar repeated over a tensor, is a
:class:`Notice` (docs/conventions.md, "Types").

Axes carry dimensions that are unified across the expression (``x'*A*x`` makes ``A`` square
with ``x``'s length). Dimensions that the user named (``eye(n)``, ``types={"x": ("k",)}``) keep
their names, numbers stay numbers, and the rest are named ``n, m, p, q, ...`` in order of first
appearance, a matrix's columns before its rows (so ``A*x`` has ``x`` of length ``n``, ``A`` m x n).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from matrixcalculus.errors import InferenceError, ParseError, ShapeError
from matrixcalculus.frontend.indices import IndexInfo, IndexTyping, analyse, plain_type
from matrixcalculus.frontend.indices import build as build_indexed
from matrixcalculus.frontend.syntax import DIMENSION_FUNCTIONS, Ast, flatten, post_order, read_declared_notation
from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.registry import ARGUMENT_KINDS, FunctionRecord

_KIND_WORDS = {
    "scalar": "scalar",
    "vector": "vector",
    "matrix": "matrix",
    "symmetric": "symmetric",
    "symmetric matrix": "symmetric",
    "sym": "symmetric",
}
# The one pool of names for dimensions nobody named, in the order they are handed out.
DIMENSION_NAMES = ("n", "m", "p", "q", "r", "s", "k", "l", "t", "u", "v", "w")


def fresh_dimension_names(taken: Container[str] = ()) -> Iterator[str]:
    """Names for new dimensions: :data:`DIMENSION_NAMES`, then ``n1, n2, ...``, skipping ``taken``.

    >>> list(itertools.islice(fresh_dimension_names({"m"}), 3))
    ['n', 'p', 'q']
    """
    return (d for d in itertools.chain(DIMENSION_NAMES, (f"n{i}" for i in itertools.count(1))) if d not in taken)


_MAX_CHECKS = 4000


@dataclass(frozen=True)
class Declared:
    """A declared type: its kind and, where given, its shape (ints or dimension names)."""

    kind: str
    shape: tuple | None = None
    order: int | None = None  # a tensor's number of axes, where no shape is given ("3-tensor")


def declare(name: str, spec: Any) -> Declared:
    """Read one entry of ``types=``: a kind word, a shape tuple, ``"3-tensor"`` or a shape as
    text (``"b x n x d"``, ``"4x5x6"``)."""
    if isinstance(spec, Declared):
        return spec
    if isinstance(spec, str):
        kind = _KIND_WORDS.get(" ".join(spec.lower().split()))
        if kind is None:
            tensor = declare_tensor(name, spec)
            if tensor is not None:
                return tensor
            raise InferenceError(
                f"type of {name}: unknown type {spec!r}; use scalar, vector, matrix or symmetric matrix, "
                f"a tensor's order (3-tensor), or a shape such as () or (3,) or (3, 4) or 'b x n x d'"
            )
        return Declared(kind)
    if isinstance(spec, tuple | list):
        shape = tuple(spec)
        for d in shape:
            ok = (isinstance(d, int) and not isinstance(d, bool) and d > 0) or (isinstance(d, str) and d.isidentifier())
            if not ok:
                raise InferenceError(f"type of {name}: dimension {d!r} is neither a positive whole number nor a name")
        if len(shape) > 2:
            return Declared("tensor", shape, len(shape))
        return Declared(("scalar", "vector", "matrix")[len(shape)], shape)
    raise InferenceError(f"type of {name}: expected a type word or a shape tuple, not {type(spec).__name__}")


def declare_tensor(name: str, spec: str) -> Declared | None:
    """``"3-tensor"`` (a tensor of order 3, dimensions unnamed) or a shape written out,
    ``"b x n x d"`` / ``"4x5x6"`` (any order, names or whole numbers); None for other text."""
    words = " ".join(spec.lower().split())
    if words.endswith("-tensor") and words[: -len("-tensor")].isdigit():
        order = int(words[: -len("-tensor")])
        if order < 3:
            raise InferenceError(
                f"type of {name}: a {order}-tensor is a {('scalar', 'vector', 'matrix')[order]}; tensors have "
                "three or more axes"
            )
        return Declared("tensor", None, order)
    parts = [p.strip() for p in spec.split("x")] if "x" in spec.replace(" ", "") else []
    if len(parts) < 2 or not all(p.isdigit() or p.isidentifier() for p in parts):
        return None
    shape = tuple(int(p) if p.isdigit() else p for p in parts)
    return declare(name, shape)


# ------------------------------------------------------------------------------ dimensions


class _Mismatch(Exception):
    def __init__(self, message: str, ast: Ast | None, context: Ast | None = None):
        self.message = message
        self.ast = ast
        # The expression to quote when saying why a name was moved (the stack of a bad entry).
        self.context = context if context is not None else ast


@dataclass(frozen=True)
class _Product:
    """A dimension class that is the product of other classes (by index): kron's ``m*p``."""

    factors: tuple[int, ...]


@dataclass(frozen=True)
class _Sum:
    """A dimension class that is the sum of other classes (by index): a stack's ``n + m``."""

    factors: tuple[int, ...]


def _combined(node: _Product | _Sum, parts: list[g.Dim]) -> g.Dim:
    return g.dim_product(*parts) if isinstance(node, _Product) else g.dim_sum(*parts)


class _Dims:
    """Union-find over dimension variables; a class may be fixed to an int, a user's name, or a
    product of other classes.

    Two products unify factor by factor when they have as many factors (``kron(A, B) + kron(C, D)``
    makes C like A and D like B) unless they are already equal. An equality between a product
    and a number or a name (``kron(A, B)*x`` with x of length 6) cannot be decided before the
    factors are known: it is kept in ``deferred`` and checked when the whole expression is read.
    """

    def __init__(self) -> None:
        self.parent: list[int] = []
        self.fixed: list[g.Dim | _Product | _Sum | None] = []
        self.deferred: list[tuple[int, int]] = []

    def new(self, fixed: g.Dim | _Product | _Sum | None = None) -> int:
        self.parent.append(len(self.parent))
        self.fixed.append(fixed)
        return len(self.parent) - 1

    def product(self, *factors: int) -> int:
        return self.new(_Product(tuple(factors)))

    def total(self, *parts: int) -> int:
        """The class of the sum of ``parts`` (a stack's length)."""
        return self.new(_Sum(tuple(parts)))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def value(self, i: int) -> g.Dim | None:
        """The dimension as far as it is known: None for a free class; a product shows its free
        factors as ``?``."""
        fixed = self.fixed[self.find(i)]
        if isinstance(fixed, _Product | _Sum):
            return _combined(fixed, [self.resolve(f, lambda root: "?") for f in fixed.factors])
        return fixed

    def resolve(self, i: int, free: Callable[[int], g.Dim]) -> g.Dim:
        """The dimension of class ``i``, with ``free(root)`` standing for each free class."""
        root = self.find(i)
        fixed = self.fixed[root]
        if fixed is None:
            return free(root)
        if isinstance(fixed, _Product | _Sum):
            return _combined(fixed, [self.resolve(f, free) for f in fixed.factors])
        return fixed

    def _contains(self, product: int, root: int) -> bool:
        """Whether class ``root`` is a factor of ``product`` (at any depth): m = m*p has no solution."""
        stack = [product]
        while stack:
            top = self.find(stack.pop())
            if top == root:
                return True
            fixed = self.fixed[top]
            if isinstance(fixed, _Product | _Sum):
                stack.extend(fixed.factors)
        return False

    def unify(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        fa, fb = self.fixed[ra], self.fixed[rb]
        if fa is None or fb is None:
            free, other = (ra, rb) if fa is None else (rb, ra)
            if isinstance(self.fixed[other], _Product | _Sum) and self._contains(other, free):
                return False
            self.parent[free] = other
            return True
        if isinstance(fa, _Product | _Sum) or isinstance(fb, _Product | _Sum):
            return self._unify_products(ra, rb)
        if fa != fb:
            return False
        self.parent[rb] = ra
        return True

    def _unify_products(self, ra: int, rb: int) -> bool:
        fa, fb = self.fixed[ra], self.fixed[rb]

        def symbol(root: int) -> g.Dim:
            return f"?{root}"

        if self.resolve(ra, symbol) == self.resolve(rb, symbol):
            self.parent[rb] = ra
            return True
        same_kind = type(fa) is type(fb) and isinstance(fa, _Product | _Sum) and isinstance(fb, _Product | _Sum)
        if same_kind and len(fa.factors) == len(fb.factors):  # type: ignore[union-attr]
            # [u; v] + [x; y] (as kron(A, B) + kron(C, D)): part by part.
            for x, y in zip(fa.factors, fb.factors, strict=True):  # type: ignore[union-attr]
                if not self.unify(x, y):
                    return False
            self.parent[self.find(rb)] = self.find(ra)
            return True
        self.deferred.append((ra, rb))
        return True

    def settled(self, a: int, b: int) -> bool:
        """A deferred equality, checked once everything is unified (free classes are unknowns)."""
        return self.resolve(a, lambda root: f"?{root}") == self.resolve(b, lambda root: f"?{root}")


# An mtype is the matrix-level type: ("s",), ("c", d), ("r", d) or ("m", d_rows, d_cols).
MType = tuple


def _describe(t: MType, dims: _Dims) -> str:
    def dv(d: int) -> str:
        v = dims.value(d)
        return "?" if v is None else g.dim_text(v)

    if t[0] == "s":
        return "a scalar"
    if t[0] == "t":
        known = any(dims.value(d) is not None for d in t[1:])
        return f"a {len(t) - 1}-tensor" + (f" ({' x '.join(dv(d) for d in t[1:])})" if known else "")
    if t[0] == "x":
        return "an entry in index notation"
    if t[0] in "cr":
        size = dims.value(t[1])
        word = "column" if t[0] == "c" else "row"
        return f"a {word} vector" + ("" if size is None else f" of length {g.dim_text(size)}")
    if dims.value(t[1]) is None and dims.value(t[2]) is None:
        return "a matrix"
    return f"a {dv(t[1])}x{dv(t[2])} matrix"


def _dim_walk(root: Ast) -> list[Ast]:
    """Post-order of the syntax tree, each node once, skipping the dimension arguments of eye/ones/zeros."""
    return post_order(root, dimensions=False)


@dataclass
class _Checked:
    mtypes: dict[int, MType]
    dims: _Dims
    var_dims: dict[str, tuple[int, ...]]
    cost: tuple[int, int, int]
    odd: int  # transposes of scalars that hold an undeclared variable
    # Undeclared bare names repeated over a tensor: (the name's node, the other operand, the node
    # doing it, the other operand's type).
    spread: list[tuple[Ast, Ast, Ast, MType]]
    # The dimension classes of the axes each index-notation leaf (A[i,j], delta(i,k)) indexes.
    index_dims: dict[int, tuple[int, ...]] = field(default_factory=dict)


class _Checker:
    """Type-checks the tree under one assignment of kinds, unifying dimensions."""

    def __init__(
        self,
        text: str | None,
        order: list[Ast],
        kinds: Mapping[str, str],
        declared: Mapping[str, Declared],
        undeclared: frozenset[str],
        dim_values: frozenset[str] = frozenset(),
        indices: Mapping[int, IndexInfo] | None = None,
    ):
        self.text = text
        self.index_info = indices or {}
        self.indices = IndexTyping(
            self.index_info, self.unify, self.dims_new, self.src, self.describe, lambda m, ast: _Mismatch(m, ast)
        )
        self.dim_values = dim_values
        self.order = order
        self.kinds = kinds
        self.declared = declared
        self.undeclared = undeclared
        self.dims = _Dims()
        self.named: dict[str, int] = {}
        # Equalities of a product dimension with a number or a name, checked at the end of run().
        self.deferred: list[tuple[int, int, Ast, Callable[[], str]]] = []

    def dims_new(self) -> int:
        return self.dims.new()

    def describe(self, t: MType) -> str:
        return _describe(t, self.dims)

    def src(self, ast: Ast) -> str:
        if self.text is None:
            return "operand"
        return quote(self.text, ast)

    def named_dim(self, d: g.Dim) -> int:
        key = str(d) if isinstance(d, str) else f"#{d}"
        if key not in self.named:
            self.named[key] = self.dims.new(d)
        return self.named[key]

    def unify(self, a: int, b: int, ast: Ast, message: Callable[[], str]) -> None:
        # The message is built only on failure: building it quotes operand text, and doing that
        # for every node of a long sum would cost time quadratic in the text's length.
        if not self.unified(a, b, ast, message):
            raise _Mismatch(message(), ast)

    def unified(self, a: int, b: int, ast: Ast, message: Callable[[], str]) -> bool:
        """``dims.unify``, keeping an equality it defers with the node and message to report."""
        before = len(self.dims.deferred)
        ok = self.dims.unify(a, b)
        for x, y in self.dims.deferred[before:]:
            self.deferred.append((x, y, ast, message))
        return ok

    def dimension(self, arg: Ast) -> int:
        """The dimension class of an argument of eye/ones/zeros: a name, a whole number, a product
        or a sum (``zeros(n + m)``, the length of a stack)."""
        if arg.op == "binary" and arg.value == "+":
            return self.dims.total(self.dimension(arg.args[0]), self.dimension(arg.args[1]))
        if arg.op == "binary":
            return self.dims.product(self.dimension(arg.args[0]), self.dimension(arg.args[1]))
        return self.named_dim(arg.symbol if arg.op == "name" else int(arg.number))

    def run(self) -> _Checked:
        mt: dict[int, MType] = {}
        loose: dict[int, bool] = {}  # the node contains an undeclared variable
        var_dims: dict[str, tuple[int, ...]] = {}
        broadcasts = 0
        right_scalars = 0
        odd = 0
        spread: list[tuple[Ast, Ast, Ast, MType]] = []
        for node in self.order:
            kids = [mt[id(c)] for c in node.args] if node.op != "call" or node.value not in DIMENSION_FUNCTIONS else []
            loose[id(node)] = any(loose[id(c)] for c in node.args) if kids else False
            if node.op == "idx" or id(node) in self.index_info:
                # Index notation (frontend/indices.py): an index is no value; the rest is typed there.
                mt[id(node)] = ("i",) if node.op == "idx" else self.indices.visit(node, mt)
                continue
            if self.index_info:
                # An operand in index notation is, here, the tensor its free indices make.
                kids = [plain_type(k[1:]) if k[0] == "x" else k for k in kids]
            if node.op == "num":
                t: MType = ("s",)
            elif node.op == "name" and node.value in self.dim_values:
                t = ("s",)  # the size of a named dimension (docs/conventions.md, "Dimensions")
            elif node.op == "name":
                t = self.variable(node, var_dims)
                loose[id(node)] = node.value in self.undeclared
            elif node.op == "transpose":
                (a,) = kids
                if a[0] == "t":
                    raise _Mismatch(
                        f"the transpose at column {node.column} is of {self.src(node.args[0])}, "
                        f"{_describe(a, self.dims)}; reorder a tensor's axes in index notation "
                        "(T[i,j,k] -> [k,j,i])",
                        node,
                    )
                if a[0] == "s" and loose[id(node)]:
                    odd += 1  # transposing a scalar is legal but not what people write
                t = {"s": a, "c": ("r", a[1]) if a[0] == "c" else a, "r": ("c", a[1]) if a[0] == "r" else a}.get(
                    a[0], ("m", a[2], a[1]) if a[0] == "m" else a
                )
            elif node.op == "unary":
                t = kids[0]
            elif node.op == "stack":
                t = self.stack(node, kids)
            elif node.op == "binary":
                a, b = kids
                t, broadcast = self.binary(node, a, b)
                if broadcast is not None and loose[id(node.args[broadcast])]:
                    broadcasts += 1
                    scalar, other = node.args[broadcast], node.args[1 - broadcast]
                    if scalar.op == "name":
                        spread.append((scalar, other, node, kids[1 - broadcast]))
                if node.value == "*" and b[0] == "s" and a[0] != "s" and loose[id(node)]:
                    right_scalars += 1
            else:
                t = self.call(node, kids)
                if t[0] != "s" and node.value in FUNCTIONS and FUNCTIONS[node.symbol].result == "broadcast":
                    # A scalar argument repeated over the other (max(b, x)) is a broadcast, as in b + x.
                    for c, k in zip(node.args, kids, strict=False):
                        if k[0] == "s" and loose[id(c)]:
                            broadcasts += 1
                            if c.op == "name":
                                spread.append((c, node, node, t))
            mt[id(node)] = t
        for x, y, ast, message in self.deferred:
            if not self.dims.settled(x, y):
                raise _Mismatch(message(), ast)
        deviations = sum(_deviation(name, self.kinds[name]) for name in self.undeclared)
        return _Checked(mt, self.dims, var_dims, (broadcasts, deviations, right_scalars), odd, spread, self.indices.raw)

    def stack(self, node: Ast, kids: list[MType]) -> MType:
        """``[a, b; c, d]`` of scalars: a column vector (one column), a row vector (one row), a
        matrix; ``[a]`` is ``a``. MATLAB's concatenation in one row or one column: ``[u; v; a]``
        of columns and scalars is a column of length n + m + 1, ``[u', v']`` a row; ``[u, v]``
        of columns of one length is an n x 2 matrix, ``[u'; v']`` 2 x n; ``[A; B]`` of matrices
        with as many columns (and rows ``x'`` among them) stacks rows, ``[A, B]`` columns."""
        rows, columns = (int(n) for n in node.symbol.split("x"))
        if rows * columns == 1:
            return kids[0]
        if any(kid[0] != "s" for kid in kids):
            return self.concatenation(node, kids, rows, columns)
        if columns == 1:
            return ("c", self.named_dim(rows))
        if rows == 1:
            return ("r", self.named_dim(columns))
        return ("m", self.named_dim(rows), self.named_dim(columns))

    def concatenation(self, node: Ast, kids: list[MType], rows: int, columns: int) -> MType:
        """The type of a stack that holds vectors or matrices (see :meth:`stack`)."""
        kinds = {kid[0] for kid in kids}
        vertical = columns == 1
        along, across = ("c", "r") if vertical else ("r", "c")

        def refuse(why: str, entry: Ast | None = None) -> _Mismatch:
            return _Mismatch(f"cannot stack {self.src(node)}: {why}", entry or node, node)

        if rows > 1 and columns > 1:
            raise refuse(
                "its entries are scalars when it has several rows and columns (block matrices are not supported)"
            )
        if kinds <= {"s", along}:
            # Vectors one after the other: a vector whose length is the sum of theirs.
            parts = [self.named_dim(1) if kid[0] == "s" else kid[1] for kid in kids]
            return (along, self.dims.total(*parts))
        if kinds <= {across, "m"}:
            # Rows under one another ([A; x']) or columns side by side ([A, x], [u, v]): one matrix.
            axis = 2 if vertical else 1  # the shared axis: columns when stacking rows
            width = next(kid[axis if kid[0] == "m" else 1] for kid in kids)
            parts = []
            for entry, kid in zip(node.args, kids, strict=True):
                shared = kid[axis] if kid[0] == "m" else kid[1]

                def uneven(entry: Ast = entry, kid: MType = kid) -> str:
                    return (
                        f"cannot stack {self.src(node)}: its entries need as many "
                        f"{'columns' if vertical else 'rows'}, but {self.src(entry)} is {_describe(kid, self.dims)}"
                    )

                self.unify(width, shared, entry, uneven)
                parts.append(kid[3 - axis] if kid[0] == "m" else self.named_dim(1))
            total = self.dims.total(*parts)
            return ("m", total, width) if vertical else ("m", width, total)
        entry, kid = next(
            (e, k) for e, k in zip(node.args, kids, strict=True) if k[0] not in ({"s", along} & kinds or {"m", across})
        )
        arrangement = "one column" if vertical else "one row"
        raise refuse(
            f"in {arrangement} the entries are scalars and {'column' if vertical else 'row'} vectors (one longer "
            f"vector), or matrices and {'row' if vertical else 'column'} vectors (one matrix), but "
            f"{self.src(entry)} is {_describe(kid, self.dims)}",
            entry,
        )

    def variable(self, node: Ast, var_dims: dict[str, tuple[int, ...]]) -> MType:
        name = node.symbol
        kind = self.kinds[name]
        if name not in var_dims:
            decl = self.declared.get(name)
            shape = decl.shape if decl is not None else None
            if kind == "scalar":
                var_dims[name] = ()
            elif kind == "tensor":
                order = len(shape) if shape else (decl.order if decl is not None and decl.order else 3)
                var_dims[name] = (
                    tuple(self.named_dim(d) for d in shape) if shape else tuple(self.dims.new() for _ in range(order))
                )
            elif kind == "vector":
                var_dims[name] = (self.named_dim(shape[0]) if shape else self.dims.new(),)
            else:
                rows = self.named_dim(shape[0]) if shape else self.dims.new()
                cols = self.named_dim(shape[1]) if shape else self.dims.new()
                if kind == "symmetric":
                    given = "x".join(map(str, shape)) if shape else "not square"
                    self.unify(
                        rows, cols, node, lambda: f"{name} is declared symmetric but its shape {given} is not square"
                    )
                var_dims[name] = (rows, cols)
        d = var_dims[name]
        return {"scalar": ("s",), "vector": ("c",) + d, "tensor": ("t",) + d}.get(kind, ("m",) + d)

    def binary(self, node: Ast, a: MType, b: MType) -> tuple[MType, int | None]:
        """The type of ``a op b`` and which operand (0/1) was a broadcast scalar, if any."""
        op = node.symbol
        la, lb = node.args
        col = node.column
        if op in ("+", "-", ".*", "./", ".^", ">", "<"):
            if a[0] == "s" and b[0] != "s":
                return b, 0
            if b[0] == "s" and a[0] != "s":
                return a, 1
            if {a[0], b[0]} in ({"m", "c"}, {"m", "r"}):
                # MATLAB's implicit expansion: a column is repeated along the matrix's columns,
                # a row along its rows (W*X + b adds b to every column).
                return self.expanded(node, a, b, lambda: self.size_message(node, a, b, _EXPANSION_RULE)), (
                    0 if a[0] != "m" else 1
                )
            if a[0] != b[0]:
                verb = {"+": "add", "-": "subtract", ">": "compare", "<": "compare"}.get(op, f"apply '{op}' to")
                hint = ""
                if {a[0], b[0]} == {"c", "r"}:
                    # MATLAB would expand both to a matrix; a column plus a row is far more often a
                    # missing transpose, so the outer sum is written out (docs/conventions.md).
                    hint = f"; transpose one of them{self.outer_hint(node, a, b)}"
                raise _Mismatch(
                    f"shape mismatch at column {col}: cannot {verb} {self.src(la)} ({_describe(a, self.dims)}) "
                    f"and {self.src(lb)} ({_describe(b, self.dims)}){hint}",
                    node,
                )
            for da, db in zip(a[1:], b[1:], strict=True):
                self.unify(da, db, node, lambda: self.size_message(node, a, b, "have different shapes"))
            return a, None
        if op == "*":
            return self.product(node, a, b), None
        if op == "/":
            if b[0] != "s":
                raise _Mismatch(
                    f"'/' at column {col} divides by a scalar, but {self.src(lb)} is {_describe(b, self.dims)}; "
                    f"use './' for element-wise division",
                    node,
                )
            return a, None
        if op == "^":
            for side, t in ((la, a), (lb, b)):
                if t[0] != "s":
                    raise _Mismatch(
                        f"'^' at column {col} is the power of a scalar, but {self.src(side)} is "
                        f"{_describe(t, self.dims)}; use '.^' for an element-wise power",
                        node,
                    )
            return a, None
        raise AssertionError(op)  # pragma: no cover

    def outer_hint(self, node: Ast, a: MType, b: MType) -> str:
        """How to write what MATLAB would make of a column and a row: every pair of entries."""
        la, lb = node.args

        def length(t: MType, fallback: str) -> str:
            v = self.dims.value(t[1])
            return fallback if v is None else g.dim_text(v)

        x, y = self.src(la), self.src(lb)
        if a[0] == "c":
            left, right = f"{x}*ones({length(b, 'n')})'", f"ones({length(a, 'm')})*{y}"
        else:
            left, right = f"ones({length(b, 'm')})*{x}", f"{y}*ones({length(a, 'n')})'"
        return f"; for the matrix of every pair of entries write ({left}) {node.symbol} ({right})"

    def expanded(self, node: Ast, a: MType, b: MType, message: Callable[[], str]) -> MType:
        """The matrix that ``a op b`` of a matrix and a vector is, the vector's length unified with
        the matrix's rows (a column) or columns (a row)."""
        matrix, vector = (a, b) if a[0] == "m" else (b, a)
        axis = 1 if vector[0] == "c" else 2
        self.unify(vector[1], matrix[axis], node, message)
        return matrix

    def size_message(self, node: Ast, a: MType, b: MType, what: str) -> str:
        la, lb = node.args
        return (
            f"shape mismatch at column {node.column}: {self.src(la)} is {_describe(a, self.dims)} but "
            f"{self.src(lb)} is {_describe(b, self.dims)}; they {what}"
        )

    def product(self, node: Ast, a: MType, b: MType) -> MType:
        la, lb = node.args
        if a[0] == "s":
            return b
        if b[0] == "s":
            return a
        ka, kb = a[0], b[0]
        inner: tuple[int, int] | None = None
        result: MType | None = None
        if ka == "c" and kb == "r":
            return ("m", a[1], b[1])
        if ka == "r" and kb == "c":
            inner, result = (a[1], b[1]), ("s",)
        elif ka == "m" and kb == "c":
            inner, result = (a[2], b[1]), ("c", a[1])
        elif ka == "r" and kb == "m":
            inner, result = (a[1], b[1]), ("r", b[2])
        elif ka == "m" and kb == "m":
            inner, result = (a[2], b[1]), ("m", a[1], b[2])
        if inner is None or result is None:
            hint = ""
            if "t" in (ka, kb):
                hint = "; write a product with a tensor in index notation, e.g. sum_k T[i,j,k]*x[k]"
            if ka == kb == "c":
                x, y = self.src(la), self.src(lb)
                hint = f"; did you mean {x}'*{y} (inner product), {x}*{y}' (outer) or {x}.*{y} (element-wise)?"
            elif ka == kb == "r":
                hint = "; transpose one of them"
            raise _Mismatch(
                f"shape mismatch at column {node.column}: cannot multiply {self.src(la)} "
                f"({_describe(a, self.dims)}) by {self.src(lb)} ({_describe(b, self.dims)}){hint}",
                node,
            )
        da, db = inner

        def message() -> str:
            left = self.src(la)
            right = self.src(lb)
            ncols = self.dims.value(da)
            nrows = self.dims.value(db)
            return (
                f"shape mismatch at column {node.column}: {left} is {_describe(a, self.dims)} but {right} is "
                f"{_describe(b, self.dims)}; {left} has {ncols} columns and {right} has {nrows} rows"
            )

        self.unify(da, db, node, message)
        return result

    def call(self, node: Ast, kids: list[MType]) -> MType:
        name = node.symbol
        if name in DIMENSION_FUNCTIONS:
            dims = [self.dimension(arg) for arg in node.args]
            if name == "eye":
                return ("m", dims[0], dims[0])
            if name == "commutation":
                # K of an m x n matrix is (m*n) x (m*n). Products unify factor by factor, so the
                # factors are in the order flattening puts them where K meets a Kronecker
                # product: kron(Q, P)*commutation(m, n), P with m rows or columns, Q with n.
                m, n = dims
                return ("m", self.dims.product(m, n), self.dims.product(n, m))
            return plain_type(tuple(dims))
        if name in FUNCTIONS:
            return self.registered(node, kids)
        if name == "sum" and len(node.args) == 2:
            return self.reduced(node, kids[0]) if self.along(node, kids[0]) else ("s",)
        (a,) = kids
        arg = node.args[0]

        def need(ok: bool, what: str) -> None:
            if not ok:
                raise _Mismatch(
                    f"{name} at column {node.column} needs {what}, but {self.src(arg)} is {_describe(a, self.dims)}",
                    node,
                )

        if name in ("vector", "matrix"):
            need(a[0] == "s", "a scalar")
            return ("c", self.dims.new()) if name == "vector" else ("m", self.dims.new(), self.dims.new())
        if name in ("sum",):
            return ("s",)
        if name == "tr":
            need(a[0] == "m", "a square matrix")
            self.unify(
                a[1],
                a[2],
                node,
                lambda: (
                    f"tr at column {node.column} needs a square matrix, but "
                    f"{self.src(arg)} is {_describe(a, self.dims)}"
                ),
            )
            return ("s",)
        if name == "diag":
            need(a[0] != "s", "a vector or a square matrix")
            if a[0] in "cr":
                return ("m", a[1], a[1])
            self.unify(
                a[1],
                a[2],
                node,
                lambda: (
                    f"diag at column {node.column} needs a vector or a square matrix, "
                    f"but {self.src(arg)} is {_describe(a, self.dims)}"
                ),
            )
            return ("c", a[1])
        raise AssertionError(name)  # pragma: no cover - the parser knows no other function

    def along(self, node: Ast, a: MType) -> bool:
        """Whether the axis of ``node`` (its last argument, 1 or 2) runs along a matrix (True) or
        along a vector (False: the call is the vector's own, ``softmax(x, 1)`` of a column is
        ``softmax(x)``). Across a vector, where each entry stands alone, is an error."""
        dim = int(node.args[-1].number)
        if a[0] == "m":
            return True
        if (a[0], dim) in (("c", 1), ("r", 2)):
            return False
        way = "down the columns" if dim == 1 else "along the rows"
        arg = node.args[0]
        raise _Mismatch(
            f"{node.symbol} at column {node.column} along axis {dim} ({way}) needs a matrix or a "
            f"{'column' if dim == 1 else 'row'} vector, but {self.src(arg)} is {_describe(a, self.dims)}",
            node,
        )

    def reduced(self, node: Ast, a: MType) -> MType:
        """A matrix reduced along the axis of ``node``, oriented as MATLAB gives it: ``sum(X, 1)``
        of an m x n matrix is a 1 x n row, ``sum(X, 2)`` an m x 1 column."""
        return ("r", a[2]) if int(node.args[-1].number) == 1 else ("c", a[1])

    def registered(self, node: Ast, kids: list[MType]) -> MType:
        """The type of a call of a registry function, by its record's typing rule."""
        record = FUNCTIONS[node.symbol]
        if len(node.args) > record.arity and self.along(node, kids[0]):
            # Along an axis of a matrix: a reduction keeps the other axis, the others the shape.
            return self.reduced(node, kids[0]) if record.result == "scalar" else kids[0]
        for arg, a, kind in zip(node.args, kids, record.arguments, strict=False):

            def failed(arg: Ast = arg, a: MType = a, kind: str = kind) -> str:
                return (
                    f"{record.name} at column {node.column} needs {ARGUMENT_KINDS[kind]}, but "
                    f"{self.src(arg)} is {_describe(a, self.dims)}"
                )

            ok = {
                "any": a[0] != "t" or record.elementwise or record.result == "broadcast",
                "scalar": a[0] == "s",
                "vector": a[0] in "cr",
                "matrix": a[0] == "m",
                "square": a[0] == "m",
            }[kind]
            if not ok:
                raise _Mismatch(failed(), node)
            if kind == "square":
                self.unify(a[1], a[2], node, failed)
        if record.result == "product":
            return self.product_of(record, node, kids)
        if record.result == "broadcast":
            return self.broadcast_of(record, node, kids)
        return kids[0] if record.result == "same" else ("s",)

    def broadcast_of(self, record: FunctionRecord, node: Ast, kids: list[MType]) -> MType:
        """A "broadcast" result: ``max(a, b)`` of two tensors of one type is that type; a scalar
        argument is repeated over the other (``max(0, z)``)."""
        tensors = [(arg, a) for arg, a in zip(node.args, kids, strict=False) if a[0] != "s"]
        if not tensors:
            return ("s",)
        (first_arg, first), *rest = tensors
        for arg, a in rest:

            def message(arg: Ast = arg, a: MType = a, first_arg: Ast = first_arg, first: MType = first) -> str:
                hint = "; transpose one of them" if {a[0], first[0]} == {"c", "r"} else ""
                return (
                    f"{record.name} at column {node.column} needs arguments of one shape (or scalars), but "
                    f"{self.src(first_arg)} is {_describe(first, self.dims)} and {self.src(arg)} is "
                    f"{_describe(a, self.dims)}{hint}"
                )

            if {a[0], first[0]} in ({"m", "c"}, {"m", "r"}):
                # A vector beside a matrix is repeated over it (max(X, b)): the matrix leads.
                matrix = self.expanded(node, first, a, message)
                first_arg = first_arg if first[0] == "m" else arg
                first = matrix
                continue
            if a[0] != first[0]:
                raise _Mismatch(message(), node)
            for da, db in zip(first[1:], a[1:], strict=True):
                self.unify(da, db, node, message)
        return first

    def product_of(self, record: FunctionRecord, node: Ast, kids: list[MType]) -> MType:
        """A "product" result: ``kron(A, B)`` of m x n and p x q is (m*p) x (n*q); of two vectors
        of one orientation, a vector of length m*p; a vector with a matrix, or a column with a
        row, is the n x 1 or 1 x n matrix it is written as (``kron(x', eye(m))`` is m x (n*m))."""
        first = kids[0]
        if all(a[0] == first[0] for a in kids) and first[0] in "mcr":
            return (first[0], *(self.dims.product(*axis) for axis in zip(*(a[1:] for a in kids), strict=True)))
        if all(a[0] in "mcr" for a in kids):
            # A vector among matrices, or a column with a row, is the n x 1 (column) or 1 x n (row)
            # matrix it is written as: kron(x', eye(m)) is m x (n*m), kron(x, y') is x*y'.
            rows = [a[1] for a in kids if a[0] in "mc"]
            columns = [a[-1] for a in kids if a[0] in "mr"]
            return ("m", *(axis[0] if len(axis) == 1 else self.dims.product(*axis) for axis in (rows, columns)))
        given = " and ".join(
            f"{self.src(arg)} is {_describe(a, self.dims)}" for arg, a in zip(node.args, kids, strict=True)
        )
        raise _Mismatch(
            f"{record.name} at column {node.column} needs {record.product_arguments}, but {given}",
            node,
        )


_EXPANSION_RULE = (
    "a column vector is repeated along a matrix's columns and needs its number of rows, a row vector "
    "along its rows and needs its number of columns"
)


def quote(text: str, ast: Ast, width: int = 40) -> str:
    """The text of ``ast``, shortened to its two ends when longer than ``width``.

    Only the ends are sliced, so quoting a node that spans most of a long text costs O(width).
    """
    start, end = ast.start, ast.end
    if end - start <= width + 2 * 64:
        piece = text[start:end].strip()
        if len(piece) <= width:
            return piece
        return f"{piece[:20]} ... {piece[-15:]}"
    head = text[start : start + 64].lstrip()
    tail = text[end - 64 : end].rstrip()
    return f"{head[:20]} ... {tail[-15:]}"


GREEK = frozenset(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon "
    "phi chi psi omega eps lam".split()
)


def default_kind(name: str) -> str:
    """The kind a name has unless declared: matrixcalculus.org's convention.

    Names starting with a-g are scalars, h-z vectors, A-Z matrices; Greek names (alpha ...
    omega, eps, lam, lambda, with or without a numeric or ``_`` suffix) are scalars.

    >>> [default_kind(n) for n in ("b", "x", "W1", "alpha", "lam2")]
    ['scalar', 'vector', 'matrix', 'scalar', 'scalar']
    """
    stem = name.rstrip("0123456789").split("_")[0]
    if stem in GREEK:
        return "scalar"
    if name[:1].isupper():
        return "matrix"
    return "scalar" if "a" <= name[:1] <= "g" else "vector"


def _convention(name: str) -> str:
    """The convention's words for why ``name`` has its default kind."""
    if name.rstrip("0123456789").split("_")[0] in GREEK:
        return "Greek names are scalars"
    if name[:1].isupper():
        return "names A-Z are matrices"
    return "names a-g are scalars" if "a" <= name[:1] <= "g" else "names h-z are vectors"


def _deviation(name: str, kind: str) -> int:
    """How far ``kind`` departs from the convention for ``name``: a scalar read as a vector or a
    vector as a scalar is the smallest departure; anything to or from a matrix is larger."""
    default = default_kind(name)
    if kind == default:
        return 0
    return 1 if {default, kind} == {"scalar", "vector"} else 2


def _movable(name: str) -> bool:
    """Whether inference may move ``name`` off its default: lower-case names only. An upper-case
    name is a matrix unless declared, so ``softmax(Q*K')`` is an error, never a scalar Q."""
    return not name[:1].isupper()


@dataclass(frozen=True)
class Notice:
    """Something the reader should know about how a name was typed: ``render("python")`` or
    ``render("command line")`` gives the sentence with the fix in that place's syntax.

    >>> Notice("x is read as a scalar because x^3 needs one; declare {fix} to change that", "x", "vector").render()
    'x is read as a scalar because x^3 needs one; declare types={"x": "vector"} to change that'
    """

    template: str
    name: str
    kind: str

    def render(self, where: str = "python") -> str:
        if where == "command line":
            fix = f"--types {self.name}={self.kind}"
        else:
            fix = f'types={{"{self.name}": "{self.kind}"}}'
        return self.template.format(fix=fix)


def _article(kind: str) -> str:
    return {"scalar": "a scalar", "vector": "a vector", "matrix": "a matrix", "symmetric": "a symmetric matrix"}[kind]


# ------------------------------------------------------------------------------ inference


def infer(ast: Ast, text: str | None, types: Mapping[str, Any] | None = None) -> tuple[g.Node, dict[str, g.Var]]:
    """Type ``ast`` and build its graph; returns the root node and the variables by name."""
    node, variables, _ = infer_with_form(ast, text, types)
    return node, variables


def infer_with_form(
    ast: Ast, text: str | None, types: Mapping[str, Any] | None = None
) -> tuple[g.Node, dict[str, g.Var], str]:
    """:func:`infer`, plus the matrix-level form of the result: ``"s"`` (scalar), ``"c"`` (column
    vector), ``"r"`` (row vector) or ``"m"`` (matrix); the graph alone does not tell ``x`` from
    ``x'``, and the Python builders need that to type ``x.T @ A``."""
    node, variables, form, _ = infer_with_notices(ast, text, types)
    return node, variables, form


def infer_with_notices(
    ast: Ast,
    text: str | None,
    types: Mapping[str, Any] | None = None,
    *,
    subtrees: dict[int, tuple[Ast, g.Node]] | None = None,
) -> tuple[g.Node, dict[str, g.Var], str, tuple[Notice, ...]]:
    """:func:`infer_with_form`, plus the notices: each name read off its default kind (with the
    reason), and each undeclared scalar that is repeated over a tensor (a bias meant as a vector?).

    ``subtrees``: filled, when given, with ``id(ast) -> (ast, node)`` for each subtree as typed
    and the graph node built for it (an explanation follows the expression as it was written)."""
    if types is not None and not isinstance(types, Mapping):
        raise InferenceError(f"types is a mapping such as {{'A': 'symmetric matrix'}}, not {type(types).__name__}")
    declared = {name: declare(name, spec) for name, spec in (types or {}).items()}
    ast = read_declared_notation(ast, declared)
    if text is not None:
        text = flatten(text)  # the columns stay; carets line up under one line
    order = _dim_walk(ast)
    index_info = analyse(order, text)
    dim_values = _dimension_values(order, declared)
    names: list[str] = []
    for node in order:
        if node.op == "name" and node.value not in names and node.value not in dim_values:
            names.append(node.symbol)
    forced = _forced_kinds(order, declared)
    undeclared = [n for n in names if n not in declared]
    free = [n for n in undeclared if n not in forced]
    base = {n: declared[n].kind for n in names if n in declared}
    base.update({n: forced[n][0] for n in undeclared if n in forced})
    base.update({n: default_kind(n) for n in free})
    loose = frozenset(undeclared)
    movable = [n for n in free if _movable(n)]

    def check(kinds: Mapping[str, str]) -> _Checked:
        return _Checker(text, order, kinds, declared, loose, dim_values, index_info).run()

    # The default reading wins whenever it type-checks (broadcasts included: x - sum(x) keeps x a
    # vector). Otherwise the fewest names move, each by the smallest step.
    solutions: list[tuple[tuple[int, int, int], dict[str, str], _Checked]] = []
    first_error: _Mismatch | None = None
    checks = 0
    for depth in range(0, min(len(movable), 3) + 1):
        for chosen in itertools.combinations(movable, depth):
            alternatives = [[k for k in ("scalar", "vector", "matrix") if k != base[n]] for n in chosen]
            for picks in itertools.product(*alternatives):
                kinds = dict(base)
                kinds.update(zip(chosen, picks, strict=True))
                checks += 1
                try:
                    result = check(kinds)
                except _Mismatch as exc:
                    if first_error is None:
                        first_error = exc
                    continue
                if depth and result.odd:
                    # Making a transposed name a scalar is not a reading we offer.
                    continue
                cost = (result.cost[1], result.cost[0], result.cost[2])
                solutions.append((cost, kinds, result))
        if solutions or checks > _MAX_CHECKS:
            break
    if not solutions:
        assert first_error is not None
        kind_error = bool(free) and _kind_error(first_error)
        err_cls = InferenceError if kind_error else ShapeError
        message = first_error.message
        if kind_error:
            message += _readings([n for n in free if n in _names_under(first_error.ast)] or free, message)
        raise err_cls(
            message,
            text=text,
            column=first_error.ast.column if first_error.ast is not None and text else None,
        )
    solutions.sort(key=lambda s: s[0])
    best_cost, best_kinds, best = solutions[0]
    rivals = [k for c, k, _ in solutions[1:] if c == best_cost]
    if rivals:
        differing = [n for n in free if any(r[n] != best_kinds[n] for r in rivals)]
        options = "; ".join(", ".join(f"{n} {kinds[n]}" for n in differing) for kinds in [best_kinds, *rivals])
        # Point at the first occurrence of the first undecided name.
        first = min(
            (node for node in order if node.op == "name" and node.value == differing[0]), key=lambda node: node.start
        )
        raise InferenceError(
            f"ambiguous types for {', '.join(differing)} (column {first.column}): the expression type-checks "
            f"with {options}. Declare them, e.g. types={{{differing[0]!r}: {best_kinds[differing[0]]!r}}}",
            text=text,
            column=first.column if text else None,
        )
    root, variables = _build(order, best_kinds, best, declared, names, text, subtrees, index_info)
    form: str = best.mtypes[id(order[-1])][0]
    if form == "x":  # a tensor written in index notation, its free indices its axes
        form = plain_type(tuple(range(root.rank)))[0]
    notices = _notices(undeclared, forced, best_kinds, best, first_error, text)
    return root, variables, form, notices


def _escaped(piece: str) -> str:
    return piece.replace("{", "{{").replace("}", "}}")


def _names_under(ast: Ast | None) -> set[str]:
    found: set[str] = set()
    stack = [ast] if ast is not None else []
    while stack:
        node = stack.pop()
        if node.op == "name":
            found.add(node.symbol)
        stack.extend(node.args)
    return found


def _readings(free: list[str], message: str) -> str:
    """How an ill-typed expression's undeclared names were read, and how to read them otherwise."""
    groups: dict[str, list[str]] = {}
    for name in free:
        groups.setdefault(default_kind(name), []).append(name)
    plural = {"scalar": "scalars", "vector": "vectors", "matrix": "matrices"}
    parts = [
        f"{', '.join(ns)} {plural[k] if len(ns) > 1 else _article(k)} ({_convention(ns[0])})"
        for k, ns in groups.items()
    ]
    example = free[0]
    # The kind the failing operation asked for, where the message says it.
    wanted = [k for k in ("scalar", "vector", "matrix") if f"needs a {k}" in message or f"of a {k}" in message]
    other = wanted[0] if wanted else ("vector" if default_kind(example) != "vector" else "matrix")
    return (
        f". Undeclared names are read by the convention: {'; '.join(parts)}; if you meant other kinds, "
        f'declare them (e.g. types={{"{example}": "{other}"}})'
    )


def _spread_text(op: str, scalar: Ast, node: Ast, other: str) -> str:
    right = node.op == "binary" and node.args[1] is scalar
    if op == "+":
        return f"added to every entry of {other}"
    if op == "-":
        return f"subtracted from every entry of {other}" if right else f"minus every entry of {other}"
    if op == ".*":
        return f"multiplying every entry of {other}"
    return f"repeated over every entry of {other}"


def _notices(
    undeclared: list[str],
    forced: Mapping[str, tuple[str, Ast]],
    kinds: Mapping[str, str],
    best: _Checked,
    default_error: _Mismatch | None,
    text: str | None,
) -> tuple[Notice, ...]:
    """The notices of a typing (see :func:`infer_with_notices`), in the order of the names."""

    def src(ast: Ast | None) -> str:
        return "the expression" if text is None or ast is None else _escaped(quote(text, ast))

    notices: list[Notice] = []
    moved: set[str] = set()
    for name in undeclared:
        default, kind = default_kind(name), kinds[name]
        if kind == default:
            continue
        moved.add(name)
        if name in forced:
            why = f"{src(forced[name][1])} needs one"
        else:
            where = src(default_error.context if default_error else None)
            why = f"{where} does not type-check with {name} as {_article(default)}"
        notices.append(
            Notice(
                f"{name} is read as {_article(kind)} because {why} ({_convention(name)}); "
                "declare {fix} to change that",
                name,
                default,
            )
        )
    seen: set[str] = set()
    for scalar, other, node, other_type in best.spread:
        name = scalar.symbol
        if name in moved or name in seen or name not in kinds or kinds[name] != "scalar":
            continue
        seen.add(name)
        kind = "matrix" if other_type[0] == "m" else "vector"
        op = node.symbol if node.op == "binary" else ""
        what = _spread_text(
            op, scalar, node, src(other) if other is not node else f"the other arguments of {src(node)}"
        )
        purpose = (
            "for a bias vector" if op in ("+", "-") and kind == "vector" else f"for {_article(kind)} of that shape"
        )
        notices.append(
            Notice(f"{name} is a scalar {what} ({_convention(name)}); declare {{fix}} {purpose}", name, kind)
        )
    return tuple(notices)


def _dimension_values(order: list[Ast], declared: Mapping[str, Declared]) -> frozenset[str]:
    """Names that read as the size of a dimension: a named dimension of the expression (in a
    declared shape, ``types={"x": ("n",)}``, or an argument of eye/ones/zeros) used as a value,
    and not itself declared a variable. ``sum(x)/n`` is then the mean of x."""
    named: set[str] = set()
    for decl in declared.values():
        named.update(d for d in decl.shape or () if isinstance(d, str))
    for node in order:
        if node.op == "call" and node.value in DIMENSION_FUNCTIONS:
            stack = list(node.args)
            while stack:
                arg = stack.pop()
                if arg.op == "name":
                    named.add(arg.symbol)
                stack.extend(arg.args)
    used = {node.symbol for node in order if node.op == "name"}
    return frozenset(name for name in named & used if name not in declared)


def _kind_error(exc: _Mismatch) -> bool:
    return "cannot" in exc.message or "needs" in exc.message or "'^'" in exc.message


_FORCED = {"matrix": "matrix", "square": "matrix", "scalar": "scalar"}


def _forced_kinds(order: list[Ast], declared: Mapping[str, Declared]) -> dict[str, tuple[str, Ast]]:
    """Kinds that the expression forces on bare lower-case names (the base of ^ is a scalar, ...),
    each with the node that forces it; ``order`` is the tree's :func:`_dim_walk`, walked once for
    all of inference. Upper-case names stay matrices (``A^2`` is then an error saying so)."""
    forced: dict[str, tuple[str, Ast]] = {}
    for node in order:
        wanted: list[tuple[Ast, str]] = []
        if node.op == "binary" and node.value == "^":
            wanted = [(node.args[0], "scalar"), (node.args[1], "scalar")]
        elif node.op == "call" and node.value in FUNCTIONS:
            # An argument that must be a matrix (or a scalar) makes a bare name one.
            kinds = FUNCTIONS[node.symbol].arguments
            wanted = [(a, _FORCED[k]) for a, k in zip(node.args, kinds, strict=False) if k in _FORCED]
        elif node.op == "call" and node.value == "tr":
            wanted = [(node.args[0], "matrix")]
        elif node.op == "call" and node.value in ("vector", "matrix"):
            wanted = [(node.args[0], "scalar")]
        for arg, kind in wanted:
            if arg.op == "name" and arg.value not in declared and (_movable(arg.symbol) or kind == "matrix"):
                forced.setdefault(arg.symbol, (kind, node))
    return forced


# ------------------------------------------------------------------------------ building


def _name_dims(checked: _Checked, names: list[str], var_names: set[str]) -> dict[int, g.Dim]:
    dims = checked.dims
    taken = {v for v in dims.fixed if isinstance(v, str)} | var_names
    pool = fresh_dimension_names(taken)
    resolved: dict[int, g.Dim] = {}

    def name_of(d: int) -> g.Dim:
        root = dims.find(d)
        if root not in resolved:
            fixed = dims.fixed[root]
            if isinstance(fixed, _Product | _Sum):
                resolved[root] = _combined(fixed, [name_of(f) for f in fixed.factors])
            else:
                resolved[root] = fixed if fixed is not None else next(pool)
        return resolved[root]

    for name in names:
        axes = checked.var_dims.get(name, ())
        for d in reversed(axes):  # a matrix's columns before its rows
            name_of(d)
    for t in checked.mtypes.values():
        for d in t[1:]:
            name_of(d)
    return {d: name_of(d) for d in range(len(dims.parent))}


def _build(
    order: list[Ast],
    kinds: Mapping[str, str],
    checked: _Checked,
    declared: Mapping[str, Declared],
    names: list[str],
    text: str | None = None,
    subtrees: dict[int, tuple[Ast, g.Node]] | None = None,
    index_info: Mapping[int, IndexInfo] | None = None,
) -> tuple[g.Node, dict[str, g.Var]]:
    dimname = _name_dims(checked, names, set(names))
    index_info = index_info or {}

    def raw_dims(ast: Ast) -> tuple[g.Dim, ...]:
        return tuple(dimname[d] for d in checked.index_dims[id(ast)])

    variables: dict[str, g.Var] = {}
    for name in names:
        shape = tuple(dimname[d] for d in checked.var_dims[name])
        variables[name] = g.var(name, kinds[name], shape)
    nodes: dict[int, g.Node] = {}
    # An operand in index notation is, to matrix notation, the tensor its free indices make.
    mt = {k: plain_type(t[1:]) if t[0] == "x" else t for k, t in checked.mtypes.items()}
    # A chain a + b - c + ... is built once at its top as one sum: linear in its length. A sum
    # used more than once (a `where` binding) is built on its own; g.add flattens it all the same.
    parents: dict[int, int] = {}
    for ast in order:
        for arg in ast.args:
            parents[id(arg)] = parents.get(id(arg), 0) + 1
    inner_sums = {id(a.args[0]) for a in order if _is_sum(a) and _is_sum(a.args[0]) and parents[id(a.args[0])] == 1}
    for ast in order:
        if ast.op == "idx":
            continue
        if id(ast) in index_info:
            built = build_indexed(ast, index_info[id(ast)], nodes, index_info, raw_dims, text)
            if built is not None:
                nodes[id(ast)] = built
            continue
        if id(ast) in inner_sums:
            continue
        if _is_sum(ast):
            nodes[id(ast)] = _build_sum(ast, nodes, mt, inner_sums)
            continue
        if ast.op == "call" and ast.value == "commutation":
            nodes[id(ast)] = g.commutation(*(_dimension_of(arg) for arg in ast.args))
            continue
        if ast.op == "call" and ast.value in DIMENSION_FUNCTIONS:
            t = mt[id(ast)]
            shape = tuple(dimname[d] for d in t[1:])
            maker = {"eye": lambda s: g.delta(s[0]), "ones": g.ones, "zeros": g.zeros}[ast.symbol]
            nodes[id(ast)] = maker(shape)
            continue
        kids = [nodes[id(c)] for c in ast.args]
        node: g.Node
        if ast.op == "num":
            node = g.const(ast.number)
        elif ast.op == "name":
            node = g.size_of(ast.symbol) if ast.symbol not in variables else variables[ast.symbol]
        elif ast.op == "transpose":
            node = g.transpose(kids[0])
        elif ast.op == "unary":
            node = g.scale(-1, kids[0]) if ast.value == "-" else kids[0]
        elif ast.op == "stack":
            node = stack(ast, kids, [mt[id(c)][0] for c in ast.args])
        elif ast.op == "binary":
            a, b = ast.args
            _check_division(ast, kids[0], kids[1], text)
            node = binary(ast.symbol, kids[0], kids[1], mt[id(a)], mt[id(b)])
            _check_constant(ast, node, text)
        else:
            t = mt[id(ast)]
            node = call(ast, kids, tuple(dimname[d] for d in t[1:]), [mt[id(c)] for c in ast.args])
        nodes[id(ast)] = node
    if subtrees is not None:
        subtrees.update({id(ast): (ast, nodes[id(ast)]) for ast in order if id(ast) in nodes})
    return nodes[id(order[-1])], variables


def stack(ast: Ast, entries: list[g.Node], forms: list[str]) -> g.Node:
    """The node of a stack ``[...]`` given its entries and their forms (see ``_Checker.stack``)."""
    rows, columns = (int(n) for n in ast.symbol.split("x"))
    if rows * columns == 1:
        return entries[0]  # [x] is x, whatever x is
    if all(f == "s" for f in forms):
        return g.stack(entries, rows, columns)
    vertical = columns == 1
    along = "c" if vertical else "r"
    if all(f in ("s", along) for f in forms):
        return g.concatenate(entries)  # one longer vector
    return g.concatenate(entries, 0 if vertical else 1, matrix=True)


def _dimension_of(arg: Ast) -> g.Dim:
    """The dimension a dimension argument names: a name (never renamed), a whole number, or a
    product of those (``m*p``)."""
    if arg.op == "binary":
        return g.dim_product(_dimension_of(arg.args[0]), _dimension_of(arg.args[1]))
    return arg.symbol if arg.op == "name" else int(arg.number)


def _check_division(ast: Ast, a: g.Node, b: g.Node, text: str | None) -> None:
    """A division by a constant zero (``x/0``, ``x./(0*y)``, ``0^-1``) is an error at its column,
    not a ``ZeroDivisionError`` from folding the constant or an ``inf`` at evaluation."""
    if ast.value in ("/", "./") and (g.is_zero(b) or _exact_value(b) == 0):
        divisor = ast.args[1]
        column = divisor.start + 1
        what = "" if divisor.op == "num" or text is None else f": {quote(text, divisor)} is 0"
        raise ParseError(f"division by zero at column {column}{what}", text=text, column=column if text else None)
    if ast.value in ("^", ".^") and (g.is_zero(a) or _exact_value(a) == 0) and isinstance(b, g.Const) and b.value < 0:
        column = ast.column
        where = f": {quote(text, ast)}" if text is not None else ""
        raise ParseError(
            f"division by zero at column {column}{where} is 0 to a negative power",
            text=text,
            column=column if text else None,
        )


def _exact_value(node: g.Node, budget: int = 64) -> Fraction | None:
    """The exact value of a small constant scalar expression such as ``1 + -1.^2``, else None.

    Sums of constants are not folded while parsing, so ``x ./ (1 - 1)`` needs this to be refused
    where it is written (simplification folds it later, into a ``0^-1`` that no longer parses)."""
    if budget <= 0 or node.shape:
        return None
    if isinstance(node, g.Const):
        return node.value
    if isinstance(node, g.Add):
        total = Fraction(0)
        for term in node.args:
            value = _exact_value(term, budget // max(len(node.args), 1))
            if value is None:
                return None
            total += value
        return total
    if isinstance(node, g.Contract):
        product = node.coeff
        for factor in node.args:
            value = _exact_value(factor, budget // max(len(node.args), 1))
            if value is None:
                return None
            product *= value
        return product
    if isinstance(node, g.Power):
        base, exponent = (_exact_value(arg, budget // 2) for arg in node.args)
        if base is None or exponent is None or exponent.denominator != 1 or abs(exponent) > 64:
            return None
        if base == 0:
            return None if exponent < 0 else Fraction(0 ** int(exponent))
        return base ** int(exponent)
    return None


# Folded constants stay within the doubles that evaluation uses (and far from the size where
# exact arithmetic on them gets slow): 1e200*1e200 is an error, not a 401-digit coefficient.
_MAX_CONSTANT_BITS = 8000


def _check_constant(ast: Ast, node: g.Node, text: str | None) -> None:
    problem = constant_problem(node)
    if problem is None:
        return
    column = ast.column
    what = f"the constant factor of {quote(text, ast)}" if text is not None else "a constant factor"
    raise ParseError(f"{what} at column {column} {problem}", text=text, column=column if text else None)


def constant_problem(node: g.Node) -> str | None:
    """Why the constant factor of ``node`` (a number or a contraction's coefficient) is out of
    range, e.g. ``"is too large (over 1.8e308)"``; None when it is fine (or there is none)."""
    if isinstance(node, g.Const):
        value = node.value
    elif isinstance(node, g.Contract):
        value = node.coeff
    else:
        return None
    top, bottom = value.numerator.bit_length(), value.denominator.bit_length()
    if top < 900 and bottom < 900:
        return None  # the common case: well inside the range of doubles
    try:
        approx = float(value)
    except OverflowError:
        approx = math.inf
    if math.isinf(approx):
        problem = "is too large (over 1.8e308)"
    elif approx == 0:
        problem = "is too small (under 4.9e-324, it would be 0)"
    elif top + bottom > _MAX_CONSTANT_BITS:
        problem = f"has too many digits (over {_MAX_CONSTANT_BITS * 3 // 10} in exact arithmetic)"
    else:
        return None
    return problem


def _is_sum(ast: Ast) -> bool:
    return ast.op == "binary" and ast.value in ("+", "-")


def _build_sum(top: Ast, nodes: dict[int, g.Node], mt: dict[int, MType], inner: set[int]) -> g.Node:
    terms: list[tuple[str, Ast]] = []
    node = top
    while id(node) in inner or node is top:
        terms.append((node.symbol, node.args[1]))
        node = node.args[0]
        if not _is_sum(node):
            break
    terms.append(("+", node))
    terms.reverse()
    # The sum's shape is its widest term's: scalars and (implicit expansion) vectors beside a
    # matrix are repeated over it, each term on its own (a + c + X is a*ones + c*ones' + X).
    widest = max((nodes[id(a)] for _, a in terms), key=lambda n: n.rank)
    shape = widest.shape if widest.rank != 1 else next(nodes[id(a)].shape for _, a in terms if nodes[id(a)].rank)
    parts = []
    for op, a in terms:
        term = expand(nodes[id(a)], mt[id(a)][0], shape)
        parts.append(g.scale(-1, term) if op == "-" else term)
    return g.add(parts)


def broadcast(scalar: g.Node, shape: g.Shape) -> g.Node:
    """``scalar`` repeated over ``shape``: a contraction with ``ones``."""
    if not shape:
        return scalar
    idx = tuple(range(len(shape)))
    return g.contract([scalar, g.ones(shape)], [(), idx], idx)


def expand(node: g.Node, form: str, shape: g.Shape) -> g.Node:
    """``node`` repeated over ``shape`` (MATLAB's implicit expansion): a scalar over every entry
    (:func:`broadcast`); a column vector (``form`` ``"c"``) along the columns of a matrix,
    ``b*ones(n)'``; a row vector (``"r"``) along its rows, ``ones(m)*b'``. Derivatives then sum
    over the repeated axis through the ``ones`` factor.

    >>> expand(g.var("b", "vector", ("m",)), "c", ("m", "n")).shape
    ('m', 'n')
    """
    if node.rank == len(shape):
        return node
    if node.rank == 0:
        return broadcast(node, shape)
    if form == "c":
        return g.contract([node, g.ones((shape[1],))], [(0,), (1,)], (0, 1))
    return g.contract([g.ones((shape[0],)), node], [(0,), (1,)], (0, 1))


def _form(t: MType, node: g.Node) -> str:
    """The matrix-level form of an operand: its type's when given, else read off its rank."""
    return t[0] if t else "scm"[node.rank]


def _elementwise_pair(a: g.Node, b: g.Node, ta: MType = (), tb: MType = ()) -> tuple[g.Node, g.Node]:
    if a.shape == b.shape:
        return a, b
    if a.rank > b.rank:
        return a, expand(b, _form(tb, b), a.shape)
    return expand(a, _form(ta, a), b.shape), b


def hadamard_or_scale(a: g.Node, b: g.Node) -> g.Node:
    la, lb = tuple(range(a.rank)), tuple(range(b.rank))
    if a.shape and b.shape:
        return g.contract([a, b], [la, la], la)
    return g.contract([a, b], [la, lb], la if a.shape else lb)


def reciprocal(x: g.Node) -> g.Node:
    return g.power(x, g.const(-1))


def binary(op: str, a: g.Node, b: g.Node, ta: MType, tb: MType) -> g.Node:
    """The node of ``a op b`` given both operands' matrix-level types."""
    if op == "+":
        return g.add(_elementwise_pair(a, b, ta, tb))
    if op == "-":
        x, y = _elementwise_pair(a, b, ta, tb)
        return g.add([x, g.scale(-1, y)])
    if op == "*":
        return product(a, b, ta, tb)
    if a.rank and b.rank and a.rank != b.rank:
        # Implicit expansion of a vector beside a matrix (W*X ./ b): the vector repeated first.
        a, b = _elementwise_pair(a, b, ta, tb)
    if op == "/" or op == "./":
        if isinstance(b, g.Const):
            return g.scale(1 / b.value, a)
        return hadamard_or_scale(a, reciprocal(b))
    if op == ".*":
        return hadamard_or_scale(a, b)
    if op in ("^", ".^"):
        if not a.shape and b.shape:
            a = broadcast(a, b.shape)
        return g.power(a, b)
    if op in (">", "<"):
        return g.compare(op, a, b)
    raise AssertionError(op)  # pragma: no cover


def product(a: g.Node, b: g.Node, ta: MType, tb: MType) -> g.Node:
    """The matrix product ``a*b`` as a contraction (scalar factors scale)."""
    if ta[0] == "s" or tb[0] == "s":
        return hadamard_or_scale(a, b)  # a scalar factor scales the other
    pattern = {
        ("c", "r"): (((0,), (1,)), (0, 1)),
        ("r", "c"): (((0,), (0,)), ()),
        ("m", "c"): (((0, 1), (1,)), (0,)),
        ("r", "m"): (((0,), (0, 1)), (1,)),
        ("m", "m"): (((0, 1), (1, 2)), (0, 2)),
    }[(ta[0], tb[0])]
    labels, out = pattern
    return g.contract([a, b], labels, out)


def call(ast: Ast, args: list[g.Node], shape: g.Shape, types: Sequence[MType] = ()) -> g.Node:
    """The node of a function call ``ast`` with argument nodes ``args`` whose result has ``shape``;
    ``types``: the arguments' matrix-level types (a row or a column of a matrix result, a vector
    expanded beside a matrix)."""
    name = ast.symbol
    if name in FUNCTIONS:
        record = FUNCTIONS[name]
        if record.result == "broadcast" and len(shape) == 2 and types:
            # max(X, b) of a matrix and a vector: the vector repeated over the matrix, as in X + b.
            args = [expand(a, t[0], shape) if a.rank == 1 else a for a, t in zip(args, types, strict=False)]
        if record.result == "product" and len(shape) == 2:
            # A vector argument of a matrix result is the 1 x n or n x 1 matrix it is written as.
            args = [
                g.reshape(x, (1, x.shape[0]) if t[0] == "r" else (x.shape[0], 1)) if x.rank == 1 else x
                for x, t in zip(args, types, strict=True)
            ]
        # A trailing whole number beyond the tensor arguments is the axis (see syntax.arity).
        extra = ast.args[record.arity :]
        # Along a vector the call is the vector's own (inference has checked the orientation).
        dim = int(extra[0].number) if extra and args[0].rank == 2 else None
        return g.apply(name, *args[: record.arity], dim=dim)
    x = args[0]
    if name == "sum":
        if len(ast.args) == 2 and x.rank == 2:
            # sum(X, 1): the columns' sums (the axis 1 summed), sum(X, 2): the rows'.
            return g.contract([x], [(0, 1)], (1,) if int(ast.args[1].number) == 1 else (0,))
        return g.contract([x], [tuple(range(x.rank))], ())
    if name == "tr":
        return g.contract([x], [(0, 0)], ())
    if name == "diag":
        if x.rank == 1:
            return g.contract([x, g.delta(x.shape[0])], [(0,), (0, 1)], (0, 1))
        return g.contract([x], [(0, 0)], (0,))
    if name in ("vector", "matrix"):
        return broadcast(x, shape)
    raise AssertionError(name)  # pragma: no cover - the parser knows no other function
