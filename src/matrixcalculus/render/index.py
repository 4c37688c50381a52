"""Index notation: ``A*x`` as ``sum_j A[i,j]*x[j]`` (free indices ``i, j, ...``, ``sum_j`` a summed one).

Results of order three or more print this way, and so does a contraction that has no
matrix-notation form; the parts that do have one print as entries of a matrix-notation leaf,
``(A*B)[i,j]``, by the matrix printer handed in as ``leaves``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.frontend.indices import implicit_free
from matrixcalculus.ir import graph as g
from matrixcalculus.render.style import ADD, ATOM, MUL, POW, NotMatrixNotation, Piece, Style, is_wrapped, paren

if TYPE_CHECKING:
    from matrixcalculus.render.notation import MatrixPrinter

_LETTERS = "ijklabcdefghpqrstuvw"


def index_notation(node: g.Node, style: Style, leaves: MatrixPrinter) -> str:
    """The value with explicit indices, as the whole text: ``A*x`` -> ``sum_j A[i,j]*x[j]`` (free indices i).

    ``leaves``: the printer (derived-expression mode) for the parts printed in matrix notation;
    one printer for the whole call, so that each part is printed once. A printer with ``where``
    names (``render.bindings``) makes a named part a leaf printed by its name.

    The text is input syntax: where reading it (an index written once is free, twice summed, the
    free ones in order of first appearance) would not give the axes in order, it ends with
    them, ``delta(i,k)*delta(j,k) -> [i,j,k]``.
    """
    text, opened, _ = index_text(node, style, leaves)
    return text if opened is None else opened


def index_text(node: g.Node, style: Style, leaves: MatrixPrinter) -> tuple[str, str | None, bool]:
    """Index notation of a part printed inside matrix notation, the shorter text without
    ``-> [...]`` where that reads back with the same axes (None where it does not), and whether
    the text ends with ``-> [...]``.

    A part ends with its free indices, ``sum_j A[i,j]*x[j] -> [i]`` (a scalar with none,
    ``sum_ijk T[i,j,k]*S[k,j,i] -> []``): in matrix notation around it (``sigmoid(...)*u'``)
    the reader would otherwise take the product into index notation and meet ``u'`` there,
    while ``->`` makes the part the value of its free indices.
    The printer uses the shorter text where the part is the whole text or an entry's base
    (``leaves.opened``).

    Index names avoid ``leaves.avoid`` (those bound in the text around this one); the names
    this text uses, nested parts included, are recorded in ``leaves.index_names``.
    """
    # No index is called like a name, nor like an index bound in the text around this one.
    taken = _variable_names(node) | set(leaves.names.values()) | leaves.avoid
    printer = IndexPrinter(style, leaves, taken)
    idx = printer.first(node.rank)
    text = printer.render(node, idx)
    leaves.index_names[node] = frozenset(printer.own | printer.nested)
    if style.latex:
        return text, None, False
    try:
        read = implicit_free(text)
    except MatrixCalculusError:
        return text, None, False  # a pair index or reshape(...): notation that is printed, not read back
    if not idx and read is None:
        return text, None, False  # a scalar that is no index notation
    closed = f"{text} -> [{','.join(idx)}]"
    if read == idx:
        leaves.opened[closed] = text
        return closed, text, True
    return closed, None, True


def _variable_names(node: g.Node) -> set[str]:
    return {n.name for n in g.postorder(node) if isinstance(n, g.Var)}


def index_name(k: int) -> str:
    """The ``k``-th index name: the letters ``i, j, k, l, a, b, ...``, then ``i1, i2, ...`` (any
    number of indices: a derivative of order 25 has 25 free indices).

    >>> index_name(0), index_name(3), index_name(20), index_name(21)
    ('i', 'l', 'i1', 'i2')
    """
    return _LETTERS[k] if k < len(_LETTERS) else f"i{k - len(_LETTERS) + 1}"


def free_indices(node: g.Node, names: set[str] | frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The names of the free indices of ``node`` in index notation, one per axis (``i, j, k, ...``);
    ``names``: the ``where`` names in use, which no index is called either."""
    return IndexPrinter.names_avoiding(_variable_names(node) | set(names), node.rank)


def index_entry(text: str, idx: Sequence[str], style: Style) -> str:
    """``A[i,j]`` (LaTeX ``A_{ij}``; a name with a subscript of its own is braced, ``{t_{1}}_{ij}``)."""
    if not idx:
        return text
    if style.latex:
        return f"{{{text}}}_{{{_joined(idx)}}}" if "_" in text else f"{text}_{{{_joined(idx)}}}"
    return f"{text}[{','.join(idx)}]"


class IndexPrinter:
    """Index notation, rendered top-down (each node with the indices its parent gives it) by an
    explicit work stack, so that deep expressions need no recursion.

    Index names skip ``taken`` (variable and ``where`` names), so ``b[i]`` never meets an index ``b``.
    """

    def __init__(self, style: Style, leaves: MatrixPrinter, taken: set[str]):
        self.style = style
        self.taken = taken
        self.matrix = leaves
        self.counter = 0
        self.leaves: set[g.Node] = set()  # parts printed as one matrix-notation entry
        # Index hygiene: the names this text binds (``own``) and those of index notation nested
        # in its matrix-notation parts (``nested``) are disjoint, so that no name means two things.
        self.own: set[str] = set()
        self.nested: set[str] = set()
        self.hygienic: dict[g.Node, tuple[Piece, frozenset[str]]] = {}

    @staticmethod
    def names_avoiding(taken: set[str], count: int) -> tuple[str, ...]:
        """The first ``count`` index names that are not ``taken``."""
        names: list[str] = []
        k = 0
        while len(names) < count:
            name = index_name(k)
            k += 1
            if name not in taken:
                names.append(name)
        return tuple(names)

    def first(self, count: int) -> tuple[str, ...]:
        """The free indices of a value of order ``count``."""
        names = self.names_avoiding(self.taken, count)
        self.own.update(names)
        return names

    def fresh(self, avoid: set[str]) -> str:
        """A summed index: the next name not in use here (``avoid``), taken, nor bound by a
        nested part already printed."""
        while True:
            name = index_name(self.counter)
            self.counter += 1
            if name not in avoid and name not in self.taken and name not in self.nested:
                self.own.add(name)
                return name

    def holds_index(self, node: g.Node) -> bool:
        """Whether the matrix-notation text of a part would hold index notation of its own."""
        if node in self.matrix.names:
            return False
        order = g.postorder(node)
        self.matrix.piece_all(order)
        return bool(self.matrix.holding_index(order)[0])

    def matrix_piece(self, node: g.Node, used: set[str]) -> Piece:
        """The matrix-notation piece of a part, its nested index notation (a function of a
        contraction with no matrix form, ``sigmoid(sum_lab A[l,a]*S[b,a,l])``) naming no index
        bound around it: ``used`` (the free indices and those summed outside the part) nor any
        other this text has chosen. Printed again, avoiding them, where the printer's own piece
        clashes; the same part keeps one text wherever it occurs."""
        avoid = used | self.own | self.taken
        known = self.hygienic.get(node)
        if known is not None and not known[1] & avoid:
            piece, names = known
        else:
            piece, names = self.matrix.piece_avoiding(node, frozenset(avoid))
            self.hygienic[node] = (piece, names)
        self.nested |= names
        return piece

    def entry(self, text: str, idx: tuple[str, ...]) -> str:
        return index_entry(text, idx, self.style)

    def render(self, root: g.Node, idx: tuple[str, ...]) -> str:
        # A frame: [task (node, indices, names in use), child tasks, how to combine, child texts].
        stack: list[list] = [[(root, idx, set(idx), True), None, None, []]]
        result = ""

        def deliver(text: str) -> None:
            nonlocal result
            if stack:
                stack[-1][3].append(text)
            else:
                result = text

        while stack:
            frame = stack[-1]
            if frame[1] is None:
                leaf, kids, how = self.expand(*frame[0])
                if leaf is not None:
                    stack.pop()
                    deliver(leaf)
                    continue
                frame[1], frame[2] = kids, how
            if len(frame[3]) < len(frame[1]):
                stack.append([frame[1][len(frame[3])], None, None, []])
                continue
            stack.pop()
            deliver(frame[2](frame[3]))
        return result

    def expand(
        self, node: g.Node, idx: tuple[str, ...], used: set[str], top: bool = True
    ) -> tuple[str | None, list, Callable[[list[str]], str] | None]:
        st = self.style
        if isinstance(node, g.Delta):
            return (f"\\delta_{{{_joined(idx)}}}" if st.latex else f"delta({idx[0]},{idx[1]})"), [], None
        if node in self.matrix.names and not top:  # the root is what a binding of its name defines
            return self.entry(st.name(self.matrix.names[node]), idx), [], None
        if isinstance(node, g.Contract) and node not in self.leaves:
            grouped = self.group_matrix_part(node, idx)
            if grouped is not None:
                node = grouped
            names: dict[int, str] = dict(zip(node.out, idx, strict=True))
            inner_used = set(used)
            summed: list[str] = []
            # Scalars first, as in matrix notation.
            order = sorted(range(len(node.args)), key=lambda k: node.args[k].rank != 0)
            dims = {lab: d for k in order for lab, d in zip(node.labels[k], node.args[k].shape, strict=True)}
            for k in order:
                for lab in node.labels[k]:
                    if lab not in names:
                        # A summed index over a product dimension m*p is a pair (a,b): a reshape
                        # below can then split it (docs/conventions.md, "Dimensions").
                        dim = dims[lab]
                        parts = len(dim.factors) if isinstance(dim, g.DimProduct) and dim.scale == 1 else 1
                        letters = []
                        for _ in range(parts):
                            letters.append(self.fresh(inner_used))
                            inner_used.add(letters[-1])
                        summed.extend(letters)
                        names[lab] = letters[0] if parts == 1 else f"({','.join(letters)})"
            kids = [(node.args[k], tuple(names[lab] for lab in node.labels[k]), inner_used, False) for k in order]
            coeff = node.coeff

            def contraction(texts: list[str]) -> str:
                body = ("\\," if st.latex else "*").join(texts)
                if coeff != 1:
                    body = st.scaled(coeff, Piece(body, MUL)).text
                if summed:
                    body = f"\\sum_{{{_joined(summed)}}} {body}" if st.latex else f"sum_{_listed(summed)} {body}"
                return f"({body})" if summed and not top else body

            return None, kids, contraction
        if isinstance(node, g.Add) and (top or node.rank > 2 or self.holds_index(node)):
            # Inside a product, a sum of tensors is written entry by entry, in parentheses:
            # never the index notation of the sum (with free indices of its own) subscripted.
            # An entry of ones or zeros is 1 or 0 there: a number term is repeated over the
            # free indices of the others (1 - tanh(...)^2), so it reads back as the same sum.
            numbers = {k: "1" if isinstance(t, g.Ones) else "0" for k, t in enumerate(node.args)}
            numbers = {k: v for k, v in numbers.items() if isinstance(node.args[k], g.Ones | g.Zeros)}
            if len(numbers) == len(node.args):
                numbers = {}
            kids = [(t, idx, used, False) for k, t in enumerate(node.args) if k not in numbers]

            def total(texts: list[str]) -> str:
                entries = iter(texts)
                texts = [numbers[k] if k in numbers else next(entries) for k in range(len(node.args))]
                out = texts[0]
                for text in texts[1:]:
                    out += f" - {text[1:]}" if text.startswith("-") else f" + {text}"
                return out if top else f"({out})"

            return None, kids, total
        if (isinstance(node, g.Power) or (isinstance(node, g.Function) and node.record.elementwise)) and (
            node.rank > 2 or (node.rank and self.holds_index(node))
        ):
            # An element-wise function of a tensor: the function of the entry (also of a vector
            # or matrix that has no matrix notation: tanh((sum_a T[i,j,a]*w[a])), not
            # tanh(sum_a T[k,l,a]*w[a] -> [k,l])[i,j]).
            kids = [(a, idx if a.rank else (), used, False) for a in node.args]
            return None, kids, lambda texts: self.elementwise(node, texts)
        if isinstance(node, g.Reshape):
            return self.expand_reshape(node, idx, used)
        piece = self.matrix_piece(node, used)
        text = piece.text
        if not node.rank:
            # A factor of a product: a sum (1 - s) keeps its parentheses, and so does a product
            # in matrix notation (u'*u): its operands are not entries, and index notation reads
            # a bare u' as one.
            if top or _is_entry(text) or _is_call(text) or is_wrapped(text):
                return text, [], None
            return (paren(piece, MUL, st) if piece.prec < MUL else f"({text})"), [], None
        # An entry's base is read as the value of its free indices in order: no -> [...] needed.
        text = self.matrix.opened.get(text, text)
        simple = isinstance(node, g.Var | g.Ones | g.Zeros | g.Const) or text.isidentifier() or _is_call(text)
        # A piece already in parentheses of its own (an indicator, (W1*x + b1 > 0)) is subscripted
        # as it is: ((W1*x + b1 > 0))[i] would say the same with a pair too many.
        simple = simple or is_wrapped(text)
        return self.entry(text if simple else f"({text})", idx), [], None

    def elementwise(self, node: g.Node, texts: list[str]) -> str:
        """The entry of an element-wise power or function, from the entries of its arguments."""
        st = self.style
        pieces = [Piece(t, ATOM if _is_entry(t) else ADD) for t in texts]
        if isinstance(node, g.Power):
            base, exponent = pieces
            return st.power(
                paren(base, POW + 1, st), exponent.text if _is_entry(exponent.text) else f"({exponent.text})", False
            )
        assert isinstance(node, g.Function)
        return st.function(node.record, pieces, node.dim).text

    def expand_reshape(
        self, node: g.Reshape, idx: tuple[str, ...], used: set[str]
    ) -> tuple[str | None, list, Callable[[list[str]], str] | None]:
        """A split of product dimensions, ``(m*p) x (n*q)`` into ``m x p x n x q``, indexes its
        argument by pairs: ``C[(i,k),(j,l)]`` is the entry in row ``i*p + k`` (row-major), as in
        ``kron``; a merge takes a pair index apart. Any other reshape prints as
        ``reshape(X, dims)[i,...]``."""
        (x,) = node.args
        inner = _reshaped_indices(x.shape, node.shape, idx)
        if inner is not None:
            return None, [(x, inner, used, False)], lambda texts: texts[0]
        dims = ", ".join(str(d) for d in node.shape)
        text = self.matrix_piece(x, used).text
        return self.entry(f"reshape({self.matrix.opened.get(text, text)}, {dims})", idx), [], None

    def group_matrix_part(self, node: g.Contract, idx: tuple[str, ...]) -> g.Contract | None:
        """``delta(i,k)*sum_a V[a,j]*V[a,l]`` -> ``delta(i,k)*(V'*V)[j,l]``: the factors beside the
        deltas, when they make a scalar, vector or matrix, print as one matrix-notation entry."""
        deltas = [k for k, a in enumerate(node.args) if isinstance(a, g.Delta)]
        rest = [k for k in range(len(node.args)) if k not in deltas]
        if not deltas or len(rest) < 2:
            return None
        outside = set(node.out) | {lab for k in deltas for lab in node.labels[k]}
        free: list[int] = []
        for k in rest:
            for lab in node.labels[k]:
                if lab in outside and lab not in free:
                    free.append(lab)
        if len(free) > 2:
            return None
        part = g.contract([node.args[k] for k in rest], [node.labels[k] for k in rest], tuple(free))
        if isinstance(part, g.Contract):
            printer = self.matrix
            printer.piece_all(g.postorder(*part.args))
            try:
                printer.contraction_body(part)
            except NotMatrixNotation:
                return None
        self.leaves.add(part)
        labels = [node.labels[k] for k in deltas] + [tuple(free)]
        ops = [node.args[k] for k in deltas] + [part]
        # Build without canonical relabelling surprises: the coefficient stays outside.
        grouped = g.contract(ops, labels, node.out, node.coeff)
        return grouped if isinstance(grouped, g.Contract) else None


def _reshaped_indices(old: g.Shape, new: g.Shape, idx: tuple[str, ...]) -> tuple[str, ...] | None:
    """The indices of a reshape's argument (axes ``old``) given those of its result (axes ``new``).

    The axes are cut into blocks of equal products. In a block where several new axes make one
    old axis the old index is their pair ``(i,k)``; where one new axis makes several old ones,
    its index must be such a pair, taken apart. None when neither applies.
    """
    inner: list[str] = []
    a = b = 0
    while a < len(old) or b < len(new):
        block = _block(old, new, a, b)
        if block is None:
            return None
        a2, b2 = block
        if a2 - a == 1:
            inner.append(idx[b] if b2 - b == 1 else f"({','.join(idx[b:b2])})")
        elif b2 - b == 1:
            parts = _pair_parts(idx[b])
            if parts is None or len(parts) != a2 - a:
                return None
            inner.extend(parts)
        else:
            return None
        a, b = a2, b2
    return tuple(inner)


def _block(old: g.Shape, new: g.Shape, a: int, b: int) -> tuple[int, int] | None:
    """The shortest runs ``old[a:a2]``, ``new[b:b2]`` (each at least one axis) of equal product."""
    for total in range(2, len(old) - a + len(new) - b + 1):
        for a2 in range(a + 1, min(len(old), a + total - 1) + 1):
            b2 = b + total - (a2 - a)
            if b < b2 <= len(new) and g.dim_product(*old[a:a2]) == g.dim_product(*new[b:b2]):
                return a2, b2
    return None


def _pair_parts(name: str) -> list[str] | None:
    """``(a,b)`` -> ``["a", "b"]`` (commas inside nested pairs stay); None for a plain index."""
    if not (name.startswith("(") and name.endswith(")")):
        return None
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in name[1:-1]:
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        depth += (ch == "(") - (ch == ")")
        current += ch
    return [*parts, current]


def _is_entry(text: str) -> bool:
    """``A[i,j]``, ``x``, ``2``, ``t_{1}``: an entry or a number, that needs no parentheses."""
    return re.fullmatch(r"[A-Za-z0-9_.{}\\]+(\[[a-z0-9,()]+\]|_\{[a-z0-9,_{}]+\})?", text) is not None


def _is_call(text: str) -> bool:
    """``inv(X)`` or ``exp(A*x)``: a name applied to one balanced parenthesis."""
    head, paren_, _ = text.partition("(")
    if not paren_ or not head.isidentifier() or not text.endswith(")"):
        return False
    depth = 0
    for k, ch in enumerate(text[len(head) :]):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k != len(text) - len(head) - 1:
            return False
    return True


def _joined(idx: Sequence[str]) -> str:
    """Indices as a LaTeX subscript: ``ij``, or ``i_{1},j`` once numbered indices appear."""
    if all(len(name) == 1 for name in idx):
        return "".join(idx)
    return ",".join(f"{name[0]}_{{{name[1:]}}}" if len(name) > 1 else name for name in idx)


def _listed(idx: Sequence[str]) -> str:
    """Summed indices in the input syntax: ``sum_kl``, or ``sum_i1,i2`` once numbered indices appear."""
    return "".join(idx) if all(len(name) == 1 for name in idx) else ",".join(idx)
