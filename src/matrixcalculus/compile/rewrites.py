"""Local rewrites of a planned block: the same values in fewer passes over the arrays.

Planning chooses the algebra (product order, BLAS forms, the cost model); the statements it
leaves can still say some things the long way round, which costs a pass over an array (or a
slow operation on a 0-d array) each. :func:`rewrite` runs after :func:`~matrixcalculus.compile.statements.live`
and before emission; each rewrite computes the same entries (up to the order of additions):

* **boolean masks**: an indicator ``asarray(a > 0, dtype=float64)`` that is read only as a
  factor of element-wise products with another array stays a boolean array (``d * (a > 0)``,
  as an expert writes relu's derivative): no float copy of the mask is written and read;
* **shared partial sums**: a sum whose terms include all the terms of a sum computed before
  reads that sum (``t19 = -t18 + t13 + t15`` after ``t16 = t13 + t15`` is ``t16 - t18``);
* **negations**: a product with a negative coefficient that is read only as a term of sums
  (``t19 = -1.0 * t18``) is folded into their signs (``t17 - t18``);
* **flat products, numbers first**: a product read only by another product is one product,
  whose scalar factors multiply each other before the array (``(c * d) * t`` is one pass over
  ``t``; ``(c * t) * d`` would be two);
* **a positive term first**: ``-a + b`` is ``b - a`` (NumPy negates a leading ``-a`` in a pass
  of its own);
* **in place** (NumPy, arrays of one floating type): a sum or product whose operand is a
  temporary read for the last time, of the result's shape, writes into it (``t3 += b``) instead
  of a new array: for arrays beyond the allocator's pools a new array costs page faults (at
  1000 x 1000, ``a + c`` took 0.89 ms and ``np.add(a, c, out=c)`` 0.56 ms here);
* **unused sizes**: a size read off an argument that no statement uses is not read.

Statements the rewrites make equal are computed once, as the planner shares equal ops.

>>> from fractions import Fraction
>>> from matrixcalculus.compile.statements import Block, Lit, Op, View
>>> b = Block()
>>> x, y = b.argument("x", ("n",)), b.argument("y", ("n",))
>>> minus = b.assign(Op("mul", (Lit(Fraction(-1)), View(y))), ("n",))
>>> b.outputs.append(View(b.assign(Op("add", (View(x), View(minus)), ((False, False),)), ("n",))))
>>> [(s.op.name, s.op.params) for s in rewrite(b).statements]
[('add', ((False, True),))]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction

from matrixcalculus.compile.statements import Block, Factors, Lit, Op, Operand, Statement, Value, View, live

# The parameter that marks a comparison whose result stays boolean (see emit).
BOOLEAN = "boolean"


def rewrite(block: Block, in_place: bool = False) -> Block:
    """``block`` with the rewrites of this module applied, and what they leave unread dropped.

    ``in_place``: sums and products may write into the buffer of a temporary they read last
    (NumPy's augmented assignment), when the arrays are of one floating type (see :func:`_in_place`).
    """
    statements = list(block.statements)
    statements = _folded_negations(statements, block)
    statements = _shared_sums(statements)
    statements = _flat_products(statements, block)
    statements = _boolean_masks(statements, block)
    block = live(_shared(replace(block, statements=statements)))
    if in_place:
        block = replace(block, statements=_in_place(block.statements, block))
    return replace(block, sizes=_used_sizes(block))


# ------------------------------------------------------------------------------ reads


def _values(obj: object) -> Iterator[Value]:
    """The values an operand, an op's arguments or its parameters (shapes of sizes) read."""
    if isinstance(obj, Value):
        yield obj
    elif isinstance(obj, View):
        yield obj.value
    elif isinstance(obj, tuple | list):
        for item in obj:
            yield from _values(item)


def _readers(statements: list[Statement], block: Block) -> tuple[dict[Value, list[int]], set[Value]]:
    """For each value, the indices of the statements that read it; and the values outputs read."""
    readers: dict[Value, list[int]] = {}
    for k, s in enumerate(statements):
        for v in {*_values(s.op.args), *_values(s.op.params)}:
            readers.setdefault(v, []).append(k)
    outputs = {v for out in block.outputs for v in _values(out.arrays if isinstance(out, Factors) else out)}
    return readers, outputs


# ------------------------------------------------------------------------------ the rewrites


def _terms(op: Op) -> list[tuple[Operand, bool]]:
    (negative,) = op.params
    assert isinstance(negative, tuple)
    return list(zip(op.args, negative, strict=True))


def _sum(terms: list[tuple[Operand, bool]]) -> Op:
    return Op("add", tuple(a for a, _ in terms), (tuple(bool(minus) for _, minus in terms),))


def _folded_negations(statements: list[Statement], block: Block) -> list[Statement]:
    """A product ``c * a * ...`` with ``c < 0`` that only sums read is ``|c| * a * ...``, subtracted."""
    readers, outputs = _readers(statements, block)
    flipped: dict[Value, Value] = {}
    result: list[Statement] = []
    for s in statements:
        op = s.op
        if op.name == "add" and flipped:
            terms: list[tuple[Operand, bool]] = []
            for a, minus in _terms(op):
                if isinstance(a, View) and a.value in flipped:
                    terms.append((View(flipped[a.value], a.axes), not minus))
                else:
                    terms.append((a, minus))
            op = _sum(terms)
        elif op.name == "mul" and _negative_product(op) and s.target not in outputs:
            users = readers.get(s.target, [])
            if users and all(statements[k].op.name == "add" for k in users):
                rest: tuple[Operand, ...] = tuple(a for a in op.args if not isinstance(a, Lit))
                coefficient = -_coefficient(op)
                args = rest if coefficient == 1 else (Lit(coefficient), *rest)
                positive = Value("temporary", s.target.key, s.target.shape, s.target.dtype)
                flipped[s.target] = positive
                if len(args) == 1 and isinstance(args[0], View) and args[0].axes is None:
                    flipped[s.target] = args[0].value  # -1 * a: the sums read a itself
                    continue
                result.append(Statement(positive, Op("mul", args, op.params)))
                continue
        result.append(Statement(s.target, op) if op is not s.op else s)
    return result


def _coefficient(op: Op) -> Fraction:
    c = Fraction(1)
    for a in op.args:
        if isinstance(a, Lit):
            c *= a.value
    return c


def _negative_product(op: Op) -> bool:
    return any(isinstance(a, View) for a in op.args) and _coefficient(op) < 0


def _shared_sums(statements: list[Statement]) -> list[Statement]:
    """A sum that contains every term of an earlier sum (with the same signs, or all flipped)
    reads that sum instead of adding its terms again."""
    # The earlier sums by each of their terms (either sign): the candidates for a sum are those
    # filed under its terms.
    filed: dict[tuple[Operand, bool], list[tuple[Value, Counter[tuple[Operand, bool]], bool]]] = {}
    result: list[Statement] = []
    for s in statements:
        if s.op.name != "add":
            result.append(s)
            continue
        terms = _terms(s.op)
        candidates = {id(c): c for t in terms for c in filed.get(t, [])}.values()
        # The largest earlier sum first: it saves the most passes.
        for target, wanted, minus in sorted(candidates, key=lambda c: -c[1].total()):
            if len(terms) > wanted.total() and not wanted - Counter(terms):
                remaining = list(terms)
                for t in wanted.elements():
                    remaining.remove(t)
                terms = [(View(target), minus), *remaining]
        if terms[0][1] and not all(minus for _, minus in terms):
            # A positive term first: NumPy computes a leading -a as a pass of its own.
            first = next(k for k, (_, minus) in enumerate(terms) if not minus)
            terms = [terms[first], *terms[:first], *terms[first + 1 :]]
        if terms != _terms(s.op):
            s = Statement(s.target, _sum(terms))
        if len(terms) >= 2:
            same = Counter(terms)
            opposite = Counter((a, not m) for a, m in terms)
            for t in same:
                filed.setdefault(t, []).append((s.target, same, False))
            for t in opposite:
                filed.setdefault(t, []).append((s.target, opposite, True))
        result.append(s)
    return result


def _scalar(a: Operand) -> bool:
    return isinstance(a, Lit) or a.rank == 0


def _flat_products(statements: list[Statement], block: Block) -> list[Statement]:
    """Products read (as themselves, not a view) only by products are merged into their
    reader; every product lists its scalar factors first."""
    readers, outputs = _readers(statements, block)
    ops = {s.target: s.op for s in statements}
    inlined: set[Value] = set()
    for s in statements:
        if s.op.name == "mul" and s.target not in outputs and len(readers.get(s.target, [])) == 1:
            (k,) = readers[s.target]
            reader = statements[k].op
            uses = [a for a in reader.args if isinstance(a, View) and a.value is s.target]
            if reader.name == "mul" and len(uses) == 1 and uses[0].axes is None:
                inlined.add(s.target)
    result: list[Statement] = []
    for s in statements:
        if s.target in inlined:
            continue
        if s.op.name == "mul":
            args: list[Operand] = []
            pending = list(s.op.args)
            while pending:
                a = pending.pop(0)
                if isinstance(a, View) and a.value in inlined:
                    pending[:0] = ops[a.value].args
                else:
                    args.append(a)
            ordered = tuple([a for a in args if _scalar(a)] + [a for a in args if not _scalar(a)])
            if ordered != s.op.args:
                s = Statement(s.target, replace(s.op, args=ordered))
        result.append(s)
    return result


def _boolean_masks(statements: list[Statement], block: Block) -> list[Statement]:
    """Comparisons read only as factors of element-wise products that have an array factor of
    their own stay boolean: the product promotes them (NumPy, torch, jax, dask alike)."""
    readers, outputs = _readers(statements, block)
    compared = {s.target for s in statements if s.op.name == "compare"}

    def floating(op: Op) -> bool:
        return any(isinstance(a, View) and a.value not in compared for a in op.args)

    result: list[Statement] = []
    for s in statements:
        if s.op.name == "compare" and s.target not in outputs and len(s.op.params) == 1:
            users = [statements[k].op for k in readers.get(s.target, [])]
            if users and all(u.name == "mul" and floating(u) for u in users):
                s = Statement(s.target, replace(s.op, params=(*s.op.params, BOOLEAN)))
        result.append(s)
    return result


def _shared(block: Block) -> Block:
    """Statements that the rewrites made equal are computed once (as the planner shares ops)."""
    alias: dict[Value, Value] = {}

    def renamed(a: Operand) -> Operand:
        return View(alias[a.value], a.axes) if isinstance(a, View) and a.value in alias else a

    first: dict[Op, Value] = {}
    statements: list[Statement] = []
    for s in block.statements:
        op = replace(s.op, args=tuple(renamed(a) for a in s.op.args))
        if op in first:
            alias[s.target] = first[op]
            continue
        first[op] = s.target
        statements.append(Statement(s.target, op, s.into))
    outputs = [
        replace(out, arrays=tuple(renamed(a) for a in out.arrays)) if isinstance(out, Factors) else renamed(out)
        for out in block.outputs
    ]
    return replace(block, statements=statements, outputs=outputs)


def _used_sizes(block: Block) -> list[Statement]:
    """The sizes some statement, size or output reads (a size is read off an argument's shape
    only where it is used: each such line is a few tens of nanoseconds a call)."""
    needed = {v for s in block.statements for v in (*_values(s.op.args), *_values(s.op.params))}
    needed |= {v for out in block.outputs for v in _values(out.arrays if isinstance(out, Factors) else out)}
    kept: list[Statement] = []
    for s in reversed(block.sizes):
        if s.target in needed:
            kept.append(s)
            needed |= set(_values(s.op.args))
    return kept[::-1]


# Ops whose value is always a new array of the op's shape (a buffer the code owns): a product or
# sum of two or more operands, a matrix product, a power. A one-operand "product" is its operand
# (perhaps an argument), and function calls may return views: neither is written into.
_OWNED = frozenset({"matmul", "add", "mul", "power"})


def _in_place(statements: list[Statement], block: Block) -> list[Statement]:
    """Sums and products that write into a temporary they read for the last time.

    The temporary must be an array the code owns (:data:`_OWNED`, or itself written in place),
    of the result's shape (no broadcast into it), read by this statement once and as itself (no
    transposed or broadcast view of it, which would overlap the output; no second factor, which
    the first augmented assignment would change), and, in a sum, added rather than subtracted
    (``t -= b`` keeps the order of ``t - b``).
    """
    readers, outputs = _readers(statements, block)
    last = {v: max(ks) for v, ks in readers.items()}
    owned = {
        s.target
        for s in statements
        if s.op.name in _OWNED and s.target.rank >= 1 and (s.op.name in ("matmul", "power") or len(s.op.args) >= 2)
    }
    result: list[Statement] = []
    for k, s in enumerate(statements):
        if s.op.name in ("add", "mul") and s.target.rank >= 1:
            signs = _terms(s.op) if s.op.name == "add" else [(a, False) for a in s.op.args]
            for a, minus in signs:
                if not (isinstance(a, View) and a.axes is None and not minus):
                    continue
                v = a.value
                # Read once: in ``t *= c; t *= t`` the second factor would be the changed t.
                plain = sum(isinstance(b, View) and b.value is v for b in s.op.args) == 1
                if v in owned and v not in outputs and last.get(v) == k and v.shape == s.target.shape and plain:
                    s = replace(s, into=v)
                    owned.add(s.target)
                    break
        result.append(s)
    return result
