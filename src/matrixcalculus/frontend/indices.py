"""Index notation as input: ``sum_j A[i,j]*x[j]``, ``T[i,j,k]*u[i]*v[j]``, ``delta(i,k)``, ``-> [k,j]``.

The same notation the printer writes for results of order three or more (``render/index.py``),
read back into the same contractions. The rules (docs/conventions.md, "Tensors and index
notation"):

* ``A[i,j]`` is the entry of a value (a variable, or any expression in parentheses:
  ``(A*B)[i,j]``, ``exp(A*x)[i]``), one index per axis; ``delta(i,k)`` is the identity.
* A **term** is a product of factors (``*``, ``.*``, ``/``, ``./``, minus signs), not looking
  into parentheses:
  ``(A[i,j]*x[j])`` inside a product is one factor. In a term an index written once is free,
  an index written twice is summed (Einstein's convention), three times is an error unless the
  term says ``sum_i`` (``sum_i x[i]*y[i]*z[i]``). ``sum_jk`` sums j and k over the term it
  prefixes, also an index written once (``sum_j A[i,j]`` is a row sum).
* The free indices of an expression are in order of first appearance: they are its axes.
  ``body -> [k,j]`` gives them explicitly, in that order; an index listed there is never
  summed, however often it is written (``delta(i,j)*delta(i,k) -> [i,j,k]``, the diagonal
  tensor), and every index not listed must be summed.
* Terms added or compared have the same free indices (in any order); element-wise functions
  apply to entries (``tanh(T[i,j,k])``); numbers and scalars are factors without indices.
* Where matrix notation takes the value (after ``->``, under a transpose, as the argument of
  ``softmax``, ``inv`` ...), index notation is the tensor of its free indices in order, as at
  the top: ``inv(A[i,j]*B[j,k] -> [i,k])`` is ``inv(A*B)``; a matrix-notation term of a sum
  takes the free indices in order (``A[i,j]*B[j,k] + C`` is ``A*B + C``).

This module holds the syntactic part (which indices are free and which summed: :func:`analyse`),
the typing of index-notation nodes (:class:`IndexTyping`, used by ``infer._Checker`` so that
dimensions unify with the matrix-notation parts) and the building of their graph nodes
(:func:`build`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from matrixcalculus.errors import ParseError
from matrixcalculus.frontend.syntax import DIMENSION_FUNCTIONS, Ast, post_order
from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS

# Nodes that write index notation (an entry, the identity, a sum over indices).
INDEX_OPS = frozenset({"entry", "delta", "sum_over"})
_PRODUCT_OPS = frozenset({"*", ".*", "/", "./"})
_RECIPROCAL_OPS = frozenset({"/", "./"})


@dataclass
class IndexInfo:
    """What the syntax says about one node in index notation.

    ``free``: its free indices in order (the axes of its value); ``role``: ``"leaf"`` (an
    entry or a delta), ``"inner"`` (a product inside a term, handled at the term), ``"same"``
    (sum, comparison, power, unary minus, element-wise function: the free indices of its
    operands) or ``"output"`` (``-> [...]``, which ends index notation). A term (``factors``
    set) is a product, a sum over indices or a lone leaf: its factors with whether each is
    divided by, and the indices it sums.
    """

    free: tuple[str, ...]
    role: str
    raw: tuple[Ast, ...] = ()  # a leaf's indices as written ("idx" nodes)
    factors: tuple[tuple[Ast, bool], ...] = ()
    summed: frozenset[str] = field(default_factory=frozenset)
    sign: int = 1  # a term's minus signs


def uses_indices(order: list[Ast]) -> bool:
    """Whether a syntax tree (its post-order) writes index notation at all."""
    return any(node.op in INDEX_OPS or node.op == "output" for node in order)


def _is_product(node: Ast) -> bool:
    return node.op == "binary" and node.value in _PRODUCT_OPS


def _grouped(child: Ast, parent: Ast) -> bool:
    """Whether ``child`` stands in parentheses (or is a ``where`` binding) inside ``parent``: a
    group's text is widened to its parentheses, so it starts before its first operand."""
    if not child.args or child.start != child.args[0].start:
        return True
    return not (parent.start <= child.start and child.end <= parent.end)


def _continues(child: Ast, parent: Ast) -> bool:
    """Whether ``child`` is part of the term of ``parent`` (a product, a minus sign or a sum
    over indices): an unparenthesized product or minus sign."""
    if _is_product(child):
        return not _grouped(child, parent)
    if child.op == "unary":
        # Unparenthesized, a sign's text starts at the sign itself.
        return child.start == child.column - 1 and parent.start <= child.start and child.end <= parent.end
    return False


