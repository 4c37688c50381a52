"""The runtime of compiled derivatives: a callable that generates code per shape signature, runs it,
checks its outputs and returns structured results.

>>> import numpy as np, matrixcalculus as mc
>>> fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
>>> value, grad = fn({"x": np.ones(3), "A": np.eye(3)})
>>> float(value), grad.tolist()
(3.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

from matrixcalculus.compile.codegen import DIALECTS, Program, Structure, generate
from matrixcalculus.compile.structured import Factored
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.evaluate import bind, evaluate


class CompiledDerivatives:
    """A compiled function: call it with a mapping of arrays; returns a tuple in the order asked.

    Code is generated for the sizes of the first call (products are ordered for them) and cached
    per shape signature.
    """

    def __init__(
        self,
        roots: list[g.Node],
        groups: list[tuple[str, int]],
        variables: list[g.Var],
        single: bool,
        backend: str,
        dense: bool = False,
        check_finite: bool = True,
        labels: Sequence[str] | None = None,
    ):
        self.dense = dense
        self.check_finite = check_finite
        self.labels = list(labels) if labels is not None else [f"output {k}" for k in range(len(roots))]
        if backend not in DIALECTS and backend != "auto":
            raise MatrixCalculusError(f"unknown backend {backend!r}; choose one of {', '.join(DIALECTS)}, or 'auto'")
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
                n = g.dim_size(ref, sizes.__getitem__)  # a product (eye(m*p)) by its factors' sizes
                factors.append((("eye", n), axes))
                shape.update({a: n for a in axes})
            elif isinstance(ref, int):  # ("array", k): the k-th array returned for this output
                array = xp.asarray(item[ref])
                factors.append((array, axes))
                shape.update(zip(axes, tuple(array.shape), strict=True))
            else:  # pragma: no cover - code generation makes no other factor
                raise AssertionError(f"an array factor is numbered, not {ref!r}")
        result = Factored(structure.coeff, factors, tuple(shape[k] for k in range(len(shape))), xp)
        return result.dense() if self.dense else result

    def _for(self, values: Mapping[str, Any]) -> CompiledDerivatives:
        """The compiled function for the library the arrays come from (array-api-compat tells)."""
        backend = backend_of(list(values.values()))
        if backend not in self._by_backend:
            self._by_backend[backend] = CompiledDerivatives(
                self.roots,
                self.groups,
                self.variables,
                self.single,
                backend,
                self.dense,
                self.check_finite,
                self.labels,
            )
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
                    f"values are a mapping from variable names to arrays, not {type(values).__name__}"
                ) from None
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
            # The source is generated from our own graph, not user text; every identifier in it comes from
            # compile.emit._Names (user names that are not safe ASCII non-keywords are renamed).
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
        arguments = [values[name] for name in program.arguments]
        import numpy as np

        try:
            # With the check on, IEEE warnings are noise: a non-finite output raises below instead.
            with np.errstate(all="ignore") if self.check_finite else contextlib.nullcontext():
                flat = fn(*arguments)
        except _linalg_errors(self.backend) as exc:
            # A factorisation failed (numpy.linalg.inv of a singular matrix): the interpreter names it.
            self._diagnose(values, sizes, None)
            names = sorted(
                {
                    n.name
                    for n in g.postorder(*self.roots)
                    # The functions of a square matrix are the ones that factor it.
                    if isinstance(n, g.Function) and "square" in n.record.arguments
                }
            )
            raise EvaluationError(f"{' or '.join(names) or 'a matrix function'} of a singular matrix: {exc}") from None
        if self.check_finite:
            flat = self._checked(list(flat), values, sizes)
        if program.structures and any(program.structures):
            flat = [self._structured(item, st, sizes) for item, st in zip(flat, program.structures, strict=True)]
        result: list[Any] = []
        k = 0
        for _, count in self.groups:
            part = tuple(flat[k : k + count])
            k += count
            result.append(part[0] if (self.single or count == 1) else part)
        return tuple(result)

    def _checked(self, flat: list[Any], values: Mapping[str, Any], sizes: Mapping[g.Dim, int]) -> list[Any]:
        """The outputs, after making sure each is finite (the policy: a non-finite result is an error).

        Eager backends are checked here, one ``isfinite(...).all()`` per array. Dask is lazy: checking
        now would compute everything twice, so each dask output carries the check into its graph
        (``map_blocks``) and raises when it is computed.
        """
        if self.backend == "dask":
            return [self._lazily_checked(item, values, sizes, k) for k, item in enumerate(flat)]
        xp = _namespace(self.backend)
        for k, item in enumerate(flat):
            if not all(_finite(a, xp) for a in (item if isinstance(item, tuple) else (item,))):
                self._diagnose(values, sizes, k)
        return flat

    def _lazily_checked(self, item: Any, values: Mapping[str, Any], sizes: Mapping[g.Dim, int], k: int) -> Any:
        import dask.array as da
        import numpy as np

        def check(block: Any) -> Any:
            if not np.isfinite(block).all():
                self._diagnose(values, sizes, k)
            return block

        def one(a: Any) -> Any:
            if isinstance(a, da.Array):
                return a.map_blocks(check, dtype=a.dtype)
            if not _finite(a, np):
                self._diagnose(values, sizes, k)
            return a

        return tuple(one(a) for a in item) if isinstance(item, tuple) else one(item)

    def _diagnose(self, values: Mapping[str, Any], sizes: Mapping[g.Dim, int], k: int | None) -> None:
        """Rerun the interpreter on the same inputs: it raises an EvaluationError naming the function
        whose value went wrong (``logdet``, ``inv``, a division by zero). When it does not, output
        ``k`` is named instead. Raises always when ``k`` is given."""
        arrays = {name: _to_numpy(a) for name, a in values.items()}
        dims = {d: int(s) for d, s in sizes.items() if isinstance(d, str)}
        for j in range(len(self.roots)) if k is None else [k]:
            try:
                result = evaluate(self.roots[j], arrays, dims)
            except MatrixCalculusError as exc:
                raise EvaluationError(f"{exc.message} (computing {self.labels[j]})") from None
            if k is not None and not _finite(result, _np()):
                raise EvaluationError(f"{self.labels[k]} is not finite (it has inf or nan entries)")
        if k is not None:
            raise EvaluationError(
                f"{self.labels[k]} is not finite in the compiled code (the interpreter "
                "finds a finite value: an overflow in a faster form)"
            )


def _np() -> Any:
    import numpy as np

    return np


def _finite(a: Any, xp: Any) -> bool:
    if isinstance(a, int | float):
        return math.isfinite(a)
    # One reduction, no boolean temporary: a nan or inf entry makes the sum non-finite. Only when the
    # sum itself is not finite (an overflow of finite entries can do that) is every entry looked at.
    total = xp.sum(a)
    if bool(xp.isfinite(total)):
        return True
    return bool(xp.all(xp.isfinite(a)))


def _to_numpy(a: Any) -> Any:
    """A NumPy copy of an array of any backend (for the interpreter, on the error path only)."""
    import numpy as np

    if hasattr(a, "detach"):  # torch
        return a.detach().cpu().numpy()
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)


def _linalg_errors(backend: str) -> tuple[type[BaseException], ...]:
    """The exceptions a failed factorisation raises in generated code for ``backend``."""
    import numpy as np

    errors: list[type[BaseException]] = [np.linalg.LinAlgError]
    if backend == "torch":
        import torch

        errors.append(torch.linalg.LinAlgError)
    if backend == "cupy":
        import cupy

        errors.append(cupy.linalg.LinAlgError)
    return tuple(errors)


def _namespace(backend: str) -> Any:
    import importlib

    return importlib.import_module({"jax": "jax.numpy", "dask": "dask.array"}.get(backend, backend))


def backend_of(arrays: Sequence[Any]) -> str:
    """The backend for these arrays: ``torch``, ``jax``, ``cupy``, ``dask`` or ``numpy``."""
    import array_api_compat as compat

    checks = (
        ("torch", compat.is_torch_array),
        ("jax", compat.is_jax_array),
        ("cupy", compat.is_cupy_array),
        ("dask", compat.is_dask_array),
    )
    found = {name for a in arrays for name, test in checks if test(a)}
    if len(found) > 1:
        raise MatrixCalculusError(f"arrays from several libraries ({', '.join(sorted(found))}); use one")
    return found.pop() if found else "numpy"
