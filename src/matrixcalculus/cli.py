"""The command line: ``matrixcalculus "x'*A*x" --types A=symmetric``.

With ``--wrt`` prints the derivative in matrix notation (index notation for tensors of order
three or more), the variables' types and shapes, and with ``--check`` the error against finite
differences at random inputs. Without ``--wrt`` prints the expression itself and, with
``--evaluate``, its value. The expression ``-`` is read from standard input.

``matrixcalculus serve [--port 8000] [--host 127.0.0.1] [--open]`` serves the local web page
instead (the ``web`` extra; ``docs/web.md``).

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
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from matrixcalculus.api.calculus import (
    LAYOUTS,
    _stacked_names,
    check,
    derivative,
    is_row,
    jvp,
    pure_derivatives,
    vjp,
)
from matrixcalculus.api.equality import equal
from matrixcalculus.api.explanation import explain
from matrixcalculus.api.expression import Expression, MatrixCalculusNotice, parse
from matrixcalculus.errors import EvaluationError, MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import Limits, current_limits, limit_error, resource_limits
from matrixcalculus.numeric.check import CheckResult, derivative_label, random_values
from matrixcalculus.render.printing import LATEX, TEXT, free_indices, index_notation, with_bindings


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


def _describe(expr: Expression, latex: bool = False) -> list[str]:
    return [_note(repr(var), latex) for var in expr.variables.values()]


# LaTeX: the whole output of --latex is one align* environment; formulas are rows "lhs &= rhs",
# everything else (types, shapes, checks) a row "& \text{...}", so that it compiles as it is.
_TEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": "\\textbackslash{}",
    "^": "\\^{}",
    "~": "\\~{}",
}


def tex_text(text: str) -> str:
    """Plain text as LaTeX text mode: ``\\text{...}``, its special characters escaped.

    >>> print(tex_text("x_1: 50% of A^2"))
    \\text{x\\_1: 50\\% of A\\^{}2}
    """
    return "\\text{" + "".join(_TEX_SPECIALS.get(c, c) for c in text) + "}"


def _note(text: str, latex: bool, indent: str = "  ") -> str:
    """A line of plain text: indented, or with --latex an aligned row of LaTeX text."""
    return f"& {tex_text(text)}" if latex else indent + text


def tex_label(key: str | tuple[str, ...], order: int = 1) -> str:
    """The name of a derivative in LaTeX: ``\\frac{\\partial f}{\\partial W}``; ``order`` 2:
    ``\\frac{\\partial^{2} f}{\\partial W^{2}}``; a tuple (mixed): ``...{\\partial W \\, \\partial b}``.

    >>> print(tex_label(("W", "b")))
    \\frac{\\partial^{2} f}{\\partial W \\, \\partial b}
    """
    if isinstance(key, tuple):
        if len(set(key)) == 1:
            return tex_label(key[0], len(key))
        below = " \\, ".join(f"\\partial {LATEX.name(n)}" for n in key)
        return f"\\frac{{\\partial^{{{len(key)}}} f}}{{{below}}}"
    if order == 1:
        return f"\\frac{{\\partial f}}{{\\partial {LATEX.name(key)}}}"
    return f"\\frac{{\\partial^{{{order}}} f}}{{\\partial {LATEX.name(key)}^{{{order}}}}}"


def _finished(lines: Sequence[str], latex: bool) -> str:
    """The output: the lines, or with --latex the rows of one ``align*`` environment."""
    if not latex:
        return "\n".join(lines)
    return "\n".join(["\\begin{align*}", " \\\\\n".join(lines), "\\end{align*}"])


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
        '  matrixcalculus "0.5*norm2(W*x + b - t)^2" --wrt W --wrt2 b --types b=vector\n'
        '  matrixcalculus "w\'*x" --wrt w --layout numerator\n'
        '  matrixcalculus "x\'*A*x" --wrt x --compare "2*A*x"\n'
        '  matrixcalculus "A*x" --wrt A --vjp g\n'
        '  matrixcalculus "max(0, w\'*x + b)" --wrt w --explain\n'
        '  matrixcalculus "x\'*A*x" --evaluate\n'
        "  matrixcalculus serve [--port 8000] [--open]   the local web page (the web extra; docs/web.md)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "expression",
        nargs="?",
        help='the expression, e.g. "x\'*A*x" or "norm2(W*x - t)^2/2"; - reads it from standard input',
    )
    p.add_argument(
        "--wrt",
        action="append",
        default=[],
        metavar="NAME",
        help="differentiate with respect to NAME (repeat, or NAME,NAME, for several)",
    )
    p.add_argument(
        "--wrt2",
        metavar="NAME",
        help="the mixed second derivative: d/dNAME of the derivative by the one --wrt (--wrt W --wrt2 b: d^2f/dW db)",
    )
    p.add_argument("--order", type=int, default=1, help="order of the derivative (1; 2 for a Hessian)")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="shape",
        help="shape: f.shape + wrt.shape, a gradient has its variable's shape (default); numerator: the "
        "tutorials' numerator layout (a scalar by a vector is a row x', by an m x n matrix n x m); "
        "denominator: its transpose",
    )
    p.add_argument(
        "--vjp",
        metavar="NAME",
        help="print the vector-Jacobian product with a cotangent NAME of f's shape, instead of the derivative",
    )
    p.add_argument(
        "--jvp",
        metavar="NAME",
        help="print the Jacobian-vector product along a tangent NAME of the variable's shape, not the derivative",
    )
    p.add_argument(
        "--compare",
        metavar="EXPRESSION",
        help="say whether the derivative (without --wrt: the expression) equals EXPRESSION; exit 1 when not",
    )
    p.add_argument(
        "--types",
        nargs="*",
        default=[],
        metavar="NAME=TYPE",
        help="declare types: scalar, vector, matrix, symmetric, 3-tensor, or a shape such as 3, 3x4 or 4x5x6",
    )
    p.add_argument(
        "--latex", action="store_true", help="print the whole output as LaTeX: one align* environment, ready to paste"
    )
    p.add_argument("--index", action="store_true", help="also print the index notation")
    p.add_argument(
        "--explain",
        action="store_true",
        help="explain the derivative step by step: intermediate variables, the chain rule with shapes, the "
        "element-wise view, simplification rules, both layouts, a numeric check (--size: the small case's size)",
    )
    p.add_argument(
        "--flatten",
        choices=("column", "row"),
        help="with --explain: flatten a tensor Jacobian in this order only (column-major or row-major vec)",
    )
    p.add_argument(
        "--check", action="store_true", help="compare the derivative with central finite differences at random inputs"
    )
    p.add_argument("--evaluate", action="store_true", help="evaluate on random inputs")
    p.add_argument(
        "--size", type=int, default=3, help="size of each symbolic dimension for --check/--evaluate/--explain (3)"
    )
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
    _expression_among_types(args)
    with resource_limits(**_limits(args.limit)), warnings.catch_warnings():
        # Notices are printed as lines of the output (see _notices), not warned.
        warnings.simplefilter("ignore", MatrixCalculusNotice)
        return _run(args)


def _is_declaration(item: str) -> bool:
    """``A=symmetric`` or ``W=3x4,x=5``: NAME=TYPE parts, as --types takes them."""
    parts = [part for part in item.split(",") if part.strip()]
    for part in parts:
        name, sep, spec = part.partition("=")
        if not sep or not name.strip().isidentifier() or not spec.strip().replace(" ", "").isalnum():
            return False
    return bool(parts)


def _expression_among_types(args: argparse.Namespace) -> None:
    """``--types A=symmetric "x'*A*x"``: --types takes several words, so it takes the expression
    too; the last word that is not NAME=TYPE is the expression (the others stay, to be reported)."""
    if args.expression is not None:
        return
    others = [k for k, item in enumerate(args.types) if not _is_declaration(item)]
    if not others:
        raise MatrixCalculusError("no expression given (see matrixcalculus --help)")
    args.expression = args.types.pop(others[-1])


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
    # The scalars of a stacked --wrt "[x; y]" are declared scalars by it.
    for item in args.wrt:
        for name in _stacked_names(item.strip()) or []:
            if not name[:1].isupper():  # upper-case names are matrices by name, never made scalars
                types.setdefault(name, "scalar")
    expr = parse(_read_expression(args.expression), types=types)
    # "--wrt x,y" is two variables; "--wrt '[x, y]'" one stack of them.
    wrt = [
        name.strip()
        for item in args.wrt
        for name in ([item] if item.strip().startswith("[") else item.split(","))
        if name.strip()
    ]
    style = LATEX if args.latex else TEXT
    lines: list[str] = []
    status = 0
    if args.explain:
        return _explained(args, expr, wrt, types)
    if args.flatten:
        raise MatrixCalculusError("--flatten goes with --explain (in Python: derivative(...).flatten(order))")
    if not wrt:
        lines.append(f"f &= {expr.latex()}" if args.latex else str(expr))
        lines.append(_note(f"shape: {g.shape_text(expr.shape)}", args.latex))
        lines += _describe(expr, args.latex)
        lines += _notices(expr, args.latex)
        if args.index:
            lines.append(_index_line(expr, args.latex))
        if args.evaluate:
            values = random_values(expr.node_variables(), args.size, args.seed)
            dims = {d: args.size for n in g.postorder(expr.node) for d in n.shape if isinstance(d, str)}
            lines.append(_note(f"value at random inputs (size {args.size}, seed {args.seed}):", args.latex))
            try:
                value = expr.evaluate(values, dims=dims)
            except EvaluationError as exc:
                raise _at_random_inputs(args, exc) from None
            lines += [_note(line.strip(), args.latex, "") if args.latex else line for line in _value_lines(value)]
        if args.compare is not None:
            status = _compare(args, [expr], types, lines)
        return _finished(lines, args.latex), status
    if args.vjp or args.jvp:
        return _products(args, expr, wrt, types, style)
    results, labels, keys = _derivatives(args, expr, wrt, types)
    tex_labels = [tex_label(key, args.order) for key in keys]
    reserved = set(expr.variables) | {v for r in results for v in r.variables}
    matrix_results = [r for r in results if r.node.rank <= 2]
    rows = frozenset(r.node for r in matrix_results if r._form == "r")
    texts, bindings = with_bindings([r.node for r in matrix_results], reserved, style, rows=rows)
    printed = dict(zip([id(r) for r in matrix_results], texts, strict=True))
    for label, tex, result in zip(labels, tex_labels, results, strict=True):
        if result.node.rank > 2:
            free = free_indices(result.node)
            if args.latex:
                lines.append(f"\\left({tex}\\right)_{{{_tex_indices(free)}}} &= {result.latex()}")
            else:
                lines.append(f"{label}[{','.join(free)}] = {result.index_notation()}")
        else:
            lines.append(f"{tex} &= {printed[id(result)]}" if args.latex else f"{label} = {printed[id(result)]}")
        if args.index and result.node.rank <= 2:
            lines.append(_index_line(result, args.latex))
    if bindings and args.latex:
        names = [LATEX.name(name) if name.isidentifier() else name for name, _ in bindings]
        lines += [
            f"{tex_text('where ') if k == 0 else ''}{name} &= {text}"
            for k, (name, (_, text)) in enumerate(zip(names, bindings, strict=True))
        ]
    elif bindings:
        lines.append("where")
        lines += [f"  {name} = {text}" for name, text in bindings]
    lines += _notices(expr, args.latex)
    lines += _absent(expr, [*wrt, *([args.wrt2] if args.wrt2 else [])], args.latex)
    lines.append(f"f &= {expr.latex()}" if args.latex else f"f = {expr}")
    lines += _describe(expr, args.latex)
    for label, tex, result in zip(labels, tex_labels, results, strict=True):
        layout = _layout_text(expr, result, args.layout)
        if args.latex:
            lines.append(f"{tex_text('shape of ')}{tex} &: {tex_text(layout)}")
        else:
            lines.append(f"  shape of {label}: {layout}")
    if args.check:
        values = random_values(expr.node_variables(), args.size, args.seed, within=expr.node)
        for key, result in zip(keys, results, strict=True):
            try:
                report = check(expr, key, result, types=types, order=args.order, layout=args.layout, values=values)
            except EvaluationError as exc:
                raise _at_random_inputs(args, exc) from None
            assert isinstance(report, CheckResult)
            lines.append(_note(f"check: {report}", args.latex))
            status = status or (0 if report.ok else 1)
    if args.compare is not None:
        status = _compare(args, results, types, lines) or status
    return _finished(lines, args.latex), status


def _explained(args: argparse.Namespace, expr: Expression, wrt: list[str], types: dict[str, Any]) -> tuple[str, int]:
    """``--explain``: the derivation step by step (``--latex``: as a LaTeX fragment)."""
    if not wrt:
        raise MatrixCalculusError("--explain explains a derivative; give --wrt NAME")
    others = [
        name
        for name, on in (
            ("--order", args.order != 1),
            ("--wrt2", args.wrt2),
            ("--vjp", args.vjp),
            ("--jvp", args.jvp),
            ("--compare", args.compare is not None),
            ("--index", args.index),
        )
        if on
    ]
    if others:
        raise MatrixCalculusError(f"--explain explains first derivatives; leave out {', '.join(others)}")
    derivation = explain(
        expr, wrt[0] if len(wrt) == 1 else wrt, types=types, layout=args.layout, size=args.size, flatten=args.flatten
    )
    notices = [f"notice: {text}" for text in expr.notices_for("command line")]
    text = derivation.latex().rstrip("\n") if args.latex else str(derivation)
    ok = all("(MISMATCH)" not in step.text for step in derivation.steps)
    return "\n".join([*notices, text]) if not args.latex else text, 0 if ok else 1


def _index_line(expr: Expression, latex: bool) -> str:
    """``  index notation: sum_j A[i,j]*x[j]``, or its LaTeX row."""
    if latex:
        return f"{tex_text('index notation:')} &\\; {index_notation(expr.node, LATEX)}"
    return f"  index notation: {expr.index_notation()}"


def _tex_indices(free: Sequence[str]) -> str:
    """Free indices as a LaTeX subscript: ``ijkl``, or ``i_{1},i_{2}`` past the letters."""
    if all(len(name) == 1 for name in free):
        return "".join(free)
    return ",".join(f"{name[0]}_{{{name[1:]}}}" if len(name) > 1 else name for name in free)


def _derivatives(
    args: argparse.Namespace, expr: Expression, wrt: list[str], types: dict[str, Any]
) -> tuple[tuple[Expression, ...], list[str], list[str | tuple[str, ...]]]:
    """The derivatives to print, their labels, and what ``check`` takes for each: one per
    ``--wrt`` (of ``--order``), or with ``--wrt2`` the one mixed block d/d(wrt2) of df/d(wrt)."""
    if not args.wrt2:
        results = pure_derivatives(expr, wrt, types=types, order=args.order, layout=args.layout)
        return results, [derivative_label(name, args.order) for name in wrt], list(wrt)
    if len(wrt) != 1:
        raise MatrixCalculusError(
            f"--wrt2 differentiates the derivative by one --wrt further; give one --wrt, not {len(wrt)}"
        )
    if args.order != 1:
        raise MatrixCalculusError("--wrt W --wrt2 b is the mixed derivative of order 2; leave out --order")
    key = (wrt[0], args.wrt2.strip())
    mixed = derivative(expr, key, types=types, layout=args.layout)
    assert isinstance(mixed, Expression)
    return (mixed,), [derivative_label(key)], [key]


def _layout_text(expr: Expression, result: Expression, layout: str) -> str:
    """``m x n (shape layout)``; a vector in the tutorials' layouts as the matrix it is there:
    ``1 x n (numerator layout: a row)``, ``m x 1 (numerator layout: a column)``."""
    shape = g.shape_text(result.shape)
    if result.node.rank == 1 and layout != "shape":
        length = g.dim_text(result.shape[0])
        if is_row(expr.node.rank, result.node.rank, layout):
            return f"1 x {length} ({layout} layout: a row)"
        return f"{length} x 1 ({layout} layout: a column)"
    return f"{shape} ({layout} layout)"


def _notices(expr: Expression, latex: bool = False) -> list[str]:
    """The expression's notices (a name read off its default kind, a scalar repeated over a
    vector), with the fix written as an option of this command."""
    return [_note(f"notice: {text}", latex) for text in expr.notices_for("command line")]


def command_line_fix(message: str) -> str:
    """An error message with its fixes in this command's syntax.

    >>> command_line_fix("declare them, e.g. types={'x': 'scalar'}")
    'declare them, e.g. --types x=scalar'
    """
    out: list[str] = []
    rest = message
    while (start := rest.find("types={")) >= 0 and (end := rest.find("}", start)) >= 0:
        parts = [p.strip().strip("'\"") for p in rest[start + len("types={") : end].split(":")]
        out.append(rest[:start])
        if len(parts) == 2 and parts[0].isidentifier():
            out.append(f"--types {parts[0]}={parts[1].split()[0]}")  # "symmetric matrix": A=symmetric
        else:
            out.append(rest[start : end + 1])
        rest = rest[end + 1 :]
    return "".join(out) + rest


def _absent(expr: Expression, wrt: Sequence[str], latex: bool = False) -> list[str]:
    """A notice for each variable that does not occur in f (a misspelt name?): its derivative is zero."""
    return [
        _note(f"notice: {name} does not occur in {expr}, so its derivative is zero (a misspelt name?)", latex)
        for item in wrt
        for name in _stacked_names(item) or [item]
        if name not in expr.variables
    ]


def _compare(args: argparse.Namespace, results: Sequence[Expression], types: dict[str, Any], lines: list[str]) -> int:
    """``--compare``: the one derivative (or the expression) against the expression given; 1 if unequal."""
    if len(results) != 1:
        raise MatrixCalculusError(f"--compare compares one result, but there are {len(results)} (one --wrt)")
    comparison = equal(results[0], args.compare, types=types, seed=args.seed)
    lines.append(_note(f"compare: {comparison}", args.latex, ""))
    return 0 if comparison.equal else 1


def _products(
    args: argparse.Namespace, expr: Expression, wrt: Sequence[str], types: dict[str, Any], style: Any
) -> tuple[str, int]:
    """``--vjp g`` / ``--jvp V``: the vector-Jacobian or Jacobian-vector product, never the Jacobian."""
    if args.vjp and args.jvp:
        raise MatrixCalculusError("--vjp and --jvp: give one of them")
    if args.order != 1 or args.wrt2:
        raise MatrixCalculusError(
            "--vjp and --jvp are products with the first derivative; leave out --order and --wrt2"
        )
    if args.check or args.compare is not None:
        raise MatrixCalculusError("--check and --compare work on derivatives; leave out --vjp/--jvp to use them")
    lines: list[str] = []
    if args.vjp:
        found = vjp(expr, wrt, args.vjp, types=types)
        assert isinstance(found, tuple)
        for name, result in zip(wrt, found, strict=True):
            if args.latex:
                lines.append(f"{tex_text(f'vjp of f w.r.t. {name} with cotangent {args.vjp}')} &= {result.latex()}")
            else:
                lines.append(f"vjp of f w.r.t. {name} with cotangent {args.vjp} = {result}")
        seed_line = _note(
            f"{args.vjp}: the cotangent, of f's shape ({g.shape_text(expr.shape) or 'scalar'})", args.latex
        )
    else:
        if len(wrt) != 1:
            raise MatrixCalculusError(
                f"--jvp is a product along one variable's tangent; give one --wrt, not {len(wrt)}"
            )
        result = jvp(expr, wrt[0], args.jvp, types=types)
        if args.latex:
            lines.append(f"{tex_text(f'jvp of f w.r.t. {wrt[0]} along {args.jvp}')} &= {result.latex()}")
        else:
            lines.append(f"jvp of f w.r.t. {wrt[0]} along {args.jvp} = {result}")
        shape = result.variables[args.jvp].shape if args.jvp in result.variables else ()
        seed_line = _note(
            f"{args.jvp}: the tangent, of {wrt[0]}'s shape ({g.shape_text(shape) or 'scalar'})", args.latex
        )
    lines += _notices(expr, args.latex)
    lines += _absent(expr, wrt, args.latex)
    lines.append(f"f &= {expr.latex()}" if args.latex else f"f = {expr}")
    lines += _describe(expr, args.latex)
    lines.append(seed_line)
    return _finished(lines, args.latex), 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; the exit status (see the module's docstring)."""
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["serve"]:
        # The local web page (the "web" extra), imported only when asked for.
        from matrixcalculus.web.server import main as serve

        return serve(words[1:])
    try:
        text, status = run(argv)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except MatrixCalculusError as exc:
        return _fail(command_line_fix(str(exc)))
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