def _operands(node: Ast) -> tuple[Ast, ...]:
    """The expression arguments of a node (an index's "idx" children are not expressions)."""
    return tuple(a for a in node.args if a.op != "idx")


def _idx(node: Ast) -> tuple[Ast, ...]:
    return tuple(a for a in node.args if a.op == "idx")


def _closes(node: Ast) -> bool:
    """Whether ``node`` takes its operands in matrix notation: then an operand in index notation
    stands for its value, the tensor whose axes are its free indices in order (as at the top).
    ``-> [...]`` closes explicitly; a transpose, a stack and a function that is not applied
    entry by entry (``softmax``, ``inv``, ``tr`` ...) close too. ``sum(E)`` sums all entries."""
    if node.op in ("output", "transpose", "stack"):
        return True
    if node.op != "call" or node.value == "sum":
        return False
    record = FUNCTIONS.get(node.symbol)
    return record is None or not (record.elementwise or record.result == "broadcast")


class _Analysis:
    def __init__(self, order: list[Ast], text: str | None):
        self.order = order
        self.text = text
        self.info: dict[int, IndexInfo] = {}
        self.mode: dict[int, bool] = {}

    def error(self, message: str, column: int) -> ParseError:
        return ParseError(message, text=self.text, column=column if self.text is not None else None)

    def src(self, node: Ast) -> str:
        if self.text is None:
            return node.op
        piece = self.text[node.start : node.end].strip()
        return piece if len(piece) <= 40 else f"{piece[:20]} ... {piece[-15:]}"

    def run(self) -> dict[int, IndexInfo]:
        for node in self.order:
            # (The dimension arguments of eye/ones/zeros are not in the walk: .get.)
            self.mode[id(node)] = node.op in INDEX_OPS or (
                not _closes(node) and any(self.mode.get(id(a), False) for a in _operands(node))
            )
        keep = self._keep()
        # Products inside a term: every operand of a product in index notation that is itself an
        # unparenthesized product (the left one, products being left-associative).
        inner: set[int] = set()
        tops: list[Ast] = []
        for node in reversed(self.order):  # parents first: a sign inside a term passes it on
            if not self.mode[id(node)]:
                continue
            if _is_product(node) or node.op == "sum_over" or (node.op == "unary" and id(node) in inner):
                inner.update(id(a) for a in _operands(node) if _continues(a, node))
        factors: dict[int, tuple[tuple[Ast, bool], ...]] = {}
        signs: dict[int, int] = {}
        for node in self.order:
            if self.mode[id(node)] and id(node) not in inner and (_is_product(node) or node.op == "sum_over"):
                factors[id(node)], signs[id(node)] = self.factors(node)
                tops.append(node)
        factor_leaves = {id(f) for found in factors.values() for f, _ in found if f.op in ("entry", "delta")}
        for node in self.order:
            if node.op == "idx":
                continue
            if node.op == "output":
                self.output(node)
                continue
            if not self.mode[id(node)]:
                continue
            self.check_allowed(node)
            if id(node) in inner:
                self.info[id(node)] = IndexInfo((), "inner")
            elif node.op in ("entry", "delta"):
                raw = _idx(node)
                if id(node) in factor_leaves:
                    self.info[id(node)] = IndexInfo(tuple(i.symbol for i in raw), "leaf", raw=raw)
                else:
                    # A leaf that is no factor of a product is a term of its own (A[i,i] is a trace).
                    term = self.term(node, ((node, False),), keep.get(id(node), frozenset()))
                    self.info[id(node)] = IndexInfo(term.free, "leaf", raw, term.factors, term.summed)
            elif id(node) in factors:
                term = self.term(node, factors[id(node)], keep.get(id(node), frozenset()))
                term.sign = signs[id(node)]
                self.info[id(node)] = term
            else:
                self.info[id(node)] = self.same(node)
        return self.info

    def _keep(self) -> dict[int, frozenset[str]]:
        """The indices each node must keep free: those listed by the nearest ``-> [...]`` above it,
        and those an enclosing ``sum_ab`` sums (its term's parenthesised factors and terms use
        them, as often as they like: ``sum_a (delta(j,a)*f(v[a]))*v[a]``, the sum binding them)."""
        keep: dict[int, frozenset[str]] = {}
        for node in reversed(self.order):  # parents before children
            mine = keep.setdefault(id(node), frozenset())
            if node.op == "output":
                mine = frozenset(i.symbol for i in _idx(node))
            elif node.op == "sum_over":
                mine = mine | frozenset(i.symbol for i in _idx(node))
            elif node.op == "entry" or _closes(node):
                # (E)[b,c] and f(E)' use the value of E, whose free indices are its own (bound inside).
                mine = frozenset()
            for arg in _operands(node) if node.op != "call" or node.value not in DIMENSION_FUNCTIONS else ():
                keep.setdefault(id(arg), mine)
        return keep

    def check_allowed(self, node: Ast) -> None:
        if node.op == "binary" and node.value not in _PRODUCT_OPS | {"+", "-", ">", "<", "^", ".^"}:
            raise AssertionError(node.value)  # pragma: no cover - every operator is listed

    def factors(self, top: Ast) -> tuple[tuple[tuple[Ast, bool], ...], int]:
        """The factors of the term at ``top`` (a product or ``sum_jk``), with whether each
        divides, and the sign its minus signs make (``sum_i -Q[i,i]`` is a sum of -Q[i,i])."""
        found: list[tuple[Ast, bool]] = []
        sign = 1
        start = top.args[0] if top.op == "sum_over" else top
        if top.op == "sum_over" and not _continues(start, top):
            return ((start, False),), 1
        stack: list[tuple[Ast, bool, Ast]] = [(start, False, top)]
        while stack:
            node, divides, parent = stack.pop()
            if node is start or _continues(node, parent):
                if node.op == "unary":
                    sign *= -1 if node.value == "-" else 1
                    stack.append((node.args[0], divides, node))
                    continue
                left, right = node.args
                # The right operand first on the stack is popped last: factors left to right.
                stack.append((right, node.value in _RECIPROCAL_OPS, node))
                stack.append((left, False, node))
                continue
            found.append((node, divides))
        return tuple(found), sign

    def indices_of(self, factor: Ast) -> list[tuple[str, int]]:
        """The indices a factor brings to its term, each with the column to point at."""
        if factor.op in ("entry", "delta"):
            return [(i.symbol, i.column) for i in _idx(factor)]
        info = self.info.get(id(factor))
        if info is None or info.role == "output":
            return []
        return [(name, factor.column) for name in info.free]

    def term(self, top: Ast, factors: tuple[tuple[Ast, bool], ...], keep: frozenset[str]) -> IndexInfo:
        marked: list[Ast] = list(_idx(top)) if top.op == "sum_over" else []
        seen_marks: set[str] = set()
        for mark in marked:
            if mark.symbol in seen_marks:
                raise self.error(f"sum_{top.value} at column {top.column} names {mark.symbol} twice", mark.column)
            seen_marks.add(mark.symbol)
            if mark.symbol in keep:
                raise self.error(
                    f"{mark.symbol} is summed by sum_{top.value} at column {top.column} but is a free index "
                    "listed by -> [...]",
                    mark.column,
                )
        uses: dict[str, list[int]] = {}
        for factor, _ in factors:
            for name, column in self.indices_of(factor):
                uses.setdefault(name, []).append(column)
        for mark in marked:
            if mark.symbol not in uses:
                raise self.error(
                    f"sum_{top.value} at column {top.column} sums over {mark.symbol}, which its term "
                    f"{self.src(top.args[0])} does not use",
                    mark.column,
                )
        free: list[str] = []
        summed: set[str] = set(seen_marks)
        for name, columns in uses.items():
            if name in seen_marks:
                continue
            if name in keep or len(columns) == 1:
                free.append(name)
            elif len(columns) == 2:
                summed.add(name)
            else:
                raise self.error(
                    f"index {name} is used {len(columns)} times in the product {self.src(top)} "
                    f"(columns {', '.join(map(str, columns))}); an index is free (written once) or summed "
                    f"(twice). Write sum_{name} to sum over all its factors, or list the free indices with "
                    "-> [...]",
                    columns[2],
                )
        return IndexInfo(tuple(free), "same", factors=factors, summed=frozenset(summed))

    def same(self, node: Ast) -> IndexInfo:
        """Operands side by side (a sum, a comparison, a power, a function of entries): the same
        free indices, in the order of the first that has any. ``sum(E)`` sums all of E's."""
        if node.op == "call" and node.value == "sum":
            return IndexInfo((), "same")
        first: tuple[str, ...] | None = None
        first_node: Ast | None = None
        for arg in _operands(node):
            info = self.info.get(id(arg))
            if info is None or info.role == "output":
                continue
            if first is None:
                first, first_node = info.free, arg
            elif set(info.free) != set(first):
                assert first_node is not None
                word = "a sum of terms" if node.op == "binary" and node.value in ("+", "-") else f"{self.src(node)}"

                def listed(names: tuple[str, ...]) -> str:
                    return ", ".join(names) if names else "none"

                raise self.error(
                    f"the free indices differ in {word} at column {node.column}: {self.src(first_node)} has "
                    f"{listed(first)} and {self.src(arg)} has {listed(info.free)}; each term has the same free "
                    "indices",
                    node.column,
                )
        return IndexInfo(first or (), "same")

    def output(self, node: Ast) -> None:
        body = node.args[0]
        listed = _idx(node)
        names = [i.symbol for i in listed]
        for k, i in enumerate(listed):
            if i.symbol in names[:k]:
                raise self.error(f"-> [...] at column {node.column} lists {i.symbol} twice", i.column)
        info = self.info.get(id(body))
        if info is None:
            raise self.error(
                f"-> [...] at column {node.column} follows {self.src(body)}, which is not in index notation "
                "(write its entries, e.g. A[i,j])",
                node.column,
            )
        if set(info.free) != set(names):
            missing = [n for n in info.free if n not in names]
            extra = [n for n in names if n not in info.free]
            why = []
            if missing:
                why.append(f"{', '.join(missing)} free but not listed (sum it with sum_{''.join(missing)})")
            if extra:
                why.append(f"{', '.join(extra)} listed but not free in the expression")
            raise self.error(
                f"-> [{','.join(names)}] at column {node.column} does not match the free indices "
                f"({', '.join(info.free) or 'none'}): {'; '.join(why)}",
                node.column,
            )
        self.info[id(node)] = IndexInfo(tuple(names), "output")


