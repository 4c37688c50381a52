"""Printing: graph -> matrix notation (input syntax or LaTeX), or index notation.

The graph keeps products as Einstein contractions; matrix notation is recovered here, at the
edge. A contraction is printed by splitting its operand list into adjacent groups whose
partial results are scalars, vectors or matrices (an interval dynamic programme, as for
matrix-chain ordering), each split being one matrix-notation operation: a product ``A*B``,
an inner product ``x'*y``, an outer product ``x*y'``, a Hadamard product ``x .* y``, a
diagonal scaling ``diag(v)*A``, a trace ``tr(A*B)``. Only adjacent groups are merged, so the
operands print in the order they are stored and the text parses back to the same graph.

A contraction with no such split (a third-order tensor, a Kronecker-type product) prints in
index notation.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.registry import FunctionRecord, fill
from matrixcalculus.transform.simplify import is_symmetric

# Binding strength, loose to tight.
CMP, ADD, MUL, UNARY, POW, POSTFIX, ATOM = 1, 2, 3, 4, 5, 6, 7


@dataclass(frozen=True)
class Piece:
    """Printed text of a value; ``row`` says a vector reads as a row; ``plain`` undoes a transpose."""

    text: str
    prec: int
    row: bool = False
    plain: Piece | None = None
    sym: bool = False  # a symmetric matrix: its own transpose
    op: str | None = None  # "mul" for a matrix product, "had" for a Hadamard product


class Style:
    """The input syntax; :class:`LatexStyle` overrides the spellings."""

    latex = False

    def mul(self, a: str, b: str) -> str:
        return f"{a}*{b}"

    def hadamard(self, a: str, b: str) -> str:
        return f"{a} .* {b}"

    def hdivide(self, a: str, b: str) -> str:
        return f"{a} ./ {b}"

    def divide(self, a: str, b: str) -> str:
        return f"{a}/{b}"

    def transpose(self, a: str) -> str:
        return f"{a}'"

    def power(self, a: str, b: str, elementwise: bool) -> str:
        return f"{a}{'.^' if elementwise else '^'}{b}"

    def call(self, name: str, arg: str) -> str:
        return f"{name}({arg})"

    def function(self, record: FunctionRecord, args: Sequence[Piece], dim: int | None = None) -> Piece:
        """A registry function applied to printed arguments (and its axis), by its record's template."""
        texts = [a.text for a in args] + ([] if dim is None else [str(dim)])
        template = record.text_template(dim is not None)
        return Piece(fill(template, texts, [self.bare(a) for a in args]), ATOM)

    def bare(self, arg: Piece) -> str:
        """An argument as a template's ``{pk}``: in parentheses unless it binds tighter than a postfix."""
        return arg.text if arg.prec >= POSTFIX else f"({arg.text})"

    def dimension(self, dim: g.Dim) -> Piece:
        """The size of a dimension as a value: ``n``, ``m*p``."""
        if isinstance(dim, g.DimProduct):
            parts = ([str(dim.scale)] if dim.scale != 1 else []) + [self.name(f) for f in dim.factors]
            text = parts[0]
            for part in parts[1:]:
                text = self.mul(text, part)
            return Piece(text, MUL)
        return Piece(self.name(dim), ATOM) if isinstance(dim, str) else self.number(Fraction(dim))

    def eye(self, n: g.Dim) -> str:
        return f"eye({n})"

    def ones(self, shape: g.Shape) -> str:
        return f"ones({','.join(map(str, shape))})"

    def zeros(self, shape: g.Shape) -> str:
        return f"zeros({','.join(map(str, shape))})"

    def compare(self, a: str, op: str, b: str) -> str:
        return f"{a} {op} {b}"

    def name(self, name: str) -> str:
        return name

    def number(self, value: Fraction) -> Piece:
        if value.denominator == 1:
            return Piece(str(value.numerator), UNARY if value < 0 else ATOM)
        decimal = _decimal(value)
        if decimal is not None:
            return Piece(decimal, UNARY if value < 0 else ATOM)
        return Piece(f"{value.numerator}/{value.denominator}", MUL)

    def scaled(self, coeff: Fraction, body: Piece) -> Piece:
        """``coeff * body`` for a coefficient other than 1 (a vector keeps its orientation)."""
        piece = self._scaled(coeff, body)
        return Piece(piece.text, piece.prec, body.row, sym=body.sym)

    def _scaled(self, coeff: Fraction, body: Piece) -> Piece:
        if coeff == -1:
            if body.prec >= MUL:
                return Piece("-" + body.text, min(UNARY, body.prec))
            return Piece(f"-({body.text})", UNARY)
        inner = paren(body, MUL)
        if _as_fraction(coeff):
            num = coeff.numerator
            lead = "" if num == 1 else "-" if num == -1 else f"{num}*"
            return Piece(f"{lead}{self.divide(inner, str(coeff.denominator))}", MUL)
        return Piece(self.mul(self.number(coeff).text, inner), MUL)


