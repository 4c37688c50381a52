"""Lowering: rewrite a graph into forms that compute better, used by evaluation and compiled code alike.

* ``distribute_sum``: ``(A + A')*x`` runs as ``A*x + A'*x`` (two mat-vecs, no n x n sum);
* ``stable_form``: ``log(1 + exp(u))`` and ``log1p(exp(u))`` are ``softplus(u)``,
  ``log(sum(exp(u)))`` is ``logsumexp(u)``, ``log(softmax(u))`` is ``u - logsumexp(u)``,
  ``log(sigmoid(u))`` is ``-softplus(-u)``;
* ``square_of_norm``: ``norm2(u)^2`` is ``sum(u .* u)``;
* ``cancel_reciprocal``: ``u^-1 .* u`` is ``1`` for a function ``u`` that is positive (``exp``,
  ``softmax``, ``sigmoid``): the derivative of ``log(softmax(z))`` is not ``0 * inf`` where the
  softmax underflows;
* ``power_of_spread``: ``(v*ones(n)')^p`` is ``v.^p * ones(n)'``: the power of a vector spread
  along an axis is taken of the vector, not of the n copies (attention's row sums);
* ``softmax_form``: ``exp(u)/sum(exp(u))`` is ``softmax(u)`` (the gradient of ``logsumexp``:
  ``exp(u)`` alone overflows float32 at ``u = 89``, float64 at ``u = 710``);
* ``expand_definition``: a function whose record gives a ``definition`` (``gelu``, ``mean(x)``
  is ``sum(x)/n``) is replaced by it, so every dialect computes it from functions it spells.

Each rewrite gives an equal value; only the arithmetic differs (no overflow, fewer flops).
"""

from __future__ import annotations

from collections.abc import Sequence

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.transform.signs import POSITIVE_FUNCTIONS

# The stable forms are identities of particular functions; they name their records through the
# registry, once (a record renamed or removed fails at import).
_LOG, _LOG1P, _EXP, _SOFTPLUS, _LOGSUMEXP, _NORM2, _SOFTMAX, _SIGMOID = (
    FUNCTIONS[name].name for name in ("log", "log1p", "exp", "softplus", "logsumexp", "norm2", "softmax", "sigmoid")
)


def _stored(node: g.Node) -> bool:
    """A variable, or a transpose or multiple of one: nothing to compute."""
    while isinstance(node, g.Contract) and len(node.args) == 1:
        node = node.args[0]
    return isinstance(node, g.Var)


def distribute_sum(node: g.Contract) -> g.Node | None:
    """``(A + A')*x -> A*x + A'*x``: a sum of stored matrices that the product reduces is not formed
    (two mat-vecs read A twice but write no n x n temporary)."""
    for k, op in enumerate(node.args):
        if (
            isinstance(op, g.Add)
            and op.rank >= 2
            and node.rank < op.rank
            and node.args.count(op) == 1
            and all(_stored(t) for t in op.args)
        ):
            terms = [
                g.contract(node.args[:k] + (t,) + node.args[k + 1 :], node.labels, node.out, node.coeff)
                for t in op.args
            ]
            return g.add(terms)
    return None


def _is_one(node: g.Node) -> bool:
    return isinstance(node, g.Ones) or (isinstance(node, g.Const) and node.value == 1)


def log_softmax(arg: g.Node) -> g.Node | None:
    """``log(softmax(u)) -> u - logsumexp(u)`` (also along an axis: ``Z - ones(m)*logsumexp(Z, 1)``);
    ``log(sigmoid(u)) -> -softplus(-u)``; ``log(1 - sigmoid(u)) -> -softplus(u)``: no underflow to
    ``log(0)`` for logits far apart (``softmax`` of ``[1e4, -1e4]`` has an entry 0)."""
    if isinstance(arg, g.Function) and arg.name == _SOFTMAX:
        (u,) = arg.args
        total = g.apply(_LOGSUMEXP, u, dim=arg.dim)
        idx = tuple(range(u.rank))
        kept = () if arg.dim is None else ((1,) if arg.dim == 1 else (0,))
        spread = g.contract([total, g.ones(u.shape)], [kept, idx], idx)
        return g.add([u, g.scale(-1, spread)])
    if isinstance(arg, g.Function) and arg.name == _SIGMOID:
        return g.scale(-1, g.apply(_SOFTPLUS, g.scale(-1, arg.args[0])))
    if isinstance(arg, g.Add) and len(arg.args) == 2:
        for one, other in (arg.args, arg.args[::-1]):
            if (
                _is_one(one)
                and isinstance(other, g.Contract)
                and other.coeff == -1
                and len(other.args) == 1
                and other.labels[0] == other.out
                and isinstance(other.args[0], g.Function)
                and other.args[0].name == _SIGMOID
            ):
                return g.scale(-1, g.apply(_SOFTPLUS, other.args[0].args[0]))
    return None


