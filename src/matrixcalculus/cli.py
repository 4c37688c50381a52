"""The command line: ``matrixcalculus "x'*A*x" --types A=symmetric``.

With ``--wrt`` prints the derivative in matrix notation (index notation for tensors of order
three or more), the variables' types and shapes, and with ``--check`` the error against finite
differences at random inputs. Without ``--wrt`` prints the expression itself and, with
``--evaluate``, its value. The expression ``-`` is read from standard input.

Exit status: 0 done; 1 a ``--check`` found a mismatch; 2 any error, printed as one
``matrixcalculus: error: ...`` message (never a traceback; an unexpected exception is reported
as a bug in one line); 130 interrupted (Ctrl-C); 141 the reader closed the pipe (``| head``),
silently, as a program killed by SIGPIPE.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from matrixcalculus.api.calculus import derivative
from matrixcalculus.api.expression import Expression, parse
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import Limits, current_limits, limit_error, resource_limits
from matrixcalculus.numeric.check import CheckResult, check_derivative, random_values
from matrixcalculus.render.printing import LATEX, TEXT, free_indices, with_bindings


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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is our one-line error (main prints it), not usage + exit."""

    def error(self, message: str) -> Any:
        raise MatrixCalculusError(f"{message} (see matrixcalculus --help)")


def _limits(items: Sequence[str]) -> dict[str, int]:
    """``max_order=10 max_nodes=1e7`` -> overrides of :class:`Limits`."""
    names = [f.name for f in dataclasses.fields(Limits)]
    overrides: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise MatrixCalculusError(f"--limit takes NAME=NUMBER with NAME one of {', '.join(names)}, not {item!r}")
        try:
            number = float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            number = None
        if number is None or number != int(number) or int(number) < 1:
            raise MatrixCalculusError(f"--limit {name}: the value is a positive whole number, not {value!r}")
        overrides[name] = int(number)
    return overrides


def build_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    limits_text = ", ".join(f"{f.name} ({getattr(defaults, f.name):,})" for f in dataclasses.fields(Limits))
    p = _Parser(
        prog="matrixcalculus",
        description="Matrix calculus for deep learning: derivatives of matrix expressions in matrix notation.",
        epilog="examples:\n"
        '  matrixcalculus "x\'*A*x" --wrt x\n'
        '  matrixcalculus "0.5*norm2(W*x - t)^2" --wrt W --check\n'
        '  matrixcalculus "x\'*A*x" --wrt x --order 2 --types A=symmetric\n'
        '  matrixcalculus "x\'*A*x" --evaluate',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "expression", help='the expression, e.g. "x\'*A*x" or "norm2(W*x - t)^2/2"; - reads it from standard input'
    )
    p.add_argument(
        "--wrt",
        action="append",
        default=[],
        metavar="NAME",
        help="differentiate with respect to NAME (repeat, or NAME,NAME, for several)",
    )
    p.add_argument("--order", type=int, default=1, help="order of the derivative (1; 2 for a Hessian)")
    p.add_argument(
        "--layout",
        choices=("numerator", "denominator"),
        default="numerator",
        help="numerator: shape f x wrt (default); denominator: wrt x f",
    )
    p.add_argument(
        "--types",
        nargs="*",
        default=[],
        metavar="NAME=TYPE",
        help="declare types: scalar, vector, matrix, symmetric, or a shape such as 3 or 3x4",
    )
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of the input syntax")
    p.add_argument("--index", action="store_true", help="also print the index notation")
    p.add_argument(
        "--check", action="store_true", help="compare the derivative with central finite differences at random inputs"
    )
    p.add_argument("--evaluate", action="store_true", help="evaluate on random inputs")
    p.add_argument("--size", type=int, default=3, help="size of each symbolic dimension for --check/--evaluate (3)")
    p.add_argument("--seed", type=int, default=0, help="random seed for --check/--evaluate (0)")
    p.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=NUMBER",
        help=f"raise or lower a resource limit; the limits and defaults: {limits_text}",
    )
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
    with resource_limits(**_limits(args.limit)):
        return _run(args)


def _read_expression(text: str) -> str:
    """The expression argument, or standard input for ``-`` (a 1 MB expression is no argument)."""
    if text != "-":
        return text
    limit = current_limits().max_length
    try:
        data = sys.stdin.read(limit + 1)
    except UnicodeDecodeError as exc:
        raise MatrixCalculusError(f"standard input is not text in the locale's encoding: {exc.reason}") from None
    if len(data) > limit:
        raise limit_error(
            MatrixCalculusError, "max_length", f"the expression on standard input has more than {limit:,} characters"
        )
    return data.strip()


def _at_random_inputs(args: argparse.Namespace, exc: EvaluationError) -> EvaluationError:
    """An evaluation error at the CLI's random inputs: say which inputs, and what to try."""
    if getattr(exc, "limit", None):
        return exc  # a size beyond a limit: other random inputs would not help
    return EvaluationError(
        f"at the random inputs (size {args.size}, seed {args.seed}): {exc.message}; "
        f"another --seed or --size draws other inputs"
    )


def _run(args: argparse.Namespace) -> tuple[str, int]:
    if args.size < 1:
        raise MatrixCalculusError(f"--size must be at least 1, not {args.size}")
    if args.seed < 0:
        raise MatrixCalculusError(f"--seed must be at least 0, not {args.seed}")
    types = _types(args.types)
    expr = parse(_read_expression(args.expression), types=types)
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
            try:
                value = expr.evaluate(values, dims=dims)
            except EvaluationError as exc:
                raise _at_random_inputs(args, exc) from None
            lines += _value_lines(value)
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
            try:
                report = check(expr, name, result, values, args.order, args.layout, types)
            except EvaluationError as exc:
                raise _at_random_inputs(args, exc) from None
            lines.append(f"  check: {report}")
            status = status or (0 if report.ok else 1)
    return "\n".join(lines), status


def check(
    expr: Expression,
    name: str,
    result: Expression,
    values: dict[str, np.ndarray],
    order: int,
    layout: str,
    types: dict[str, Any],
) -> CheckResult:
    """Finite-difference check of one printed derivative (numerator layout internally)."""
    from matrixcalculus.transform.differentiation import to_denominator

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
    """Run the command line; the exit status (see the module's docstring)."""
    try:
        text, status = run(argv)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except MatrixCalculusError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # The reader (| head) has gone: stop silently. Point stdout at devnull so that the
        # interpreter's own flush at exit does not report the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130
    except MemoryError:
        return _fail("out of memory; lower --size, or the limits (--limit max_array_bytes=...)")
    except Exception as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())
        return _fail(
            f"internal error, a bug in matrixcalculus (please report it with the command line): {detail[:300]}"
        )
    return status


def _fail(message: str) -> int:
    try:
        print(f"matrixcalculus: error: {message}", file=sys.stderr)
    except (BrokenPipeError, OSError):
        pass  # nowhere left to say it; the status still says it
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
