"""The public expression object, :func:`parse`, and the Python builders.

An :class:`Expression` is a typed graph node plus its variables. The Python operators build
graph nodes directly, with the parser's typing rules and its graph-building helpers, so an
expression built from Python is exactly the graph the parser makes from the same formula::

    >>> x, A = vector("x"), matrix("A")
    >>> (x.T @ A @ x).node is parse("x'*A*x").node
    True

Dimensions nobody named (the ``n`` of ``vector("x")``) are unknowns: combining two expressions
unifies them, as the parser does across one formula, and names them again in the parser's
order. Building is linear in the size of what is built from the left (``a @ b @ c ...``): the
left operand keeps its node unless a new constraint renames its dimensions.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from numbers import Rational, Real
from typing import TYPE_CHECKING, Any

from matrixcalculus.errors import EvaluationError, InferenceError, MatrixCalculusError, ParseError, ShapeError
from matrixcalculus.frontend.infer import (
    DIMENSION_NAMES,
    Declared,
    Notice,
    binary,
    broadcast,
    constant_problem,
    declare,
    fresh_dimension_names,
    infer_with_notices,
)
from matrixcalculus.frontend.syntax import DIMENSION_FUNCTIONS, Ast, parse_syntax
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_count, check_nodes, current_limits, limit_error
from matrixcalculus.numeric.evaluate import bind
from matrixcalculus.numeric.evaluate import evaluate as _evaluate
from matrixcalculus.render.printing import free_indices, index_notation, to_latex, to_text

if TYPE_CHECKING:
    from matrixcalculus.api.explicit import Explicit


class MatrixCalculusNotice(UserWarning):
    """Warned once per parsed expression that has notices: a name read off its default kind, or an
    undeclared scalar repeated over a vector (see :attr:`Expression.notices`).

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = parse("W*x + b")
    >>> caught[0].category.__name__
    'MatrixCalculusNotice'
    """


class Variable:
    """A variable of an expression: its name, kind and shape (dimensions may be names)."""

    __slots__ = ("node",)

    def __init__(self, node: g.Var):
        self.node = node

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def shape(self) -> g.Shape:
        return self.node.shape

    def __repr__(self) -> str:
        if self.kind == "scalar":
            return f"{self.name}: scalar"
        if self.kind == "vector":
            return f"{self.name}: vector ({self.shape[0]})"
        if self.kind == "tensor":
            return f"{self.name}: {len(self.shape)}-tensor ({g.shape_text(self.shape)})"
        word = "symmetric matrix" if self.kind == "symmetric" else "matrix"
        return f"{self.name}: {word} ({self.shape[0]} x {self.shape[1]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variable) and other.node is self.node

    def __hash__(self) -> int:
        return hash(self.node)


# The matrix-level form of a value: "s" scalar, "c" column vector, "r" row vector, "m" matrix
# (the parser's; the graph has one kind of vector). A tensor of order three has none.
_FORM_OF_RANK = {0: "s", 1: "c", 2: "m"}
_TRANSPOSED = {"s": "s", "c": "r", "r": "c", "m": "m"}
# Node types whose dimensions are all in their leaves' parameters (the others derive shapes from
# their arguments), so renaming dimensions rebuilds leaves and re-interns the rest.
_LEAVES = (g.Var, g.Delta, g.Ones, g.Zeros, g.Const, g.Embed)
_INNER = (g.Contract, g.Add, g.Power, g.Compare, g.Function)
# Python's operators in the input language: @ is the matrix product, * / ** act entry-wise.
_SPELLING = {"+": "+", "-": "-", "*": "@", ".*": "*", "./": "/", ".^": "**", ">": ">", "<": "<"}
_ENTRYWISE = ("+", "-", ".*", "./", ".^", ">", "<")


@dataclass(frozen=True)
class _Facts:
    """What building on an expression needs to know about its graph, found once.

    ``plain``: every node is of a kind the builders can rename and every unnamed dimension is an
    axis of a variable (otherwise building falls back to printing and parsing). ``size``: an upper
    bound on the number of nodes. ``cursor``: how far into the pool of dimension names its own
    naming went. ``canonical``: its unnamed dimensions carry the names the parser would give.
    """

    plain: bool
    size: int
    cursor: int
    canonical: bool


def _pool_index(name: str) -> int:
    """The position of ``name`` in :func:`fresh_dimension_names`' sequence, -1 if not in it."""
    try:
        return DIMENSION_NAMES.index(name)
    except ValueError:
        pass
    if name[:1] == "n" and name[1:].isdigit() and name[1:2] != "0":
        return len(DIMENSION_NAMES) + int(name[1:]) - 1
    return -1


def _pool_name(index: int) -> str:
    return DIMENSION_NAMES[index] if index < len(DIMENSION_NAMES) else f"n{index - len(DIMENSION_NAMES) + 1}"


