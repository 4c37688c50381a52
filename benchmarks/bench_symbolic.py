"""Time symbolic differentiation: matrixcalculus against SymPy on cookbook-sized expressions.

Run:  .venv/bin/python benchmarks/bench_symbolic.py [--repeats 7]

For each expression it reports the median wall time (time.perf_counter) of

* ``ours``: ``mc.derivative(text, wrt, types=...)`` from a freshly built string -- parsing, type
  inference, differentiation and simplification -- repeated with the same variable names. Graph
  nodes are hash-consed (interned in a weak table), so a repeat may reuse nodes that an earlier,
  still-alive result holds; results are dropped between repeats, but see the next column.
* ``ours*``: the same with distinct variable names on every repeat (``X`` -> ``X_3``), so no node
  can be shared with an earlier repeat: the cold-cache time.
* ``sympy``: building the ``MatrixSymbol`` expression and calling ``.diff`` (one call per variable),
  with distinct symbol names on every repeat so that SymPy's own cache does not help either.
  Symbolic dimensions (``n``, ``m``), like ours; ``relu`` is ``applyfunc(Max(u, 0))``; matrices we
  declare symmetric are plain ``MatrixSymbol``s for SymPy. "n/a": SymPy
  leaves the derivative unevaluated, gets it wrong or raises (``Determinant(X).diff(X)`` is
  unevaluated, ``log(Determinant(X)).diff(X)`` is 0, the 4-layer MLP raises for its inner layers,
  in SymPy 1.14), so there is nothing to time; the reason is printed. SymPy's values are not
  checked here (tests/test_sympy_reference.py does that).

``ratio`` is sympy / ours* (cold against cold). The script takes well under a minute.

``--only-printing`` times ``str`` of two large derived expressions against the targets of
issue 15 (a second derivative of about 2,200 characters in under 50 ms, a 50-layer tanh chain's
gradient in under 200 ms).

A last row times building ``x'*A0*A1*...*A399`` from Python operators (``x.T @ A0 @ ...``)
against parsing its text (``--only-build`` for that row alone): building is linear and should
stay within a small factor of parsing.

A second table (``--scaling``, or ``--only-scaling`` for it alone; ``--families MLP,tanh`` for
some) times derivation and printing (``str`` of the result) against the size of families of
expressions -- the gradient of an L-layer tanh MLP w.r.t. its first layer (L = 1..64), of a tanh
chain of depth k, of a sum of k products ``x'*A_i*B_i*x``, ``tr(A*...*A)`` with k factors, a sum
of k quadratic forms, nested softmax of depth k, and its second derivative --
and prints the exponent fitted to the last sizes (the slope of log time against log k; about 1
is linear). Each time is the minimum of a few runs with fresh variable names (``--scaling-repeats``;
the minimum, not the median: on a shared machine other processes only ever add time).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sympy as sp

import matrixcalculus as mc

_n, _m = sp.Symbol("n", integer=True, positive=True), sp.Symbol("m", integer=True, positive=True)
S = dict[str, Any]  # SymPy symbols by our names; "_" holds this repeat's name suffix (for scalar symbols)


def _relu(e: Any) -> Any:
    return e.applyfunc(lambda u: sp.Max(u, 0))


@dataclass(frozen=True)
class Bench:
    text: str
    wrt: tuple[str, ...]
    types: dict[str, str]
    # SymPy: symbol shapes ("X:n,n a:n,1") and the expression from them; None where SymPy cannot.
    sympy_shapes: str | None = None
    sympy_build: Callable[[S], Any] | None = None
    repeats: int | None = None  # fewer for the slow ones
    sympy_note: str = ""  # why SymPy is not timed, where it is not


SYM = "symmetric matrix"
MLP = "0.5*norm2(W4*relu(W3*relu(W2*relu(W1*x + b1) + b2) + b3) + b4 - t)^2"
MLP_PARAMS = ("W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4")


def _mlp_sympy(s: S) -> Any:
    h1 = _relu(s["W1"] * s["x"] + s["b1"])
    h2 = _relu(s["W2"] * h1 + s["b2"])
    h3 = _relu(s["W3"] * h2 + s["b3"])
    r = s["W4"] * h3 + s["b4"] - s["t"]
    return (r.T * r) / 2


BENCHES: list[Bench] = [
    Bench("a'*x", ("x",), {}, "a:n,1 x:n,1", lambda s: s["a"].T * s["x"]),
    Bench("a'*X*b", ("X",), {}, "a:n,1 X:n,m b:m,1", lambda s: s["a"].T * s["X"] * s["b"]),
    Bench("a'*X'*b", ("X",), {}, "a:m,1 X:n,m b:n,1", lambda s: s["a"].T * s["X"].T * s["b"]),
    Bench("x'*B*x", ("x",), {}, "x:n,1 B:n,n", lambda s: s["x"].T * s["B"] * s["x"]),
    Bench("b'*X'*X*c", ("X",), {}, "b:n,1 X:m,n c:n,1", lambda s: s["b"].T * s["X"].T * s["X"] * s["c"]),
    Bench(
        "b'*X'*D*X*c", ("X",), {}, "b:n,1 X:m,n D:m,m c:n,1", lambda s: s["b"].T * s["X"].T * s["D"] * s["X"] * s["c"]
    ),
    Bench(
        "(x - A*s)'*W*(x - A*s)",
        ("s",),
        {"W": SYM},
        "x:n,1 A:n,m s:m,1 W:n,n",
        lambda s: (s["x"] - s["A"] * s["s"]).T * s["W"] * (s["x"] - s["A"] * s["s"]),
    ),
    Bench("tr(A*X*B)", ("X",), {}, "A:n,n X:n,n B:n,n", lambda s: sp.Trace(s["A"] * s["X"] * s["B"])),
    Bench("tr(X'*B*X)", ("X",), {}, "X:n,m B:n,n", lambda s: sp.Trace(s["X"].T * s["B"] * s["X"])),
    Bench("tr(A*X*B*X)", ("X",), {}, "A:n,n X:n,n B:n,n", lambda s: sp.Trace(s["A"] * s["X"] * s["B"] * s["X"])),
    Bench(
        "tr(A*X*B*X'*C)",
        ("X",),
        {},
        "A:n,n X:n,m B:m,m C:n,n",
        lambda s: sp.Trace(s["A"] * s["X"] * s["B"] * s["X"].T * s["C"]),
    ),
    Bench(
        "tr((A*X*B + C)*(A*X*B + C)')",
        ("X",),
        {},
        "A:n,n X:n,n B:n,n C:n,n",
        lambda s: sp.Trace((s["A"] * s["X"] * s["B"] + s["C"]) * (s["A"] * s["X"] * s["B"] + s["C"]).T),
    ),
    Bench("tr(X*X*X*X)", ("X",), {}, "X:n,n", lambda s: sp.Trace(s["X"] * s["X"] * s["X"] * s["X"])),
    Bench("tr(X)*tr(X)", ("X",), {}, "X:n,n", lambda s: sp.Trace(s["X"]) * sp.Trace(s["X"])),
    Bench(
        "tr(B'*X'*C*X*X'*C*X*B)",
        ("X",),
        {},
        "B:n,n X:m,n C:m,m",
        lambda s: sp.Trace(s["B"].T * s["X"].T * s["C"] * s["X"] * s["X"].T * s["C"] * s["X"] * s["B"]),
    ),
    Bench("a'*inv(X)*b", ("X",), {}, "a:n,1 X:n,n b:n,1", lambda s: s["a"].T * s["X"].I * s["b"]),
    Bench("tr(A*inv(X)*B)", ("X",), {}, "A:n,n X:n,n B:n,n", lambda s: sp.Trace(s["A"] * s["X"].I * s["B"])),
    Bench(
        "tr(inv(X'*C*X)*A)",
        ("X",),
        {"C": SYM},
        "X:m,n C:m,m A:n,n",
        lambda s: sp.Trace((s["X"].T * s["C"] * s["X"]).I * s["A"]),
    ),
    Bench("inv(X)", ("X",), {}, "X:n,n", lambda s: s["X"].I),
    Bench("det(X)", ("X",), {}, sympy_note="unevaluated"),
    Bench("logdet(X)", ("X",), {}, sympy_note="wrong (0)"),
    Bench("det(inv(X))", ("X",), {}, sympy_note="unevaluated"),
    Bench("norm2(x - a)", ("x",), {}, "x:n,1 a:n,1", lambda s: sp.sqrt((s["x"] - s["a"]).T * (s["x"] - s["a"]))),
    Bench(
        "0.5*norm2(W*x - t)^2",
        ("W",),
        {},
        "W:m,n x:n,1 t:m,1",
        lambda s: (s["W"] * s["x"] - s["t"]).T * (s["W"] * s["x"] - s["t"]) / 2,
    ),
    Bench("a'*sin(X)*b", ("X",), {}, "a:n,1 X:n,m b:m,1", lambda s: s["a"].T * s["X"].applyfunc(sp.sin) * s["b"]),
    Bench(
        "a'*log(sin(X))*b",
        ("X",),
        {},
        "a:n,1 X:n,m b:m,1",
        lambda s: s["a"].T * s["X"].applyfunc(sp.sin).applyfunc(sp.log) * s["b"],
    ),
    Bench(
        "x'*A*x + c*sin(y)'*x",
        ("x",),
        {"A": SYM, "c": "scalar"},
        "x:n,1 A:n,n y:n,1",
        lambda s: s["x"].T * s["A"] * s["x"] + s["y"].applyfunc(sp.sin).T * s["x"] * sp.Symbol("c" + s["_"]),
    ),
    # SymPy 1.14 raises on W1, b1, W2, b2 and W3 of the 4-layer MLP; it manages the last layer.
    Bench(
        MLP,
        MLP_PARAMS,
        {},
        "W1:m,n x:n,1 b1:m,1 W2:m,m b2:m,1 W3:m,m b3:m,1 W4:m,m b4:m,1 t:m,1",
        _mlp_sympy,
        repeats=3,
    ),
    Bench(
        MLP,
        ("W4", "b4"),
        {},
        "W1:m,n x:n,1 b1:m,1 W2:m,m b2:m,1 W3:m,m b3:m,1 W4:m,m b4:m,1 t:m,1",
        _mlp_sympy,
        repeats=3,
    ),
]

_fresh = itertools.count()


def _rename(text: str, names: list[str], suffix: str) -> str:
    for name in sorted(names, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(name)}\b(?!\()", name + suffix, text)
    return text


def _time_ours(b: Bench, repeats: int, distinct: bool) -> float:
    names = list(mc.parse(b.text, types=b.types).variables)
    times = []
    for _ in range(repeats):
        suffix = f"_{next(_fresh)}" if distinct else ""
        # A new string object every time (never the literal itself), renamed when asked.
        text = _rename("".join(list(b.text)), names, suffix)
        types = {k + suffix: v for k, v in b.types.items()}
        wrt = [w + suffix for w in b.wrt]
        gc.disable()  # as timeit does: no collector pauses inside the timed call
        start = time.perf_counter()
        result = mc.derivative(text, list(wrt) if len(wrt) > 1 else wrt[0], types=types)
        times.append(time.perf_counter() - start)
        gc.enable()
        del result
    return statistics.median(times)


def _symbols(spec: str, suffix: str) -> S:
    dims = {"n": _n, "m": _m}
    out: S = {"_": suffix}
    for item in spec.split():
        name, shape = item.split(":")
        r, c = (dims.get(d, sp.Integer(1) if d == "1" else None) for d in shape.split(","))
        out[name] = sp.MatrixSymbol(name + suffix, r, c)
    return out


def _time_sympy(b: Bench, repeats: int) -> tuple[float | None, str]:
    """SymPy's median time, or None and why not."""
    if b.sympy_build is None or b.sympy_shapes is None:
        return None, b.sympy_note or "n/a"
    times = []
    for _ in range(repeats):
        suffix = f"_{next(_fresh)}"
        gc.disable()
        start = time.perf_counter()
        try:
            s = _symbols(b.sympy_shapes, suffix)
            f = b.sympy_build(s)
            results = [f.diff(s[w]) for w in b.wrt]
        except Exception as exc:  # SymPy raises: it cannot
            return None, f"raises {type(exc).__name__}"
        finally:
            gc.enable()
        times.append(time.perf_counter() - start)
        if any(getattr(r, "has", lambda *_: False)(sp.Derivative) for r in results):
            return None, "unevaluated"
    return statistics.median(times), ""


