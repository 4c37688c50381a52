"""The runtime of compiled derivatives: a callable that generates code per shape signature, runs it,
checks its outputs and returns structured results.

>>> import numpy as np, matrixcalculus as mc
>>> fn = mc.compile("x'*A*x", wrt="x", derivatives=("value", "gradient"))
>>> value, grad = fn({"x": np.ones(3), "A": np.eye(3)})
>>> float(value), grad.tolist()
(3.0, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

import ast
import builtins
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from matrixcalculus.compile.codegen import DIALECTS, Program, Structure, generate
from matrixcalculus.compile.structured import Factored
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.evaluate import bind, evaluate


class CompiledDerivatives:
    """A compiled function: call it with a mapping of arrays; returns a tuple in the order asked.

    Code is generated for the sizes of the first call (products are ordered for them) and cached
    per shape signature. With NumPy arrays the last signature's call is one generated frame
    (:meth:`_fast_call`): it compares each argument's shape and dtype with the signature's, runs
    the generated statements and checks the outputs as the general path does.
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
        # The call of the last signature (see _fast_call): one Python frame that reads, checks,
        # runs and returns; None until a NumPy call has run once.
        self._fast: Any = None
        self._current: _Entry | None = None  # the entry whose call is _fast (NumPy)

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
        """The generated source (for the sizes of ``values``, or of the last call). A NumPy call
        runs these statements inside its signature call, between the comparison of the arguments'
        shapes and dtypes with the signature's and the finite check of the outputs (see
        :meth:`_fast_call`)."""
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
        _run_generated(program.source, f"<matrixcalculus:{self.backend}>", namespace)
        fn = namespace[program.function]
        fused = False
        if self.backend == "jax":
            import jax

            if self.check_finite:
                # The check runs inside the compiled XLA program, next to the outputs it reads
                # (a reduction fused with their producers), and returns one flag: a separate
                # sum per output was another dispatch and pass each (0.3-0.5 ms of a 1 ms MLP
                # gradient at n = 1000). The flag is False also for an overflow that the quick
                # NumPy check would miss; then _checked looks at every entry and names the cause.
                fn = jax.jit(_with_finite_flag(fn))
                fused = True
            else:
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
        entry = _Entry(program, fn, sizes, structured, quiet, run, self._simple and not structured, key, fused=fused)
        self._cache[key] = entry
        return entry

    def __call__(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        fast = self._fast
        if fast is not None:
            # The last signature's call (NumPy): it returns _MISS for other shapes or dtypes; any
            # error it meets (a missing name, a number, a singular matrix) the general path below
            # meets again and reports.
            try:
                result = fast(values)
            except (KeyError, TypeError, AttributeError, _NP.linalg.LinAlgError):
                result = _MISS
            if result is not _MISS:
                return result
        return self._call(values)

    def _call(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The general call: any backend, any signature (generated on its first call), numbers."""
        try:
            # The common case in C loops (operator.itemgetter, attrgetter): read the arguments,
            # look their signature up.
            arguments = self._arguments(values)
            entry = self._cache[tuple(map(_SHAPE_DTYPE, arguments))]
        except (KeyError, TypeError, AttributeError):
            if self.backend == "auto":  # its own cache stays empty: the backend's function runs
                return self._dispatched(values)
            entry = self._entry(values)  # a new signature (or numbers, or a missing name: it says which)
            arguments = _arrays(self._arguments(values), self.backend)
        try:
            flat = entry.run(*arguments)
        except _linalg_errors(self.backend) as exc:
            self._singular(values, entry.sizes, exc)
        if entry.fused:  # jax: (outputs, whether every entry of every output is finite)
            flat, finite = flat
            if not bool(finite):
                flat = self._checked(flat, values, entry.sizes)
        elif self.check_finite:
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
        if self.backend == "numpy":
            if entry.fast is None:
                entry.fast = self._fast_call(entry, flat) or False
            self._fast = entry.fast or None
            self._current = entry if entry.fast else None
        return self._finish(entry, flat)

    def _dispatched(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """``backend="auto"``: the compiled function of the arrays' library runs the call. Where
        that is NumPy's and ``values`` holds exactly the arguments, each a NumPy array, this
        function takes that signature's call with a guard on the type of each argument and on
        the number of values (which keeps :func:`backend_of`'s answer NumPy) for the next call."""
        target = self._for(values)
        result = target(values)
        entry = target._current
        if entry is not None and len(values) == len(self._names) and all(type(a) is _NDARRAY for a in values.values()):
            if entry.typed is None:
                entry.typed = target._fast_call(entry, None, exact=True) or False
            self._fast = entry.typed or None
        else:
            self._fast = None
        return result

    def _finish(self, entry: _Entry, flat: Sequence[Any]) -> tuple[Any, ...]:
        """The result of the call from the generated function's outputs: structured outputs as
        :class:`Factored`, grouped as asked (a tuple per derivative with several ``wrt``)."""
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

    def _singular(self, values: Mapping[str, Any], sizes: Mapping[g.Dim, int], exc: BaseException) -> NoReturn:
        """Raise the error of a failed factorisation (numpy.linalg.inv of a singular matrix): the
        interpreter names the function when it can."""
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

    def _fast_call(self, entry: _Entry, flat: Sequence[Any] | None, exact: bool = False) -> Any:
        """The whole call for ``entry``'s signature as one generated function (NumPy only), or None
        where the general path must run (numbers among the arguments, structured outputs, an
        output of a kind the quick checks do not know).

        It does what :meth:`_call` does, in the same order and with the same checks, without its
        loops and look-ups: read the arguments, compare each one's shape and dtype with the
        signature's (``_MISS`` when one differs: the general path takes the call), run the code,
        check each output as :func:`_quick_finite` does (``flat`` tells each output's kind; a
        guard on the kind keeps the check valid: an output of another layout goes to
        :meth:`_checked`, as does a failing quick check) and return the result grouped as asked.
        The statements of the generated function are run in the same frame (a call less) unless
        IEEE warnings are silenced around it. The source is made from this module's text and the
        generated program's statements only (argument names, shapes and dtypes come in through
        the namespace): see :func:`_fast_source`. ``exact``: each argument must be a NumPy array
        too (``backend="auto"``, see :meth:`_dispatched`; the kinds of outputs are those ``flat``
        told the first time).
        """
        key = entry.key
        if flat is not None:
            if entry.structured or type(flat) is not tuple or any(dtype is None for _, dtype in key):
                return None
            if any(count < 1 for _, count in self.groups):
                return None
            entry.kinds = _output_kinds(flat, self.check_finite)
        if entry.kinds is None:
            return None
        checks, scalar_types = entry.kinds
        inline = _function_body(entry.program.source, entry.program.function) if entry.run is entry.fn else None
        if inline is not None and len(inline[0]) != len(self._names):  # pragma: no cover - one parameter per variable
            inline = None
        source, names = _fast_source(len(self._names), checks, self._grouping(), inline, exact)
        sizes = entry.sizes

        def recheck(outputs: Sequence[Any], values: Mapping[str, Any]) -> tuple[Any, ...]:
            return self._finish(entry, self._checked(outputs, values, sizes))

        namespace: dict[str, Any] = {}
        if inline is not None:  # the program's own module first: its import and helpers
            _run_generated(entry.program.source, f"<matrixcalculus:{self.backend}>", namespace)
        for j, (name, (shape, dtype)) in enumerate(zip(self._names, key, strict=True)):
            namespace.update({names[f"_k{j}"]: name, names[f"_s{j}"]: shape, names[f"_d{j}"]: dtype})
        namespace.update({names[f"_t{k}"]: kind for k, kind in scalar_types.items()})
        namespace.update(
            {
                names["_run"]: entry.run,
                names["_recheck"]: recheck,
                names["_MISS"]: _MISS,
                names["_arity"]: len(self._names),
                names["_ndarray"]: _NDARRAY,
                names["_float64"]: _FLOAT64_DTYPE,
                names["_isfinite"]: _ISFINITE,
                names["_add_reduce"]: _ADD_REDUCE,
            }
        )
        _run_generated(source, "<matrixcalculus:call>", namespace)
        return namespace[names["call"]]

    def _grouping(self) -> list[Any] | None:
        """How the call groups the outputs (as :meth:`_finish` does): None when each group has one
        output (the function's own tuple is the result), else each group's output numbers (a
        number alone where the group is one output).

        >>> CompiledDerivatives([], [("value", 1), ("gradient", 2)], [], False, "numpy")._grouping()
        [0, [1, 2]]
        """
        if self._simple:
            return None
        parts: list[Any] = []
        k = 0
        for _, size in self.groups:
            numbers = list(range(k, k + size))
            parts.append(numbers[0] if (self.single or size == 1) else numbers)
            k += size
        return parts

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
        # The method (ndarray.dot, the same product as np.dot) skips np.dot's dispatch: 0.30
        # against 0.43 us at 100 entries.
        if a.ndim <= 1:
            return _ISFINITE(a.dot(a))
        if a.flags.forc:  # one contiguous buffer in C or Fortran order: a view, no copy
            flat = a.ravel("K")
            return _ISFINITE(flat.dot(flat))
    return _ISFINITE(_ADD_REDUCE(a, None))


def _run_generated(source: str, filename: str, namespace: dict[str, Any]) -> None:
    """Run ``source`` that this package generated in ``namespace``: the package's one ``exec``.

    The sources are a program that compile.emit printed from our own graph, never user text
    (every identifier in it comes from compile.emit._Names: user names that are not safe ASCII
    non-keywords are renamed), and the calls of :func:`_fast_source`, made of this module's text
    and such a program's statements (values come in through ``namespace``).
    """
    code = builtins.compile(source, filename, "exec")
    exec(code, namespace)


def _output_kinds(flat: Sequence[Any], check: bool) -> tuple[list[str | None], dict[int, type]] | None:
    """The quick check of each output (a key of :data:`_QUICK_CHECKS`; None: unchecked) and the
    type of each NumPy scalar among them, as :func:`_quick_finite` would check them; None where
    an output is of another kind (the general check then looks at it).

    >>> import numpy as np
    >>> _output_kinds((np.float64(1.0), np.ones(3), np.ones((3, 2)).T, np.ones((4, 4))[::2]), True)[0]
    ['scalar', 'dot', 'flat_dot', 'reduce']
    """
    checks: list[str | None] = []
    scalar_types: dict[int, type] = {}
    for k, item in enumerate(flat):
        if not check:
            checks.append(None)
        elif type(item) is _NDARRAY:
            if item.dtype is _FLOAT64_DTYPE and item.ndim <= 1:
                checks.append("dot")
            elif item.dtype is _FLOAT64_DTYPE and item.flags.forc:
                checks.append("flat_dot")
            else:
                checks.append("reduce")
        elif type(item) in (_FLOAT64, _FLOAT32):
            checks.append("scalar")
            scalar_types[k] = type(item)
        else:
            return None
    return checks, scalar_types


# The quick check of each kind of output, as a condition on the output {o} (with {r} a name for
# its flat view) that the generated call of a signature tests (see _fast_source). Each is
# _quick_finite's check for that kind behind a guard on the kind: an output of another kind or
# layout, or one whose check fails, goes to the general check.
_QUICK_CHECKS = {
    # a float64 vector (or 0-d array): BLAS dot with itself
    "dot": "type({o}) is {_ndarray} and {o}.dtype is {_float64} and {o}.ndim <= 1 and {_isfinite}({o}.dot({o}))",
    # a float64 array in one contiguous buffer: the same on its flat view (a view, no copy)
    "flat_dot": (
        "type({o}) is {_ndarray} and {o}.dtype is {_float64} and {o}.flags.forc"
        ' and {_isfinite}(({r} := {o}.ravel("K")).dot({r}))'
    ),
    # any other array (float32, strided): NumPy's sum
    "reduce": "type({o}) is {_ndarray} and {_isfinite}({_add_reduce}({o}, None))",
    # a NumPy scalar (a value): its own finiteness
    "scalar": "type({o}) is {_t} and {_isfinite}({o})",
}


def _fast_source(
    arity: int,
    checks: Sequence[str | None],
    grouping: list[Any] | None,
    inline: tuple[list[str], list[str], str, frozenset[str]] | None = None,
    exact: bool = False,
) -> tuple[str, dict[str, str]]:
    """The source of a signature's call (see :meth:`CompiledDerivatives._fast_call`) and the names
    it uses for this module's values: ``arity`` arguments, one quick check per output (a key of
    :data:`_QUICK_CHECKS`, or None: unchecked), the outputs grouped as ``grouping`` says
    (:meth:`CompiledDerivatives._grouping`). The call runs ``_run``, the generated function, or,
    given ``inline`` (:func:`_function_body`: its parameters, statements, returned expression and
    every name it uses), its statements in place: then its parameters are the arguments' names
    and this module's names avoid its own (``flat`` becomes ``flat_`` where the program has a
    ``flat``). ``exact``: the arguments must be exactly NumPy arrays, and the values no more
    than the arguments. Only this module's text and the program's statements go into it.

    >>> print(_fast_source(2, ["dot"], None)[0], end="")
    def call(values):
        a0 = values[_k0]
        a1 = values[_k1]
        if a0.shape != _s0 or a0.dtype is not _d0 or a1.shape != _s1 or a1.dtype is not _d1:
            return _MISS
        flat = _run(a0, a1)
        (o0,) = flat
        if not (type(o0) is _ndarray and o0.dtype is _float64 and o0.ndim <= 1 and _isfinite(o0.dot(o0))):
            return _recheck(flat, values)
        return flat
    """
    taken = inline[3] if inline is not None else frozenset()
    names: dict[str, str] = {}

    def name(wanted: str) -> str:
        # Our names end in a letter or digit: adding underscores keeps them apart from each other.
        if wanted not in names:
            free = wanted
            while free in taken:
                free += "_"
            names[wanted] = free
        return names[wanted]

    for wanted in ("call", "values", "flat", "_run", "_recheck", "_MISS", "_ndarray", "_float64", "_isfinite"):
        name(wanted)
    name("_add_reduce")
    name("_arity")
    values, flat = names["values"], names["flat"]
    arguments = inline[0] if inline is not None else [name(f"a{j}") for j in range(arity)]
    lines = [f"def {names['call']}({values}):"]
    lines += [f"    {a} = {values}[{name(f'_k{j}')}]" for j, a in enumerate(arguments)]
    if arity:
        tests = [f"{a}.shape != {name(f'_s{j}')} or {a}.dtype is not {name(f'_d{j}')}" for j, a in enumerate(arguments)]
        if exact:
            tests = [f"len({values}) != {names['_arity']}"] + [
                f"type({a}) is not {names['_ndarray']} or {test}" for a, test in zip(arguments, tests, strict=True)
            ]
        guard = " or ".join(tests)
        lines += [f"    if {guard}:", f"        return {names['_MISS']}"]
    if inline is None:
        lines.append(f"    {flat} = {names['_run']}({', '.join(arguments)})")
    else:
        lines += inline[1]
        lines.append(f"    {flat} = {inline[2]}")
    outputs = [name(f"o{k}") for k in range(len(checks))]
    if grouping is not None or any(checks):
        lines.append(f"    ({', '.join(outputs)}{',' if len(outputs) == 1 else ''}) = {flat}")
    for k, check in enumerate(checks):
        if check is not None:
            fields = {key: names[key] for key in ("_ndarray", "_float64", "_isfinite", "_add_reduce")}
            test = _QUICK_CHECKS[check].format(o=outputs[k], r=name(f"r{k}"), _t=name(f"_t{k}"), **fields)
            lines += [f"    if not ({test}):", f"        return {names['_recheck']}({flat}, {values})"]

    def grouped(part: Any) -> str:
        if isinstance(part, int):
            return outputs[part]
        return f"({', '.join(grouped(p) for p in part)}{',' if len(part) == 1 else ''})"

    lines.append(f"    return {flat if grouping is None else grouped(grouping)}")
    return "\n".join(lines) + "\n", names


def _function_body(source: str, function: str) -> tuple[list[str], list[str], str, frozenset[str]] | None:
    r"""The generated ``function`` of ``source`` as :func:`_fast_source` runs it in place: its
    parameters, its statements before the return (indented), the returned expression, and every
    name the module uses. None when it is not a plain function of straight-line statements ending
    in ``return`` (then it is called).

    >>> parameters, body, returned, used = _function_body("def f(x, A):\n    t0 = (A @ x)\n    return (t0,)\n", "f")
    >>> parameters, body, returned, sorted(used)
    (['x', 'A'], ['    t0 = A @ x'], '(t0,)', ['A', 'f', 't0', 'x'])
    """
    tree = ast.parse(source)
    found = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    if len(found) != 1:
        return None
    (definition,) = found
    parameters = definition.args
    if (
        definition.decorator_list
        or parameters.posonlyargs
        or parameters.vararg
        or parameters.kwonlyargs
        or parameters.kwarg
        or parameters.defaults
    ):
        return None
    *statements, last = definition.body
    if not isinstance(last, ast.Return) or last.value is None:
        return None
    # Straight-line statements: no other exit, no scope of their own.
    scoped = (ast.Return, ast.Yield, ast.YieldFrom, ast.Await, ast.Global, ast.Nonlocal, ast.FunctionDef, ast.ClassDef)
    if any(isinstance(node, scoped) for statement in statements for node in ast.walk(statement)):
        return None
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    used |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.ClassDef)}
    used |= {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    arguments = [a.arg for a in parameters.args]
    used |= set(arguments)
    body = ["    " + line for statement in statements for line in ast.unparse(statement).splitlines()]
    return arguments, body, ast.unparse(last.value), frozenset(used)


def _numpy() -> tuple[Any, Any, Any, Any, Any, Any]:
    import numpy as np

    return np, np.ndarray, np.float64, np.float32, np.dtype(np.float64), np.add.reduce


# Looked up once: the call path reads them without an import statement.
_NP, _NDARRAY, _FLOAT64, _FLOAT32, _FLOAT64_DTYPE, _ADD_REDUCE = _numpy()
_ISFINITE = math.isfinite
# What a signature's call returns for arguments of another signature.
_MISS = object()
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


@dataclass
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
    key: tuple  # the signature: each argument's (shape, dtype)
    fast: Any = None  # the signature's call (_fast_call); False where the general path runs
    typed: Any = None  # the same with a guard on the arguments' types (backend="auto")
    kinds: tuple[list[str | None], dict[int, type]] | None = None  # each output's check (_output_kinds)
    fused: bool = False  # the function returns (outputs, all finite): the check runs inside it (jax)


def _with_finite_flag(fn: Any) -> Any:
    """``fn`` returning also whether every entry of its outputs is finite (for ``jax.jit``: one
    XLA program computes both)."""
    import jax
    import jax.numpy as jnp

    def checked(*arguments: Any) -> tuple[Any, Any]:
        outputs = fn(*arguments)
        flags = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(outputs)]
        return outputs, jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)

    return checked


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
