"""The function registry: one record per named function, the single source of truth every stage reads.

A :class:`FunctionRecord` holds everything about one function: its name and the other names people
use for it, what each argument must be and what the result is (inference reads this; the shape rule
follows from it), its evaluation against an array namespace, its derivative, its LaTeX and text
templates, and how compiled code spells it (a template per dialect, or a ``definition`` as a
composition of other functions that lowering expands for every dialect). Parsing, inference,
differentiation, simplification, printing, evaluation and code generation look a function up here
and never branch on its name.

The records themselves are in :mod:`matrixcalculus.ir.functions`. For example::

    >>> from matrixcalculus.ir import functions  # registers the records
    >>> lookup("log").derivative is not None
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matrixcalculus.errors import ShapeError
from matrixcalculus.ir.graph import Function, Node, Shape, dim_product, dim_size, postorder, shape_text, var

# What an argument may be: the typing rule of inference and the shape rule of the graph.
ARGUMENT_KINDS: dict[str, str] = {
    "any": "a scalar, vector or matrix",
    "scalar": "a scalar",
    "vector": "a vector",
    "matrix": "a matrix",
    "square": "a square matrix",
}
# What the result is: the first argument's type ("same"), a scalar, the arguments' "product":
# all of one kind (matrices, or vectors of one orientation), the result of that kind with each
# dimension the product of theirs (kron of m x n and p x q is (m*p) x (n*q)), or their common
# shape under "broadcast": the arguments that are not scalars all of one type, the scalars
# repeated over it (max(0, z) of a vector z is a vector).
RESULT_KINDS = ("same", "scalar", "product", "broadcast")

Interval = tuple[float, float]


@dataclass(frozen=True)
class FunctionRecord:
    """Everything about one named function.

    ``arguments``: one entry of :data:`ARGUMENT_KINDS` per tensor argument. ``result``: one of
    :data:`RESULT_KINDS`, unless ``shape_rule`` (argument shapes -> result shape) says more.
    ``elementwise``: applied to each entry (one argument, result of its shape).
    ``evaluate(xp, *values)``: the value against the array namespace ``xp``; a record with a
    ``definition`` may leave it out (the definition is evaluated).
    ``derivative``: for an element-wise function ``x -> f'(x)`` as an expression; for any other
    ``(args, y, g, batch) -> cotangents``, the vector-Jacobian product: for a cotangent ``g`` of shape
    ``batch_shape + y.shape`` of the value ``y``, one cotangent per argument (None where none).
    ``latex``, ``text``: templates in which ``{0}``, ``{1}``, ... are the arguments as printed and
    ``{p0}``, ... the argument in parentheses unless it is atomic; the text template defaults to
    ``name({0}, ...)``, the LaTeX one to ``\\operatorname{name}\\left({0}\\right)``.
    ``spellings``: dialect name -> a code template (``"xp.exp({0})"``); ``"default"`` serves every
    dialect not listed. ``helpers``: dialect name (or ``"default"``) -> helper name -> the source of
    a module-level function a spelling calls. ``definition``: ``(*args) -> node``, the function as a
    composition of other functions, which lowering substitutes before evaluation and code generation
    (then no spelling is needed).
    ``aliases``: names people use elsewhere (NumPy, MATLAB), suggested when one is typed.
    ``dim``: takes an optional trailing axis of a matrix argument, MATLAB's numbering (1: down the
    columns, 2: along the rows): ``softmax(Z, 2)``. A "scalar" result then reduces that axis only
    (``logsumexp(Z, 1)`` has one entry per column), a "same" result keeps the shape; ``evaluate``
    and ``definition`` take ``dim=`` and the derivative reads the node's ``dim``.
    ``axis_spellings``: as ``spellings``, for a call with an axis; ``{axis}`` is the axis as the
    array libraries count (0: down the columns).
    ``domain``: the interval of real arguments where an element-wise function is defined and
    smooth (``kinks`` lists points where it is not differentiable); for the others a word:
    "any", "square", "invertible", "positive definite". Tests draw their inputs from it.
    ``undoes``: the function this one inverts on its left (``log(exp(x)) = x``).
    ``rewrite``: ``(*args) -> node or None``, an equal node of other functions for particular
    arguments, which building the function returns instead (``max(0, z)`` is ``relu(z)``), so
    that the two spellings are one node.
    ``keeps_symmetry``: the value of a symmetric matrix is symmetric.
    ``nonfinite``: the message when the value is not finite although the arguments are (a text,
    or ``values -> text``).
    """

    name: str
    arguments: tuple[str, ...]
    result: str = "same"
    elementwise: bool = False
    evaluate: Callable[..., Any] | None = None
    derivative: Callable[..., Any] | None = None
    latex: str = ""
    text: str = ""
    spellings: Mapping[str, str] = field(default_factory=dict)
    helpers: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    definition: Callable[..., Node] | None = None
    aliases: tuple[str, ...] = ()
    dim: bool = False
    domain: Interval | str = (-math.inf, math.inf)
    kinks: tuple[float, ...] = ()
    undoes: str | None = None
    rewrite: Callable[..., Node | None] | None = None
    keeps_symmetry: bool | None = None
    nonfinite: str | Callable[[Sequence[Any]], str] = ""
    shape_rule: Callable[[tuple[Shape, ...]], Shape] | None = None
    axis_spellings: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in self.arguments:
            if kind not in ARGUMENT_KINDS:
                raise ValueError(f"{self.name}: argument kind {kind!r} is none of {', '.join(ARGUMENT_KINDS)}")
        if not self.arguments:
            raise ValueError(f"{self.name}: a function takes at least one argument")
        if self.result not in RESULT_KINDS:
            raise ValueError(f"{self.name}: result {self.result!r} is none of {', '.join(RESULT_KINDS)}")
        if self.elementwise and (self.arguments != ("any",) or self.result != "same"):
            raise ValueError(f"{self.name}: an element-wise function takes one tensor and keeps its shape")

    @property
    def arity(self) -> int:
        """The number of tensor arguments."""
        return len(self.arguments)

    @property
    def product_arguments(self) -> str:
        """What the arguments of a "product" function must be, in words."""
        count = "two" if self.arity == 2 else f"{self.arity}"
        return f"{count} matrices or vectors"

    @property
    def symmetric_preserving(self) -> bool:
        return self.elementwise if self.keeps_symmetry is None else self.keeps_symmetry

    def shape(self, shapes: tuple[Shape, ...], dim: int | None = None) -> Shape:
        """The result's shape for arguments of ``shapes`` (and the axis ``dim``, for a function that
        takes one); a :class:`ShapeError` names what is wrong."""
        if dim is not None:
            if not self.dim:
                raise ShapeError(f"{self.name} takes no axis argument")
            if dim not in (1, 2) or len(shapes[0]) != 2:
                raise ShapeError(f"{self.name} along an axis needs a matrix and the axis 1 or 2")
            if self.result == "scalar":
                return shapes[0][2 - dim : 3 - dim]  # axis 1 reduced: the columns remain
            return shapes[0]
        for shape, kind in zip(shapes, self.arguments, strict=True):
            ok = {
                # A function of entries (and max/min) applies to a tensor of any order.
                "any": len(shape) <= 2 or self.elementwise or self.result == "broadcast",
                "scalar": len(shape) == 0,
                "vector": len(shape) == 1,
                "matrix": len(shape) == 2,
                "square": len(shape) == 2 and shape[0] == shape[1],
            }[kind]
            if not ok:
                raise ShapeError(f"{self.name} needs {ARGUMENT_KINDS[kind]}, not {shape_text(shape)}")
        if self.shape_rule is not None:
            return self.shape_rule(shapes)
        if self.result == "product":
            ranks = {len(shape) for shape in shapes}
            if len(ranks) != 1 or not ranks <= {1, 2}:
                given = " and ".join(shape_text(shape) for shape in shapes)
                raise ShapeError(f"{self.name} needs {self.product_arguments}, not {given}")
            return tuple(dim_product(*axis) for axis in zip(*shapes, strict=True))
        if self.result == "broadcast":
            tensors = {shape for shape in shapes if shape}
            if len(tensors) > 1:
                given = " and ".join(shape_text(shape) for shape in shapes)
                raise ShapeError(f"{self.name} needs arguments of one shape (or scalars), not {given}")
            return tensors.pop() if tensors else ()
        return shapes[0] if self.result == "same" else ()

    def latex_template(self, with_dim: bool = False) -> str:
        """The LaTeX template; ``with_dim``: the axis is one more argument, ``{arity}``, a subscript."""
        if self.latex and not with_dim:
            return self.latex
        args = ", ".join(f"{{{k}}}" for k in range(self.arity))
        sub = f"_{{{{{self.arity}}}}}" if with_dim else ""
        return rf"\operatorname{{{self.name}}}{sub}\left({args}\right)"

    def text_template(self, with_dim: bool = False) -> str:
        """The text template, ``name({0}, ...)``; ``with_dim``: the axis is the last argument."""
        if self.text:
            return self.text
        return f"{self.name}({', '.join(f'{{{k}}}' for k in range(self.arity + with_dim))})"

    def spelling(self, dialect: str, axis: bool = False) -> str | None:
        """The code template for ``dialect``, or None when the record has none (a definition);
        ``axis``: the template of a call with an axis (its ``{axis}`` slot)."""
        spellings = self.axis_spellings if axis else self.spellings
        return spellings.get(dialect, spellings.get("default"))

    def repeated_arguments(self, dialect: str) -> frozenset[int]:
        """The arguments the spelling for ``dialect`` reads more than once (code binds them to a name
        first, so each is computed once): ``{0}`` for ``xp.sqrt(xp.sum({0} * {0}))``."""
        slots = re.findall(r"\{p?(\d+)\}", self.spelling(dialect) or "")
        return frozenset(int(k) for k in slots if slots.count(k) > 1)

    def helper_sources(self, dialect: str) -> Mapping[str, str]:
        return self.helpers.get(dialect, self.helpers.get("default", {}))

    def value(self, xp: Any, *values: Any, **dim: int) -> Any:
        """The function's value for argument values ``values`` (and ``dim=k`` for a function that
        takes an axis)."""
        if self.evaluate is not None:
            return self.evaluate(xp, *values, **dim)
        if self.definition is None:
            raise NotImplementedError(f"{self.name} has neither an evaluation nor a definition")
        # The definition applied to placeholder variables of the values' shapes, evaluated.
        leaves = [
            var(f"_{k}", ("scalar", "vector", "matrix")[len(v.shape)], tuple(v.shape)) for k, v in enumerate(values)
        ]
        root = self.definition(*leaves, **dim)
        cache: dict[Node, Any] = dict(zip(leaves, values, strict=True))
        for node in postorder(root):
            if node not in cache:
                cache[node] = node.evaluate(xp, [cache[a] for a in node.args], lambda d: dim_size(d, _no_named_size))
        return cache[root]


def _no_named_size(name: str) -> int:
    # A definition is evaluated on placeholders shaped like the values: every dimension is a number.
    raise ValueError(f"a definition evaluated on values has no named dimension {name!r}")


FUNCTIONS: dict[str, FunctionRecord] = {}
Function.rules = FUNCTIONS


def register(record: FunctionRecord) -> FunctionRecord:
    """Add ``record``; its name must be new."""
    if record.name in FUNCTIONS:
        raise ValueError(f"a function named {record.name!r} is already registered")
    FUNCTIONS[record.name] = record
    return record


def lookup(name: str) -> FunctionRecord:
    """The record named ``name`` (a ``KeyError`` for an unknown name)."""
    return FUNCTIONS[name]


def fill(template: str, args: Sequence[str], bare: Sequence[str] | None = None) -> str:
    """``template`` with ``{k}`` replaced by ``args[k]`` and ``{pk}`` by ``bare[k]`` (templates hold
    LaTeX and code braces, so this is plain replacement, not ``str.format``)."""

    def one(match: re.Match[str]) -> str:
        k = int(match.group(2))
        if match.group(1) and bare is not None and k < len(bare):
            return bare[k]
        return args[k] if k < len(args) else match.group(0)

    # One pass: an argument's own text (LaTeX x_{1}) is never read as a slot.
    return re.sub(r"\{(p?)(\d+)\}", one, template)


def helper_names() -> frozenset[str]:
    """Every helper function name a spelling of any dialect may define in generated code."""
    return frozenset(name for r in FUNCTIONS.values() for sources in r.helpers.values() for name in sources)
