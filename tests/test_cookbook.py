"""Matrix Cookbook identities (Petersen & Pedersen, version of November 15, 2012, section 2).

Each row is one identity: an expression, the variable, its types, and the derivative as the
cookbook writes it, translated to our syntax (numerator layout: the gradient of a scalar has the
variable's shape, ``d tr(A*X)/dX = A'``).

Every row is checked twice:

* **values** -- the derivative, evaluated on random float64 inputs, matches central finite
  differences of the function itself (h = 1e-6, relative tolerance 1e-6; order-2 rows use a
  second-order central difference with h = 1e-4). Never weakened.
* **compactness** -- ``str(derivative)`` is the cookbook's form, up to layout: the comparison
  (:func:`normal_form`) ignores whitespace, the order of terms, where transposes sit
  (``(B*A)'`` is ``A'*B'``, ``inv(M)'`` is ``inv(M')``), where scalar factors sit, and ``/s`` versus
  ``*s^-1``. It does not forgive size: a factor repeated instead of pulled out, a scalar
  distributed over a sum, ``inv(M) + inv(M)'`` for a symmetric ``M`` instead of ``2*inv(M)``, an
  unsimplified ``log(abs(det(X)))`` chain. A row may list documented alternatives after the
  cookbook form: numerically equal and equally compact forms (``X*c*b' + X*b*c'`` for the
  cookbook's ``X*(b*c' + c*b')``). Rows whose output is longer keep the cookbook form and fail
  until the library prints it.

Equation numbers are those of the 2012 edition as far as we could place them, for orientation;
"-" marks a row that is not a numbered identity but belongs with its neighbours.

Variables declared ``symmetric`` are differentiated with the library's documented convention, the
symmetric gradient (G + G')/2, for which f(S + dS) ~ f(S) + <grad, dS> for every symmetric dS; the
cookbook's section 2.8 uses the contested G + G' - G.*I instead. Those rows expect our convention
and their finite differences perturb symmetrically.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

H1 = 1e-6  # first-order central differences
H2 = 1e-4  # second-order central differences
RTOL1 = 1e-6
RTOL2 = 1e-5
SIZES = (3, 4, 5, 2, 6)  # sizes given to the symbolic dimensions, in order of appearance


@dataclass(frozen=True)
class Row:
    eq: str  # the cookbook's equation number
    expr: str
    wrt: str
    expected: tuple[str, ...]  # the cookbook's form first, then documented alternatives
    types: Mapping[str, Any] = field(default_factory=dict)
    positive: tuple[str, ...] = ()  # variables drawn from [0.5, 2] (arguments of log, divisors)
    order: int = 1

    @property
    def id(self) -> str:
        o = "" if self.order == 1 else f"^{self.order}"
        return f"({self.eq}) d{o}[{self.expr}]/d{self.wrt}"


def row(
    eq: str,
    expr: str,
    wrt: str,
    *expected: str,
    types: Mapping[str, Any] | None = None,
    positive: tuple[str, ...] = (),
    order: int = 1,
) -> Row:
    # The Matrix Cookbook's a, b, c, d are vectors; by name (a-g) they would be scalars: declare them.
    declared = {name: "vector" for name in re.findall(r"\b[a-d]\b", expr)}
    return Row(eq, expr, wrt, expected, {**declared, **(types or {})}, positive, order)


SYM = "symmetric matrix"
SQUARE = {"X": ("n", "n"), "A": ("n", "n"), "B": ("n", "n")}
TALL = {"X": (5, 3)}  # X'*X invertible

ROWS: list[Row] = [
    # ---------------------------------------------------------------- 2.1 determinants
    row("49", "det(X)", "X", "det(X)*inv(X)'"),
    # square A, X, B: det(A*X*B) != 0 makes A and B invertible, and the cookbook's form holds
    row("50", "det(A*X*B)", "X", "det(A*X*B)*inv(X)'", types=SQUARE),
    # rectangular A (n x m), X (m x p), B (p x n): the general form
    row("-", "det(A*X*B)", "X", "det(A*X*B)*A'*inv(A*X*B)'*B'", types={"X": ("m", "p")}),
    row("51", "det(X'*A*X)", "X", "2*det(X'*A*X)*A*X*inv(X'*A*X)", types={**TALL, "A": SYM}),
    row(
        "52",
        "det(X'*A*X)",
        "X",
        "det(X'*A*X)*(A*X*inv(X'*A*X) + A'*X*inv(X'*A'*X))",
        # inv(X'*A'*X) written as inv(X'*A*X)'
        "det(X'*A*X)*(A*X*inv(X'*A*X) + A'*X*inv(X'*A*X)')",
        types=TALL,
    ),
    row("53", "log(det(X'*X))", "X", "2*X*inv(X'*X)", types=TALL),
    row("53", "logdet(X'*X)", "X", "2*X*inv(X'*X)", types=TALL),
    row("55", "log(abs(det(X)))", "X", "inv(X)'"),
    row("55", "log(det(X))", "X", "inv(X)'"),
    row("55", "logdet(X)", "X", "inv(X)'"),
    row("56", "det(X*X)", "X", "2*det(X*X)*inv(X)'"),
    row("56", "det(X*X*X)", "X", "3*det(X*X*X)*inv(X)'"),
    # ---------------------------------------------------------------- 2.2 inverses
    # (59): d inv(X)[k,l] / dX[i,j] = -inv(X)[k,i] inv(X)[j,l]; our indices: out i,j, variable k,l.
    row("59", "inv(X)", "X", "-inv(X)[i,k]*inv(X)[l,j]"),
    row("60", "a'*inv(X)*b", "X", "-inv(X)'*a*b'*inv(X)'"),
    row("60", "a'*inv(X)*a", "X", "-inv(X)'*a*a'*inv(X)'"),
    row("61", "det(inv(X))", "X", "-det(inv(X))*inv(X)'"),
    row("62", "tr(A*inv(X)*B)", "X", "-(inv(X)*B*A*inv(X))'", "-inv(X)'*A'*B'*inv(X)'"),
    row("62", "tr(A*inv(X))", "X", "-(inv(X)*A*inv(X))'", "-inv(X)'*A'*inv(X)'"),
    row("63", "tr(inv(X + A))", "X", "-(inv(X + A)*inv(X + A))'", "-inv(X + A)'*inv(X + A)'"),
    row("63", "tr(inv(X))", "X", "-(inv(X)*inv(X))'", "-inv(X)'*inv(X)'"),
    # ---------------------------------------------------------------- 2.4.1 linear forms
    row("69", "x'*a", "x", "a"),
    row("69", "a'*x", "x", "a"),
    row("70", "a'*X*b", "X", "a*b'"),
    row("71", "a'*X'*b", "X", "b*a'"),
    row("72", "a'*X*a", "X", "a*a'"),
    row("72", "a'*X'*a", "X", "a*a'"),
    row("73", "X", "X", "delta(i,k)*delta(j,l)"),
    row("74", "X*A", "X", "delta(i,k)*A[l,j]"),
    row("75", "X'*A", "X", "delta(i,l)*A[k,j]"),
    row("-", "A*x", "x", "A"),
    row("-", "x'*A", "x", "A'"),
    # ---------------------------------------------------------------- 2.4.2 quadratic forms
    row("76", "sum(X)*sum(X)", "X", "2*sum(X)*ones(m,n)"),
    row("77", "b'*X'*X*c", "X", "X*(b*c' + c*b')", "X*c*b' + X*b*c'"),
    row("78", "(B*x + b)'*C*(D*x + d)", "x", "B'*C*(D*x + d) + D'*C'*(B*x + b)"),
    # (79): d(X'*B*X)[k,l]/dX[i,j] = delta(l,j)*(X'*B)[k,i] + delta(k,j)*(B*X)[i,l]
    row("79", "X'*B*X", "X", "delta(j,l)*(X'*B)[i,k] + delta(i,l)*(B*X)[k,j]"),
    row("81", "x'*B*x", "x", "(B + B')*x", "B*x + B'*x"),
    row("82", "b'*X'*D*X*c", "X", "D'*X*b*c' + D*X*c*b'"),
    row("83", "(X*b + c)'*D*(X*b + c)", "X", "(D + D')*(X*b + c)*b'"),
    row("84", "(x - A*s)'*W*(x - A*s)", "s", "-2*A'*W*(x - A*s)", types={"W": SYM}),
    row("85", "(x - s)'*W*(x - s)", "x", "2*W*(x - s)", types={"W": SYM}),
    row("86", "(x - s)'*W*(x - s)", "s", "-2*W*(x - s)", types={"W": SYM}),
    row("87", "(x - A*s)'*W*(x - A*s)", "x", "2*W*(x - A*s)", types={"W": SYM}),
    row("88", "(x - A*s)'*W*(x - A*s)", "A", "-2*W*(x - A*s)*s'", types={"W": SYM}),
    row("-", "x'*S*x", "x", "2*S*x", types={"S": SYM}),
    row("-", "b'*X'*W*X*b", "X", "2*W*X*b*b'", types={"W": SYM}),
    # (91): d a'*X^n*b/dX = sum_r (X^r)'*a*b'*(X^(n-1-r))'
    row("91", "a'*X*X*b", "X", "a*b'*X' + X'*a*b'"),
    row("91", "a'*X*X*X*b", "X", "a*b'*X'*X' + X'*a*b'*X' + X'*X'*a*b'"),
    row("92", "a'*X'*X*b", "X", "X*(a*b' + b*a')", "X*a*b' + X*b*a'"),
    row("96", "x'*A*x + b'*x", "x", "(A + A')*x + b"),
    row("96", "x'*A*x + b'*x", "x", "A + A'", order=2),
    row("-", "0.5*norm2(A*x - b)^2", "x", "A'*A", order=2),
    row("-", "norm2(A*x - b)^2", "x", "2*A'*(A*x - b)"),
    # ---------------------------------------------------------------- 2.5.1 traces, first order
    row("99", "tr(X)", "X", "eye(n)"),
    row("100", "tr(X*A)", "X", "A'"),
    row("101", "tr(A*X*B)", "X", "A'*B'"),
    row("102", "tr(A*X'*B)", "X", "B*A"),
    row("103", "tr(X'*A)", "X", "A"),
    row("104", "tr(A*X')", "X", "A"),
    # ---------------------------------------------------------------- 2.5.2 traces, second order
    row("106", "tr(X*X)", "X", "2*X'"),
    row("107", "tr(X*X*B)", "X", "(X*B + B*X)'", "X'*B' + B'*X'"),
    row("108", "tr(X'*B*X)", "X", "B*X + B'*X", "(B + B')*X"),
    row("109", "tr(B*X*X')", "X", "B*X + B'*X", "(B + B')*X"),
    row("110", "tr(X*X'*B)", "X", "B*X + B'*X", "(B + B')*X"),
    row("111", "tr(X*B*X')", "X", "X*B' + X*B", "X*(B + B')"),
    row("112", "tr(B*X'*X)", "X", "X*B' + X*B", "X*(B + B')"),
    row("113", "tr(X'*X*B)", "X", "X*B' + X*B", "X*(B + B')"),
    row("114", "tr(A*X*B*X)", "X", "A'*X'*B' + B'*X'*A'"),
    row("115", "tr(X'*X)", "X", "2*X"),
    row("115", "tr(X*X')", "X", "2*X"),
    row("116", "tr(B'*X'*C*X*B)", "X", "C'*X*B*B' + C*X*B*B'", "(C + C')*X*B*B'"),
    row("117", "tr(X'*B*X*C)", "X", "B*X*C + B'*X*C'"),
    row("118", "tr(A*X*B*X'*C)", "X", "A'*C'*X*B' + C*A*X*B"),
    row("119", "tr((A*X*B + C)*(A*X*B + C)')", "X", "2*A'*(A*X*B + C)*B'"),
    row("120", "tr(X)*tr(X)", "X", "2*tr(X)*eye(n)"),
    # ---------------------------------------------------------------- 2.5.3 traces, higher order
    row("121", "tr(X*X*X)", "X", "3*(X*X)'", "3*X'*X'"),
    row("121", "tr(X*X*X*X)", "X", "4*(X*X*X)'", "4*X'*X'*X'"),
    row("122", "tr(A*X*X)", "X", "(A*X + X*A)'", "X'*A' + A'*X'"),
    row(
        "123",
        "tr(B'*X'*C*X*X'*C*X*B)",
        "X",
        "C*X*X'*C*X*B*B' + C'*X*B*B'*X'*C'*X + C*X*B*B'*X'*C*X + C'*X*X'*C'*X*B*B'",
    ),
    # ---------------------------------------------------------------- 2.5.4 traces, other
    row("125", "tr(inv(X'*C*X)*A)", "X", "-C*X*inv(X'*C*X)*(A + A')*inv(X'*C*X)", types={**TALL, "C": SYM}),
    row(
        "126",
        "tr(inv(X'*C*X)*(X'*B*X))",
        "X",
        "-2*C*X*inv(X'*C*X)*X'*B*X*inv(X'*C*X) + 2*B*X*inv(X'*C*X)",
        types={**TALL, "B": SYM, "C": SYM},
    ),
    row(
        "127",
        "tr(inv(A + X'*C*X)*(X'*B*X))",
        "X",
        "-2*C*X*inv(A + X'*C*X)*X'*B*X*inv(A + X'*C*X) + 2*B*X*inv(A + X'*C*X)",
        types={**TALL, "A": SYM, "B": SYM, "C": SYM},
    ),
    # ---------------------------------------------------------------- 2.6, 2.7 norms
    row("129", "norm2(x - a)", "x", "(x - a)/norm2(x - a)"),
    row(
        "130",
        "(x - a)/norm2(x - a)",
        "x",
        "eye(n)/norm2(x - a) - (x - a)*(x - a)'/norm2(x - a)^3",
        "eye(n)/norm2(x - a) - norm2(x - a)^-3*(x - a)*(x - a)'",
    ),
    row("131", "norm2(x)^2", "x", "2*x"),
    row("131", "x'*x", "x", "2*x"),
    row("-", "norm2(x)", "x", "x/norm2(x)"),
    row("132", "norm2(X)^2", "X", "2*X"),
    row("-", "norm2(X)", "X", "X/norm2(X)"),
    # ---------------------------------------------------------------- 2.8 symmetric variables (our convention)
    # cookbook (138): A + A' - A.*I; ours, the symmetric gradient:
    row("138", "tr(A*X)", "X", "(A + A')/2", "(A' + A)/2", types={"X": SYM}),
    # cookbook (139): det(X)*(2*inv(X) - inv(X).*I); ours:
    row("139", "det(X)", "X", "det(X)*inv(X)", types={"X": SYM}),
    # cookbook (141): 2*inv(X) - inv(X).*I; ours:
    row("141", "logdet(X)", "X", "inv(X)", types={"X": SYM}),
    # ---------------------------------------------------------------- element-wise (2.4, 2.8 style)
    row("-", "exp(x)", "x", "diag(exp(x))"),
    row("-", "x .* a", "x", "diag(a)"),
    row("-", "x .* x", "x", "2*diag(x)"),
    row("-", "sum(X .* X)", "X", "2*X"),
    row("-", "sum(X .* A)", "X", "A"),
    row("-", "a'*(X .* B)*c", "X", "(a*c') .* B", "diag(a)*B*diag(c)"),
    row("-", "sum(log(x))", "x", "1 ./ x", positive=("x",)),
    row("-", "tanh(x)", "x", "diag(1 - tanh(x).^2)"),
    row("-", "a'*exp(x)", "x", "a .* exp(x)", "exp(x) .* a"),
    row("-", "sum(exp(X))", "X", "exp(X)"),
    row("-", "a ./ x", "x", "-diag(a ./ x.^2)", "-diag(x.^-2 .* a)", positive=("x",)),
    row("-", "sum(x.^3)", "x", "3*x.^2"),
]


# ---------------------------------------------------------------------------------- helpers


# A printed form is compared after a normalisation that undoes only differences of layout, never of
# size: transposes pushed to the leaves ((A*B)' -> B'*A', inv(M)' -> inv(M'), M'[i,j] -> M[j,i]),
# scalar factors (numbers, det/tr/norm2/... and their powers; "/s" is "*s^-1") collected in front
# of a product, nested products flattened, and the terms of a sum and the operands of ".*" sorted.
# Distributed or uncombined forms (A*(2*B + 2*C) vs 2*A*(B + C), M + M' vs 2*M) stay different.

SCALAR_FUNCTIONS = {"det", "logdet", "tr", "norm1", "norm2", "sum", "logsumexp"}
ELEMENTWISE = {
    "exp",
    "log",
    "sin",
    "cos",
    "tan",
    "tanh",
    "sqrt",
    "abs",
    "sign",
    "relu",
    "sigmoid",
    "softplus",
    "arcsin",
    "arccos",
    "arctan",
}
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|[A-Za-z_]\w*|\.\*|\./|\.\^|[-+*/^'()\[\],<>])")

Node = tuple[Any, ...]


def _tokens(text: str) -> list[str]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        assert m, f"cannot read {text[pos:]!r}"
        out.append(m.group(1))
        pos = m.end()
    return out


class _Reader:
    """Recursive descent over the printed syntax, MATLAB precedence (as in the library)."""

    def __init__(self, text: str):
        self.t, self.i = _tokens(text), 0

    def peek(self) -> str | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, want: str | None = None) -> str:
        tok = self.t[self.i]
        assert want is None or tok == want, f"expected {want} at {tok}"
        self.i += 1
        return tok

    def read(self) -> Node:
        node = self.sum()
        assert self.peek() is None, f"trailing {self.t[self.i :]}"
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.peek() in ("+", "-", ">", "<"):
            op = self.take()
            right = self.product()
            node = ("cmp", op, node, right) if op in "<>" else ("add", node, right if op == "+" else ("neg", right))
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", ".*", "./"):
            node = (self.take(), node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek() in ("+", "-"):
            return ("neg", self.unary()) if self.take() == "-" else self.unary()
        return self.power()

    def power(self) -> Node:
        node = self.postfix()
        while self.peek() in ("^", ".^"):
            op = self.take()
            node = (op, node, self.exponent())
        return node

    def exponent(self) -> Node:
        if self.peek() in ("+", "-"):
            return ("neg", self.exponent()) if self.take() == "-" else self.exponent()
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        while self.peek() in ("'", "["):
            if self.take() == "'":
                node = ("T", node)
            else:
                idx = [self.take()]
                while self.peek() == ",":
                    self.take(",")
                    idx.append(self.take())
                self.take("]")
                node = ("idx", node, tuple(idx))
        return node

    def atom(self) -> Node:
        tok = self.take()
        if tok == "(":
            node = self.sum()
            self.take(")")
            return node
        if tok[0].isdigit():
            return ("num", Fraction(tok))
        if self.peek() == "(":
            self.take("(")
            args = [self.sum()]
            while self.peek() == ",":
                self.take(",")
                args.append(self.sum())
            self.take(")")
            return ("call", tok, tuple(args))
        return ("name", tok)


def _is_scalar(n: Node) -> bool:
    kind = n[0]
    if kind == "num" or (kind == "call" and n[1] in SCALAR_FUNCTIONS):
        return True
    if kind == "pow":
        return _is_scalar(n[1])
    if kind == "mul":
        return all(_is_scalar(f) for f in n[2])
    return False


def _mul(coeff: Fraction, factors: list[Node]) -> Node:
    """A normal product: numbers into the coefficient, scalar factors sorted in front, products flattened."""
    scalars, others = [], []
    for f in factors:
        if f[0] == "num":
            coeff *= f[1]
        elif f[0] == "mul":
            coeff *= f[1]
            for g in f[2]:
                (scalars if _is_scalar(g) else others).append(g)
        else:
            (scalars if _is_scalar(f) else others).append(f)
    if coeff == 0:
        return ("num", Fraction(0))
    items = sorted(scalars, key=_show) + others
    if not items:
        return ("num", coeff)
    if coeff == 1 and len(items) == 1:
        return items[0]
    return ("mul", coeff, tuple(items))


def _pow(base: Node, exp: Node) -> Node:
    if base[0] == "pow" and exp[0] == "num" and base[2][0] == "num":
        return _pow(base[1], ("num", base[2][1] * exp[1]))
    if exp == ("num", Fraction(1)):
        return base
    return ("pow", base, exp)


def _t(n: Node) -> Node:
    """The transpose of a normal node, pushed to the leaves."""
    kind = n[0]
    if kind == "num" or _is_scalar(n):
        return n
    if kind == "T":
        return n[1]
    if kind == "mul":
        return (
            "mul",
            n[1],
            tuple(sorted((f for f in n[2] if _is_scalar(f)), key=_show))
            + tuple(_t(f) for f in reversed([f for f in n[2] if not _is_scalar(f)])),
        )
    if kind == "add":
        return ("add", tuple(sorted((_t(x) for x in n[1]), key=_show)))
    if kind in ("emul",):
        return (kind, tuple(sorted((_t(x) for x in n[1]), key=_show)))
    if kind in ("ediv", "epow"):
        return (kind, _t(n[1]), n[2] if kind == "epow" else _t(n[2]))
    if kind == "call" and n[1] in ELEMENTWISE | {"inv"}:
        return ("call", n[1], (_t(n[2][0]),))
    if kind == "call" and n[1] in ("diag", "eye"):
        return n
    if kind == "call" and n[1] in ("ones", "zeros") and len(n[2]) == 2:
        return ("call", n[1], (n[2][1], n[2][0]))
    return ("T", n)


def _norm(n: Node) -> Node:
    kind = n[0]
    if kind in ("num", "name"):
        return n
    if kind == "neg":
        return _mul(Fraction(-1), [_norm(n[1])])
    if kind == "T":
        return _t(_norm(n[1]))
    if kind == "add":
        terms: list[Node] = []
        for x in (_norm(n[1]), _norm(n[2])):
            terms.extend(x[1] if x[0] == "add" else [x])
        return ("add", tuple(sorted(terms, key=_show)))
    if kind == "*":
        return _mul(Fraction(1), [_norm(n[1]), _norm(n[2])])
    if kind == "/":
        den = _norm(n[2])
        if den[0] == "num":
            return _mul(1 / den[1], [_norm(n[1])])
        if _is_scalar(den):
            return _mul(Fraction(1), [_norm(n[1]), _pow(den, ("num", Fraction(-1)))])
        return ("div", _norm(n[1]), den)
    if kind == ".*":
        coeff, ops = Fraction(1), []
        for x in (_norm(n[1]), _norm(n[2])):
            if x[0] == "mul" and any(_is_scalar(f) for f in x[2]):  # scalars out of the Hadamard product
                coeff *= x[1]
                scal = [f for f in x[2] if _is_scalar(f)]
                rest = [f for f in x[2] if not _is_scalar(f)]
                coeff_node = _mul(Fraction(1), scal)
                x = _mul(Fraction(1), rest)
                ops.append(("_scal", coeff_node))
            ops.extend(x[1] if x[0] == "emul" else [x])
        scal = [o[1] for o in ops if o[0] == "_scal"]
        ops = [o for o in ops if o[0] != "_scal"]
        return _mul(coeff, [*scal, ("emul", tuple(sorted(ops, key=_show)))])
    if kind == "./":
        return ("ediv", _norm(n[1]), _norm(n[2]))
    if kind == "^":
        return _pow(_norm(n[1]), _norm(n[2]))
    if kind == ".^":
        return ("epow", _norm(n[1]), _norm(n[2]))
    if kind == "call":
        return ("call", n[1], tuple(_norm(a) for a in n[2]))
    if kind == "idx":
        inner = _norm(n[1])
        if len(n[2]) != 2:
            return ("idx", inner, n[2])
        # M[i,j] is M'[j,i]: take whichever of the two reads first
        return min(("idx", inner, n[2]), ("idx", _t(inner), n[2][::-1]), key=_show)
    if kind == "cmp":
        return ("cmp", n[1], _norm(n[2]), _norm(n[3]))
    raise AssertionError(f"unknown node {n}")


def _show(n: Node) -> str:
    return repr(n)


def normal_form(text: str) -> str:
    """The printed form, normalised for comparison (see above). A trailing ``-> [i,j,k,l]``
    lists the free indices in the order of the result's axes, the order the cookbook's labels
    give (issue 14: index notation is input syntax, and the list makes its reading exact)."""
    text = re.sub(r"\s*->\s*\[[a-z0-9,]*\]$", "", text)
    return _show(_norm(_Reader(text).read()))


def _derivative(r: Row) -> mc.Expression:
    d = mc.derivative(r.expr, r.wrt, types=r.types, order=r.order)
    assert isinstance(d, mc.Expression)
    return d


def _inputs(f: mc.Expression, r: Row, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Random values for the variables of ``f``: well conditioned square matrices, SPD symmetric ones."""
    dims: dict[str, int] = {}
    for v in f.variables.values():
        for d in v.shape:
            if isinstance(d, str) and d not in dims:
                dims[d] = SIZES[len(dims) % len(SIZES)]

    def size(d: Any) -> int:
        return d if isinstance(d, int) else dims[d]

    values: dict[str, np.ndarray] = {}
    for name, v in f.variables.items():
        shape = tuple(size(d) for d in v.shape)
        if name in r.positive:
            values[name] = rng.uniform(0.5, 2.0, size=shape)
        elif v.kind == "symmetric":
            m = rng.normal(size=shape)
            values[name] = m @ m.T / shape[0] + np.eye(shape[0])
        elif len(shape) == 2 and shape[0] == shape[1]:
            values[name] = 0.5 * rng.normal(size=shape) + shape[0] * np.eye(shape[0])
        else:
            values[name] = np.asarray(rng.normal(size=shape))
    return values, dims


