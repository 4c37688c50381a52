"""Matrix notation: the graph printed in the input syntax or in LaTeX, one node at a time.

The graph keeps products as Einstein contractions; matrix notation is recovered here, at the
edge: :class:`MatrixPrinter` prints each node from its children's pieces (sums, powers,
functions), and a contraction by the interval search of :mod:`~.products`. A contraction with
no matrix-notation form (a third-order tensor, a Kronecker-type product) prints in index
notation (:mod:`~.index`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.render.index import index_notation
from matrixcalculus.render.products import Item, SplitMemo, best_split, chain_order, transposes
from matrixcalculus.render.style import (
    ADD,
    ATOM,
    MUL,
    POSTFIX,
    POW,
    UNARY,
    NotMatrixNotation,
    Piece,
    Style,
    as_col,
    as_row,
    paren,
    transposed,
)
from matrixcalculus.render.tensors import without_tensor_operands
from matrixcalculus.transform.simplify import is_symmetric


class MatrixPrinter:
    """Prints nodes in matrix notation, children first, keeping each node's piece in ``memo``.

    ``result``: a derived expression (products in any operand order, identities dropped);
    ``scalars``: names declared scalars (they may print bare where broadcast, ``x + a``).
    """

    def __init__(self, style: Style, result: bool = False, scalars: frozenset[str] = frozenset(), share: bool = False):
        self.style = style
        self.result = result
        self.scalars = scalars
        self.memo: dict[g.Node, Piece] = {}
        # With `where` names (_shared_text): this printer prints every part itself, so that a
        # named part is printed by its name everywhere; `names` holds the names, by node.
        self.share = share
        self.names: dict[g.Node, str] = {}
        self._bases: MatrixPrinter | None = None
        self._leaves: MatrixPrinter | None = None
        # Vectors to print as rows (a numerator-layout gradient, x'): their pieces are chosen
        # to read best once transposed, and :meth:`output` transposes them. ``columns``: vectors
        # that must print as columns (an expression that is a column: (x'*A')' stays so).
        self.rows: frozenset[g.Node] = frozenset()
        self.columns: frozenset[g.Node] = frozenset()
        # Split decisions shared by the passes of one printing call (bindings sets it).
        self.splits: SplitMemo | None = None

    def output(self, node: g.Node) -> Piece:
        """The printed piece of a root: a vector of ``rows`` as a row (``x'``), of ``columns``
        as a column, else as it is."""
        piece = self.memo[node]
        if node.rank == 1 and node in self.rows:
            return as_row(piece, self.style)
        if node.rank == 1 and node in self.columns:
            return as_col(piece, self.style)
        return piece

    def base_printer(self) -> MatrixPrinter:
        """The printer of reciprocal bases (``a/b``): a typed-expression printer, as ever, kept
        for the whole call; with ``where`` names, this printer itself (a base may be named)."""
        if self.share:
            return self
        if self._bases is None:
            self._bases = MatrixPrinter(self.style)
        return self._bases

    def leaf_printer(self) -> MatrixPrinter:
        """The derived-expression printer of the matrix-notation parts of index notation."""
        if self.share or (self.result and not self.scalars):
            return self
        if self._leaves is None:
            self._leaves = MatrixPrinter(self.style, True)
        return self._leaves

    def piece_all(self, order: Sequence[g.Node]) -> None:
        for node in order:
            if node not in self.memo:
                self.memo[node] = self.render(node)

    def piece(self, root: g.Node) -> Piece:
        for node in g.postorder(root):
            if node not in self.memo:
                self.memo[node] = self.render(node)
        return self.memo[root]

    def render(self, node: g.Node) -> Piece:
        piece = self.render_node(node)
        if self.result and node.rank == 2 and not piece.sym and is_symmetric(node):
            # A derived expression may drop the transpose of a symmetric matrix: inv(X'*X)' is inv(X'*X).
            piece = Piece(piece.text, piece.prec, piece.row, piece.plain, True, piece.op)
        return piece

    def render_stack(self, node: g.Node, entries: dict[tuple[int, ...], g.Node]) -> Piece:
        """A vector or matrix of whole-number size written entry by entry: ``[a; b]``, ``[a, b; c, d]``."""
        shape = node.shape
        rows, columns = (shape[0], 1) if len(shape) == 1 else shape
        assert isinstance(rows, int) and isinstance(columns, int)
        zero = g.const(0)

        def entry(i: int, j: int) -> str:
            key = (i,) if len(shape) == 1 else (i, j)
            return self.piece(entries.get(key, zero)).text

        def literal(rows: int, columns: int, at: Callable[[int, int], str]) -> str:
            if self.style.latex:
                body = " \\\\ ".join(" & ".join(at(i, j) for j in range(columns)) for i in range(rows))
                return f"\\begin{{bmatrix}} {body} \\end{{bmatrix}}"
            return "[" + "; ".join(", ".join(at(i, j) for j in range(columns)) for i in range(rows)) + "]"

        if len(shape) == 1:
            # A vector literal transposes to the other literal ([a, b]), not to [a; b]'.
            column_text = literal(rows, 1, entry)
            row = Piece(literal(1, rows, lambda i, j: entry(j, 0)), ATOM, True, Piece(column_text, ATOM))
            return Piece(column_text, ATOM, plain=row)
        return Piece(literal(rows, columns, entry), ATOM)

    def render_node(self, node: g.Node) -> Piece:
        st = self.style
        if isinstance(node, g.Var):
            return Piece(st.name(node.name), ATOM, sym=node.kind == "symmetric")
        if isinstance(node, g.Const):
            return st.number(node.value)
        if isinstance(node, g.Delta):
            return Piece(st.eye(node.params[0]), ATOM, sym=True)
        if isinstance(node, g.Ones):
            return Piece(st.ones(node.shape), ATOM)
        if isinstance(node, g.Zeros):
            return Piece(st.zeros(node.shape), ATOM)
        if isinstance(node, g.DimSize):
            return st.dimension(node.dim)
        entries = stack_entries(node)
        if entries is not None:
            return self.render_stack(node, entries)
        if isinstance(node, g.Reshape):
            # No matrix notation: index notation names an entry of a product dimension by a pair.
            return Piece(index_notation(node, st, self.leaf_printer()), ATOM)
        if node.rank > 2 and isinstance(node, g.Add | g.Contract):
            # No matrix notation for tensors of order three or more.
            return Piece(index_notation(node, st, self.leaf_printer()), ADD)
        if isinstance(node, g.Add):
            return self.render_add(node)
        if isinstance(node, g.Contract):
            try:
                return self.render_contract(node, node.coeff)
            except NotMatrixNotation:
                pass
            if self.result:
                # A matrix with tensor intermediates (second derivatives): the same value as a
                # sum of contractions of matrices and vectors, in matrix notation if it has one.
                rewritten = without_tensor_operands(node)
                if rewritten is not None:
                    return self.piece(rewritten)
            return Piece(index_notation(node, st, self.leaf_printer()), ATOM)
        if isinstance(node, g.Power):
            return self.render_power(node)
        if isinstance(node, g.Compare):
            a, b = (self.memo[c] for c in node.args)
            if node.args[0].rank == 1 and node.args[1].rank == 1 and a.row != b.row:
                b = as_row(b, st) if a.row else as_col(b, st)
            # Printed in parentheses: an indicator reads best as a unit, (w'*x + b > 0)*x.
            text = st.compare(paren(a, ADD, st), node.op, paren(b, ADD, st))
            return Piece(f"\\left({text}\\right)" if st.latex else f"({text})", ATOM, a.row)
        if isinstance(node, g.Function):
            args = [self.memo[a] for a in node.args]
            vectors = [a for a, arg in zip(args, node.args, strict=True) if arg.rank == 1]
            if len(vectors) > 1 and not all(a.row for a in vectors):
                # Arguments of one shape read in one orientation: max(x'*A, y) is max((x'*A)', y).
                args = [as_col(a, st) if arg.rank == 1 else a for a, arg in zip(args, node.args, strict=True)]
            piece = st.function(node.record, args, node.dim)
            # A result that is not a scalar is a row where its arguments are (kron of two rows).
            return Piece(piece.text, piece.prec, bool(node.rank) and all(a.row for a in args))
        raise NotMatrixNotation(type(node).__name__)  # pragma: no cover

    # --------------------------------------------------------------------------- sums

    def broadcast_scalar(self, node: g.Node) -> Piece | None:
        """The scalar printed for a term that repeats a scalar over a tensor (``x + a``)."""
        if node in self.names:
            return None  # a ``where`` name stands for the whole term
        # Only over symbolic dimensions: ones(3) fixes a size that "1" would lose.
        if isinstance(node, g.Ones | g.Contract) and not all(isinstance(d, str) for d in node.shape):
            return None
        if isinstance(node, g.Ones):
            return Piece("1", ATOM)
        if isinstance(node, g.Contract) and len(node.args) in (1, 2) and isinstance(node.args[-1], g.Ones):
            if len(node.args) == 2 and node.args[0].rank != 0:
                return None
            if node.labels[-1] != node.out:
                return None
            lone = node.args[0] if len(node.args) == 2 else None
            if isinstance(lone, g.Var) and not self.result and lone.name not in self.scalars and node.rank in (1, 2):
                return None
            body = self.memo[node.args[0]] if len(node.args) == 2 else Piece("1", ATOM)
            if node.coeff == 1:
                return body
            if len(node.args) == 1:
                return self.style.number(node.coeff)
            return self.style.scaled(node.coeff, body)
        return None

    def term(self, node: g.Node, shape: g.Shape) -> tuple[bool, Piece]:
        """(negative, piece of the magnitude) for a term of a sum."""
        st = self.style
        if node in self.names:
            # Named in a ``where`` clause: printed by its name, never re-rendered (the name
            # would be bound and unused, and its text written out again here).
            return False, self.memo[node]
        if shape:
            scalar = self.broadcast_scalar(node)
            if scalar is not None:
                if isinstance(node, g.Contract) and node.coeff < 0:
                    flipped = g.contract(node.args, node.labels, node.out, -node.coeff)
                    return True, self.broadcast_scalar(flipped) or scalar
                return False, scalar
        if isinstance(node, g.Contract) and node.coeff < 0:
            try:
                return True, self.render_contract(node, -node.coeff)
            except NotMatrixNotation:
                return _negated(self.memo[node])
        if isinstance(node, g.Const) and node.value < 0:
            return True, st.number(-node.value)
        return _negated(self.memo[node])

    def render_add(self, node: g.Add) -> Piece:
        st = self.style
        # The scalar shorthand (x + a) needs a term that is not a broadcast to fix the shape.
        fixed = any(self.broadcast_scalar(t) is None for t in node.args)
        terms = [self.term(t, node.shape if fixed else ()) for t in node.args]
        row = False
        if node.rank == 1:
            vector_terms = [p for t, (_, p) in zip(node.args, terms, strict=True) if t.rank == 1]
            rows = sum(p.row for p in vector_terms)
            row = rows * 2 > len(vector_terms) or (rows * 2 == len(vector_terms) and terms[0][1].row)
            row = row or node in self.rows
            terms = [
                (neg, (as_row(p, st) if row else as_col(p, st)) if t.rank == 1 else p)
                for t, (neg, p) in zip(node.args, terms, strict=True)
            ]
        parts = []
        for k, (negative, p) in enumerate(terms):
            text = paren(p, ADD + 1 if k or negative else ADD, st)
            if k == 0:
                parts.append(("-" + text) if negative else text)
            else:
                parts.append((" - " if negative else " + ") + text)
        text = "".join(parts)
        return Piece(text, ADD, row, sym=self.result and node.rank == 2 and _closed_under_transpose(node))

    # --------------------------------------------------------------------------- powers

    def render_power(self, node: g.Power) -> Piece:
        st = self.style
        base, exponent = node.args
        elementwise = base.rank > 0
        bp = self.broadcast_scalar(base) if base.rank and exponent.rank else None
        bpiece = bp if bp is not None else self.memo[base]
        if bp is None and base.rank == 1 and exponent.rank == 1 and bpiece.row != self.memo[exponent].row:
            bpiece = transposed(bpiece, st)
        if isinstance(exponent, g.Const) and exponent.value == -1 and bp is None and not isinstance(base, g.Const):
            one = "1"
            text = st.hdivide(one, paren(bpiece, POW, st)) if elementwise else st.divide(one, paren(bpiece, POW, st))
            return Piece(text, MUL, bpiece.row)
        epiece = self.memo[exponent]
        if st.latex:
            etext = epiece.text
        elif epiece.prec >= POSTFIX or (
            isinstance(exponent, g.Const) and epiece.prec >= UNARY and "/" not in epiece.text
        ):
            etext = epiece.text
        else:
            etext = f"({epiece.text})"
        if bp is not None:
            text = st.power(paren(bpiece, POW + 1, st), etext, True)
            return Piece(text, POW, self.memo[exponent].row)
        return Piece(
            st.power(paren(bpiece, POW + 1, st) if not st.latex else paren(bpiece, POSTFIX, st), etext, elementwise),
            POW,
            bpiece.row,
        )

    # --------------------------------------------------------------------------- contractions

    def render_contract(self, node: g.Contract, coeff: Fraction) -> Piece:
        body = self.contraction_body(node)
        return body if coeff == 1 else self.style.scaled(coeff, body)

    def contraction_body(self, node: g.Contract) -> Piece:
        st = self.style
        out = node.out
        pieces = [self.memo[a] for a in node.args]
        if len(node.args) == 1:
            single = self.single(node, pieces[0])
            if single is not None:
                return single
        items = self.items(node, pieces)
        if self.result:
            # Scalars are written first: a*eye(n), not eye(n)*a.
            items = [it for it in items if not it.labels] + [it for it in items if it.labels]
        orders = [items]
        if self.result:
            orders += [chain_order(items, out), items[::-1]]
        memo = self.splits
        # A row (a numerator-layout gradient) is chosen by another measure than the probe's.
        won = memo.orders.get(node) if memo is not None and node not in self.rows else None
        candidates: list[tuple[int, Piece]] = []
        seen: list[list[int]] = []
        if won is not None and won >= len(orders):
            won = None
        for k, candidate in enumerate(orders):
            order_ids = [id(it) for it in candidate]
            if order_ids in seen or (won is not None and k != won):
                continue  # the same order again (chain order is often the stored one), or a loser
            seen.append(order_ids)
            try:
                piece, labels = best_split(candidate, out, st, self.result, self.base_printer(), memo, (node, k))
            except NotMatrixNotation:
                if k == 0 and not self.result:
                    orders.append(chain_order(items, out))
                continue
            if len(labels) == 2 and labels != out and not piece.sym:
                piece = transposed(piece, st)
            candidates.append((k, piece))
        if not candidates and won is not None:
            # The recorded order fails with these pieces (it should not): search them all.
            memo.orders.pop(node, None)  # type: ignore[union-attr]
            return self.contraction_body(node)
        if not candidates:
            raise NotMatrixNotation("no matrix-notation order")
        if not self.result:
            return candidates[0][1]
        if node in self.rows and node.rank == 1:
            # Printed as a row: the candidate that reads best once transposed (x'*A, not (A'*x)').
            k, piece = min(candidates, key=lambda c: (transposes(as_row(c[1], st).text), len(as_row(c[1], st).text)))
        else:
            k, piece = min(candidates, key=lambda c: (transposes(c[1].text) + c[1].row, len(c[1].text)))
        if memo is not None:
            memo.orders[node] = k
        return piece

    def single(self, node: g.Contract, p: Piece) -> Piece | None:
        st = self.style
        (labs,) = node.labels
        out = node.out
        (arg,) = node.args
        if arg.rank == 0:
            return p
        if arg.rank == 2 and labs == (0, 1) and out == (1, 0):
            return transposed(p, st)
        if not out and len(set(labs)) == len(labs):
            return Piece(
                st.call("sum", p.text) if not st.latex else f"\\operatorname{{sum}}\\left({p.text}\\right)", ATOM
            )
        if arg.rank == 2 and labs[0] == labs[1]:
            name = "tr" if not out else "diag"
            return Piece(st.call(name, p.text), ATOM)
        return None

    def items(self, node: g.Contract, pieces: list[Piece]) -> list[Item]:
        """The operands as items for the split search, with implicit sums made explicit ``ones``."""
        st = self.style
        count: dict[int, int] = {}
        for labs in node.labels:
            for lab in set(labs):
                count[lab] = count.get(lab, 0) + 1
        dims: dict[int, g.Dim] = {}
        for arg, labs in zip(node.args, node.labels, strict=True):
            dims.update(zip(labs, arg.shape, strict=True))
        items: list[Item] = []
        for arg, labs, p in zip(node.args, node.labels, pieces, strict=True):
            if arg.rank > 2:
                raise NotMatrixNotation("operand of order three or more")
            alone = all(count[lab] == 1 and lab not in node.out for lab in labs)
            if arg.rank and alone and len(set(labs)) == len(labs):
                # Summed over all its entries and sharing none: the scalar sum(X).
                items.append(Item(Piece(st.call("sum", p.text), ATOM), (), None))
                continue
            if arg.rank == 2 and labs[0] == labs[1]:
                lab = labs[0]
                if count[lab] == 1 and lab not in node.out:
                    items.append(Item(Piece(st.call("tr", p.text), ATOM), (), None))
                else:
                    items.append(Item(Piece(st.call("diag", p.text), ATOM), (lab,), None))
                continue
            items.append(Item(p, labs, arg))
            for lab in labs:
                if count[lab] == 1 and lab not in node.out:
                    # A label summed in one operand only: a product with ones(n).
                    items.append(Item(Piece(st.ones((dims[lab],)), ATOM), (lab,), g.ones((dims[lab],))))
        return items


def _closed_under_transpose(node: g.Add) -> bool:
    """A sum such as A + A' is symmetric: its terms are the transposes of its terms."""
    terms = set(node.args)
    return all(g.transpose(t) in terms for t in node.args)


def _negated(p: Piece) -> tuple[bool, Piece]:
    """(negative, magnitude) of a printed term: ``-2*A*B`` is ``-`` then ``2*A*B``.

    A product or a negation whose text starts with a minus is the negation of the rest (the
    unary minus binds tighter than products), so a sum prints ``X - 2*A*B``, not ``X + -2*A*B``.
    """
    if p.text.startswith("-") and p.prec in (UNARY, MUL):
        return True, Piece(p.text[1:], p.prec, p.row, sym=p.sym, op=p.op)
    return False, p


def stack_entries(node: g.Node) -> dict[tuple[int, ...], g.Node] | None:
    """The entries of a vector or matrix that is made of scalars times unit vectors (a stack
    ``[a; b]`` as :func:`~matrixcalculus.ir.graph.stack` builds it, and sums and products of
    such), by position; None for any other node. Entries not in the dict are zero.

    >>> sorted(stack_entries(g.stack([g.const(1), g.const(2)], 2, 1)))
    [(0,), (1,)]
    """
    if node.rank not in (1, 2) or not all(isinstance(d, int) for d in node.shape):
        return None
    return _entries(node, {})


Entries = dict[tuple[int, ...], g.Node]


def _entries(node: g.Node, memo: dict[g.Node, Entries | None]) -> Entries | None:
    if node in memo:
        return memo[node]
    found: dict[tuple[int, ...], list[g.Node]] | None = {}
    assert found is not None
    if isinstance(node, g.Embed):
        found[(node.params[1],)] = [g.const(1)]
    elif isinstance(node, g.Add):
        for term in node.args:
            inner = _entries(term, memo)
            if inner is None:
                found = None
                break
            for key, value in inner.items():
                found.setdefault(key, []).append(value)
    elif isinstance(node, g.Contract) and node.rank:
        # Every operand is a scalar or has entries: each consistent choice of one entry per
        # operand is one product, at the position its free labels name.
        choices: list[tuple[dict[int, int], list[g.Node]]] = [({}, [])]
        for arg, labs in zip(node.args, node.labels, strict=True):
            if arg.rank == 0:
                choices = [(fixed, [*factors, arg]) for fixed, factors in choices]
                continue
            inner = _entries(arg, memo) if all(isinstance(d, int) for d in arg.shape) else None
            if inner is None:
                found = None
                break
            grown: list[tuple[dict[int, int], list[g.Node]]] = []
            for fixed, factors in choices:
                for key, value in inner.items():
                    new = dict(fixed)
                    if all(new.setdefault(lab, i) == i for lab, i in zip(labs, key, strict=True)):
                        grown.append((new, [*factors, value]))
            choices = grown
        for fixed, factors in choices if found is not None else ():
            entry = g.contract(factors, [() for _ in factors], (), node.coeff)
            if isinstance(entry, g.Contract) and len(entry.args) == 1 and isinstance(entry.args[0], g.Add):
                # 2*(a + b) as 2*a + 2*b: the entry reads as the sum it is.
                entry = g.add(g.scale(entry.coeff, term) for term in entry.args[0].args)
            found.setdefault(tuple(fixed[lab] for lab in node.out), []).append(entry)  # type: ignore[union-attr]
    else:
        found = None
    result = None if found is None else {key: g.add(values) for key, values in found.items()}
    memo[node] = result
    return result