def cancel_reciprocal(node: g.Contract) -> g.Node | None:
    """``u^-1 .* u -> 1`` (entry by entry, the same labels) for a positive function ``u``.

    Positive in exact arithmetic: in floating point ``u`` may underflow to 0, where ``u^-1 .* u``
    would be nan instead of 1."""
    for k, op in enumerate(node.args):
        if not (
            isinstance(op, g.Power)
            and isinstance(op.args[1], g.Const)
            and op.args[1].value == -1
            and isinstance(op.args[0], g.Function)
            and op.args[0].name in POSITIVE_FUNCTIONS
        ):
            continue
        u = op.args[0]
        match = next(
            (j for j, a in enumerate(node.args) if a is u and node.labels[j] == node.labels[k] and j != k), None
        )
        if match is None:
            continue
        args = [g.ones(u.shape) if j == k else a for j, a in enumerate(node.args) if j != match]
        labels = [labs for j, labs in enumerate(node.labels) if j != match]
        return g.contract(args, labels, node.out, node.coeff)
    return None


def _sum_of_exp(node: g.Node) -> g.Node | None:
    """``u`` when ``node`` is ``sum(exp(u))`` of a vector ``u``."""
    if (
        isinstance(node, g.Contract)
        and node.coeff == 1
        and len(node.args) == 1
        and not node.out
        and isinstance(node.args[0], g.Function)
        and node.args[0].name == _EXP
        and node.args[0].rank == 1
    ):
        return node.args[0].args[0]
    return None


def softmax_form(node: g.Contract) -> g.Node | None:
    """``exp(u) .* sum(exp(u))^-p -> softmax(u) .* sum(exp(u))^-(p-1)``: each ``exp(u)`` that a
    reciprocal of ``sum(exp(u))`` divides is a softmax, whose value is in [0, 1]."""
    for k, op in enumerate(node.args):
        if not (isinstance(op, g.Power) and isinstance(op.args[1], g.Const)):
            continue
        p = -op.args[1].value
        u = _sum_of_exp(op.args[0])
        if u is None or p <= 0 or p.denominator != 1:
            continue
        exp_u = g.apply(_EXP, u)
        hits = [j for j, a in enumerate(node.args) if a is exp_u][: int(p)]
        if not hits:
            continue
        softmax_u = g.apply(_SOFTMAX, u)
        args = [softmax_u if j in hits else a for j, a in enumerate(node.args)]
        left = p - len(hits)
        args[k] = g.power(op.args[0], g.const(-left)) if left else g.const(1)
        return g.contract(args, node.labels, node.out, node.coeff)
    return None


def softplus_argument(node: g.Node) -> g.Node | None:
    """The ``u`` of ``log(1 + exp(u))`` or ``log1p(exp(u))`` (both ``softplus(u)``); None for
    other nodes. Shared by this module's stable forms and the simplifier's ``softplus`` rule.

    >>> x = g.var("x", "vector", ("n",))
    >>> softplus_argument(g.apply("log1p", g.apply("exp", x))) is x
    True
    """
    if not isinstance(node, g.Function) or len(node.args) != 1:
        return None
    (arg,) = node.args
    if node.name == _LOG1P:
        return arg.args[0] if isinstance(arg, g.Function) and arg.name == _EXP else None
    if node.name != _LOG or not (isinstance(arg, g.Add) and len(arg.args) == 2):
        return None
    for one, other in (arg.args, arg.args[::-1]):
        is_one = isinstance(one, g.Ones) or (isinstance(one, g.Const) and one.value == 1)
        if is_one and isinstance(other, g.Function) and other.name == _EXP and one.shape == other.shape:
            return other.args[0]
    return None


def stable_form(node: g.Function) -> g.Node | None:
    """``log(1 + exp(u))`` and ``log1p(exp(u))`` -> ``softplus(u)``; ``log(sum(exp(u)))`` ->
    ``logsumexp(u)``; the log-softmax and log-sigmoid forms of :func:`log_softmax`."""
    u = softplus_argument(node) if node.name in (_LOG, _LOG1P) else None
    if u is not None:
        return g.apply(_SOFTPLUS, u)
    if node.name != _LOG:
        return None
    (arg,) = node.args
    stable = log_softmax(arg)
    if stable is not None:
        return stable
    u = _sum_of_exp(arg)
    return None if u is None else g.apply(_LOGSUMEXP, u)


