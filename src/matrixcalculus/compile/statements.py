"""The statements of a generated function: typed values and assignments ``target = op(args...)``.

Planning (:mod:`matrixcalculus.compile.plan`) turns a derivative graph into a :class:`Block`;
emission (:mod:`matrixcalculus.compile.emit`) prints it through a dialect. In between, the block is
data: common subexpressions are shared on ``(op, args, params)`` keys as statements are added,
:func:`live` drops what no output reads, and :meth:`Block.functions` says which named functions
remain (so which helpers the module needs). Nothing here reads generated text.

>>> from fractions import Fraction
>>> b = Block()
>>> x = b.argument("x", ("n",))
>>> y = b.assign(Op("mul", (Lit(Fraction(2)), View(x))), ("n",))
>>> y is b.assign(Op("mul", (Lit(Fraction(2)), View(x))), ("n",))  # computed once
True
>>> b.outputs.append(View(y))
>>> [s.op.name for s in live(b).statements]
['mul']
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Protocol

from matrixcalculus.errors import EvaluationError
from matrixcalculus.ir import graph as g

# The operations a statement may apply. Each is printed by ``emit``; the comment gives its meaning
# for operands ``a, b, ...`` and ``params``.
OPS = frozenset(
    {
        "call",  # params (function name,) or (name, axis): the function record ``name`` applied to a, b, ...
        "matmul",  # a @ b (a and b of rank 1 or 2; a transposed operand is a view)
        "mul",  # a * b * ... with broadcasting (views carry the new axes)
        "add",  # params (negative flags,): a + b - c ... with broadcasting
        "sum",  # params (axes,): the sum of a over axes (all axes when axes is None)
        "inner",  # the sum of all entries of a * b (a full contraction of equal shapes)
        "tensordot",  # params (axes of a, axes of b): a contraction over those axes
        "einsum",  # params (spec,): the fallback for what is none of the above
        "trace",  # the trace of a matrix
        "diagonal",  # the diagonal of a matrix
        "power",  # params (exponent,) for a constant exponent, else a ** b
        "compare",  # params (operator,): 1.0 where ``a op b`` holds, else 0.0
        "eye",  # params (size,): an identity matrix
        "unit",  # params (length, k): the unit vector e_k (k from 0), a stack's building block
        "block",  # params (total, offset, length): columns offset.. of eye(total), a stack's block
        "ones",  # params (shape,)
        "zeros",  # params (shape,)
        "full",  # params (shape,): an array of copies of the scalar a
        "size",  # params (axis,): the length of axis ``axis`` of the argument a
        "product",  # params (scale,): the size scale * a * b * ... (a product dimension, kron's m*p)
        "total",  # params (offset,): the size a + b + ... + offset (a sum dimension, a stack's n + m)
        "scalar",  # the size a (a Python int) as a float64 0-d array: a dimension as a value
        "reshape",  # params (shape,): the entries of a read in row-major order into ``shape``
    }
)


@dataclass(frozen=True, eq=False)
class Value:
    """A value the generated function holds: an ``argument`` (``key`` is the variable's name), a
    ``size`` read off an argument (``key`` is the dimension) or a ``temporary`` (``key`` counts).

    Names are given only when the block is printed, so that a user's variable keeps its name and
    the temporaries that survive are numbered in order. Each value is made once (by the block), so
    it is equal only to itself: hashing it is the identity's, which keeps op keys cheap.
    """

    kind: str
    key: str | int
    shape: tuple[g.Dim, ...]
    dtype: str = "float64"

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass(frozen=True)
class View:
    """An operand: a value as stored, or a view of it that costs no statement.

    ``axes[k]`` is the axis of ``value`` that the view's axis ``k`` is, or None for a new axis of
    length one (broadcasting): ``(1, 0)`` is a transpose ``A.T``, ``(0, None)`` is ``s[:, None]``.
    """

    value: Value
    axes: tuple[int | None, ...] | None = None

    @property
    def rank(self) -> int:
        return self.value.rank if self.axes is None else len(self.axes)

    def permuted(self, order: tuple[int, ...]) -> View:
        """The view whose axis ``k`` is this view's axis ``order[k]`` (a transpose composes: ``A.T.T`` is ``A``)."""
        current = self.axes if self.axes is not None else tuple(range(self.value.rank))
        axes = tuple(current[k] for k in order)
        return View(self.value, None if axes == tuple(range(self.value.rank)) else axes)

    def broadcast(self, axes: tuple[int | None, ...]) -> View:
        """The view whose axis ``k`` is this view's axis ``axes[k]`` or a new axis where None."""
        current = self.axes if self.axes is not None else tuple(range(self.value.rank))
        new = tuple(None if k is None else current[k] for k in axes)
        return View(self.value, None if new == tuple(range(self.value.rank)) else new)

    @property
    def is_transpose(self) -> bool:
        return self.axes == (1, 0)


@dataclass(frozen=True)
class Lit:
    """A number (exact); it must be a finite float64, which :func:`literal` checks when it is made."""

    value: Fraction


Operand = View | Lit


def literal(value: Fraction) -> Lit:
    """The literal ``value``, refused when it is beyond float64 (see :func:`number_text`)."""
    number_text(value)
    return Lit(value)


def number_text(value: Fraction) -> str:
    """A float literal for an exact constant; a constant beyond float64 is an error, not ``inf``
    (a long integer literal would silently read as inf; ``float`` of a huge fraction overflows)."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        magnitude = math.log10(abs(value.numerator)) - math.log10(value.denominator)
        raise EvaluationError(
            f"a constant of about {'-' if value < 0 else ''}1e{int(magnitude)} is beyond the "
            "range of float64 numbers (at most about 1.8e308)"
        )
    if value.denominator == 1 and abs(value.numerator) < 10**15:
        return f"{value.numerator}.0"
    return repr(number)


@dataclass(frozen=True)
class Op:
    """An operation (one of :data:`OPS`) on operands; equal ops compute equal values (the code is pure)."""

    name: str
    args: tuple[Operand, ...]
    params: tuple[Hashable, ...] = ()

    def __post_init__(self) -> None:
        assert self.name in OPS, self.name


@dataclass(frozen=True)
class Statement:
    """``target = op``; with ``into``, the op is computed in the buffer of that value, which no
    later statement reads (``t3 += b``: no new array; see :mod:`matrixcalculus.compile.rewrites`)."""

    target: Value
    op: Op
    into: Value | None = None


class Structured(Protocol):
    """How the arrays of a :class:`Factors` output make its tensor (see ``plan.Structure``)."""

    def describe(self, names: Sequence[str]) -> str: ...


@dataclass(frozen=True)
class Factors:
    """An output returned as a tuple of arrays (a Kronecker-structured tensor); ``structure`` says
    how they make the tensor (a :class:`matrixcalculus.compile.plan.Structure`)."""

    arrays: tuple[Operand, ...]
    structure: Structured


Output = Operand | Factors


@dataclass
class Block:
    """The body of a generated function: its arguments, the sizes it reads off them, the
    statements in order and the outputs (in the order returned)."""

    arguments: list[Value] = field(default_factory=list)
    sizes: list[Statement] = field(default_factory=list)
    statements: list[Statement] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)
    # The forms chosen by the cost model (compile.cost), in words: printed as comments.
    choices: list[str] = field(default_factory=list)
    _shared: dict[Op, Value] = field(default_factory=dict, repr=False)

    def argument(self, name: str, shape: tuple[g.Dim, ...]) -> Value:
        value = Value("argument", name, shape)
        self.arguments.append(value)
        return value

    def size(self, dim: g.Dim, source: Value, axis: int) -> Value:
        value = Value("size", str(dim), ())
        self.sizes.append(Statement(value, Op("size", (View(source),), (axis,))))
        return value

    def product(self, dim: g.DimProduct, factors: Sequence[Value]) -> Value:
        """The size of the product dimension ``dim`` from the sizes of its factors."""
        value = Value("size", "_".join(dim.factors) if dim.scale == 1 else f"{dim.scale}_{'_'.join(dim.factors)}", ())
        self.sizes.append(Statement(value, Op("product", tuple(View(f) for f in factors), (dim.scale,))))
        return value

    def total(self, dim: g.DimSum, terms: Sequence[Value | int]) -> Value:
        """The size of the sum dimension ``dim`` (a stack's n + m) from the sizes of its terms."""
        value = Value("size", "_plus_".join(str(t).replace("*", "_") for t in dim.terms), ())
        views = tuple(View(t) for t in terms if isinstance(t, Value))
        offset = dim.offset + sum(t for t in terms if isinstance(t, int))
        self.sizes.append(Statement(value, Op("total", views, (offset,))))
        return value

    def assign(self, op: Op, shape: tuple[g.Dim, ...]) -> Value:
        """The value of ``op``: a new temporary, or the one already holding an equal op."""
        found = self._shared.get(op)
        if found is not None:
            return found
        target = Value("temporary", len(self.statements), tuple(shape))
        self.statements.append(Statement(target, op))
        self._shared[op] = target
        return target

    def holds(self, op: Op) -> bool:
        """Has an equal op been assigned already (so that its value costs nothing more)?"""
        return op in self._shared

    def functions(self) -> set[str]:
        """The names of the functions this block calls."""
        return {str(s.op.params[0]) for s in self.statements if s.op.name == "call"}


def _reads(op: Op) -> list[Value]:
    return [a.value for a in op.args if isinstance(a, View)]


def _output_reads(output: Output) -> list[Value]:
    arrays = output.arrays if isinstance(output, Factors) else (output,)
    return [a.value for a in arrays if isinstance(a, View)]


def live(block: Block) -> Block:
    """The block without the statements no output reads (e.g. an identity that a structured
    result keeps symbolic, or the negated form of a term that a sum subtracts instead).

    Sizes are kept: they document the dimensions read off the arguments and cost nothing.
    """
    needed = {v for out in block.outputs for v in _output_reads(out)}
    kept: list[Statement] = []
    for statement in reversed(block.statements):
        if statement.target in needed:
            kept.append(statement)
            needed.update(_reads(statement.op))
    return replace(block, statements=kept[::-1], _shared={})
