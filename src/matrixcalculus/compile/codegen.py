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

from collections.abc import Sequence
from dataclasses import dataclass, field

from matrixcalculus.compile.emit import emit, helpers_in
from matrixcalculus.compile.plan import Structure, plan
from matrixcalculus.compile.statements import Block, Factors, live
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g

__all__ = ["DIALECTS", "Dialect", "Program", "Structure", "generate"]


# ------------------------------------------------------------------------------ dialects


class Dialect:
    """How one array library spells each operation (NumPy's spelling here)."""

    name = "numpy"
    module = "numpy"

    def header(self) -> list[str]:
        return [f"import {self.module} as xp"]

    def prologue(self, parameters: Sequence[str]) -> list[str]:
        """Statements the function body starts with (given its parameter names)."""
        return []

    def requires(self, name: str) -> frozenset[str]:
        """The helpers (keys of :meth:`helpers`) that a call of the function ``name`` needs: those
        its spelling calls."""
        return helpers_in(self.call(name, "x"), tuple(self.helpers()))

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
        return f"xp.eye({n})"

    def ones(self, shape: str) -> str:
        return f"xp.ones({shape})"

    def zeros(self, shape: str) -> str:
        return f"xp.zeros({shape})"

    def full(self, shape: str, value: str) -> str:
        return f"xp.full({shape}, {value})"

    def indicator(self, comparison: str) -> str:
        return f"xp.asarray({comparison}, dtype=xp.float64)"

    def call(self, name: str, x: str) -> str:
        simple = {"exp", "log", "sin", "cos", "tan", "tanh", "sqrt", "abs", "sign", "arcsin", "arccos", "arctan"}
        if name in simple:
            return f"xp.{name}({x})"
        if name == "relu":
            return f"xp.maximum({x}, 0.0)"
        if name == "sigmoid":
            # 1/(1 + exp(-x)) = (1 + tanh(x/2))/2: one transcendental, no overflow.
            return f"0.5 * (1.0 + xp.tanh(0.5 * {x}))"
        if name == "softplus":
            return f"xp.logaddexp(0.0, {x})"
        if name == "det":
            return f"xp.linalg.det({x})"
        if name == "logdet":
            # log|det| alone would be a wrong number for a negative determinant: + log(sign) makes
            # it nan (and -inf for a singular matrix), which the finite check then reports.
            return f"_logdet({x})"
        if name == "inv":
            return f"xp.linalg.inv({x})"
        if name == "norm1":
            return f"xp.sum(xp.abs({x}))"
        if name == "norm2":
            return f"xp.sqrt(xp.sum({x} * {x}))"
        if name == "logsumexp":
            return f"_logsumexp({x})"
        if name == "softmax":
            return f"_softmax({x})"
        raise MatrixCalculusError(f"no code for function {name!r} on backend {self.name}")

    def scalar(self, value: str) -> str:
        """A number literal as a 0-d array: arithmetic on two Python floats raises (``1.0 / 0.0``,
        ``10.0 ** 400.0``) or goes complex (``(-1.0) ** 0.5``) where arrays give IEEE values."""
        return f"xp.asarray({value}, dtype=xp.float64)"

    def helpers(self) -> dict[str, list[str]]:
        """Module-level helper functions by name (emitted only when the body calls them)."""
        return {
            "_logdet": [
                "def _logdet(x):",
                "    sign, logabs = xp.linalg.slogdet(x)",
                "    return logabs + xp.log(sign)",
            ],
            "_logsumexp": [
                "def _logsumexp(x):",
                "    top = xp.max(x)",
                "    return top + xp.log(xp.sum(xp.exp(x - top)))",
            ],
            "_softmax": [
                "def _softmax(x):",
                "    e = xp.exp(x - xp.max(x))",
                "    return e / xp.sum(e)",
            ],
        }


class CupyDialect(Dialect):
    name = "cupy"
    module = "cupy"