def analyse(order: list[Ast], text: str | None) -> dict[int, IndexInfo]:
    """Which indices are free and which summed at each index-notation node of a syntax tree
    (``order``: its post-order); empty when the expression writes no index notation. Raises a
    :class:`ParseError` at the column of what is wrong (an index used three times, free
    indices that differ between terms, an output that does not match)."""
    if not uses_indices(order):
        return {}
    return _Analysis(order, text).run()


def rank_of(t: tuple) -> int:
    """The number of axes of a matrix-level type (``("s",)``, ``("c", d)``, ``("m", d, d)``, ``("t", ...)``)."""
    return 0 if t[0] == "s" else len(t) - 1


def plain_type(dims: tuple[int, ...]) -> tuple:
    """The matrix-level type of a value with these axes: a scalar, a column, a matrix, a tensor."""
    if not dims:
        return ("s",)
    return (("c", "m")[len(dims) - 1] if len(dims) <= 2 else "t", *dims)


class IndexTyping:
    """The types of index-notation nodes for one run of the type checker: an index-notation
    node has the type ``("x", d1, d2, ...)``, one dimension class per free index in order.

    ``unify(a, b, ast, message)``, ``new_dim()``, ``src(ast)`` and ``describe(t)`` are the
    checker's; a mismatch raises its exception through ``mismatch(message, ast)``.
    """

    def __init__(
        self,
        info: Mapping[int, IndexInfo],
        unify: Callable[[int, int, Ast, Callable[[], str]], None],
        new_dim: Callable[[], int],
        src: Callable[[Ast], str],
        describe: Callable[[tuple], str],
        mismatch: Callable[[str, Ast], Exception],
    ):
        self.info = info
        self.unify = unify
        self.new_dim = new_dim
        self.src = src
        self.describe = describe
        self.mismatch = mismatch
        self.raw: dict[int, tuple[int, ...]] = {}

    def visit(self, node: Ast, mt: Mapping[int, tuple]) -> tuple:
        info = self.info[id(node)]
        if info.role == "inner":
            return ("x",)
        if info.role == "output":
            body = node.args[0]
            body_free = self.info[id(body)].free
            dims = dict(zip(body_free, mt[id(body)][1:], strict=True))
            return plain_type(tuple(dims[name] for name in info.free))
        if node.op == "entry":
            self.raw[id(node)] = self.entry(node, mt)
        elif node.op == "delta":
            d = self.new_dim()
            self.raw[id(node)] = (d, d)
        if info.factors:
            return self.term(node, info, mt)
        if info.role == "leaf":
            return ("x", *self.raw[id(node)])
        return self.same(node, info, mt)

    def entry(self, node: Ast, mt: Mapping[int, tuple]) -> tuple[int, ...]:
        base = node.args[0]
        t = mt[id(base)]
        idx = _idx(node)
        if rank_of(t) != len(idx):
            fix = ""
            if base.op == "name" and len(idx) >= 3:
                fix = f'; declare it, e.g. types={{"{base.symbol}": "{len(idx)}-tensor"}}'
            raise self.mismatch(
                f"{self.src(node)} at column {node.column} needs {_with_axes(len(idx))} ({len(idx)} "
                f"ind{'ex' if len(idx) == 1 else 'ices'}), but {self.src(base)} is {self.describe(t)}{fix}",
                node,
            )
        dims = tuple(t[1:])
        first: dict[str, int] = {}
        for i, d in zip(idx, dims, strict=True):
            if i.symbol in first:
                self.same_dim(first[i.symbol], d, i, node)
            else:
                first[i.symbol] = d
        return dims

    def same_dim(self, a: int, b: int, at: Ast, where: Ast) -> None:
        self.unify(
            a,
            b,
            at,
            lambda: (
                f"index {at.symbol} at column {at.column} runs over two different dimensions in "
                f"{self.src(where)}: the axes it indexes have different lengths"
            ),
        )

    def uses(
        self, factor: Ast, mt: Mapping[int, tuple], aligned: tuple[str, ...] | None = None
    ) -> list[tuple[str, int, Ast]]:
        """The indices of a factor with their dimension classes and where they are written.

        ``aligned``: in a sum (or comparison, or max) with index-notation operands, the free
        indices a matrix-notation operand takes in order (``A[i,j]*B[j,k] + C`` is A*B + C)."""
        if factor.op in ("entry", "delta"):
            return [(i.symbol, d, i) for i, d in zip(_idx(factor), self.raw[id(factor)], strict=True)]
        info = self.info.get(id(factor))
        t = mt[id(factor)]
        if info is None or info.role == "output":
            if t[0] != "s" and aligned is not None and rank_of(t) == len(aligned):
                return [(name, d, factor) for name, d in zip(aligned, t[1:], strict=True)]
            if t[0] != "s":
                raise self.mismatch(
                    f"{self.src(factor)} at column {factor.column} is {self.describe(t)} inside index notation; "
                    f"write its entries ({self.src(factor)}[i{',j' * (rank_of(t) > 1)}...]) or a scalar",
                    factor,
                )
            return []
        return [(name, d, factor) for name, d in zip(info.free, t[1:], strict=True)]

    def term(self, node: Ast, info: IndexInfo, mt: Mapping[int, tuple]) -> tuple:
        dims: dict[str, tuple[int, Ast]] = {}
        for factor, _ in info.factors:
            for name, d, at in self.uses(factor, mt):
                if name in dims:
                    self.same_dim(dims[name][0], d, at, node)
                else:
                    dims[name] = (d, at)
        return ("x", *(dims[name][0] for name in info.free))

    def same(self, node: Ast, info: IndexInfo, mt: Mapping[int, tuple]) -> tuple:
        if node.op == "call" and node.value == "sum":
            return ("x",)
        dims: dict[str, int] = {}
        for arg in _operands(node):
            for name, d, at in self.uses(arg, mt, info.free):
                if name in dims:
                    self.same_dim(dims[name], d, at, node)
                else:
                    dims[name] = d
        return ("x", *(dims[name] for name in info.free))


