"""Printing: graph -> matrix notation (input syntax or LaTeX), or index notation.

The entry points; the work is done by the modules of ``render``:

* :mod:`~.style` and :mod:`~.latex`: the pieces of text and the spellings of each syntax;
* :mod:`~.numbers`: constants (``1/2``, ``0.5``, ``1e-320``);
* :mod:`~.notation`: matrix notation, node by node, and :mod:`~.products`: a contraction as
  matrix-notation operations (the interval search and one function per case);
* :mod:`~.index`: index notation, for tensors of order three or more and as the last resort;
* :mod:`~.bindings`: ``where`` names for shared subexpressions.
"""

from __future__ import annotations

from matrixcalculus.ir import graph as g
from matrixcalculus.render.bindings import needs_bindings, shared_text, taken_names, with_bindings
from matrixcalculus.render.index import free_indices
from matrixcalculus.render.index import index_notation as _index_notation
from matrixcalculus.render.latex import LATEX, LatexStyle
from matrixcalculus.render.notation import MatrixPrinter
from matrixcalculus.render.style import TEXT, NotMatrixNotation, Piece, Style

__all__ = [
    "LATEX",
    "TEXT",
    "LatexStyle",
    "MatrixPrinter",
    "NotMatrixNotation",
    "Piece",
    "Style",
    "free_indices",
    "index_notation",
    "needs_bindings",
    "to_latex",
    "to_text",
    "with_bindings",
]


def to_text(
    node: g.Node,
    *,
    result: bool = False,
    scalars: frozenset[str] = frozenset(),
    share: bool = False,
    row: bool | None = None,
    written: frozenset[g.Dim] = frozenset(),
    early: frozenset[g.Node] = frozenset(),
) -> str:
    """The expression in the input syntax; parsing it gives the same values.

    ``result=True`` is for derived expressions: products may be printed in any operand
    order, choosing the one with the fewest transposes (an expression the user typed keeps its
    order, so that its text parses back to the very same graph). ``scalars``: names declared
    scalars, which may print bare where they are broadcast (``x + a``); another scalar variable
    prints as ``vector(c)`` there, which is what makes it a scalar when parsed again. A term
    that repeats a scalar or a vector beside a term of the full shape prints as what it repeats
    (``x + a``, ``W*X + b``, ``X*W + b'``), except over a dimension of ``written``: names that
    only the text gives (``ones(k)``), kept written so that parsing gives them again.
    ``early``: products typed with their divisor after a leading scalar (``lambda/2*w'*w``),
    printed so rather than with the divisor last (``lambda*w'*w/2``, the same graph).

    ``share=True`` (with ``result``): a derived expression whose text, written out in full,
    would repeat its shared subexpressions many times over (:func:`needs_bindings`) names them
    instead, ``text`` then ``where`` and one ``  name = text`` line per name, so that the text
    stays linear in the size of the graph. Both forms parse back to the same values.

    ``row=True``: a vector that is a row (a numerator-layout gradient) prints transposed, ``x'``;
    ``row=False``: a vector that is a column prints as one (``(x'*A')'``, never ``x'*A'``);
    ``None``: as the printer finds it best.

    >>> from matrixcalculus.ir import graph as g
    >>> x = g.var("x", "vector", ("n",))
    >>> to_text(g.contract([x, x], [(0,), (0,)], ()))
    "x'*x"
    """
    rows = frozenset([node]) if row else frozenset()
    if share and result and needs_bindings([node]):
        body, bindings = shared_text([node], taken_names(node), TEXT, scalars, rows=rows)
        return "\n".join([_unwrapped(body[0]), "where", *(f"  {name} = {text}" for name, text in bindings)])
    printer = MatrixPrinter(TEXT, result, scalars, written=written)
    printer.early = early
    return _unwrapped(_printed(printer, node, row).text)


def _unwrapped(text: str) -> str:
    """The whole text without parentheses around all of it: index notation that lists its free
    indices, ``(delta(i,k)*delta(j,k) -> [i,j,k])``, is parenthesised as a part, not as a whole."""
    if not (text.startswith("(") and text.endswith("])") and " -> [" in text):
        return text  # other parentheses are meant: (w'*x + b > 0) reads best as a unit
    depth = 0
    for k, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and k < len(text) - 1:
            return text  # the first parenthesis closes before the end: (a)*(b)
    return text[1:-1]


def _printed(printer: MatrixPrinter, node: g.Node, row: bool | None) -> Piece:
    if row is True:
        printer.rows = frozenset([node])
    elif row is False:
        printer.columns = frozenset([node])
    printer.piece(node)
    return printer.output(node)


def to_latex(
    node: g.Node,
    *,
    result: bool = False,
    scalars: frozenset[str] = frozenset(),
    share: bool = False,
    row: bool | None = None,
    written: frozenset[g.Dim] = frozenset(),
) -> str:
    """The expression in LaTeX; ``share`` and ``row`` as in :func:`to_text` (``body, \\text{where } t_{1} = ...``)."""
    rows = frozenset([node]) if row else frozenset()
    if share and result and needs_bindings([node]):
        body, bindings = shared_text([node], taken_names(node), LATEX, scalars, rows=rows)
        # A tensor's binding comes with its indices, already in LaTeX: {t_{1}}_{ijk}.
        where = ", \\; ".join(
            f"{LATEX.name(name) if name.isidentifier() else name} = {text}" for name, text in bindings
        )
        return f"{body[0]}, \\quad \\text{{where }} {where}"
    return _printed(MatrixPrinter(LATEX, result, scalars, written=written), node, row).text


def index_notation(node: g.Node, style: Style = TEXT, leaves: MatrixPrinter | None = None) -> str:
    """The value with explicit indices: ``A*x`` -> ``sum_j A[i,j]*x[j]`` (free indices i).

    ``leaves``: the matrix printer of the parts printed in matrix notation (by default a
    derived-expression printer of ``style``).
    """
    return _index_notation(node, style, leaves if leaves is not None else MatrixPrinter(style, True))
