"""Time the explicit small case (``Expression.explicit``) against sympy differentiating the same
function written in components.

Run:  .venv/bin/python benchmarks/bench_explicit.py [--repeat 5] [--size 3]

For each case, ``ours`` is ``d.explicit(sizes)`` of the derivative ``d = mc.derivative(f, wrt)``
(computed once, not timed): the entries in components, simplified. ``sympy`` is ``sympy.diff`` of
every entry of ``F`` (a ``sympy.Matrix`` of the components, built once, not timed) by every
component of the variable: the same table of partial derivatives, as sympy returns them (its
automatic simplification only). The table prints the median of ``--repeat`` runs in milliseconds
and the ratio sympy / ours (above 1: ours is faster). Both entry tables are checked equal with
``sympy.simplify`` on the first run.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import sympy

import matrixcalculus as mc


def sym_matrix(name: str, rows: int, cols: int) -> Any:
    return sympy.Matrix(rows, cols, lambda i, j: sympy.Symbol(f"{name}_{i + 1}_{j + 1}"))


def sym_vector(name: str, n: int) -> Any:
    return sympy.Matrix(n, 1, lambda i, _: sympy.Symbol(f"{name}{i + 1}"))


def to_sympy(text: str) -> Any:
    text = re.sub(r"(\w+)\[(\d+),(\d+)\]", r"\1_\2_\3", text)
    text = re.sub(r"(\w+)\[(\d+)\]", r"\1_\2", text)
    return sympy.sympify(text.replace("^", "**"), locals={"exp": sympy.exp, "tanh": sympy.tanh})


def cases(n: int) -> list[tuple[str, str, dict[str, Any] | None, dict[str, int], Any, Any]]:
    m = n
    A, R, W = sym_matrix("A", m, n), sym_matrix("R", m, n), sym_matrix("W", m, n)
    x, y, z, t = sym_vector("x", n), sym_vector("y", m), sym_vector("z", n), sym_vector("t", m)
    sizes = {"m": m, "n": n}
    return [
        ("x .* z", "x", None, {"n": n}, x.multiply_elementwise(z), x),
        ("exp(x)", "x", None, {"n": n}, x.applyfunc(sympy.exp), x),
        ("A*x", "A", None, sizes, A * x, A),
        ("y'*A*x", "A", {"y": ("m",), "x": ("n",)}, sizes, y.T * A * x, A),
        ("R'*R", "R", None, sizes, R.T * R, R),
        ("0.5*norm2(W*x - t)^2", "W", None, sizes, ((W * x - t).T * (W * x - t)) / 2, W),
        ("tanh(A*x)", "x", None, sizes, (A * x).applyfunc(sympy.tanh), x),
    ]


def sympy_table(F: Any, V: Any) -> list[Any]:
    return [
        sympy.diff(F[i, j], V[k, l])
        for i in range(F.rows)
        for j in range(F.cols)
        for k in range(V.rows)
        for l in range(V.cols)
    ]


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", type=int, default=3)
    args = parser.parse_args()
    print(f"{'case':28s} {'shape':>14s} {'ours ms':>9s} {'sympy ms':>9s} {'sympy/ours':>10s}")
    for f, wrt, types, sizes, F, V in cases(args.size):
        d = mc.derivative(f, wrt, types=types)
        explicit = d.explicit(sizes)
        ours_entries = [to_sympy(str(e)) for e in explicit.entries.flat]
        reference = sympy_table(F, V)
        assert all(sympy.simplify(a - b) == 0 for a, b in zip(ours_entries, reference, strict=True)), f
        ours = median_ms(lambda d=d, sizes=sizes: d.explicit(sizes), args.repeat)
        theirs = median_ms(lambda F=F, V=V: sympy_table(F, V), args.repeat)
        shape = " x ".join(map(str, explicit.shape))
        print(f"{f + ' by ' + wrt:28s} {shape:>14s} {ours:9.2f} {theirs:9.2f} {theirs / ours:10.2f}")


if __name__ == "__main__":
    main()