class Expression:
    """A typed expression: ``parse("x'*A*x")`` or built from :func:`vector`, :func:`matrix`, ...

    ``str(e)`` prints it in the input syntax (parsing that gives the same graph), ``e.latex()``
    in LaTeX, ``e.evaluate({...})`` computes it with NumPy.
    """

    __slots__ = (
        "_context",
        "_early",
        "_facts",
        "_fixed",
        "_form",
        "_jacobian",
        "_notices",
        "_result",
        "_source",
        "_spine",
        "_terms",
        "_types",
        "_written",
        "node",
        "variables",
    )

    def __init__(
        self,
        node: g.Node,
        variables: Mapping[str, g.Var],
        source: str | None = None,
        types: Mapping[str, Declared] | None = None,
        *,
        result: bool = False,
        fixed: frozenset[str] = frozenset(),
    ):
        self.node = node
        self.variables = {name: Variable(v) for name, v in variables.items()}
        self._source = source
        self._types = dict(types or {})
        # A derived expression prints its products in whichever order reads best.
        self._result = result
        self._context = dict(self.variables)
        # Dimension names the user gave (declarations, eye(k)): fixed, never renamed.
        self._fixed = fixed
        # A result of order one is a column (a gradient has the shape of its variable).
        self._form: str | None = _FORM_OF_RANK.get(node.rank)
        # "flat" for a sum whose terms, as the parser reads them, are its node's terms; "nested"
        # for a sum with a sum as a term; "none" otherwise. Adding a scalar sum to a vector
        # repeats each term (as the parser does), so the terms must be known.
        self._spine = "none"
        # The terms of a nested scalar sum built from Python (its node's terms are flattened).
        self._terms: tuple[g.Node, ...] | None = None
        self._facts: _Facts | None = None
        # How names were typed that the reader should know (kept by derivatives of this expression).
        self._notices: tuple[Notice, ...] = ()
        # Dimensions that only the text gives (ones(k), ones(3)); None: read off _fixed and _types.
        self._written: frozenset[g.Dim] | None = None
        # Products typed with the divisor after a leading scalar (lambda/2*w'*w): printed so.
        self._early: frozenset[g.Node] = frozenset()
        # A derivative's (rank of f, layout, f's text, the variables' names): which axes are f's
        # (flatten splits there) and what they are (pictures label them).
        self._jacobian: tuple[int, str, str, tuple[str, ...]] | None = None

    @classmethod
    def _built(
        cls,
        node: g.Node,
        variables: dict[str, Variable],
        types: dict[str, Declared],
        fixed: frozenset[str],
        form: str,
        facts: _Facts,
        spine: str = "none",
        terms: tuple[g.Node, ...] | None = None,
    ) -> Expression:
        """An expression made by a builder, from parts already checked (no copies)."""
        self = object.__new__(cls)
        self.node = node
        self.variables = variables
        self._source = None
        self._types = types
        self._result = False
        self._context = variables
        self._fixed = fixed
        self._form = form
        self._spine = spine
        self._terms = terms
        self._facts = facts
        self._notices = ()
        self._written = None
        self._early = frozenset()
        self._jacobian = None
        return self

    # ------------------------------------------------------------------ views

    @property
    def notices(self) -> tuple[str, ...]:
        """What to know about how the names were typed, with the fix in Python's syntax.

        >>> why, fix = parse("x^3").notices[0].split("; ")
        >>> why
        'x is read as a scalar because x^3 needs one (names h-z are vectors)'
        >>> fix
        'declare types={"x": "vector"} to change that'
        """
        return tuple(n.render("python") for n in self._notices)

    def notices_for(self, where: str) -> tuple[str, ...]:
        """:attr:`notices` with the fix in the syntax of ``where``: ``"python"`` or ``"command line"``."""
        return tuple(n.render(where) for n in self._notices)

    def node_variables(self) -> dict[str, g.Var]:
        """The variables as graph nodes, by name."""
        return {name: v.node for name, v in self.variables.items()}

    @property
    def shape(self) -> g.Shape:
        """The shape: ``()`` for a scalar, ``(n,)`` for a vector, ``(m, n)`` for a matrix."""
        return self.node.shape

    def __str__(self) -> str:
        # A large derived expression names its shared parts in a `where` clause (linear text).
        return to_text(self.node, early=self._early, **self._printing())

    def _printing(self) -> dict[str, Any]:
        """What the text and LaTeX printers are told about this expression (the same for both)."""
        return {
            "result": self._result,
            "scalars": self._declared_scalars(),
            "share": True,
            "row": self._row(),
            "written": self._written_dims(),
        }

    def _row(self) -> bool | None:
        """A vector prints as what it is: a row (x') or a column; None for other ranks."""
        return {"r": True, "c": False}.get(self._form or "") if self.node.rank == 1 else None

    def _declared_scalars(self) -> frozenset[str]:
        return frozenset(n for n, d in self._types.items() if d.kind == "scalar")

    def _written_dims(self) -> frozenset[g.Dim]:
        """Dimension names that the text gives and no declaration does (``ones(k)``): printing
        keeps them written, so that the text parses back with the same names."""
        if self._written is None:
            declared = {d for decl in self._types.values() for d in decl.shape or () if isinstance(d, str)}
            self._written = frozenset(self._fixed - declared)
        return self._written

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"

    def latex(self) -> str:
        """The expression in LaTeX: ``x'*A*x`` -> ``x^\\top A x``."""
        return to_latex(self.node, **self._printing())

    def index_notation(self) -> str:
        """The expression with explicit indices, e.g. ``sum_j A[i,j]*x[j]`` for ``A*x``."""
        return index_notation(self.node)

    def evaluate(
        self, values: Mapping[str, Any], dims: Mapping[str, int] | None = None, *, check_finite: bool = True
    ) -> Any:
        """The value for the given arrays (NumPy), e.g. ``{"x": np.ones(3), "A": np.eye(3)}`` -> 3.0.

        Values of variables the expression does not mention are allowed; they fix the sizes of
        dimensions (a derivative such as ``eye(n)`` keeps its function's variables for that).
        A non-finite input or result raises :class:`EvaluationError` naming where it happened
        (``log of a non-positive entry: x[2] = -1 in log(x)``); ``check_finite=False`` returns
        IEEE values (nan, inf) instead.
        """
        if not isinstance(values, Mapping):
            raise EvaluationError(f"values are a mapping from variable names to arrays, not {type(values).__name__}")
        context = {n: v.node for n, v in self._context.items() if n in values and n not in self.variables}
        if context:
            _, sizes = bind(context, values, dims, check_finite=check_finite)
            dims = {d: s for d, s in sizes.items() if isinstance(d, str)}
        return _evaluate(self.node, values, dims, check_finite=check_finite)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.node is self.node

    def equals(self, other: str | Expression, *, types: Mapping[str, Any] | None = None) -> Any:
        """Whether ``other`` is the same function (a :class:`~matrixcalculus.api.equality.Comparison`,
        truthy when equal): ``derivative("x'*A*x", "x").equals("A*x + A'*x")``."""
        from matrixcalculus.api.equality import equal  # equality builds on this module

        return equal(self, other, types=types)

    def __hash__(self) -> int:
        return hash(self.node)

    # ------------------------------------------------------------------ building

    def _text(self) -> str:
        if self._source is None:
            if self.node.rank > 2:
                raise MatrixCalculusError("a tensor of order three or more cannot be combined in matrix notation")
            # The full text (never `where` names): it is parsed again to build on it.
            self._source = to_text(
                self.node,
                result=self._result,
                scalars=self._declared_scalars(),
                row=self._row(),
                written=self._written_dims(),
            )
        return self._source

    def _declared(self) -> dict[str, Declared]:
        types = dict(self._types)
        for name, v in self.variables.items():
            if name not in types:
                shape = v.shape if all(isinstance(d, int) for d in v.shape) else None
                types[name] = Declared(v.kind, shape, len(v.shape) if v.kind == "tensor" else None)
        return types

    def _survey(self) -> _Facts:
        """The facts of a parsed or derived expression (one walk over its graph, then cached)."""
        if self._facts is None:
            self._facts, extra = _survey(self.node, self.variables, self._fixed)
            if self._result:
                # A derived expression's dimensions that are on none of its variables (eye(n) of a
                # Hessian) are printed by name: they stay as they are.
                self._fixed = self._fixed | extra
                self._facts = _Facts(True, self._facts.size, self._facts.cursor, False) if extra else self._facts
        return self._facts

    def _combine(self, op: str, other: Any, swap: bool = False) -> Expression:
        right = _lift(other)
        a, b = (right, self) if swap else (self, right)
        return _Combination(op, a, b).build()

    def __add__(self, other: Any) -> Expression:
        return self._combine("+", other)

    def __radd__(self, other: Any) -> Expression:
        return self._combine("+", other, swap=True)

    def __sub__(self, other: Any) -> Expression:
        return self._combine("-", other)

    def __rsub__(self, other: Any) -> Expression:
        return self._combine("-", other, swap=True)

    def __matmul__(self, other: Any) -> Expression:
        """The matrix product, ``*`` in the input language."""
        return self._combine("*", other)

    def __rmatmul__(self, other: Any) -> Expression:
        return self._combine("*", other, swap=True)

    def __mul__(self, other: Any) -> Expression:
        """The element-wise product ``.*`` (a scalar factor scales), as in NumPy."""
        return self._combine(".*", other)

    def __rmul__(self, other: Any) -> Expression:
        return self._combine(".*", other, swap=True)

    def __truediv__(self, other: Any) -> Expression:
        return self._combine("./", other)

    def __rtruediv__(self, other: Any) -> Expression:
        return self._combine("./", other, swap=True)

    def __pow__(self, other: Any) -> Expression:
        return self._combine(".^", other)

    def __rpow__(self, other: Any) -> Expression:
        return self._combine(".^", other, swap=True)

    def __neg__(self) -> Expression:
        return self._unary(g.scale(-1, self.node), self._operand_form())

    def __pos__(self) -> Expression:
        return self

    def __gt__(self, other: Any) -> Expression:
        return self._combine(">", other)

    def __lt__(self, other: Any) -> Expression:
        return self._combine("<", other)

    @property
    def T(self) -> Expression:  # noqa: N802 - NumPy's name for the transpose
        """The transpose, ``'`` in the input language."""
        form = self._operand_form()
        return self._unary(g.transpose(self.node), _TRANSPOSED[form])

    def _operand_form(self) -> str:
        if self._form is None:
            raise MatrixCalculusError(
                f"a tensor of order three or more cannot be combined in matrix notation: {_quote(self)} has shape "
                f"{g.shape_text(self.shape)}"
            )
        return self._form

    def _unary(self, node: g.Node, form: str) -> Expression:
        # No new constraint: the dimensions keep their names, the variables stay as they are.
        facts = self._survey()
        grown = _Facts(facts.plain, facts.size + 1, facts.cursor, facts.canonical)
        built = Expression._built(node, self.variables, self._types, self._fixed, form, grown)
        built._result, built._context = self._result, self._context
        return built

    # ------------------------------------------------------------------ explicit form, flattening

    def explicit(self, sizes: Mapping[str, int] | int | None = None) -> Explicit:
        """The expression at concrete sizes, entry by entry in the components of its variables
        (an :class:`~matrixcalculus.api.explicit.Explicit`): ``sizes`` maps dimension names to
        whole numbers, or is one number for every dimension (default 3).

        >>> from matrixcalculus.api.calculus import derivative
        >>> [str(entry) for entry in derivative("x .* z", "x").explicit({"n": 2}).entries.flat]
        ['z1', '0', '0', 'z2']
        """
        from matrixcalculus.api.explicit import explicit  # builds on this module

        return explicit(self, sizes)

    def flatten(self, order: str = "column") -> Expression:
        """The Jacobian of ``vec(F)`` by ``vec(X)`` of a derivative of ``F`` by ``X`` (a matrix,
        rows along ``vec(F)``; a scalar's is one row, a vector: ``kron(x, y)'`` for ``y'*A*x`` by
        ``A``), in Kronecker form where one exists; ``order``: ``"column"``
        (column-major ``vec``) or ``"row"``. It equals ``numpy.reshape(D, (|F|, |X|), order="F")``
        (``"C"`` for rows) of the shape-layout derivative ``D``.

        >>> from matrixcalculus.api.calculus import derivative
        >>> str(derivative("A*X*B", "X").flatten("column"))
        "kron(B', A)"
        """
        from matrixcalculus.api.explicit import flattened  # builds on this module

        return flattened(self, order)

    def picture(self, sizes: Mapping[str, int] | int | None = None, format: str = "svg") -> str | bytes:
        """The structure of the explicit form at small sizes as a picture: ``"svg"`` text or
        ``"png"`` bytes (see :meth:`~matrixcalculus.api.explicit.Explicit.picture`); needs the
        ``plot`` extra (matplotlib)."""
        return self.explicit(sizes).picture(format)

    # ------------------------------------------------------------------ notebooks

    def _repr_latex_(self) -> str:
        """Jupyter shows an expression (a derivative too) as typeset mathematics; a tensor of
        order three or more, in index notation, with its free indices and shape beside it.

        >>> print(parse("x'*A*x")._repr_latex_())
        $\\displaystyle x^\\top A x$
        """
        if self.node.rank <= 2:
            return f"$\\displaystyle {self.latex()}$"
        indices = ",".join(free_indices(self.node))
        shape = " \\times ".join(g.dim_text(d) for d in self.shape)
        return f"$\\displaystyle {self.latex()} \\qquad \\text{{(indices {indices}; shape }} {shape}\\text{{)}}$"