def _with_axes(count: int) -> str:
    return {0: "a scalar", 1: "a vector", 2: "a matrix"}.get(count, f"a {count}-tensor")


def _permuted(node: g.Node, have: tuple[str, ...], want: tuple[str, ...]) -> g.Node:
    """A value whose axes are the indices ``have``, with its axes reordered to ``want``."""
    if have == want:
        return node
    labels = {name: k for k, name in enumerate(have)}
    return g.contract([node], [tuple(range(len(have)))], tuple(labels[name] for name in want))


def _spread(node: g.Node, shape: g.Shape) -> g.Node:
    """A scalar repeated over ``shape`` (as infer.broadcast)."""
    if not shape or node.shape:
        return node
    idx = tuple(range(len(shape)))
    return g.contract([node, g.ones(shape)], [(), idx], idx)


def build(
    node: Ast,
    info: IndexInfo,
    nodes: Mapping[int, g.Node],
    infos: Mapping[int, IndexInfo],
    raw_dims: Callable[[Ast], tuple[g.Dim, ...]],
    text: str | None,
) -> g.Node | None:
    """The graph node of an index-notation node whose operands are built (``nodes``): a value
    whose axes are ``info.free``. None for a product inside a term (built at the term)."""
    if info.role == "inner":
        return None
    if info.role == "output":
        body = node.args[0]
        return _permuted(nodes[id(body)], infos[id(body)].free, info.free)
    if info.factors:
        return _term(node, info, nodes, infos, raw_dims, text)
    if info.role == "leaf":
        # A leaf inside a term: its base, labelled by the term.
        return nodes[id(node.args[0])] if node.op == "entry" else g.delta(raw_dims(node)[0])
    args = []
    shape: g.Shape = ()
    for arg in _operands(node):
        built = nodes[id(arg)]
        arg_info = infos.get(id(arg))
        if arg_info is not None and arg_info.role != "output":
            built = _permuted(built, arg_info.free, info.free)
            shape = built.shape
        args.append(built)
    if node.op == "unary":
        return g.scale(-1, args[0]) if node.value == "-" else args[0]
    if node.op == "call" and node.value == "sum":
        return args[0]  # reordered to no free indices above: summed over all of them
    if node.op == "call":
        return g.apply(node.symbol, *args)
    op = node.symbol
    a, b = args
    if op in ("+", "-"):
        a, b = _spread(a, shape), _spread(b, shape)
        return g.add([a, b if op == "+" else g.scale(-1, b)])
    if op in ("^", ".^"):
        return g.power(_spread(a, shape), b)
    return g.compare(op, a, b)


