"""Derived gradients inside the frameworks people train with: a ``torch.autograd.Function`` or a
``jax.custom_vjp`` function whose forward is the compiled value and whose backward is our derived
vector-Jacobian product.

>>> import torch, matrixcalculus as mc
>>> loss = mc.differentiable("norm2(W*x - t)^2/2", wrt="W", backend="torch", types={"t": "vector"})
>>> loss.arguments
('W', 'x', 't')
>>> W = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
>>> x, t = torch.ones(3, dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
>>> loss(W, x, t).backward()
>>> W.grad.tolist()  # (W*x - t)*x'
[[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from matrixcalculus.api.calculus import Wrt, _expression, _names, _variable
from matrixcalculus.compile.runtime import CompiledDerivatives
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import check_nodes
from matrixcalculus.transform.differentiation import vjp_nodes

BACKENDS = ("torch", "jax")


class FrameworkFunction:
    """``f`` as a function of the framework's arrays that the framework differentiates with our VJP.

    Call it with the arrays of :attr:`arguments`, positionally in that order or by name; it returns
    the value of ``f``. ``native`` is the framework's own object: the ``torch.autograd.Function``
    subclass (call ``native.apply(*arrays)``) or the ``jax.custom_vjp`` function, usable under
    ``torch.compile`` and ``jax.jit``/``jax.grad``. Variables outside ``wrt`` get no gradient
    (``None`` in torch, zeros in jax).
    """

    def __init__(self, arguments: tuple[str, ...], wrt: tuple[str, ...], backend: str, native: Any):
        self.arguments = arguments
        self.wrt = wrt
        self.backend = backend
        self.native = native

    def __call__(self, *arrays: Any, **named: Any) -> Any:
        if named:
            unknown = sorted(set(named) - set(self.arguments))
            if unknown:
                raise MatrixCalculusError(f"no variable named {', '.join(unknown)}; the arguments are {self.arguments}")
            given = dict(zip(self.arguments, arrays, strict=False))
            twice = sorted(set(given) & set(named))
            if twice:
                raise MatrixCalculusError(f"{', '.join(twice)} given twice")
            given.update(named)
            missing = [n for n in self.arguments if n not in given]
            if missing:
                raise MatrixCalculusError(f"no value given for {', '.join(missing)}")
            arrays = tuple(given[n] for n in self.arguments)
        if len(arrays) != len(self.arguments):
            raise MatrixCalculusError(
                f"{len(self.arguments)} arrays expected ({', '.join(self.arguments)}), not {len(arrays)}"
            )
        if self.backend == "torch":
            return self.native.apply(*arrays)
        return self.native(*arrays)

    def __repr__(self) -> str:
        return f"FrameworkFunction({self.backend}, arguments={self.arguments}, wrt={self.wrt})"


def differentiable(
    f: Any,
    wrt: Wrt | None = None,
    *,
    backend: str = "torch",
    types: Mapping[str, Any] | None = None,
    check_finite: bool = True,
) -> FrameworkFunction:
    """``f`` for ``backend`` ("torch" or "jax"), with its derived vector-Jacobian product as the
    framework's backward rule: a derived gradient dropped into a training loop.

    ``wrt``: the variables that get gradients (default: all). Arrays are float64 (jax needs
    ``jax_enable_x64``). The forward and backward are compiled code (``mc.compile``): torch checks
    that their results are finite (``check_finite=False`` returns IEEE values); jax code may run
    traced (``jax.jit``), where nothing can be checked, so it always returns IEEE values.
    """
    if backend not in BACKENDS:
        raise MatrixCalculusError(f"differentiable works with {' or '.join(BACKENDS)}, not {backend!r}")
    expr = _expression(f, types)
    variables = dict(expr.node_variables())
    names = list(variables) if wrt is None else _names(wrt)[0]
    wrts = [_variable(expr, n, types) for n in names]
    for w in wrts:
        variables.setdefault(w.name, w)
    # The cotangent is one more input of the backward code, under a name no variable has.
    seed_name = "cotangent"
    while seed_name in variables:
        seed_name += "_"
    kind = ("scalar", "vector", "matrix")[expr.node.rank] if expr.node.rank <= 2 else "matrix"
    seed = g.var(seed_name, kind, expr.node.shape)
    pullbacks = vjp_nodes(expr.node, wrts, seed)
    check_nodes(pullbacks, "the vector-Jacobian product", MatrixCalculusError)
    inputs = list(variables.values())
    checked = check_finite and backend == "torch"
    forward = CompiledDerivatives([expr.node], [("value", 1)], inputs, True, backend, True, checked, ["the value"])
    backward = CompiledDerivatives(
        pullbacks,
        [("vjp", len(pullbacks))],
        [*inputs, seed],
        False,
        backend,
        True,
        checked,
        [f"the vector-Jacobian product w.r.t. {n}" for n in names],
    )
    arguments = tuple(variables)
    position = {n: names.index(n) for n in names}
    native = (_torch_function if backend == "torch" else _jax_function)(arguments, position, forward, backward)
    return FrameworkFunction(arguments, tuple(names), backend, native)


def _pullback(backward: CompiledDerivatives, arguments: tuple[str, ...], arrays: Any, cotangent: Any) -> tuple:
    (parts,) = backward({**dict(zip(arguments, arrays, strict=True)), backward.variables[-1].name: cotangent})
    return parts if isinstance(parts, tuple) else (parts,)


def _torch_function(
    arguments: tuple[str, ...], position: dict[str, int], forward: CompiledDerivatives, backward: CompiledDerivatives
) -> Any:
    import torch

    class Derived(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *arrays: Any) -> Any:
            ctx.save_for_backward(*arrays)
            (value,) = forward(dict(zip(arguments, arrays, strict=True)))
            return torch.as_tensor(value, dtype=torch.float64)

        @staticmethod
        def backward(ctx: Any, cotangent: Any) -> Any:
            arrays = ctx.saved_tensors
            parts = _pullback(backward, arguments, arrays, cotangent)
            return tuple(
                parts[position[n]] if n in position and ctx.needs_input_grad[k] else None
                for k, n in enumerate(arguments)
            )

    return Derived


def _jax_function(
    arguments: tuple[str, ...], position: dict[str, int], forward: CompiledDerivatives, backward: CompiledDerivatives
) -> Any:
    import jax
    import jax.numpy as jnp

    def value(*arrays: Any) -> Any:
        (out,) = forward(dict(zip(arguments, arrays, strict=True)))
        return out

    derived = jax.custom_vjp(value)

    def fwd(*arrays: Any) -> tuple[Any, Any]:
        return value(*arrays), arrays

    def bwd(arrays: Any, cotangent: Any) -> tuple:
        parts = _pullback(backward, arguments, arrays, cotangent)
        return tuple(
            parts[position[n]] if n in position else jnp.zeros_like(a) for n, a in zip(arguments, arrays, strict=True)
        )

    derived.defvjp(fwd, bwd)
    return derived
