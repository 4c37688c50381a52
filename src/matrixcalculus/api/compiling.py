"""The public ``compile`` and ``codegen``: derivatives as fast functions on real arrays.

>>> import numpy as np, matrixcalculus as mc
>>> fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
>>> value, grad = fn({"x": np.ones(3), "A": np.eye(3)})
>>> float(value), grad.tolist()
(3.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matrixcalculus.api.calculus import (
    Wrt,
    _expression,
    _names,
    _stack_variables,
    _stacked_names,
    _variable,
    pure_derivatives,
)
from matrixcalculus.compile.codegen import generate
from matrixcalculus.compile.runtime import CompiledDerivatives
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g

_KINDS = ("value", "gradient", "jacobian", "hessian")


def _plan(
    f: Any, wrt: Wrt, derivatives: Sequence[str] | str, types: Mapping[str, Any] | None
) -> tuple[list[g.Node], list[tuple[str, int]], list[g.Var], bool, list[str]]:
    """The nodes to compute, how to group them into the result tuple, the arguments, and what each
    node is in words (for errors: "the gradient w.r.t. x")."""
    if isinstance(derivatives, str):
        derivatives = (derivatives,)
    for kind in derivatives:
        if kind not in _KINDS:
            raise MatrixCalculusError(f"unknown derivative {kind!r}; choose from {', '.join(_KINDS)}")
    expr = _expression(f, types, wrt)
    # A stack "[x; y]" of scalars is one variable here: one stacked gradient array.
    names, single = _names(wrt, stacks=True)
    roots: list[g.Node] = []
    groups: list[tuple[str, int]] = []
    labels: list[str] = []
    for kind in derivatives:
        if kind == "value":
            roots.append(expr.node)
            groups.append(("value", 1))
            labels.append("the value")
            continue
        if kind == "hessian" and expr.shape:
            raise MatrixCalculusError(f"a Hessian is of a scalar function; {expr} has shape {expr.shape}")
        order = 2 if kind == "hessian" else 1
        results = pure_derivatives(expr, names, types=types, order=order)
        roots += [r.node for r in results]
        groups.append((kind, len(results)))
        word = {"hessian": "Hessian", "gradient": "Jacobian" if expr.shape else "gradient"}.get(kind, kind)
        labels += [f"the {word} w.r.t. {n}" for n in names]
    variables = dict(expr.node_variables())
    for n in names:
        stacked = _stacked_names(n)
        for w in _stack_variables(expr, stacked, types) if stacked is not None else [_variable(expr, n, types)]:
            variables.setdefault(w.name, w)
    return roots, groups, list(variables.values()), single, labels


def codegen(
    f: Any,
    wrt: Wrt,
    derivatives: Sequence[str] | str = ("value", "gradient"),
    *,
    backend: str = "numpy",
    types: Mapping[str, Any] | None = None,
    sizes: Mapping[str, int] | None = None,
    dense: bool = True,
) -> str:
    """Readable standalone Python source computing the derivatives (needs only the array library).

    ``sizes`` (e.g. ``{"n": 1000}``) guides the order of products; without it every symbolic
    dimension is taken as 1000.
    """
    roots, _groups, variables, _, _labels = _plan(f, wrt, derivatives, types)
    guide: dict[g.Dim, int] = {d: size for d, size in (sizes or {}).items()}
    return generate(roots, variables, backend, guide, dense=dense).source


def compile(
    f: Any,
    wrt: Wrt,
    derivatives: Sequence[str] | str = ("value", "gradient"),
    *,
    backend: str = "numpy",
    types: Mapping[str, Any] | None = None,
    dense: bool = False,
    check_finite: bool = True,
) -> CompiledDerivatives:
    """Compile the value and derivatives of ``f`` into one function on ``backend`` arrays.

    ``derivatives`` lists what to return, in order: ``"value"``, ``"gradient"`` (the Jacobian for
    a non-scalar function), ``"hessian"``. With several ``wrt`` each derivative is a tuple over them.
    Backends: ``numpy`` (default), ``torch``, ``jax`` (jit-compiled), ``cupy``, ``dask``, or ``auto``:
    the library the arrays of each call come from (found with array-api-compat).

    A derivative of order three or more with Kronecker structure (the Hessian of a function of a
    matrix, e.g. ``2*delta(i,k)*(V'*V)[j,l]``) comes back as a :class:`~matrixcalculus.compile.structured.Factored`
    that never forms the identity; ``dense=True`` returns plain arrays.

    A non-finite result is an error (as in ``evaluate``): each call checks its outputs and, when
    one has an inf or nan, reruns the interpreter to name the function that produced it, raising
    :class:`~matrixcalculus.errors.EvaluationError`. A dask output carries the check into its
    graph and raises when computed. ``check_finite=False`` skips the check and returns the IEEE
    values.
    """
    roots, groups, variables, single, labels = _plan(f, wrt, derivatives, types)
    return CompiledDerivatives(roots, groups, variables, single, backend, dense, check_finite, labels)
