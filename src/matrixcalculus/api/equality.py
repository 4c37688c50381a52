"""Are two expressions equal? ``mc.equal("(A + A')*x", "A*x + A'*x")``: checking a derivation by hand.

Symbolically first: two expressions whose canonical forms (the simplified graphs) are the same
node are equal. Otherwise numerically: both are evaluated at several random points, drawn
inside each function's domain (as ``check`` draws them), with a different size for each
dimension so that a missing transpose of a non-square matrix shows. Unequal values give a
counterexample (the inputs and both values), and a diagnosis when the two differ only by a
transpose or by a constant factor.

>>> import matrixcalculus as mc
>>> bool(mc.equal(mc.gradient("tr(A*X*B)", "X"), "A'*B'"))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from matrixcalculus.api.calculus import _expression
from matrixcalculus.api.expression import Expression
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import random_values
from matrixcalculus.numeric.evaluate import bind
from matrixcalculus.transform.simplify import simplify

# Values agree when |a - b| <= RTOL * max(1, |a|, |b|) entry-wise (float64 evaluation of two
# different formulas for the same function differs by rounding only).
RTOL = 1e-8
DRAWS = 4


@dataclass(frozen=True)
class Comparison:
    """The answer of :func:`equal`: truthy when equal.

    ``how``: ``"symbolic"`` (the same canonical form), ``"numeric"`` (equal values at
    ``draws`` random points) or ``"shape"`` (the shapes differ). When unequal: ``inputs``,
    ``left`` and ``right`` are a counterexample; ``relation`` says ``"transpose"`` (``b`` is
    ``a'``), ``"factor"`` (``b`` is ``factor*a``), ``"transposed factor"`` or ``None``.
    """

    equal: bool
    how: str
    left_text: str
    right_text: str
    draws: int = 0
    relation: str | None = None
    factor: float | None = None
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    left: Any = None
    right: Any = None

    def __bool__(self) -> bool:
        return self.equal

    def __str__(self) -> str:
        a, b = self.left_text, self.right_text
        if self.equal:
            if self.how == "symbolic":
                return f"equal: {a} and {b} have the same canonical form"
            return f"equal: {a} and {b} agree at {self.draws} random points (numerically, to {RTOL:g})"
        if self.how == "shape" and self.relation is None:
            return f"not equal: {a} and {b} have different shapes ({self.left} and {self.right})"
        why = {
            "transpose": f"they differ only by a transpose: {b} is {_transposed(a)}",
            "factor": f"they differ only by a constant factor: {b} is {_number(self.factor)} times {a}",
            "transposed factor": (
                f"they differ by a transpose and a constant factor: "
                f"{b} is {_number(self.factor)} times {_transposed(a)}"
            ),
        }.get(self.relation or "", "")
        lines = [f"not equal{': ' + why if why else ''}"]
        if self.inputs:
            lines.append("  counterexample:")
            lines += [f"    {name} = {_flat(value)}" for name, value in self.inputs.items()]
            lines.append(f"    {a} = {_flat(self.left)}")
            lines.append(f"    {b} = {_flat(self.right)}")
        return "\n".join(lines)


def _flat(value: Any) -> str:
    return " ".join(np.array2string(np.asarray(value, dtype=np.float64), precision=4, suppress_small=True).split())


def _transposed(text: str) -> str:
    return f"{text}'" if text.isidentifier() else f"({text})'"


def _number(value: float | None) -> str:
    if value is None:
        return "?"
    rounded = round(value)
    return str(rounded) if abs(value - rounded) <= 1e-9 * max(1.0, abs(value)) else f"{value:.6g}"


def _variables(e: Expression) -> dict[str, g.Var]:
    """The variables ``e`` needs values of: its own and its function's (a derivative's context)."""
    return {name: v.node for name, v in {**e._context, **e.variables}.items()}


def _sizes(variables: Mapping[str, g.Var]) -> dict[str, int]:
    """A different size for each dimension name (2, 3, 4, ...): a transpose of a non-square
    matrix then shows as a different shape, and dimensions cannot be mixed up silently."""
    names: list[str] = []
    for var in variables.values():
        for d in var.shape:
            for name in g.dim_names(d):
                if name not in names:
                    names.append(name)
    return {name: 2 + k for k, name in enumerate(names)}


def _variable_dims(variables: Mapping[str, g.Var]) -> set[str]:
    return {name for var in variables.values() for d in var.shape for name in g.dim_names(d)}


def _free_sizes(left: Expression, right: Expression, taken: Mapping[str, int]) -> dict[str, int]:
    """A size for each dimension name of either expression that no variable fixes (``eye(n)``
    compared with ``eye(n)*1``, ``ones(n)'*ones(n)`` with ``n``): the same name gets the same size
    on both sides, and each a size no other dimension has (so no transpose goes unnoticed)."""
    names: list[str] = []
    for node in g.postorder(left.node, right.node):
        dims = node.shape + ((node.dim,) if isinstance(node, g.DimSize) else ())
        for d in dims:
            for name in g.dim_names(d):
                if name not in taken and name not in names:
                    names.append(name)
    spare = max(taken.values(), default=1) + 1
    return {name: spare + k for k, name in enumerate(names)}


def _form(e: Expression) -> str:
    """``"r"`` for a row, ``"c"`` for a column, else the rank (rows and columns are not equal)."""
    return e._form or "" if e.node.rank == 1 else str(e.node.rank)


def equal(
    a: str | Expression,
    b: str | Expression,
    *,
    types: Mapping[str, Any] | None = None,
    draws: int = DRAWS,
    seed: int = 0,
) -> Comparison:
    """Whether ``a`` and ``b`` are the same function of their variables (see the module's docstring).

    >>> print(equal("(A + A')*x", "A*x + A'*x"))
    equal: (A + A')*x and A*x + A'*x have the same canonical form
    >>> print(equal("tr(A*B)", "tr(B*A)"))
    equal: tr(A*B) and tr(B*A) agree at 4 random points (numerically, to 1e-08)
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise MatrixCalculusError(f"draws is a whole number of at least 1, not {draws!r}")
    left = _expression(a, types)
    right = _expression(b, types)
    left_text, right_text = _short(left), _short(right)
    if (
        left.node.rank == right.node.rank
        and _form(left) == _form(right)
        and simplify(left.node) is simplify(right.node)
    ):
        return Comparison(True, "symbolic", left_text, right_text)
    variables = _variables(left)
    for name, var in _variables(right).items():
        if name in variables and variables[name].kind != var.kind:
            raise MatrixCalculusError(
                f"{name} is a {variables[name].kind} in {left_text} but a {var.kind} in {right_text}; "
                f"declare its type (types={{{name!r}: ...}})"
            )
    # Right-only variables: sized by what the shared variables fix of the right's dimensions.
    only_right = {name: var for name, var in _variables(right).items() if name not in variables}
    sizes = _sizes(variables)
    try:
        first = random_values(variables, 3, seed, within=_within(left, right), dims=sizes)
        right_sizes = _right_sizes(right, first, only_right, sizes)
    except MatrixCalculusError:
        # The two read a variable's dimensions differently (A*B and B*A: the right needs square
        # matrices): compare where every dimension has the same size.
        sizes = {name: 3 for name in sizes}
        first = random_values(variables, 3, seed, within=_within(left, right), dims=sizes)
        right_sizes = _right_sizes(right, first, only_right, sizes)
    # Dimensions no variable has (eye(n), ones(n)): a size of their own, one per name on both sides.
    free = _free_sizes(left, right, {**sizes, **right_sizes})
    sizes, right_sizes = {**sizes, **free}, {**right_sizes, **free}
    for k in range(draws):
        values = random_values(variables, 3, seed + k, within=_within(left, right), dims=sizes)
        if only_right:
            values.update(random_values(only_right, 3, seed + k + 1000, within=_within(left, right), dims=right_sizes))
        try:
            va = np.asarray(left.evaluate(values, free), dtype=np.float64)
            vb = np.asarray(right.evaluate(values, free), dtype=np.float64)
        except EvaluationError as exc:
            raise MatrixCalculusError(
                f"cannot compare {left_text} and {right_text} at random inputs: {exc.message}"
            ) from None
        va, vb = _as_matrix(left, va), _as_matrix(right, vb)
        if va.shape != vb.shape and va.shape[::-1] != vb.shape:
            return Comparison(False, "shape", left_text, right_text, left=va.shape, right=vb.shape)
        if va.shape == vb.shape and _close(va, vb):
            continue
        relation, factor = _relation(left, right, variables, only_right, sizes, right_sizes, seed, draws)
        return Comparison(
            False, "numeric", left_text, right_text, k + 1, relation, factor, values, _as_given(va), _as_given(vb)
        )
    return Comparison(True, "numeric", left_text, right_text, draws)


def _short(e: Expression) -> str:
    text = " ".join(str(e).split()) if e.node.rank <= 2 else "tensor"
    return text if len(text) <= 60 else f"{text[:30]} ... {text[-20:]}"


def _within(left: Expression, right: Expression) -> g.Node:
    """One node over both expressions (walked for the domains of the random inputs, never evaluated)."""
    return g.add([_total(left.node), _total(right.node)])


def _total(node: g.Node) -> g.Node:
    """The sum of all entries of ``node``: a scalar with ``node`` below it."""
    if node.rank == 0:
        return node
    return g.contract([node], [tuple(range(node.rank))], ())


def _right_sizes(
    right: Expression, values: Mapping[str, np.ndarray], only_right: Mapping[str, g.Var], sizes: Mapping[str, int]
) -> dict[str, int]:
    """Sizes of the right's own dimension names: fixed by the shared variables' values, else new."""
    shared = {name: var for name, var in _variables(right).items() if name in values}
    try:
        _, bound = bind(shared, {name: values[name] for name in shared})
    except EvaluationError as exc:
        raise MatrixCalculusError(
            f"the variables have different shapes in the two expressions: {exc.message}"
        ) from None
    result = {d: s for d, s in bound.items() if isinstance(d, str)}
    spare = 2 + len(sizes)
    for var in only_right.values():
        for d in var.shape:
            for name in g.dim_names(d):
                if name not in result:
                    result[name] = spare
                    spare += 1
    return result


def _as_matrix(e: Expression, value: np.ndarray) -> np.ndarray:
    """A row vector as the 1 x n matrix it is, so that a row and a column differ by a transpose."""
    if e.node.rank == 1 and e._form == "r":
        return value.reshape(1, -1)
    if e.node.rank == 1:
        return value.reshape(-1, 1)
    return value


def _as_given(value: np.ndarray) -> np.ndarray:
    return value.reshape(-1) if value.ndim == 2 and 1 in value.shape else value


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    scale = max(1.0, float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
    return bool(np.all(np.abs(a - b) <= RTOL * scale))


def _factor(a: np.ndarray, b: np.ndarray) -> float | None:
    """The constant c with b = c*a (least squares), if it fits; None for a zero a."""
    norm = float(np.sum(a * a))
    if norm == 0.0:
        return None
    c = float(np.sum(a * b)) / norm
    return c if _close(c * a, b) else None


def _relation(
    left: Expression,
    right: Expression,
    variables: Mapping[str, g.Var],
    only_right: Mapping[str, g.Var],
    sizes: Mapping[str, int],
    right_sizes: Mapping[str, int],
    seed: int,
    draws: int,
) -> tuple[str | None, float | None]:
    """Whether ``right`` is ``left``'s transpose, a constant multiple, or both, at every draw."""
    candidates = {"transpose": True, "factor": True, "transposed factor": True}
    factors: dict[str, float | None] = {"factor": None, "transposed factor": None}
    for k in range(draws):
        values = random_values(variables, 3, seed + k, within=_within(left, right), dims=sizes)
        if only_right:
            values.update(random_values(only_right, 3, seed + k + 1000, within=_within(left, right), dims=right_sizes))
        free = {name: size for name, size in sizes.items() if name not in _variable_dims(variables)}
        va = _as_matrix(left, np.asarray(left.evaluate(values, free), dtype=np.float64))
        vb = _as_matrix(right, np.asarray(right.evaluate(values, free), dtype=np.float64))
        vt = va.T if va.ndim == 2 else None
        candidates["transpose"] &= vt is not None and vt.shape == vb.shape and _close(vt, vb)
        for name, base in (("factor", va), ("transposed factor", vt)):
            if not candidates[name] or base is None or base.shape != vb.shape:
                candidates[name] = False
                continue
            c, before = _factor(base, vb), factors[name]
            if c is None or (before is not None and abs(c - before) > RTOL * max(1.0, abs(c))):
                candidates[name] = False
            factors[name] = c
    for name in ("transpose", "factor", "transposed factor"):
        if candidates[name]:
            return name, factors.get(name)
    return None, None