class LatexStyle(Style):
    latex = True

    def mul(self, a: str, b: str) -> str:
        return f"{a} {b}"

    def hadamard(self, a: str, b: str) -> str:
        return f"{a} \\odot {b}"

    def hdivide(self, a: str, b: str) -> str:
        return f"{a} \\oslash {b}"

    def divide(self, a: str, b: str) -> str:
        return f"\\frac{{{a}}}{{{b}}}"

    def transpose(self, a: str) -> str:
        return f"{a}^\\top"

    def power(self, a: str, b: str, elementwise: bool) -> str:
        b = b[1:-1] if b.startswith("(") and b.endswith(")") else b
        circ = "\\circ " if elementwise else ""
        return f"{a}^{{{circ}{b}}}"

    def call(self, name: str, arg: str) -> str:
        return f"\\operatorname{{{name}}}\\left({arg}\\right)"

    def function(self, record: FunctionRecord, args: Sequence[Piece], dim: int | None = None) -> Piece:
        template = record.latex_template(dim is not None)
        texts = [a.text for a in args] + ([] if dim is None else [str(dim)])
        text = fill(template, texts, [self.bare(a) for a in args])
        # A template between two arguments is an infix operator ({p0} \otimes {p1}) and binds like
        # a product; one that only starts with its argument is a postfix ({p0}^{-1}).
        if re.match(r"\{p?\d+\}", template) and re.search(r"\{p?\d+\}$", template):
            return Piece(text, MUL)
        return Piece(text, POSTFIX if template.startswith("{p") else ATOM)

    def bare(self, arg: Piece) -> str:
        return arg.text if arg.prec >= POSTFIX else f"\\left({arg.text}\\right)"

    def eye(self, n: g.Dim) -> str:
        return "I"

    def ones(self, shape: g.Shape) -> str:
        return "\\mathbf{1}"

    def zeros(self, shape: g.Shape) -> str:
        return "\\mathbf{0}"

    def name(self, name: str) -> str:
        greek = {
            "alpha",
            "beta",
            "gamma",
            "delta",
            "epsilon",
            "lambda",
            "mu",
            "sigma",
            "theta",
            "tau",
            "rho",
            "eta",
            "kappa",
            "omega",
            "phi",
            "psi",
            "xi",
            "nu",
            "zeta",
            "chi",
            "pi",
        }
        base, _, sub = name.partition("_")
        if base in greek:
            base = "\\" + base
        elif len(base) > 1 and not base[1:].isdigit():
            base = f"\\mathit{{{base}}}"
        elif len(base) > 1:
            base, sub = base[0], base[1:] + sub
        return f"{base}_{{{sub}}}" if sub else base

    def number(self, value: Fraction) -> Piece:
        if not _as_fraction(value):
            return super().number(value)
        sign = "-" if value < 0 else ""
        return Piece(f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}", ATOM if not sign else UNARY)

    def _scaled(self, coeff: Fraction, body: Piece) -> Piece:
        if coeff == -1:
            return super()._scaled(coeff, body)
        inner = paren(body, MUL, self)
        return Piece(self.mul(self.number(coeff).text, inner), MUL)


TEXT = Style()
LATEX = LatexStyle()


def _as_fraction(value: Fraction) -> bool:
    """Print as ``p/q`` (``x/2``, ``2*x/3``) rather than a decimal (``0.001*x``)?"""
    return value.denominator != 1 and (value.denominator <= 12 or _decimal(value) is None)


def _decimal(value: Fraction) -> str | None:
    """An exact short decimal for ``value`` if it has one (0.5, 0.001), else None."""
    den = value.denominator
    twos = fives = 0
    while den % 2 == 0:
        den //= 2
        twos += 1
    while den % 5 == 0:
        den //= 5
        fives += 1
    if den != 1:
        return None
    digits = max(twos, fives)
    if digits > 6:
        return None
    text = f"{float(value):.{digits}f}" if digits else str(value.numerator)
    return text if Fraction(text) == value else None


