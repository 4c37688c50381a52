"""The command line: ``matrixcalculus "x'*A*x" --types A=symmetric``.

With ``--wrt`` prints the derivative in matrix notation (index notation for tensors of order
three or more), the variables' types and shapes, and with ``--check`` the error against finite
differences at random inputs. Without ``--wrt`` prints the expression itself and, with
``--evaluate``, its value. Bad input prints the library's message and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import graph as g
from .calculus import derivative
from .check import CheckResult, check_derivative, random_values
from .errors import MatrixCalculusError
from .expression import Expression, parse
from .printing import LATEX, TEXT, free_indices, with_bindings


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


def _describe(expr: Expression) -> list[str]:
    lines = []
    for var in expr.variables.values():
        lines.append(f"  {var!r}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="matrixcalculus",
        description="Matrix calculus for deep learning: derivatives of matrix expressions in matrix notation.",
        epilog="examples:\n"
               "  matrixcalculus \"x'*A*x\" --wrt x\n"
               "  matrixcalculus \"0.5*norm2(W*x - t)^2\" --wrt W --check\n"
               "  matrixcalculus \"x'*A*x\" --wrt x --order 2 --types A=symmetric\n"
               "  matrixcalculus \"x'*A*x\" --evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("expression", help="the expression, e.g. \"x'*A*x\" or \"norm2(W*x - t)^2/2\"")
    p.add_argument("--wrt", action="append", default=[], metavar="NAME",
                   help="differentiate with respect to NAME (repeat, or NAME,NAME, for several)")
    p.add_argument("--order", type=int, default=1, help="order of the derivative (1; 2 for a Hessian)")
    p.add_argument("--layout", choices=("numerator", "denominator"), default="numerator",
                   help="numerator: shape f x wrt (default); denominator: wrt x f")
    p.add_argument("--types", nargs="*", default=[], metavar="NAME=TYPE",
                   help="declare types: scalar, vector, matrix, symmetric, or a shape such as 3 or 3x4")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of the input syntax")
    p.add_argument("--index", action="store_true", help="also print the index notation")
    p.add_argument("--check", action="store_true",
                   help="compare the derivative with central finite differences at random inputs")
    p.add_argument("--evaluate", action="store_true", help="evaluate on random inputs")
    p.add_argument("--size", type=int, default=3, help="size of each symbolic dimension for --check/--evaluate (3)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --check/--evaluate (0)")
    return p


def _value_lines(value: Any) -> list[str]:
    with np.printoptions(precision=4, suppress=True):
        return ["    " + line for line in str(np.asarray(value)).splitlines()]


def run(argv: Sequence[str] | None = None) -> tuple[str, int]:
    """The text to print and the exit status (1 when --check finds a mismatch)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0].startswith("-") and not argv[0].startswith("--") and argv[0] != "-h":
        # An expression such as -x^2 is not an option: read it as the positional argument.
        argv = [*argv[1:], "--", argv[0]]
    args = build_parser().parse_args(argv)
    if args.size < 1:
        raise MatrixCalculusError("--size must be at least 1")
    types = _types(args.types)
    expr = parse(args.expression, types=types)
    wrt = [name.strip() for item in args.wrt for name in item.split(",") if name.strip()]
    style = LATEX if args.latex else TEXT
    lines: list[str] = []
    status = 0
    if not wrt:
        lines.append(expr.latex() if args.latex else str(expr))
        lines.append(f"  shape: {g.shape_text(expr.shape)}")
        lines += _describe(expr)
        if args.index:
            lines.append(f"  index notation: {expr.index_notation()}")
        if args.evaluate:
            values = random_values(expr.node_variables(), args.size, args.seed)
            dims = {d: args.size for n in g.postorder(expr.node) for d in n.shape if isinstance(d, str)}
            lines.append(f"  value at random inputs (size {args.size}, seed {args.seed}):")
            lines += _value_lines(expr.evaluate(values, dims=dims))
        return "\n".join(lines), status
    results = derivative(expr, wrt, types=types, order=args.order, layout=args.layout)
    assert isinstance(results, tuple)
    reserved = set(expr.variables) | {v for r in results for v in r.variables}
    matrix_results = [r for r in results if r.node.rank <= 2]
    texts, bindings = with_bindings([r.node for r in matrix_results], reserved, style)
    printed = dict(zip([id(r) for r in matrix_results], texts, strict=True))
    mark = "^2" if args.order == 2 else "" if args.order == 1 else f"^{args.order}"
    for name, result in zip(wrt, results, strict=True):
        label = f"d{mark}f/d{name}{mark}" if args.order > 1 else f"df/d{name}"
        if result.node.rank > 2:
            free = ",".join(free_indices(result.node))
            lines.append(f"{label}[{free}] = {result.index_notation() if not args.latex else result.latex()}")
        else:
            lines.append(f"{label} = {printed[id(result)]}")
        if args.index and result.node.rank <= 2:
            lines.append(f"  index notation: {result.index_notation()}")
    if bindings:
        lines.append("where")
        lines += [f"  {name} = {text}" for name, text in bindings]
    lines.append(f"f = {expr.latex() if args.latex else expr}")
    lines += _describe(expr)
    for name, result in zip(wrt, results, strict=True):
        lines.append(f"  shape of df/d{name}: {g.shape_text(result.shape)} ({args.layout} layout)")
    if args.check:
        values = random_values(expr.node_variables(), args.size, args.seed)
        for name, result in zip(wrt, results, strict=True):
            report = check(expr, name, result, values, args.order, args.layout, types)
            lines.append(f"  check: {report}")
            status = status or (0 if report.ok else 1)
    return "\n".join(lines), status


def check(expr: Expression, name: str, result: Expression, values: dict[str, np.ndarray], order: int,
          layout: str, types: dict[str, Any]) -> CheckResult:
    """Finite-difference check of one printed derivative (numerator layout internally)."""
    from .differentiation import to_denominator

    variables = expr.node_variables()
    if name not in variables:
        var = result.variables[name].node if name in result.variables else None
        if var is None:
            raise MatrixCalculusError(f"{name} does not occur; nothing to check")
        variables = {**variables, name: var}
        values = {**values, **random_values({name: var}, 3, 1)}
    wrt = variables[name]
    node = result.node
    if layout == "denominator":
        # Undo the layout: the check works in numerator layout.
        node = to_denominator(node, wrt.rank * order)
    lower = None
    if order >= 2:
        first = derivative(expr, name, types=types, order=order - 1)
        assert isinstance(first, Expression)
        lower = first.node
    return check_derivative(expr.node, node, wrt, values, order, lower)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        text, status = run(argv)
    except MatrixCalculusError as exc:
        print(f"matrixcalculus: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
