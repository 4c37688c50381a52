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

from matrixcalculus.frontend.infer import default_kind
from matrixcalculus.ir import graph as g
from matrixcalculus.render.index import index_text
from matrixcalculus.render.products import Item, SplitMemo, best_split, chain_order, is_reciprocal, transposes
from matrixcalculus.render.style import (
    ADD,
    ATOM,
    MUL,
    OUTPUT,
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

    def __init__(
        self,
        style: Style,
        result: bool = False,
        scalars: frozenset[str] = frozenset(),
        share: bool = False,
        written: frozenset[g.Dim] = frozenset(),
    ):
        self.style = style
        self.result = result
        self.scalars = scalars
        # Dimension names that only the text names (ones(k), eye(k)): an expansion over one of
        # them keeps its ``ones(k)``, or parsing the text again would name the dimension anew.
        self.written = written
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
        # Products typed as ``lambda/2*w'*w`` (the divisor after a leading scalar): an echo
        # prints them so (see :meth:`render_contract`).
        self.early: frozenset[g.Node] = frozenset()
        # The dimension names the variables of the printed text carry: a size used as a value
        # prints by its name only where one of them does (sum(x)/n), since parsing reads the name
        # as that size only then; otherwise as sum(ones(n)). None: not known (print the name).
        self.carried: frozenset[str] | None = None
        # Index hygiene (render.index): the index names bound in the text around the parts this
        # printer prints (none at the top); the names each part printed in index notation uses;
        # and the text without ``-> [...]`` of such a part, by its text, for where that reads the same.
        self.avoid: frozenset[str] = frozenset()
        self.index_names: dict[g.Node, frozenset[str]] = {}
        self.opened: dict[str, str] = {}
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
        if piece.text in self.opened:
            return Piece(self.opened[piece.text], ADD)  # the whole text: its free indices are its axes
        return self.scalar_piece(node)

    def scalar_piece(self, node: g.Node) -> Piece:
        """The piece of a scalar with ``-> []`` dropped from its parts in index notation that
        only scalar operations take (``sigmoid(sum_ijk T[i,j,k]*S[k,j,i])``): where all around
        is a scalar, as a factor of index notation or the whole text, it reads the same. A part
        that meets a vector or matrix (``sigmoid(...)*u'*x``) keeps it."""
        piece = self.memo[node]
        if node.rank or " -> []" not in piece.text:
            return piece
        order = g.postorder(node)
        below: set[g.Node] = set()  # nodes under an operation on tensors, or under a where name
        for n in reversed(order):  # parents before children
            if n in below or n.rank or any(a.rank for a in n.args) or (n in self.names and n is not node):
                below.update(n.args)
        text = piece.text
        for n in order:
            closed = self.memo[n].text if n in self.memo and n not in below else ""
            if closed.endswith(" -> []") and closed in self.opened:
                text = text.replace(closed, self.opened[closed])
        if text == piece.text:
            return piece
        return Piece(text, ADD if piece.text in self.opened else piece.prec, piece.row, None, piece.sym, piece.op)

    def family(self, printer: MatrixPrinter) -> MatrixPrinter:
        """``printer``, a helper of this one, sharing its index hygiene."""
        printer.avoid, printer.index_names, printer.opened = self.avoid, self.index_names, self.opened
        printer.carried = self.carried
        return printer

    def holding_index(self, order: Sequence[g.Node]) -> tuple[set[g.Node], frozenset[str]]:
        """The nodes of a part (its post-order, printed) whose text may hold index notation,
        and the index names that notation uses."""
        holding: set[g.Node] = set()
        names: set[str] = set()
        for n in order:
            if n in self.names and n is not order[-1]:
                continue  # printed by its ``where`` name
            if n in self.index_names or any(a in holding for a in n.args):
                holding.add(n)
                names |= self.index_names.get(n, frozenset())
        return holding, frozenset(names)

    def piece_avoiding(self, node: g.Node, avoid: frozenset[str]) -> tuple[Piece, frozenset[str]]:
        """The piece of ``node`` with its nested index notation using none of the index names
        ``avoid`` (those bound around it), and the index names it does use. This printer's own
        piece where it does not clash; else the part is printed again by a printer avoiding them,
        which reuses the pieces of the nodes below that hold no index notation."""
        self.piece(node)
        order = g.postorder(node)
        holding, names = self.holding_index(order)
        if not names & avoid:
            return self.scalar_piece(node), frozenset(names)
        other = MatrixPrinter(self.style, self.result, self.scalars, self.share, self.written)
        other.names, other.rows, other.columns = self.names, self.rows, self.columns
        other.avoid, other.opened, other.splits = self.avoid | avoid, self.opened, self.splits
        other.carried = self.carried
        other.memo = {n: p for n, p in self.memo.items() if n not in holding}
        other.piece(node)
        again = frozenset().union(*(other.index_names.get(n, frozenset()) for n in order))
        return other.scalar_piece(node), again

    def base_printer(self) -> MatrixPrinter:
        """The printer of reciprocal bases (``a/b``): a typed-expression printer, as ever, kept
        for the whole call; with ``where`` names, this printer itself (a base may be named)."""
        if self.share:
            return self
        if self._bases is None:
            self._bases = self.family(MatrixPrinter(self.style))
        return self._bases

    def leaf_printer(self) -> MatrixPrinter:
        """The derived-expression printer of the matrix-notation parts of index notation."""
        if self.share or (self.result and not self.scalars):
            return self
        if self._leaves is None:
            self._leaves = self.family(MatrixPrinter(self.style, True))
        return self._leaves

    def keep_values(self, order: Sequence[g.Node]) -> None:
        """Dimensions used as values (``sum(x)/n``) stay written where an expansion is over them
        (``ones(n)``): without it the parser reads ``n`` as a variable."""
        values = {node.dim for node in order if isinstance(node, g.DimSize)}
        if not values <= self.written:
            self.written = self.written | values
        # A name the text gives a dimension: a variable's, or one written in ones(n), eye(n), zeros(n).
        givers = g.Var | g.Ones | g.Zeros | g.Delta
        carried = {name for node in order if isinstance(node, givers) for d in node.shape for name in g.dim_names(d)}
        self.carried = frozenset(carried) | (self.carried or frozenset())

    def piece_all(self, order: Sequence[g.Node]) -> None:
        self.keep_values(order)
        for node in order:
            if node not in self.memo:
                self.memo[node] = self.render(node)

    def piece(self, root: g.Node) -> Piece:
        order = g.postorder(root)
        self.keep_values(order)
        for node in order:
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

    def literal(self, entries: Sequence[str], vertical: bool) -> str:
        """``[a; b]`` (``vertical``) or ``[a, b]``; a ``bmatrix`` in LaTeX."""
        if self.style.latex:
            body = (" \\\\ " if vertical else " & ").join(entries)
            return f"\\begin{{bmatrix}} {body} \\end{{bmatrix}}"
        return "[" + ("; " if vertical else ", ").join(entries) + "]"

    def render_block(self, node: g.Block) -> Piece:
        """The matrix that places a vector in a longer one: ``[eye(n); zeros(m,n)]``."""
        st = self.style
        total, offset, length = node.params
        rest = g.dim_difference(total, g.dim_sum(offset, length))
        parts = [(False, offset), (True, length), (False, rest)]
        sizes = [(eye, d) for eye, d in parts if eye or (d is not None and d != 0)]
        column = [st.eye(length) if eye else st.zeros((d, length)) for eye, d in sizes]
        # Its transpose is the row of blocks, [eye(n), zeros(n,m)], not [eye(n); zeros(m,n)]'.
        row = [st.eye(length) if eye else st.zeros((length, d)) for eye, d in sizes]
        text = self.literal(column, True)
        return Piece(text, ATOM, plain=Piece(self.literal(row, False), ATOM, plain=Piece(text, ATOM)))

    def render_concatenation(self, node: g.Node, entries: list[g.Node], vertical: bool) -> Piece:
        """``[u; v]``, ``[A; x']``, ``[u, v]``: entries one after the other (see :func:`concatenation_parts`)."""
        st = self.style
        pieces = [self.piece(e) for e in entries]
        if node.rank == 1:
            column = self.literal(
                [as_col(p, st).text if e.rank == 1 else p.text for e, p in zip(entries, pieces, strict=True)], True
            )
            row = self.literal(
                [as_row(p, st).text if e.rank == 1 else p.text for e, p in zip(entries, pieces, strict=True)], False
            )
            return Piece(column, ATOM, plain=Piece(row, ATOM, True, Piece(column, ATOM)))
        fit = as_row if vertical else as_col
        texts = [fit(p, st).text if e.rank == 1 else p.text for e, p in zip(entries, pieces, strict=True)]
        return Piece(self.literal(texts, vertical), ATOM)

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
            if self.carried is None or set(g.dim_names(node.dim)) <= self.carried:
                return st.dimension(node.dim)
            # No variable here carries the dimension (d/db of sum(W*X + b) counts X's columns):
            # its size as a sum of ones, which reads back as that size, never as a variable.
            return Piece(st.call("sum", st.ones((node.dim,))), ATOM)
        entries = stack_entries(node)
        if entries is not None:
            return self.render_stack(node, entries)
        if isinstance(node, g.Block):
            return self.render_block(node)
        parts = concatenation_parts(node, merge=self.result)
        if parts is not None:
            return self.render_concatenation(node, *parts)
        if isinstance(node, g.Add) and not self.result:
            runs = concatenation_runs(node)
            if runs is not None:
                # [u; v] + [x; y] as typed: a sum of stacks, each placing every part once.
                text = ""
                for k, run in enumerate(runs):
                    self.piece(run)
                    negative, p = self.term(run, False)
                    part = paren(p, ADD + 1 if k or negative else ADD, self.style)
                    text += ("-" if negative else "") + part if not k else (" - " if negative else " + ") + part
                return Piece(text, ADD)
        if isinstance(node, g.Reshape) and node.args[0].rank == 1 and node.rank == 2 and 1 in node.shape:
            # A vector as the 1 x n or n x 1 matrix it is (an operand of kron): a row or a column.
            piece = self.memo[node.args[0]]
            return as_row(piece, st) if node.shape[0] == 1 else as_col(piece, st)
        if isinstance(node, g.Reshape):
            dims = g.commutation_dims(node)
            if dims is not None:
                # The commutation matrix of flattening (K vec(X) = vec(X')), by its name.
                m, n = (g.dim_text(d) for d in dims)
                return Piece(f"K_{{{m},{n}}}" if st.latex else f"commutation({m}, {n})", ATOM)
            # No matrix notation: index notation names an entry of a product dimension by a pair.
            return self.index_piece(node, ATOM)
        if node.rank > 2 and isinstance(node, g.Add | g.Contract):
            # No matrix notation for tensors of order three or more.
            return self.index_piece(node, ADD)
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
            return self.index_piece(node, ATOM)
        if isinstance(node, g.Power):
            return self.render_power(node)
        if isinstance(node, g.Compare):
            a, b = (self.widened(c, node.args) for c in node.args)
            if node.args[0].rank == 1 and node.args[1].rank == 1 and a.row != b.row:
                b = as_row(b, st) if a.row else as_col(b, st)
            # Printed in parentheses: an indicator reads best as a unit, (w'*x + b > 0)*x.
            text = st.compare(paren(a, ADD, st), node.op, paren(b, ADD, st))
            return Piece(f"\\left({text}\\right)" if st.latex else f"({text})", ATOM, a.row)
        if isinstance(node, g.Function):
            args = [
                self.widened(a, node.args) if node.record.result == "broadcast" else self.memo[a] for a in node.args
            ]
            if not node.record.elementwise and node.record.result != "broadcast" and node.record.name != "sum":
                # A function of vectors or matrices (inv, softmax) takes index notation as the
                # value of its free indices in order: no -> [...] needed there.
                args = [Piece(self.opened[a.text], ATOM) if a.text in self.opened else a for a in args]
            vectors = [a for a, arg in zip(args, node.args, strict=True) if arg.rank == 1]
            if len(vectors) > 1 and not all(a.row for a in vectors):
                # Arguments of one shape read in one orientation: max(x'*A, y) is max((x'*A)', y).
                args = [as_col(a, st) if arg.rank == 1 else a for a, arg in zip(args, node.args, strict=True)]
            piece = st.function(node.record, args, node.dim)
            # A result that is not a scalar is a row where its arguments are (kron of two rows);
            # a reduction down the columns is a row, as MATLAB gives it (logsumexp(Z, 1)).
            row = (node.rank == 1 and all(a.row for a in args)) or (node.dim == 1 and node.rank == 1)
            return Piece(piece.text, piece.prec, row, op=piece.op)
        raise NotMatrixNotation(type(node).__name__)  # pragma: no cover

    def index_piece(self, node: g.Node, prec: int) -> Piece:
        """A part in index notation; one that ends with its free indices (``... -> [i]``) is
        parenthesised wherever it is an operand."""
        text, _, closed = index_text(node, self.style, self.leaf_printer())
        return Piece(text, OUTPUT if closed else prec)

    # --------------------------------------------------------------------------- sums

    def broadcast_scalar(self, node: g.Node) -> Piece | None:
        """The scalar printed for a term that repeats a scalar over a tensor (``x + a``)."""
        found = self.expansion(node)
        return found[0] if found is not None and found[1] == "s" else None

    def expansion(self, node: g.Node) -> tuple[Piece, str] | None:
        """What a term that repeats a scalar or a vector over a tensor (implicit expansion) prints
        as beside a term of the full shape, and its form: ``("a", "s")`` for ``a*ones(m,n)``,
        ``("b", "c")`` for ``b*ones(n)'`` (a column along the columns), ``("b'", "r")`` for
        ``ones(m)*b'``; None for any other node. Parsing ``X + b`` expands ``b`` back."""
        if node in self.names or not isinstance(node, g.Ones | g.Contract) or not node.rank:
            return None  # a ``where`` name stands for the whole term
        if isinstance(node, g.Ones):
            args: tuple[g.Node, ...] = (node,)
            labels: tuple[tuple[int, ...], ...] = (tuple(range(node.rank)),)
            out, coeff = labels[0], Fraction(1)
        else:
            args, labels, out, coeff = node.args, node.labels, node.out, node.coeff
        count: dict[int, int] = {}
        for labs in labels:
            for lab in labs:
                count[lab] = count.get(lab, 0) + 1
        spread = [
            k
            for k, (arg, labs) in enumerate(zip(args, labels, strict=True))
            if isinstance(arg, g.Ones) and all(lab in out and count[lab] == 1 for lab in labs)
        ]
        repeated = {lab for k in spread for lab in labels[k]}
        dims = {lab: d for k in spread for lab, d in zip(labels[k], args[k].shape, strict=True)}
        if not spread or any(d in self.written for d in dims.values()):
            return None
        kept = tuple(lab for lab in out if lab not in repeated)
        rest = [k for k in range(len(args)) if k not in spread]
        core = g.contract([args[k] for k in rest], [labels[k] for k in rest], kept, coeff)
        if not kept:
            form = "s"
        elif node.rank == 2 and len(kept) == 1:
            form = "c" if kept[0] == out[0] else "r"
        else:
            return None
        if (
            isinstance(core, g.Var)
            and not self.result
            and form == "s"
            and core.name not in self.scalars
            and default_kind(core.name) != "scalar"
        ):
            # A scalar variable that the text alone would read as a vector prints expanded.
            return None
        piece = self.memo[core] if core in self.memo else self.piece(core)
        if form == "c":
            piece = as_col(piece, self.style)
        elif form == "r":
            piece = as_row(piece, self.style)
        return piece, form

    def term(self, node: g.Node, short: bool) -> tuple[bool, Piece]:
        """(negative, piece of the magnitude) for a term of a sum; ``short``: an expansion
        prints as what it repeats (``x + a``, ``W*X + b``)."""
        st = self.style
        if node in self.names:
            # Named in a ``where`` clause: printed by its name, never re-rendered (the name
            # would be bound and unused, and its text written out again here).
            return False, self.memo[node]
        if short:
            found = self.expansion(node)
            if found is not None:
                if isinstance(node, g.Contract) and node.coeff < 0:
                    flipped = g.contract(node.args, node.labels, node.out, -node.coeff)
                    again = self.expansion(flipped)
                    if again is not None:
                        return True, again[0]
                    # The magnitude would print in full (a scalar the text reads as a vector):
                    # the term is printed in full below, never as ``- -x``.
                else:
                    return False, found[0]
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
        short = self.short_terms(node)
        terms = [self.term(t, s) for t, s in zip(node.args, short, strict=True)]
        row = False
        if node.rank == 1:
            vector_terms = [p for t, (_, p), s in zip(node.args, terms, short, strict=True) if t.rank == 1 and not s]
            rows = sum(p.row for p in vector_terms)
            row = rows * 2 > len(vector_terms) or (rows * 2 == len(vector_terms) and terms[0][1].row)
            row = row or node in self.rows
            terms = [
                (neg, (as_row(p, st) if row else as_col(p, st)) if t.rank == 1 and not s else p)
                for t, (neg, p), s in zip(node.args, terms, short, strict=True)
            ]
        if self.result:
            # A positive term leads a result where there is one: sum(t)*softmax(z) - t, not
            # -t + sum(t)*softmax(z). What was typed keeps its order (it reads back as typed).
            lead = next((k for k, (negative, _) in enumerate(terms) if not negative), 0)
            terms = [terms[lead], *terms[:lead], *terms[lead + 1 :]]
        parts = []
        for k, (negative, p) in enumerate(terms):
            text = paren(p, ADD + 1 if k or negative else ADD, st)
            if k == 0:
                parts.append(("-" + text) if negative else text)
            else:
                parts.append((" - " if negative else " + ") + text)
        text = "".join(parts)
        return Piece(text, ADD, row, sym=self.result and node.rank == 2 and _closed_under_transpose(node))

    def short_terms(self, node: g.Add) -> list[bool]:
        """Which terms of a sum print as what they repeat (``x + a``, ``W*X + b``, ``X*W + b'``):
        those that the parser expands back to the same node. So a term of the full shape must
        be there (else the first term prints in full), and a column and a row may not meet
        before it (the parser refuses ``b + c'``)."""
        forms = [self.expansion(t) for t in node.args]
        # A negated expansion prints short only where its magnitude does (see term: x read as a
        # scalar against the naming convention prints in full, with its ones, as a column or row).
        forms = [
            f
            if f is None or not (isinstance(t, g.Contract) and t.coeff < 0)
            else self.expansion(g.contract(t.args, t.labels, t.out, -t.coeff))
            for t, f in zip(node.args, forms, strict=True)
        ]
        short = [f is not None for f in forms]
        first_full = next((k for k, s in enumerate(short) if not s), None)
        before = {f[1] for f in forms[: first_full if first_full is not None else len(forms)] if f is not None}
        if first_full is None or {"c", "r"} <= before:
            short[0] = False
        return short

    def widened(self, node: g.Node, others: Sequence[g.Node]) -> Piece:
        """The piece of an operand of an element-wise operation (``X > b``, ``max(X, b)``,
        ``X.^b``): an expansion prints as what it repeats where another operand has the full
        shape and is no expansion itself (the parser expands it back)."""
        if node.rank and any(o.rank == node.rank and o is not node for o in others):
            found = self.expansion(node)
            # Only a vector: the parser repeats a scalar here inside the node (max(X, a) is not
            # max(X, a*ones(m,n))), so a scalar's ones stays written.
            vector = found is not None and found[1] != "s"
            if vector and any(o.rank == node.rank and self.expansion(o) is None for o in others):
                return found[0]  # type: ignore[index]
        return self.memo[node]

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
        epiece = self.widened(exponent, node.args)
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
        if coeff == 1:
            return body
        if node in self.early and not self.result and not self.style.latex and abs(coeff.numerator) == 1:
            # lambda/2*w'*w as typed, not lambda*w'*w/2: the divisor follows the leading scalar.
            first = node.args[0]
            while isinstance(first, g.Contract) and first.coeff == 1 and first.rank and first.args:
                first = first.args[0]  # (lambda*w)'*w: the leading scalar is inside
            lead = self.memo.get(first)
            text = paren(lead, MUL, self.style) if lead is not None else ""
            if first.rank == 0 and text and body.text.startswith(text + "*"):
                sign = "-" if coeff < 0 else ""
                text = f"{sign}{text}/{coeff.denominator}{body.text[len(text) :]}"
                return Piece(text, UNARY if sign else MUL, body.row, sym=body.sym)
        return self.style.scaled(coeff, body)

    def contraction_body(self, node: g.Contract) -> Piece:
        st = self.style
        out = node.out
        pieces = [self.memo[a] for a in node.args]
        if len(node.args) == 1:
            single = self.single(node, pieces[0])
            if single is not None:
                return single
        expanded = None if self.result else self.expanded_hadamard(node)
        if expanded is not None:
            return expanded
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

    def expanded_hadamard(self, node: g.Contract) -> Piece | None:
        """``X .* b`` and ``X ./ b`` as typed: the element-wise product of a matrix and an
        expansion of a vector or scalar (``b*ones(n)'``) prints the vector, as the parser reads it."""
        if len(node.args) != 2 or node.rank != 2 or any(labs != node.out for labs in node.labels):
            return None
        st = self.style
        texts = []
        expansions = 0
        for k, arg in enumerate(node.args):
            divide = k == 1 and is_reciprocal(arg)
            inner = arg.args[0] if divide else arg
            found = self.expansion(inner)
            if found is not None and found[1] == "s":
                return None  # X .* a is a scaling when parsed, not X .* (a*ones(m,n))
            expansions += found is not None
            piece = found[0] if found is not None else self.memo[inner]
            texts.append((divide, piece))
        if expansions != 1:
            return None
        (_, left), (divide, right) = texts
        first = paren(left, MUL + (left.op == "mul"), st)
        if divide:
            return Piece(st.hdivide(paren(left, MUL, st), paren(right, POW, st)), MUL, op="had")
        return Piece(st.hadamard(first, paren(right, MUL + 1, st)), MUL, op="had")

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


def concatenation_runs(node: g.Add) -> list[g.Node] | None:
    """A sum of concatenations as typed (``[u; v] + [x; y]``, its terms flattened into one sum):
    the consecutive runs of terms that each place every part once; None if there is no such split."""
    runs: list[list[g.Node]] = []
    seen: set[g.Node] = set()
    for term in node.args:
        blocks = [a for a in term.args if isinstance(a, g.Block)] if isinstance(term, g.Contract) else []
        if len(blocks) != 1:
            runs.append([term])  # a term of its own (2*[x; y] is a multiple of a sum)
            runs.append([])
            seen = set()
            continue
        if blocks[0] in seen or not runs:
            runs.append([])
            seen = set()
        seen.add(blocks[0])
        runs[-1].append(term)
    runs = [run for run in runs if run]
    stacks = [run for run in runs if len(run) > 1 or concatenation_parts(run[0], merge=False) is not None]
    if len(runs) < 2 or not stacks:
        return None
    nodes = [g.add(run) for run in runs]
    placed = [n for n, run in zip(nodes, runs, strict=True) if len(run) > 1 or _has_block(run[0])]
    return nodes if all(concatenation_parts(n, merge=False) is not None for n in placed) else None


def _has_block(node: g.Node) -> bool:
    return isinstance(node, g.Contract) and any(isinstance(a, g.Block) for a in node.args)


def concatenation_parts(node: g.Node, merge: bool = True) -> tuple[list[g.Node], bool] | None:
    """The entries of a concatenation, in order, and whether they stand one under another: a
    vector or matrix that is a sum of entries each placed by a :class:`~matrixcalculus.ir.graph.Block`
    (as :func:`~matrixcalculus.ir.graph.concatenate` builds ``[u; v]``, ``[A; x']``, ``[u, v]``;
    a gap is ``zeros``). None for any other node.

    >>> u, v = g.var("u", "vector", ("n",)), g.var("v", "vector", ("m",))
    >>> len(concatenation_parts(g.concatenate([u, v]))[0])
    2
    """
    if node.rank not in (1, 2) or not isinstance(node, g.Add | g.Contract):
        return None
    terms = node.args if isinstance(node, g.Add) else (node,)
    placed: dict[tuple[g.Dim, g.Dim], list[g.Node]] = {}
    axis: int | None = None
    total: g.Dim | None = None
    for term in terms:
        if not isinstance(term, g.Contract):
            return None
        blocks = [k for k, a in enumerate(term.args) if isinstance(a, g.Block)]
        if len(blocks) != 1:
            return None
        (k,) = blocks
        place, (at, inner) = term.args[k], term.labels[k]
        if at not in term.out or (axis is not None and term.out.index(at) != axis):
            return None
        axis = term.out.index(at)
        total = place.params[0]
        rest_ops = [a for j, a in enumerate(term.args) if j != k]
        rest_labels = [labs for j, labs in enumerate(term.labels) if j != k]
        carried = {lab for labs in rest_labels for lab in labs}
        if inner not in carried and place.params[2] != 1:
            return None
        order = [inner if lab == at else lab for lab in term.out]
        entry_out = tuple(lab for lab in order if lab in carried)
        if any(lab not in carried for lab in term.out if lab != at) or inner in term.out:
            return None
        entry = g.contract(rest_ops, rest_labels, entry_out, term.coeff) if rest_ops else g.const(term.coeff)
        key = (place.params[1], place.params[2])
        if key in placed and not merge:
            return None  # a part placed twice: as typed, a sum of stacks (concatenation_runs)
        placed.setdefault(key, []).append(entry)
    assert total is not None and axis is not None
    width = node.shape[1 - axis] if node.rank == 2 else None
    entries: list[g.Node] = []
    offset: g.Dim = 0
    pending = {key: g.add(values) for key, values in placed.items()}
    while pending:
        slot = next((key for key in pending if key[0] == offset), None)
        if slot is None:
            gaps = [(g.dim_difference(o, offset), o) for o, _ in pending]
            found = [(gap, o) for gap, o in gaps if gap is not None]
            if not found:
                return None
            gap = min(found, key=lambda item: len(str(item[0])))[0]
            entries.append(_zeros_part(gap, width, axis))
            offset = g.dim_sum(offset, gap)
            continue
        entries.append(pending.pop(slot))
        offset = g.dim_sum(offset, slot[1])
    rest = g.dim_difference(total, offset)
    if rest is None:
        return None
    if rest != 0:
        entries.append(_zeros_part(rest, width, axis))
    return entries, axis == 0


def _zeros_part(length: g.Dim, width: g.Dim | None, axis: int) -> g.Node:
    if width is None:
        return g.zeros((length,))
    return g.zeros((length, width) if axis == 0 else (width, length))


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