def paren(p: Piece, prec: int, style: Style = TEXT) -> str:
    if p.prec >= prec:
        return p.text
    return f"\\left({p.text}\\right)" if style.latex else f"({p.text})"


def transposed(p: Piece, style: Style) -> Piece:
    if p.plain is not None:
        return p.plain
    if p.sym:
        return p
    if style.latex and p.text.endswith("^{-1}"):
        return Piece(p.text[:-5] + "^{-\\top}", POSTFIX, not p.row, p)
    if style.latex and p.prec == POSTFIX and "^" in p.text:
        return Piece(style.transpose(f"\\left({p.text}\\right)"), POSTFIX, not p.row, p)
    return Piece(style.transpose(paren(p, POSTFIX, style)), POSTFIX, not p.row, p)


def as_row(p: Piece, style: Style) -> Piece:
    return p if p.row else transposed(p, style)


def as_col(p: Piece, style: Style) -> Piece:
    return transposed(p, style) if p.row else p


# ------------------------------------------------------------------------------ entry points


class NotMatrixNotation(Exception):
    """The value needs index notation (a tensor of order three or more, a Kronecker product)."""


def to_text(node: g.Node, *, result: bool = False, scalars: frozenset[str] = frozenset(), share: bool = False) -> str:
    """The expression in the input syntax; parsing it gives the same values.

    ``result=True`` is for derived expressions: products may be printed in any operand
    order, choosing the one with the fewest transposes (an expression the user typed keeps its
    order, so that its text parses back to the very same graph). ``scalars``: names declared
    scalars, which may print bare where they are broadcast (``x + a``); another scalar variable
    prints as ``vector(c)`` there, which is what makes it a scalar when parsed again.

    ``share=True`` (with ``result``): a derived expression whose text, written out in full,
    would repeat its shared subexpressions many times over (:func:`needs_bindings`) names them
    instead, ``text`` then ``where`` and one ``  name = text`` line per name, so that the text
    stays linear in the size of the graph. (That form does not parse back; the full form does.)
    """
    if share and result and needs_bindings([node]):
        body, bindings = _shared_text([node], _taken_names(node), TEXT, scalars)
        return "\n".join([body[0], "where", *(f"  {name} = {text}" for name, text in bindings)])
    return _Printer(TEXT, result, scalars).piece(node).text


def to_latex(node: g.Node, *, result: bool = False, scalars: frozenset[str] = frozenset(), share: bool = False) -> str:
    """The expression in LaTeX; ``share`` as in :func:`to_text` (``body, \\text{where } r = ...``)."""
    if share and result and needs_bindings([node]):
        body, bindings = _shared_text([node], _taken_names(node), LATEX, scalars)
        where = ", \\; ".join(f"{LATEX.name(name)} = {text}" for name, text in bindings)
        return f"{body[0]}, \\quad \\text{{where }} {where}"
    return _Printer(LATEX, result, scalars).piece(node).text


_BINDING_NAMES = ("r", "s", "u", "v", "h", "q", "z", "e", "c", "d")

# Written out in full, a derived expression repeats each shared subexpression at every use: its
# text grows with the number of nodes of the graph unfolded into a tree, which is exponential in
# depth for nested softmax or Hessians of deep compositions. Up to this many unfolded nodes (or
# four times the graph's own size, whichever is more) the full text is printed, as it always
# was; above, shared subexpressions are named in a ``where`` clause.
SHARE_TREE_LIMIT = 1000


def needs_bindings(roots: Sequence[g.Node]) -> bool:
    """Would the full text of ``roots`` repeat shared subexpressions too often (see above)?"""
    order = g.postorder(*roots)
    limit = max(SHARE_TREE_LIMIT, 4 * len(order))
    size: dict[g.Node, int] = {}
    for node in order:
        # Capped: only "more than the limit" matters, and the uncapped count can be huge.
        size[node] = min(limit + 1, 1 + sum(size[a] for a in node.args))
    return sum(size[r] for r in roots) > limit


def _taken_names(node: g.Node) -> set[str]:
    """Names a ``where`` name must not be: the variables and the named dimensions."""
    taken: set[str] = set()
    for sub in g.postorder(node):
        if isinstance(sub, g.Var):
            taken.add(sub.name)
        if isinstance(sub, g.DimSize):
            taken.update(g.dim_names(sub.dim))
        for d in sub.shape:
            taken.update(g.dim_names(d))
    return taken


