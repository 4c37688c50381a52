"""LaTeX spellings: :class:`LatexStyle` overrides the input syntax's :class:`~.style.Style`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.registry import FunctionRecord, fill
from matrixcalculus.render import numbers
from matrixcalculus.render.style import (
    ATOM,
    MUL,
    POSTFIX,
    UNARY,
    Piece,
    Style,
    as_fraction,
    delimited,
    paren,
    unwrapped,
)


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
        return f"\\operatorname{{{name}}}\\left({unwrapped(arg)}\\right)"

    def function(self, record: FunctionRecord, args: Sequence[Piece], dim: int | None = None) -> Piece:
        template = record.latex_template(dim is not None)
        texts = [unwrapped(a.text) if delimited(template, k) else a.text for k, a in enumerate(args)]
        texts += [] if dim is None else [str(dim)]
        text = fill(template, texts, [self.bare(a) for a in args])
        # A template between two arguments is an infix operator ({p0} \otimes {p1}) and binds like
        # a product; one that only starts with its argument is a postfix ({p0}^{-1}).
        if re.match(r"\{p?\d+\}", template) and re.search(r"\{p?\d+\}$", template):
            return Piece(text, MUL, op=record.name)
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
        component = re.fullmatch(r"(\w+)\[(\d+(?:,\d+)*)\]", name)
        if component is not None:
            # An entry of a variable in an explicit Jacobian, A[1,2]: A_{12} (A_{1,12} past 9).
            head, index = self.name(component.group(1)), component.group(2).split(",")
            joined = ("," if any(len(k) > 1 for k in index) else "").join(index)
            return f"{{{head}}}_{{{joined}}}" if "_" in head else f"{head}_{{{joined}}}"
        base, _, sub = name.partition("_")
        if base in greek:
            base = "\\" + base
        elif len(base) > 1 and not base[1:].isdigit():
            base = f"\\mathit{{{base}}}"
        elif len(base) > 1:
            base, sub = base[0], base[1:] + sub
        return f"{base}_{{{sub}}}" if sub else base

    def pi(self, ratio: Fraction) -> Piece:
        num, den = abs(ratio.numerator), ratio.denominator
        top = "\\pi" if num == 1 else f"{num} \\pi"
        text = top if den == 1 else f"\\frac{{{top}}}{{{den}}}"
        if ratio < 0:
            return Piece("-" + text, UNARY)
        return Piece(text, ATOM if num == 1 or den != 1 else MUL)

    def number(self, value: Fraction) -> Piece:
        ratio = numbers.pi_multiple(value)
        if ratio is not None:
            return self.pi(ratio)
        if numbers.is_long(value):
            return _exponent_latex(value)
        if not as_fraction(value):
            return super().number(value)
        sign = "-" if value < 0 else ""
        return Piece(f"{sign}\\frac{{{abs(value.numerator)}}}{{{value.denominator}}}", ATOM if not sign else UNARY)

    def _scaled(self, coeff: Fraction, body: Piece) -> Piece:
        if coeff == -1:
            return super()._scaled(coeff, body)
        inner = paren(body, MUL, self)
        return Piece(self.mul(self.number(coeff).text, inner), MUL)


LATEX = LatexStyle()


def _exponent_latex(value: Fraction) -> Piece:
    """``1e-320`` as ``10^{-320}``, ``-3.5e200`` as ``-3.5 \\cdot 10^{200}`` (a divisor as a fraction)."""
    text = numbers.exponent_form(abs(value))
    head, _, divisor = text.partition("/")
    mantissa, _, exponent = head.partition("e")
    power = f"10^{{{exponent}}}" if exponent else ""
    term = power if mantissa == "1" and power else f"{mantissa} \\cdot {power}" if power else mantissa
    if divisor:
        term = f"\\frac{{{term}}}{{{divisor}}}"
    sign = "-" if value < 0 else ""
    return Piece(sign + term, UNARY if sign else ATOM)