def _directions(var: mc.Variable, value: np.ndarray) -> list[np.ndarray]:
    """Unit perturbations of each entry; symmetric pairs for a symmetric variable."""
    out = []
    for idx in np.ndindex(value.shape):
        if var.kind == "symmetric" and idx[0] > idx[1]:
            continue
        e = np.zeros_like(value)
        e[idx] = 1.0
        if var.kind == "symmetric":
            e[idx[::-1]] = 1.0
        out.append(e)
    return out


def _close(ours: np.ndarray, fd: np.ndarray, rtol: float, what: str) -> None:
    scale = max(1.0, float(np.max(np.abs(fd))))
    np.testing.assert_allclose(ours, fd, rtol=rtol, atol=rtol * scale, err_msg=what)


# ---------------------------------------------------------------------------------- tests


def test_table_size() -> None:
    assert len(ROWS) >= 60
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("r", ROWS, ids=[r.id for r in ROWS])
def test_values_match_finite_differences(r: Row) -> None:
    f = mc.parse(r.expr, types=r.types)
    d = _derivative(r)
    var = f.variables[r.wrt]
    assert d.shape == f.shape + var.shape * r.order, f"shape of {d}"
    rng = np.random.default_rng(zlib.crc32(r.id.encode()))
    values, dims = _inputs(f, r, rng)
    ours = np.asarray(d.evaluate(values, dims=dims))
    x0 = values[r.wrt]

    def at(x: np.ndarray) -> np.ndarray:
        return np.asarray(f.evaluate({**values, r.wrt: x}, dims=dims))

    fshape = np.shape(at(x0))
    assert ours.shape == fshape + x0.shape * r.order
    if r.order == 1 and var.kind != "symmetric":
        fd = np.zeros_like(ours)
        for idx in np.ndindex(x0.shape):
            e = np.zeros_like(x0)
            e[idx] = H1
            fd[(..., *idx)] = (at(x0 + e) - at(x0 - e)) / (2 * H1)
        _close(ours, fd, RTOL1, f"{r.id}: {d}")
    elif r.order == 1:
        # Symmetric variable: <grad, D> against the directional difference along symmetric D,
        # and the gradient itself symmetric in the variable's two axes.
        scale = max(1.0, float(np.max(np.abs(ours))))
        np.testing.assert_allclose(ours, np.swapaxes(ours, -1, -2), rtol=1e-10, atol=1e-10 * scale)
        for e in _directions(var, x0):
            fd = (at(x0 + H1 * e) - at(x0 - H1 * e)) / (2 * H1)
            _close(np.tensordot(ours, e, axes=e.ndim), fd, RTOL1, f"{r.id}: {d}")
    else:
        assert r.order == 2 and f.shape == ()
        fd = np.zeros_like(ours)
        for i in np.ndindex(x0.shape):
            for j in np.ndindex(x0.shape):
                ei, ej = np.zeros_like(x0), np.zeros_like(x0)
                ei[i] += H2
                ej[j] += H2
                fd[(*i, *j)] = (at(x0 + ei + ej) - at(x0 + ei - ej) - at(x0 - ei + ej) + at(x0 - ei - ej)) / (
                    4 * H2 * H2
                )
        _close(ours, fd, RTOL2, f"{r.id}: {d}")