def square_of_norm(node: g.Power) -> g.Node | None:
    """``norm2(u)^2 -> sum(u .* u)``: no square root to undo."""
    base, exponent = node.args
    if isinstance(exponent, g.Const) and exponent.value == 2 and isinstance(base, g.Function) and base.name == _NORM2:
        u = base.args[0]
        idx = tuple(range(u.rank))
        return g.contract([u, u], [idx, idx], ())
    return None


def power_of_spread(node: g.Power) -> g.Node | None:
    """``(v*ones(n)')^p -> v.^p * ones(n)'``: a product with ones over an axis no other factor
    carries repeats the other factors along it, and so does its entry-wise power."""
    base, exponent = node.args
    if not (isinstance(exponent, g.Const) and isinstance(base, g.Contract) and base.coeff == 1):
        return None
    spread = [
        k
        for k, (a, labs) in enumerate(zip(base.args, base.labels, strict=True))
        if isinstance(a, g.Ones)
        and len(labs) == 1
        and labs[0] in base.out
        and sum(labs[0] in other for other in base.labels) == 1
    ]
    if not spread:
        return None
    spread_labels = {base.labels[k][0] for k in spread}
    keep = [k for k in range(len(base.args)) if k not in spread]
    out = tuple(lab for lab in base.out if lab not in spread_labels)
    rest = g.contract([base.args[k] for k in keep], [base.labels[k] for k in keep], out)
    return g.contract(
        [g.power(rest, exponent)] + [base.args[k] for k in spread],
        [out] + [base.labels[k] for k in spread],
        base.out,
    )


def inline_operand(parent: g.Contract, k: int, term: g.Node) -> g.Node:
    """``parent`` with its operand ``k`` replaced by ``term``; a contraction ``term`` joins with its
    operands (its summed labels renamed apart from the parent's), so the product is one node."""
    if not isinstance(term, g.Contract):
        return g.contract(parent.args[:k] + (term,) + parent.args[k + 1 :], parent.labels, parent.out, parent.coeff)
    fresh = 1 + max((lab for labs in parent.labels for lab in labs), default=-1)
    mapping = dict(zip(term.out, parent.labels[k], strict=True))
    for labs in term.labels:
        for lab in labs:
            if lab not in mapping:
                mapping[lab] = fresh
                fresh += 1
    labels = [tuple(mapping[lab] for lab in labs) for labs in term.labels]
    return g.contract(
        parent.args[:k] + term.args + parent.args[k + 1 :],
        list(parent.labels[:k]) + labels + list(parent.labels[k + 1 :]),
        parent.out,
        parent.coeff * term.coeff,
    )


def open_spread(node: g.Contract) -> g.Node | None:
    """A product with a spread power (``v.^p * ones(n)'``, from :func:`power_of_spread`) as an
    operand takes its factors, so that the ones meet the other operands (and drop out)."""
    for k, op in enumerate(node.args):
        if (
            isinstance(op, g.Contract)
            and op.coeff == 1
            and isinstance(op.args[0], g.Power)
            and len(op.args) > 1
            and all(
                isinstance(a, g.Ones) and len(labs) == 1 for a, labs in zip(op.args[1:], op.labels[1:], strict=True)
            )
        ):
            return inline_operand(node, k, op)
    return None


def expand_definition(node: g.Function) -> g.Node | None:
    """A function given by its record's ``definition`` -> that composition of other functions."""
    definition = node.record.definition
    if definition is None:
        return None
    return definition(*node.args) if node.dim is None else definition(*node.args, dim=node.dim)


def lower(roots: Sequence[g.Node]) -> list[g.Node]:
    """The roots with the rewrites above applied everywhere."""
    memo: dict[g.Node, g.Node] = {}
    for node in g.postorder(*roots):
        args = tuple(memo[a] for a in node.args)
        new = node if args == node.args else g._intern(type(node), args, node.params)
        for _ in range(4):
            changed = None
            if isinstance(new, g.Contract):
                changed = distribute_sum(new) or cancel_reciprocal(new) or softmax_form(new) or open_spread(new)
            elif isinstance(new, g.Function):
                changed = expand_definition(new) or stable_form(new)
            elif isinstance(new, g.Power):
                changed = square_of_norm(new) or power_of_spread(new)
            if changed is None:
                break
            new = lower([changed])[0] if changed is not new else changed
        memo[node] = new
    return [memo[r] for r in roots]
