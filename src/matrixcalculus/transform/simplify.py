"""Simplification: named rewrite rules applied bottom-up until nothing changes.

Derivatives come out of the engine as nested contractions with Kronecker deltas, ones and
scattered numeric factors. The rules below bring them to the compact form a person writes:

* ``flatten``: a contraction of contractions is one contraction (Einstein notation is associative);
* ``eliminate_delta``: ``sum_j A[i,j] delta[j,k]`` is ``A[i,k]`` (the identity disappears);
* ``drop_ones``: a ``ones`` factor whose indices other factors carry changes nothing;
* ``merge_powers``: scalar factors ``u * u^-1`` cancel, ``u * u`` is ``u^2``;
* ``symmetric_labels``: a symmetric matrix equals its transpose, so ``S'`` is ``S``;
* ``transpose_of_sum``: ``(A + B)'`` is ``A' + B'`` (transposes go to the leaves);
* ``merge_like_terms``: ``2*A*x + A*x`` is ``3*A*x``, comparing terms up to operand order;
* ``factor_common``: ``A*x + A'*x`` is ``(A + A')*x`` (sums that differ in one factor);
* ``fold_power``: ``x^1``, ``x^0``, ``(x^a)^b`` for whole ``b``;
* ``power_of_exponential``: ``exp(u).^q`` is ``exp(q*u)`` for a symbolic ``q``;
* ``power_of_power``: ``(u.^p).^q`` is ``u.^(p*q)`` for a positive ``u``;
* ``softplus``: ``log(1 + exp(u))`` and ``log1p(exp(u))`` are ``softplus(u)`` (computed without overflow).

Each rule is a small function on one node; :func:`simplify` rebuilds the graph children first,
so the result shares every subexpression the input shared.
"""

from __future__ import annotations

import itertools
import math
import weakref
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from fractions import Fraction

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.transform.blocks import inlined, select_block, split_over_stack
from matrixcalculus.transform.lowering import softplus_argument
from matrixcalculus.transform.signs import positive

Labels = tuple[int, ...]

# Identities of particular functions (u*sign(u) = abs(u), X*inv(X) = I, exp(u)/(1 + exp(u)) =
# sigmoid(u)) name their records here, through the registry, once: a record renamed or removed
# fails at import, not silently. Generic rules read the records (``undoes``, ``keeps_symmetry``).
_SIGN, _ABS, _INV, _EXP, _LOG, _SIGMOID, _SOFTMAX, _SOFTPLUS, _LOG1P = (
    FUNCTIONS[name].name for name in ("sign", "abs", "inv", "exp", "log", "sigmoid", "softmax", "softplus", "log1p")
)


# What each rule says, for explanations that report the rules applied (``traced``).
RULE_STATEMENTS = {
    "eliminate_delta": "multiplying by the identity (a Kronecker delta) changes nothing: "
    "sum_j A[i,j]*delta(j,k) = A[i,k]",
    "drop_ones": "a factor of ones over indices that other factors carry changes nothing",
    "merge_ones": "ones(m)*ones(n)' is ones(m,n)",
    "merge_powers": "factors with one base multiply by adding exponents (u*u^-1 = 1, y .* y = y.^2)",
    "sign_times_self": "u*sign(u) is abs(u)",
    "cancel_inverse": "X*inv(X) is the identity",
    "expand_inverse": "inv(X*Y) is inv(Y)*inv(X), where a factor then meets its own inverse",
    "sigmoid_of_ratio": "exp(u) ./ (1 + exp(u)) is sigmoid(u)",
    "transpose_of_sum": "(A + B)' is A' + B'",
    "merge_like_terms": "like terms add up: 2*A*x + A*x is 3*A*x",
    "factor_common": "a common factor comes out of a sum: A*x + B*x is (A + B)*x",
    "common_scalar_factor": "a common scalar factor comes out of a sum: s*A + s*B is s*(A + B)",
    "common_coefficient": "a common number comes out of a sum: 2*a + 2*b is 2*(a + b)",
    "undo_function": "a function undone by the next one cancels: inv(inv(X)) is X, log(exp(x)) is x",
    "fold_power": "powers fold: x^1 is x, x^0 is 1, (x^a)^b is x^(a*b) for a whole b",
    "power_of_exponential": "a power of an exponential is the exponential of a multiple: exp(u)^q is exp(q*u)",
    "power_of_power": "powers of a positive base multiply their exponents: (u^p)^q is u^(p*q) where u > 0",
    "softplus": "log(1 + exp(u)) (and log1p(exp(u))) is softplus(u)",
}

# The rules applied, as (rule name, before, after), while a ``traced()`` block runs; None
# otherwise. Looked up only when a rule has fired, so simplifying untraced costs nothing more.
_TRACE: ContextVar[list[tuple[str, g.Node, g.Node]] | None] = ContextVar("simplify_trace", default=None)


@contextmanager
def traced() -> Iterator[list[tuple[str, g.Node, g.Node]]]:
    """Record the rules that simplification applies inside the block: ``(name, before, after)``
    with ``name`` a key of :data:`RULE_STATEMENTS`.

    >>> x = g.var("x", "vector", ("n",))
    >>> with traced() as steps:
    ...     _ = simplify(g.contract([g.delta("n"), x], [(0, 1), (1,)], (0,)))
    >>> steps[0][0]
    'eliminate_delta'
    """
    token = _TRACE.set([])
    try:
        yield _TRACE.get()  # type: ignore[misc]
    finally:
        _TRACE.reset(token)


def _record(name: str, before: g.Node, after: g.Node) -> None:
    trace = _TRACE.get()
    if trace is not None and before is not after:
        trace.append((name, before, after))


def simplify(root: g.Node) -> g.Node:
    """The simplified form of ``root`` (same value, compact structure)."""
    memo: dict[g.Node, g.Node] = {}
    for node in g.postorder(root):
        memo[node] = _simplify_node(node, [memo[a] for a in node.args])
    result = memo[root]
    # One more pass reaches rules enabled by rewrites of parents (a rare second round).
    if result is not root:
        memo2: dict[g.Node, g.Node] = {}
        for node in g.postorder(result):
            memo2[node] = _simplify_node(node, [memo2[a] for a in node.args])
        result = memo2[result]
    return result


def simplify_many(roots: Sequence[g.Node]) -> list[g.Node]:
    """:func:`simplify` of each root, with one memo for all: the entries of an explicit Jacobian
    share most of their parts, which are simplified once."""
    memo: dict[g.Node, g.Node] = {}
    second: dict[g.Node, g.Node] = {}
    results = []
    for root in roots:
        for node in g.postorder(root):
            if node not in memo:
                memo[node] = _simplify_node(node, [memo[a] for a in node.args])
        result = memo[root]
        if result is not root:
            for node in g.postorder(result):
                if node not in second:
                    second[node] = _simplify_node(node, [second[a] for a in node.args])
            result = second[result]
        results.append(result)
    return results


