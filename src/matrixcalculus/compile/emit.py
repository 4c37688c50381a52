"""Emission: a block of statements -> the source of a Python module, spelled by a dialect.

This is the only step that writes text. Names are given here (:class:`_Names`): a user's variable
keeps its name where it is a safe identifier, sizes are ``_n``, and the temporaries that survive
``live`` are ``t0, t1, ...`` in order. Helper functions (``_logsumexp``) are emitted for the
functions the block calls, as the dialect spells them.

>>> from fractions import Fraction
>>> from matrixcalculus.compile.codegen import DIALECTS
>>> from matrixcalculus.compile.statements import Block, Lit, Op, View
>>> b = Block()
>>> x = b.argument("x", ("n",))
>>> b.outputs.append(View(b.assign(Op("mul", (Lit(Fraction(2)), View(x))), ("n",))))
>>> print(emit(b, DIALECTS["numpy"], "f").splitlines()[-2])
    t0 = (2.0 * x)
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from fractions import Fraction
from typing import TYPE_CHECKING

from matrixcalculus.compile.rewrites import BOOLEAN
from matrixcalculus.compile.statements import Block, Factors, Lit, Operand, Statement, Value, View, number_text
from matrixcalculus.ir.registry import helper_names

if TYPE_CHECKING:
    from matrixcalculus.compile.codegen import Dialect

# Identifiers the generated module defines or imports: a user's variable never takes one of them.
# The module's own names: its imports and the helper functions any record's spelling may define
# (a user variable named _erf must not hide the helper erf(x) calls).
_MODULE_NAMES = frozenset({"xp", "np", "jax", "torch", "_device"})


def _internal() -> frozenset[str]:
    """The reserved identifiers of a generated module, read when a module is emitted (a record
    registered later reserves its helpers too)."""
    return _MODULE_NAMES | helper_names()


def _safe_identifier(name: str) -> bool:
    """A name Python reads as itself: ASCII (no NFKC folding, ``ｘ`` would be ``x``), not a keyword."""
    return name.isascii() and name.isidentifier() and not keyword.iskeyword(name) and name != "__debug__"


def _ascii(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"u{ord(c):x}" for c in name)


class _Names:
    """Every identifier of a generated module comes from here, so no two values share one.

    The module's own names are taken first; a user's variable keeps its name when it is a safe
    identifier that is still free (``x``, ``W1``, even ``t0``: temporaries then skip ``t0``), else
    it gets a readable free one (``lambda_``, ``xp_``, ``uff58_`` for ``ｘ``).
    """

    def __init__(self, reserved: Sequence[str] | frozenset[str]):
        self.taken: set[str] = set(reserved)

    def claim(self, wanted: str) -> str:
        name = wanted
        while name in self.taken or not _safe_identifier(name):
            name += "_"
        self.taken.add(name)
        return name

    def variables(self, names: Sequence[str]) -> dict[str, str]:
        # Safe names first: a mangled name must not take the name of a later variable.
        kept = {n: n for n in names if _safe_identifier(n) and n not in self.taken}
        self.taken |= set(kept)
        return {n: kept[n] if n in kept else self.claim(_ascii(n) + "_") for n in names}

    def temporary(self, counter: list[int]) -> str:
        while (name := f"t{counter[0]}") in self.taken:
            counter[0] += 1
        counter[0] += 1
        self.taken.add(name)
        return name


def emit(block: Block, dialect: Dialect, function: str) -> str:
    """The module defining ``function(arguments...)`` that runs ``block`` and returns its outputs."""
    printer = _Printer(block, dialect)
    body = printer.prologue()
    body += [f"    # {choice}" for choice in block.choices]
    body += [f"    {printer.names[s.target]} = {printer.statement(s)}" for s in block.sizes]
    body += [f"    {line}" for s in block.statements for line in printer.lines(s)]
    outputs: list[str] = []
    for k, output in enumerate(block.outputs):
        if isinstance(output, Factors):
            arrays = [printer.operand(a) for a in output.arrays]
            outputs.append(f"({', '.join(arrays)},)" if arrays else "()")
            body.append(
                f"    # output {k} is {output.structure.describe(arrays)}: a Kronecker-structured"
                " tensor, returned as its factors"
            )
        else:
            outputs.append(printer.operand(output))
    body.append(f"    return ({', '.join(outputs)},)")
    lines = [*dialect.header(), "", ""]
    needed = {h for name in sorted(block.functions()) for h in dialect.requires(name)}
    for helper, text in dialect.helpers().items():
        if helper in needed:
            lines += [*text, "", ""]
    lines.append(f"def {function}({', '.join(printer.parameters)}):")
    lines += body
    return "\n".join(lines) + "\n"


class _Printer:
    """Names every value of a block and spells its statements with a dialect."""

    def __init__(self, block: Block, dialect: Dialect):
        self.d = dialect
        names = _Names(_internal() | set(dialect.helpers()))
        self.names: dict[Value, str] = {}
        # User names first (they read as typed where they can), then sizes, then temporaries.
        renamed = names.variables([str(v.key) for v in block.arguments])
        for v in block.arguments:
            self.names[v] = renamed[str(v.key)]
        self.parameters = [self.names[v] for v in block.arguments]
        for s in block.sizes:
            self.names[s.target] = names.claim(f"_{_ascii(str(s.target.key))}")
        counter = [0]
        for s in block.statements:
            # A statement computed in place names its result as the buffer it writes into.
            self.names[s.target] = self.names[s.into] if s.into is not None else names.temporary(counter)

    def prologue(self) -> list[str]:
        return [f"    {line}" for line in self.d.prologue(self.parameters)]

    def operand(self, a: Operand, array: bool = False) -> str:
        """``a`` as an expression; ``array``: a number becomes a 0-d array (see Dialect.scalar)."""
        if isinstance(a, Lit):
            text = number_text(a.value)
            return self.d.scalar(text) if array else text
        name = self.names[a.value]
        if a.axes is None:
            return name
        order = tuple(k for k in a.axes if k is not None)
        if order != tuple(range(len(order))):
            name = self.d.permute(name, order)
        if None in a.axes:
            name += "[" + ", ".join("None" if k is None else ":" for k in a.axes) + "]"
        return name

    def dim(self, d: int | Value) -> str:
        return str(d) if isinstance(d, int) else self.names[d]

    def shape(self, dims: tuple[int | Value, ...]) -> str:
        return "(" + ", ".join(self.dim(d) for d in dims) + ",)"

    def lines(self, s: Statement) -> list[str]:
        """The lines of one statement: ``name = op``, or augmented assignments into ``s.into``."""
        if s.into is None:
            return [f"{self.names[s.target]} = {self.statement(s)}"]
        name, op = self.names[s.into], s.op
        reused = View(s.into)
        if op.name == "add":
            negative = op.params[0]
            assert isinstance(negative, tuple)
            terms = list(zip(op.args, negative, strict=True))
            terms.remove((reused, False))
            return [f"{name} {'-=' if minus else '+='} {self.operand(a)}" for a, minus in terms]
        others = list(op.args)
        others.remove(reused)
        # Scalars multiply each other first, then the array once (as (c * d * t) would).
        scalars = [self.operand(a) for a in others if isinstance(a, Lit) or a.rank == 0]
        arrays = [self.operand(a) for a in others if isinstance(a, View) and a.rank > 0]
        factors = ([scalars[0] if len(scalars) == 1 else "(" + " * ".join(scalars) + ")"] if scalars else []) + arrays
        return [f"{name} *= {f}" for f in factors]

    def statement(self, s: Statement) -> str:
        op, d = s.op, self.d
        args = [self.operand(a) for a in op.args]
        name = op.name
        if name == "call":
            # A whole-number axis (params (name, dim)) picks the record's spelling with an axis.
            dim = int(op.params[1]) if len(op.params) > 1 else None  # type: ignore[call-overload]
            return d.call(str(op.params[0]), *(self.operand(a, array=True) for a in op.args), dim=dim)
        if name == "scalar":
            return d.scalar(args[0])
        if name == "reshape":
            return f"xp.reshape({self.operand(op.args[0], array=True)}, {self.shape(op.params[0])})"  # type: ignore[arg-type]
        if name == "matmul":
            return f"({args[0]} @ {args[1]})"
        if name == "mul":
            return "(" + " * ".join(args) + ")"
        if name == "add":
            (negative,) = op.params
            parts = []
            for k, (text, minus) in enumerate(zip(args, negative, strict=True)):  # type: ignore[call-overload]
                parts.append(("-" if minus else "") + text if k == 0 else (" - " if minus else " + ") + text)
            return "(" + "".join(parts) + ")"
        if name == "sum":
            (axes,) = op.params
            return d.sum(args[0], axes) if axes is not None else f"xp.sum({args[0]})"  # type: ignore[arg-type]
        if name == "inner":
            return f"xp.sum({args[0]} * {args[1]})"
        if name == "tensordot":
            return d.tensordot(args[0], args[1], op.params[0], op.params[1])  # type: ignore[arg-type]
        if name == "einsum":
            return d.einsum(str(op.params[0]), args)
        if name == "trace":
            return d.trace(args[0])
        if name == "diagonal":
            return d.diagonal(args[0])
        if name == "power":
            base = self.operand(op.args[0], array=True)
            if not op.params:
                return f"({base} ** ({args[1]}))"
            (p,) = op.params
            assert isinstance(p, Fraction)
            return f"(1.0 / {base})" if p == -1 else f"({base} ** {number_text(p)})"
        if name == "compare":
            comparison = f"{self.operand(op.args[0], array=True)} {op.params[0]} {args[1]}"
            # A mask that only element-wise products read stays boolean (compile.rewrites).
            return f"({comparison})" if op.params[1:] == (BOOLEAN,) else d.indicator(comparison)
        if name == "eye":
            return d.eye(self.dim(op.params[0]))  # type: ignore[arg-type]
        if name == "unit":
            length, position = op.params
            return f"{d.eye(str(length))}[{position}]"
        if name == "block":
            total, start, length = (self.dim(p) for p in op.params)  # type: ignore[arg-type]
            return f"{d.eye(total)}[:, {start}:{start} + {length}]"
        if name in ("ones", "zeros"):
            shape = self.shape(op.params[0])  # type: ignore[arg-type]
            return d.ones(shape) if name == "ones" else d.zeros(shape)
        if name == "full":
            return d.full(self.shape(op.params[0]), args[0])  # type: ignore[arg-type]
        if name == "size":
            return f"{args[0]}.shape[{op.params[0]}]"
        if name == "product":
            (scale,) = op.params
            return "(" + " * ".join(([str(scale)] if scale != 1 else []) + args) + ")"
        if name == "total":
            (constant,) = op.params
            return "(" + " + ".join(args + ([str(constant)] if constant else [])) + ")"
        raise AssertionError(f"no spelling for {name}")  # pragma: no cover - OPS is closed
