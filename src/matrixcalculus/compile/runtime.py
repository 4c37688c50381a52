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
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
        self._cache: dict[tuple, _Entry] = {}
        self._names = [v.name for v in variables]
        # The arguments of the generated function, in its order, as a tuple (one C call a call).
        if len(self._names) == 1:
            self._arguments: Any = lambda values, name=self._names[0]: (values[name],)
        elif not self._names:
            self._arguments = lambda values: ()
        else:
            self._arguments = operator.itemgetter(*self._names)
        # One output per group: the call returns the outputs as they come.
        self._simple = all(count == 1 for _, count in groups)

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
            if self.backend == "auto":  # the code of the library the arrays come from
                return self._for(values).source(values)
            return self._compiled(values)[0].source
        if not self._cache:
            return generate(self.roots, self.variables, self.backend).source
        return next(reversed(self._cache.values())).program.source

    def _signature(self, values: Mapping[str, Any]) -> tuple:
        """The key of the code for these values: each argument's shape and dtype (a number
        without them is a scalar of no dtype of its own)."""
        try:
            # The fast path: arrays of any library have .shape and .dtype.
            return tuple([(a.shape, a.dtype) for a in map(values.__getitem__, self._names)])
        except (KeyError, TypeError, AttributeError):
            pass
        if not isinstance(values, Mapping):
            raise EvaluationError(f"values are a mapping from variable names to arrays, not {type(values).__name__}")
        missing = [name for name in self._names if name not in values]
        if missing:
            raise EvaluationError(f"no value given for {', '.join(missing)}")
        return tuple(
            (tuple(getattr(values[name], "shape", ())), getattr(values[name], "dtype", None)) for name in self._names
        )

    def _compiled(self, values: Mapping[str, Any]) -> tuple[Program, Any, dict[g.Dim, int]]:
        entry = self._entry(values)
        return entry.program, entry.fn, entry.sizes

    def _entry(self, values: Mapping[str, Any]) -> _Entry:
        """The code for the signature of ``values``: generated, compiled and its argument checks
        done on the first call with that signature, then looked up (one dictionary look-up)."""
        key = self._signature(values)
        found = self._cache.get(key)
        if found is not None:
            return found
        import numpy as np

        shapes = [tuple(int(d) for d in shape) for shape, _ in key]
        dtype = _floating_type([dt for _, dt in key])
        shaped = {v.name: np.broadcast_to(0.0, k) for v, k in zip(self.variables, shapes, strict=True)}
        _, sizes = bind({v.name: v for v in self.variables}, shaped)
        # Dense results are built from the factors too: that writes only the nonzero blocks.
        # In-place temporaries need arrays of the one floating type (a float64 sum into a float32
        # buffer would round; an integer buffer cannot hold a float).
        uniform = len({str(dt) for _, dt in key}) == 1 and str(key[0][1]) == dtype if key else False
        program = generate(self.roots, self.variables, self.backend, sizes, dense=False, dtype=dtype, in_place=uniform)
        namespace: dict[str, Any] = {}
        # The source is generated from our own graph, not user text; every identifier in it comes from
        # compile.emit._Names (user names that are not safe ASCII non-keywords are renamed).
        code = builtins.compile(program.source, f"<matrixcalculus:{self.backend}>", "exec")
        exec(code, namespace)
        fn = namespace[program.function]
        if self.backend == "jax":
            import jax

            fn = jax.jit(fn)
        # Only powers and some functions raise IEEE warnings on finite inputs (a product or sum
        # does only when it overflows, and then the output is not finite and the check raises):
        # other programs run without the cost of silencing them.
        quiet = any(_may_warn(s.op.name, s.op.params) for s in program.block.statements)
        # With the check on, IEEE warnings are noise: a non-finite output raises instead. The
        # function is wrapped once (np.errstate as a decorator, 0.4 us a call, half of entering
        # a fresh errstate per call).
        run = _NP.errstate(all="ignore")(fn) if quiet and self.check_finite else fn
        structured = bool(program.structures and any(program.structures))
        entry = _Entry(program, fn, sizes, structured, quiet, run, self._simple and not structured)
        self._cache[key] = entry
        return entry

    def __call__(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        try:
            # The common case in C loops (operator.itemgetter, attrgetter): read the arguments,
            # look their signature up.
            arguments = self._arguments(values)
            entry = self._cache[tuple(map(_SHAPE_DTYPE, arguments))]
        except (KeyError, TypeError, AttributeError):
            if self.backend == "auto":  # its own cache stays empty: the backend's function runs
                return self._for(values)(values)
            entry = self._entry(values)  # a new signature (or numbers, or a missing name: it says which)
            arguments = _arrays(self._arguments(values), self.backend)
        try:
            flat = entry.run(*arguments)
        except _linalg_errors(self.backend) as exc:
            # A factorisation failed (numpy.linalg.inv of a singular matrix): the interpreter names it.
            self._diagnose(values, entry.sizes, None)
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
            for item in flat:
                # NumPy arrays and scalars whose quick check passes pass here; anything else is
                # looked at by _checked (which looks at every entry where the quick check fails).
                if type(item) is _NDARRAY:
                    if _quick_finite(item):
                        continue
                elif type(item) is _FLOAT64 and _ISFINITE(item):
                    continue
                flat = self._checked(flat, values, entry.sizes)
                break
        if entry.plain and type(flat) is tuple:
            return flat  # one output per group, none structured: the function's own tuple
        if entry.structured:
            flat = [
                self._structured(item, st, entry.sizes) for item, st in zip(flat, entry.program.structures, strict=True)
            ]
        if self._simple:
            return flat if type(flat) is tuple else tuple(flat)
        result: list[Any] = []
        k = 0
        for _, count in self.groups:
            part = tuple(flat[k : k + count])
            k += count
            result.append(part[0] if (self.single or count == 1) else part)
        return tuple(result)

    def _checked(self, flat: Sequence[Any], values: Mapping[str, Any], sizes: Mapping[g.Dim, int]) -> Sequence[Any]:
        """The outputs, after making sure each is finite (the policy: a non-finite result is an error).

        Eager backends are checked here, one sum per array (see :func:`_finite`). Dask is lazy:
        checking now would compute everything twice, so each dask output carries the check into
        its graph (``map_blocks``) and raises when it is computed.
        """
        if self.backend == "dask":
            return [self._lazily_checked(item, values, sizes, k) for k, item in enumerate(flat)]
        for k, item in enumerate(flat):
            if isinstance(item, tuple):
                if not all(_finite(a) for a in item):
                    self._diagnose(values, sizes, k)
            elif not _finite(item):
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
            if not _finite(a):
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
            if k is not None and not _finite(result):
                raise EvaluationError(f"{self.labels[k]} is not finite (it has inf or nan entries)")
        if k is not None:
            raise EvaluationError(
                f"{self.labels[k]} is not finite in the compiled code (the interpreter "
                "finds a finite value: an overflow in a faster form)"
            )


def _warning_free() -> frozenset[str]:
    """The functions whose compiled forms raise no IEEE warning on finite arguments: element-wise
    functions defined and finite on the whole real line (``tanh``, ``relu``, ``sigmoid`` as
    ``(1 + tanh(x/2))/2``, ``softplus`` as ``logaddexp``, ...), and ``softmax`` and ``logsumexp``,
    which shift by the largest entry before ``exp`` (the registry's helpers)."""
    from matrixcalculus.ir.registry import FUNCTIONS

    free = {
        name
        for name, record in FUNCTIONS.items()
        if record.elementwise and record.domain == (-math.inf, math.inf) and not record.nonfinite
    }
    return frozenset(free | {"softmax", "logsumexp"})


_WARNING_FREE = _warning_free()


def _may_warn(op: str, params: tuple) -> bool:
    """Can a statement raise an IEEE warning although its arguments are finite? Powers can
    (``0 ** -1``), and calls of functions outside :data:`_WARNING_FREE` (``exp`` overflows,
    ``log(0)``).

    >>> _may_warn("call", ("relu",)), _may_warn("call", ("exp",)), _may_warn("matmul", ())
    (False, True, False)
    """
    if op == "power":
        return True
    return op == "call" and not (params and params[0] in _WARNING_FREE)


def _np() -> Any:
    import numpy as np

    return np


def _finite(a: Any) -> bool:
    """Are all entries of ``a`` finite? One pass, no boolean temporary (:func:`_quick_finite` for
    NumPy arrays, the array's own sum for others): a nan or inf entry makes the result non-finite.
    Only when it is not finite (an overflow of finite entries can do that) is every entry looked at."""
    if type(a) is _NDARRAY:
        return _quick_finite(a) or bool(_np().isfinite(a).all())
    if isinstance(a, int | float):
        return math.isfinite(a)
    try:
        # The array's own sum (no dispatch through a namespace); a 0-d result reads as a float.
        if math.isfinite(a.sum()):
            return True
    except (TypeError, ValueError, AttributeError):  # pragma: no cover - an array type without a plain sum
        pass
    xp = _array_namespace(a)
    return bool(xp.all(xp.isfinite(a)))


def _quick_finite(a: Any) -> bool:
    """True when the NumPy array ``a`` is certainly finite. A float64 array in one contiguous
    buffer (C or Fortran order) is read by BLAS ``dot`` with itself: a nan or inf entry makes the
    sum of squares non-finite (measured here: 3.6 us against 5.0 us for ``np.add.reduce`` at 10^4
    entries, 0.5 us against 0.6 us at 100). Other arrays are summed by NumPy's reduction (no copy
    of a strided array; float32 squares would overflow from 1.8e19). False is not proof of a
    non-finite entry: squares above 1.8e308 (entries above 1.3e154; NumPy then warns of an
    overflow in ``dot``) or a sum that overflows; the caller then looks at each entry.

    >>> import numpy as np
    >>> _quick_finite(np.ones((3, 2)).T), _quick_finite(np.array([1.0, np.nan]))
    (True, False)
    """
    if a.dtype is _FLOAT64_DTYPE:
        if a.ndim <= 1:
            return _ISFINITE(_DOT(a, a))
        if a.flags.forc:  # one contiguous buffer in C or Fortran order: a view, no copy
            flat = a.ravel("K")
            return _ISFINITE(_DOT(flat, flat))
    return _ISFINITE(_ADD_REDUCE(a, None))


def _numpy() -> tuple[Any, Any, Any, Any, Any, Any]:
    import numpy as np

    return np, np.ndarray, np.float64, np.dtype(np.float64), np.add.reduce, np.dot


# Looked up once: the call path reads them without an import statement.
_NP, _NDARRAY, _FLOAT64, _FLOAT64_DTYPE, _ADD_REDUCE, _DOT = _numpy()
_ISFINITE = math.isfinite
# An array's signature, (shape, dtype), read in C.
_SHAPE_DTYPE = operator.attrgetter("shape", "dtype")


def _array_namespace(a: Any) -> Any:
    import array_api_compat

    return array_api_compat.array_namespace(a)


def _floating_type(dtypes: Sequence[Any]) -> str:
    """The floating type compiled code computes in: ``float32`` when every input array is float32
    (of any library), else ``float64``; a number without a dtype (None here) follows the arrays,
    as NumPy's scalars do.

    >>> import numpy as np
    >>> _floating_type([np.dtype("float32"), None]), _floating_type([np.dtype("float32"), np.dtype("float64")])
    ('float32', 'float64')
    """
    names = [str(d).rsplit(".", 1)[-1] for d in dtypes if d is not None]
    return "float32" if names and all(name == "float32" for name in names) else "float64"


@dataclass(frozen=True)
class _Entry:
    """The code for one signature: its program, the function, the sizes read off the arguments,
    and whether any output comes back as factors."""

    program: Program
    fn: Any
    sizes: dict[g.Dim, int]
    structured: bool
    quiet: bool  # whether IEEE warnings are silenced while it runs (see _entry)
    run: Any  # fn, or fn with IEEE warnings silenced (quiet, with the finite check on)
    plain: bool  # the call returns the function's outputs as they come


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


def _arrays(arguments: Any, backend: str) -> Any:
    """The arguments with Python numbers made 0-d arrays of the backend: generated code then
    computes with arrays throughout (1.0/(a - a) is inf and reported, never ZeroDivisionError,
    and (-1.0)**0.5 nan, never complex). A number takes the arrays' dtype (float32 arrays stay
    float32, as a Python number follows the arrays in NumPy), float64 when there is none."""
    if all(hasattr(a, "shape") for a in arguments):
        return arguments
    xp = _namespace(backend)
    dtypes = {a.dtype for a in arguments if hasattr(a, "dtype")}
    dtype = dtypes.pop() if len(dtypes) == 1 else xp.float64
    return tuple(a if hasattr(a, "shape") else xp.asarray(a, dtype=dtype) for a in arguments)


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