def _simplify_node(node: g.Node, args: list[g.Node]) -> g.Node:
    if isinstance(node, g.Contract):
        return normal_contract(args, node.labels, node.out, node.coeff)
    if isinstance(node, g.Add):
        return normal_sum(args)
    if isinstance(node, g.Power):
        rule, folded = _fold_power(args[0], args[1])
        if _TRACE.get() is not None and rule is not None:
            _record(rule, g._intern(g.Power, (args[0], args[1]), ()), folded)
        return folded
    if isinstance(node, g.Compare):
        return g.compare(node.op, args[0], args[1])
    if isinstance(node, g.Function):
        return simplify_function(node, args)
    if isinstance(node, g.Reshape):
        return g.reshape(args[0], node.shape)
    return node


def simplify_function(node: g.Function, args: Sequence[g.Node]) -> g.Node:
    """``f(g(x)) -> x`` where ``f`` undoes ``g`` (its record says so): ``inv(inv(X)) -> X``,
    ``log(exp(x)) -> x``."""
    undone = node.record.undoes
    if undone is not None and len(args) == 1 and isinstance(args[0], g.Function) and args[0].name == undone:
        if _TRACE.get() is not None:
            _record("undo_function", g.apply(node.name, *args, dim=node.dim), args[0].args[0])
        return args[0].args[0]
    if node.name == _SIGMOID and _is_negation(args[0]):
        # sigmoid(-u) = 1 - sigmoid(u): one sigmoid node, so that terms in u merge and cancel.
        return add_ones_minus(g.apply(_SIGMOID, args[0].args[0]))
    exponent = softplus_argument(g.apply(node.name, *args)) if node.name in (_LOG, _LOG1P) else None
    if exponent is not None:
        # softplus is evaluated as logaddexp(0, u): exact where exp(u) overflows, and its
        # derivatives are sigmoids, not ratios of exponentials that cancel.
        result = g.apply(_SOFTPLUS, exponent)
        if _TRACE.get() is not None:
            _record("softplus", g.apply(node.name, *args), result)
        return result
    return g.apply(node.name, *args, dim=node.dim)


def _is_negation(node: g.Node) -> bool:
    """``-u``: a contraction of one operand with coefficient -1 and its own labels."""
    return (
        isinstance(node, g.Contract)
        and node.coeff == -1
        and len(node.args) == 1
        and node.labels[0] == node.out
        and len(set(node.out)) == len(node.out)
    )


def add_ones_minus(x: g.Node) -> g.Node:
    """``1 - x`` entry-wise, in normal form."""
    return normal_sum([g.ones(x.shape), g.scale(-1, x)])


# ------------------------------------------------------------------------------ contractions


def normal_contract(ops: Sequence[g.Node], labels: Sequence[Labels], out: Labels, coeff: Fraction) -> g.Node:
    ops, labels, coeff = flatten(list(ops), [tuple(lab) for lab in labels], coeff, out)
    if coeff == 0 or any(g.is_zero(op) for op in ops):
        return g.zeros(g.Contract.shape_rule(tuple(ops), (coeff, tuple(labels), out)))
    changed = True
    while changed:
        changed = False
        for rule in (
            eliminate_delta,
            drop_ones,
            merge_ones,
            count_ones,
            select_block,
            cancel_division,
            merge_powers,
            sign_times_self,
            cancel_inverse,
            expand_inverse,
            sigmoid_of_ratio,
            softmax_of_ratio,
            sum_of_softmax,
        ):
            result = rule(ops, labels, out)
            if result is not None:
                if _TRACE.get() is not None:
                    _record(rule.__name__, g.contract(ops, labels, out, coeff), g.contract(*result, coeff))
                ops, labels, out = result
                changed = True
    if any(g.is_zero(op) for op in ops):  # a rule's zero (B1'*B2 of two parts of a stack)
        return g.zeros(g.Contract.shape_rule(tuple(ops), (coeff, tuple(labels), out)))
    split = split_over_stack(ops, labels, out, coeff, normal_contract, normal_sum)
    if split is not None:
        return split
    distributed = distribute_to_cancel(ops, labels, out, coeff)
    if distributed is not None:
        return distributed
    labels = symmetric_labels(ops, labels, out)
    pushed = transpose_of_sum(ops, labels, out, coeff)
    if pushed is not None:
        if _TRACE.get() is not None:
            _record("transpose_of_sum", g.contract(ops, labels, out, coeff), pushed)
        return pushed
    return g.contract(ops, labels, out, coeff)


def _reciprocals(op: g.Node, labs: Labels) -> set[tuple[g.Node, Labels]]:
    """The (base, indices) of the factors ``base .^ p``, ``p < 0``, of ``op`` indexed by ``labs``."""
    ops, labels, _ = flatten([op], [labs], Fraction(1))
    found = set()
    for factor, factor_labels in zip(ops, labels, strict=True):
        base, p = _base_exponent(factor)  # type: ignore[misc]
        if p < 0 and factor.rank:
            found.add((base, factor_labels))
    return found


def distribute_to_cancel(ops: list[g.Node], labels: list[Labels], out: Labels, coeff: Fraction) -> g.Node | None:
    """``(a ./ s + b) .* s = a + b .* s``: a sum among the factors is distributed when one of its
    terms divides by a factor of the product, which then cancels (``cancel_division``). The
    logistic loss's ``(-y ./ s + (1 - y) ./ (1 - s)) .* s .* (1 - s)`` becomes
    ``-y .* (1 - s) + (1 - y) .* s``."""
    present: set[tuple[g.Node, Labels]] = set()
    for op, labs in zip(ops, labels, strict=True):
        base, p = _base_exponent(op)  # type: ignore[misc]
        if p > 0 and op.rank:
            present.add((base, labs))
    if not present:
        return None
    top = 1 + max((lab for labs in labels for lab in labs), default=-1)
    for k, op in enumerate(ops):
        if not isinstance(op, g.Add) or len(op.args) > 8:
            continue
        # Inner labels are renamed apart from the outer ones by flatten (from ``top`` on).
        if any(
            (base, labs) in present
            for term in op.args
            for base, labs in _reciprocals(term, labels[k])
            if all(lab < top for lab in labs)
        ):
            return normal_sum(
                [normal_contract([*ops[:k], term, *ops[k + 1 :]], labels, out, coeff) for term in op.args]
            )
    return None


def is_error_signal(op: g.Node) -> bool:
    """An entry-wise product with a factor computed from the arguments of a nonlinear function:
    ``(W'*d) .* (1 - h.^2)``, the error signal (backprop delta) of a layer. A deep chain's
    derivative w.r.t. each layer shares these; kept as nodes, they are computed and printed once
    (see :func:`flatten`)."""
    if not isinstance(op, g.Contract) or not op.out or len(op.args) < 2:
        return False
    if not all(sum(lab in labs for labs in op.labels) >= 2 for lab in op.out):
        return False
    # A quotient is inlined: its divisor may cancel against a factor outside ((t ./ s)'*s).
    if any(_base_exponent(a)[1] < 0 for a in op.args):  # type: ignore[index]
        return False
    return any(isinstance(a, g.Add | g.Function | g.Power) and a.rank for a in op.args)


def _divides(op: g.Node) -> bool:
    """Has ``op`` a factor ``u .^ p``, ``p < 0``: itself, an operand of it, or of a term of it."""
    candidates = [op]
    if isinstance(op, g.Contract | g.Add):
        candidates += list(op.args)
        for a in op.args:
            if isinstance(a, g.Contract) and isinstance(op, g.Add):
                candidates += list(a.args)
    return any(_base_exponent(c)[1] < 0 for c in candidates)  # type: ignore[index]