def _term(
    node: Ast,
    info: IndexInfo,
    nodes: Mapping[int, g.Node],
    infos: Mapping[int, IndexInfo],
    raw_dims: Callable[[Ast], tuple[g.Dim, ...]],
    text: str | None,
) -> g.Node:
    labels: dict[str, int] = {}

    def label(name: str) -> int:
        return labels.setdefault(name, len(labels))

    operands: list[g.Node] = []
    operand_labels: list[tuple[int, ...]] = []
    for factor, divides in info.factors:
        if factor.op == "entry":
            value, names = nodes[id(factor.args[0])], tuple(i.symbol for i in _idx(factor))
        elif factor.op == "delta":
            value, names = g.delta(raw_dims(factor)[0]), tuple(i.symbol for i in _idx(factor))
        else:
            factor_info = infos.get(id(factor))
            value = nodes[id(factor)]
            names = factor_info.free if factor_info is not None and factor_info.role != "output" else ()
        if divides:
            if g.is_zero(value) or (isinstance(value, g.Const) and value.value == 0):
                raise ParseError(
                    f"division by zero at column {factor.start + 1}",
                    text=text,
                    column=factor.start + 1 if text is not None else None,
                )
            value = g.const(1 / value.value) if isinstance(value, g.Const) else g.power(value, g.const(-1))
        operands.append(value)
        operand_labels.append(tuple(label(name) for name in names))
    out = tuple(label(name) for name in info.free)
    return g.contract(operands, operand_labels, out, info.sign)


def free_of(info: Mapping[int, IndexInfo], node: Ast) -> tuple[str, ...] | None:
    """The free indices of an index-notation node, None for a node in matrix notation."""
    found = info.get(id(node))
    return None if found is None or found.role == "output" else found.free


def implicit_free(text: str) -> tuple[str, ...] | None:
    """The free indices, in order, that reading ``text`` as input gives; None when the text is
    not read as index notation with free indices (an index used three times, say). The printer
    compares them with the axes it means, and lists the axes with ``-> [...]`` where they differ.
    A text that is no input syntax at all (``reshape(...)``) raises :class:`ParseError`.

    >>> implicit_free("sum_j A[i,j]*x[j]"), implicit_free("delta(i,j)*delta(i,k)")
    (('i',), ('j', 'k'))
    """
    from matrixcalculus.frontend.syntax import parse_syntax

    root = parse_syntax(text)
    try:
        info = analyse(post_order(root), text)
    except ParseError:
        return None
    return free_of(info, root)


__all__ = ["INDEX_OPS", "IndexInfo", "IndexTyping", "analyse", "build", "implicit_free", "plain_type", "rank_of"]
