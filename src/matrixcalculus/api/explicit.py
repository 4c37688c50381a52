"""The explicit small case and flattening, as the tutorials teach them.

:func:`explicit` writes a derivative entry by entry at small concrete sizes, in the components of
its variables (``z1``, ``A[1,2]``): ``derivative("x .* z", "x").explicit({"n": 3})`` is
``[z1, 0, 0; 0, z2, 0; 0, 0, z3]``. :func:`flattened` is the Jacobian of ``vec(F)`` by ``vec(X)``,
in Kronecker form where one exists (``kron(B', A)`` for ``A*X*B``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from matrixcalculus.api.calculus import LAYOUTS, layout_axes, to_shape_layout
from matrixcalculus.api.expression import Expression, Variable
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import current_limits, limit_error
from matrixcalculus.numeric.evaluate import bind
from matrixcalculus.numeric.evaluate import evaluate as _evaluate
from matrixcalculus.render.explicit import (
    Component,
    Entries,
    entry_latex,
    entry_text,
    explicit_entries,
    explicit_latex,
    explicit_text,
    is_atomic,
)
from matrixcalculus.transform.flattening import ORDERS, vec_jacobian

DEFAULT_SIZE = 3


def _dimension_names(expr: Expression) -> list[str]:
    """The named dimensions of an expression and of its function's variables, in order."""
    names: dict[str, None] = {}
    for v in expr._context.values():
        for d in v.shape:
            names.update(dict.fromkeys(g.dim_names(d)))
    for node in g.postorder(expr.node):
        for d in node.shape:
            names.update(dict.fromkeys(g.dim_names(d)))
        if isinstance(node, g.DimSize):
            names.update(dict.fromkeys(g.dim_names(node.dim)))
    return list(names)


