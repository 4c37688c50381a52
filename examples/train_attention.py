"""Train a one-layer self-attention model with layer norm to reverse sequences, gradients by matrixcalculus.

The task: a sequence of L tokens (vocabulary V) goes in, the same tokens in reverse order come out;
each position's output is a softmax over the vocabulary. Reversing needs attention: position i must
read the token at position L-1-i, which only a query-key match on the positions finds.

A minibatch of B sequences is packed into one matrix of n = B*L rows (one row per token, the
layout of ``softmax(Q*K'/sqrt(d), 2)*V``); the mask M (0 within a sequence, -400 across) keeps
every sequence attending to itself only, as packed-sequence training does. The loss, written the
way it reads on paper:

    H = X*We                                   embed (X: one-hot token and position per row)
    S = softmax((H*Wq)*(H*Wk)'/sqrt(d) + M, 2) attention weights, one softmax per row
    R = H + S*(H*Wv)                           attention with a residual connection
    C = R - mean(R, 2),  N = C ./ sqrt(mean(C.^2, 2) + eps) .* g' + beta'    layer norm per row
    loss = -sum(sum(Y .* log(softmax(N*Wo + bo', 2))))/n                    softmax cross-entropy

Every gradient (all eight parameters) comes from ``mc.compile`` (NumPy by default, ``--backend
torch`` also works); the first steps are checked against PyTorch autograd (float64, relative error
<= 1e-10) of the same model written the PyTorch way (batched ``(B, L, d)`` tensors, ``bmm``, no
mask, ``layer_norm``), and that model is trained with PyTorch autograd from the same initial
weights on the same minibatches for comparison. Minibatch Adam; a loss plot is saved.

    python examples/train_attention.py --epochs 10

prints the loss per epoch (0.72 after the first, 1.1e-4 after the tenth), a largest relative
error of 1.4e-15 against PyTorch autograd, and a test accuracy of 1.0 per token and per sequence
with our gradients and with PyTorch's (the two trainings' losses agree to all printed digits).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np
from train_mlp import Adam, batches, progress

import matrixcalculus as mc

LOSS = (
    "-sum(sum(Y .* log(softmax(N*Wo + bo', 2))))/n"
    " where H = X*We, S = softmax((H*Wq)*(H*Wk)'/sqrt(d) + M, 2), R = H + S*(H*Wv),"
    " C = R - mean(R, 2), N = C ./ sqrt(mean(C.^2, 2) + eps) .* g' + beta'"
)
PARAMETERS = ("We", "Wq", "Wk", "Wv", "g", "beta", "Wo", "bo")
EPS = 1e-5  # layer norm's epsilon, PyTorch's default


def types(features: int, width: int, vocabulary: int) -> dict[str, Any]:
    """The shapes: n (tokens in a minibatch) and d (the model width) are named dimensions, so
    ``sqrt(d)`` is the square root of the width and ``/n`` divides by the number of tokens."""
    return {
        "X": ("n", features),
        "Y": ("n", vocabulary),
        "M": ("n", "n"),
        "We": (features, "d"),
        "Wq": ("d", "d"),
        "Wk": ("d", "d"),
        "Wv": ("d", "d"),
        "g": ("d",),
        "beta": ("d",),
        "Wo": ("d", vocabulary),
        "bo": (vocabulary,),
        "eps": "scalar",
    }


def make_task(count: int, length: int, vocabulary: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random sequences of tokens and their reversals, shapes (count, length)."""
    tokens = rng.integers(0, vocabulary, size=(count, length))
    return tokens, tokens[:, ::-1].copy()


def encode(tokens: np.ndarray, vocabulary: int) -> np.ndarray:
    """One row per token: its one-hot token followed by its one-hot position, shape (B*L, V+L)."""
    count, length = tokens.shape
    token_part = np.eye(vocabulary)[tokens.reshape(-1)]
    position_part = np.tile(np.eye(length), (count, 1))
    return np.hstack([token_part, position_part])


MASKED = -400.0


def block_mask(count: int, length: int) -> np.ndarray:
    """0 where two rows belong to the same sequence, -400 elsewhere.

    exp(-400) = 1.9e-174 is nothing next to a sequence's own weights (float64 keeps 16 digits),
    yet still a normal number: NumPy's exp of a number that underflows to 0 (such as -1e9) takes
    a slow path, about 10x the time. A score across sequences would have to exceed every
    score within by over 360 to leak; the unmasked PyTorch model checks that it does not."""
    same = np.kron(np.eye(count), np.ones((length, length)))
    return np.where(same > 0, 0.0, MASKED)


