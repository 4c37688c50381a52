"""Code generation: derivative graphs -> fast, standalone array code.

The derived expressions (value, gradients, Hessians) are one hash-consed graph, so each common
subexpression becomes one statement. Before emission a few rewrites choose cheap forms:

* ``distribute_sum``: ``(A + A')*x`` runs as ``A@x + A.T@x`` (two mat-vecs, no n x n sum);
* ``stable forms``: ``log(1 + exp(u))`` is ``softplus(u)`` (``logaddexp``), ``log(sum(exp(u)))``
  is ``logsumexp(u)``; sigmoid, softmax and logsumexp are emitted in their stable forms.

Each contraction is split into pairwise products in the order an ``opt_einsum`` path search
finds for the actual sizes, and each pair is emitted as BLAS where it is one: ``A @ B``, ``A.T @ x``,
``x @ y``, a broadcast product for diagonal scalings (``X * s[:, None]``, so ``X'*diag(s)*X`` is
``(X * s[:, None]).T @ X``), an axis sum for a ``ones`` factor; ``einsum`` only for what is none
of these. Numbers and scalar factors multiply the smallest array on their way (``-X'*v`` negates
``v``, not ``X``).

The source depends only on the backend's array library (a :class:`Dialect` spells it).
"""

from __future__ import annotations

import itertools
import keyword
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.registry import fill, helper_names
from matrixcalculus.transform.lowering import lower

Labels = tuple[int, ...]


# ------------------------------------------------------------------------------ dialects


class Dialect:
    """How one array library spells each operation (NumPy's spelling here)."""

    name = "numpy"
    module = "numpy"

    def header(self) -> list[str]:
        return [f"import {self.module} as xp"]

    def sum(self, x: str, axes: Sequence[int]) -> str:
        axes = tuple(axes)
        return f"xp.sum({x}, axis={axes[0] if len(axes) == 1 else axes})"

    def permute(self, x: str, axes: Sequence[int]) -> str:
        if list(axes) == [1, 0]:
            return x[:-2] if x.endswith(".T") and x[:-2].isidentifier() else f"{x}.T"
        return f"xp.transpose({x}, {tuple(axes)})"

    def tensordot(self, a: str, b: str, axes_a: Sequence[int], axes_b: Sequence[int]) -> str:
        return f"xp.tensordot({a}, {b}, axes=({list(axes_a)}, {list(axes_b)}))"

    def einsum(self, spec: str, operands: Sequence[str]) -> str:
        return f"xp.einsum({spec!r}, {', '.join(operands)})"

    def diagonal(self, x: str) -> str:
        return f"xp.diagonal({x})"

    def trace(self, x: str) -> str:
        return f"xp.trace({x})"

    def eye(self, n: str) -> str:
        return f"xp.eye({n})"

    def ones(self, shape: str) -> str:
        return f"xp.ones({shape})"

    def zeros(self, shape: str) -> str:
        return f"xp.zeros({shape})"

    def full(self, shape: str, value: str) -> str:
        return f"xp.full({shape}, {value})"

    def indicator(self, comparison: str) -> str:
        return f"xp.asarray({comparison}, dtype=xp.float64)"

    def call(self, name: str, *args: str) -> str:
        """``name(args...)`` by the spelling the function's registry record gives this dialect."""
        record = FUNCTIONS.get(name)
        template = None if record is None else record.spelling(self.name)
        if template is None:
            raise MatrixCalculusError(f"no code for function {name!r} on backend {self.name}")
        return fill(template, args)

    def scalar(self, value: str) -> str:
        """A number literal as a 0-d array: arithmetic on two Python floats raises (``1.0 / 0.0``,
        ``10.0 ** 400.0``) or goes complex (``(-1.0) ** 0.5``) where arrays give IEEE values."""
        return f"xp.asarray({value}, dtype=xp.float64)"

    def helpers(self) -> dict[str, list[str]]:
        """Module-level helper functions by name (emitted only when the body calls them): those the
        registry records give this dialect's spellings."""
        return {
            helper: source.splitlines()
            for record in FUNCTIONS.values()
            for helper, source in record.helper_sources(self.name).items()
        }


