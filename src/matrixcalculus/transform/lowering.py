"""Lowering: rewrite a graph into forms that compute better, used by evaluation and compiled code alike.

* ``distribute_sum``: ``(A + A')*x`` runs as ``A*x + A'*x`` (two mat-vecs, no n x n sum);
* ``stable_form``: ``log(1 + exp(u))`` is ``softplus(u)``, ``log(sum(exp(u)))`` is ``logsumexp(u)``,
  ``log(softmax(u))`` is ``u - logsumexp(u)``, ``log(sigmoid(u))`` is ``-softplus(-u)``;
* ``square_of_norm``: ``norm2(u)^2`` is ``sum(u .* u)``;
* ``expand_definition``: a function whose record gives a ``definition`` (``gelu``, ``mean(x)``
  is ``sum(x)/n``) is replaced by it, so every dialect computes it from functions it spells.

Each rewrite gives an equal value; only the arithmetic differs (no overflow, fewer flops).
"""

from __future__ import annotations

from collections.abc import Sequence

from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS

# The stable forms are identities of particular functions; they name their records through the
# registry, once (a record renamed or removed fails at import).
_LOG, _EXP, _SOFTPLUS, _LOGSUMEXP, _NORM2, _SOFTMAX, _SIGMOID = (
    FUNCTIONS[name].name for name in ("log", "exp", "softplus", "logsumexp", "norm2", "softmax", "sigmoid")
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


def stable_form(node: g.Function) -> g.Node | None:
    """``log(1 + exp(u)) -> softplus(u)``; ``log(sum(exp(u))) -> logsumexp(u)``; the log-softmax
    and log-sigmoid forms of :func:`log_softmax`."""
    if node.name != _LOG:
        return None
    (arg,) = node.args
    stable = log_softmax(arg)
    if stable is not None:
        return stable
    if isinstance(arg, g.Add) and len(arg.args) == 2:
        one, other = arg.args
        if isinstance(other, g.Ones) or (isinstance(other, g.Const) and other.value == 1):
            one, other = other, one
        is_one = isinstance(one, g.Ones) or (isinstance(one, g.Const) and one.value == 1)
        if is_one and isinstance(other, g.Function) and other.name == _EXP:
            return g.apply(_SOFTPLUS, other.args[0])
    if (
        isinstance(arg, g.Contract)
        and arg.coeff == 1
        and len(arg.args) == 1
        and not arg.out
        and isinstance(arg.args[0], g.Function)
        and arg.args[0].name == _EXP
        and arg.args[0].rank == 1
    ):
        return g.apply(_LOGSUMEXP, arg.args[0].args[0])
    return None


def square_of_norm(node: g.Power) -> g.Node | None:
    """``norm2(u)^2 -> sum(u .* u)``: no square root to undo."""
    base, exponent = node.args
    if isinstance(exponent, g.Const) and exponent.value == 2 and isinstance(base, g.Function) and base.name == _NORM2:
        u = base.args[0]
        idx = tuple(range(u.rank))
        return g.contract([u, u], [idx, idx], ())
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
                changed = distribute_sum(new)
            elif isinstance(new, g.Function):
                changed = expand_definition(new) or stable_form(new)
            elif isinstance(new, g.Power):
                changed = square_of_norm(new)
            if changed is None:
                break
            new = lower([changed])[0] if changed is not new else changed
        memo[node] = new
    return [memo[r] for r in roots]