_KIND_WORDS = {
    "scalar": "scalar",
    "vector": "vector",
    "matrix": "matrix",
    "symmetric": "symmetric matrix",
    "tensor": "tensor",
}


class _Combination:
    """``a op b`` built on the graph, with the parser's typing rules.

    The unnamed dimensions of both operands are unknowns in one union-find (a name the user gave,
    or a number, is a known value shared by both sides); shared variables and the operation's
    rule unify them; then they are named in the parser's order (the variables in order of first
    appearance, a matrix's columns before its rows). When the left operand's unknowns neither
    merge nor meet a known value, it keeps its names and its node, so a chain ``a @ b @ c ...``
    costs time linear in its length.
    """

    def __init__(self, op: str, a: Expression, b: Expression):
        self.op, self.a, self.b = op, a, b
        self.parent: dict[tuple[Any, g.Dim], tuple[Any, g.Dim]] = {}
        self.value: dict[tuple[Any, g.Dim], g.Dim | None] = {}  # per root: its known value
        self.label: dict[tuple[Any, g.Dim], g.Dim] = {}  # per root holding an unknown of a: a's name
        self.stable = True  # no two unknowns of a merged, none met a known value

    # -------------------------------------------------------------- unknowns

    def key(self, side: int, d: g.Dim) -> tuple[Any, g.Dim]:
        fixed = (self.a if side == 0 else self.b)._fixed
        k: tuple[Any, g.Dim] = ("=", d) if isinstance(d, int) or d in fixed else (side, d)
        if k not in self.parent:
            self.parent[k] = k
            self.value[k] = d if k[0] == "=" else None
            if k[0] == 0:
                self.label[k] = d
        return k

    def find(self, k: tuple[Any, g.Dim]) -> tuple[Any, g.Dim]:
        root = k
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[k] != root:
            self.parent[k], k = root, self.parent[k]
        return root

    def unify(self, da: g.Dim, db: g.Dim, sides: tuple[int, int] = (0, 1)) -> bool:
        r1, r2 = self.find(self.key(sides[0], da)), self.find(self.key(sides[1], db))
        if r1 == r2:
            return True
        v1, v2 = self.value[r1], self.value[r2]
        if v1 is not None and v2 is not None and v1 != v2:
            return False
        l1, l2 = self.label.get(r1), self.label.get(r2)
        if (l1 is not None and (l2 is not None or v2 is not None)) or (l2 is not None and v1 is not None):
            self.stable = False
        self.parent[r2] = r1
        self.value[r1] = v1 if v1 is not None else v2
        if l1 is None and l2 is not None:
            self.label[r1] = l2
        return True

    # -------------------------------------------------------------- building

    def build(self) -> Expression:
        a, b, op = self.a, self.b, self.op
        ka, kb = a._operand_form(), b._operand_form()
        facts_a, facts_b = a._survey(), b._survey()
        nested = op in ("+", "-") and a._spine == "nested" and a._terms is None and ka == "s" and kb != "s"
        # A vector sum beside a matrix: the parser expands each of its terms on its own.
        nested = nested or (op in ("+", "-") and a._spine != "none" and ka in ("c", "r") and kb == "m")
        if not (facts_a.plain and facts_b.plain) or nested:
            # A parsed sum with a sum for a term: its text knows the terms the parser repeats.
            return self.via_text()
        va, vb = a.variables, b.variables
        new_b = [name for name in vb if name not in va]
        for name, v in vb.items():
            w = va.get(name)
            if w is None:
                continue
            if w.kind != v.kind:
                raise InferenceError(
                    f"{name} is a {_KIND_WORDS[w.kind]} on one side and a {_KIND_WORDS[v.kind]} on the other"
                )
            for da, db in zip(w.shape, v.shape, strict=True):
                if not self.unify(da, db):
                    raise ShapeError(
                        f"{name} has shape {g.shape_text(w.shape)} in {_quote(a)} but {g.shape_text(v.shape)} "
                        f"in {_quote(b)}"
                    )
        form = self.typed(ka, kb)
        fixed = a._fixed | b._fixed if not b._fixed <= a._fixed else a._fixed
        if self.stable and facts_a.canonical and not self.collides(new_b, facts_a.cursor):
            names, cursor = self.names_after(facts_a.cursor, new_b, fixed)
            map_a: dict[g.Dim, g.Dim] = {}
        else:
            names, cursor = self.names_anew(new_b, fixed)
            map_a = self.mapping(0, names)
        map_b = self.mapping(1, names)
        na, nb = _rename(a.node, map_a), _rename(b.node, map_b)
        # The terms of a scalar sum, as the parser reads them (a sum built on it repeats each).
        terms: tuple[g.Node, ...] | None = None
        if a._spine != "none" and ka == "s":
            terms = na.args if a._terms is None else tuple(_rename(t, map_a) for t in a._terms)
        if map_a:
            variables = {name: Variable(_renamed(v.node, map_a)) for name, v in va.items()}
        else:
            variables = dict(va)
        for name in new_b:
            variables[name] = Variable(_renamed(vb[name].node, map_b))
        node = self.node(na, nb, ka, kb, terms)
        size = facts_a.size + facts_b.size + 4  # at most a sum, a broadcast and its ones are new
        if size > current_limits().max_nodes:
            size = check_nodes([node], "the expression", ParseError)
        spine, spine_terms = "none", None
        if op in ("+", "-"):
            flat = a._spine == "flat" or (a._spine == "none" and not isinstance(na, g.Add))
            spine = "flat" if flat and not isinstance(nb, g.Add) else "nested"
            if spine == "nested" and form == "s":
                spine_terms = (*(terms or (na,)), nb if op == "+" else g.scale(-1, nb))
        types = {**b._types, **a._types} if b._types else a._types
        facts = _Facts(True, size, cursor, True)
        return Expression._built(node, variables, types, fixed, form, facts, spine, spine_terms)

    def collides(self, new_b: list[str], cursor: int) -> bool:
        """Whether a new variable or a named dimension of b takes a name a's unknowns have."""
        a = self.a
        for name in (*new_b, *self.b._fixed):
            index = _pool_index(name)
            if 0 <= index < cursor and name not in a.variables and name not in a._fixed:
                return True
        return False

    def names_after(
        self, cursor: int, new_b: list[str], fixed: frozenset[str]
    ) -> tuple[dict[tuple[Any, g.Dim], g.Dim], int]:
        """Names when a keeps its own: b's new unknowns continue the pool after a's."""
        a, b = self.a, self.b
        names: dict[tuple[Any, g.Dim], g.Dim] = {}

        def taken(name: str) -> bool:
            return name in a.variables or name in b.variables or name in fixed

        for var in new_b:
            for d in reversed(b.variables[var].shape):
                root = self.find(self.key(1, d))
                if root in names:
                    continue
                known = self.value[root]
                if known is None:
                    known = self.label.get(root)
                if known is None:
                    while taken(_pool_name(cursor)):
                        cursor += 1
                    known = _pool_name(cursor)
                    cursor += 1
                names[root] = known
        for root, label in self.label.items():
            names.setdefault(self.find(root), label)
        return names, cursor

    def names_anew(self, new_b: list[str], fixed: frozenset[str]) -> tuple[dict[tuple[Any, g.Dim], g.Dim], int]:
        """Names for every unknown, in the parser's order, as if the formula were parsed whole."""
        a, b = self.a, self.b
        pool = fresh_dimension_names({*a.variables, *b.variables, *fixed})
        names: dict[tuple[Any, g.Dim], g.Dim] = {}
        cursor = 0
        sides = [(0, v) for v in a.variables.values()] + [(1, b.variables[name]) for name in new_b]
        for side, var in sides:
            for d in reversed(var.shape):
                root = self.find(self.key(side, d))
                if root not in names:
                    known = self.value[root]
                    if known is None:
                        known = next(pool)
                        cursor = max(cursor, _pool_index(known) + 1)
                    names[root] = known
        return names, cursor

    def mapping(self, side: int, names: Mapping[tuple[Any, g.Dim], g.Dim]) -> dict[g.Dim, g.Dim]:
        """The renaming of one side's unknowns (only those whose name changes)."""
        e = self.a if side == 0 else self.b
        result: dict[g.Dim, g.Dim] = {}
        for v in e.variables.values():
            for d in v.shape:
                if isinstance(d, str) and d not in e._fixed and d not in result:
                    root = self.find(self.key(side, d))
                    # Unnamed here: a known value, or (keeping a's names) a's name for it.
                    new = names.get(root) or self.value[root] or self.label[root]
                    if new != d:
                        result[d] = new
        return result

    def typed(self, ka: str, kb: str) -> str:
        """The form of ``a op b``, unifying the dimensions the operation ties; a clear error if
        the operands do not fit."""
        a, b, op = self.a, self.b, self.op
        sa, sb = a.node.shape, b.node.shape
        spelled = _SPELLING[op]
        if op in _ENTRYWISE:
            if ka == "s" or kb == "s":
                return kb if ka == "s" else ka
            if {ka, kb} in ({"m", "c"}, {"m", "r"}):
                # Implicit expansion, as the parser: a column along the matrix's columns, a row
                # along its rows (W @ X + b).
                vector = kb if ka == "m" else ka
                axis = 0 if vector == "c" else 1
                da, db = (sa[axis], sb[0]) if ka == "m" else (sa[0], sb[axis])
                if not self.unify(da, db):
                    raise ShapeError(
                        f"shape mismatch in {_quote(a)} {spelled} {_quote(b)}: {_quote(a)} is {_describe(a)} but "
                        f"{_quote(b)} is {_describe(b)}; a column vector is repeated along a matrix's columns and "
                        f"needs its number of rows, a row vector along its rows and needs its number of columns"
                    )
                return "m"
            if ka != kb:
                verb = {"+": "add", "-": "subtract", ">": "compare", "<": "compare"}.get(op, f"apply '{spelled}' to")
                hint = "; transpose one of them" if {ka, kb} == {"c", "r"} else ""
                raise ShapeError(
                    f"shape mismatch: cannot {verb} {_quote(a)} ({_describe(a)}) and {_quote(b)} ({_describe(b)}){hint}"
                )
            for da, db in zip(sa, sb, strict=True):
                if not self.unify(da, db):
                    raise ShapeError(
                        f"shape mismatch in {_quote(a)} {spelled} {_quote(b)}: {_quote(a)} is {_describe(a)} but "
                        f"{_quote(b)} is {_describe(b)}; they have different shapes"
                    )
            return ka
        # The matrix product: which axes meet, and the form of the result (the parser's table).
        if ka == "s" or kb == "s":
            return kb if ka == "s" else ka
        table = {
            ("c", "r"): (None, "m"),
            ("r", "c"): ((0, 0), "s"),
            ("m", "c"): ((1, 0), "c"),
            ("r", "m"): ((0, 0), "r"),
            ("m", "m"): ((1, 0), "m"),
        }
        if (ka, kb) not in table:
            x, y = _quote(a), _quote(b)
            hint = ""
            if ka == kb == "c":
                hint = f"; did you mean {x}.T @ {y} (inner product), {x} @ {y}.T (outer) or {x} * {y} (element-wise)?"
            elif ka == kb == "r":
                hint = "; transpose one of them"
            raise ShapeError(f"shape mismatch: cannot multiply {x} ({_describe(a)}) by {y} ({_describe(b)}){hint}")
        inner, form = table[(ka, kb)]
        if inner is not None and not self.unify(sa[inner[0]], sb[inner[1]]):
            x, y = _quote(a), _quote(b)
            raise ShapeError(
                f"shape mismatch in {x} @ {y}: {x} is {_describe(a)} but {y} is {_describe(b)}; "
                f"{x} has {sa[inner[0]]} columns and {y} has {sb[inner[1]]} rows"
            )
        return form

    def node(self, na: g.Node, nb: g.Node, ka: str, kb: str, terms: tuple[g.Node, ...] | None) -> g.Node:
        a, b, op = self.a, self.b, self.op
        if op == "./" and g.is_zero(nb):
            raise MatrixCalculusError(f"division by zero: {_quote(b)} is 0 in {_quote(a)} / {_quote(b)}")
        if op == ".^" and g.is_zero(na) and isinstance(nb, g.Const) and nb.value < 0:
            raise MatrixCalculusError(f"division by zero: {_quote(a)} ** {_quote(b)} is 0 to a negative power")
        if op in ("+", "-") and kb != "s" and terms is not None:
            # The parser repeats each term of a scalar sum over the shape, not the sum as a whole.
            parts = [broadcast(term, nb.shape) for term in terms]
            node = g.add([*parts, nb if op == "+" else g.scale(-1, nb)])
        else:
            node = binary(op, na, nb, (ka,), (kb,))
        problem = constant_problem(node)
        if problem is not None:
            raise MatrixCalculusError(f"the constant factor of {_quote(a)} {_SPELLING[op]} {_quote(b)} {problem}")
        return node

    def via_text(self) -> Expression:
        """Print both operands and parse the formula: for graphs the builders cannot rename
        (node kinds they do not know, dimensions on no variable)."""
        a, b = self.a, self.b
        types = a._declared()
        for name, decl in b._declared().items():
            if name in types and types[name].kind != decl.kind:
                raise InferenceError(
                    f"{name} is a {_KIND_WORDS[types[name].kind]} on one side and a {_KIND_WORDS[decl.kind]} "
                    f"on the other"
                )
            types.setdefault(name, decl)
        return _from_text(f"({a._text()}){self.op}({b._text()})", types)


