"""Time mc.explain against mc.derivative of the same expression, in one process.

Run:  .venv/bin/python benchmarks/bench_explain.py [--repeats 7]

For each expression: the median wall time (time.perf_counter) of

* ``derivative``: ``mc.derivative(text, wrt, types=...)`` (parse, differentiate, simplify);
* ``explain``: ``mc.explain(text, wrt, types=...)`` and ``str()`` of it: the derivation step by
  step (the typed subtrees, a local derivative per level, the product of the Jacobians or the
  backpropagated signals, the element-wise view, both layouts, and the finite-difference check at
  size 3, which is most of the cost for matrices);

both with distinct variable names on every repeat (``W1`` -> ``W1_r3``), so that no graph node is
shared with an earlier repeat (nodes are hash-consed): cold times. ``ratio`` is explain /
derivative. The goal: a cookbook-sized expression in milliseconds, the 4-layer MLP (all eight
parameters, one derivation) under 200 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import warnings
from collections.abc import Callable

import matrixcalculus as mc


def _mlp(depth: int) -> tuple[str, list[str], dict[str, str]]:
    text = "x"
    for k in range(1, depth + 1):
        inner = f"W{k}*{text} + b{k}"
        text = inner if k == depth else f"relu({inner})"
    params = [p for k in range(1, depth + 1) for p in (f"W{k}", f"b{k}")]
    return f"0.5*norm2({text} - t)^2", params, {f"b{k}": "vector" for k in range(1, depth + 1)}


MLP, MLP_PARAMS, MLP_TYPES = _mlp(4)

CASES: list[tuple[str, str, str | list[str], dict[str, str]]] = [
    ("x'*A*x", "x'*A*x", "x", {}),
    ("neuron", "max(0, w'*x + b)", "w", {}),
    ("tr(A*X*B)", "tr(A*X*B)", "X", {}),
    ("squared error", "0.5*norm2(W*x - t)^2", "W", {}),
    ("logistic loss", "sum(log(1 + exp(-y .* (X*w))))", "w", {}),
    ("R'*R (4-D)", "R'*R", "R", {}),
    ("4-layer MLP, W1", MLP, "W1", MLP_TYPES),
    ("4-layer MLP, all 8", MLP, MLP_PARAMS, MLP_TYPES),
]


def _renamed(text: str, wrt: str | list[str], types: dict[str, str], suffix: str):
    """The case with every variable name suffixed (``x`` -> ``x_r3``): fresh graph nodes."""
    names = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", text)) - {"max", "tr", "norm2", "sum", "log", "exp", "relu"}

    def rename(match: re.Match[str]) -> str:
        word = match.group(0)
        return word + suffix if word in names else word

    new_text = re.sub(r"[A-Za-z_][A-Za-z0-9_]*", rename, text)
    new_wrt = [w + suffix for w in wrt] if isinstance(wrt, list) else wrt + suffix
    return new_text, new_wrt, {k + suffix: v for k, v in types.items()}


def _median_ms(run: Callable[[str], object], repeats: int) -> float:
    times = []
    for r in range(repeats):
        start = time.perf_counter()
        run(f"_r{r}")
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    warnings.simplefilter("ignore", mc.MatrixCalculusNotice)
    print(f"{'expression':<22} {'derivative ms':>14} {'explain ms':>11} {'ratio':>7} {'lines':>6}")
    for label, text, wrt, types in CASES:

        def derive(suffix: str, text=text, wrt=wrt, types=types) -> object:
            t, w, ty = _renamed(text, wrt, types, suffix)
            return mc.derivative(t, w, types=ty)

        def explained(suffix: str, text=text, wrt=wrt, types=types) -> object:
            t, w, ty = _renamed(text, wrt, types, suffix)
            return str(mc.explain(t, w, types=ty))

        ours = _median_ms(derive, args.repeats)
        explain_ms = _median_ms(explained, args.repeats)
        lines = str(mc.explain(text, wrt, types=types)).count("\n") + 1
        print(f"{label:<22} {ours:>14.1f} {explain_ms:>11.1f} {explain_ms / ours:>7.1f} {lines:>6}")


if __name__ == "__main__":
    main()
