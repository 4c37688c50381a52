"""Structured results: a tensor kept as a product of factors over disjoint axes.

The Hessian of ``norm2(T - U*V')^2`` w.r.t. the n x r matrix ``U`` is ``2 delta[i,k] (V'V)[j,l]``:
an n x r x n x r tensor (n^2 r^2 numbers) that is really an identity times an r x r matrix (a
Kronecker product). :class:`Factored` keeps it that way; ``dense()`` (or ``numpy.asarray``) builds
the array when asked, and ``contract(v)`` applies it to a direction (a Hessian-vector product)
without ever forming it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class Factored:
    """``coeff * prod_k factor_k[axes_k]`` with the factors' axes disjoint and covering the result.

    A factor is an array, or ``("eye", n)`` for an identity that is never formed.
    """

    def __init__(self, coeff: float, factors: Sequence[tuple[Any, tuple[int, ...]]], shape: tuple[int, ...], xp: Any):
        self.coeff = coeff
        self.factors = list(factors)
        self.shape = tuple(shape)
        self.xp = xp

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self) -> str:
        parts = []
        for f, axes in self.factors:
            name = f"eye({f[1]})" if _is_eye(f) else f"array{tuple(f.shape)}"
            parts.append(f"{name}{list(axes)}")
        return f"Factored({self.coeff} * {' * '.join(parts)}, shape={self.shape})"

    def _operands(self) -> tuple[list[Any], list[str]]:
        arrays, specs = [], []
        for f, axes in self.factors:
            arrays.append(self.xp.eye(f[1]) if _is_eye(f) else f)
            specs.append("".join(_LETTERS[a] for a in axes))
        return arrays, specs

    def dense(self) -> Any:
        """The full array. With one identity factor (NumPy, PyTorch) only its nonzero blocks are
        written: zeros, then the rest of the product on the identity's diagonal."""
        eyes = [k for k, (f, _) in enumerate(self.factors) if _is_eye(f)]
        name = getattr(self.xp, "__name__", "")
        if len(eyes) == 1 and (name.startswith("numpy") or name.startswith("torch")):
            return self._dense_on_diagonal(eyes[0])
        arrays, specs = self._operands()
        out = _LETTERS[: self.ndim]
        return self.coeff * self.xp.einsum(",".join(specs) + "->" + out, *arrays)

    def _dense_on_diagonal(self, k: int) -> Any:
        xp = self.xp
        (_, n), (p, q) = self.factors[k]
        rest = [(f, axes) for j, (f, axes) in enumerate(self.factors) if j != k]
        others = [a for a in range(self.ndim) if a not in (p, q)]
        letters = {a: _LETTERS[i] for i, a in enumerate(others)}
        block = self.coeff * xp.einsum(
            ",".join("".join(letters[a] for a in axes) for _, axes in rest)
            + "->"
            + "".join(letters[a] for a in others),
            *(f for f, _ in rest),
        )
        result = xp.zeros(self.shape, dtype=block.dtype)
        moved = xp.moveaxis(result, (p, q), (0, 1)) if hasattr(xp, "moveaxis") else result.movedim((p, q), (0, 1))
        index = xp.arange(n)
        moved[index, index] = block  # a view: this writes the diagonal blocks of result
        return result

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        import numpy as np

        return np.asarray(self.dense(), dtype=dtype)

    def contract(self, v: Any) -> Any:
        """Sum over the trailing axes against ``v`` (their shape): ``H[o..., w...] v[w...]``.

        An identity factor renames an index instead of multiplying by a matrix.
        """
        w = len(v.shape)
        trailing = set(range(self.ndim - w, self.ndim))
        rename = {a: a for a in range(self.ndim)}
        arrays, specs = [], []
        for f, axes in self.factors:
            if _is_eye(f) and len(axes) == 2 and (axes[0] in trailing) != (axes[1] in trailing):
                inner, outer = (axes[0], axes[1]) if axes[0] in trailing else (axes[1], axes[0])
                rename[inner] = outer
                continue
            arrays.append(self.xp.eye(f[1]) if _is_eye(f) else f)
            specs.append(axes)
        letters = [_LETTERS[rename[a]] for a in range(self.ndim)]
        spec = ",".join("".join(letters[a] for a in axes) for axes in specs)
        spec_v = "".join(letters[a] for a in range(self.ndim - w, self.ndim))
        out = "".join(letters[a] for a in range(self.ndim - w))
        return self.coeff * self.xp.einsum((spec + "," if spec else "") + spec_v + "->" + out, *arrays, v)


def _is_eye(f: Any) -> bool:
    return isinstance(f, tuple) and len(f) == 2 and f[0] == "eye"
