"""The chain rule as the tutorials teach it: a derivative through named intermediate variables.

The expression is followed as it was typed (its syntax tree, each subtree with the graph node
built for it), from the top towards a variable. A level is cut where a function is applied:

* at a function application ``f(u)`` whose argument ``u`` depends on the variable and is more
  than the variable itself, the argument is the next intermediate (``u = w'*x + b`` in
  ``max(0, w'*x + b)``; ``u = w .* x`` in ``sum(w .* x)``);
* in a sum or product (the operators), at the one function application the variable is reached
  through: a scalar-valued one (``norm2``, ``sum``) belongs to this level and the cut is at its
  argument (``L = 0.5*norm2(r)^2`` with ``r = W*x - t``); a tensor-valued one is the next
  intermediate itself (``z = relu(u)`` in ``W2*relu(u) + b2``), as backpropagation names layers.

Where the variable appears directly (``x'*A*x``), or through several applications, the level is
the last one: its derivative is taken as a whole. Each level's definition is its graph node with
the next intermediate replaced by a variable, so its local derivative comes from the library's own
engine (:func:`~matrixcalculus.transform.differentiation.jacobian_nodes`), and the levels multiply
back to the derivative of the whole.

>>> from matrixcalculus.ir import graph as g
>>> x = g.var("x", "vector", ("n",))
>>> y = g.apply("exp", g.apply("sin", x))
>>> substitute(y, {g.apply("sin", x): g.var("u", "vector", ("n",))}) is g.apply("exp", g.var("u", "vector", ("n",)))
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matrixcalculus.frontend.syntax import DIMENSION_FUNCTIONS, Ast
from matrixcalculus.ir import graph as g
from matrixcalculus.transform.differentiation import jacobian_nodes, vjp_nodes
from matrixcalculus.transform.simplify import simplify

# The operators a level passes through; everything else (a call, a stack literal) is a boundary.
_OPERATORS = ("binary", "unary", "transpose")


@dataclass(frozen=True)
class Cut:
    """An intermediate: the subtree typed for it, its graph node, and its role: ``"argument"``
    (the argument of a function, the tutorials' ``u``) or ``"result"`` (a function's value used in
    a product or sum, the tutorials' ``z``)."""

    ast: Ast
    node: g.Node
    role: str


def substitute(root: g.Node, mapping: Mapping[g.Node, g.Node]) -> g.Node:
    """``root`` with each node of ``mapping`` replaced by its image (of the same shape)."""
    new: dict[g.Node, g.Node] = {}
    for node in g.postorder(root):
        if node in mapping:
            new[node] = mapping[node]
            continue
        if not node.args:
            new[node] = node
            continue
        args = tuple(new[a] for a in node.args)
        new[node] = node if args == node.args else g._intern(type(node), args, node.params)
    return new[root]


def depends_on(node: g.Node, variables: Sequence[g.Node]) -> bool:
    """Whether ``node`` mentions any of ``variables``."""
    targets = set(variables)
    return any(n in targets for n in g.postorder(node))


def path(root: Ast, subtrees: Mapping[int, tuple[Ast, g.Node]], wrt: g.Var) -> list[Cut]:
    """The intermediates from the top of the expression towards ``wrt`` (the top itself excluded)."""
    memo: dict[g.Node, bool] = {}

    def depends(ast: Ast) -> bool:
        entry = subtrees.get(id(ast))
        if entry is None:
            return any(depends(a) for a in ast.args)
        node = entry[1]
        if node not in memo:
            memo[node] = depends_on(node, [wrt])
        return memo[node]

    def bare(ast: Ast) -> bool:
        # The variable itself, or its transpose: nothing in between to name.
        return ast.op == "name" or (ast.op == "transpose" and bare(ast.args[0]))

    def cut(ast: Ast) -> Cut | None:
        if ast.op == "call" and ast.value not in DIMENSION_FUNCTIONS:
            return _argument(ast)
        if ast.op not in _OPERATORS:
            return None
        found: list[Cut] = []
        stack = [ast]
        while stack:
            a = stack.pop()
            if not depends(a):
                continue
            if a.op in _OPERATORS:
                stack.extend(a.args)
                continue
            if a.op != "call" or id(a) not in subtrees:
                return None  # the variable itself (or a stack literal) at this level
            if subtrees[id(a)][1].rank == 0:
                inner = _argument(a)  # a scalar-valued function belongs to this level
                if inner is None:
                    return None
                found.append(inner)
            else:
                found.append(Cut(a, subtrees[id(a)][1], "result"))
        distinct = {c.node: c for c in found}
        return next(iter(distinct.values())) if len(distinct) == 1 else None

    def _argument(ast: Ast) -> Cut | None:
        dependent = [a for a in ast.args if depends(a)]
        if len(dependent) != 1 or bare(dependent[0]) or id(dependent[0]) not in subtrees:
            return None
        return Cut(dependent[0], subtrees[id(dependent[0])][1], "argument")

    cuts: list[Cut] = []
    current = root
    while True:
        nxt = cut(current)
        if nxt is None or any(c.node is nxt.node for c in cuts):
            return cuts
        cuts.append(nxt)
        current = nxt.ast


@dataclass(frozen=True)
class Level:
    """One level of the chain: ``name = definition``, a function of the next level's variable
    ``below`` (None at the last level, a function of the variable differentiated by)."""

    name: str
    variable: g.Var | None  # what stands for this level in the level above (None at the top)
    value: g.Node  # in the variables of the whole expression
    definition: g.Node  # in the variable of the level below
    below: g.Var | None
    role: str
    ast: Ast | None = None  # the subtree typed for the level's value, where known


def levels(
    top: g.Node,
    cuts: Sequence[Cut],
    variables: Mapping[g.Node, g.Var],
    wrt: g.Var,
    top_name: str = "f",
    top_ast: Ast | None = None,
) -> list[Level]:
    """The levels of one path towards ``wrt``: ``top`` and each intermediate of ``cuts``
    (``variables``: the variable standing for each intermediate's node, of this path or another),
    each defined in terms of the next. Intermediates of other paths that do not depend on ``wrt``
    are written by their names too (``u2 = W2*z + b2`` by ``W2``, with ``z = relu(u1)``).
    ``top_ast``: the typed tree of ``top``; each level keeps the subtree typed for it.

    A level whose definition does not separate the next intermediate ends the chain there."""
    values = [top, *(c.node for c in cuts)]
    constant = {n: v for n, v in variables.items() if n not in values and not depends_on(n, [wrt])}
    out: list[Level] = []
    for k, value in enumerate(values):
        below = variables[values[k + 1]] if k + 1 < len(values) else None
        mapping = {n: v for n, v in constant.items() if n is not value}
        if below is not None:
            mapping[values[k + 1]] = below
        definition = substitute(value, mapping)
        if below is not None and below not in g.postorder(definition):
            below = None  # not separable: this level is the last
            definition = substitute(value, {n: v for n, v in constant.items() if n is not value})
        name = top_name if k == 0 else variables[value].name
        role = "top" if k == 0 else cuts[k - 1].role
        ast = top_ast if k == 0 else cuts[k - 1].ast
        out.append(Level(name, None if k == 0 else variables[value], value, definition, below, role, ast))
        if below is None:
            break
    return out


def typed_text(source: str, ast: Ast, names: Mapping[int, str]) -> str | None:
    """The text typed for ``ast`` with the subtrees of ``names`` (by ``id``) written as those
    names: ``max(0, w'*x + b)`` with ``u`` for ``w'*x + b`` is ``max(0, u)``. None when a named
    subtree lies outside the text of ``ast`` (a ``where`` binding shares it from elsewhere).

    >>> from matrixcalculus.frontend.syntax import parse_syntax
    >>> tree = parse_syntax("max(0, w'*x + b)")
    >>> typed_text("max(0, w'*x + b)", tree, {id(tree.args[1]): "u"})
    'max(0, u)'
    """
    spans: list[tuple[int, int, str]] = []
    stack = [ast]
    while stack:
        node = stack.pop()
        if id(node) in names and node is not ast:
            if not (ast.start <= node.start and node.end <= ast.end):
                return None
            spans.append((node.start, node.end, names[id(node)]))
            continue
        if not (node.op == "call" and node.value in DIMENSION_FUNCTIONS):
            stack.extend(node.args)
    text, at = [], ast.start
    for start, end, name in sorted(spans):
        if start < at:
            return None  # one subtree inside another: shared, not nested text
        text.append(source[at:start])
        text.append(name)
        at = end
    text.append(source[at : ast.end])
    return " ".join("".join(text).split())


def local_jacobian(level: Level, wrt: g.Var) -> g.Node:
    """The level's own derivative (the shape layout) by the variable below it, or by ``wrt`` at the
    last level."""
    (node,) = jacobian_nodes(level.definition, [level.below if level.below is not None else wrt])
    return node


def chain_product(jacobians: Sequence[g.Node], shapes: Sequence[g.Shape]) -> g.Node:
    """The product of Jacobians (shape layout): ``J[o, w] = sum_a J1[o, a] J2[a, w]`` and so on;
    ``shapes``: the shape of each intermediate between them (one fewer than the Jacobians)."""
    total = jacobians[0]
    out_rank = total.rank - len(shapes[0]) if shapes else total.rank
    for jac, shape in zip(jacobians[1:], shapes, strict=True):
        r = len(shape)
        o = tuple(range(out_rank))
        a = tuple(range(out_rank, out_rank + r))
        w = tuple(range(out_rank + r, out_rank + r + jac.rank - r))
        total = g.contract([total, jac], [o + a, a + w], o + w)
    return total


def pull_back(level: Level, wrt: g.Var, cotangent: g.Node) -> g.Node:
    """The vector-Jacobian product of one level: the cotangent of the variable below (or of
    ``wrt`` at the last level) for a ``cotangent`` of the level's value; no Jacobian is formed."""
    (node,) = vjp_nodes(level.definition, [level.below if level.below is not None else wrt], cotangent)
    return simplify(node)