def _renamed(var: g.Var, mapping: Mapping[g.Dim, g.Dim]) -> g.Var:
    if not mapping:
        return var
    return g.var(var.name, var.kind, tuple(mapping.get(d, d) for d in var.shape))


def _rename(root: g.Node, mapping: Mapping[g.Dim, g.Dim]) -> g.Node:
    """``root`` with its dimensions renamed: leaves rebuilt, the nodes above re-interned."""
    if not mapping:
        return root
    new: dict[g.Node, g.Node] = {}
    for node in g.postorder(root):
        kind = type(node)
        renamed: g.Node
        if isinstance(node, g.Var):
            renamed = _renamed(node, mapping)
        elif kind is g.Delta:
            renamed = g.delta(mapping.get(node.params[0], node.params[0]))
        elif kind is g.Ones:
            renamed = g.ones(tuple(mapping.get(d, d) for d in node.shape))
        elif kind is g.Zeros:
            renamed = g.zeros(tuple(mapping.get(d, d) for d in node.shape))
        elif not node.args:
            renamed = node
        else:
            args = tuple(new[arg] for arg in node.args)
            renamed = node if args == node.args else g._intern(kind, args, node.params)
        new[node] = renamed
    return new[root]


def _survey(node: g.Node, variables: Mapping[str, Variable], fixed: frozenset[str]) -> tuple[_Facts, frozenset[str]]:
    """The facts of a graph, and its unnamed dimensions that are on none of its variables."""
    order = g.postorder(node)
    on_vars = {d for v in variables.values() for d in v.shape}
    known = (*_LEAVES, *_INNER)
    plain = True
    extra: set[str] = set()
    for n in order:
        if type(n) not in known or not all(isinstance(d, int | str) for d in n.shape):
            plain = False
        elif isinstance(n, g.Delta | g.Ones | g.Zeros):
            extra.update(d for d in n.shape if isinstance(d, str) and d not in fixed and d not in on_vars)
    top = max((_pool_index(d) for d in on_vars if isinstance(d, str) and d not in fixed), default=-1)
    return _Facts(plain, len(order), top + 1, True), frozenset(extra)