def with_bindings(
    roots: Sequence[g.Node], reserved: set[str], style: Style = TEXT, min_length: int = 12
) -> tuple[list[str], list[tuple[str, str]]]:
    """Print several derived expressions together, naming repeated subexpressions.

    Returns the texts and the ``where`` bindings ``[(name, text), ...]`` in dependency order:
    a subexpression is named when it is used at least twice and its text is at least
    ``min_length`` characters, so that naming it shortens the result. Outer subexpressions
    get the first names (``r`` for the residual of a loss).

    Where the full texts would be long (:func:`needs_bindings`), the length that decides is that
    of the text with the names already chosen inside it (:func:`_shared_text`): linear time.
    """
    if needs_bindings(roots):
        return _shared_text(roots, reserved, style, frozenset(), min_length)
    uses = _uses(roots)
    order = g.postorder(*roots)
    plain = _Printer(style, True)
    plain.piece_all(order)
    chosen = [
        node for node in order if uses.get(node, 0) >= 2 and node.args and len(plain.memo[node].text) >= min_length
    ]
    names = (n for n in _BINDING_NAMES + tuple(f"r{i}" for i in range(1, 1000)) if n not in reserved)
    # The most used (then the outermost) subexpression gets the first name.
    position = {node: k for k, node in enumerate(order)}
    chosen.sort(key=lambda node: (-uses[node], -position[node]))
    name_of = {node: next(names) for node in chosen}
    printer = _Printer(style, True)
    bindings: list[tuple[str, str]] = []
    for node in order:
        piece = printer.render(node)
        if node in name_of:
            bindings.append((name_of[node], piece.text))
            piece = Piece(style.name(name_of[node]), ATOM, piece.row)
        printer.memo[node] = piece
    return [printer.memo[r].text for r in roots], bindings


def _uses(roots: Sequence[g.Node]) -> dict[g.Node, int]:
    """How often each node is used: as an argument (counted per use) or as a root."""
    uses: dict[g.Node, int] = {}
    for node in g.postorder(*roots):
        for arg in node.args:
            uses[arg] = uses.get(arg, 0) + 1
    for root in roots:
        uses[root] = uses.get(root, 0) + 1
    return uses


def _shared_text(
    roots: Sequence[g.Node], reserved: set[str], style: Style, scalars: frozenset[str], min_length: int = 12
) -> tuple[list[str], list[tuple[str, str]]]:
    """:func:`with_bindings` in time linear in the graph: each node is printed with the nodes
    named before it (children first) printed by their names, so no text repeats a shared part.

    Two passes: the first decides which nodes to name (used at least twice, of order at most
    two, and a text of at least ``min_length`` characters with the names inside it), the second
    prints with the final names, the most used (then outermost) node getting the first name.
    """
    uses = _uses(roots)
    order = g.postorder(*roots)
    probe = _Printer(style, True, scalars, share=True)
    chosen: list[g.Node] = []
    for node in order:
        piece = probe.render(node)
        if uses.get(node, 0) >= 2 and node.args and node.rank <= 2 and len(piece.text) >= min_length:
            chosen.append(node)
            probe.names[node] = "r0"  # a stand-in as long as most names
            piece = Piece(style.name("r0"), ATOM, piece.row, sym=piece.sym)
        probe.memo[node] = piece
    spare = (n for n in itertools.chain(_BINDING_NAMES, (f"r{i}" for i in itertools.count(1))) if n not in reserved)
    position = {node: k for k, node in enumerate(order)}
    chosen.sort(key=lambda node: (-uses[node], -position[node]))
    printer = _Printer(style, True, scalars, share=True)
    printer.names = {node: next(spare) for node in chosen}
    bindings: list[tuple[str, str]] = []
    for node in order:
        piece = printer.render(node)
        if node in printer.names:
            name = printer.names[node]
            bindings.append((name, piece.text))
            piece = Piece(style.name(name), ATOM, piece.row, sym=piece.sym)
        printer.memo[node] = piece
    return [printer.memo[r].text for r in roots], bindings