def _mlp(layers: int, s: str) -> str:
    """An MLP loss of ``layers`` tanh layers: 0.5*norm2(W_L*tanh(...tanh(W1*x + b1)...) + b_L - t)^2."""
    text = f"x{s}"
    for i in range(1, layers):
        text = f"tanh(W{i}{s}*{text} + b{i}{s})"
    return f"0.5*norm2(W{layers}{s}*{text} + b{layers}{s} - t{s})^2"


def _tanh_chain(depth: int, s: str) -> str:
    text = f"x{s}"
    for i in range(depth):
        text = f"tanh(W{i}{s}*{text})"
    return f"sum({text})"


# Families of expressions by size k: (name, sizes, text of size k, wrt, order). The first three
# are the issue-15 families (depth of MLPs and tanh chains, width of a sum of products): their
# fitted exponent should stay at most 1.2.
SCALING: list[tuple[str, tuple[int, ...], Callable[[int, str], str], str, int]] = [
    ("d/dW1 L-layer MLP", (1, 2, 4, 8, 16, 32, 64, 128), _mlp, "W1", 1),
    ("d/dx tanh chain depth k", (1, 2, 4, 8, 16, 32, 64, 128), _tanh_chain, "x", 1),
    (
        "d/dx sum of k x'*A_i*B_i*x",
        (1, 2, 4, 8, 16, 32, 64, 128),
        lambda k, s: " + ".join(f"x{s}'*A{i}{s}*B{i}{s}*x{s}" for i in range(k)),
        "x",
        1,
    ),
    ("d tr(A^k)/dA", (5, 10, 20, 40), lambda k, s: "tr(" + "*".join([f"A{s}"] * k) + ")", "A", 1),
    (
        "d/dx sum of k x'*A_i*x",
        (25, 50, 100, 200),
        lambda k, s: " + ".join(f"x{s}'*A{i}{s}*x{s}" for i in range(k)),
        "x",
        1,
    ),
    ("d/dx sum(softmax^k(x))", (4, 8, 16, 32), lambda k, s: "sum(" + "softmax(" * k + f"x{s}" + ")" * (k + 1), "x", 1),
    ("d2/dx2 sum(softmax^k(x))", (2, 4, 8, 16), lambda k, s: "sum(" + "softmax(" * k + f"x{s}" + ")" * (k + 1), "x", 2),
]


