"""Time one training step of the two examples: ours (``mc.compile``) against PyTorch and jax autodiff.

Run:  .venv/bin/python benchmarks/bench_training.py [--threads 1] [--rounds 15] [--markdown]

A training step here is forward and backward for every parameter on one minibatch (the loss value
and all its gradients; the optimiser's update, the same for all, is not timed). Rows:

* ``mlp``: the loss of examples/train_mlp.py, a 64-64-64-10 tanh MLP with softmax cross-entropy
  and weight decay, on a minibatch of 64 of scikit-learn's digits (six parameters).
* ``attention``: the loss of examples/train_attention.py, one-head self-attention with a residual
  and layer norm, 32 sequences of 8 tokens packed into 256 rows, width 32 (eight parameters).

Columns, all in one process on the same float64 data and weights:

* ``ours-numpy``, ``ours-torch``: the function ``mc.compile(LOSS, wrt=PARAMETERS,
  derivatives=("value", "gradient"), backend=...)`` the example trains with, called on NumPy
  arrays or CPU torch tensors (converted once, outside the timing).
* ``torch``: PyTorch eager autograd of the example's own reference loss (``torch_loss``, written
  the PyTorch way: ``log_softmax``, batched ``(B, L, d)`` attention without a mask,
  ``layer_norm``), ``torch.autograd.grad`` of it w.r.t. all parameters.
* ``jax.jit``: ``jax.jit(jax.value_and_grad(f))`` of the same loss written in ``jax.numpy``
  (``jax.nn.log_softmax``, batched attention), all inputs passed as arguments, compiled by a
  warm-up call, timed with ``block_until_ready``.
* ``torch packed``, ``jax.jit packed`` (attention only): the same two references computing what
  our loss computes, the sequences packed into one 256 x 256 score matrix with the block mask M.
  Packing costs (B*L)^2 scores instead of B*L^2 (32x here); ``ours/best packed`` separates that
  cost of the formulation from the cost of our code.

Every method's value and gradients are first compared with PyTorch's (largest relative error
printed; over 1e-10 aborts). Timing: the methods take turns, ``--rounds`` times; in each turn a
method runs ``calls`` steps (about 20 ms of work) and the median over rounds of the time per step
is reported, in milliseconds; ``ours/best`` is our faster backend over the faster reference.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))  # the examples are scripts; their losses are the rows

import train_attention  # noqa: E402
import train_mlp  # noqa: E402

import matrixcalculus as mc  # noqa: E402

Row = dict[str, Any]


def mlp_row(hidden: int, batch: int, seed: int) -> Row:
    """The MLP example's loss on one minibatch of digits, with its initial weights."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(digits.target), size=batch, replace=False)
    X = (digits.data[idx] / 16.0).T.copy()
    Y = np.eye(10)[:, digits.target[idx]]
    params = train_mlp.initial_weights(X.shape[0], hidden, 10, seed)
    lam = 1e-4
    data = {"X": X, "Y": Y, "lam": np.asarray(lam)}

    def torch_loss(torch: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        return train_mlp.torch_loss(torch, p, d["X"], d["Y"], lam)

    def jax_loss(jnp: Any, jax: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        h1 = jnp.tanh(p["W1"] @ d["X"] + p["b1"][:, None])
        h2 = jnp.tanh(p["W2"] @ h1 + p["b2"][:, None])
        z = p["W3"] @ h2 + p["b3"][:, None]
        decay = sum(jnp.sum(p[w] ** 2) for w in ("W1", "W2", "W3"))
        return -jnp.sum(d["Y"] * jax.nn.log_softmax(z, axis=0)) / d["X"].shape[1] + lam / 2 * decay

    return {
        "name": "mlp",
        "size": f"64-{hidden}-{hidden}-10 b{batch}",
        "loss": train_mlp.LOSS,
        "parameters": train_mlp.PARAMETERS,
        "types": train_mlp.types(X.shape[0], hidden, 10),
        "params": params,
        "ours_data": data,
        "ref_data": {"X": X, "Y": Y},
        "torch_loss": torch_loss,
        "jax_loss": jax_loss,
    }


def attention_row(width: int, sequences: int, length: int, vocabulary: int, seed: int) -> Row:
    """The attention example's loss on one minibatch of sequences, with its initial weights."""
    ta = train_attention
    rng = np.random.default_rng(seed)
    tokens, targets = ta.make_task(sequences, length, vocabulary, rng)
    X = ta.encode(tokens, vocabulary)
    labels = targets.reshape(-1)
    features = vocabulary + length
    params = ta.initial_weights(features, width, vocabulary, seed)
    data = {"X": X, "Y": np.eye(vocabulary)[labels], "M": ta.block_mask(sequences, length), "eps": np.asarray(ta.EPS)}

    def torch_loss(torch: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        return ta.torch_loss(torch, p, d["X"], d["labels"], length)

    def jax_loss(jnp: Any, jax: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        h = (d["X"] @ p["We"]).reshape(-1, length, width)
        scores = (h @ p["Wq"]) @ jnp.swapaxes(h @ p["Wk"], 1, 2) / np.sqrt(width)
        r = h + jax.nn.softmax(scores, axis=2) @ (h @ p["Wv"])
        c = r - jnp.mean(r, axis=2, keepdims=True)
        normed = c / jnp.sqrt(jnp.mean(c**2, axis=2, keepdims=True) + ta.EPS) * p["g"] + p["beta"]
        logits = (normed @ p["Wo"] + p["bo"]).reshape(-1, vocabulary)
        return -jnp.mean(jnp.sum(d["Y"] * jax.nn.log_softmax(logits, axis=1), axis=1))

    def torch_packed(torch: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        h = d["X"] @ p["We"]
        scores = (h @ p["Wq"]) @ (h @ p["Wk"]).T / np.sqrt(width) + d["M"]
        r = h + torch.softmax(scores, dim=1) @ (h @ p["Wv"])
        normed = torch.nn.functional.layer_norm(r, (width,), weight=p["g"], bias=p["beta"], eps=ta.EPS)
        return torch.nn.functional.cross_entropy(normed @ p["Wo"] + p["bo"], d["labels"])

    def jax_packed(jnp: Any, jax: Any, p: dict[str, Any], d: dict[str, Any]) -> Any:
        h = d["X"] @ p["We"]
        scores = (h @ p["Wq"]) @ (h @ p["Wk"]).T / np.sqrt(width) + d["M"]
        r = h + jax.nn.softmax(scores, axis=1) @ (h @ p["Wv"])
        c = r - jnp.mean(r, axis=1, keepdims=True)
        normed = c / jnp.sqrt(jnp.mean(c**2, axis=1, keepdims=True) + ta.EPS) * p["g"] + p["beta"]
        return -jnp.mean(jnp.sum(d["Y"] * jax.nn.log_softmax(normed @ p["Wo"] + p["bo"], axis=1), axis=1))

    return {
        "name": "attention",
        "size": f"b{sequences} L{length} d{width} V{vocabulary}",
        "loss": ta.LOSS,
        "parameters": ta.PARAMETERS,
        "types": ta.types(features, width, vocabulary),
        "params": params,
        "ours_data": data,
        "ref_data": {"X": X, "labels": labels, "Y": data["Y"], "M": data["M"]},
        "torch_loss": torch_loss,
        "jax_loss": jax_loss,
        "torch_packed": torch_packed,
        "jax_packed": jax_packed,
    }


def steps(row: Row) -> dict[str, Callable[[], tuple[float, list[np.ndarray]]]]:
    """One zero-argument step per method, returning (value, gradients as NumPy) for the check;
    the timed call is the same step without the conversion (``row["timed"]``)."""
    import jax
    import jax.numpy as jnp
    import torch

    names = row["parameters"]
    methods: dict[str, Callable[[], tuple[float, list[np.ndarray]]]] = {}
    timed: dict[str, Callable[[], Any]] = {}

    for backend in ("numpy", "torch"):
        fn = mc.compile(
            row["loss"], wrt=list(names), derivatives=("value", "gradient"), types=row["types"], backend=backend
        )
        values = {**row["params"], **row["ours_data"]}
        if backend == "torch":
            values = {k: torch.as_tensor(v) for k, v in values.items()}

        def ours(fn: Any = fn, values: dict[str, Any] = values) -> Any:
            return fn(values)

        def checked(call: Callable[[], Any] = ours) -> tuple[float, list[np.ndarray]]:
            value, grads = call()
            return float(value), [np.asarray(g) for g in grads]

        timed[f"ours-{backend}"] = ours
        methods[f"ours-{backend}"] = checked

    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in row["params"].items()}
    tdata = {k: torch.as_tensor(v) for k, v in row["ref_data"].items()}
    jparams = {k: jnp.asarray(v) for k, v in row["params"].items()}
    jdata = {k: jnp.asarray(v) for k, v in row["ref_data"].items()}
    for suffix, torch_loss, jax_loss in (
        ("", row["torch_loss"], row["jax_loss"]),
        (" packed", row.get("torch_packed"), row.get("jax_packed")),
    ):
        if torch_loss is None:
            continue

        def torch_step(torch_loss: Any = torch_loss) -> Any:
            loss = torch_loss(torch, tparams, tdata)
            return loss, torch.autograd.grad(loss, [tparams[k] for k in names])

        def torch_checked(call: Callable[[], Any] = torch_step) -> tuple[float, list[np.ndarray]]:
            loss, grads = call()
            return float(loss.detach()), [g.numpy() for g in grads]

        step = jax.jit(jax.value_and_grad(lambda p, d, f=jax_loss: f(jnp, jax, p, d)))

        def jax_step(step: Any = step) -> Any:
            return jax.block_until_ready(step(jparams, jdata))

        def jax_checked(call: Callable[[], Any] = jax_step) -> tuple[float, list[np.ndarray]]:
            value, grads = call()
            return float(value), [np.asarray(grads[k]) for k in names]

        timed["torch" + suffix], methods["torch" + suffix] = torch_step, torch_checked
        timed["jax.jit" + suffix], methods["jax.jit" + suffix] = jax_step, jax_checked
    row["timed"] = timed
    return methods


def check(row: Row, methods: dict[str, Callable[[], tuple[float, list[np.ndarray]]]]) -> dict[str, float]:
    """Largest relative error of each method's value and gradients against PyTorch's."""
    want_value, want = methods["torch"]()
    errors = {}
    for name, method in methods.items():
        value, grads = method()
        worst = abs(value - want_value) / abs(want_value)
        for g, w in zip(grads, want, strict=True):
            worst = max(worst, float(np.max(np.abs(g - w)) / np.max(np.abs(w))))
        errors[name] = worst
    return errors


def measure(timed: dict[str, Callable[[], Any]], rounds: int) -> dict[str, float]:
    """Median seconds per step over interleaved rounds (each method's turn ~20 ms of steps)."""
    calls = {}
    for name, call in timed.items():
        call()  # warm-up: code generation per signature, jit compilation
        t0 = time.perf_counter()
        call()
        calls[name] = max(1, int(0.02 / max(time.perf_counter() - t0, 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in timed}
    for _ in range(rounds):
        for name, call in timed.items():
            t0 = time.perf_counter()
            for _ in range(calls[name]):
                call()
            times[name].append((time.perf_counter() - t0) / calls[name])
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(rows: list[Row], markdown: bool) -> str:
    columns = ("ours-numpy", "ours-torch", "torch", "jax.jit", "torch packed", "jax.jit packed")
    head = ["row", "size", *(f"{c} ms" for c in columns), "ours/best", "ours/best packed", "max rel. error"]
    lines = []
    for row in rows:
        t = row["times"]
        ours = min(t["ours-numpy"], t["ours-torch"])
        best = min(t["torch"], t["jax.jit"])
        cells = [f"{t[m] * 1e3:.3f}" if m in t else "" for m in columns]
        packed = f"{ours / min(t['torch packed'], t['jax.jit packed']):.2f}" if "torch packed" in t else ""
        error = f"{max(row['errors'].values()):.1e}"
        lines.append([row["name"], row["size"], *cells, f"{ours / best:.2f}", packed, error])
    if markdown:
        out = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + " |"]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in [head, *lines]) for i in range(len(head))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *lines])


def _restart_with_threads(threads: int) -> None:
    """BLAS, torch and XLA fix their thread counts when they start: set them and run again once."""
    if os.environ.get("BENCH_TRAINING_THREADS") == str(threads):
        return
    env = dict(os.environ, BENCH_TRAINING_THREADS=str(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    if threads == 1:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="threads for BLAS, torch and XLA (restarts the script)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=64, help="MLP hidden width")
    ap.add_argument("--mlp-batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=32, help="attention model width d")
    ap.add_argument("--sequences", type=int, default=32, help="sequences per attention minibatch")
    ap.add_argument("--length", type=int, default=8)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    if args.threads and argv is None:
        _restart_with_threads(args.threads)

    import jax
    import torch

    jax.config.update("jax_enable_x64", True)
    torch.set_default_dtype(torch.float64)
    rows = [
        mlp_row(args.hidden, args.mlp_batch, seed=0),
        attention_row(args.width, args.sequences, args.length, 10, seed=0),
    ]
    for row in rows:
        methods = steps(row)
        row["errors"] = check(row, methods)
        if max(row["errors"].values()) > 1e-10:
            print(f"{row['name']}: methods disagree: {row['errors']}")
            return 1
        row["times"] = measure(row["timed"], args.rounds)
    threads = os.environ.get("BENCH_TRAINING_THREADS", "default")
    print(f"training step (value and all gradients), float64, median of {args.rounds} interleaved rounds")
    print(f"numpy {np.__version__}, torch {torch.__version__}, jax {jax.__version__}, threads: {threads}")
    print(table(rows, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