class _Printer:
    def __init__(self, style: Style, result: bool = False, scalars: frozenset[str] = frozenset(), share: bool = False):
        self.style = style
        self.result = result
        self.scalars = scalars
        self.memo: dict[g.Node, Piece] = {}
        # With `where` names (_shared_text): this printer prints every part itself, so that a
        # named part is printed by its name everywhere; `names` holds the names, by node.
        self.share = share
        self.names: dict[g.Node, str] = {}
        self._bases: _Printer | None = None
        self._leaves: _Printer | None = None

    def base_printer(self) -> _Printer:
        """The printer of reciprocal bases (``a/b``): a typed-expression printer, as ever, kept
        for the whole call; with ``where`` names, this printer itself (a base may be named)."""
        if self.share:
            return self
        if self._bases is None:
            self._bases = _Printer(self.style)
        return self._bases

    def leaf_printer(self) -> _Printer:
        """The derived-expression printer of the matrix-notation parts of index notation."""
        if self.share or (self.result and not self.scalars):
            return self
        if self._leaves is None:
            self._leaves = _Printer(self.style, True)
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
            piece = st.function(node.record, args, node.dim)
            # A result that is not a scalar is a row where its arguments are (kron of two rows).
            return Piece(piece.text, piece.prec, bool(node.rank) and all(a.row for a in args))
        raise NotMatrixNotation(type(node).__name__)  # pragma: no cover

    # --------------------------------------------------------------------------- sums

    def broadcast_scalar(self, node: g.Node) -> Piece | None:
        """The scalar printed for a term that repeats a scalar over a tensor (``x + a``)."""
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
                return False, self.memo[node]
        if isinstance(node, g.Const) and node.value < 0:
            return True, st.number(-node.value)
        return False, self.memo[node]

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
            orders += [_chain_order(items, out), items[::-1]]
        candidates: list[Piece] = []
        for k, candidate in enumerate(orders):
            try:
                piece, labels = _best_split(candidate, out, st, self.result, self.base_printer())
            except NotMatrixNotation:
                if k == 0 and not self.result:
                    orders.append(_chain_order(items, out))
                continue
            if len(labels) == 2 and labels != out and not piece.sym:
                piece = transposed(piece, st)
            candidates.append(piece)
        if not candidates:
            raise NotMatrixNotation("no matrix-notation order")
        if not self.result:
            return candidates[0]
        return min(candidates, key=lambda p: (_transposes(p.text) + p.row, len(p.text)))

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

    def items(self, node: g.Contract, pieces: list[Piece]) -> list[_Item]:
        """The operands as items for the split search, with implicit sums made explicit ``ones``."""
        st = self.style
        count: dict[int, int] = {}
        for labs in node.labels:
            for lab in set(labs):
                count[lab] = count.get(lab, 0) + 1
        dims: dict[int, g.Dim] = {}
        for arg, labs in zip(node.args, node.labels, strict=True):
            dims.update(zip(labs, arg.shape, strict=True))
        items: list[_Item] = []
        for arg, labs, p in zip(node.args, node.labels, pieces, strict=True):
            if arg.rank > 2:
                raise NotMatrixNotation("operand of order three or more")
            alone = all(count[lab] == 1 and lab not in node.out for lab in labs)
            if arg.rank and alone and len(set(labs)) == len(labs):
                # Summed over all its entries and sharing none: the scalar sum(X).
                items.append(_Item(Piece(st.call("sum", p.text), ATOM), (), None))
                continue
            if arg.rank == 2 and labs[0] == labs[1]:
                lab = labs[0]
                if count[lab] == 1 and lab not in node.out:
                    items.append(_Item(Piece(st.call("tr", p.text), ATOM), (), None))
                else:
                    items.append(_Item(Piece(st.call("diag", p.text), ATOM), (lab,), None))
                continue
            items.append(_Item(p, labs, arg))
            for lab in labs:
                if count[lab] == 1 and lab not in node.out:
                    # A label summed in one operand only: a product with ones(n).
                    items.append(_Item(Piece(st.ones((dims[lab],)), ATOM), (lab,), g.ones((dims[lab],))))
        return items


def _closed_under_transpose(node: g.Add) -> bool:
    """A sum such as A + A' is symmetric: its terms are the transposes of its terms."""
    terms = set(node.args)
    return all(g.transpose(t) in terms for t in node.args)


def _transposes(text: str) -> int:
    return text.count("'") + text.count("\\top")


def _chain_order(items: list[_Item], out: tuple[int, ...]) -> list[_Item]:
    """Operands reordered to walk the index chain: from the first free index, each next operand
    sharing an index with the last; scalars first."""
    rest = [it for it in items if it.labels]
    ordered = [it for it in items if not it.labels]
    current: set[int] = {out[0]} if out else set()
    while rest:
        pick = next((it for it in rest if current & set(it.labels)), None)
        if pick is None:
            pick = rest[0]
        rest.remove(pick)
        ordered.append(pick)
        current = set(pick.labels)
    return ordered


@dataclass(frozen=True)
class _Item:
    piece: Piece
    labels: tuple[int, ...]
    node: g.Node | None


