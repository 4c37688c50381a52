"""The public expression object, :func:`parse`, and the Python builders.

An :class:`Expression` is a typed graph node plus its variables. The builders compose
expressions as text in the input language and parse it, so an expression built from Python
is exactly the graph the parser makes from the same formula::

    >>> x, A = vector("x"), matrix("A")
    >>> (x.T @ A @ x).node is parse("x'*A*x").node
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from numbers import Real
from typing import Any

from matrixcalculus.errors import EvaluationError, InferenceError, MatrixCalculusError, ParseError
from matrixcalculus.frontend.infer import Declared, declare, infer
from matrixcalculus.frontend.syntax import parse_syntax
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_nodes, current_limits, limit_error
from matrixcalculus.numeric.evaluate import bind
from matrixcalculus.numeric.evaluate import evaluate as _evaluate
from matrixcalculus.render.printing import TEXT, index_notation, to_latex, to_text


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
        word = "symmetric matrix" if self.kind == "symmetric" else "matrix"
        return f"{self.name}: {word} ({self.shape[0]} x {self.shape[1]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Variable) and other.node is self.node

    def __hash__(self) -> int:
        return hash(self.node)


class Expression:
    """A typed expression: ``parse("x'*A*x")`` or built from :func:`vector`, :func:`matrix`, ...

    ``str(e)`` prints it in the input syntax (parsing that gives the same graph), ``e.latex()``
    in LaTeX, ``e.evaluate({...})`` computes it with NumPy.
    """

    __slots__ = ("_context", "_result", "_source", "_types", "node", "variables")

    def __init__(
        self,
        node: g.Node,
        variables: Mapping[str, g.Var],
        source: str | None = None,
        types: Mapping[str, Declared] | None = None,
        *,
        result: bool = False,
    ):
        self.node = node
        self.variables = {name: Variable(v) for name, v in variables.items()}
        self._source = source
        self._types = dict(types or {})
        # A derived expression prints its products in whichever order reads best.
        self._result = result
        self._context = dict(self.variables)

    # ------------------------------------------------------------------ views

    def node_variables(self) -> dict[str, g.Var]:
        """The variables as graph nodes, by name."""
        return {name: v.node for name, v in self.variables.items()}

    @property
    def shape(self) -> g.Shape:
        """The shape: ``()`` for a scalar, ``(n,)`` for a vector, ``(m, n)`` for a matrix."""
        return self.node.shape

    def __str__(self) -> str:
        # A large derived expression names its shared parts in a `where` clause (linear text).
        return to_text(self.node, result=self._result, scalars=self._declared_scalars(), share=True)

    def _declared_scalars(self) -> frozenset[str]:
        return frozenset(n for n, d in self._types.items() if d.kind == "scalar")

    def __repr__(self) -> str:
        return f"Expression({str(self)!r})"

    def latex(self) -> str:
        """The expression in LaTeX: ``x'*A*x`` -> ``x^\\top A x``."""
        return to_latex(self.node, result=self._result, scalars=self._declared_scalars(), share=True)

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

    def __hash__(self) -> int:
        return hash(self.node)

    # ------------------------------------------------------------------ building

    def _text(self) -> str:
        if self._source is None:
            if self.node.rank > 2:
                raise MatrixCalculusError("a tensor of order three or more cannot be combined in matrix notation")
            # The full text (never `where` names): it is parsed again to build on it.
            self._source = to_text(self.node, result=self._result, scalars=self._declared_scalars())
        return self._source

    def _declared(self) -> dict[str, Declared]:
        types = dict(self._types)
        for name, v in self.variables.items():
            if name not in types:
                shape = v.shape if all(isinstance(d, int) for d in v.shape) else None
                types[name] = Declared(v.kind, shape)
        return types

    def _combine(self, op: str, other: Any, swap: bool = False) -> Expression:
        right = _lift(other)
        a, b = (right, self) if swap else (self, right)
        types = a._declared()
        for name, decl in b._declared().items():
            if name in types and types[name].kind != decl.kind:
                raise InferenceError(f"{name} is a {types[name].kind} on one side and a {decl.kind} on the other")
            types.setdefault(name, decl)
        return _from_text(f"({a._text()}){op}({b._text()})", types)

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
        return _from_text(f"-({self._text()})", self._declared())

    def __pos__(self) -> Expression:
        return self

    def __gt__(self, other: Any) -> Expression:
        return self._combine(">", other)

    def __lt__(self, other: Any) -> Expression:
        return self._combine("<", other)

    @property
    def T(self) -> Expression:  # noqa: N802 - NumPy's name for the transpose
        """The transpose, ``'`` in the input language."""
        return _from_text(f"({self._text()})'", self._declared())


def _lift(value: Any) -> Expression:
    if isinstance(value, Expression):
        return value
    if isinstance(value, bool) or not isinstance(value, Real | Fraction):
        raise MatrixCalculusError(f"cannot combine an expression with {type(value).__name__}")
    number = Fraction(value) if not isinstance(value, float) else Fraction(repr(value))
    # As the printer writes constants: 1e-320 as such, not a 321-digit denominator the parser refuses.
    text = f"({TEXT.number(number).text})"
    return _from_text(text, {})


def _from_text(text: str, types: Mapping[str, Any]) -> Expression:
    limit = current_limits().max_length
    if isinstance(text, str) and len(text) > limit:
        # The column points at the first character past the limit.
        raise limit_error(
            ParseError, "max_length", f"the expression is {len(text):,} characters long", text=text, column=limit + 1
        )
    ast = parse_syntax(text)
    node, variables = infer(ast, text, types)
    check_nodes([node], "the expression", ParseError)
    return Expression(node, variables, text, {k: declare(k, v) for k, v in types.items()})


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
