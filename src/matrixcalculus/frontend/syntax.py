"""Parsing: text in the MATLAB-like input language -> an untyped syntax tree (:class:`Ast`).

The grammar is LALR(1) for lark; its tree is built by callbacks during the parse, so the
parser keeps its own stack and nesting depth costs no Python recursion. Operator
precedence follows MATLAB, from loose to tight::

    > <      comparison (element-wise, 0/1)
    + -      addition, subtraction
    * / .* ./
    + -      unary plus and minus        (-a*x is (-a)*x;  -x^2 is -(x^2))
    ^ .^     power, left-associative     (2^-1 allowed)
    '        transpose (postfix)

An expression may end in ``where`` bindings, which name subexpressions (the form in which large
results print)::

    body where t1 = expr, t2 = expr      (commas or line breaks between the bindings)

The body may use every name bound; a binding may use the names bound before it. The names
are substituted when the tree is built (each bound tree is shared, not copied, so the tree is a
DAG as large as the text), and the result is the tree of the expression written out in full.
A parenthesised expression may have its own bindings: ``(t1 + x where t1 = A*y)'``.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
from collections.abc import Container, Iterable
from dataclasses import dataclass
from fractions import Fraction

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from matrixcalculus.errors import MatrixCalculusError, ParseError
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.graph import PI

# Functions whose arguments are dimensions (a name or a whole number), not expressions.
# ones and zeros of a tensor take one dimension per axis (zeros(n,n,n) prints a zero 3-tensor).
# commutation(m, n) is the mn x mn permutation K with K*vec(X) = vec(X') for an m x n matrix X
# (column-major vec), as flattening prints it.
DIMENSION_FUNCTIONS = {"eye": (1, 1), "ones": (1, 32), "zeros": (1, 32), "commutation": (2, 2)}
_MAX_DIMENSION = 2**53
# Functions built into the language beyond the registry (inference builds them as products).
STRUCTURAL_FUNCTIONS = ("sum", "tr", "diag", "vector", "matrix")
# Structural functions that take an optional axis, as the records with ``dim`` do: sum(X, 1).
AXIS_FUNCTIONS = ("sum",)
# Other names for our notation, as MATLAB, NumPy and the tutorials write it, accepted and read
# as ours (see _Build.alias): name -> (least, most) number of arguments. trace(X) is tr(X),
# transpose(X) is X', dot(x, y) is x'*y, norm(x) and norm(X, 'fro') are norm2, norm(x, 1) is norm1.
ALIASES = {"trace": (1, 1), "transpose": (1, 1), "dot": (2, 2), "norm": (1, 2)}
KNOWN_FUNCTIONS = tuple(FUNCTIONS) + STRUCTURAL_FUNCTIONS + tuple(DIMENSION_FUNCTIONS) + tuple(ALIASES)

# Names people use elsewhere for our functions (MATLAB, NumPy, the Matrix Cookbook): an unknown
# name among them is answered with ours.
_SYNONYMS = {
    "identity": "eye",
    "diagonal": "diag",
    **{alias: record.name for record in FUNCTIONS.values() for alias in record.aliases},
}


def arity(name: str) -> tuple[int, int]:
    """The least and the most number of arguments of the function ``name``."""
    if name in DIMENSION_FUNCTIONS:
        return DIMENSION_FUNCTIONS[name]
    if name in ALIASES:
        return ALIASES[name]
    if name in FUNCTIONS:
        record = FUNCTIONS[name]
        return record.arity, record.arity + record.dim
    if name in AXIS_FUNCTIONS:
        return 1, 2
    return 1, 1


_GRAMMAR = r"""
?start: top
    | top WHERE bindings     -> where
?top: cmp
    | cmp ARROW LBRACK indices? RBRACK -> output
bindings: binding (COMMA? binding)*
binding: NAME EQUALS top
    | NAME LBRACK indices RBRACK EQUALS top -> indexed_binding
?cmp: sum
    | cmp CMPOP sum          -> binary
?sum: product
    | sum ADDOP product      -> binary
?product: unary
    | product MULOP unary    -> binary
?unary: power
    | ADDOP unary            -> unary
    | SUMOVER product        -> sum_over
?power: postfix
    | power POWOP exponent   -> binary