# The most operands for which _best_split searches all split points (O(n^3) merges of texts);
# longer products are associated left to right.
_DP_WIDTH = 12


def _best_split(
    items: list[_Item], out: tuple[int, ...], st: Style, identity: bool = False, bases: _Printer | None = None
) -> tuple[Piece, tuple[int, ...]]:
    """The shortest matrix-notation rendering of the contraction of ``items`` (adjacent merges only)."""
    n = len(items)
    where: dict[int, list[int]] = {}
    for k, item in enumerate(items):
        for lab in item.labels:
            where.setdefault(lab, []).append(k)
    out_set = set(out)

    def kept(a: int, b: int) -> tuple[int, ...]:
        labs: list[int] = []
        for k in range(a, b + 1):
            for lab in items[k].labels:
                if lab in labs:
                    continue
                if lab in out_set or any(j < a or j > b for j in where[lab]):
                    labs.append(lab)
        return tuple(labs)

    Best = tuple[Piece, tuple[int, ...], g.Node | None]

    def cost(p: Piece) -> tuple[int, int]:
        # Derived expressions: fewest transposes, then shortest. Typed ones: shortest.
        return (_transposes(p.text), len(p.text)) if identity else (0, len(p.text))

    if n > _DP_WIDTH:
        # Long products: fold left to right (the search over all splits is cubic in n).
        acc: Best | None = (items[0].piece, items[0].labels, items[0].node)
        for k in range(1, n):
            acc = _combine(
                acc, (items[k].piece, items[k].labels, items[k].node), set(kept(0, k)), st, identity, out, bases
            )
            if acc is None:
                raise NotMatrixNotation("no matrix-notation order")
        assert acc is not None
        return acc[0], acc[1]
    best: dict[tuple[int, int], Best] = {}
    for k, item in enumerate(items):
        best[(k, k)] = (item.piece, item.labels, item.node)
    for width in range(2, n + 1):
        for a in range(0, n - width + 1):
            b = a + width - 1
            keep = kept(a, b)
            if len(keep) > 2:
                continue
            choice: Best | None = None
            for split in range(a, b):
                left, right = best.get((a, split)), best.get((split + 1, b))
                if left is None or right is None:
                    continue
                merged = _combine(left, right, set(keep), st, identity, out, bases)
                if merged is not None and (choice is None or cost(merged[0]) < cost(choice[0])):
                    choice = merged
            if choice is not None:
                if (
                    identity
                    and len(choice[1]) == 2
                    and width < n
                    and all(items[k].node is not None for k in range(a, b + 1))
                ):
                    # A symmetric partial product needs no transpose: (S*B*S)' is S*B*S.
                    sub = g.contract(
                        [items[k].node for k in range(a, b + 1)],  # type: ignore[misc]
                        [items[k].labels for k in range(a, b + 1)],
                        choice[1],
                    )
                    if is_symmetric(sub):
                        p = choice[0]
                        choice = (Piece(p.text, p.prec, p.row, p.plain, True, p.op), choice[1], choice[2])
                best[(a, b)] = choice
    if (0, n - 1) not in best:
        raise NotMatrixNotation("no matrix-notation order")
    piece, labels, _ = best[(0, n - 1)]
    return piece, labels


def _is_reciprocal(node: g.Node | None) -> bool:
    return (
        isinstance(node, g.Power)
        and isinstance(node.args[1], g.Const)
        and node.args[1].value == -1
        and not isinstance(node.args[0], g.Const)
    )