def _describe(e: Expression) -> str:
    """``a column vector of length 4``, ``a 3x? matrix``: the sizes the user fixed, ``?`` for others."""

    def size(d: g.Dim) -> str | None:
        return str(d) if isinstance(d, int) or d in e._fixed else None

    form, shape = e._form, e.node.shape
    if form == "s":
        return "a scalar"
    if form in ("c", "r"):
        word = "column" if form == "c" else "row"
        length = size(shape[0])
        return f"a {word} vector" + ("" if length is None else f" of length {length}")
    rows, cols = size(shape[0]), size(shape[1])
    if rows is None and cols is None:
        return "a matrix"
    return f"a {rows or '?'}x{cols or '?'} matrix"


def _quote(e: Expression, width: int = 40) -> str:
    """The operand as the user would write it, its two ends when it is long (for messages)."""
    text = e._source if e._source is not None else to_text(e.node, result=e._result) if e.node.rank <= 2 else "tensor"
    text = " ".join(text.split())
    if e._form == "r" and e._source is None:
        text = f"{text}'" if text.isidentifier() else f"({text})'"  # the graph prints a vector as a column
    return text if len(text) <= width else f"{text[:20]} ... {text[-15:]}"


def _lift(value: Any) -> Expression:
    """An expression for ``value``: itself, or a number made exact (``0.1`` is 1/10, as parsed)."""
    if isinstance(value, Expression):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise MatrixCalculusError(f"cannot combine an expression with {type(value).__name__}")
    if isinstance(value, Rational):
        number = Fraction(int(value.numerator), int(value.denominator))
    else:
        approx = float(value)
        if approx != approx or approx in (float("inf"), float("-inf")):
            raise MatrixCalculusError(f"cannot combine an expression with {approx}: only finite numbers")
        number = Fraction(repr(approx))
    node = g.const(number)
    problem = constant_problem(node)
    if problem is not None:
        raise MatrixCalculusError(f"the number {value} {problem}")
    return Expression._built(node, {}, {}, frozenset(), "s", _Facts(True, 1, 0, True))