def _whole(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise MatrixCalculusError(f"{what} is a whole number, not {value!r}")
    number = int(value)
    if number < 1:
        raise MatrixCalculusError(f"{what} is at least 1, not {number}")
    limit = current_limits().max_explicit_size
    if number > limit:
        raise limit_error(MatrixCalculusError, "max_explicit_size", f"{what} is {number}")
    return number


def resolve_sizes(expr: Expression, sizes: Mapping[str, int] | int | None) -> dict[str, int]:
    """The size of every named dimension: ``sizes`` where it names one, else one number for all
    (default 3). A name that is no dimension of the expression is an error naming the dimensions."""
    names = _dimension_names(expr)
    if sizes is None or (isinstance(sizes, int | np.integer) and not isinstance(sizes, bool)):
        default = _whole(DEFAULT_SIZE if sizes is None else sizes, "the size")
        return dict.fromkeys(names, default)
    if not isinstance(sizes, Mapping):
        raise MatrixCalculusError(
            f"sizes is a mapping from dimension names to whole numbers ({{'n': 3}}) or one number, "
            f"not {type(sizes).__name__}"
        )
    unknown = [k for k in sizes if k not in names]
    if unknown:
        have = ", ".join(names) if names else "none (every size is a number)"
        which = ", ".join(map(str, unknown))
        raise MatrixCalculusError(f"{which} is no dimension of the expression; its dimensions: {have}")
    return {name: _whole(sizes.get(name, DEFAULT_SIZE), f"the size of {name}") for name in names}


class Explicit:
    """A derivative (or any expression) written entry by entry at concrete sizes.

    ``entries``: a NumPy object array of scalar :class:`Expression` in the components of the
    variables (``z1``, ``A[1,2]``), in the expression's layout; ``shape``; ``sizes``: the size of
    each dimension; ``components``: how each component is read off the variables.

    >>> from matrixcalculus.api.calculus import derivative
    >>> print(derivative("x .* z", "x").explicit({"n": 3}))
    [z1,  0,  0;
      0, z2,  0;
      0,  0, z3]
    """

    def __init__(
        self,
        expression: Expression,
        nodes: Entries,
        components: dict[str, Component],
        sizes: dict[str, int],
    ):
        self.expression = expression
        self.nodes = nodes
        self.components = components
        self.sizes = sizes
        self.entries: Entries = np.empty(nodes.shape, dtype=object)
        for index in np.ndindex(*nodes.shape):
            node = nodes[index]
            used = {n.name: n for n in g.postorder(node) if isinstance(n, g.Var)}
            self.entries[index] = Expression(node, used, result=True)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape at these sizes, e.g. ``(3, 3)``."""
        return tuple(self.nodes.shape)

    def _row(self) -> bool:
        return self.nodes.ndim == 1 and self.expression._row() is True

    def text(self) -> str:
        """The entries in the input syntax: a literal ``[a, b; c, d]`` (a row as ``[a, b]``), a
        3-D tensor as its slices ``[i, :, :] =``, a 4-D tensor as its blocks ``[i, j, :, :] =``."""
        return explicit_text(self.nodes, entry_text, self._row())

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"Explicit({' x '.join(map(str, self.shape)) or 'scalar'}{'; ' + sizes if sizes else ''})"

    def latex(self) -> str:
        """A ``bmatrix``; a 3-D tensor as the column of its slices (as the tutorials draw
        ``d(A*x)/dA``), a 4-D tensor as a block matrix."""
        return explicit_latex(self.nodes, lambda node: entry_latex(node, self.components), self._row())

    def component_values(self, values: Mapping[str, Any]) -> dict[str, float]:
        """The value of every component, read off the variables' ``values``."""
        expr = self.expression
        if not isinstance(values, Mapping):
            raise EvaluationError(f"values are a mapping from variable names to arrays, not {type(values).__name__}")
        context = {n: v.node for n, v in expr._context.items() if n in values}
        _, bound = bind(context, values, self.sizes)
        for name, size in self.sizes.items():
            if bound.get(name, size) != size:
                raise EvaluationError(
                    f"the values give dimension {name} the size {bound[name]}, but this explicit form has "
                    f"{name} = {size}"
                )
        cache: dict[g.Node, np.ndarray] = {}
        result: dict[str, float] = {}
        for name, component in self.components.items():
            source = component.source
            if source not in cache:
                cache[source] = np.asarray(_evaluate(source, values, self.sizes))
            result[name] = float(cache[source][component.index])
        return result

    def evaluate(self, values: Mapping[str, Any]) -> np.ndarray:
        """The entries' values for the original variables' ``values`` (arrays): equal to the
        expression's own ``evaluate`` on the same values."""
        components = self.component_values(values)
        out = np.empty(self.shape, dtype=np.float64)
        for index in np.ndindex(*self.shape):
            out[index] = _evaluate(self.nodes[index], components, self.sizes)
        return out

    def picture(self, format: str = "svg", *, title: str | None = None) -> str | bytes:
        """The structure of the entries as a picture, ``"svg"`` text or ``"png"`` bytes: zero
        entries blank, nonzero constants light, formulas dark (small ones written in); a 3-D tensor
        as its slices side by side, a 4-D tensor as its blocks; each axis labelled with its index
        and what it counts. Needs matplotlib: ``pip install "matrixcalculus[plot]"``."""
        from matrixcalculus.render.pictures import draw  # matplotlib is optional: imported on use

        return draw(
            self.nodes,
            format,
            title=title if title is not None else self.title(),
            labels=self.axis_labels(),
            show=entry_text,
        )

    def _variables(self) -> list[tuple[str, int]]:
        """The variables a derivative is by, each with its number of axes, one per order (a Hessian
        by x is by x twice); empty when the expression is no derivative."""
        expr = self.expression
        if expr._jacobian is None:
            return []
        f_rank, _, _, names = expr._jacobian
        # vec(X) of a flattened Jacobian is no variable: one axis.
        ranks = [len(expr._context[n].shape) if n in expr._context else 1 for n in names]
        total, wrt_rank = sum(ranks), self.nodes.ndim - f_rank
        if total == 0 and wrt_rank > 0:
            # A stack of scalars [x; y] is one vector variable, an axis per order.
            return [(f"[{'; '.join(names)}]", 1)] * wrt_rank
        if total == 0 or wrt_rank % total:
            return list(zip(names, ranks, strict=True)) if wrt_rank == total else []
        return list(zip(names, ranks, strict=True)) * (wrt_rank // total)

    def title(self) -> str:
        """``∂(x .* z)/∂x at n = 3`` for a derivative (``∂²f/∂x∂x`` for a Hessian); the expression's
        text otherwise."""
        expr = self.expression
        sizes = ", ".join(f"{k} = {v}" for k, v in self.sizes.items())
        at = f" at {sizes}" if sizes else ""
        variables = self._variables()
        if expr._jacobian is not None and variables:
            _, layout, f_text, _ = expr._jacobian
            by = "".join(f"∂{name}" for name, _ in variables)
            order = len(variables)
            d = "∂" + ("²³⁴⁵⁶⁷⁸⁹"[order - 2] if 2 <= order <= 9 else "")
            f_short = _short(f_text, 40)
            head = f"{d}{f_short}/{by}" if is_atomic(f_text) else f"{d}({f_short})/{by}"
            return head + at + ("" if layout == "shape" else f" ({layout} layout)")
        return _short(str(expr), 40) + at

    def axis_labels(self) -> list[str]:
        """What each axis counts, with its index: ``i: row of A*X*B``, ``k: column of X``."""
        expr = self.expression
        rank = self.nodes.ndim
        letters = "ijklpqrs"
        owners: list[str] = []
        variables = self._variables()
        if expr._jacobian is not None and variables:
            f_rank, layout, f_text, _ = expr._jacobian
            roles: list[tuple[str, int, int]] = [(_short(f_text, 20), k, f_rank) for k in range(f_rank)]
            for name, var_rank in variables:
                roles.extend((name, k, var_rank) for k in range(var_rank))
            if len(roles) == rank:
                for axis in layout_axes(f_rank, rank, layout):
                    owner, k, owner_rank = roles[axis]
                    word = "entry" if owner_rank == 1 else ("row" if k == 0 else "column")
                    owners.append(f"{word} of {owner}")
        if len(owners) != rank:
            owners = [f"axis {k + 1}" for k in range(rank)]
        return [f"{letters[k]}: {owners[k]}" for k in range(rank)]

    def _repr_latex_(self) -> str:
        """Jupyter shows the entries as a matrix (a 3-D tensor as its slices, a 4-D as blocks).

        >>> from matrixcalculus.api.calculus import derivative
        >>> print(derivative("x .* z", "x").explicit({"n": 2})._repr_latex_())
        $\\displaystyle \\begin{bmatrix} z_{1} & 0 \\\\ 0 & z_{2} \\end{bmatrix}$
        """
        return f"$\\displaystyle {self.latex()}$"


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def explicit(expr: Expression, sizes: Mapping[str, int] | int | None = None) -> Explicit:
    """``expr`` at concrete sizes, entry by entry (see :class:`Explicit`)."""
    resolved = resolve_sizes(expr, sizes)
    limits = current_limits()

    def size(d: g.Dim) -> int:
        return g.dim_size(d, resolved.__getitem__)

    shape = tuple(size(d) for d in expr.shape)
    count = int(np.prod(shape, dtype=np.int64))
    if count > limits.max_explicit_entries:
        raise limit_error(
            MatrixCalculusError,
            "max_explicit_entries",
            f"the explicit form would have {' x '.join(map(str, shape))} = {count:,} entries",
        )
    for axis, d in enumerate(expr.shape):
        if size(d) > limits.max_explicit_size:
            raise limit_error(MatrixCalculusError, "max_explicit_size", f"axis {axis + 1} has {size(d)} entries")
    variables = [v.node for v in expr._context.values()]
    nodes, components = explicit_entries(expr.node, variables, size)
    return Explicit(expr, nodes, components, resolved)


def flattened(expr: Expression, order: str = "column") -> Expression:
    """The Jacobian of ``vec(F)`` by ``vec(X)`` of the derivative ``expr`` (see
    :meth:`Expression.flatten`)."""
    if order not in ORDERS:
        raise MatrixCalculusError(f"order is 'column' (column-major vec) or 'row' (row-major), not {order!r}")
    if expr._jacobian is not None:
        f_rank, layout = expr._jacobian[:2]
    elif expr.node.rank % 2 == 0:
        f_rank, layout = expr.node.rank // 2, "shape"
    else:
        raise MatrixCalculusError(
            f"{expr} has {expr.node.rank} axes and is not a derivative: which are the function's and which "
            f"the variable's is unknown; flatten a result of derivative()"
        )
    assert layout in LAYOUTS
    node = to_shape_layout(expr.node, f_rank, layout)
    flat = vec_jacobian(node, f_rank, order)
    present = {n for n in g.postorder(flat) if isinstance(n, g.Var)}
    kept = {name: v.node for name, v in expr._context.items() if v.node in present}
    result = Expression(flat, kept, result=True, fixed=expr._fixed)
    if flat.rank == 1 and not isinstance(flat, g.Reshape):
        # One row (a scalar's Jacobian, kron(x, y)') or one column (a Jacobian by a scalar); a
        # reshaped tensor prints its entries in index notation, as it is.
        result._form = "r" if f_rank == 0 else "c"
    result._notices = expr._notices
    result._context = {name: Variable(v.node) for name, v in expr._context.items()}
    if expr._jacobian is not None:
        # Rows along vec(F), columns along vec(X): pictures label them so.
        _, _, f_text, names = expr._jacobian
        flat_f_rank = 0 if f_rank == 0 else 1  # a scalar's row has no axis of f
        result._jacobian = (flat_f_rank, "shape", f"vec({f_text})", tuple(f"vec({name})" for name in names))
    return result