def _combine(
    left: tuple[Piece, tuple[int, ...], g.Node | None],
    right: tuple[Piece, tuple[int, ...], g.Node | None],
    keep: set[int],
    st: Style,
    identity: bool = False,
    out: tuple[int, ...] | None = None,
    bases: _Printer | None = None,
) -> tuple[Piece, tuple[int, ...], None] | None:
    """One matrix-notation operation merging two adjacent groups, or None if there is none.

    ``identity``: drop identity factors (``A*eye(n)`` prints ``A``), for derived expressions;
    an expression the user typed keeps them, so that it parses back to the same graph.
    """
    P, lp, np_ = left
    Q, lq, nq = right
    shared = [lab for lab in lp if lab in lq]
    summed = [lab for lab in shared if lab not in keep]
    rp, rq = len(lp), len(lq)

    def mul(a: Piece, b: Piece) -> str:
        # A Hadamard product inside a matrix product is parenthesised for the reader,
        # although * and .* bind alike: ((W'*r) .* s)*x'.
        return st.mul(paren(a, MUL + (a.op == "had"), st), paren(b, MUL + 1, st))

    def had(a: Piece, b: Piece) -> str:
        return st.hadamard(paren(a, MUL + (a.op == "mul"), st), paren(b, MUL + 1, st))

    def orient(p: Piece, labs: tuple[int, ...], want: tuple[int, ...]) -> Piece:
        return p if labs == want else transposed(p, st)

    if rp == 0 or rq == 0:
        if identity and out is not None and len(lp if rp else lq) == 2 and (lp if rp else lq) == tuple(out[::-1]):
            # c*M' rather than (c*M)': transpose the matrix factor, not the product.
            if rp:
                P, lp = transposed(P, st), lp[::-1]
            else:
                Q, lq = transposed(Q, st), lq[::-1]
        if rq == 0 and _is_reciprocal(nq):
            base = _base_piece(nq, st, bases=bases)
            text = st.divide(P.text, base.text) if st.latex else st.divide(paren(P, MUL, st), paren(base, POW, st))
        else:
            text = mul(P, Q)
        return Piece(text, MUL, P.row if rp else Q.row), lp if rp else lq, None
    if rp == 1 and rq == 1:
        (i,), (j,) = lp, lq
        if i == j:
            if summed:
                return Piece(mul(as_row(P, st), as_col(Q, st)), MUL, op="mul"), (), None
            Pc, Qc = (P, Q if Q.row == P.row else transposed(Q, st))
            if _is_reciprocal(nq):
                text = st.hdivide(paren(Pc, MUL, st), paren(_base_piece(nq, st, Pc.row, bases), POW, st))
            else:
                text = had(Pc, Qc)
            return Piece(text, MUL, Pc.row, op="had"), (i,), None
        if i in keep and j in keep:
            return Piece(mul(as_col(P, st), as_row(Q, st)), MUL, op="mul"), (i, j), None
        return None
    if rp + rq == 3:
        vec_left = rp == 1
        V, lv = (P, lp) if vec_left else (Q, lq)
        M, lm = (Q, lq) if vec_left else (P, lp)
        mnode = nq if vec_left else np_
        (i,) = lv
        if i not in lm:
            return None
        other = lm[1] if lm[0] == i else lm[0]
        if i in summed:
            if vec_left:
                return Piece(mul(as_row(V, st), orient(M, lm, (i, other))), MUL, True, op="mul"), (other,), None
            return Piece(mul(orient(M, lm, (other, i)), as_col(V, st)), MUL, op="mul"), (other,), None
        # i is kept: a diagonal scaling of the matrix's rows or columns.
        D = Piece(st.call("diag", V.text), ATOM, sym=True)
        if isinstance(mnode, g.Delta):
            return D, (i, other), None
        if vec_left:
            return Piece(mul(D, orient(M, lm, (i, other))), MUL, op="mul"), (i, other), None
        return Piece(mul(orient(M, lm, (other, i)), D), MUL, op="mul"), (other, i), None
    # two matrices
    if len(shared) == 1:
        (s,) = shared
        if s not in summed:
            return None
        po = lp[1] if lp[0] == s else lp[0]
        qo = lq[1] if lq[0] == s else lq[0]
        Pm, Qm = orient(P, lp, (po, s)), orient(Q, lq, (s, qo))
        if identity and isinstance(nq, g.Delta):
            return Pm, (po, qo), None
        if identity and isinstance(np_, g.Delta):
            return Qm, (po, qo), None
        direct = Piece(mul(Pm, Qm), MUL, op="mul")
        if identity:
            # (Q*P)' may need fewer transposes than P'*Q' for the same value.
            swapped = transposed(Piece(mul(orient(Q, lq, (qo, s)), orient(P, lp, (s, po))), MUL, op="mul"), st)
            if _transposes(swapped.text) < _transposes(direct.text):
                return swapped, (po, qo), None
        return direct, (po, qo), None
    if len(shared) == 2:
        Qp = orient(Q, lq, lp)
        if len(summed) == 2:
            if lq == lp:
                return Piece(st.call("tr", mul(transposed(P, st), Q)), ATOM), (), None
            return Piece(st.call("tr", mul(P, Q)), ATOM), (), None
        if not summed:
            if _is_reciprocal(nq) and lq == lp:
                text = st.hdivide(paren(P, MUL, st), paren(_base_piece(nq, st, bases=bases), POW, st))
            else:
                text = had(P, Qp)
            return Piece(text, MUL, op="had"), lp, None
        # sum_j P[i,j] Q[i,j] is the diagonal of P*Q'.
        (kept_lab,) = [lab for lab in lp if lab in keep]
        (summed_lab,) = summed
        prod = mul(orient(P, lp, (kept_lab, summed_lab)), orient(Q, lq, (summed_lab, kept_lab)))
        return Piece(st.call("diag", prod), ATOM), (kept_lab,), None
    return None