def flatten(
    ops: list[g.Node], labels: list[Labels], coeff: Fraction, out: Labels | None = None
) -> tuple[list[g.Node], list[Labels], Fraction]:
    """Inline operands that are contractions, renaming their summed labels apart.

    Given the contraction's ``out``, an error signal (:func:`is_error_signal`) that the product
    sums against another factor (``W'*delta``: a layer's backward step) is kept whole: inlined,
    every layer's derivative would repeat the whole backward chain below it (text and work
    quadratic in the depth)."""
    top = 1 + max((lab for labs in labels for lab in labs), default=-1)
    new_ops: list[g.Node] = []
    new_labels: list[Labels] = []
    # Where the product divides, everything is inlined: a divisor may cancel a factor of a signal.
    keep_signals = out is not None and len(ops) > 1 and not any(_divides(op) for op in ops)
    for op, labs in zip(ops, labels, strict=True):
        if isinstance(op, g.Const):
            coeff *= op.value
            continue
        if keep_signals and is_error_signal(op):
            new_ops.append(op)
            new_labels.append(labs)
            continue
        if not isinstance(op, g.Contract):
            new_ops.append(op)
            new_labels.append(labs)
            continue
        coeff *= op.coeff
        inner_ops, inner_labels, top = inlined(op, labs, top)
        new_ops += inner_ops
        new_labels += inner_labels
    return new_ops, new_labels, coeff


def _substitute(labels: list[Labels], out: Labels, old: int, new: int) -> tuple[list[Labels], Labels]:
    def sub(labs: Labels) -> Labels:
        return tuple(new if lab == old else lab for lab in labs)

    return [sub(labs) for labs in labels], sub(out)


Rewrite = tuple[list[g.Node], list[Labels], Labels] | None