def _named_dimensions(ast: Ast, numbers: bool = False) -> set[Any]:
    """The dimension names written in ``eye(k)``, ``ones(m, k)``, ``zeros(k)`` (``numbers``:
    the whole numbers written there as well)."""
    names: set[Any] = set()
    stack = [ast]
    while stack:
        node = stack.pop()
        if node.op == "call" and node.value in DIMENSION_FUNCTIONS:
            names.update(str(arg.value) for arg in node.args if arg.op == "name")
            if numbers:
                names.update(int(arg.number) for arg in node.args if arg.op == "num")
        else:
            stack.extend(node.args)
    return names


def _spine(ast: Ast, node: g.Node) -> str:
    """``"flat"`` when ``ast`` is a sum whose terms (along its left spine) are its node's terms."""
    if not (ast.op == "binary" and ast.value in ("+", "-")):
        return "none"
    terms = 1
    while ast.op == "binary" and ast.value in ("+", "-"):
        terms += 1
        ast = ast.args[0]
    return "flat" if isinstance(node, g.Add) and len(node.args) == terms else "nested"


def _divided_early(subtrees: Iterable[tuple[Ast, g.Node]]) -> frozenset[g.Node]:
    """The nodes of products typed with a number dividing their leading factor, such as
    ``lambda/2*w'*w`` (so that printing keeps the divisor where it was typed)."""
    found = set()
    for ast, node in subtrees:
        if not (ast.op == "binary" and ast.value == "*" and isinstance(node, g.Contract)):
            continue
        lead = ast.args[0]
        while lead.op == "binary" and lead.value == "*":
            lead = lead.args[0]
        if lead.op == "binary" and lead.value == "/" and lead.args[1].op == "num":
            found.add(node)
    return frozenset(found)


