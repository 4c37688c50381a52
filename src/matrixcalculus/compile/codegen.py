"""Code generation: derivative graphs -> fast, standalone array code.

Three steps, each on data until the last: :func:`~matrixcalculus.compile.plan.plan` turns the
graph into statements (product order, BLAS forms, stable forms; see its module),
:func:`~matrixcalculus.compile.statements.live` drops the statements no output reads, and
:func:`~matrixcalculus.compile.emit.emit` prints the rest. The source depends only on the
backend's array library, which a :class:`Dialect` here spells.

>>> from matrixcalculus.ir import graph as g
>>> x = g.var("x", "vector", ("n",))
>>> print(generate([g.contract([x, x], [(0,), (0,)], ())], [x]).source.splitlines()[-2])
    t0 = (x @ x)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

from matrixcalculus.compile.emit import emit
from matrixcalculus.compile.plan import Structure, plan
from matrixcalculus.compile.rewrites import rewrite
from matrixcalculus.compile.statements import Block, Factors, live
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.registry import fill

__all__ = ["DIALECTS", "Dialect", "Program", "Structure", "generate"]


# ------------------------------------------------------------------------------ dialects


class Dialect:
    """How one array library spells each operation (NumPy's spelling here).

    ``dtype``: the floating type of the arrays the code makes (identities, ones, number arrays),
    that of the inputs (``float32`` in, ``float32`` out: see :meth:`typed`).
    """

    name = "numpy"
    module = "numpy"
    dtype = "float64"

    def typed(self, dtype: str) -> Dialect:
        """This dialect making arrays of ``dtype`` (``float64`` or ``float32``)."""
        if dtype not in ("float64", "float32"):
            raise MatrixCalculusError(f"compiled code computes in float64 or float32, not {dtype}")
        if dtype == self.dtype:
            return self
        other = copy.copy(self)
        other.dtype = dtype
        return other

    def _typed(self) -> str:
        """``, dtype=xp.float32`` where arrays are not the library's default float64."""
        return "" if self.dtype == "float64" else f", dtype=xp.{self.dtype}"

    def header(self) -> list[str]:
        return [f"import {self.module} as xp"]

    def prologue(self, parameters: Sequence[str]) -> list[str]:
        """Statements the function body starts with (given its parameter names)."""
        return []

    def requires(self, name: str) -> frozenset[str]:
        """The helpers (keys of :meth:`helpers`) that a call of the function ``name`` needs: those
        its record declares for this dialect and its spelling here calls (jax spells softmax
        ``jax.nn.softmax``, so the default ``_softmax`` is not needed there).

        >>> sorted(DIALECTS["dask"].requires("kron")), sorted(DIALECTS["numpy"].requires("kron"))
        (['_kron'], [])
        """
        record = FUNCTIONS.get(name)
        if record is None:
            raise MatrixCalculusError(f"no code for function {name!r} on backend {self.name}")
        spelling = (record.spelling(self.name) or "") + (record.spelling(self.name, axis=True) or "")
        return frozenset(h for h in record.helper_sources(self.name) if f"{h}(" in spelling)

    def sum(self, x: str, axes: Sequence[int]) -> str:
        axes = tuple(axes)
        return f"xp.sum({x}, axis={axes[0] if len(axes) == 1 else axes})"

    def permute(self, x: str, axes: Sequence[int]) -> str:
        """The view of the array named ``x`` whose axis k is its axis ``axes[k]``."""
        if list(axes) == [1, 0]:
            return f"{x}.T"
        return f"xp.transpose({x}, {tuple(axes)})"

    def tensordot(self, a: str, b: str, axes_a: Sequence[int], axes_b: Sequence[int]) -> str:
        return f"xp.tensordot({a}, {b}, axes=({list(axes_a)}, {list(axes_b)}))"

    def einsum(self, spec: str, operands: Sequence[str]) -> str:
        return f"xp.einsum({spec!r}, {', '.join(operands)})"

    def diagonal(self, x: str) -> str:
        return f"xp.diagonal({x})"

    def trace(self, x: str) -> str:
        return f"xp.trace({x})"

    def eye(self, n: str) -> str:
        return f"xp.eye({n}{self._typed()})"

    def ones(self, shape: str) -> str:
        return f"xp.ones({shape}{self._typed()})"

    def zeros(self, shape: str) -> str:
        return f"xp.zeros({shape}{self._typed()})"

    def full(self, shape: str, value: str) -> str:
        return f"xp.full({shape}, {value}{self._typed()})"

    def indicator(self, comparison: str) -> str:
        return f"xp.asarray({comparison}, dtype=xp.{self.dtype})"

    def call(self, name: str, *args: str, dim: int | None = None) -> str:
        """``name(args...)`` by the spelling the function's registry record gives this dialect;
        ``dim``: the axis (MATLAB's numbering), for a function that takes one."""
        record = FUNCTIONS.get(name)
        template = None if record is None else record.spelling(self.name, axis=dim is not None)
        if template is None:
            raise MatrixCalculusError(f"no code for function {name!r} on backend {self.name}")
        if dim is not None:
            template = template.replace("{axis}", str(dim - 1))  # the libraries count axes from 0
        return fill(template, args)

    def scalar(self, value: str) -> str:
        """A number (a literal, or a size) as a scalar of the library: arithmetic on two Python
        floats raises (``1.0 / 0.0``, ``10.0 ** 400.0``) or goes complex (``(-1.0) ** 0.5``)
        where the library's scalars give IEEE values. NumPy's own scalar type (``xp.float64(n)``)
        does, at a quarter of the cost of a 0-d array in each operation (0.08 us against
        0.3-0.4 us, measured here)."""
        return f"xp.{self.dtype}({value})"

    def helpers(self) -> dict[str, list[str]]:
        """Module-level helper functions by name (emitted only when the body calls them): those the
        registry records give this dialect's spellings."""
        return {
            helper: source.splitlines()
            for record in FUNCTIONS.values()
            for helper, source in record.helper_sources(self.name).items()
        }


class CupyDialect(Dialect):
    name = "cupy"
    module = "cupy"

    def scalar(self, value: str) -> str:
        # A 0-d array on the device (a NumPy scalar would be a host value).
        return f"xp.asarray({value}, dtype=xp.{self.dtype})"


class DaskDialect(Dialect):
    name = "dask"
    module = "dask.array"

    def header(self) -> list[str]:
        return ["import dask.array as xp", "import numpy as np"]

    def trace(self, x: str) -> str:
        return f"xp.sum(xp.diagonal({x}))"

    def scalar(self, value: str) -> str:
        return f"np.{self.dtype}({value})"


class JaxDialect(Dialect):
    name = "jax"
    module = "jax.numpy"

    def header(self) -> list[str]:
        return ["import jax", "import jax.numpy as xp"]

    def scalar(self, value: str) -> str:
        return f"xp.asarray({value}, dtype=xp.{self.dtype})"


class TorchDialect(Dialect):
    name = "torch"
    module = "torch"

    def header(self) -> list[str]:
        return ["import torch", "xp = torch"]

    def prologue(self, parameters: Sequence[str]) -> list[str]:
        # Constants (eye, ones, scalars) are made on the device of the arguments.
        return [f"_device = {parameters[0]}.device" if parameters else "_device = 'cpu'"]

    def sum(self, x: str, axes: Sequence[int]) -> str:
        axes = tuple(axes)
        return f"torch.sum({x}, dim={axes[0] if len(axes) == 1 else axes})"

    def permute(self, x: str, axes: Sequence[int]) -> str:
        if list(axes) == [1, 0]:
            return f"{x}.T"
        return f"{x}.permute{tuple(axes)}"

    def tensordot(self, a: str, b: str, axes_a: Sequence[int], axes_b: Sequence[int]) -> str:
        return f"torch.tensordot({a}, {b}, dims=({list(axes_a)}, {list(axes_b)}))"

    def diagonal(self, x: str) -> str:
        return f"torch.diagonal({x})"

    def eye(self, n: str) -> str:
        return f"torch.eye({n}, dtype=torch.{self.dtype}, device=_device)"

    def ones(self, shape: str) -> str:
        return f"torch.ones({shape}, dtype=torch.{self.dtype}, device=_device)"

    def zeros(self, shape: str) -> str:
        return f"torch.zeros({shape}, dtype=torch.{self.dtype}, device=_device)"

    def full(self, shape: str, value: str) -> str:
        return f"torch.full({shape}, {value}, dtype=torch.{self.dtype}, device=_device)"

    def indicator(self, comparison: str) -> str:
        return f"({comparison}).to(torch.{self.dtype})"

    def scalar(self, value: str) -> str:
        return f"torch.tensor({value}, dtype=torch.{self.dtype}, device=_device)"


DIALECTS: dict[str, Dialect] = {
    d.name: d for d in (Dialect(), CupyDialect(), DaskDialect(), JaxDialect(), TorchDialect())
}


# ------------------------------------------------------------------------------ generation


@dataclass
class Program:
    """Generated source: a function ``name(var1, var2, ...)`` returning the outputs in order.

    ``block`` holds the statements the source prints; ``structures[k]`` says how output k, when
    returned as factors, makes its tensor (None for an array).
    """

    source: str
    function: str
    arguments: list[str]
    backend: str
    structures: list[Structure | None] = field(default_factory=list)
    block: Block = field(default_factory=Block)


def generate(
    roots: Sequence[g.Node],
    variables: Sequence[g.Var],
    backend: str = "numpy",
    sizes: dict[g.Dim, int] | None = None,
    name: str = "derivatives",
    dense: bool = True,
    dtype: str = "float64",
    in_place: bool = False,
) -> Program:
    """Python source computing ``roots`` from ``variables`` with ``backend``'s array library.

    ``sizes`` guide the order of products (an unknown dimension counts as 1000). ``dense=False``:
    an output of order three or more that is a product of factors over disjoint axes (a
    Kronecker-structured Hessian) is returned as the tuple of its arrays, with
    ``Program.structures`` saying how they make the tensor (an identity factor is never formed).
    ``dtype``: the floating type of the inputs, which the arrays the code makes share.
    ``in_place``: the arguments are all arrays of the one floating type ``dtype``, so NumPy code
    may compute sums and products into temporaries it no longer needs (compile.rewrites).
    """
    if backend not in DIALECTS:
        raise MatrixCalculusError(f"unknown backend {backend!r}; choose one of {', '.join(DIALECTS)}")
    block = rewrite(live(plan(roots, variables, sizes, dense)), in_place and backend == "numpy")
    structures: list[Structure | None] = []
    for out in block.outputs:
        structure = out.structure if isinstance(out, Factors) else None
        assert structure is None or isinstance(structure, Structure)  # the planner's kind
        structures.append(structure)
    source = emit(block, DIALECTS[backend].typed(dtype), name)
    return Program(source, name, [v.name for v in variables], backend, structures, block)