?exponent: postfix
    | ADDOP exponent         -> unary
?postfix: atom
    | postfix QUOTE          -> transpose
    | postfix LBRACK indices RBRACK -> entry
?atom: NUMBER                -> number
    | NAME                   -> name
    | NAME LPAR args RPAR    -> call
    | LPAR top RPAR          -> group
    | LPAR top WHERE bindings RPAR -> group_where
    | LBRACK rows RBRACK     -> stack
indices: index (COMMA index)*
index: NAME
    | LPAR NAME (COMMA NAME)+ RPAR
    | NUMBER                 -> numbered_index
rows: row (SEMI row)*
row: cmp (COMMA cmp)*
args: arg (COMMA arg)*
?arg: top
    | STRING                 -> string
CMPOP: ">" | "<"
ARROW.2: "->"
ADDOP: "+" | "-"
MULOP: ".*" | "./" | "*" | "/"
POWOP: ".^" | "^"
QUOTE: "'" | ".'"
STRING: /'[^']*'|"[^"]*"/
LPAR: "("
RPAR: ")"
LBRACK: "["
RBRACK: "]"
SEMI: ";"
COMMA: ","
EQUALS: "="
WHERE.2: /where\b/
SUMOVER.2: /sum_[A-Za-z0-9]+(,[A-Za-z0-9]+)*/
NUMBER: /(\d+(\.(?![*\/^'])\d*)?|\.\d+)([eE][+-]?\d+)?/
NAME: /[A-Za-z_][A-Za-z_0-9]*/
%ignore /[ \t\r\n]+/
"""

_TOKEN_NAMES = {
    "CMPOP": "a comparison",
    "ADDOP": "'+' or '-'",
    "MULOP": "'*', '/', '.*' or './'",
    "POWOP": "'^' or '.^'",
    "QUOTE": 'a transpose "\'"',
    "STRING": "a quoted text",
    "LPAR": "'('",
    "RPAR": "')'",
    "LBRACK": "'['",
    "RBRACK": "']'",
    "SEMI": "';'",
    "COMMA": "','",
    "EQUALS": "'='",
    "ARROW": "'->'",
    "SUMOVER": "a sum over indices (sum_j)",
    "WHERE": "'where'",
    "NUMBER": "a number",
    "NAME": "a name",
    "$END": "the end of the input",
}


@dataclass(frozen=True, eq=False)
class Ast:
    """A syntax-tree node. ``op`` is one of: num, name, call, unary, binary, transpose, text
    (a quoted argument, ``'fro'``, which only the call that takes it reads).

    ``start``/``end`` are 0-based offsets of the node's text; ``column`` (1-based) points at
    the operator or name that an error about this node should point at.
    """

    op: str
    # A number node's value (exact); for every other node its text: the name, the function's
    # name, or the operator ("+", ".*", "'" ...).
    value: str | Fraction
    args: tuple[Ast, ...]
    start: int
    end: int
    column: int

    @property
    def symbol(self) -> str:
        """The text of a name, call or operator node: ``parse_syntax("a*x").symbol == "*"``."""
        if isinstance(self.value, Fraction):
            raise TypeError(f"a {self.op} node has a number, not a symbol")
        return self.value

    @property
    def number(self) -> Fraction:
        """The value of a number node: ``parse_syntax("0.5").number == Fraction(1, 2)``."""
        if not isinstance(self.value, Fraction):
            raise TypeError(f"a {self.op} node has a symbol, not a number")
        return self.value


_NUMBER_PARTS = r"(\d*)\.?(\d*)(?:[eE]([+-]?)(\d+))?"  # re caches it compiled
# Literals with more significant digits than this are read as the nearest double: exact
# arithmetic on them costs more than it is worth, and a double is what evaluation uses anyway.
EXACT_DIGITS = 400


def post_order(root: Ast, dimensions: bool = True) -> list[Ast]:
    """The nodes below ``root``, each after its arguments and each once (``where`` bindings share
    their subtrees: a DAG), walked iteratively (no recursion limit on deep text).
    ``dimensions=False`` skips the size arguments of eye/ones/zeros/commutation.

    >>> [n.op for n in post_order(parse_syntax("x + 1"))]
    ['name', 'num', 'binary']
    """
    order: list[Ast] = []
    seen: set[int] = set()
    stack: list[tuple[Ast, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if not dimensions and node.op == "call" and node.value in DIMENSION_FUNCTIONS:
            continue
        for child in reversed(node.args):
            stack.append((child, False))
    return order


def number_value(literal: str, column: int, text: str | None = None) -> Fraction:
    """The value of a number literal: exact when cheap, else the nearest double.

    A literal in the range of doubles with at most ``EXACT_DIGITS`` significant digits is kept
    exact (``0.1`` is 1/10); a longer one becomes the shortest decimal of its nearest double.
    The range is checked with ``float()``, which is correctly rounded and never builds the huge
    integer that ``Fraction("1e9999999")`` would. A literal beyond the largest double, or a
    nonzero one below the smallest, is an error rather than a silent ``inf`` or 0.
    """
    approx = float(literal)
    shown = literal if len(literal) <= 30 else f"{literal[:12]}...{literal[-12:]}"
    if math.isinf(approx):
        raise ParseError(f"number {shown} at column {column} is too large (over 1.8e308)", text=text, column=column)
    parts = re.fullmatch(_NUMBER_PARTS, literal)
    if parts is None:  # pragma: no cover - the grammar's NUMBER token is of this form
        raise ParseError(f"'{shown}' at column {column} is not a number", text=text, column=column)
    whole, fraction, sign, exponent = parts.groups()
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return Fraction(0)
    if approx == 0:
        raise ParseError(
            f"number {shown} at column {column} is too small (under 4.9e-324, it would be 0)", text=text, column=column
        )
    significant = digits.rstrip("0")
    if len(significant) > EXACT_DIGITS:
        return Fraction(repr(approx))
    # The value is in the range of doubles and has few digits, so this power of ten is small.
    shift = (
        int((exponent or "0").lstrip("0") or "0") * (-1 if sign == "-" else 1)
        - len(fraction)
        + len(digits)
        - len(significant)
    )
    mantissa = int(significant)
    return Fraction(mantissa * 10**shift) if shift >= 0 else Fraction(mantissa, 10**-shift)


def _is_dimension(arg: Ast) -> bool:
    """A name, a positive whole number, or a product or sum of them (``ones(m*p)``, ``zeros(n + m)``)."""
    if arg.op == "binary" and arg.value in ("*", "+"):
        return all(_is_dimension(a) for a in arg.args)
    return arg.op == "name" or (arg.op == "num" and arg.number.denominator == 1 and arg.number > 0)


def _numeric_factor(arg: Ast) -> int:
    """The product of the whole numbers in a dimension (``3*m*4`` -> 12; a name counts 1)."""
    if arg.op == "binary" and arg.value == "*":
        return math.prod(_numeric_factor(a) for a in arg.args)
    if arg.op == "binary" and arg.value == "+":
        return sum(_numeric_factor(a) for a in arg.args)
    return int(arg.number) if arg.op == "num" else 1


def _span(tok: Token) -> tuple[int, int, int]:
    """A lexed token's start and end offsets and its 1-based column. (lark types them optional: a
    token made by hand has none; the lexer always sets them.)"""
    if tok.start_pos is None or tok.end_pos is None or tok.column is None:  # pragma: no cover - lexed
        raise AssertionError(f"the token {str(tok)!r} has no position")
    return tok.start_pos, tok.end_pos, tok.column


class _Build(Transformer):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def number(self, items: list[Token]) -> Ast:
        (tok,) = items
        start, end, column = _span(tok)
        return Ast("num", number_value(str(tok), column, self.text), (), start, end, column)

    def name(self, items: list[Token]) -> Ast:
        (tok,) = items
        return Ast("name", str(tok), (), *_span(tok))

    def string(self, items: list[Token]) -> Ast:
        (tok,) = items
        return Ast("text", str(tok)[1:-1], (), *_span(tok))

    def call(self, items: list) -> Ast:
        name, _, args, rpar = items
        fname = str(name)
        if fname in ALIASES:
            return self.alias(name, args, rpar)
        if fname == "delta":
            return self.delta(name, args, rpar)
        if fname not in KNOWN_FUNCTIONS:
            close = (
                [_SYNONYMS[fname.lower()]]
                if fname.lower() in _SYNONYMS
                else [fname.lower()]
                if fname.lower() in KNOWN_FUNCTIONS
                else difflib.get_close_matches(fname.lower(), KNOWN_FUNCTIONS, n=1, cutoff=0.5)
            )
            hint = f"; did you mean '{close[0]}'?" if close else f"; known functions: {', '.join(KNOWN_FUNCTIONS)}"
            raise ParseError(
                f"unknown function '{fname}' at column {name.column}{hint}", text=self.text, column=name.column
            )
        for arg in args:
            self.no_text(fname, arg)
        low, high = arity(fname)
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} or {high}" if high == low + 1 else f"{low} to {high}"
            raise ParseError(
                f"{fname} takes {want} argument{'s' if high > 1 else ''}, not {len(args)} (column {name.column})",
                text=self.text,
                column=name.column,
            )
        for arg in args[low:] if fname in FUNCTIONS or fname in AXIS_FUNCTIONS else ():
            # The optional axis (a record's ``dim``), MATLAB's numbering: 1 down the columns, 2 along
            # the rows; a literal, so the result's shape is known when the text is read.
            if not (arg.op == "num" and arg.value in (1, 2)):
                raise ParseError(
                    f"the last argument of {fname} is an axis, 1 (down the columns) or 2 (along the rows), "
                    f"not '{self.text[arg.start : arg.end]}' (column {arg.column})",
                    text=self.text,
                    column=arg.column,
                )
        if fname in DIMENSION_FUNCTIONS:
            for arg in args:
                if not _is_dimension(arg):
                    raise ParseError(
                        f"{fname} takes dimensions (a name such as n, a whole number, a product such as m*p "
                        f"or a sum such as n + m), "
                        f"not '{self.text[arg.start : arg.end]}' (column {arg.column})",
                        text=self.text,
                        column=arg.column,
                    )
                if _numeric_factor(arg) > _MAX_DIMENSION:
                    # No array has more entries along one axis than memory has bytes: refuse it here,
                    # where the text is, instead of carrying a 300-digit size through the pipeline.
                    raise ParseError(
                        f"dimension '{self.text[arg.start : arg.end]}' at column {arg.column} is too large "
                        "(at most 2^53)",
                        text=self.text,
                        column=arg.column,
                    )
        return Ast("call", fname, tuple(args), name.start_pos, rpar.end_pos, name.column)

    # ------------------------------------------------------------------ index notation

    def index(self, items: list) -> Ast:
        names = [tok for tok in items if isinstance(tok, Token) and tok.type == "NAME"]
        if len(names) > 1:
            # (i,k): an entry of a product dimension m*p; printed, not yet read back.
            _, _, column = _span(items[0])
            raise ParseError(
                f"a pair index ({','.join(map(str, names))}) at column {column} indexes a product dimension; "
                "index notation as input takes single indices",
                text=self.text,
                column=column,
            )
        return Ast("idx", str(names[0]), (), *_span(names[0]))

    def numbered_index(self, items: list) -> Ast:
        (tok,) = items
        _, _, column = _span(tok)
        raise ParseError(
            f"unexpected '{tok}' at column {column}: an index is a name such as i (x[i] in a sum over i); "
            "entries by number are not part of the language",
            text=self.text,
            column=column,
        )

    def indices(self, items: list) -> list[Ast]:
        return [item for item in items if isinstance(item, Ast)]

    def entry(self, items: list) -> Ast:
        """``A[i,j]``: the entries of a value, one index per axis (an "entry" node: the value, then
        the indices as "idx" nodes)."""
        base, lbrack, idx, rbrack = items
        return Ast("entry", "[]", (base, *idx), base.start, rbrack.end_pos, lbrack.column)

    def sum_over(self, items: list) -> Ast:
        """``sum_jk body``: the sum over j and k (``sum_i1,i2`` once an index has digits)."""
        tok, body = items
        start, _, column = _span(tok)
        listed = str(tok)[len("sum_") :]
        if "," in listed:
            names = listed.split(",")
        else:
            names = re.findall(r"[A-Za-z][0-9]*", listed)
            if "".join(names) != listed:
                raise ParseError(
                    f"sum_{listed} at column {column}: an index is a letter with optional digits (sum_jk, sum_i1,i2)",
                    text=self.text,
                    column=column,
                )
        idx = []
        offset = start + len("sum_")
        for name in names:
            at = self.text.index(name, offset)
            idx.append(Ast("idx", name, (), at, at + len(name), at + 1))
            offset = at + len(name)
        return Ast("sum_over", listed, (body, *idx), start, body.end, column)

    def output(self, items: list) -> Ast:
        """``body -> [j,k]``: the free indices of an index-notation body, in this order."""
        body, arrow, _, *rest = items
        idx = rest[0] if len(rest) == 2 else []
        rbrack = rest[-1]
        return Ast("output", "->", (body, *idx), body.start, rbrack.end_pos, arrow.column)

    def indexed_binding(self, items: list) -> tuple[Token, Ast]:
        """``t1[i,j,k] = body``, as the printer binds a tensor: ``t1 = body -> [i,j,k]``."""
        name, lbrack, idx, _, _, value = items
        return name, Ast("output", "->", (value, *idx), value.start, value.end, lbrack.column)

    def delta(self, name: Token, args: list[Ast], rpar: Token) -> Ast:
        """``delta(i,k)``: the identity in index notation (1 where i = k)."""
        (start, _, column), (_, end, _) = _span(name), _span(rpar)
        if len(args) != 2 or any(a.op != "name" for a in args):
            raise ParseError(f"delta at column {column} takes two indices, delta(i,k)", text=self.text, column=column)
        idx = tuple(Ast("idx", a.value, (), a.start, a.end, a.column) for a in args)
        return Ast("delta", "delta", idx, start, end, column)

    def no_text(self, fname: str, arg: Ast) -> None:
        if arg.op == "text":
            raise ParseError(
                f"{fname} takes no quoted argument such as {self.text[arg.start : arg.end]} (column {arg.column}); "
                "a quoted argument is norm's 'fro' only",
                text=self.text,
                column=arg.column,
            )

    def alias(self, name: Token, args: list[Ast], rpar: Token) -> Ast:
        """A call by another name for our notation (:data:`ALIASES`), as the tree of ours."""
        (start, _, column), (_, end, _) = _span(name), _span(rpar)
        fname = str(name)
        low, high = ALIASES[fname]
        if not low <= len(args) <= high:
            want = str(low) if low == high else f"{low} or {high}"
            raise ParseError(
                f"{fname} takes {want} argument{'s' if high > 1 else ''}, not {len(args)} (column {column})",
                text=self.text,
                column=column,
            )
        for arg in args[:1] if fname == "norm" else args:
            self.no_text(fname, arg)
        if fname == "trace":
            return Ast("call", "tr", (args[0],), start, end, column)
        if fname == "transpose":
            return Ast("transpose", "'", (args[0],), start, end, column)
        if fname == "dot":
            x, y = args
            return Ast("binary", "*", (Ast("transpose", "'", (x,), x.start, x.end, x.column), y), start, end, column)
        # norm(x) and norm(X, 'fro') are the root of the sum of squares (Euclidean, Frobenius);
        # norm(x, 1) the sum of absolute values. Other norms (inf, the spectral norm of a matrix) are not here.
        which = "norm2"
        if len(args) == 2:
            p = args[1]
            if p.op == "num" and p.value == 1:
                which = "norm1"
            elif not ((p.op == "num" and p.value == 2) or (p.op == "text" and p.value == "fro")):
                raise ParseError(
                    f"norm's second argument is 1, 2 or 'fro', not {self.text[p.start : p.end]} (column {p.column})",
                    text=self.text,
                    column=p.column,
                )
        return Ast("call", which, (args[0],), start, end, column)

    def args(self, items: list) -> list[Ast]:
        return [item for item in items if isinstance(item, Ast)]

    def group(self, items: list) -> Ast:
        lpar, inner, rpar = items
        # The same node, its text widened to the parentheses (messages quote balanced text).
        return Ast(inner.op, inner.value, inner.args, lpar.start_pos, rpar.end_pos, inner.column)

    def row(self, items: list) -> list[Ast]:
        return [item for item in items if isinstance(item, Ast)]

    def rows(self, items: list) -> list[list[Ast]]:
        return [item for item in items if isinstance(item, list)]

    def stack(self, items: list) -> Ast:
        """``[a, b; c, d]``: rows separated by ``;``, entries by ``,`` (MATLAB); a "stack" node
        whose value is ``"RxC"`` and whose arguments are the entries, row by row."""
        lbrack, rows, rbrack = items
        start, _, column = _span(lbrack)
        end = _span(rbrack)[1]
        columns = len(rows[0])
        for row in rows[1:]:
            if len(row) != columns:
                raise ParseError(
                    f"the rows of [...] (column {column}) have {columns} and {len(row)} entries; every row has as many",
                    text=self.text,
                    column=column,
                )
        entries = tuple(entry for row in rows for entry in row)
        return Ast("stack", f"{len(rows)}x{columns}", entries, start, end, column)

    def binding(self, items: list) -> tuple[Token, Ast]:
        name, _, value = items
        return name, value

    def bindings(self, items: list) -> list[tuple[Token, Ast]]:
        return [item for item in items if isinstance(item, tuple)]

    def where(self, items: list) -> Ast:
        body, _, bindings = items
        return self.bind(body, bindings)

    def group_where(self, items: list) -> Ast:
        lpar, body, _, bindings, rpar = items
        inner = self.bind(body, bindings)
        return Ast(inner.op, inner.value, inner.args, lpar.start_pos, rpar.end_pos, inner.column)

    def bind(self, body: Ast, bindings: list[tuple[Token, Ast]]) -> Ast:
        """``body where name = value, ...``: the body with each bound name replaced by its value."""
        env: dict[str, Ast] = {}
        used: set[str] = set()
        free: list[set[str]] = []
        for name, value in bindings:
            if str(name) in env:
                raise ParseError(
                    f"{name} is bound twice in the where clause (column {name.column})",
                    text=self.text,
                    column=name.column,
                )
            resolved, names = _substitute(value, env, used)
            env[str(name)] = resolved
            free.append(names)
        # A binding uses only the names bound before it: a later one (or its own) is an error.
        for k, (name, _) in enumerate(bindings):
            for later, _ in bindings[k:]:
                if str(later) in free[k]:
                    whose = "its own binding" if later is name else f"the binding of {name}, before it is bound"
                    raise ParseError(
                        f"{later} is used in {whose} (column {name.column}); a binding uses only the names bound "
                        f"before it",
                        text=self.text,
                        column=name.column,
                    )
        result, _ = _substitute(body, env, used)
        for name, _ in bindings:
            if str(name) not in used:
                raise ParseError(
                    f"{name} is bound but never used (column {name.column})", text=self.text, column=name.column
                )
        return result

    def unary(self, items: list) -> Ast:
        op, x = items
        return Ast("unary", str(op), (x,), op.start_pos, x.end, op.column)

    def binary(self, items: list) -> Ast:
        a, op, b = items
        return Ast("binary", str(op), (a, b), a.start, b.end, op.column)

    def transpose(self, items: list) -> Ast:
        x, quote = items
        return Ast("transpose", "'", (x,), x.start, quote.end_pos, quote.column)


def read_declared_notation(root: Ast, declared: Container[str]) -> Ast:
    """``root`` with the notation that depends on the declarations read: ``x^T`` is the transpose
    ``x'`` and the name ``pi`` is the constant π, unless ``T`` (or ``pi``) is a declared variable.

    >>> read_declared_notation(parse_syntax("x^T"), ()).op, read_declared_notation(parse_syntax("x^T"), {"T"}).op
    ('transpose', 'binary')
    """
    done: dict[int, Ast] = {}
    stack: list[Ast] = [root]
    while stack:  # iterative and memoised, as _substitute: a deep or shared tree costs its size once
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        kids = () if node.op == "call" and node.value in DIMENSION_FUNCTIONS else node.args
        pending = [kid for kid in kids if id(kid) not in done]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        new = tuple(done[id(kid)] for kid in kids)
        if node.op == "name" and node.value == "pi" and "pi" not in declared:
            done[id(node)] = Ast("num", PI, (), node.start, node.end, node.column)
        elif node.op == "binary" and node.value == "^" and _is_name(node.args[1], "T") and "T" not in declared:
            done[id(node)] = Ast("transpose", "'", (new[0],), node.start, node.end, node.args[1].column)
        elif all(a is b for a, b in zip(new, kids, strict=True)):
            done[id(node)] = node
        else:
            done[id(node)] = Ast(node.op, node.value, new, node.start, node.end, node.column)
    return done[id(root)]


def _is_name(node: Ast, name: str) -> bool:
    return node.op == "name" and node.value == name


def _substitute(root: Ast, env: dict[str, Ast], used: set[str]) -> tuple[Ast, set[str]]:
    """``root`` with each name bound in ``env`` replaced by its (shared) tree; also the names left
    free. Names that are dimensions (``eye(n)``) are not expressions and stay. Bound names met
    are added to ``used``. Iterative and memoised, so a deep or shared tree costs its size once.
    """
    done: dict[int, Ast] = {}
    free: set[str] = set()
    expanded: set[int] = set()
    stack: list[Ast] = [root]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        if node.op == "name":
            stack.pop()
            name = str(node.value)
            if name in env:
                used.add(name)
                done[id(node)] = env[name]
            else:
                free.add(name)
                done[id(node)] = node
            continue
        kids = () if node.op == "call" and node.value in DIMENSION_FUNCTIONS else node.args
        if id(node) not in expanded:
            expanded.add(id(node))
            stack.extend(kid for kid in kids if id(kid) not in done)
            continue
        stack.pop()
        new = tuple(done[id(kid)] for kid in kids)
        if all(a is b for a, b in zip(new, kids, strict=True)):
            done[id(node)] = node
        else:
            done[id(node)] = Ast(node.op, node.value, new, node.start, node.end, node.column)
    return done[id(root)], free


_BUILD = _Build("")
# One parser, built once; its callbacks read the current text from _BUILD (guarded by a lock).
_PARSER = Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False, transformer=_BUILD)
_LOCK = threading.Lock()


def parse_syntax(text: str) -> Ast:
    """Parse ``text`` into a syntax tree, or raise :class:`ParseError` pointing at the column."""
    if not isinstance(text, str):
        raise ParseError(f"an expression is text, not {type(text).__name__}")
    # Line breaks are blanks in this language; flattening them keeps columns and carets simple.
    text = flatten(text)
    if not text.strip():
        raise ParseError("empty expression", text=text, column=1)
    try:
        with _LOCK:
            _BUILD.text = text
            tree = _PARSER.parse(text)
    except MatrixCalculusError:
        raise
    except UnexpectedCharacters as exc:
        ch = text[exc.column - 1]  # the text is one line (flattened): its column is its offset + 1
        raise ParseError(f"unexpected character {ch!r} at column {exc.column}", text=text, column=exc.column) from None
    except UnexpectedEOF as exc:
        expected = _expected(exc.expected)
        raise ParseError(f"unexpected end of input; expected {expected}", text=text, column=len(text) + 1) from None
    except UnexpectedToken as exc:
        tok = exc.token
        if tok.type == "$END":
            raise ParseError(
                f"unexpected end of input; expected {_expected(exc.expected)}", text=text, column=len(text.rstrip()) + 1
            ) from None
        if tok.type == "STRING":
            raise ParseError(
                f"unexpected quoted text {tok} at column {tok.column}; a quoted argument is norm's 'fro' only",
                text=text,
                column=tok.column,
            ) from None
        raise ParseError(
            f"unexpected {str(tok)!r} at column {tok.column}; expected {_expected(exc.expected)}",
            text=text,
            column=tok.column,
        ) from None
    except UnexpectedInput as exc:  # pragma: no cover - other lark input errors
        raise ParseError(f"cannot parse the input at column {exc.column}", text=text, column=exc.column) from None
    # lark types the parse's result as its Tree; the transformer, called during the parse, makes it ours.
    if not isinstance(tree, Ast):  # pragma: no cover - every rule of the grammar builds an Ast
        raise AssertionError(f"the parser returned a {type(tree).__name__}, not a syntax tree")
    return tree


def flatten(text: str) -> str:
    """``text`` with line breaks and tabs as spaces: one line, the same columns."""
    return text.replace("\r", " ").replace("\n", " ").replace("\t", " ")


def _expected(names: Iterable[str]) -> str:
    words = sorted({_TOKEN_NAMES.get(n, n) for n in names})
    if len(words) > 4:
        return "an operand or an operator"
    return " or ".join(words)