def _from_text(text: str, types: Mapping[str, Any]) -> Expression:
    limit = current_limits().max_length
    if isinstance(text, str) and len(text) > limit:
        # The column points at the first character past the limit.
        raise limit_error(
            ParseError, "max_length", f"the expression is {len(text):,} characters long", text=text, column=limit + 1
        )
    ast = parse_syntax(text)
    # The typed subtrees are wanted only to find a divisor typed after a leading scalar.
    subtrees: dict[int, tuple[Ast, g.Node]] | None = {} if "/" in text else None
    node, variables, form, notices = infer_with_notices(ast, text, types, subtrees=subtrees)
    declared = {k: declare(k, v) for k, v in types.items()}
    fixed = {d for k, decl in declared.items() if k in variables for d in decl.shape or () if isinstance(d, str)}
    written: set[Any] = set()
    if any(word in text for word in DIMENSION_FUNCTIONS):
        written = _named_dimensions(ast, numbers=True)
        fixed |= {d for d in written if isinstance(d, str)}
    expr = Expression(node, variables, text, declared, fixed=frozenset(fixed))
    # Sizes only the text gives (ones(k), ones(3)) stay written when it is printed again.
    expr._written = frozenset(written) - {d for decl in declared.values() for d in decl.shape or ()}
    facts, extra = _survey(node, expr.variables, expr._fixed)
    check_count(facts.size, "the expression", ParseError)
    # Dimensions on no variable (vector(c) makes some) would need the parser's naming of the rest.
    expr._facts = _Facts(facts.plain and not extra, facts.size, facts.cursor, True)
    expr._form = form
    expr._spine = _spine(ast, node)
    expr._notices = notices
    if subtrees:
        expr._early = _divided_early(subtrees.values())
    if notices:
        warnings.warn("; ".join(expr.notices), MatrixCalculusNotice, stacklevel=3)
    return expr