def _fit(sizes: list[int], times: list[float]) -> float:
    """The least-squares slope of log(time) against log(size)."""
    import math

    xs = [math.log(k) for k in sizes]
    ys = [math.log(max(t, 1e-7)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def _bias_vectors(text: str) -> dict[str, str]:
    """Biases b1, b2, ... are vectors (the naming convention would make them scalars)."""
    return {name: "vector" for name in set(re.findall(r"\bb\d+_\d+", text))}


def scaling_table(repeats: int = 3, only: str = "") -> None:
    print(f"{'family':<26} {'k':>5}  {'derive ms':>10}  {'print ms':>9}  {'chars':>7}")
    print("-" * 64)
    for name, sizes, build, wrt, order in SCALING:
        if only and not any(part in name for part in only.split(",")):
            continue
        derive_times, print_times = [], []
        for k in sizes:
            d_runs, p_runs, chars = [], [], 0
            for _ in range(repeats):
                suffix = f"_{next(_fresh)}"
                text = build(k, suffix)
                gc.disable()
                start = time.perf_counter()
                result = mc.derivative(text, wrt + suffix, order=order, types=_bias_vectors(text))
                middle = time.perf_counter()
                printed = str(result)
                end = time.perf_counter()
                gc.enable()
                d_runs.append(middle - start)
                p_runs.append(end - middle)
                chars = len(printed)
            derive_times.append(min(d_runs))
            print_times.append(min(p_runs))
            print(f"{name:<26} {k:>5}  {derive_times[-1] * 1e3:10.2f}  {print_times[-1] * 1e3:9.2f}  {chars:>7}")
        # Fitted on the larger sizes, where the constant costs no longer dominate.
        last = -3
        print(
            f"{'':<26} {'fit':>5}  {'k^' + format(_fit(list(sizes[last:]), derive_times[last:]), '.2f'):>10}  "
            f"{'k^' + format(_fit(list(sizes[last:]), print_times[last:]), '.2f'):>9}"
        )
    print("fit = exponent of k fitted to the last three sizes (1 is linear).")


def printing_table(repeats: int = 5) -> None:
    """``str`` of two large derived expressions against the issue-15 targets: a second derivative
    of about 2,200 characters in under 50 ms, the gradient of a 50-layer tanh chain in under 200 ms
    (median of fresh derivations, so no printed piece is reused)."""
    cases = [
        ("d2/dx2 sum(softmax^11(x))", lambda s: "sum(" + "softmax(" * 11 + f"x{s}" + ")" * 12, "x", 2, 50.0),
        ("d/dx tanh chain depth 50", lambda s: _tanh_chain(50, s), "x", 1, 200.0),
    ]
    print(f"{'printing':<28} {'chars':>6}  {'median ms':>9}  {'target ms':>9}")
    for name, build, wrt, order, target in cases:
        runs, chars = [], 0
        for _ in range(repeats):
            suffix = f"_{next(_fresh)}"
            result = mc.derivative(build(suffix), wrt + suffix, order=order)
            gc.disable()
            start = time.perf_counter()
            chars = len(str(result))
            runs.append(time.perf_counter() - start)
            gc.enable()
        ms = statistics.median(runs) * 1e3
        print(f"{name:<28} {chars:>6}  {ms:9.1f}  {target:9.0f}  {'met' if ms < target else 'NOT met'}")


def build_table(k: int = 400, repeats: int = 5) -> tuple[float, float]:
    """Build ``x'*A0*A1*...*A(k-1)`` from Python operators and by parsing its text (fresh names
    each repeat; the factors are made before the clock starts): median seconds of each."""
    built, parsed = [], []
    for _ in range(repeats):
        s = f"_{next(_fresh)}"
        x = mc.vector("x" + s)
        factors = [mc.matrix(f"A{i}{s}") for i in range(k)]
        gc.disable()
        start = time.perf_counter()
        e = x.T
        for f in factors:
            e = e @ f
        built.append(time.perf_counter() - start)
        s = f"_{next(_fresh)}"
        text = f"x{s}'*" + "*".join(f"A{i}{s}" for i in range(k))
        start = time.perf_counter()
        mc.parse(text)
        parsed.append(time.perf_counter() - start)
        gc.enable()
    b, p = statistics.median(built), statistics.median(parsed)
    print(f"build {k} products from Python vs parse the text: {b * 1e3:.1f} ms vs {p * 1e3:.1f} ms ({b / p:.2f}x)")
    return b, p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scaling", action="store_true", help="also time derivation and printing against size")
    parser.add_argument("--only-scaling", action="store_true", help="only the scaling table")
    parser.add_argument("--scaling-repeats", type=int, default=5, help="fresh runs per size in the scaling table")
    parser.add_argument(
        "--families", default="", help="scaling families whose name contains one of these (comma-separated)"
    )
    parser.add_argument("--only-build", action="store_true", help="only building from Python against parsing")
    parser.add_argument("--only-printing", action="store_true", help="only the printing times of two large results")
    args = parser.parse_args(argv)
    if args.only_printing:
        printing_table()
        return 0
    if args.only_scaling:
        scaling_table(repeats=args.scaling_repeats, only=args.families)
        return 0
    if args.only_build:
        build_table()
        return 0

    for b in BENCHES:  # warm up: imports, the parser's tables, SymPy's modules
        mc.derivative(b.text, list(b.wrt) if len(b.wrt) > 1 else b.wrt[0], types=b.types)
    _time_sympy(BENCHES[0], 1)

    rows = []
    total = time.perf_counter()
    for b in BENCHES:
        repeats = b.repeats or args.repeats
        ours = _time_ours(b, repeats, distinct=False)
        cold = _time_ours(b, repeats, distinct=True)
        theirs, why = _time_sympy(b, repeats)
        wrt = ",".join(b.wrt) if len(b.wrt) < 3 else f"all {len(b.wrt)}"
        label = "MLP loss (4 layers)" if b.text == MLP else b.text
        rows.append((f"d/d{wrt}  {label}", ours, cold, theirs, why))

    width = max(len(r[0]) for r in rows)
    print(f"{'expression':<{width}}  {'ours ms':>8}  {'ours* ms':>8}  {'sympy ms':>9}  {'ratio':>7}")
    print("-" * (width + 40))
    ratios = []
    for label, ours, cold, theirs, why in rows:
        ratio = theirs / cold if theirs is not None else None
        if ratio is not None:
            ratios.append(ratio)
        t = f"{theirs * 1e3:9.2f}" if theirs is not None else f"{'n/a':>9}"
        q = f"{ratio:6.1f}x" if ratio is not None else f"{'':>7}"
        print(f"{label:<{width}}  {ours * 1e3:8.2f}  {cold * 1e3:8.2f}  {t}  {q}  {why}".rstrip())
    print("-" * (width + 40))
    print(
        f"median ours (ms): {statistics.median(r[1] for r in rows) * 1e3:.2f};  "
        f"median ours* (ms): {statistics.median(r[2] for r in rows) * 1e3:.2f};  "
        f"median ratio sympy/ours* over {len(ratios)} expressions SymPy handles: {statistics.median(ratios):.1f}x"
    )
    print(f"MLP loss = {MLP}")
    print(
        f"ours* = distinct variable names each repeat (no shared nodes); ratio = sympy / ours*. "
        f"total {time.perf_counter() - total:.1f} s"
    )
    print()
    build_table()
    if args.scaling:
        print()
        scaling_table(repeats=args.scaling_repeats, only=args.families)
    return 0


if __name__ == "__main__":
    sys.exit(main())