def initial_weights(features: int, width: int, vocabulary: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def dense(rows: int, cols: int) -> np.ndarray:
        return rng.standard_normal((rows, cols)) / math.sqrt(rows)  # Xavier-like scale

    return {
        "We": dense(features, width),
        "Wq": dense(width, width),
        "Wk": dense(width, width),
        "Wv": dense(width, width),
        "g": np.ones(width),
        "beta": np.zeros(width),
        "Wo": dense(width, vocabulary),
        "bo": np.zeros(vocabulary),
    }


def torch_logits(torch: Any, p: dict[str, Any], X: Any, length: int) -> Any:
    """The same model written the PyTorch way: sequences on a batch axis, no mask, ``layer_norm``."""
    width = p["Wq"].shape[0]
    h = (X @ p["We"]).reshape(-1, length, width)
    scores = (h @ p["Wq"]) @ (h @ p["Wk"]).transpose(1, 2) / math.sqrt(width)
    r = h + torch.softmax(scores, dim=2) @ (h @ p["Wv"])
    normed = torch.nn.functional.layer_norm(r, (width,), weight=p["g"], bias=p["beta"], eps=EPS)
    return (normed @ p["Wo"] + p["bo"]).reshape(-1, p["Wo"].shape[1])


def torch_loss(torch: Any, p: dict[str, Any], X: Any, targets: Any, length: int) -> Any:
    return torch.nn.functional.cross_entropy(torch_logits(torch, p, X, length), targets)


def numpy_logits(p: dict[str, np.ndarray], X: np.ndarray, length: int) -> np.ndarray:
    """The forward pass for accuracy, sequence by sequence (no mask needed)."""
    width = p["Wq"].shape[0]
    h = (X @ p["We"]).reshape(-1, length, width)
    scores = (h @ p["Wq"]) @ (h @ p["Wk"]).transpose(0, 2, 1) / math.sqrt(width)
    scores = np.exp(scores - scores.max(axis=2, keepdims=True))
    r = h + (scores / scores.sum(axis=2, keepdims=True)) @ (h @ p["Wv"])
    c = r - r.mean(axis=2, keepdims=True)
    normed = c / np.sqrt((c**2).mean(axis=2, keepdims=True) + EPS) * p["g"] + p["beta"]
    return (normed @ p["Wo"] + p["bo"]).reshape(-1, p["Wo"].shape[1])


def accuracy(p: dict[str, np.ndarray], X: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Accuracy per token and per whole sequence (every token right)."""
    right = np.argmax(numpy_logits(p, X, targets.shape[1]), axis=1).reshape(targets.shape) == targets
    return float(right.mean()), float(right.all(axis=1).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--length", type=int, default=8, help="L, tokens per sequence")
    parser.add_argument("--vocabulary", type=int, default=10, help="V, distinct tokens")
    parser.add_argument("--width", type=int, default=32, help="d, the model width")
    parser.add_argument("--train", type=int, default=2000, help="training sequences")
    parser.add_argument("--test", type=int, default=500, help="test sequences")
    parser.add_argument("--batch", type=int, default=32, help="sequences per minibatch")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"))
    parser.add_argument("--check-steps", type=int, default=3, help="steps checked against PyTorch autograd")
    parser.add_argument("--plot", default="train_attention_loss.png", help="where to save the loss plot ('' for none)")
    args = parser.parse_args(argv)

    import torch

    L, V = args.length, args.vocabulary
    rng = np.random.default_rng(args.seed)
    train_tokens, train_targets = make_task(args.train, L, V, rng)
    test_tokens, test_targets = make_task(args.test, L, V, rng)
    features = V + L
    Xte = encode(test_tokens, V)
    size = min(args.batch, args.train)
    M = block_mask(size, L)  # every minibatch has the same size, so one mask serves them all
    print(f"reverse sequences: {args.train} training and {args.test} test sequences of {L} tokens out of {V}")
    print(f"loss: {LOSS}")

    start = time.perf_counter()
    shapes = types(features, args.width, V)
    fn = mc.compile(LOSS, wrt=list(PARAMETERS), derivatives=("value", "gradient"), types=shapes, backend=args.backend)
    print(f"gradients derived and compiled ({args.backend}) in {time.perf_counter() - start:.2f} s")

    if args.backend == "torch":

        def run(values: dict[str, np.ndarray]) -> tuple[float, tuple[np.ndarray, ...]]:
            value, grads = fn({k: torch.as_tensor(v, dtype=torch.float64) for k, v in values.items()})
            return float(value), tuple(g.numpy() for g in grads)
    else:

        def run(values: dict[str, np.ndarray]) -> tuple[float, tuple[np.ndarray, ...]]:
            value, grads = fn(values)
            return float(value), tuple(grads)

    initial = initial_weights(features, args.width, V, args.seed)

    def train(use_torch: bool) -> tuple[dict[str, np.ndarray], list[float], float]:
        """Adam from the same initial weights on the same minibatches; gradients from us or torch."""
        params = {k: v.copy() for k, v in initial.items()}
        tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in initial.items()}
        optimiser = torch.optim.Adam(tparams.values(), lr=args.lr) if use_torch else None
        ours = Adam(args.lr)
        order = np.random.default_rng(args.seed + 1)
        losses: list[float] = []
        worst = 0.0
        step = 0
        for epoch in range(1, args.epochs + 1):
            parts = batches(args.train, size, order)
            total = 0.0
            for k, idx in enumerate(parts, start=1):
                X = encode(train_tokens[idx], V)
                targets = train_targets[idx].reshape(-1)
                if use_torch:
                    assert optimiser is not None
                    optimiser.zero_grad()
                    loss = torch_loss(torch, tparams, torch.as_tensor(X), torch.as_tensor(targets), L)
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach())
                else:
                    Y = np.eye(V)[targets]
                    value, grads = run({**params, "X": X, "Y": Y, "M": M, "eps": np.asarray(EPS)})
                    if step < args.check_steps:
                        worst = max(worst, check_against_torch(torch, params, X, targets, L, value, grads))
                    ours.step(params, dict(zip(PARAMETERS, grads, strict=True)))
                    total += value
                step += 1
                if not use_torch and sys.stdout.isatty():
                    sys.stdout.write(progress(epoch, args.epochs, k, len(parts)))
            losses.append(total / len(parts))
            if not use_torch:
                bar = progress(epoch, args.epochs, len(parts), len(parts)).lstrip("\r")
                sys.stdout.write(f"\r{bar}  loss {losses[-1]:.6f}\n")
        if use_torch:
            params = {k: v.detach().numpy() for k, v in tparams.items()}
        return params, losses, worst

    params, losses, worst = train(use_torch=False)
    print(f"gradients checked against PyTorch autograd at {args.check_steps} steps: largest relative error {worst:.1e}")
    if worst > 1e-10:
        print("gradient check FAILED")
        return 1
    reference, reference_losses, _ = train(use_torch=True)
    ours_token, ours_sequence = accuracy(params, Xte, test_targets)
    torch_token, torch_sequence = accuracy(reference, Xte, test_targets)
    print(
        f"test accuracy per token: {ours_token:.4f} with matrixcalculus gradients,"
        f" {torch_token:.4f} with PyTorch autograd"
    )
    print(
        f"test accuracy per sequence: {ours_sequence:.4f} with matrixcalculus gradients,"
        f" {torch_sequence:.4f} with PyTorch autograd"
    )
    print(f"final training loss: {losses[-1]:.6f} (ours), {reference_losses[-1]:.6f} (PyTorch)")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        epochs = range(1, len(losses) + 1)
        ax.plot(epochs, losses, label="matrixcalculus gradients")
        ax.plot(epochs, reference_losses, "--", label="PyTorch autograd")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean minibatch loss")
        ax.set_yscale("log")
        ax.set_title(f"one-head self-attention with layer norm, reversing {L} tokens")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"loss plot saved to {args.plot}")
    return 0


def check_against_torch(
    torch: Any,
    params: dict[str, np.ndarray],
    X: np.ndarray,
    targets: np.ndarray,
    length: int,
    value: float,
    grads: tuple[np.ndarray, ...],
) -> float:
    """The largest relative error of our value and gradients against PyTorch autograd's."""
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    loss = torch_loss(torch, tparams, torch.as_tensor(X), torch.as_tensor(targets), length)
    want = torch.autograd.grad(loss, [tparams[k] for k in PARAMETERS])
    errors = [abs(value - float(loss.detach())) / abs(float(loss.detach()))]
    for got, w in zip(grads, want, strict=True):
        w = w.numpy()
        errors.append(float(np.max(np.abs(got - w)) / max(np.max(np.abs(w)), 1e-300)))
    return max(errors)


if __name__ == "__main__":
    sys.exit(main())