class CupyDialect(Dialect):
    name = "cupy"
    module = "cupy"


class DaskDialect(Dialect):
    name = "dask"
    module = "dask.array"

    def header(self) -> list[str]:
        return ["import dask.array as xp", "import numpy as np"]

    def trace(self, x: str) -> str:
        return f"xp.sum(xp.diagonal({x}))"


class JaxDialect(Dialect):
    name = "jax"
    module = "jax.numpy"

    def header(self) -> list[str]:
        return ["import jax", "import jax.numpy as xp"]


class TorchDialect(Dialect):
    name = "torch"
    module = "torch"

    def header(self) -> list[str]:
        return ["import torch", "xp = torch"]

    def sum(self, x: str, axes: Sequence[int]) -> str:
        axes = tuple(axes)
        return f"torch.sum({x}, dim={axes[0] if len(axes) == 1 else axes})"

    def permute(self, x: str, axes: Sequence[int]) -> str:
        if list(axes) == [1, 0]:
            return x[:-2] if x.endswith(".T") and x[:-2].isidentifier() else f"{x}.T"
        return f"{x}.permute{tuple(axes)}"

    def tensordot(self, a: str, b: str, axes_a: Sequence[int], axes_b: Sequence[int]) -> str:
        return f"torch.tensordot({a}, {b}, dims=({list(axes_a)}, {list(axes_b)}))"

    def diagonal(self, x: str) -> str:
        return f"torch.diagonal({x})"

    def eye(self, n: str) -> str:
        return f"torch.eye({n}, dtype=torch.float64, device=_device)"

    def ones(self, shape: str) -> str:
        return f"torch.ones({shape}, dtype=torch.float64, device=_device)"

    def zeros(self, shape: str) -> str:
        return f"torch.zeros({shape}, dtype=torch.float64, device=_device)"

    def full(self, shape: str, value: str) -> str:
        return f"torch.full({shape}, {value}, dtype=torch.float64, device=_device)"

    def indicator(self, comparison: str) -> str:
        return f"({comparison}).to(torch.float64)"

    def scalar(self, value: str) -> str:
        return f"torch.tensor({value}, dtype=torch.float64, device=_device)"


DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (Dialect(), CupyDialect(), DaskDialect(), JaxDialect(), TorchDialect())
}


# ------------------------------------------------------------------------------ emission


@dataclass
class _Array:
    """An emitted value: its code (a name or an expression) and the label of each axis."""

    code: str
    labels: Labels


@dataclass
class Program:
    """Generated source: a function ``name(var1, var2, ...)`` returning the outputs in order."""

    source: str
    function: str
    arguments: list[str]
    backend: str
    lines: list[str] = field(default_factory=list)
    structures: list[Structure | None] = field(default_factory=list)


# Identifiers the generated module defines or imports: a user's variable never takes one of them.
# The module's own names: its imports and the helper functions any record's spelling may define
# (a user variable named _erf must not hide the helper erf(x) calls).
_MODULE_NAMES = frozenset({"xp", "np", "jax", "torch", "_device"})


