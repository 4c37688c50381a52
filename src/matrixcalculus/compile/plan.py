"""Planning: derivative graphs -> statements (:mod:`matrixcalculus.compile.statements`).

The derived expressions (value, gradients, Hessians) are one hash-consed graph, so each node is
planned once; equal operations inside different nodes are shared by the block. A few choices make
the plan cheap:

* ``lower`` (shared with evaluation) first rewrites the graph into cheap and stable forms: a sum
  ``(A + A')*x`` runs as ``A@x + A.T@x`` (two mat-vecs, no n x n sum), ``log(1 + exp(u))`` as
  ``softplus(u)``, ``log(sum(exp(u)))`` as ``logsumexp(u)``;
* each contraction is split into pairwise products in the order with the fewest multiply-adds for
  the actual sizes (:func:`product_order`), and each pair is a BLAS form where it is one:
  ``A @ B``, ``A.T @ x`` (a transpose is a view of the stored array, not a statement), ``x @ y``,
  a broadcast product for diagonal scalings (``X * s[:, None]``, so ``X'*diag(s)*X`` is
  ``(X * s[:, None]).T @ X``), an axis sum for a ``ones`` factor; ``einsum`` only for what is
  none of these;
* a product that the block already holds is free: the order search prices it at nothing (or at
  a sum over the labels it keeps and the contraction does not), so the bias gradient of a network,
  ``sum(d2, 2)``, sums the ``d2`` that the weight gradient ``d2*h1'`` needs (:meth:`_Planner.computed`);
* a matrix product is made in the orientation its entry-wise user reads (``(W3' @ r) * mask``,
  not ``(r' @ W3) * mask'``, a strided pass about 4x slower in NumPy), and a contraction's last
  product in the orientation of the result (no transposed outputs);
* numbers and scalar factors multiply the smallest array on their way (``-X'*v`` negates the
  vector ``X.T @ v``, not ``X``), and a sum subtracts a negated term instead of negating it.

>>> from matrixcalculus.compile.statements import live
>>> x, A = g.var("x", "vector", ("n",)), g.var("A", "matrix", ("n", "n"))
>>> block = live(plan([g.contract([A, x], [(0, 1), (1,)], (0,))], [A, x], {"n": 10}))
>>> [(s.op.name, [a.axes for a in s.op.args]) for s in block.statements]
[('matmul', [None, None])]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeAlias

from matrixcalculus.compile.cost import Cost, estimate
from matrixcalculus.compile.statements import Block, Factors, Lit, Op, Operand, Value, View, literal, number_text
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.transform.lowering import inline_operand, lower
from matrixcalculus.transform.signs import nonnegative

Labels = tuple[int, ...]
# A product tree: a factor's index, or (left, right, the labels the product keeps).
Tree: TypeAlias = "int | tuple[Tree, Tree, Labels]"


@dataclass(frozen=True)
class Structure:
    """How an output returned as factors makes the tensor: ``coeff * prod factor[axes]``; a factor
    is ``("eye", dimension)`` or ``("array", k)``, the k-th array returned for that output."""

    coeff: float
    factors: tuple[tuple[tuple[str, g.Dim | int], tuple[int, ...]], ...]

    def describe(self, names: Sequence[str]) -> str:
        """In words, with the arrays called ``names``: ``2.0 * eye(m)[0,2] * t3[1,3]``."""
        parts = []
        for (kind, ref), axes in self.factors:
            if kind == "eye":
                base = f"eye({ref})"
            else:
                assert isinstance(ref, int), "an array factor is numbered"
                base = names[ref]
            parts.append(f"{base}[{','.join(map(str, axes))}]")
        return f"{self.coeff} * " + " * ".join(parts)


@dataclass(frozen=True)
class _Array:
    """A planned value: the operand holding it and the label of each of its axes."""

    operand: Operand
    labels: Labels


def plan(
    roots: Sequence[g.Node],
    variables: Sequence[g.Var],
    sizes: Mapping[g.Dim, int] | None = None,
    dense: bool = True,
) -> Block:
    """The statements computing ``roots`` from ``variables`` (dead ones included: see ``live``).

    ``sizes`` guide the order of products (an unknown dimension counts as 1000). ``dense=False``:
    an output of order three or more that is a product of factors over disjoint axes (a
    Kronecker-structured Hessian) is a :class:`~matrixcalculus.compile.statements.Factors`.
    """
    planner = _Planner(dict(sizes or {}))
    return planner.run(lower(roots), variables, dense)


class _Planner:
    def __init__(self, sizes: dict[g.Dim, int]):
        self.block = Block()
        self.sizes = sizes
        self.values: dict[g.Node, _Array] = {}
        self.variables: dict[str, Value] = {}
        self.dims: dict[g.Dim, Value] = {}
        self.uses: dict[g.Node, int] = {}
        self.roots: set[g.Node] = set()
        # The products of several arrays computed so far, by their network up to the names of its
        # labels (see ``_network_key``): a later contraction containing the same network takes the
        # value (summing the labels it does not keep) instead of planning the product afresh.
        self.products: dict[_NetworkKey, list[_Array]] = {}
        self.bags: set[tuple[tuple[str, str, str], ...]] = set()

    def run(self, roots: Sequence[g.Node], variables: Sequence[g.Var], dense: bool) -> Block:
        for v in variables:
            self.variables[v.name] = self.block.argument(v.name, v.shape)
        order = g.postorder(*roots)
        # Symbolic dimensions are read off the arguments' shapes (a product m*p from its factors').
        named = {
            name
            for node in order
            for d in node.shape + ((node.dim,) if isinstance(node, g.DimSize) else ())
            for name in g.dim_names(d)
        }
        for d in sorted(named):
            source = next(((v, axis) for v in variables for axis, vd in enumerate(v.shape) if vd == d), None)
            if source is None:
                raise MatrixCalculusError(f"no argument has dimension {d}: its size is unknown")
            self.dims[d] = self.block.size(d, self.variables[source[0].name], source[1])
        for node in order:
            for a in node.args:
                self.uses[a] = self.uses.get(a, 0) + 1
        self.roots = set(roots)
        factored = {} if dense else {r: parts for r in roots if (parts := _components(r)) is not None}
        # An output returned as its factors is a tuple of arrays: never an operand. When another
        # derivative also uses that node (dF/dB contains dF/dA), it is computed densely too; when
        # nothing does, the dense statements are dead and ``live`` drops them.
        factors: dict[g.Node, Factors] = {}
        for node in order:
            if node in factored and node not in factors:
                factors[node] = self.factored(node, factored[node])  # type: ignore[arg-type]
            self.values[node] = self.node(node, [self.values[a] for a in node.args])
        self.block.outputs = [factors[r] if r in factors else self.values[r].operand for r in roots]
        return self.block

    # -------------------------------------------------------------------------- helpers

    def assign(self, name: str, args: Sequence[Operand], shape: Sequence[g.Dim], *params: object) -> View:
        return View(self.block.assign(Op(name, tuple(args), tuple(params)), tuple(shape)))

    def size(self, dims: Sequence[g.Dim]) -> int:
        total = 1
        for d in dims:
            total *= g.dim_size(d, lambda name: self.sizes.get(name, 1000))
        return total

    def dim(self, d: g.Dim) -> int | Value:
        if isinstance(d, int):
            return d
        if isinstance(d, g.DimProduct) and d not in self.dims and all(f in self.dims for f in d.factors):
            # Its size is a statement of its own (named once), read off its factors' sizes.
            self.dims[d] = self.block.product(d, [self.dims[f] for f in d.factors])
        if isinstance(d, g.DimSum) and d not in self.dims:
            # A stack's length n + m: a statement of its own, read off its terms' sizes.
            self.dims[d] = self.block.total(d, [self.dim(t) for t in d.terms])
        if d not in self.dims:
            raise MatrixCalculusError(f"no argument has dimension {d}: its size is unknown")
        return self.dims[d]

    def shape(self, dims: Sequence[g.Dim]) -> tuple[int | Value, ...]:
        return tuple(self.dim(d) for d in dims)

    # -------------------------------------------------------------------------- nodes

    def node(self, node: g.Node, args: list[_Array]) -> _Array:
        rank_labels = tuple(range(node.rank))
        if isinstance(node, g.Var):
            if node.name not in self.variables:
                raise MatrixCalculusError(f"no argument for variable {node.name}")  # pragma: no cover - internal
            return _Array(View(self.variables[node.name]), rank_labels)
        if isinstance(node, g.Const):
            return _Array(literal(node.value), ())
        if isinstance(node, g.DimSize):
            # The size the function read off an argument's shape, as a float64 0-d array.
            size = self.dim(node.dim)
            if isinstance(size, int):
                return _Array(literal(Fraction(size)), ())
            return _Array(self.assign("scalar", [View(size)], ()), ())
        if isinstance(node, g.Reshape):
            return _Array(self.assign("reshape", [args[0].operand], node.shape, self.shape(node.shape)), rank_labels)
        if isinstance(node, g.Delta):
            return _Array(self.assign("eye", [], node.shape, self.dim(node.params[0])), (0, 1))
        if isinstance(node, g.Embed):
            return _Array(self.assign("unit", [], node.shape, *node.params), (0,))
        if isinstance(node, g.Block):
            return _Array(self.assign("block", [], node.shape, *(self.dim(d) for d in node.params)), (0, 1))
        if isinstance(node, g.Ones | g.Zeros):
            kind = "ones" if isinstance(node, g.Ones) else "zeros"
            return _Array(self.assign(kind, [], node.shape, self.shape(node.shape)), rank_labels)
        if isinstance(node, g.Add):
            hoisted = self.hoisted(node)
            if hoisted is not None:
                return hoisted
            return _Array(self.sum(node, args), rank_labels)
        if isinstance(node, g.Power):
            return _Array(self.power(node, args), rank_labels)
        if isinstance(node, g.Compare):
            a, b = args
            return _Array(self.assign("compare", [a.operand, b.operand], node.shape, node.op), rank_labels)
        if isinstance(node, g.Function):
            # params (name,) or (name, axis). An argument the spelling reads twice (norm2's
            # sqrt(sum(x * x))) is a value or view here, so it is computed once in any case.
            operands = [a.operand for a in args]
            return _Array(self.assign("call", operands, node.shape, *node.params), rank_labels)
        if isinstance(node, g.Contract):
            chosen = self.symmetric_product(node) or self.distributed(node)
            if chosen is not None:
                return chosen
            return self.contract(node, args)
        raise MatrixCalculusError(f"no code for {type(node).__name__}")  # pragma: no cover

    # -------------------------------------------------------------------------- forms chosen by cost

    def planned(self, node: g.Node) -> _Array:
        """Plan a node built here (a rewritten form) and the parts of it not planned yet."""
        new = [sub for sub in g.postorder(node) if sub not in self.values]
        for sub in new:
            for a in sub.args:
                self.uses[a] = self.uses.get(a, 0) + 1
        for sub in new:
            self.values[sub] = self.node(sub, [self.values[a] for a in sub.args])
        return self.values[node]

    def label_sizes(self, node: g.Contract) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for arg, labs in zip(node.args, node.labels, strict=True):
            for lab, d in zip(labs, arg.shape, strict=True):
                sizes[lab] = self.size([d])
        return sizes

    def contraction_cost(self, node: g.Node) -> Cost:
        """The estimated cost of a contraction in the cheapest order (see :mod:`.cost`)."""
        if not isinstance(node, g.Contract):
            return Cost()
        gram = self.gram(node)
        if gram is not None:
            return gram[4]  # it will be a symmetric product (so a distributed form may be cheaper)
        size = self.label_sizes(node)
        labels = [tuple(labs) for labs in node.labels]

        def entries(labs: Sequence[int]) -> int:
            return math.prod(size[lab] for lab in set(labs))

        if len(labels) == 1:
            return Cost(entries(labels[0]), entries(labels[0]) + entries(node.out))
        network = _Network(labels, node.out, size)
        total = Cost()
        stack: list[Tree] = [product_order(labels, node.out, size)]
        while stack:
            item = stack.pop()
            if isinstance(item, int):
                continue
            left, right, keep = item
            kl, kr = network.kept(network.members(left)), network.kept(network.members(right))
            total += Cost(network.flops(kl, kr), entries(kl) + entries(kr) + entries(keep))
            stack += [left, right]
        return total

    def private(self, node: g.Node) -> bool:
        """Used once, and not an output: a rewrite may compute it inside its user."""
        return self.uses.get(node, 0) == 1 and node not in self.roots

    def distributed(self, node: g.Contract) -> _Array | None:
        """``(U*V' - T)*V`` as ``U*(V'*V) - T*V`` where the cost model finds it cheaper.

        A sum that the product reduces is then never formed, nor the terms' own products: each
        term's operands join the product and are ordered with it (``U*V'*V`` is ``U*(V'*V)``, a
        p x p product, when the rank p is small; with a large rank the factored form is cheaper
        and is kept).
        """
        for k, op in enumerate(node.args):
            if not (isinstance(op, g.Add) and self.private(op) and node.args.count(op) == 1):
                continue
            if any(t.rank != op.rank or _broadcast_scalar(t) is not None for t in op.args):
                continue  # a broadcast scalar term: distributing it would form its copies
            # The product's coefficient scales the sum once, after it: -2*(T*V - U*(V'*V)).
            unscaled = g.contract(node.args, node.labels, node.out)
            if len(node.args) < 2 or not isinstance(unscaled, g.Contract):
                return None  # a multiple or transpose of the sum: nothing to distribute over
            terms = [_inlined(unscaled, k, t, self.private(t)) for t in op.args]
            factored = self.contraction_cost(node) + Cost(0, (len(op.args) + 1) * self.size(op.shape))
            factored = sum((self.contraction_cost(t) for t in op.args if self.private(t)), factored)
            spread = Cost(0, (len(terms) + 1) * self.size(node.shape))
            spread = sum((self.contraction_cost(t) for t in terms), spread)
            if estimate(spread) >= estimate(factored):
                self.block.choices.append(
                    f"kept a product of a sum factored: estimated {estimate(factored):.3g} against"
                    f" {estimate(spread):.3g} distributed"
                )
                continue
            self.block.choices.append(
                f"distributed a product over a sum of {len(terms)} terms: estimated {estimate(spread):.3g}"
                f" against {estimate(factored):.3g} factored"
            )
            total = g.add(terms)
            axes = tuple(range(total.rank))
            return self.planned(g.contract([total], [axes], axes, node.coeff))
        return None

    def hoisted(self, node: g.Add) -> _Array | None:
        """``A*x + A*y`` as ``A*(x + y)`` where the cost model finds it cheaper: a factor that every
        term of a sum multiplies, the same way, is multiplied once by the sum of the rest."""
        terms = node.args
        if len(terms) < 2 or not all(isinstance(t, g.Contract) and self.private(t) for t in terms):
            return None
        first = terms[0]
        assert isinstance(first, g.Contract)
        for f in dict.fromkeys(first.args):
            factored = _hoist(node, f)
            if factored is None:
                continue
            inner, outer = factored
            spread = Cost(0, (len(terms) + 1) * self.size(node.shape))
            spread = sum((self.contraction_cost(t) for t in terms), spread)
            hoist = Cost(0, (len(terms) + 1) * self.size(inner.shape))
            hoist = sum((self.contraction_cost(t) for t in inner.args), hoist) + self.contraction_cost(outer)
            if estimate(hoist) >= estimate(spread):
                continue
            self.block.choices.append(
                f"hoisted a factor shared by {len(terms)} terms: estimated {estimate(hoist):.3g} against"
                f" {estimate(spread):.3g} for the terms apart"
            )
            return self.planned(outer)
        return None

    def gram(self, node: g.Node) -> tuple[int, int, g.Node, Cost, Cost, g.Contract] | None:
        """``X'*diag(d)*X`` with ``d >= 0`` proved: (the operand X, its summed label, d, the
        general product's cost, the symmetric product's, the contraction with entry-wise vector
        factors opened, whose operands these are), where the symmetric one is cheaper."""
        if not isinstance(node, g.Contract) or node.rank != 2 or len(set(node.out)) != 2:
            return None
        # Open entry-wise products of a vector and scalars (c*s): their scalars may have any sign
        # and scale the product afterwards, their vectors make the diagonal.
        for _ in range(len(node.args)):
            k = next(
                (
                    k
                    for k, a in enumerate(node.args)
                    if isinstance(a, g.Contract)
                    and a.rank == 1
                    and all(set(labs) <= set(a.out) for labs in a.labels)
                    and all(b.rank <= 1 for b in a.args)
                ),
                None,
            )
            if k is None:
                break
            opened = _inlined(node, k, node.args[k], True)
            if not isinstance(opened, g.Contract):
                return None
            node = opened
        pairs = [
            (i, j)
            for i in range(len(node.args))
            for j in range(i + 1, len(node.args))
            if node.args[i] is node.args[j] and node.args[i].rank == 2
        ]
        for i, j in pairs:
            li, lj = node.labels[i], node.labels[j]
            shared = [lab for lab in li if lab in lj]
            if len(shared) != 1 or li.index(shared[0]) != lj.index(shared[0]):
                continue
            (s,) = shared
            if s in node.out or {lab for lab in li + lj if lab != s} != set(node.out):
                continue
            rest = [k for k in range(len(node.args)) if k not in (i, j)]
            # Vectors over s make the diagonal; factors that carry neither s nor an output label
            # make a scalar (sum(y) is y'*ones), which scales the product whatever its sign.
            vectors = [k for k in rest if node.labels[k] == (s,)]
            if any(set(node.labels[k]) & ({s} | set(node.out)) for k in rest if k not in vectors):
                continue
            diagonal = g.contract(
                [node.args[k] for k in vectors] + [g.ones((node.args[i].shape[li.index(s)],))],
                [node.labels[k] for k in vectors] + [(s,)],
                (s,),
            )
            if not nonnegative(diagonal):
                continue
            size = self.label_sizes(node)
            n, m = size[s], size[node.out[0]]
            general = Cost(n * m * m, 3 * n * m + m * m)
            symmetric = Cost(n * m * (m + 1) // 2 + n, 3 * n * m + m * m + 2 * n)
            if estimate(symmetric) < estimate(general):
                return i, s, diagonal, general, symmetric, node
        return None

    def symmetric_product(self, node: g.Contract) -> _Array | None:
        """``X'*diag(d)*X`` with ``d >= 0`` proved (:func:`.signs.nonnegative`) as ``B'*B``,
        ``B = X .* sqrt(d)``: a product of a matrix with its own transpose, which BLAS computes
        as one symmetric rank-k update (NumPy calls ``syrk`` for ``B.T @ B``) at half the
        multiply-adds."""
        found = self.gram(node)
        if found is None:
            return None
        i, s, diagonal, general, symmetric, node = found
        li = node.labels[i]
        self.block.choices.append(
            f"a symmetric product B'*B (B = X .* sqrt(d), d >= 0 proved): estimated {estimate(symmetric):.3g}"
            f" against {estimate(general):.3g} for X'*(d .* X)"
        )
        d = self.planned(diagonal).operand
        shape_d = (node.args[i].shape[li.index(s)],)
        root = self.assign("call", [self.assign("call", [d], shape_d, "abs")], shape_d, "sqrt")
        x = self.values[node.args[i]]
        axis = li.index(s)
        scaled = self.assign(
            "mul", [x.operand, _view(root).broadcast((0, None) if axis == 0 else (None, 0))], node.args[i].shape
        )
        # B[s, a] with s first: B'*B; with s second: B*B'.
        pair = [_transposed(scaled), scaled] if axis == 0 else [scaled, _transposed(scaled)]
        product = self.assign("matmul", pair, node.shape)
        pair_and_vectors = {i} | {k for k, a in enumerate(node.args) if a is node.args[i] or node.labels[k] == (s,)}
        others = [k for k in range(len(node.args)) if k not in pair_and_vectors]
        if others:
            scale = g.contract([node.args[k] for k in others], [node.labels[k] for k in others], (), node.coeff)
            product = self.assign("mul", [self.planned(scale).operand, product], node.shape)
        elif node.coeff != 1:
            product = self.assign("mul", [literal(node.coeff), product], node.shape)
        return _Array(product, tuple(range(node.rank)))

    def power(self, node: g.Power, args: list[_Array]) -> Operand:
        base, exponent = args[0].operand, args[1].operand
        if not isinstance(node.args[1], g.Const):
            return self.assign("power", [base, exponent], node.shape)
        p = node.args[1].value
        if p == 2:
            return self.assign("mul", [base, base], node.shape)
        if p == Fraction(1, 2):
            return self.assign("call", [base], node.shape, "sqrt")
        if p == Fraction(-1, 2):
            root = self.assign("call", [base], node.shape, "sqrt")
            return self.assign("power", [root], node.shape, Fraction(-1))
        number_text(p)  # refuses an exponent beyond float64
        return self.assign("power", [base], node.shape, p)

    def sum(self, node: g.Add, args: list[_Array]) -> Operand:
        terms: list[Operand] = []
        negative: list[bool] = []
        for term, arr in zip(node.args, args, strict=True):
            scalar = _broadcast_scalar(term) if node.rank else None
            operand = arr.operand
            minus = False
            if scalar is not None:
                # Broadcasting adds the scalar; no array of copies is built.
                c, s = scalar
                if s is None:
                    operand = literal(abs(c))
                else:
                    body = self.planned(s).operand
                    operand = body if abs(c) == 1 else self.assign("mul", [literal(abs(c)), body], ())
                minus = c < 0
            elif (part := _broadcast_part(term)) is not None and any(
                _broadcast_part(t) is None and _broadcast_scalar(t) is None for t in node.args
            ):
                # b*ones(N)' + A: b broadcast along the axis of ones (another term has every axis).
                rest, axes = part
                operand = _view(self.planned(rest).operand).broadcast(axes)
            elif (
                isinstance(term, g.Contract)
                and term.coeff < 0
                and self.uses.get(term, 0) == 1
                and term not in self.roots
            ):
                # a - b rather than a + (-1.0 * b): the negation costs a pass over the array (the
                # negated statement is then dead).
                operand = self.contract(term, [self.values[a] for a in term.args], -term.coeff).operand
                minus = True
            terms.append(operand)
            negative.append(minus)
        if node.rank and all(_broadcast_scalar(t) is not None for t in node.args):
            # Only scalars: nothing to broadcast against, so the array is built.
            total = self.assign("add", terms, (), tuple(negative))
            return self.assign("full", [total], node.shape, self.shape(node.shape))
        return self.assign("add", terms, node.shape, tuple(negative))

    def factored(self, node: g.Contract, parts: list[list[int]]) -> Factors:
        factors: list[tuple[tuple[str, g.Dim | int], tuple[int, ...]]] = []
        arrays: list[Operand] = []
        for part in parts:
            free = tuple(lab for lab in node.out if any(lab in node.labels[k] for k in part))
            axes = tuple(node.out.index(lab) for lab in free)
            if len(part) == 1 and isinstance(node.args[part[0]], g.Delta) and len(set(node.labels[part[0]])) == 2:
                factors.append((("eye", node.args[part[0]].params[0]), axes))
                continue
            sub = g.contract([node.args[k] for k in part], [node.labels[k] for k in part], free)
            # The part's value has its free indices in the order of the result's axes.
            # Building the part may flatten it into operands not planned yet (a product nested
            # in the part): those are planned here.
            arr = self.contract(sub, [self.planned(a) for a in sub.args]) if isinstance(sub, g.Contract) else None
            factors.append((("array", len(arrays)), axes))
            arrays.append(arr.operand if arr is not None else self.planned(sub).operand)
        return Factors(tuple(arrays), Structure(float(node.coeff), tuple(factors)))

    # -------------------------------------------------------------------------- contractions

    def contract(self, node: g.Contract, args: list[_Array], coeff: Fraction | None = None) -> _Array:
        ops: list[tuple[_Array, g.Node]] = []
        scalars: list[Operand] = []
        dims: dict[int, g.Dim] = {}
        for arr, labs, arg in zip(args, node.labels, node.args, strict=True):
            dims.update(zip(labs, arg.shape, strict=True))
            if not labs:
                scalars.append(arr.operand)
            else:
                ops.append((_Array(arr.operand, labs), arg))
        out = node.out
        coeff = node.coeff if coeff is None else coeff
        # Ones over an index that another factor carries: an axis sum (einsum semantics).
        # (A ones factor is dropped only where a factor that is not ones carries its index: sum(ones .* ones) is n.)
        carried = {lab for arr, arg in ops if not isinstance(arg, g.Ones) for lab in arr.labels}
        ops = [op for op in ops if not (isinstance(op[1], g.Ones) and all(lab in carried for lab in op[0].labels))]
        factors: list[Operand] = [] if coeff == 1 else [literal(coeff)]
        factors += scalars
        if not ops:
            if not factors:
                value: Operand = Lit(Fraction(1))
            elif len(factors) == 1:
                value = factors[0]
            else:
                value = self.assign("mul", factors, ())
            if not out:
                return _Array(value, out)
            shape = [dims[lab] for lab in out]
            return _Array(self.assign("full", [value], shape, self.shape(shape)), out)
        # Scale the smallest array on the way: an operand smaller than the result takes the factor.
        result_size = self.size([dims[lab] for lab in out])
        if factors:
            k_small = min(range(len(ops)), key=lambda k: self.size([dims[lab] for lab in ops[k][0].labels]))
            small, arg = ops[k_small]
            if self.size([dims[lab] for lab in small.labels]) < result_size:
                shape = [dims[lab] for lab in small.labels]
                ops[k_small] = (_Array(self.assign("mul", [*factors, small.operand], shape), small.labels), arg)
                factors = []
        result = self.contract_arrays([arr for arr, _ in ops], out, dims)
        if factors:
            shape = [dims[lab] for lab in result.labels]
            result = _Array(self.assign("mul", [*factors, result.operand], shape), result.labels)
        return result

    def contract_arrays(self, arrays: list[_Array], out: Labels, dims: dict[int, g.Dim]) -> _Array:
        """Pairwise products in the cheapest order for the sizes, each a BLAS form where possible.

        A part of the product that the block has computed already (the same arrays, the same
        contracted labels) is free: the order is chosen knowing it, and the part is taken, not
        recomputed (the bias gradient ``sum(d2, 2)`` of a network sums the ``d2`` that the weight
        gradient ``d2*h1'`` needs). Each product is oriented as its user reads it: as the array it
        is multiplied with entry by entry, the root as the result (so entry-wise passes read
        arrays stored in the same order, not a C-ordered array against a transposed one).
        """
        arrays = [self.reduce_alone(a, arrays, out, dims) for a in arrays]
        if len(arrays) == 1:
            return self.finish(arrays[0], out, dims)
        size = {lab: self.size([d]) for lab, d in dims.items()}
        network = _Network([a.labels for a in arrays], out, size)
        found = self.computed(arrays, network)
        network.known = {members: cost for members, (cost, _) in found.items()}
        tree = network.best()
        done: dict[Tree, _Array] = {}
        members: dict[Tree, frozenset[int]] = {}
        # Post-order over the plan: leaves are indices, inner nodes (left, right, kept labels). Each
        # entry carries the orientation preferred for its value, or the sibling whose orientation
        # it should take (known once the sibling is done).
        stack: list[tuple[Tree, bool, Labels | None, Tree | None]] = [(tree, False, out, None)]
        while stack:
            item, expanded, prefer, sibling = stack.pop()
            if isinstance(item, int):
                done[item], members[item] = arrays[item], frozenset([item])
                continue
            left, right, keep = item
            if network.reused and (part := network.members(item)) in network.reused:
                cached, kept = found[part][1]
                done[item], members[item] = (
                    self.finish(cached, tuple(lab for lab in cached.labels if lab in kept), dims),
                    part,
                )
                continue
            if sibling is not None and sibling in done:
                prefer = _oriented(done[sibling].labels, keep)
            if not expanded:
                # The left part is made first: as the right one where that is a factor, else as
                # this product; the right part then as the left one.
                stack.append((item, True, prefer, None))
                stack.append((right, False, _oriented(prefer, _kept(right, arrays)), left))
                left_order = arrays[right].labels if isinstance(right, int) else prefer
                stack.append((left, False, _oriented(left_order, _kept(left, arrays)), None))
                continue
            done[item] = self.pair(done[left], done[right], set(keep), dims, prefer)
            members[item] = members[left] | members[right]
            if len(members[item]) <= 8:  # (a larger part is never looked for: see ``computed``)
                self.remember([arrays[k] for k in sorted(members[item])], done[item])
        return self.finish(done[tree], out, dims)

    def computed(
        self, arrays: list[_Array], network: _Network
    ) -> dict[frozenset[int], tuple[int, tuple[_Array, set[int]]]]:
        """The parts of the product of ``arrays`` that the block holds (up to the names of labels):
        each with the cost of taking it (nothing, or a sum over the labels it keeps that the part
        does not) and the held value in this product's labels with the labels to keep."""
        found: dict[frozenset[int], tuple[int, tuple[_Array, set[int]]]] = {}
        if not self.bags or len(arrays) > 8:
            return found  # (above 8 factors the order is searched without them)
        bags = [_bag_key(a) for a in arrays]
        for width in range(2, len(arrays) + 1):
            for combo in itertools.combinations(range(len(arrays)), width):
                if tuple(sorted(bags[k] for k in combo)) not in self.bags:
                    continue
                part = [arrays[k] for k in combo]
                canonical = _network_key(part)
                if canonical is None:
                    continue
                key, relabel = canonical
                keep = set(network.kept(frozenset(combo)))
                wanted = {relabel[lab] for lab in keep}
                back = {new: lab for lab, new in relabel.items()}
                for held in self.products.get(key, []):
                    if not wanted <= set(held.labels):
                        continue
                    # Taking it costs a sum over the labels it keeps and this part does not.
                    extra = len(held.labels) > len(wanted)
                    cost = math.prod(network.size[back[lab]] for lab in held.labels) if extra else 0
                    if frozenset(combo) not in found or cost < found[frozenset(combo)][0]:
                        value = _Array(held.operand, tuple(back[lab] for lab in held.labels))
                        found[frozenset(combo)] = (cost, (value, keep))
        return found

    def remember(self, part: list[_Array], product: _Array) -> None:
        """Record the product of the arrays ``part`` (keeping ``product.labels``) for later contractions."""
        canonical = _network_key(part)
        if canonical is None:
            return
        key, relabel = canonical
        if not all(lab in relabel for lab in product.labels):
            return  # (a label of no operand: nothing to match it by)
        self.products.setdefault(key, []).append(_Array(product.operand, tuple(relabel[lab] for lab in product.labels)))
        self.bags.add(tuple(sorted(_bag_key(a) for a in part)))

    def reduce_alone(self, a: _Array, arrays: list[_Array], out: Labels, dims: dict[int, g.Dim]) -> _Array:
        """Sum out the axes whose label no other array and not the output carries."""
        others = {lab for b in arrays if b is not a for lab in b.labels} | set(out)
        if len(set(a.labels)) != len(a.labels):
            return a  # a diagonal: handled by finish / einsum
        alone = tuple(k for k, lab in enumerate(a.labels) if lab not in others)
        if not alone:
            return a
        labels = tuple(lab for lab in a.labels if lab in others)
        return _Array(self.assign("sum", [a.operand], [dims[lab] for lab in labels], alone), labels)

    def finish(self, a: _Array, out: Labels, dims: dict[int, g.Dim]) -> _Array:
        """Bring one array to the labels ``out``: diagonal, trace, axis sums, transpose."""
        labels = a.labels
        operand = a.operand
        if len(set(labels)) != len(labels):
            shape = [dims[lab] for lab in out]
            if len(labels) == 2 and not out:
                return _Array(self.assign("trace", [operand], shape), ())
            if len(labels) == 2 and out == (labels[0],):
                return _Array(self.assign("diagonal", [operand], shape), out)
            spec = _letters(labels) + "->" + _letters(out, labels)
            return _Array(self.assign("einsum", [operand], shape, spec), out)
        summed = tuple(k for k, lab in enumerate(labels) if lab not in out)
        if summed:
            labels = tuple(lab for lab in labels if lab in out)
            axes = summed if len(summed) < len(a.labels) else None
            operand = self.assign("sum", [operand], [dims[lab] for lab in labels], axes)
        if labels != out:
            assert isinstance(operand, View)
            operand = operand.permuted(tuple(labels.index(lab) for lab in out))
        return _Array(operand, out)

    def pair(
        self, a: _Array, b: _Array, keep: set[int], dims: dict[int, g.Dim], prefer: Labels | None = None
    ) -> _Array:
        """One product of two arrays, keeping the labels in ``keep``; a matrix result is made in the
        orientation ``prefer`` (its labels in order) where that is free (``A @ B`` or ``(B' @ A')'``),
        unless the block holds the other orientation already."""
        a = self.reduce_alone(a, [a, b], tuple(keep), dims)
        b = self.reduce_alone(b, [a, b], tuple(keep), dims)
        la, lb = a.labels, b.labels
        shared = [lab for lab in la if lab in lb]
        batch = [lab for lab in shared if lab in keep]
        summed = [lab for lab in shared if lab not in keep]
        if len(set(la)) != len(la) or len(set(lb)) != len(lb):
            return self.einsum_pair(a, b, keep, dims)

        def result(labels: Labels, name: str, args: Sequence[Operand], *params: object) -> _Array:
            return _Array(self.assign(name, args, [dims[lab] for lab in labels], *params), labels)

        if not batch:
            # A tensor product over the summed labels: matmul forms first.
            ra, rb = len(la), len(lb)
            if len(summed) == 1 and ra <= 2 and rb <= 2:
                (s,) = summed
                if ra + rb == 3:
                    # Matrix times vector: A @ x over A's columns, x @ A (that is A' x) over its rows.
                    (m, lm), (v, _) = ((b, lb), (a, la)) if ra == 1 else ((a, la), (b, lb))
                    other = tuple(lab for lab in lm if lab != s)
                    pair = [m.operand, v.operand] if lm[1] == s else [v.operand, m.operand]
                    return result(other, "matmul", pair)
                ta = a.operand if ra == 1 or la[1] == s else _transposed(a.operand)
                tb = b.operand if rb == 1 or lb[0] == s else _transposed(b.operand)
                labels = tuple(lab for lab in la if lab != s) + tuple(lab for lab in lb if lab != s)
                if len(labels) == 2 and prefer == labels[::-1]:
                    # (B' @ A')' = A @ B, made in the preferred orientation unless A @ B is held.
                    turned = [_transposed(tb), _transposed(ta)]
                    if not self.block.holds(Op("matmul", (ta, tb))):
                        return result(labels[::-1], "matmul", turned)
                elif len(labels) == 2 and self.block.holds(Op("matmul", (_transposed(tb), _transposed(ta)))):
                    return result(labels[::-1], "matmul", [_transposed(tb), _transposed(ta)])
                return result(labels, "matmul", [ta, tb])
            if not summed and ra + rb <= 2:
                if ra == 0 or rb == 0:
                    return result(la + lb, "mul", [a.operand, b.operand])
                if prefer == lb + la:
                    a, b, la, lb = b, a, lb, la
                outer = [_view(a.operand).broadcast((0, None)), _view(b.operand).broadcast((None, 0))]
                return result(la + lb, "mul", outer)
            if len(summed) == ra == rb and ra <= 2:
                tb = b.operand if lb == la else _view(b.operand).permuted(tuple(lb.index(lab) for lab in la))
                return result((), "inner", [a.operand, tb])
            axes_a = tuple(la.index(lab) for lab in summed)
            axes_b = tuple(lb.index(lab) for lab in summed)
            labels = tuple(lab for lab in la if lab not in summed) + tuple(lab for lab in lb if lab not in summed)
            return result(labels, "tensordot", [a.operand, b.operand], axes_a, axes_b)
        target = tuple(la) + tuple(lab for lab in lb if lab not in la)
        if prefer is not None and len(prefer) == len(target) and set(prefer) == set(target):
            target = prefer
        if not summed:
            # An entry-wise product with broadcasting: diag(s)*X is X * s[:, None].
            return result(target, "mul", [_aligned(a, target), _aligned(b, target)])
        if len(la) + len(lb) - len(shared) <= 2:
            # Entry-wise product, then the sum over the summed labels.
            product = result(target, "mul", [_aligned(a, target), _aligned(b, target)])
            return self.finish(product, tuple(lab for lab in target if lab in keep), dims)
        return self.einsum_pair(a, b, keep, dims)

    def einsum_pair(self, a: _Array, b: _Array, keep: set[int], dims: dict[int, g.Dim]) -> _Array:
        labels = tuple(sorted(set(a.labels) | set(b.labels)))
        out = tuple(lab for lab in labels if lab in keep)
        spec = f"{_letters(a.labels, labels)},{_letters(b.labels, labels)}->{_letters(out, labels)}"
        return _Array(self.assign("einsum", [a.operand, b.operand], [dims[lab] for lab in out], spec), out)


def _kept(tree: Tree, arrays: Sequence[_Array]) -> Labels:
    """The labels of the value of ``tree`` (a factor's own, or those its product keeps)."""
    return arrays[tree].labels if isinstance(tree, int) else tree[2]


def _oriented(order: Labels | None, labels: Labels) -> Labels | None:
    """``labels`` in the order they have in ``order``, None where ``order`` lacks one (or is a
    diagonal's, with a label twice)."""
    if order is None or not set(labels) <= set(order) or len(set(order)) != len(order):
        return None
    return tuple(lab for lab in order if lab in labels)


# A network of arrays up to the names of its labels: each array's value (or broadcast view) with
# the labels of its stored axes renamed 0, 1, ... in order of first appearance.
_NetworkKey: TypeAlias = tuple[tuple[object, ...], tuple[Labels, ...]]


def _stored(a: _Array) -> tuple[object, Labels]:
    """The value holding ``a`` and the label of each of its stored axes (a transposed view is its
    value with the labels permuted); a broadcast view stands for itself."""
    view = _view(a.operand)
    if view.axes is None:
        return view.value, a.labels
    if None in view.axes or sorted(view.axes) != list(range(view.value.rank)):  # type: ignore[type-var]
        return view, a.labels
    labels = [0] * len(view.axes)
    for k, axis in enumerate(view.axes):
        assert axis is not None
        labels[axis] = a.labels[k]
    return view.value, tuple(labels)


def _bag_key(a: _Array) -> tuple[str, str, str]:
    """A sortable name of the stored value of ``a`` (equal only for the same value)."""
    held, _ = _stored(a)
    view = held if isinstance(held, View) else View(held)  # type: ignore[arg-type]
    return view.value.kind, str(view.value.key), str(view.axes)


def _network_key(arrays: Sequence[_Array]) -> tuple[_NetworkKey, dict[int, int]] | None:
    """The key of the product of ``arrays`` up to the names of labels, and the renaming that
    makes it (None where repeated arrays admit too many orders to try)."""
    items = sorted(((_bag_key(a), *_stored(a)) for a in arrays), key=lambda item: item[0])
    groups = [list(group) for _, group in itertools.groupby(items, key=lambda item: item[0])]
    if math.prod(math.factorial(len(group)) for group in groups) > 24:
        return None
    best: tuple[tuple[Labels, ...], dict[int, int]] | None = None
    # A repeated array (X'*X) may be listed in any order: the least renaming over those orders.
    for order in itertools.product(*(itertools.permutations(group) for group in groups)):
        relabel: dict[int, int] = {}
        for item in itertools.chain.from_iterable(order):
            for lab in item[2]:
                relabel.setdefault(lab, len(relabel))
        labels = tuple(tuple(relabel[lab] for lab in item[2]) for item in itertools.chain.from_iterable(order))
        if best is None or labels < best[0]:
            best = (labels, relabel)
    assert best is not None
    return (tuple(item[1] for item in items), best[0]), best[1]


def _view(operand: Operand) -> View:
    assert isinstance(operand, View), "an operand with axes is an array"
    return operand


def _transposed(operand: Operand) -> View:
    return _view(operand).permuted((1, 0))


def _aligned(a: _Array, target: Labels) -> View:
    """``a`` viewed to broadcast against ``target`` (its axes in target order, new axes elsewhere)."""
    return _view(a.operand).broadcast(tuple(a.labels.index(lab) if lab in a.labels else None for lab in target))


def _letters(labels: Labels, reference: Labels | None = None) -> str:
    pool = sorted(set(labels) | set(reference or ()))
    return "".join("abcdefghijklmnopqrstuvwxyz"[pool.index(lab)] for lab in labels)


def _broadcast_scalar(node: g.Node) -> tuple[Fraction, g.Node | None] | None:
    """``c * s * ones(...)`` -> (c, s): a scalar repeated over a tensor, added by broadcasting."""
    if isinstance(node, g.Ones):
        return Fraction(1), None
    if isinstance(node, g.Contract) and node.out:
        ones = [k for k, a in enumerate(node.args) if isinstance(a, g.Ones) and node.labels[k] == node.out]
        if not ones:
            return None
        rest = tuple(a for k, a in enumerate(node.args) if k != ones[0])
        rest_labels = [labs for k, labs in enumerate(node.labels) if k != ones[0]]
        if not rest:
            return node.coeff, None
        if len(rest) == 1 and rest[0].rank == 0:
            return node.coeff, rest[0]
        if not any(lab in node.out for labs in rest_labels for lab in labs):
            # The other factors make a scalar (1/n times a sum, say): it is broadcast.
            return node.coeff, g.contract(list(rest), rest_labels, ())
    return None


def _broadcast_part(node: g.Node) -> tuple[g.Node, tuple[int | None, ...]] | None:
    """``b*ones(N)'`` -> (b, (0, None)): a product with ones over axes no other factor carries is
    its other factors broadcast along those axes (no array of copies is built)."""
    if not isinstance(node, g.Contract) or not node.rank:
        return None
    spread = set()
    for arg, labs in zip(node.args, node.labels, strict=True):
        if isinstance(arg, g.Ones) and len(labs) == 1 and labs[0] in node.out:
            others = [other for other in node.labels if other is not labs]
            if not any(labs[0] in other for other in others):
                spread.add(labs[0])
    if not spread or spread == set(node.out):
        return None  # nothing spread, or a scalar spread everywhere (_broadcast_scalar's case)
    keep = [
        k
        for k, (arg, labs) in enumerate(zip(node.args, node.labels, strict=True))
        if not (isinstance(arg, g.Ones) and labs[0] in spread)
    ]
    out = tuple(lab for lab in node.out if lab not in spread)
    rest = g.contract([node.args[k] for k in keep], [node.labels[k] for k in keep], out, node.coeff)
    return rest, tuple(out.index(lab) if lab in out else None for lab in node.out)


def _inlined(parent: g.Contract, k: int, term: g.Node, inline: bool) -> g.Node:
    """``parent`` with its operand ``k`` replaced by ``term``, joined with its operands when
    ``inline`` (see :func:`~matrixcalculus.transform.lowering.inline_operand`)."""
    if not inline:
        return g.contract(parent.args[:k] + (term,) + parent.args[k + 1 :], parent.labels, parent.out, parent.coeff)
    return inline_operand(parent, k, term)


def _hoist(total: g.Add, f: g.Node) -> tuple[g.Add, g.Node] | None:
    """``sum_j f * rest_j`` as (``sum_j rest_j``, ``f * (sum_j rest_j)``) when ``f`` is an operand of
    every term, once, with each axis either the same axis of the result in every term or summed
    against the term's other operands in every term; None otherwise."""
    rank = total.rank
    rests: list[g.Node] = []
    roles: tuple[int | None, ...] | None = None  # per axis of f: the result's axis, or None (summed)
    for term in total.args:
        assert isinstance(term, g.Contract)
        where = [k for k, a in enumerate(term.args) if a is f]
        if len(where) != 1:
            return None
        (k,) = where
        labs = term.labels[k]
        if len(set(labs)) != len(labs):
            return None
        mine = tuple(term.out.index(lab) if lab in term.out else None for lab in labs)
        if roles is None:
            roles = mine
        elif mine != roles:
            return None
        others = [j for j in range(len(term.args)) if j != k]
        carried = {lab for j in others for lab in term.labels[j]}
        summed = [lab for lab, role in zip(labs, mine, strict=True) if role is None]
        if not others or any(lab not in carried for lab in summed):
            return None
        if any(lab in carried for lab, role in zip(labs, mine, strict=True) if role is not None):
            return None  # an axis f shares with the rest entry by entry (a Hadamard product): not hoisted
        # The rest's axes: f's summed axes (in f's order), then the result's axes f does not carry.
        free = [lab for lab in term.out if lab not in labs]
        if any(lab not in carried for lab in free):
            return None
        rests.append(
            g.contract([term.args[j] for j in others], [term.labels[j] for j in others], summed + free, term.coeff)
        )
    assert roles is not None
    if any(r.shape != rests[0].shape for r in rests):
        return None
    inner = g.add(rests)
    if not isinstance(inner, g.Add):
        return None
    # f * inner with labels: the result's axes 0..rank-1, f's summed axes rank, rank+1, ...
    fresh = iter(range(rank, rank + len(roles)))
    f_labels = tuple(role if role is not None else next(fresh) for role in roles)
    summed_labels = tuple(lab for lab, role in zip(f_labels, roles, strict=True) if role is None)
    free_axes = tuple(axis for axis in range(rank) if axis not in roles)
    outer = g.contract([f, inner], [f_labels, summed_labels + free_axes], tuple(range(rank)))
    return inner, outer


def _components(node: g.Node) -> list[list[int]] | None:
    """The operands of a contraction of order >= 3 grouped into parts that share no index."""
    if not isinstance(node, g.Contract) or node.rank < 3:
        return None
    parts = g.joined_operands(node.labels)
    return parts if len(parts) > 1 else None


def product_order(labels: list[Labels], out: Labels, size: dict[int, int]) -> Tree:
    """The product tree with the fewest multiply-adds: exact for up to 8 factors, else the
    cheapest of a few searches.

    A tree is a factor index or ``(left, right, kept labels)``. The cost of one product is the
    product of the sizes of all labels it touches, so ``s .* y`` before ``X'*(...)`` is found.
    Above 8 factors the exact search grows as 3^n; then ``opt_einsum``'s dynamic programme (up
    to 12 factors; exact over splits into connected parts) or its greedy path (fast on long
    chains) is taken where it is cheaper than our greedy one (kept up to 64 factors: it costs n^3).

    >>> product_order([(0, 1), (1, 2), (2,)], (0,), {0: 10, 1: 10, 2: 10})  # A*(B*x)
    (0, (1, 2, (1,)), (0,))
    """
    return _Network(labels, out, size).best()


class _Network:
    """Factors with labelled axes: the cost of product trees, and searches for a cheap one.

    ``known`` prices the products of some sets of factors that are at hand already (a value
    computed for another output): the exact search takes such a set at that price where it is
    no dearer than computing it, and records it in ``reused``.
    """

    def __init__(self, labels: list[Labels], out: Labels, size: dict[int, int]):
        self.labels, self.out, self.size = labels, out, size
        self.known: dict[frozenset[int], int] = {}
        self.reused: set[frozenset[int]] = set()
        self.occurs: dict[int, int] = {}
        for labs in labels:
            for lab in set(labs):
                self.occurs[lab] = self.occurs.get(lab, 0) + 1

    def best(self) -> Tree:
        """The cheapest tree found (see :func:`product_order`)."""
        n = len(self.labels)
        if n <= 8:
            return self.exact()
        candidates = [self.searched("dp" if n <= 12 else "greedy")]
        if n <= 64:
            candidates.append(self.greedy())
        return min(candidates, key=self.cost)

    def kept(self, members: frozenset[int]) -> Labels:
        """The labels a product of the factors ``members`` keeps: those of the output or of others."""
        inside: dict[int, int] = {}
        for k in members:
            for lab in set(self.labels[k]):
                inside[lab] = inside.get(lab, 0) + 1
        return tuple(sorted(lab for lab, c in inside.items() if lab in self.out or c < self.occurs[lab]))

    def flops(self, a: Labels, b: Labels) -> int:
        total = 1
        for lab in set(a) | set(b):
            total *= self.size[lab]
        return total

    def cost(self, tree: Tree) -> int:
        total = 0
        stack = [tree]
        while stack:
            item = stack.pop()
            if isinstance(item, int):
                continue
            left, right, _ = item
            total += self.flops(self.kept(self.members(left)), self.kept(self.members(right)))
            stack += [left, right]
        return total

    def members(self, tree: Tree) -> frozenset[int]:
        if isinstance(tree, int):
            return frozenset([tree])
        return self.members(tree[0]) | self.members(tree[1])

    def exact(self) -> Tree:
        n = len(self.labels)
        best: dict[frozenset[int], tuple[int, Tree, Labels]] = {
            frozenset([k]): (0, k, self.kept(frozenset([k]))) for k in range(n)
        }
        for width in range(2, n + 1):
            for combo in itertools.combinations(range(n), width):
                members = frozenset(combo)
                keep = self.kept(members)
                first = combo[0]
                choice: tuple[int, Tree, Labels] | None = None
                rest = [k for k in combo if k != first]
                # Split into a part holding the first factor and the rest (each split once).
                for r in range(0, len(rest)):
                    for part in itertools.combinations(rest, r):
                        left = frozenset((first, *part))
                        lc, lt, lk = best[left]
                        rc, rt, rk = best[members - left]
                        cost = lc + rc + self.flops(lk, rk)
                        if choice is None or cost < choice[0]:
                            choice = (cost, (lt, rt, keep), keep)
                assert choice is not None
                held = self.known.get(members)
                if held is not None and held <= choice[0]:
                    choice = (held, choice[1], keep)
                    self.reused.add(members)
                best[members] = choice
        return best[frozenset(range(n))][1]

    def greedy(self) -> Tree:
        """Join connected pairs first, the cheapest product first."""
        pool: list[tuple[Tree, Labels, frozenset[int]]] = [
            (k, self.kept(frozenset([k])), frozenset([k])) for k in range(len(self.labels))
        ]
        while len(pool) > 1:
            best = None
            for i in range(len(pool)):
                for j in range(i + 1, len(pool)):
                    connected = bool(set(pool[i][1]) & set(pool[j][1]))
                    key = (not connected, self.flops(pool[i][1], pool[j][1]))
                    if best is None or key < best[0]:
                        best = (key, i, j)
            assert best is not None
            _, i, j = best
            members = pool[i][2] | pool[j][2]
            keep = self.kept(members)
            node: Tree = (pool[i][0], pool[j][0], keep)
            pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [(node, keep, members)]
        return pool[0][0]

    def searched(self, method: str) -> Tree:
        """The tree of ``opt_einsum``'s path search ``method`` (its path lists positions in a list
        of operands from which each step removes its operands and appends their product)."""
        import opt_einsum

        symbol = opt_einsum.get_symbol
        spec = ",".join("".join(symbol(lab) for lab in labs) for labs in self.labels)
        spec += "->" + "".join(symbol(lab) for lab in self.out)
        shapes = [tuple(self.size[lab] for lab in labs) for labs in self.labels]
        path, _ = opt_einsum.contract_path(spec, *shapes, shapes=True, optimize=method)
        pool: list[tuple[Tree, frozenset[int]]] = [(k, frozenset([k])) for k in range(len(self.labels))]
        for step in path:
            taken = [pool.pop(k) for k in sorted(step, reverse=True)][::-1]
            tree, members = taken[0]
            for other, other_members in taken[1:]:
                members |= other_members
                tree = (tree, other, self.kept(members))
            pool.append((tree, members))
        while len(pool) > 1:  # (a path may leave disconnected parts: their outer product)
            (a, ma), (b, mb) = pool.pop(0), pool.pop(0)
            pool.append(((a, b, self.kept(ma | mb)), ma | mb))
        return pool[0][0]
