"""The explicit small case: a tensor written entry by entry in the components of its variables.

At concrete sizes every entry of a derivative is a scalar expression of the variables' entries,
as the tutorials write them: ``d(x .* z)/dx`` at ``n = 3`` is ``[z1, 0, 0; 0, z2, 0; 0, 0, z3]``.
:func:`explicit_entries` interprets the graph over NumPy object arrays whose entries are scalar
graph nodes: a variable is the array of its components, a contraction multiplies and sums
entries (skipping products with a zero factor, so a Kronecker delta costs nothing), an
element-wise function applies to each entry, a function with a ``definition`` is expanded, and
any other function (``inv``, ``softmax``, ``norm2``) is an opaque array of named components,
``inv(X)[1,2]``, as a person would write ``Y = inv(X)`` and use ``Y_12``.

Components are named (1-based, as in the tutorials):

* a scalar ``a`` is ``a``;
* a vector ``z`` has components ``z1, z2, ...``, or ``z[1], z[2], ...`` when ``z`` ends in a
  digit or another variable is named ``z`` followed by digits (``z1`` would be ambiguous);
* a matrix ``A`` has entries ``A[1,2]`` (LaTeX ``A_{12}``, or ``A_{1,12}`` past 9); a symmetric
  ``S`` has one component per pair, ``S[2,1]`` is ``S[1,2]``;
* the value of another function, ``inv(X)[1,2]``, ``norm2(x)``.

Each component is a scalar :class:`~matrixcalculus.ir.graph.Var` of that name, so an entry is an
ordinary graph: it prints, simplifies and evaluates like any expression.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.render.latex import LATEX, LatexStyle
from matrixcalculus.render.notation import MatrixPrinter
from matrixcalculus.render.printing import to_latex, to_text
from matrixcalculus.transform.simplify import simplify_many

ZERO = g.const(0)
ONE = g.const(1)

# Intermediate arrays larger than this are refused (a product of small tensors can be large).
MAX_INTERMEDIATE_ENTRIES = 50_000

# A NumPy object array whose entries are scalar graph nodes (numpy types its items as arrays).
Entries = Any


@dataclass(frozen=True)
class Component:
    """Where a component comes from: entry ``index`` (0-based) of ``source`` (a variable or the
    value of a function node), and how it prints in LaTeX."""

    var: g.Var
    source: g.Node
    index: tuple[int, ...]
    latex: str


def component_latex(name: str, index: Sequence[int], base_latex: str) -> str:
    """``A_{12}``; ``A_{1,12}`` when an index has two digits; ``z_{1}`` for a vector."""
    parts = [str(k + 1) for k in index]
    joined = ("," if any(len(p) > 1 for p in parts) else "").join(parts)
    bare = base_latex.isalnum() or base_latex.endswith("\\right)")
    return f"{base_latex}_{{{joined}}}" if bare else f"{{{base_latex}}}_{{{joined}}}"


def vector_style(variables: Sequence[g.Var]) -> dict[str, bool]:
    """For each vector, whether its components are ``z1`` (True) or ``z[1]`` (False)."""
    names = {v.name for v in variables}
    result = {}
    for v in variables:
        if v.kind != "vector":
            continue
        clash = v.name[-1].isdigit() or any(
            n != v.name and n.startswith(v.name) and n[len(v.name) :].isdigit() for n in names
        )
        result[v.name] = not clash
    return result


class Components:
    """The component variables of one explicit computation, made on demand and remembered."""

    def __init__(self, variables: Sequence[g.Var], size: Callable[[g.Dim], int]):
        self.size = size
        self.plain = vector_style(variables)
        self.by_name: dict[str, Component] = {}
        self.arrays: dict[g.Node, Entries] = {}

    def _component(self, name: str, source: g.Node, index: tuple[int, ...], latex: str) -> g.Var:
        known = self.by_name.get(name)
        if known is not None:
            return known.var
        var = g.var(name, "scalar", ())
        self.by_name[name] = Component(var, source, index, latex)
        return var

    def of_variable(self, v: g.Var) -> Entries:
        if v in self.arrays:
            return self.arrays[v]
        shape = tuple(self.size(d) for d in v.shape)
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            if v.kind == "scalar":
                out[index] = self._component(v.name, v, (), LATEX.name(v.name))
                continue
            if v.kind == "symmetric":
                index = tuple(sorted(index))
            if v.kind == "vector":
                name = f"{v.name}{index[0] + 1}" if self.plain.get(v.name, False) else f"{v.name}[{index[0] + 1}]"
            else:
                name = f"{v.name}[{index[0] + 1},{index[1] + 1}]"
            out[index] = self._component(name, v, index, LATEX.name(name))
        if v.kind == "symmetric":
            for i, j in np.ndindex(*shape):
                out[i, j] = out[min(i, j), max(i, j)]
        self.arrays[v] = out
        return out

    def of_function(self, node: g.Node) -> Entries:
        """An opaque value (a function with no entry-wise formula) as named components."""
        if node in self.arrays:
            return self.arrays[node]
        text = to_text(node, result=True)
        latex = to_latex(node, result=True)
        head = text if is_atomic(text) else f"({text})"
        # f(x)_{12} reads as an entry of the call; X^{-1} needs parentheses: (X^{-1})_{12}.
        head_latex = latex if latex.endswith("\\right)") or latex.isalnum() else f"\\left({latex}\\right)"
        shape = tuple(self.size(d) for d in node.shape)
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            if not index:
                out[index] = self._component(text, node, (), latex)
                continue
            name = f"{head}[{','.join(str(k + 1) for k in index)}]"
            out[index] = self._component(name, node, index, component_latex(name, index, head_latex))
        self.arrays[node] = out
        return out


def is_atomic(text: str) -> bool:
    """Whether ``text`` reads as one unit before ``[i,j]``: a name or a call ``f(...)``."""
    if text.isidentifier():
        return True
    match = re.match(r"^[A-Za-z_]\w*\(", text)
    if not match:
        return False
    depth = 0
    for k, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and k >= match.end() - 1:
            return k == len(text) - 1
    return False


# -------------------------------------------------------------------------- scalar arithmetic


def _factor_key(node: g.Node) -> tuple[int, str, bytes]:
    # Components last, by name (A[1,2]*x1, x1*y2, as the tutorials write a_12 x_2), after the
    # other factors (an indicator, a sum), as the matrix form prints them: (W*x - t)*x'.
    return (1, node.name, b"") if isinstance(node, g.Var) else (0, "", node.digest)


def _product(factors: Sequence[g.Node], coeff: Fraction = Fraction(1)) -> g.Node:
    if coeff == 0 or any(g.is_zero(f) for f in factors):
        return ZERO
    ordered = sorted(factors, key=_factor_key)
    return g.contract(ordered, [()] * len(ordered), (), coeff)


def _sum(terms: Sequence[g.Node]) -> g.Node:
    kept = [t for t in terms if not g.is_zero(t)]
    if not kept:
        return ZERO
    constant = sum((t.value for t in kept if isinstance(t, g.Const)), Fraction(0))
    others = [t for t in kept if not isinstance(t, g.Const)]
    if constant != 0:
        others.append(g.const(constant))
    if not others:
        return ZERO
    return g.add(others)


def _exact(value: float) -> g.Node | None:
    """A float that is a short fraction (0, 1, 1/2) as a constant; None for others (e, sqrt 2)."""
    if not math.isfinite(value):
        return None
    fraction = Fraction(value)
    if fraction.denominator <= 1024 and abs(fraction.numerator) <= 10**6:
        return g.const(fraction)
    return None


def _apply_entries(name: str, entries: Sequence[g.Node], record: Any, dim: int | None) -> g.Node:
    constants = [e for e in entries if isinstance(e, g.Const)]
    if len(constants) == len(entries) and record.evaluate is not None:
        with np.errstate(all="ignore"):
            values = [np.float64(float(e.value)) for e in constants]
            try:
                value = record.evaluate(np, *values) if dim is None else record.evaluate(np, *values, dim=dim)
                folded = _exact(float(value))
            except (ArithmeticError, ValueError, TypeError):
                folded = None
        if folded is not None:
            return folded
    return g.apply(name, *entries, dim=dim)


# ------------------------------------------------------------------------------ interpretation


class _Interpreter:
    def __init__(self, components: Components):
        self.components = components
        self.size = components.size

    def array(self, node: g.Node, args: list[Entries]) -> Entries:
        shape = tuple(self.size(d) for d in node.shape)
        if math.prod(shape) > MAX_INTERMEDIATE_ENTRIES:
            raise MatrixCalculusError(
                f"the explicit form needs an intermediate of shape {' x '.join(map(str, shape))}: too large; "
                f"choose smaller sizes"
            )
        if isinstance(node, g.Var):
            return self.components.of_variable(node)
        if isinstance(node, g.Const):
            return np.array(node, dtype=object)
        if isinstance(node, g.Delta | g.Ones | g.Zeros | g.Embed | g.DimSize):
            numeric = node.evaluate(np, [], self.size)
            return _constants(np.asarray(numeric))
        if isinstance(node, g.Contract):
            return self.contract(node, args, shape)
        if isinstance(node, g.Add):
            out = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                out[index] = _sum([a[index] for a in args])
            return out
        if isinstance(node, g.Power):
            base, exponent = args
            out = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                e = exponent[index] if exponent.ndim else exponent[()]
                out[index] = _power(base[index], e)
            return out
        if isinstance(node, g.Compare):
            a, b = (_broadcast(x, shape) for x in args)
            out = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                x, y = a[index], b[index]
                if isinstance(x, g.Const) and isinstance(y, g.Const):
                    holds = x.value > y.value if node.op == ">" else x.value < y.value
                    out[index] = ONE if holds else ZERO
                else:
                    out[index] = g.compare(node.op, x, y)
            return out
        if isinstance(node, g.Reshape):
            return np.reshape(args[0], shape)
        if isinstance(node, g.Function):
            return self.function(node, args, shape)
        raise MatrixCalculusError(f"no explicit form for a node of kind {type(node).__name__}")

    def contract(self, node: g.Contract, args: list[Entries], shape: tuple[int, ...]) -> Entries:
        labels, out_labels = node.labels, node.out
        extent: dict[int, int] = {}
        for operand, labs in zip(node.args, node.labels, strict=True):
            for lab, d in zip(labs, operand.shape, strict=True):
                extent[lab] = self.size(d)
        # Visit the operands in order, fixing each one's summed labels as it comes: a zero entry
        # prunes every completion of the assignment (deltas and sparse factors cost nothing).
        plan: list[tuple[int, list[int]]] = []
        fixed = set(out_labels)
        for k, labs in enumerate(labels):
            new = [lab for lab in dict.fromkeys(labs) if lab not in fixed]
            fixed.update(new)
            plan.append((k, new))
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            assignment = dict(zip(out_labels, index, strict=True))
            terms: list[g.Node] = []
            self._expand(plan, 0, assignment, [], args, labels, extent, terms)
            out[index] = _product([_sum(terms)], node.coeff) if terms else ZERO
        return out

    def _expand(
        self,
        plan: list[tuple[int, list[int]]],
        step: int,
        assignment: dict[int, int],
        factors: list[g.Node],
        args: list[Entries],
        labels: tuple[tuple[int, ...], ...],
        extent: dict[int, int],
        terms: list[g.Node],
    ) -> None:
        if step == len(plan):
            terms.append(_product(factors))
            return
        k, new = plan[step]
        for values in itertools.product(*(range(extent[lab]) for lab in new)):
            assignment.update(zip(new, values, strict=True))
            entry = args[k][tuple(assignment[lab] for lab in labels[k])]
            if g.is_zero(entry):
                continue
            factors.append(entry)
            self._expand(plan, step + 1, assignment, factors, args, labels, extent, terms)
            factors.pop()

    def function(self, node: g.Function, args: list[Entries], shape: tuple[int, ...]) -> Entries:
        record = node.record
        if record.elementwise:
            (x,) = args
            out = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                out[index] = _apply_entries(node.name, [x[index]], record, None)
            return out
        if record.definition is not None:
            return explicit_array(record.definition(*node.args), self.components)
        polynomial = _polynomial_value(record, args, shape, node.dim)
        if polynomial is not None:
            return polynomial
        if record.result == "broadcast" or all(a.ndim == 0 for a in args):
            # Entry by entry on scalars (max(a, b), max(0, z) of a vector): the function of the entries.
            parts = [_broadcast(a, shape) for a in args]
            out = np.empty(shape, dtype=object)
            for index in np.ndindex(*shape):
                out[index] = _apply_entries(node.name, [p[index] for p in parts], record, node.dim)
            return out
        return self.components.of_function(node)


class _Entry:
    """A scalar node under NumPy's arithmetic (+, -, *), so that a function computed by products and
    sums of its arguments' entries (``kron``) gives its entries as formulas; any other operation
    (a square root, a comparison, a linear solve) raises TypeError, and the function stays opaque."""

    __slots__ = ("node",)

    def __init__(self, node: g.Node):
        self.node = node

    @staticmethod
    def _of(other: object) -> g.Node:
        if isinstance(other, _Entry):
            return other.node
        if isinstance(other, int | float) and not isinstance(other, bool) and math.isfinite(other):
            return g.const(Fraction(other))
        raise TypeError("not a polynomial operation")

    def __add__(self, other: object) -> _Entry:
        return _Entry(_sum([self.node, self._of(other)]))

    __radd__ = __add__

    def __sub__(self, other: object) -> _Entry:
        return _Entry(_sum([self.node, _product([self._of(other)], Fraction(-1))]))

    def __rsub__(self, other: object) -> _Entry:
        return _Entry(_sum([self._of(other), _product([self.node], Fraction(-1))]))

    def __mul__(self, other: object) -> _Entry:
        return _Entry(_product([self.node, self._of(other)]))

    __rmul__ = __mul__

    def __neg__(self) -> _Entry:
        return _Entry(_product([self.node], Fraction(-1)))


def _polynomial_value(record: Any, args: list[Entries], shape: tuple[int, ...], dim: int | None) -> Entries | None:
    """The function's own evaluation run on entries that are formulas, when it only adds and
    multiplies them (``kron``); None otherwise."""
    if record.evaluate is None:
        return None
    wrapped = []
    for a in args:
        w = np.empty(a.shape, dtype=object)
        for index in np.ndindex(*a.shape):
            w[index] = _Entry(a[index])
        wrapped.append(w)
    try:
        with np.errstate(all="ignore"):
            value = record.evaluate(np, *wrapped) if dim is None else record.evaluate(np, *wrapped, dim=dim)
    except (TypeError, AttributeError, ValueError, ArithmeticError, np.linalg.LinAlgError):
        return None
    value = np.asarray(value, dtype=object)
    if value.shape != shape:
        return None
    out = np.empty(shape, dtype=object)
    for index in np.ndindex(*shape):
        entry = value[index]
        if not isinstance(entry, _Entry):
            return None
        out[index] = entry.node
    return out


def _broadcast(array: Entries, shape: tuple[int, ...]) -> Entries:
    return np.broadcast_to(array, shape)


def _power(base: g.Node, exponent: g.Node) -> g.Node:
    if isinstance(exponent, g.Const):
        if exponent.value == 0:
            return ONE
        if exponent.value == 1:
            return base
        if g.is_zero(base) and exponent.value > 0:
            return ZERO
        if isinstance(base, g.Const) and exponent.value.denominator == 1 and (base.value != 0 or exponent.value > 0):
            return g.const(base.value ** int(exponent.value))
    return g.power(base, exponent)


def _constants(values: Entries) -> Entries:
    out = np.empty(values.shape, dtype=object)
    for index in np.ndindex(*values.shape):
        out[index] = g.const(Fraction(float(values[index])))
    return out


def explicit_array(root: g.Node, components: Components) -> Entries:
    """The value of ``root`` as an object array of scalar graph nodes (not yet simplified)."""
    memo: dict[g.Node, Entries] = {}
    interpreter = _Interpreter(components)
    for node in g.postorder(root):
        memo[node] = interpreter.array(node, [memo[a] for a in node.args])
    return memo[root]


def explicit_entries(
    root: g.Node, variables: Sequence[g.Var], size: Callable[[g.Dim], int]
) -> tuple[Entries, dict[str, Component]]:
    """Every entry of ``root`` at the sizes ``size`` gives, simplified, in components; and the
    components by name.

    >>> x, z = g.var("x", "vector", ("n",)), g.var("z", "vector", ("n",))
    >>> d = g.contract([z, g.delta("n")], [(0,), (0, 1)], (0, 1))   # diag(z)
    >>> entries, _ = explicit_entries(d, [x, z], lambda dim: 2)
    >>> [[to_text(e) for e in row] for row in entries]
    [['z1', '0'], ['0', 'z2']]
    """
    components = Components(variables, size)
    raw = explicit_array(root, components)
    out = np.empty(raw.shape, dtype=object)
    for index, entry in zip(np.ndindex(*raw.shape), simplify_many(list(raw.flat)), strict=True):
        out[index] = entry
    used = {n.name for e in out.flat for n in g.postorder(e) if isinstance(n, g.Var)}
    return out, {name: c for name, c in components.by_name.items() if name in used}


# ---------------------------------------------------------------------------------- layout


class _ComponentLatex(LatexStyle):
    """LaTeX with the components' own spellings (``(X^{-1})_{12}`` for ``inv(X)[1,2]``)."""

    def __init__(self, names: dict[str, str]):
        self.names = names

    def name(self, name: str) -> str:
        known = self.names.get(name)
        return known if known is not None else super().name(name)