def _internal() -> frozenset[str]:
    """The reserved identifiers of a generated module, read when a module is generated (a record
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

    def __init__(self, reserved: Sequence[str]):
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


class _Emitter:
    def __init__(self, dialect: Dialect, sizes: dict[g.Dim, int], names: _Names | None = None):
        self.d = dialect
        self.sizes = sizes
        self.lines: list[str] = []
        self.counter = itertools.count()
        self.code: dict[g.Node, _Array] = {}
        self.bound: dict[str, str] = {}
        self.names = names or _Names(_internal())
        self.variables: dict[str, str] = {}
        self.dims: dict[str, str] = {}
        self.temporaries: set[str] = set()

    def fresh(self) -> str:
        while (name := f"t{next(self.counter)}") in self.names.taken:
            pass
        self.names.taken.add(name)
        self.temporaries.add(name)
        return name

    def bind(self, expr: str) -> str:
        """A name for the value of ``expr``; the same expression twice is computed once (the code is
        pure, so equal text is an equal value: products inside different contractions are shared)."""
        if expr.isidentifier() or _is_number(expr):
            return expr
        if expr not in self.bound:
            name = self.fresh()
            self.lines.append(f"    {name} = {expr}")
            self.bound[expr] = name
        return self.bound[expr]

    def array(self, code: str) -> str:
        """``code`` as an array operand: a number literal becomes a 0-d array (see Dialect.scalar)."""
        return self.d.scalar(code) if _is_number(code) else code

    def size(self, dims: Sequence[g.Dim]) -> int:
        total = 1
        for d in dims:
            total *= g.dim_size(d, lambda name: self.sizes.get(name, 1000))
        return total

    def dim(self, d: g.Dim) -> str:
        if isinstance(d, int):
            return str(d)
        if isinstance(d, g.DimProduct):
            return "(" + " * ".join(([str(d.scale)] if d.scale != 1 else []) + [self.dim(f) for f in d.factors]) + ")"
        if d not in self.dims:
            raise MatrixCalculusError(f"no argument has dimension {d}: its size is unknown")
        return self.dims[d]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(value: Fraction) -> str:
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


def generate(
    roots: Sequence[g.Node],
    variables: Sequence[g.Var],
    backend: str = "numpy",
    sizes: dict[g.Dim, int] | None = None,
    name: str = "derivatives",
    dense: bool = True,
) -> Program:
    """Python source computing ``roots`` from ``variables`` with ``backend``'s array library.

    ``dense=False``: an output of order three or more that is a product of factors over disjoint
    axes (a Kronecker-structured Hessian) is returned as ``("factored", coeff, ((factor, axes), ...))``
    with ``("eye", n)`` for an identity factor, never formed.
    """
    if backend not in DIALECTS:
        raise MatrixCalculusError(f"unknown backend {backend!r}; choose one of {', '.join(DIALECTS)}")
    dialect = DIALECTS[backend]
    roots = lower(roots)
    em = _Emitter(dialect, dict(sizes or {}))
    args = [v.name for v in variables]
    # User names first (they read as typed where they can), then sizes, then temporaries.
    em.variables = em.names.variables(args)
    params = [em.variables[a] for a in args]
    # Symbolic dimensions are read off the arguments' shapes.
    dims_needed = {
        name
        for node in g.postorder(*roots)
        for d in node.shape + ((node.dim,) if isinstance(node, g.DimSize) else ())
        for name in g.dim_names(d)
    }
    for d in sorted(dims_needed):
        source = next(((v, axis) for v in variables for axis, vd in enumerate(v.shape) if vd == d), None)
        if source is None:
            raise MatrixCalculusError(f"no argument has dimension {d}: its size is unknown")
        em.dims[d] = em.names.claim(f"_{_ascii(d)}")
        em.lines.append(f"    {em.dims[d]} = {em.variables[source[0].name]}.shape[{source[1]}]")
    code = em.code
    uses: dict[g.Node, int] = {}
    order = g.postorder(*roots)
    for node in order:
        for a in node.args:
            uses[a] = uses.get(a, 0) + 1
    factored = {} if dense else {r: parts for r in roots if (parts := _components(r)) is not None}
    structures: dict[g.Node, Structure] = {}
    # An output returned as its factors is a tuple of arrays: never an operand. When another
    # derivative also uses that node (dF/dB contains dF/dA), it is computed densely too; when
    # nothing does, the dense statements are dead and _live drops them.
    factored_code: dict[g.Node, str] = {}
    for node in order:
        if node in factored and node not in factored_code:
            factored_code[node], structures[node] = _emit_factored(node, factored[node], em)  # type: ignore[arg-type]
        code[node] = _emit(node, [code[a] for a in node.args], em)
        # Every computed value gets a name: equal computations (equal text) are then done once,
        # also when they sit inside different flattened contractions.
        text = code[node].code
        # A negated term used once in a sum is left unnamed: the sum subtracts it instead.
        negated_term = isinstance(node, g.Contract) and node.coeff < 0 and uses.get(node, 0) == 1
        if not (
            isinstance(node, g.Var | g.Const)
            or (text.endswith(".T") and text[:-2].isidentifier())
            or (negated_term and node not in roots)
        ):
            code[node] = _Array(em.bind(text), code[node].labels)
    outputs = [factored_code.get(r, code[r].code) for r in roots]
    notes = [
        f"    # output {k} is {structures[r].describe(_names_in(factored_code[r]))}: a Kronecker-structured"
        " tensor, returned as its factors"
        for k, r in enumerate(roots)
        if r in structures
    ]
    body = _live(em.lines + notes + [f"    return ({', '.join(outputs)},)"], em.temporaries)
    lines = dialect.header()
    if backend == "torch":
        body.insert(0, f"    _device = {params[0]}.device" if params else "    _device = 'cpu'")
    lines += ["", ""]
    for helper, text_lines in dialect.helpers().items():
        if any(f"{helper}(" in line for line in body):
            lines += [*text_lines, "", ""]
    lines.append(f"def {name}({', '.join(params)}):")
    lines += body
    return Program("\n".join(lines) + "\n", name, args, backend, body, [structures.get(r) for r in roots])


def _names_in(tuple_code: str) -> list[str]:
    return [part.strip() for part in tuple_code.strip("(),").split(",") if part.strip()]


def _live(lines: list[str], temporaries: set[str]) -> list[str]:
    """Drop assignments nothing reads (e.g. an identity that a structured result keeps symbolic)."""
    kept: list[str] = []
    needed: set[str] = set()
    for line in reversed(lines):
        if line.strip().startswith("#"):
            kept.append(line)
            continue
        target, sep, expr = line.strip().partition(" = ")
        if sep and target in temporaries and target not in needed:
            continue
        kept.append(line)
        needed |= set(re.findall(r"[A-Za-z_]\w*", expr if sep else line))
    return kept[::-1]


def _components(node: g.Node) -> list[list[int]] | None:
    """The operands of a contraction of order >= 3 grouped into parts that share no index."""
    if not isinstance(node, g.Contract) or node.rank < 3:
        return None
    parent = list(range(len(node.args)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[int, int] = {}
    for k, labs in enumerate(node.labels):
        for lab in labs:
            if lab in first:
                parent[find(k)] = find(first[lab])
            else:
                first[lab] = k
    groups: dict[int, list[int]] = {}
    for k in range(len(node.args)):
        groups.setdefault(find(k), []).append(k)
    parts = list(groups.values())
    return parts if len(parts) > 1 else None


@dataclass(frozen=True)
class Structure:
    """How an output returned as factors makes the tensor: ``coeff * prod factor[axes]``; a factor
    is ``("eye", dimension)`` or ``("array", k)``, the k-th array returned for that output."""

    coeff: float
    factors: tuple[tuple[tuple[str, g.Dim | int], tuple[int, ...]], ...]

    def describe(self, names: Sequence[str]) -> str:
        parts = []
        for (kind, ref), axes in self.factors:
            base = f"eye({ref})" if kind == "eye" else names[int(ref)]
            parts.append(f"{base}[{','.join(map(str, axes))}]")
        return f"{self.coeff} * " + " * ".join(parts)


def _emit_factored(node: g.Contract, parts: list[list[int]], em: _Emitter) -> tuple[str, Structure]:
    factors: list[tuple[tuple[str, g.Dim | int], tuple[int, ...]]] = []
    arrays: list[str] = []
    for part in parts:
        free = tuple(lab for lab in node.out if any(lab in node.labels[k] for k in part))
        axes = tuple(node.out.index(lab) for lab in free)
        if len(part) == 1 and isinstance(node.args[part[0]], g.Delta) and len(set(node.labels[part[0]])) == 2:
            factors.append((("eye", node.args[part[0]].params[0]), axes))
            continue
        sub = g.contract([node.args[k] for k in part], [node.labels[k] for k in part], free)
        # The part's value has its free indices in the order of the result's axes.
        arr = _emit(sub, [em.code[a] for a in sub.args], em) if isinstance(sub, g.Contract) else em.code[sub]
        factors.append((("array", len(arrays)), axes))
        arrays.append(em.bind(arr.code))
    return (f"({', '.join(arrays)},)" if arrays else "()"), Structure(float(node.coeff), tuple(factors))


def _emit(node: g.Node, args: list[_Array], em: _Emitter) -> _Array:
    d = em.d
    rank_labels = tuple(range(node.rank))
    if isinstance(node, g.Var):
        if node.name not in em.variables:
            raise MatrixCalculusError(f"no argument for variable {node.name}")  # pragma: no cover - internal
        return _Array(em.variables[node.name], rank_labels)
    if isinstance(node, g.Const):
        return _Array(_number(node.value), ())
    if isinstance(node, g.DimSize):
        # The size the function read off an argument's shape, as a float64 0-d array.
        return _Array(d.scalar(em.dim(node.dim)), ())
    if isinstance(node, g.Reshape):
        shape = "(" + ", ".join(em.dim(x) for x in node.shape) + ",)"
        return _Array(f"xp.reshape({em.array(args[0].code)}, {shape})", rank_labels)
    if isinstance(node, g.Delta):
        return _Array(d.eye(em.dim(node.params[0])), (0, 1))
    if isinstance(node, g.Ones | g.Zeros):
        shape = "(" + ", ".join(em.dim(x) for x in node.shape) + ",)"
        return _Array(d.ones(shape) if isinstance(node, g.Ones) else d.zeros(shape), rank_labels)
    if isinstance(node, g.Add):
        return _Array(_emit_sum(node, args, em), rank_labels)
    if isinstance(node, g.Power):
        base_code = em.array(args[0].code)
        exponent = args[1]
        if isinstance(node.args[1], g.Const):
            p = node.args[1].value
            if p == 2:
                name = em.bind(base_code)
                return _Array(f"({name} * {name})", rank_labels)
            if p == -1:
                return _Array(f"(1.0 / {base_code})", rank_labels)
            if p == Fraction(1, 2):
                return _Array(d.call("sqrt", base_code), rank_labels)
            if p == Fraction(-1, 2):
                return _Array(f"(1.0 / {d.call('sqrt', base_code)})", rank_labels)
            return _Array(f"({base_code} ** {_number(p)})", rank_labels)
        return _Array(f"({base_code} ** ({exponent.code}))", rank_labels)
    if isinstance(node, g.Compare):
        a, b = args
        return _Array(d.indicator(f"{em.array(a.code)} {node.op} {b.code}"), rank_labels)
    if isinstance(node, g.Function):
        # An argument the spelling reads more than once (norm2: sqrt(sum(x * x))) is bound to a
        # name first, so it is computed once.
        repeated = node.record.repeated_arguments(d.name)
        codes = [em.bind(em.array(a.code)) if k in repeated else em.array(a.code) for k, a in enumerate(args)]
        return _Array(d.call(node.name, *codes), rank_labels)
    if isinstance(node, g.Contract):
        return _emit_contract(node, args, em)
    raise MatrixCalculusError(f"no code for {type(node).__name__}")  # pragma: no cover


def _broadcast_scalar(node: g.Node) -> tuple[Fraction, g.Node | None] | None:
    """``c * s * ones(...)`` -> (c, s): a scalar repeated over a tensor, added by broadcasting."""
    if isinstance(node, g.Ones):
        return Fraction(1), None
    if isinstance(node, g.Contract) and isinstance(node.args[-1], g.Ones) and node.labels[-1] == node.out:
        rest = node.args[:-1]
        if not rest:
            return node.coeff, None
        if len(rest) == 1 and rest[0].rank == 0:
            return node.coeff, rest[0]
    return None


def _emit_sum(node: g.Add, args: list[_Array], em: _Emitter) -> str:
    parts: list[str] = []
    for term, arr in zip(node.args, args, strict=True):
        negative = False
        text = arr.code
        scalar = _broadcast_scalar(term) if node.rank else None
        if scalar is not None:
            c, s = scalar
            # Broadcasting adds the scalar; no array of copies is built.
            body = None if s is None else em.code[s].code
            text = _number(abs(c)) if body is None else body if abs(c) == 1 else f"{_number(abs(c))} * {body}"
            negative = c < 0
        elif isinstance(term, g.Contract) and term.coeff < 0 and not arr.code.isidentifier():
            # a - b rather than a + (-1.0 * b): the negation costs a pass over the array.
            text = _emit_contract(term, [em.code[a] for a in term.args], em, -term.coeff).code
            negative = True
        if not parts:
            parts.append(f"-{text}" if negative else text)
        else:
            parts.append(f" - {text}" if negative else f" + {text}")
    total = "(" + "".join(parts) + ")"
    if node.rank and all(_broadcast_scalar(t) is not None for t in node.args):
        # Only scalars: nothing to broadcast against, so the array is built.
        shape = "(" + ", ".join(em.dim(x) for x in node.shape) + ",)"
        return em.d.full(shape, total)
    return total


def _emit_contract(node: g.Contract, args: list[_Array], em: _Emitter, coeff: Fraction | None = None) -> _Array:
    d = em.d
    ops: list[tuple[str, Labels, g.Node]] = []
    scalars: list[str] = []
    dims: dict[int, g.Dim] = {}
    for arr, labs, arg in zip(args, node.labels, node.args, strict=True):
        dims.update(zip(labs, arg.shape, strict=True))
        if not labs:
            scalars.append(arr.code)
        else:
            ops.append((arr.code, labs, arg))
    out = node.out
    coeff = node.coeff if coeff is None else coeff
    # Ones over an index that another factor carries: an axis sum (einsum semantics).
    # (A ones factor is dropped only where a factor that is not ones carries its index: sum(ones .* ones) is n.)
    carried = {lab for _, labs, arg in ops if not isinstance(arg, g.Ones) for lab in labs}
    ops = [op for op in ops if not (isinstance(op[2], g.Ones) and all(lab in carried for lab in op[1]))]
    if not ops:
        shape = "(" + ", ".join(em.dim(dims[lab]) for lab in out) + ",)"
        factors = ([_number(coeff)] if coeff != 1 else []) + scalars
        value = (factors[0] if len(factors) == 1 else f"({' * '.join(factors)})") if factors else "1.0"
        return _Array(d.full(shape, value) if out else value, out)
    factors = ([] if coeff == 1 else [_number(coeff)]) + scalars
    # Scale the smallest array on the way: an operand smaller than the result takes the factor.
    result_size = em.size([dims[lab] for lab in out])
    if factors:
        k_small = min(range(len(ops)), key=lambda k: em.size([dims[lab] for lab in ops[k][1]]))
        if em.size([dims[lab] for lab in ops[k_small][1]]) < result_size:
            code, labs, arg = ops[k_small]
            ops[k_small] = (f"({' * '.join(factors)} * {code})", labs, arg)
            factors = []
    arrays = [_Array(code, labs) for code, labs, _ in ops]
    result = _contract_arrays(arrays, out, dims, em)
    code = result.code
    if factors:
        code = f"({' * '.join(factors)} * {code})"
    return _Array(code, result.labels)


def _contract_arrays(arrays: list[_Array], out: Labels, dims: dict[int, g.Dim], em: _Emitter) -> _Array:
    """Pairwise products in the cheapest order for the sizes, each emitted as BLAS where possible."""
    arrays = [_reduce_alone(a, arrays, out, em) for a in arrays]
    if len(arrays) == 1:
        return _finish(arrays[0], out, em)
    tree = _plan_order([a.labels for a in arrays], out, {lab: em.size([d]) for lab, d in dims.items()})
    done: dict[object, _Array] = {}
    # Post-order over the plan: leaves are indices, inner nodes (left, right, kept labels).
    stack: list[tuple[object, bool]] = [(tree, False)]
    while stack:
        item, expanded = stack.pop()
        if isinstance(item, int):
            done[item] = arrays[item]
            continue
        left, right, keep = item  # type: ignore[misc]
        if not expanded:
            stack.append((item, True))
            stack.append((right, False))
            stack.append((left, False))
            continue
        merged = _pair(done[left], done[right], set(keep), em)
        done[item] = _Array(em.bind(merged.code), merged.labels)
    return _finish(done[tree], out, em)


def _plan_order(labels: list[Labels], out: Labels, size: dict[int, int]) -> object:
    """The product tree with the fewest multiply-adds (exact for up to 8 factors, else greedy).

    A tree is a factor index or ``(left, right, kept labels)``. The cost of one product is the
    product of the sizes of all labels it touches, so ``s .* y`` before ``X'*(...)`` is found.
    """
    n = len(labels)
    occurs: dict[int, int] = {}
    for labs in labels:
        for lab in set(labs):
            occurs[lab] = occurs.get(lab, 0) + 1

    def kept(members: frozenset[int]) -> tuple[int, ...]:
        inside: dict[int, int] = {}
        for k in members:
            for lab in set(labels[k]):
                inside[lab] = inside.get(lab, 0) + 1
        return tuple(sorted(lab for lab, c in inside.items() if lab in out or c < occurs[lab]))

    def flops(a: tuple[int, ...], b: tuple[int, ...]) -> int:
        total = 1
        for lab in set(a) | set(b):
            total *= size[lab]
        return total

    if n > 8:
        pool: list[tuple[object, tuple[int, ...], frozenset[int]]] = [
            (k, kept(frozenset([k])), frozenset([k])) for k in range(n)
        ]
        while len(pool) > 1:
            best = None
            for i in range(len(pool)):
                for j in range(i + 1, len(pool)):
                    members = pool[i][2] | pool[j][2]
                    cost = flops(pool[i][1], pool[j][1])
                    connected = bool(set(pool[i][1]) & set(pool[j][1]))
                    key = (not connected, cost)
                    if best is None or key < best[0]:
                        best = (key, i, j, members)
            assert best is not None
            _, i, j, members = best
            keep = kept(members)
            node = (pool[i][0], pool[j][0], keep)
            pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(node, keep, members)]
        return pool[0][0]
    full = frozenset(range(n))
    best_cost: dict[frozenset[int], tuple[int, object, tuple[int, ...]]] = {
        frozenset([k]): (0, k, kept(frozenset([k]))) for k in range(n)
    }
    for width in range(2, n + 1):
        for combo in itertools.combinations(range(n), width):
            members = frozenset(combo)
            keep = kept(members)
            first = combo[0]
            choice = None
            rest = [k for k in combo if k != first]
            # Split into a part holding the first factor and the rest (each split once).
            for r in range(0, len(rest)):
                for part in itertools.combinations(rest, r):
                    left = frozenset((first, *part))
                    right = members - left
                    lc, lt, lk = best_cost[left]
                    rc, rt, rk = best_cost[right]
                    cost = lc + rc + flops(lk, rk)
                    if choice is None or cost < choice[0]:
                        choice = (cost, (lt, rt, keep), keep)
            assert choice is not None
            best_cost[members] = choice
    return best_cost[full][1]


def _reduce_alone(a: _Array, arrays: list[_Array], out: Labels, em: _Emitter) -> _Array:
    """Sum out the axes whose label no other array and not the output carries."""
    others = {lab for b in arrays if b is not a for lab in b.labels} | set(out)
    if len(set(a.labels)) != len(a.labels):
        return a  # a diagonal: handled by _finish / einsum
    alone = [k for k, lab in enumerate(a.labels) if lab not in others]
    if not alone:
        return a
    return _Array(em.d.sum(a.code, alone), tuple(lab for lab in a.labels if lab in others))


def _finish(a: _Array, out: Labels, em: _Emitter) -> _Array:
    """Bring one array to the labels ``out``: diagonal, trace, axis sums, transpose."""
    d = em.d
    labels = a.labels
    code = a.code
    if len(set(labels)) != len(labels):
        if len(labels) == 2 and not out:
            return _Array(d.trace(code), ())
        if len(labels) == 2 and out == (labels[0],):
            return _Array(d.diagonal(code), out)
        spec = _letters(labels) + "->" + _letters(out, labels)
        return _Array(d.einsum(spec, [code]), out)
    summed = [k for k, lab in enumerate(labels) if lab not in out]
    if summed:
        code = d.sum(code, summed) if len(summed) < len(labels) else f"xp.sum({code})"
        labels = tuple(lab for lab in labels if lab in out)
    if labels != out:
        code = d.permute(code, [labels.index(lab) for lab in out])
    return _Array(code, out)


def _letters(labels: Labels, reference: Labels | None = None) -> str:
    pool = sorted(set(labels) | set(reference or ()))
    return "".join("abcdefghijklmnopqrstuvwxyz"[pool.index(lab)] for lab in labels)


def _pair(a: _Array, b: _Array, keep: set[int], em: _Emitter) -> _Array:
    """One product of two arrays, keeping the labels in ``keep``."""
    d = em.d
    a = _reduce_alone(a, [a, b], tuple(keep), em)
    b = _reduce_alone(b, [a, b], tuple(keep), em)
    la, lb = a.labels, b.labels
    shared = [lab for lab in la if lab in lb]
    batch = [lab for lab in shared if lab in keep]
    summed = [lab for lab in shared if lab not in keep]
    if len(set(la)) != len(la) or len(set(lb)) != len(lb):
        return _einsum_pair(a, b, keep, em)
    if not batch:
        # A tensor product over the summed labels: matmul forms first.
        ra, rb = len(la), len(lb)
        if len(summed) == 1 and ra <= 2 and rb <= 2:
            (s,) = summed
            if ra + rb == 3:
                # Matrix times vector: A @ x over A's columns, x @ A (that is A' x) over its rows.
                (m, lm), (v, _) = ((b, lb), (a, la)) if ra == 1 else ((a, la), (b, lb))
                other = tuple(lab for lab in lm if lab != s)
                return _Array(f"({m.code} @ {v.code})" if lm[1] == s else f"({v.code} @ {m.code})", other)
            ta = a.code if ra == 1 or la[1] == s else d.permute(a.code, [1, 0])
            tb = b.code if rb == 1 or lb[0] == s else d.permute(b.code, [1, 0])
            result = tuple(lab for lab in la if lab != s) + tuple(lab for lab in lb if lab != s)
            return _Array(f"({ta} @ {tb})", result)
        if not summed and ra + rb <= 2:
            if ra == 0 or rb == 0:
                return _Array(f"({a.code} * {b.code})", la + lb)
            return _Array(f"({a.code}[:, None] * {b.code}[None, :])", la + lb)
        if len(summed) == ra == rb and ra <= 2:
            tb = b.code if tuple(lb) == tuple(la) else d.permute(b.code, [lb.index(lab) for lab in la])
            return _Array(f"xp.sum({a.code} * {tb})", ())
        axes_a = [la.index(lab) for lab in summed]
        axes_b = [lb.index(lab) for lab in summed]
        result = tuple(lab for lab in la if lab not in summed) + tuple(lab for lab in lb if lab not in summed)
        return _Array(d.tensordot(a.code, b.code, axes_a, axes_b), result)
    if not summed:
        # An entry-wise product with broadcasting: diag(s)*X is X * s[:, None].
        target = tuple(la) + tuple(lab for lab in lb if lab not in la)
        return _Array(f"({_aligned(a, target, em)} * {_aligned(b, target, em)})", target)
    if len(la) + len(lb) - len(shared) <= 2:
        # Entry-wise product, then the sum over the summed labels.
        target = tuple(la) + tuple(lab for lab in lb if lab not in la)
        prod = _Array(f"({_aligned(a, target, em)} * {_aligned(b, target, em)})", target)
        return _finish(prod, tuple(lab for lab in target if lab in keep), em)
    return _einsum_pair(a, b, keep, em)


def _aligned(a: _Array, target: Labels, em: _Emitter) -> str:
    """``a`` indexed to broadcast against ``target`` (its axes in target order, None elsewhere)."""
    order = [lab for lab in target if lab in a.labels]
    code = a.code
    if tuple(order) != a.labels:
        code = em.d.permute(code, [a.labels.index(lab) for lab in order])
    if len(order) == len(target):
        return code
    index = ", ".join(":" if lab in a.labels else "None" for lab in target)
    return f"{code}[{index}]"


def _einsum_pair(a: _Array, b: _Array, keep: set[int], em: _Emitter) -> _Array:
    labels = sorted(set(a.labels) | set(b.labels))
    result = tuple(lab for lab in labels if lab in keep)
    spec = f"{_letters(a.labels, tuple(labels))},{_letters(b.labels, tuple(labels))}->{_letters(result, tuple(labels))}"
    return _Array(em.d.einsum(spec, [a.code, b.code]), result)
