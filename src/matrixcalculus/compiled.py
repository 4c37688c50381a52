"""The public ``compile`` and ``codegen``: derivatives as fast functions on real arrays.

>>> import numpy as np, matrixcalculus as mc
>>> fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
>>> value, grad = fn({"x": np.ones(3), "A": np.eye(3)})
>>> float(value), grad.tolist()
(3.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from . import graph as g
from .calculus import Wrt, _expression, _names, _variable, derivative
from .codegen import DIALECTS, Program, Structure, generate
from .errors import EvaluationError, MatrixCalculusError
from .evaluate import bind
from .structured import Factored

_KINDS = ("value", "gradient", "jacobian", "hessian")


def _plan(f: Any, wrt: Wrt, derivatives: Sequence[str] | str, types: Mapping[str, Any] | None
          ) -> tuple[list[g.Node], list[tuple[str, int]], list[g.Var], bool]:
    """The nodes to compute, how to group them into the result tuple, and the arguments."""
    if isinstance(derivatives, str):
        derivatives = (derivatives,)
    for kind in derivatives:
        if kind not in _KINDS:
            raise MatrixCalculusError(f"unknown derivative {kind!r}; choose from {', '.join(_KINDS)}")
    expr = _expression(f, types)
    names, single = _names(wrt)
    roots: list[g.Node] = []
    groups: list[tuple[str, int]] = []
    for kind in derivatives:
        if kind == "value":
            roots.append(expr.node)
            groups.append(("value", 1))
            continue
        if kind == "hessian" and expr.shape:
            raise MatrixCalculusError(f"a Hessian is of a scalar function; {expr} has shape {expr.shape}")
        order = 2 if kind == "hessian" else 1
        results = derivative(expr, names, types=types, order=order)
        assert isinstance(results, tuple)
        roots += [r.node for r in results]
        groups.append((kind, len(results)))
    variables = dict(expr.node_variables())
    for n in names:
        variables.setdefault(n, _variable(expr, n, types))
    return roots, groups, list(variables.values()), single


def codegen(f: Any, wrt: Wrt, derivatives: Sequence[str] | str = ("value", "gradient"), *,
            backend: str = "numpy", types: Mapping[str, Any] | None = None,
            sizes: Mapping[str, int] | None = None, dense: bool = True) -> str:
    """Readable standalone Python source computing the derivatives (needs only the array library).

    ``sizes`` (e.g. ``{"n": 1000}``) guides the order of products; without it every symbolic
    dimension is taken as 1000.
    """
    roots, _groups, variables, _ = _plan(f, wrt, derivatives, types)
    return generate(roots, variables, backend, dict(sizes or {}), dense=dense).source


class CompiledDerivatives:
    """A compiled function: call it with a mapping of arrays; returns a tuple in the order asked.

    Code is generated for the sizes of the first call (products are ordered for them) and cached
    per shape signature.
    """

    def __init__(self, roots: list[g.Node], groups: list[tuple[str, int]], variables: list[g.Var],
                 single: bool, backend: str, dense: bool = False):
        self.dense = dense
        if backend not in DIALECTS and backend != "auto":
            raise MatrixCalculusError(
                f"unknown backend {backend!r}; choose one of {', '.join(DIALECTS)}, or 'auto'")
        self._by_backend: dict[str, CompiledDerivatives] = {}
        self.roots = roots
        self.groups = groups
        self.variables = variables
        self.single = single
        self.backend = backend
        self._cache: dict[tuple, tuple[Program, Any, dict[g.Dim, int]]] = {}

    def _structured(self, item: Any, structure: Structure | None, sizes: Mapping[g.Dim, int]) -> Any:
        if structure is None:
            return item
        xp = _namespace(self.backend)
        factors = []
        shape: dict[int, int] = {}
        for (kind, ref), axes in structure.factors:
            if kind == "eye":
                n = ref if isinstance(ref, int) else sizes[ref]
                factors.append((("eye", n), axes))
                shape.update({a: n for a in axes})
            else:
                array = xp.asarray(item[int(ref)])
                factors.append((array, axes))
                shape.update(zip(axes, tuple(array.shape), strict=True))
        result = Factored(structure.coeff, factors, tuple(shape[k] for k in range(len(shape))), xp)
        return result.dense() if self.dense else result

    def _for(self, values: Mapping[str, Any]) -> CompiledDerivatives:
        """The compiled function for the library the arrays come from (array-api-compat tells)."""
        backend = backend_of(list(values.values()))
        if backend not in self._by_backend:
            self._by_backend[backend] = CompiledDerivatives(self.roots, self.groups, self.variables, self.single,
                                                            backend, self.dense)
        return self._by_backend[backend]

    def source(self, values: Mapping[str, Any] | None = None) -> str:
        """The generated source (for the sizes of ``values``, or of the last call)."""
        if values is not None:
            return self._compiled(values)[0].source
        if not self._cache:
            return generate(self.roots, self.variables, self.backend).source
        return next(reversed(self._cache.values()))[0].source

    def _compiled(self, values: Mapping[str, Any]) -> tuple[Program, Any, dict[g.Dim, int]]:
        try:
            key = tuple(tuple(getattr(values[v.name], "shape", ())) for v in self.variables)
        except (KeyError, TypeError):
            if not isinstance(values, Mapping):
                raise EvaluationError(
                    f"values are a mapping from variable names to arrays, not {type(values).__name__}") from None
            missing = [v.name for v in self.variables if v.name not in values]
            raise EvaluationError(f"no value given for {', '.join(missing)}") from None
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if key not in self._cache:
            import numpy as np

            shaped = {v.name: np.broadcast_to(0.0, k) for v, k in zip(self.variables, key, strict=True)}
            _, sizes = bind({v.name: v for v in self.variables}, shaped)
            # Dense results are built from the factors too: that writes only the nonzero blocks.
            program = generate(self.roots, self.variables, self.backend, sizes, dense=False)
            namespace: dict[str, Any] = {}
            # The source is generated from our own graph (names are checked identifiers), not user text.
            code = builtins.compile(program.source, f"<matrixcalculus:{self.backend}>", "exec")
            exec(code, namespace)
            fn = namespace[program.function]
            if self.backend == "jax":
                import jax

                fn = jax.jit(fn)
            self._cache[key] = (program, fn, sizes)
        return self._cache[key]

    def __call__(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        if self.backend == "auto":
            return self._for(values)(values)
        program, fn, sizes = self._compiled(values)
        flat = fn(*(values[name] for name in program.arguments))
        if program.structures and any(program.structures):
            flat = [self._structured(item, st, sizes) for item, st in zip(flat, program.structures, strict=True)]
        result: list[Any] = []
        k = 0
        for _, count in self.groups:
            part = tuple(flat[k:k + count])
            k += count
            result.append(part[0] if (self.single or count == 1) else part)
        return tuple(result)


def _namespace(backend: str) -> Any:
    import importlib

    return importlib.import_module({"jax": "jax.numpy", "dask": "dask.array"}.get(backend, backend))


def backend_of(arrays: Sequence[Any]) -> str:
    """The backend for these arrays: ``torch``, ``jax``, ``cupy``, ``dask`` or ``numpy``."""
    import array_api_compat as compat

    checks = (("torch", compat.is_torch_array), ("jax", compat.is_jax_array), ("cupy", compat.is_cupy_array),
              ("dask", compat.is_dask_array))
    found = {name for a in arrays for name, test in checks if test(a)}
    if len(found) > 1:
        raise MatrixCalculusError(f"arrays from several libraries ({', '.join(sorted(found))}); use one")
    return found.pop() if found else "numpy"


def compile(f: Any, wrt: Wrt, derivatives: Sequence[str] | str = ("value", "gradient"), *,
            backend: str = "numpy", types: Mapping[str, Any] | None = None,
            dense: bool = False) -> CompiledDerivatives:
    """Compile the value and derivatives of ``f`` into one function on ``backend`` arrays.

    ``derivatives`` lists what to return, in order: ``"value"``, ``"gradient"`` (the Jacobian for
    a non-scalar function), ``"hessian"``. With several ``wrt`` each derivative is a tuple over them.
    Backends: ``numpy`` (default), ``torch``, ``jax`` (jit-compiled), ``cupy``, ``dask``, or ``auto``:
    the library the arrays of each call come from (found with array-api-compat).

    A derivative of order three or more with Kronecker structure (the Hessian of a function of a
    matrix, e.g. ``2*delta(i,k)*(V'*V)[j,l]``) comes back as a :class:`~matrixcalculus.structured.Factored`
    that never forms the identity; ``dense=True`` returns plain arrays.
    """
    roots, groups, variables, single = _plan(f, wrt, derivatives, types)
    return CompiledDerivatives(roots, groups, variables, single, backend, dense)
