"""The command line: ``matrixcalculus "x'*A*x" --types A=symmetric``.

Prints the expression in matrix notation with its variables' types and shapes, and with
``--evaluate`` its value on random inputs. Bad input prints the library's message and exits
with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import graph as g
from .errors import MatrixCalculusError
from .expression import Expression, parse


def _types(items: Sequence[str]) -> dict[str, Any]:
    """``A=symmetric x=vector a=scalar W=3x4 x=5`` -> the ``types=`` mapping."""
    types: dict[str, Any] = {}
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            name, sep, spec = part.partition("=")
            if not sep or not name.strip() or not spec.strip():
                raise MatrixCalculusError(f"--types takes NAME=TYPE (e.g. A=symmetric, x=vector, W=3x4), not {part!r}")
            spec = spec.strip()
            if all(p.strip().isdigit() for p in spec.lower().split("x")):
                types[name.strip()] = tuple(int(p) for p in spec.lower().split("x"))
            else:
                types[name.strip()] = spec
    return types


def random_values(expr: Expression, size: int, seed: int) -> dict[str, np.ndarray]:
    """Random standard-normal values for the variables (symmetric ones symmetrised).

    Every symbolic dimension gets ``size``; numeric ones keep their number.
    """
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for name, var in expr.variables.items():
        shape = tuple(d if isinstance(d, int) else size for d in var.shape)
        value = rng.standard_normal(shape)
        if var.kind == "symmetric":
            value = (value + value.T) / 2
        values[name] = value
    return values


def _describe(expr: Expression) -> list[str]:
    lines = []
    for var in expr.variables.values():
        lines.append(f"  {var!r}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="matrixcalculus",
        description="Matrix calculus for deep learning: parse, print and evaluate matrix expressions.",
        epilog="example: matrixcalculus \"x'*A*x\" --types A=symmetric --evaluate",
    )
    p.add_argument("expression", help="the expression, e.g. \"x'*A*x\" or \"norm2(W*x - t)^2/2\"")
    p.add_argument("--types", nargs="*", default=[], metavar="NAME=TYPE",
                   help="declare types: scalar, vector, matrix, symmetric, or a shape such as 3 or 3x4")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of the input syntax")
    p.add_argument("--index", action="store_true", help="also print the index notation")
    p.add_argument("--evaluate", action="store_true", help="evaluate on random inputs")
    p.add_argument("--size", type=int, default=3, help="size of each symbolic dimension for --evaluate (3)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --evaluate (0)")
    return p


def run(argv: Sequence[str] | None = None) -> str:
    args = build_parser().parse_args(argv)
    expr = parse(args.expression, types=_types(args.types))
    lines = [expr.latex() if args.latex else str(expr)]
    lines.append(f"  shape: {g.shape_text(expr.shape)}")
    lines += _describe(expr)
    if args.index:
        lines.append(f"  index notation: {expr.index_notation()}")
    if args.evaluate:
        if args.size < 1:
            raise MatrixCalculusError("--size must be at least 1")
        values = random_values(expr, args.size, args.seed)
        with np.printoptions(precision=4, suppress=True):
            lines.append(f"  value at random inputs (size {args.size}, seed {args.seed}):")
            lines += ["    " + line for line in str(np.asarray(expr.evaluate(values))).splitlines()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        print(run(argv))
    except MatrixCalculusError as exc:
        print(f"matrixcalculus: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