def parse(text: str, types: Mapping[str, Any] | None = None) -> Expression:
    """Parse an expression in the input language.

    >>> e = parse("x'*A*x", types={"A": "symmetric matrix"})
    >>> e.shape
    ()
    """
    return _from_text(text, types or {})


def _variable(name: str, kind: str, shape: tuple | None) -> Expression:
    if not isinstance(name, str) or not name.isidentifier():
        raise MatrixCalculusError(f"a variable name is an identifier such as x or W1, not {name!r}")
    decl = declare(name, kind if shape is None else shape)
    if shape is not None and kind == "symmetric":
        decl = Declared("symmetric", tuple(shape))
    return _from_text(name, {name: decl})


def scalar(name: str) -> Expression:
    """A scalar variable."""
    return _variable(name, "scalar", None)


def vector(name: str, n: int | str | None = None) -> Expression:
    """A (column) vector variable; ``n`` optionally fixes its length (a number or a dimension name)."""
    return _variable(name, "vector", None if n is None else (n,))


def matrix(name: str, m: int | str | None = None, n: int | str | None = None, *, symmetric: bool = False) -> Expression:
    """A matrix variable (``symmetric=True`` for a symmetric one); ``m, n`` optionally fix its shape."""
    kind = "symmetric" if symmetric else "matrix"
    if (m is None) != (n is None):
        raise MatrixCalculusError("give both dimensions of a matrix, or neither")
    return _variable(name, kind, None if m is None else (m, n))