def eliminate_delta(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``A[i,j] delta[j,k] -> A[i,k]``: a delta with a summed index renames it away."""
    for k, (op, labs) in enumerate(zip(ops, labels, strict=True)):
        if not isinstance(op, g.Delta) or labs[0] == labs[1]:
            continue
        i, j = labs
        rest_ops = ops[:k] + ops[k + 1 :]
        rest_labels = labels[:k] + labels[k + 1 :]
        carried = {lab for other in rest_labels for lab in other}
        for a, b in ((i, j), (j, i)):
            if b not in out and b not in carried:
                # sum_b delta[a,b] = 1 for every a: the delta is a ones vector over a.
                return rest_ops + [g.ones((op.params[0],))], rest_labels + [(a,)], out
        if j not in out:
            rest_labels, new_out = _substitute(rest_labels, out, j, i)
        elif i not in out:
            rest_labels, new_out = _substitute(rest_labels, out, i, j)
        else:
            continue
        if not rest_ops:
            continue
        return rest_ops, rest_labels, new_out
    return None


def drop_ones(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """A ``ones`` factor is redundant where every one of its indices is carried by another factor."""
    for k, (op, labs) in enumerate(zip(ops, labels, strict=True)):
        if not isinstance(op, g.Ones) or len(ops) == 1:
            continue
        others = {lab for j, other in enumerate(labels) if j != k for lab in other}
        if all(lab in others for lab in labs):
            return ops[:k] + ops[k + 1 :], labels[:k] + labels[k + 1 :], out
    return None


def merge_ones(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``ones(m)*ones(n)'`` is ``ones(m,n)``: ones factors over free indices no one else carries."""
    carried = {lab for op, labs in zip(ops, labels, strict=True) if not isinstance(op, g.Ones) for lab in labs}
    lone = [
        k
        for k, (op, labs) in enumerate(zip(ops, labels, strict=True))
        if isinstance(op, g.Ones) and all(lab in out and lab not in carried for lab in labs)
    ]
    if len(lone) < 2:
        return None
    merged_labels = tuple(lab for lab in out if any(lab in labels[k] for k in lone))
    dims = {lab: d for k in lone for lab, d in zip(labels[k], ops[k].shape, strict=True)}
    keep = [k for k in range(len(ops)) if k not in lone]
    return (
        [ops[k] for k in keep] + [g.ones(tuple(dims[lab] for lab in merged_labels))],
        [labels[k] for k in keep] + [merged_labels],
        out,
    )


def count_ones(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``ones(m,n)*ones(n)`` is ``n*ones(m)``: an index summed over ``ones`` factors only counts
    its dimension (the derivative of ``sum(W*X + b)`` in ``b`` is ``n*ones(m)``)."""
    for lab in {lab for labs in labels for lab in labs} - set(out):
        holders = [k for k, labs in enumerate(labels) if lab in labs]
        if not all(isinstance(ops[k], g.Ones) and labels[k].count(lab) == 1 for k in holders):
            continue
        dim = ops[holders[0]].shape[labels[holders[0]].index(lab)]
        new_ops, new_labels = [], []
        for k, (op, labs) in enumerate(zip(ops, labels, strict=True)):
            if k in holders:
                kept = tuple(d for d, other in zip(op.shape, labs, strict=True) if other != lab)
                op, labs = g.ones(kept), tuple(other for other in labs if other != lab)
                if not labs:
                    continue
            new_ops.append(op)
            new_labels.append(labs)
        return [*new_ops, g.size_of(dim)], [*new_labels, ()], out
    return None


def sign_times_self(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``u*sign(u) = abs(u)`` for scalar factors (then ``abs(u)/abs(u)`` cancels)."""
    for k, op in enumerate(ops):
        if op.rank == 0 and isinstance(op, g.Function) and op.name == _SIGN and op.args[0] in ops:
            j = ops.index(op.args[0])
            keep = [i for i in range(len(ops)) if i not in (j, k)]
            return [ops[i] for i in keep] + [g.apply(_ABS, op.args[0])], [labels[i] for i in keep] + [()], out
    return None


def _base_exponent(op: g.Node) -> tuple[g.Node, Fraction] | None:
    if isinstance(op, g.Power) and isinstance(op.args[1], g.Const):
        return op.args[0], op.args[1].value
    return op, Fraction(1)


def cancel_division(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``u .^ p`` times ``u .^ -p`` over the same indices is 1 entry by entry: a Hadamard division
    cancelled by a contraction with the same factor, ``(t ./ s)'*s = sum(t)``. The pair becomes a
    ``ones`` over their indices (dropped where another factor carries them), so a sum over them stays
    a sum: ``s'*(1 ./ s) = sum(ones(n)) = n``."""
    seen: dict[tuple[g.Node, Labels], list[tuple[int, Fraction]]] = {}
    for k, op in enumerate(ops):
        base, p = _base_exponent(op)  # type: ignore[misc]
        if not op.rank or len(set(labels[k])) != len(labels[k]) or isinstance(base, g.Ones):
            continue
        for j, q in seen.get((base, labels[k]), []):
            if p + q == 0:
                keep = [i for i in range(len(ops)) if i not in (j, k)]
                return (
                    [ops[i] for i in keep] + [g.ones(op.shape)],
                    [labels[i] for i in keep] + [labels[k]],
                    out,
                )
        seen.setdefault((base, labels[k]), []).append((k, p))
    return None


def merge_powers(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """Factors with one base and the same indices multiply by adding exponents: ``u * u^-1 = 1``
    for scalars, ``y .* y = y.^2`` entry-wise. (Not an inner product: ``x'*x`` stays, since there
    the indices are summed between the two alone.)"""
    seen: dict[tuple[g.Node, Labels], int] = {}
    # For each label, how many factors carry it with each label tuple: "another factor with other
    # labels carries lab" is then a look-up, not a pass over all factors (long chains: linear).
    carriers: dict[int, dict[Labels, int]] = {}
    for labs in labels:
        for lab in set(labs):
            carriers.setdefault(lab, {})
            carriers[lab][labs] = carriers[lab].get(labs, 0) + 1
    for k, op in enumerate(ops):
        be = _base_exponent(op)
        assert be is not None
        base, _ = be
        key = (base, labels[k])
        if op.rank:
            mine = labels[k]
            if len(set(mine)) != len(mine) or not all(
                lab in out or any(labs != mine for labs in carriers[lab]) for lab in mine
            ):
                continue
        if key in seen:
            j = seen[key]
            total = _base_exponent(ops[j])[1] + be[1]  # type: ignore[index]
            merged = fold_power(base, g.const(total))
            new_ops = list(ops)
            new_labels = list(labels)
            new_ops[j] = merged
            del new_ops[k], new_labels[k]
            if isinstance(merged, g.Const) and merged.value == 1:
                # u^0 = 1 leaves nothing to multiply by (another number is folded by contract()).
                del new_ops[j], new_labels[j]
            return new_ops, new_labels, out
        seen[key] = k
    return None


def cancel_inverse(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``X*inv(X) = inv(X)*X = I``: a matrix times its inverse over an index only they carry."""
    for k, op in enumerate(ops):
        if not (isinstance(op, g.Function) and op.name == _INV):
            continue
        x = op.args[0]
        for j, other in enumerate(ops):
            if other is not x or j == k:
                continue
            shared = [lab for lab in labels[j] if lab in labels[k]]
            if len(shared) != 1:
                continue
            (s,) = shared
            if s in out or sum(lab == s for labs in labels for lab in labs) != 2:
                continue
            pj, pk = labels[j].index(s), labels[k].index(s)
            if pj == pk:
                continue  # X'*inv(X) is no identity
            a = labels[j][1 - pj]
            b = labels[k][1 - pk]
            keep = [i for i in range(len(ops)) if i not in (j, k)]
            return ([ops[i] for i in keep] + [g.delta(x.shape[0])], [labels[i] for i in keep] + [(a, b)], out)
    return None


def _chain(node: g.Node) -> list[tuple[g.Node, bool]] | None:
    """``P = F1*F2*...*Fk`` of square matrices as [(F, transposed?)], or None."""
    if not isinstance(node, g.Contract) or node.coeff != 1 or node.rank != 2 or len(node.args) < 2:
        return None
    if any(op.rank != 2 or op.shape[0] != op.shape[1] for op in node.args):
        return None
    # A chain joins each index to exactly one other place: the output or the next factor. A label
    # seen more often is a Hadamard or diagonal product (B .* eye(n) .* R walks like B*eye(n)'*R
    # but is not one), and inv of it does not factor.
    seen = Counter(lab for labs in node.labels for lab in labs)
    seen.update(node.out)
    if any(count != 2 for count in seen.values()):
        return None
    label = node.out[0]
    remaining = list(range(len(node.args)))
    chain: list[tuple[g.Node, bool]] = []
    while remaining:
        step = next((k for k in remaining if label in node.labels[k]), None)
        if step is None:
            return None
        labs = node.labels[step]
        if labs[0] == labs[1]:
            return None
        transposed = labs[1] == label
        chain.append((node.args[step], transposed))
        label = labs[0] if transposed else labs[1]
        remaining.remove(step)
    return chain if label == node.out[1] else None


def expand_inverse(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``X*inv(X*Y) -> inv(Y)``: the inverse of a product of square matrices is the product of the
    inverses in reverse order; expanded only where a factor then meets its own inverse."""
    for k, op in enumerate(ops):
        if not (isinstance(op, g.Function) and op.name == _INV):
            continue
        chain = _chain(op.args[0])
        if chain is None:
            continue
        a, b = labels[k]
        # inv(P)[a,b]: its first index meets P's last factor, its second P's first factor.
        ends = {a: chain[-1], b: chain[0]}
        meets = any(
            lab in other_labels and other is factor
            for lab, (factor, _) in ends.items()
            for j, (other, other_labels) in enumerate(zip(ops, labels, strict=True))
            if j != k
        )
        if not meets:
            continue
        top = 1 + max(lab for labs in labels for lab in labs)
        # inv(F1 F2 ... Fk)[a,b] = inv(Fk)[a,c1] inv(F(k-1))[c1,c2] ... inv(F1)[c(k-1),b]
        new_ops: list[g.Node] = []
        new_labels: list[Labels] = []
        left = a
        for step, (factor, transposed) in enumerate(reversed(chain)):
            right = b if step == len(chain) - 1 else top + step
            inverse = g.apply(_INV, factor)
            new_ops.append(inverse)
            new_labels.append((right, left) if transposed else (left, right))
            left = right
        keep = [j for j in range(len(ops)) if j != k]
        return [ops[j] for j in keep] + new_ops, [labels[j] for j in keep] + new_labels, out
    return None


def sigmoid_of_ratio(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``exp(u) ./ (1 + exp(u)) = sigmoid(u)``, entry-wise: the logistic function, and its stable form."""
    for k, op in enumerate(ops):
        if not (isinstance(op, g.Function) and op.name == _EXP):
            continue
        u = op.args[0]
        for j, other in enumerate(ops):
            if (
                isinstance(other, g.Power)
                and isinstance(other.args[1], g.Const)
                and other.args[1].value == -1
                and labels[j] == labels[k]
                and _is_one_plus(other.args[0], op)
            ):
                keep = [i for i in range(len(ops)) if i not in (j, k)]
                return ([ops[i] for i in keep] + [g.apply(_SIGMOID, u)], [labels[i] for i in keep] + [labels[k]], out)
    return None


def softmax_of_ratio(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``exp(u)/sum(exp(u)) = softmax(u)`` for a vector ``u``, and ``exp(Z) ./ sum(exp(Z), d)``
    (repeated over the axis ``d``) ``= softmax(Z, d)`` for a matrix: the normalised exponential,
    computed stably."""
    for k, op in enumerate(ops):
        if not (isinstance(op, g.Function) and op.name == _EXP and op.rank in (1, 2)):
            continue
        for j, other in enumerate(ops):
            if not (
                isinstance(other, g.Power)
                and isinstance(other.args[1], g.Const)
                and other.args[1].value == -1
                and isinstance(other.args[0], g.Contract)
            ):
                continue
            total = other.args[0]
            if total.coeff != 1 or total.args != (op,) or len(set(total.labels[0])) != op.rank:
                continue
            # The sum's free axes must be the exponential's axes the ratio shares with it.
            kept = [total.labels[0].index(lab) for lab in total.out]
            if tuple(labels[k][a] for a in kept) != labels[j]:
                continue
            if op.rank == 1 and not kept:
                ratio = g.apply(_SOFTMAX, op.args[0])
            elif op.rank == 2 and len(kept) == 1:
                ratio = g.apply(_SOFTMAX, op.args[0], dim=2 - kept[0])  # the columns kept: axis 1
            else:
                continue
            keep = [i for i in range(len(ops)) if i not in (j, k)]
            return [ops[i] for i in keep] + [ratio], [labels[i] for i in keep] + [labels[k]], out
    return None


def sum_of_softmax(ops: list[g.Node], labels: list[Labels], out: Labels) -> Rewrite:
    """``sum(softmax(z)) = 1``; ``sum(softmax(Z, 1), 1) = ones(n)'``: the entries of a softmax
    along its axis, summed over that axis and nothing else, are 1."""
    for k, op in enumerate(ops):
        if not (isinstance(op, g.Function) and op.name == _SOFTMAX) or len(set(labels[k])) != op.rank:
            continue
        axis = 0 if op.dim is None else op.dim - 1
        lab = labels[k][axis]
        if lab in out or any(lab in labs for j, labs in enumerate(labels) if j != k):
            continue
        if op.rank == 1:
            keep = [i for i in range(len(ops)) if i != k]
            if not keep:
                return [g.const(1)], [()], out
            return [ops[i] for i in keep], [labels[i] for i in keep], out
        return (
            [*ops[:k], g.ones((op.shape[1 - axis],)), *ops[k + 1 :]],
            [*labels[:k], (labels[k][1 - axis],), *labels[k + 1 :]],
            out,
        )
    return None


def _is_one_plus(node: g.Node, term: g.Node) -> bool:
    if not isinstance(node, g.Add) or len(node.args) != 2:
        return False
    one = g.ones(term.shape)
    return (node.args[0] is one and node.args[1] is term) or (node.args[1] is one and node.args[0] is term)


_SYMMETRIC: weakref.WeakKeyDictionary[g.Node, bool] = weakref.WeakKeyDictionary()
# The same facts by the node's digest (its structure), oldest dropped first beyond the bound.
_SYMMETRIC_BY_DIGEST: dict[bytes, bool] = {}


def is_symmetric(node: g.Node) -> bool:
    """Is this square matrix its own transpose? Declared symmetric variables, identities, ``X'*X``,
    ``X'*S*X``, ``A + A'``, and inverses and entry-wise functions of symmetric matrices are."""
    if node.rank != 2 or node.shape[0] != node.shape[1]:
        return False
    known = _SYMMETRIC.get(node)
    if known is None:
        known = _SYMMETRIC_BY_DIGEST.get(node.digest)  # a regrouping asked about before
    if known is not None:
        return known
    for sub in g.postorder(node):  # children first, so the recursion below is one level deep
        if sub not in _SYMMETRIC and sub.rank == 2:
            # The printer asks about short-lived regroupings of one graph again and again; the
            # weak table forgets them with the node, the digest table (bounded) does not.
            by_digest = _SYMMETRIC_BY_DIGEST.get(sub.digest)
            if by_digest is None:
                by_digest = _SYMMETRIC_BY_DIGEST[sub.digest] = _symmetric_here(sub)
                if len(_SYMMETRIC_BY_DIGEST) > 200_000:
                    _SYMMETRIC_BY_DIGEST.pop(next(iter(_SYMMETRIC_BY_DIGEST)))
            _SYMMETRIC[sub] = by_digest
    return _SYMMETRIC[node]


def _symmetric_here(node: g.Node) -> bool:
    if node.rank != 2 or node.shape[0] != node.shape[1]:
        return False
    if isinstance(node, g.Var):
        return node.kind == "symmetric"
    if isinstance(node, g.Delta | g.Ones | g.Zeros):
        return True
    if isinstance(node, g.Function):
        # Entry-wise functions and the inverse keep symmetry; they do not make it.
        return node.record.symmetric_preserving and all(_SYMMETRIC.get(a, False) for a in node.args)
    if isinstance(node, g.Power):
        return _SYMMETRIC.get(node.args[0], False) and (node.args[1].rank == 0 or _SYMMETRIC.get(node.args[1], False))
    if isinstance(node, g.Add):
        terms = set(node.args)
        return all(_SYMMETRIC.get(t, False) or g.transpose(t) in terms for t in node.args)
    if isinstance(node, g.Contract):
        a, b = node.out
        swapped = g.contract(node.args, node.labels, (b, a), node.coeff)
        return canonical_key(swapped) == canonical_key(node)
    return False


def symmetric_labels(ops: list[g.Node], labels: list[Labels], out: Labels) -> list[Labels]:
    """Write each symmetric matrix with its labels in order of appearance (``S'`` is ``S``)."""
    labels = list(labels)
    for _ in range(3):
        canon, _ = g.canonical_labels(labels, out)
        changed = False
        for k, op in enumerate(ops):
            if op.rank == 2 and canon[k][0] > canon[k][1] and is_symmetric(op):
                labels[k] = labels[k][::-1]
                changed = True
        if not changed:
            break
    return labels


def transpose_of_sum(ops: list[g.Node], labels: list[Labels], out: Labels, coeff: Fraction) -> g.Node | None:
    """``c * (A + B)'`` -> ``c*A' + c*B'``: a lone sum under a relabelling is distributed."""
    if len(ops) != 1 or not isinstance(ops[0], g.Add):
        return None
    (labs,) = labels
    if len(set(labs)) != len(labs) or set(labs) != set(out) or labs == out:
        return None
    return normal_sum([normal_contract([t], [labs], out, coeff) for t in ops[0].args])


# ------------------------------------------------------------------------------ sums


def _split_coeff(term: g.Node) -> tuple[Fraction, g.Node]:
    if isinstance(term, g.Contract) and term.coeff != 1:
        return term.coeff, g.contract(term.args, term.labels, term.out)
    if isinstance(term, g.Const):
        return term.value, g.const(1)
    return Fraction(1), term


_KEYS: weakref.WeakKeyDictionary[g.Node, object] = weakref.WeakKeyDictionary()


def canonical_key(node: g.Node) -> object:
    """A key equal for contractions that differ only in the order of their operands (and in the
    order of a symmetric operand's two labels).

    The key is the operands in some order with the labels renumbered canonically for that
    order, so equal keys always mean the same value; the work is in making the order
    canonical, so that equal values get equal keys as often as possible. Memoised per node
    (nodes are interned and immutable).
    """
    if not isinstance(node, g.Contract):
        return node
    known = _KEYS.get(node)
    if known is None:
        known = _KEYS[node] = _canonical_key(node)
    return known


# Above this many labellings the search stops trying permutations of operands that tie.
_MAX_LABELLINGS = 720


def _canonical_key(node: g.Contract) -> object:
    symmetric = [k for k, op in enumerate(node.args) if op.rank == 2 and is_symmetric(op)]
    colour = _refined_colours(node, set(symmetric))
    base = sorted(range(len(node.args)), key=lambda k: colour[k])
    # Operands that still tie after refinement (the same node, placed alike in the index
    # structure, e.g. the two X in X'*X) can be taken in any order: try them all (up to a
    # bound) and keep the smallest labelling.
    groups: list[list[int]] = []
    for k in base:
        if groups and colour[groups[-1][0]] == colour[k]:
            groups[-1].append(k)
        else:
            groups.append([k])
    candidates: list[list[int]] = [[]]
    for group in groups:
        # Bounded: the permutations are only generated when there are few of them.
        if len(group) > 1 and len(candidates) * math.factorial(len(group)) <= _MAX_LABELLINGS:
            perms = list(itertools.permutations(group))
        else:
            perms = [tuple(group)]
        candidates = [c + list(p) for c in candidates for p in perms]
    flips = list(itertools.product((False, True), repeat=len(symmetric))) if len(symmetric) <= 6 else [()]
    if len(candidates) * len(flips) > _MAX_LABELLINGS:
        flips = [()]
    best = None
    for order in candidates:
        for flip in flips:
            turned = {k for k, f in zip(symmetric, flip, strict=False) if f}
            raw = [node.labels[k][::-1] if k in turned else node.labels[k] for k in order]
            labels, out = g.canonical_labels(raw, node.out)
            key = (labels, out)
            if best is None or key < best:
                best = key
    assert best is not None
    return ("contract", tuple(node.args[k] for k in base), best[0], best[1])


def _refined_colours(node: g.Contract, symmetric: set[int]) -> list[int]:
    """A colour per operand, equal for operands that the index structure does not tell apart.

    Colour refinement (as in Weisfeiler-Lehman): start from the operand itself and where its
    labels go (free position, or summed); then repeatedly give each label the colours of the
    operands and positions it joins, and each operand the colours of its labels, until the
    number of colours stops growing. The colours depend only on the structure, never on the
    label numbers or operand order, so isomorphic contractions get the same colours. Without
    this, a product of k equal factors (the terms of d tr(A^k)/dA) ties all k factors, and
    the permutation search above cannot tell which labellings to try. A ``symmetric``
    operand's two labels are not told apart (its labels may be swapped), so the colours do not
    depend on which way round it is written either.
    """
    n = len(node.args)
    out_pos = {lab: p for p, lab in enumerate(node.out)}

    def position(k: int, pos: int) -> int:
        return 0 if k in symmetric else pos

    colour = _ranks(
        [
            (node.args[k].digest, tuple(sorted(_pattern(node, k))) if k in symmetric else _pattern(node, k))
            for k in range(n)
        ]
    )
    count = len(set(colour))
    while True:
        joins: dict[int, list[tuple[int, int]]] = {}
        for k, labs in enumerate(node.labels):
            for pos, lab in enumerate(labs):
                joins.setdefault(lab, []).append((colour[k], position(k, pos)))
        label_colour = {lab: (out_pos.get(lab, -1), tuple(sorted(j))) for lab, j in joins.items()}
        colour = _ranks(
            [(colour[k], _in_order([label_colour[lab] for lab in node.labels[k]], k in symmetric)) for k in range(n)]
        )
        new_count = len(set(colour))
        if new_count == count or new_count == n:
            return colour
        count = new_count


def _in_order(items: list, unordered: bool) -> tuple:
    return tuple(sorted(items)) if unordered else tuple(items)


def _ranks(signatures: list) -> list[int]:
    """Each signature replaced by its rank among the distinct signatures (a stable, small colour)."""
    rank = {sig: r for r, sig in enumerate(sorted(set(signatures)))}
    return [rank[sig] for sig in signatures]


def _pattern(node: g.Contract, k: int) -> tuple:
    """Where operand k's labels go (free position or summed), independent of label numbers."""
    return tuple(node.out.index(lab) if lab in node.out else -1 for lab in node.labels[k])


def normal_sum(terms: Sequence[g.Node]) -> g.Node:
    flat: list[g.Node] = []
    for term in terms:
        flat.extend(term.args if isinstance(term, g.Add) else (term,))
    shape = flat[0].shape
    expanded = expand_to_cancel(flat)
    merged = expanded or merge_like_terms(flat)
    tracing = _TRACE.get() is not None
    if tracing and expanded:
        _record("expand_to_cancel", g.add(flat), g.add(merged))
    elif tracing and len(merged) < len(flat) and len(flat) > 1:
        _record("merge_like_terms", g.add(flat), g.add(merged) if merged else g.zeros(shape))
    if not merged:
        return g.zeros(shape)
    factored = factor_common(merged)
    if tracing and len(factored) < len(merged):
        _record("factor_common", g.add(merged), g.add(factored))
    merged = factored
    if len(merged) == 1:
        return merged[0]
    pulled = common_scalar_factor(merged)
    if pulled is not None:
        if tracing:
            _record("common_scalar_factor", g.add(merged), pulled)
        return pulled
    result = common_coefficient(merged)
    if tracing and not isinstance(result, g.Add):
        _record("common_coefficient", g.add(merged), result)
    return result


def _monomials(term: g.Node) -> list[g.Node] | None:
    """The terms of ``term`` multiplied out one level: ``c*(a + b)`` and ``x .* (a + b)`` are
    ``[c*a, c*b]`` and ``[x .* a, x .* b]``; None for a term with no sum among its factors (or more
    than one: the expansion would multiply)."""
    if not isinstance(term, g.Contract):
        return None
    sums = [k for k, op in enumerate(term.args) if isinstance(op, g.Add)]
    if len(sums) != 1 or len(term.args[sums[0]].args) > 4:
        return None
    (k,) = sums
    ops = list(term.args)
    return [
        normal_contract([*ops[:k], part, *ops[k + 1 :]], list(term.labels), term.out, term.coeff)
        for part in term.args[k].args
    ]


def expand_to_cancel(terms: list[g.Node]) -> list[g.Node] | None:
    """The terms multiplied out where that makes some of them cancel: ``-y .* (1 - s) + (1 - y) .* s``
    is ``s - y``, ``1 - (1 - s)`` is ``s``. Kept only when terms cancel and the sum gets no longer,
    so a factored form stays factored otherwise."""
    if len(terms) < 2 or len(terms) > _PAIRWISE_TERMS:
        return None
    expanded: list[g.Node] = []
    grew = False
    for term in terms:
        parts = _monomials(term)
        if parts is None:
            expanded.append(term)
        else:
            expanded.extend(p for part in parts for p in (part.args if isinstance(part, g.Add) else (part,)))
            grew = True
    if not grew:
        return None
    merged = merge_like_terms(expanded)
    distinct = len({_term_key(t)[2] for t in expanded if not g.is_zero(t)})
    # Some terms cancelled (not merely merged, which would undo a factored form) and none was added.
    if len(merged) < distinct and len(merged) <= len(terms):
        return merged
    return None


def common_scalar_factor(terms: list[g.Node]) -> g.Node | None:
    """``s*A + s*B -> s*(A + B)`` for a scalar factor ``s`` (an expression, not a number) of every term."""
    products = [t for t in terms if isinstance(t, g.Contract)]
    if len(products) != len(terms):
        return None
    first = products[0]
    for op, labs in zip(first.args, first.labels, strict=True):
        if labs or isinstance(op, g.Const):
            continue
        if not all(any(o is op and not l for o, l in zip(t.args, t.labels, strict=True)) for t in products):
            continue
        rest = []
        for t in products:
            k = next(k for k, (o, l) in enumerate(zip(t.args, t.labels, strict=True)) if o is op and not l)
            rest.append(normal_contract(t.args[:k] + t.args[k + 1 :], t.labels[:k] + t.labels[k + 1 :], t.out, t.coeff))
        inner = normal_sum(rest)
        idx = tuple(range(inner.rank))
        return g.contract([op, inner], [(), idx], idx)
    return None


def common_coefficient(terms: list[g.Node]) -> g.Node:
    """``2*a + 2*b -> 2*(a + b)``: a coefficient every term shares comes out of the sum."""
    coeffs = [_split_coeff(t)[0] for t in terms]
    c = coeffs[0]
    if abs(c) == 1 or any(other != c for other in coeffs):
        return g.add(terms)
    inner = g.add([_split_coeff(t)[1] if _split_coeff(t)[1].rank == t.rank else t for t in terms])
    idx = tuple(range(inner.rank))
    return g.contract([inner], [idx], idx, c)


_TERM_KEYS: weakref.WeakKeyDictionary[g.Node, tuple[Fraction, g.Node, object]] = weakref.WeakKeyDictionary()


def _term_key(term: g.Node) -> tuple[Fraction, g.Node, object]:
    """``(coefficient, body, canonical_key(body))`` of a term, memoised: a sum that grows one
    term at a time (factoring ``A1*x + A2*x + ...``) meets the same terms again and again."""
    known = _TERM_KEYS.get(term)
    if known is None:
        c, body = _split_coeff(term)
        known = _TERM_KEYS[term] = (c, body, canonical_key(body))
    return known


def merge_like_terms(terms: list[g.Node]) -> list[g.Node]:
    """Add the coefficients of terms that are the same up to a factor; drop zeros."""
    total: dict[object, Fraction] = {}  # in order of first appearance
    body_of: dict[object, g.Node] = {}
    for term in terms:
        if g.is_zero(term):
            continue
        c, body, key = _term_key(term)
        if key in total:
            total[key] += c
        else:
            total[key] = c
            body_of[key] = body
    result = []
    for key, c in total.items():
        if c == 0:
            continue
        body = body_of[key]
        result.append(
            body if c == 1 else normal_contract([body], [tuple(range(body.rank))], tuple(range(body.rank)), c)
        )
    return result


# Up to this many terms, factor_common merges pairs greedily in term order, as a person would
# (the printed forms of small results are the pairwise ones). Above it, each term absorbs every
# later term it shares a key with in one step: the same value, and linear rather than quadratic
# in the number of terms, because the pairwise way rebuilds the growing common sum at each step.
_PAIRWISE_TERMS = 16


def factor_common(terms: list[g.Node]) -> list[g.Node]:
    """``A*x + B*x -> (A + B)*x``: two contractions that differ in one operand share the rest.

    Up to ``_PAIRWISE_TERMS`` terms, greedy as written: the first pair (in term order) that
    factors is merged, then the search starts again. Only pairs that share a
    :func:`_factor_keys` key can factor, so each term is compared with those alone (an index,
    not all pairs), and a pair that failed is not tried again. Above, :func:`_factor_groups`.
    """
    terms = list(terms)
    if len(terms) > _PAIRWISE_TERMS:
        return _factor_groups(terms)
    failed: set[tuple[g.Node, g.Node]] = set()
    while len(terms) > 1:
        keys = [_factor_keys(t) for t in terms]
        index: dict[tuple, list[int]] = {}
        for k, term_keys in enumerate(keys):
            for _, key in term_keys:
                index.setdefault(key, []).append(k)
        found = None
        for a in range(len(terms)):
            partners = sorted({b for _, key in keys[a] for b in index[key] if b > a})
            for b in partners:
                pair = (terms[a], terms[b])
                if pair in failed:
                    continue
                factored = _factor_pair(*pair)
                if factored is None:
                    failed.add(pair)
                    continue
                found = (a, b, factored)
                break
            if found is not None:
                break
        if found is None:
            break
        a, b, factored = found
        terms[a] = factored
        del terms[b]
    return terms


def _factor_groups(terms: list[g.Node]) -> list[g.Node]:
    """Factoring for long sums: in term order, each term takes every later term that shares one
    of its keys (its first key with any partner) into one common sum, in one rebuild; repeated
    until nothing changes (a factored term has new keys)."""
    changed = True
    while changed and len(terms) > 1:
        changed = False
        index: dict[tuple, list[tuple[int, int]]] = {}
        for k, t in enumerate(terms):
            for q, key in _factor_keys(t):
                index.setdefault(key, []).append((k, q))
        consumed = [False] * len(terms)
        result: list[g.Node] = []
        for a, t in enumerate(terms):
            if consumed[a]:
                continue
            consumed[a] = True
            for p, key in _factor_keys(t):
                partners: dict[int, int] = {}
                for b, q in index[key]:
                    if b > a and not consumed[b] and b not in partners:
                        partners[b] = q
                if not partners:
                    continue
                assert isinstance(t, g.Contract)
                factored = _factor_group(t, p, [(terms[b], q) for b, q in partners.items()])  # type: ignore[misc]
                if factored is None:
                    continue
                node, used = factored
                for b, k in zip(partners, used, strict=True):
                    consumed[b] = consumed[b] or k
                t = node
                changed = True
                break
            result.append(t)
        terms = result
    return terms


_FACTOR_KEYS: weakref.WeakKeyDictionary[g.Node, tuple] = weakref.WeakKeyDictionary()


def _factor_keys(t: g.Node) -> tuple[tuple[int, tuple], ...]:
    """What a term shares with every term it can factor with (:func:`_factor_at`): for each
    operand ``p``, the other operands and their labels (aligned as ``_factor_at`` aligns them),
    the operand's label set and the output. Two terms factor only if they have a key in common.
    Pairs ``(p, key)``, one per distinct key, in operand order; memoised per node."""
    if not isinstance(t, g.Contract) or len(t.args) < 2:
        return ()
    known = _FACTOR_KEYS.get(t)
    if known is None:
        keys: dict[tuple, int] = {}
        for p in range(len(t.args)):
            ops, labels = _align(t, p)
            key = (len(t.args), t.out, tuple(ops[:-1]), tuple(labels[:-1]), tuple(sorted(labels[-1])))
            keys.setdefault(key, p)
        known = _FACTOR_KEYS[t] = tuple((p, key) for key, p in keys.items())
    return known


def _factor_pair(t1: g.Node, t2: g.Node) -> g.Node | None:
    if not (isinstance(t1, g.Contract) and isinstance(t2, g.Contract)):
        return None
    if len(t1.args) != len(t2.args) or len(t1.args) < 2 or t1.out != t2.out:
        return None
    p = q = None
    # Find the one operand of each that the other lacks.
    pool = list(t2.args)
    leftover1 = []
    for k, op in enumerate(t1.args):
        if op in pool:
            pool.remove(op)
        else:
            leftover1.append(k)
    if len(leftover1) == 1:
        p = leftover1[0]
        q = next(k for k, op in enumerate(t2.args) if op is pool[0]) if len(pool) == 1 else None
        if q is not None and t2.args.count(pool[0]) > 1:
            q = None
    elif not leftover1:
        # Same operands (e.g. A*x and A'*x): the differing operand is where the labels differ.
        return _factor_same_operands(t1, t2)
    if p is None or q is None:
        return None
    return _factor_at(t1, t2, p, q)


def _align(t: g.Contract, first: int) -> tuple[list[g.Node], list[Labels]]:
    """Operands of ``t`` with the one at ``first`` moved last, the rest sorted canonically."""
    idx = [k for k in range(len(t.args)) if k != first]
    idx.sort(key=lambda k: (t.args[k].digest, _pattern(t, k)))
    idx.append(first)
    labels, _ = g.canonical_labels([t.labels[k] for k in idx], t.out)
    return [t.args[k] for k in idx], list(labels)


def _factor_at(t1: g.Contract, t2: g.Contract, p: int, q: int) -> g.Node | None:
    factored = _factor_group(t1, p, [(t2, q)])
    return None if factored is None else factored[0]


def _factor_group(t1: g.Contract, p: int, others: list[tuple[g.Contract, int]]) -> tuple[g.Node, list[bool]] | None:
    """``t1`` with the terms ``others`` added by factoring: each agrees with ``t1`` except in
    its operand ``q``, which goes into a common sum with ``t1``'s operand ``p``. Returns the new
    term and which of ``others`` it took, or None if it took none."""
    ops1, lab1 = _align(t1, p)
    a_labs = lab1[-1]
    a = ops1[-1]
    if len(set(a_labs)) != len(a_labs):
        return None
    summands = [a]
    used = []
    for t2, q in others:
        ops2, lab2 = _align(t2, q)
        b_labs = lab2[-1]
        ok = ops1[:-1] == ops2[:-1] and lab1[:-1] == lab2[:-1] and sorted(a_labs) == sorted(b_labs)
        if ok:
            # Express b with a's label order: a permutation of its axes.
            b_aligned = normal_contract([ops2[-1]], [b_labs], a_labs, t2.coeff / t1.coeff)
            # The same labels over different dimensions (each summed alone): no common factor.
            ok = b_aligned.shape == a.shape
        if ok:
            summands.append(b_aligned)
        used.append(ok)
    if len(summands) == 1:
        return None
    inner = normal_sum(summands)
    # Keep the first term's operand order so the printed product reads as it was built, and
    # write the sum untransposed where its terms allow: (A + A')*x, not (A' + A)'*x.
    labs = t1.labels[p]
    if len(labs) == 2 and isinstance(inner, g.Add) and _transposed_terms(inner) * 2 > len(inner.args):
        inner = normal_sum([normal_contract([t], [(0, 1)], (1, 0), Fraction(1)) for t in inner.args])
        labs = labs[::-1]
    new_ops = [t1.args[k] if k != p else inner for k in range(len(t1.args))]
    new_labels = [t1.labels[k] if k != p else labs for k in range(len(t1.args))]
    return normal_contract(new_ops, new_labels, t1.out, t1.coeff), used


def _transposed_terms(node: g.Add) -> int:
    return sum(1 for t in node.args if isinstance(t, g.Contract) and len(t.args) == 1 and t.out == (1, 0))


def _factor_same_operands(t1: g.Contract, t2: g.Contract) -> g.Node | None:
    # Try each operand of t1 as the differing one (same node, permuted labels in t2).
    for p in range(len(t1.args)):
        for q in range(len(t2.args)):
            if t2.args[q] is not t1.args[p]:
                continue
            result = _factor_at(t1, t2, p, q)
            if result is not None:
                return result
    return None


# ------------------------------------------------------------------------------ powers


def fold_power(base: g.Node, exponent: g.Node) -> g.Node:
    """``base .^ exponent`` in normal form (see :func:`_fold_power`).

    >>> b = g.var("b", "scalar", ())
    >>> fold_power(g.apply("exp", g.var("x", "vector", ("n",))), b).name  # exp(b*x)
    'exp'
    """
    return _fold_power(base, exponent)[1]


def _fold_power(base: g.Node, exponent: g.Node) -> tuple[str | None, g.Node]:
    """``base .^ exponent`` in normal form, and the name of the rule that changed it (None when
    none did): numbers fold, ``(u.^p).^q`` is ``u.^(p*q)`` where that is exact, and a symbolic
    power of an exponential is an exponential.

    The rules keep nested powers of a positive base from reaching the derivatives: there
    ``((exp(x).^b).^100).^c`` would give terms like ``9900*(exp(x).^b).^98`` and
    ``100*(exp(x).^b).^198`` that cancel catastrophically; ``exp(100*b*c*x)`` gives none."""
    if isinstance(base, g.Function) and base.name == _EXP and not isinstance(exponent, g.Const):
        # exp(u)^q = exp(q*u) for every real q (exp(u) > 0). A number exponent stays: exp(u)^2
        # and exp(u)^-1 then merge and cancel with exp(u) like any power (u .* u.^-1 = 1).
        return "power_of_exponential", g.apply(_EXP, _exponent_product(base.args[0], exponent))
    if isinstance(exponent, g.Const):
        p = exponent.value
        if isinstance(base, g.Const) and p.denominator == 1 and (base.value != 0 or p > 0) and _small_power(base, p):
            return "fold_power", g.const(base.value ** int(p))
        if isinstance(base, g.Ones):
            return "fold_power", base
        if isinstance(base, g.Power) and isinstance(base.args[1], g.Const) and p.denominator == 1:
            # (u^a)^b = u^(a*b) for a whole b wherever u^a is defined, whatever the sign of u.
            return "fold_power", fold_power(base.args[0], g.const(base.args[1].value * p))
    if isinstance(base, g.Power) and positive(base.args[0]):
        # (u^p)^q = exp(q*p*log(u)) = u^(p*q) for u > 0 and real p, q. Not for other u:
        # (x^2)^(1/2) is |x|, not x.
        inner, inner_exponent = base.args
        return "power_of_power", fold_power(inner, _exponent_product(inner_exponent, exponent))
    result = g.power(base, exponent)
    return ("fold_power" if not isinstance(result, g.Power) else None), result


def _exponent_product(p: g.Node, q: g.Node) -> g.Node:
    """``p .* q`` for exponents (each a scalar or entry-wise over the base), in normal form."""
    if isinstance(p, g.Const) and isinstance(q, g.Const):
        return g.const(p.value * q.value)
    labels = tuple(range(max(p.rank, q.rank)))
    return normal_contract([p, q], [labels[: p.rank], labels[: q.rank]], labels, Fraction(1))


def _small_power(base: g.Const, p: Fraction) -> bool:
    """Whether ``base ** p`` is cheap to fold exactly: at most about 2,000 bits (600 digits).

    Larger powers (``2^99999``) stay powers: folding them would build integers of millions of
    digits, slowly, for a value that no double holds anyway.
    """
    bits = max(base.value.numerator.bit_length(), base.value.denominator.bit_length())
    return bits * abs(p) <= 2048