def _base_piece(node: g.Node | None, st: Style, row: bool = False, bases: _Printer | None = None) -> Piece:
    """The printed base of a reciprocal ``b^-1``, for ``a/b`` and ``a ./ b`` (by ``bases``, a
    printer whose memo is kept, so that a base is printed once however often it is met)."""
    assert isinstance(node, g.Power)
    p = (bases if bases is not None else _Printer(st)).piece(node.args[0])
    if node.args[0].rank == 1 and p.row != row:
        p = transposed(p, st)
    return p


# ------------------------------------------------------------------------------ index notation

_LETTERS = "ijklabcdefghpqrstuvw"


def index_notation(node: g.Node, style: Style = TEXT, leaves: _Printer | None = None) -> str:
    """The value with explicit indices: ``A*x`` -> ``sum_j A[i,j]*x[j]`` (free indices i).

    ``leaves``: the printer (derived-expression mode) for the parts printed in matrix notation;
    one printer for the whole call, so that each part is printed once. A printer with ``where``
    names (:func:`with_bindings`) makes a named part a leaf printed by its name.
    """
    letters = _index_letters(node)
    if leaves is not None and leaves.names:
        # No index is called like a `where` name.
        taken = set(leaves.names.values())
        letters = "".join(ch for ch in letters if ch not in taken)
    printer = _IndexPrinter(style, letters, leaves)
    return printer.render(node, tuple(letters[: node.rank]))


def _index_letters(node: g.Node) -> str:
    """Index names that no variable of ``node`` is called (so ``b[i]`` never meets an index ``b``)."""
    names = {n.name for n in g.postorder(node) if isinstance(n, g.Var)}
    return "".join(ch for ch in _LETTERS if ch not in names)


def free_indices(node: g.Node) -> tuple[str, ...]:
    """The names of the free indices of ``node`` in index notation, one per axis (``i, j, k, ...``)."""
    return tuple(_index_letters(node)[: node.rank])


class _IndexPrinter:
    """Index notation, rendered top-down (each node with the indices its parent gives it) by an
    explicit work stack, so that deep expressions need no recursion."""

    def __init__(self, style: Style, letters: str = _LETTERS, leaves: _Printer | None = None):
        self.style = style
        self.letters = letters
        self.matrix = leaves if leaves is not None else _Printer(style, True)
        self.counter = 0
        self.leaves: set[g.Node] = set()  # parts printed as one matrix-notation entry

    def fresh(self, avoid: set[str]) -> str:
        while True:
            k = self.counter
            letters = self.letters
            name = letters[k % len(letters)] + ("" if k < len(letters) else str(k // len(letters)))
            self.counter += 1
            if name not in avoid:
                return name

    def entry(self, text: str, idx: tuple[str, ...]) -> str:
        if not idx:
            return text
        if self.style.latex:
            return f"{text}_{{{''.join(idx)}}}"
        return f"{text}[{','.join(idx)}]"

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
            return (f"\\delta_{{{''.join(idx)}}}" if st.latex else f"delta({idx[0]},{idx[1]})"), [], None
        if node in self.matrix.names:
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
                    body = f"\\sum_{{{''.join(summed)}}} {body}" if st.latex else f"sum_{''.join(summed)} {body}"
                return f"({body})" if summed and not top else body

            return None, kids, contraction
        if isinstance(node, g.Add) and top:
            kids = [(t, idx, used, False) for t in node.args]

            def total(texts: list[str]) -> str:
                out = texts[0]
                for text in texts[1:]:
                    out += f" - {text[1:]}" if text.startswith("-") else f" + {text}"
                return out

            return None, kids, total
        if isinstance(node, g.Reshape):
            return self.expand_reshape(node, idx, used)
        text = self.matrix.piece(node).text
        if not node.rank:
            return text, [], None
        simple = isinstance(node, g.Var | g.Ones | g.Zeros | g.Const) or text.isidentifier() or _is_call(text)
        return self.entry(text if simple else f"({text})", idx), [], None

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
        return self.entry(f"reshape({self.matrix.piece(x).text}, {dims})", idx), [], None

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