def entry_text(node: g.Node) -> str:
    """An entry in the input syntax (components by their names)."""
    return to_text(node, result=True)


def entry_latex(node: g.Node, components: dict[str, Component]) -> str:
    """An entry in LaTeX, each component spelled as :class:`Component` says."""
    printer = MatrixPrinter(_ComponentLatex({name: c.latex for name, c in components.items()}), True)
    printer.piece(node)
    return printer.output(node).text


def _grid_text(cells: list[list[str]]) -> str:
    """``[a, b; c, d]`` with columns aligned, one row a line (the input syntax of a literal)."""
    widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
    lines = []
    for r, row in enumerate(cells):
        body = ", ".join(cell.rjust(w) for cell, w in zip(row, widths, strict=True))
        lines.append(("[" if r == 0 else " ") + body + ("]" if r == len(cells) - 1 else ";"))
    return "\n".join(lines)


def _cells(entries: Entries, show: Callable[[g.Node], str], row: bool) -> list[list[str]]:
    if entries.ndim == 0:
        return [[show(entries[()])]]
    if entries.ndim == 1:
        return [[show(e) for e in entries]] if row else [[show(e)] for e in entries]
    return [[show(e) for e in r] for r in entries]


def explicit_text(entries: Entries, show: Callable[[g.Node], str], row: bool = False) -> str:
    """A scalar, a vector (a column, or a row), a matrix as a literal; a 3-D tensor as its slices
    ``[i, :, :]``; a 4-D tensor as its blocks ``[i, j, :, :]``."""
    if entries.ndim == 0:
        return show(entries[()])
    if entries.ndim <= 2:
        return _grid_text(_cells(entries, show, row))
    parts = []
    for index in np.ndindex(*entries.shape[:-2]):
        head = "[" + ", ".join(str(k + 1) for k in index) + ", :, :] ="
        parts.append(head + "\n" + _grid_text(_cells(entries[index], show, False)))
    return "\n\n".join(parts)


def _bmatrix(cells: list[list[str]]) -> str:
    rows = " \\\\ ".join(" & ".join(row) for row in cells)
    return f"\\begin{{bmatrix}} {rows} \\end{{bmatrix}}"


def explicit_latex(entries: Entries, show: Callable[[g.Node], str], row: bool = False) -> str:
    """A bmatrix; a 3-D tensor as the column of its slices (as the tutorials draw d(A*x)/dA), a
    4-D tensor as a block matrix of its blocks."""
    if entries.ndim == 0:
        return show(entries[()])
    if entries.ndim <= 2:
        return _bmatrix(_cells(entries, show, row))
    if entries.ndim == 3:
        slices = " \\\\ ".join(_bmatrix(_cells(s, show, False)) for s in entries)
        return f"\\begin{{pmatrix}} {slices} \\end{{pmatrix}}"
    if entries.ndim == 4:
        blocks = [
            [_bmatrix(_cells(entries[i, j], show, False)) for j in range(entries.shape[1])]
            for i in range(entries.shape[0])
        ]
        return _bmatrix(blocks)
    raise MatrixCalculusError(f"no LaTeX layout for a tensor of order {entries.ndim}")