class DaskDialect(Dialect):
    name = "dask"
    module = "dask.array"

    def header(self) -> list[str]:
        return ["import dask.array as xp", "import numpy as np"]

    def trace(self, x: str) -> str:
        return f"xp.sum(xp.diagonal({x}))"

    def call(self, name: str, x: str) -> str:
        if name in ("det", "logdet"):
            # dask has no determinant: the factorisation runs in memory (a small square matrix).
            inner = f"np.asarray({x})"
            return f"np.linalg.det({inner})" if name == "det" else f"_logdet({inner})"
        return super().call(name, x)

    def helpers(self) -> dict[str, list[str]]:
        # The factorisation runs in NumPy: its sign and logarithm are NumPy numbers.
        return {
            **super().helpers(),
            "_logdet": [
                "def _logdet(x):",
                "    sign, logabs = np.linalg.slogdet(x)",
                "    return logabs + np.log(sign)",
            ],
        }


class JaxDialect(Dialect):
    name = "jax"
    module = "jax.numpy"

    def header(self) -> list[str]:
        return ["import jax", "import jax.numpy as xp"]

    def call(self, name: str, x: str) -> str:
        if name == "sigmoid":
            return f"jax.nn.sigmoid({x})"
        if name == "logsumexp":
            return f"jax.nn.logsumexp({x})"
        if name == "softmax":
            return f"jax.nn.softmax({x})"
        return super().call(name, x)


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
        return f"torch.eye({n}, dtype=torch.float64, device=_device)"

    def ones(self, shape: str) -> str:
        return f"torch.ones({shape}, dtype=torch.float64, device=_device)"

    def zeros(self, shape: str) -> str:
        return f"torch.zeros({shape}, dtype=torch.float64, device=_device)"

    def full(self, shape: str, value: str) -> str:
        return f"torch.full({shape}, {value}, dtype=torch.float64, device=_device)"

    def indicator(self, comparison: str) -> str:
        return f"({comparison}).to(torch.float64)"

    def call(self, name: str, x: str) -> str:
        if name == "relu":
            return f"torch.relu({x})"
        if name == "sigmoid":
            return f"torch.sigmoid({x})"
        if name == "softplus":
            return f"torch.nn.functional.softplus({x})"
        if name == "logsumexp":
            return f"torch.logsumexp({x}, dim=0)"
        if name == "softmax":
            return f"torch.softmax({x}, dim=0)"
        if name == "norm1":
            return f"torch.sum(torch.abs({x}))"
        return super().call(name, x)

    def scalar(self, value: str) -> str:
        return f"torch.tensor({value}, dtype=torch.float64, device=_device)"

    def helpers(self) -> dict[str, list[str]]:
        return {
            "_logdet": [
                "def _logdet(x):",
                "    sign, logabs = torch.linalg.slogdet(x)",
                "    return logabs + torch.log(sign)",
            ]
        }


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
) -> Program:
    """Python source computing ``roots`` from ``variables`` with ``backend``'s array library.

    ``sizes`` guide the order of products (an unknown dimension counts as 1000). ``dense=False``:
    an output of order three or more that is a product of factors over disjoint axes (a
    Kronecker-structured Hessian) is returned as the tuple of its arrays, with
    ``Program.structures`` saying how they make the tensor (an identity factor is never formed).
    """
    if backend not in DIALECTS:
        raise MatrixCalculusError(f"unknown backend {backend!r}; choose one of {', '.join(DIALECTS)}")
    block = live(plan(roots, variables, sizes, dense))
    structures: list[Structure | None] = []
    for out in block.outputs:
        structure = out.structure if isinstance(out, Factors) else None
        assert structure is None or isinstance(structure, Structure)  # the planner's kind
        structures.append(structure)
    source = emit(block, DIALECTS[backend], name)
    return Program(source, name, [v.name for v in variables], backend, structures, block)