@pytest.mark.parametrize("r", ROWS, ids=[r.id for r in ROWS])
def test_printed_form_is_as_compact_as_the_cookbook(r: Row) -> None:
    d = _derivative(r)
    ours = str(d)
    accepted = {normal_form(e) for e in r.expected}
    assert normal_form(ours) in accepted, f"{r.id}: we print {ours!r}; the cookbook writes {r.expected[0]!r}"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("B*X + B'*X", "B'*X+B*X"),
        ("-a + b", "b - a"),
        ("det(X)*inv(X)'", "(det(X)*inv(X))'"),
        ("A'*B'", "(B*A)'"),
        ("A'*X'*B' + B'*X'*A'", "(B*X*A)' + (A*X*B)'"),
        ("det(X'*A*X)*(A*X*inv(X'*A*X) + A'*X*inv(X'*A'*X))", "det(X'*A*X)*(A*X*inv(X'*A*X) + A'*X*inv(X'*A*X)')"),
        (
            "eye(n)/norm2(x - a) - (x - a)*(x - a)'/norm2(x - a)^3",
            "-norm2(x - a)^-3*(x - a)*(x - a)' + eye(n)/norm2(x - a)",
        ),
        ("delta(i,l)*((B*X)')[j,k]", "delta(i,l)*(B*X)[k,j]"),
        ("2*x .* a", "a .* (2*x)"),
    ],
)
def test_normal_form_undoes_layout(a: str, b: str) -> None:
    assert normal_form(a) == normal_form(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("2*inv(M)", "inv(M) + inv(M)'"),
        ("2*A'*(A*X*B + C)*B'", "A'*(2*A*X*B + 2*C)*B'"),
        ("A*B", "B*A"),
        ("2*sum(X)*ones(m,n)", "2*(X'*ones(m))'*ones(n)*ones(m)*ones(n)'"),
        ("det(X)*inv(X)'", "det(X)*inv(X)"),
    ],
)
def test_normal_form_keeps_differences_of_size(a: str, b: str) -> None:
    assert normal_form(a) != normal_form(b)
