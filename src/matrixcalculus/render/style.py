"""The pieces of printed text and the spellings of the input syntax.

A :class:`Piece` is the printed text of one value with what its parent needs to know: how
tightly it binds (``prec``), whether a vector reads as a row, how to undo a transpose. A
:class:`Style` spells the operations; :class:`Style` itself is the input syntax, and
``render.latex.LatexStyle`` overrides the spellings for LaTeX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.registry import FunctionRecord, fill
from matrixcalculus.render import numbers

# Binding strength, loose to tight (a comparison is always printed in parentheses: no level).
ADD, MUL, UNARY, POW, POSTFIX, ATOM = 2, 3, 4, 5, 6, 7
# Index notation that ends with its free indices, ``A[i,j]*x[j] -> [i]``: parenthesised as any operand.
OUTPUT = 1


class NotMatrixNotation(Exception):
    """The value needs index notation (a tensor of order three or more, a Kronecker product)."""


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
        return f"{name}({unwrapped(arg)})"  # diag(u > 0), not diag((u > 0))

    def function(self, record: FunctionRecord, args: Sequence[Piece], dim: int | None = None) -> Piece:
        """A registry function applied to printed arguments (and its axis), by its record's template."""
        template = record.text_template(dim is not None)
        # An argument in parentheses of its own (an indicator) fills a slot that has its own:
        # diag(u > 0), not diag((u > 0)).
        texts = [unwrapped(a.text) if delimited(template, k) else a.text for k, a in enumerate(args)]
        texts += [] if dim is None else [str(dim)]
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
        if isinstance(dim, g.DimSum):
            parts = [self.dimension(t).text for t in dim.terms] + ([str(dim.offset)] if dim.offset else [])
            return Piece(" + ".join(parts), ADD)
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
        """A constant: ``3``, ``0.5``, ``1/3``, or in exponent form where that is long (``1e-320``);
        a rational multiple of the constant pi as one (``pi``, ``2*pi``, ``-pi/2``)."""
        sign = UNARY if value < 0 else ATOM
        ratio = numbers.pi_multiple(value)
        if ratio is not None:
            return self.pi(ratio)
        if numbers.is_long(value):
            text = numbers.exponent_form(value)
            return Piece(text, MUL if "/" in text else sign)
        if value.denominator == 1:
            return Piece(str(value.numerator), sign)
        decimal = numbers.decimal(value)
        if decimal is not None:
            return Piece(decimal, sign)
        return Piece(f"{value.numerator}/{value.denominator}", MUL)

    def pi(self, ratio: Fraction) -> Piece:
        """``ratio`` times pi: ``pi``, ``-pi``, ``2*pi``, ``3*pi/4``."""
        num, den = abs(ratio.numerator), ratio.denominator
        text = ("pi" if num == 1 else f"{num}*pi") + (f"/{den}" if den != 1 else "")
        if ratio < 0:
            return Piece("-" + text, UNARY)
        return Piece(text, ATOM if text == "pi" else MUL)

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
        if as_fraction(coeff):
            num = coeff.numerator
            lead = "" if num == 1 else "-" if num == -1 else f"{num}*"
            return Piece(f"{lead}{self.divide(inner, str(coeff.denominator))}", MUL)
        return Piece(self.mul(self.number(coeff).text, inner), MUL)


TEXT = Style()


def as_fraction(value: Fraction) -> bool:
    """Print as ``p/q`` (``x/2``, ``2*x/3``) rather than a decimal (``0.001*x``) or an exponent form?"""
    if value.denominator == 1 or numbers.is_long(value) or numbers.pi_multiple(value) is not None:
        return False
    return value.denominator <= 12 or numbers.decimal(value) is None


def is_wrapped(text: str) -> bool:
    """``(a > b)`` or LaTeX ``\\left(a > b\\right)``: the whole text in one pair of parentheses.

    >>> is_wrapped("(x > 0)"), is_wrapped("(x)*(y)"), is_wrapped("x")
    (True, False, False)
    """
    plain = text.replace("\\left(", "(").replace("\\right)", ")")
    if not (plain.startswith("(") and plain.endswith(")")):
        return False
    depth = 0
    for k, ch in enumerate(plain):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and k != len(plain) - 1:
            return False
    return True


def unwrapped(text: str) -> str:
    """``text`` without the one pair of parentheses around all of it (see :func:`is_wrapped`)."""
    if not is_wrapped(text):
        return text
    if text.startswith("\\left("):
        return text[len("\\left(") : -len("\\right)")]
    return text[1:-1]


def delimited(template: str, k: int) -> bool:
    """Whether every slot ``{k}`` of ``template`` stands alone between a call's parentheses or
    commas (``name({0}, {1})``, LaTeX ``\\left({0}\\right)``)."""
    slot = "{" + str(k) + "}"
    pieces = template.split(slot)
    if len(pieces) < 2:
        return False
    before = all(p.rstrip().endswith(("(", ",")) for p in pieces[:-1])
    after = all(p.lstrip().startswith((")", ",", "\\right)")) for p in pieces[1:])
    return before and after


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
