"""Train a two-hidden-layer MLP on scikit-learn's digits with gradients derived by matrixcalculus.

The loss is written as a formula, the way it reads on paper (samples are columns, MATLAB style):

    H1 = tanh(W1*X + b1*ones(N)'),  H2 = tanh(W2*H1 + b2*ones(N)'),  Z = W3*H2 + b3*ones(N)'
    loss = -sum(sum(Y .* log(softmax(Z, 1))))/N + lam/2*(norm2(W1)^2 + norm2(W2)^2 + norm2(W3)^2)

Every gradient comes from ``mc.compile`` (NumPy by default, ``--backend torch`` also works);
the first steps are checked against PyTorch autograd (float64, relative error <= 1e-10), and the
same network, from the same initial weights on the same minibatches, is trained with PyTorch
autograd for comparison. Minibatch Adam; a loss plot is saved.

    python examples/train_mlp.py --epochs 30
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

import numpy as np

import matrixcalculus as mc

LOSS = (
    "-sum(sum(Y .* log(softmax(W3*H2 + b3*ones(N)', 1))))/N"
    " + lam/2*(norm2(W1)^2 + norm2(W2)^2 + norm2(W3)^2)"
    " where H1 = tanh(W1*X + b1*ones(N)'), H2 = tanh(W2*H1 + b2*ones(N)')"
)
PARAMETERS = ("W1", "b1", "W2", "b2", "W3", "b3")


def types(features: int, hidden: int, classes: int) -> dict[str, Any]:
    """The shapes: N (the minibatch) is a named dimension, so ``/N`` divides by its size."""
    return {
        "X": (features, "N"),
        "Y": (classes, "N"),
        "W1": (hidden, features),
        "b1": (hidden,),
        "W2": (hidden, hidden),
        "b2": (hidden,),
        "W3": (classes, hidden),
        "b3": (classes,),
        "lam": "scalar",
    }


def initial_weights(features: int, hidden: int, classes: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [(hidden, features), (hidden, hidden), (classes, hidden)]
    weights: dict[str, np.ndarray] = {}
    for k, (rows, cols) in enumerate(sizes, start=1):
        weights[f"W{k}"] = rng.standard_normal((rows, cols)) / math.sqrt(cols)  # Xavier-like scale
        weights[f"b{k}"] = np.zeros(rows)
    return weights


def torch_loss(torch: Any, p: dict[str, Any], X: Any, Y: Any, lam: float) -> Any:
    """The same loss, written in PyTorch (the reference autograd differentiates)."""
    h1 = torch.tanh(p["W1"] @ X + p["b1"][:, None])
    h2 = torch.tanh(p["W2"] @ h1 + p["b2"][:, None])
    z = p["W3"] @ h2 + p["b3"][:, None]
    n = X.shape[1]
    decay = sum(torch.sum(p[w] ** 2) for w in ("W1", "W2", "W3"))
    return -torch.sum(Y * torch.log_softmax(z, dim=0)) / n + lam / 2 * decay


class Adam:
    """Adam (Kingma & Ba) on a dict of NumPy arrays, with PyTorch's defaults."""

    def __init__(self, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        b1, b2 = self.betas
        for name, g in grads.items():
            m = self.m[name] = b1 * self.m.get(name, 0.0) + (1 - b1) * g
            v = self.v[name] = b2 * self.v.get(name, 0.0) + (1 - b2) * g * g
            m_hat, v_hat = m / (1 - b1**self.t), v / (1 - b2**self.t)
            params[name] = params[name] - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def progress(epoch: int, epochs: int, done: int, total: int, width: int = 30) -> str:
    filled = width * done // total
    return f"\repoch {epoch:3d}/{epochs} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


def batches(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[k : k + size] for k in range(0, n - size + 1, size)]


def accuracy(forward: Any, params: dict[str, np.ndarray], X: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(forward(params, X), axis=0) == labels))


def numpy_forward(p: dict[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    h1 = np.tanh(p["W1"] @ X + p["b1"][:, None])
    h2 = np.tanh(p["W2"] @ h1 + p["b2"][:, None])
    return p["W3"] @ h2 + p["b3"][:, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=1e-4, help="lam, the L2 penalty's weight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default="numpy", choices=("numpy", "torch"))
    parser.add_argument("--check-steps", type=int, default=3, help="steps checked against PyTorch autograd")
    parser.add_argument("--plot", default="train_mlp_loss.png", help="where to save the loss plot ('' for none)")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training samples (CI)")
    args = parser.parse_args(argv)

    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X_all = digits.data / 16.0  # pixel intensities 0..16 -> 0..1
    X_train, X_test, y_train, y_test = train_test_split(
        X_all, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target
    )
    if args.limit:
        X_train, y_train = X_train[: args.limit], y_train[: args.limit]
    classes = 10
    features = X_all.shape[1]
    Xtr, Xte = X_train.T.copy(), X_test.T.copy()  # samples are columns
    Ytr = np.eye(classes)[:, y_train]
    print(f"digits: {Xtr.shape[1]} training and {Xte.shape[1]} test samples, {features} features, {classes} classes")
    print(f"loss: {LOSS}")

    start = time.perf_counter()
    shapes = types(features, args.hidden, classes)
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

    initial = initial_weights(features, args.hidden, classes, args.seed)
    lam = args.weight_decay

    def train(use_torch: bool) -> tuple[dict[str, np.ndarray], list[float], float]:
        """Adam from the same initial weights on the same minibatches; gradients from us or torch."""
        params = {k: v.copy() for k, v in initial.items()}
        tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in initial.items()}
        optimiser = torch.optim.Adam(tparams.values(), lr=args.lr) if use_torch else None
        ours = Adam(args.lr)
        rng = np.random.default_rng(args.seed + 1)
        losses: list[float] = []
        worst = 0.0
        step = 0
        for epoch in range(1, args.epochs + 1):
            parts = batches(Xtr.shape[1], min(args.batch, Xtr.shape[1]), rng)
            total = 0.0
            for k, idx in enumerate(parts, start=1):
                X, Y = Xtr[:, idx], Ytr[:, idx]
                if use_torch:
                    assert optimiser is not None
                    optimiser.zero_grad()
                    loss = torch_loss(torch, tparams, torch.as_tensor(X), torch.as_tensor(Y), lam)
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach())
                else:
                    value, grads = run({**params, "X": X, "Y": Y, "lam": np.asarray(lam)})
                    if step < args.check_steps:
                        worst = max(worst, check_against_torch(torch, params, X, Y, lam, value, grads))
                    ours.step(params, dict(zip(PARAMETERS, grads, strict=True)))
                    total += value
                step += 1
                if not use_torch and sys.stdout.isatty():
                    sys.stdout.write(progress(epoch, args.epochs, k, len(parts)))
            losses.append(total / len(parts))
            if not use_torch:
                bar = progress(epoch, args.epochs, len(parts), len(parts)).lstrip("\r")
                sys.stdout.write(f"\r{bar}  loss {losses[-1]:.4f}\n")
        if use_torch:
            params = {k: v.detach().numpy() for k, v in tparams.items()}
        return params, losses, worst

    params, losses, worst = train(use_torch=False)
    print(f"gradients checked against PyTorch autograd at {args.check_steps} steps: largest relative error {worst:.1e}")
    if worst > 1e-10:
        print("gradient check FAILED")
        return 1
    reference, reference_losses, _ = train(use_torch=True)
    ours_acc = accuracy(numpy_forward, params, Xte, y_test)
    torch_acc = accuracy(numpy_forward, reference, Xte, y_test)
    print(f"test accuracy: {ours_acc:.4f} with matrixcalculus gradients, {torch_acc:.4f} with PyTorch autograd")
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
        ax.set_title("2-hidden-layer MLP on digits")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"loss plot saved to {args.plot}")
    return 0


def check_against_torch(
    torch: Any,
    params: dict[str, np.ndarray],
    X: np.ndarray,
    Y: np.ndarray,
    lam: float,
    value: float,
    grads: tuple[np.ndarray, ...],
) -> float:
    """The largest relative error of our value and gradients against PyTorch autograd's."""
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    loss = torch_loss(torch, tparams, torch.as_tensor(X), torch.as_tensor(Y), lam)
    want = torch.autograd.grad(loss, [tparams[k] for k in PARAMETERS])
    errors = [abs(value - float(loss.detach())) / abs(float(loss.detach()))]
    for got, w in zip(grads, want, strict=True):
        w = w.numpy()
        errors.append(float(np.max(np.abs(got - w)) / max(np.max(np.abs(w)), 1e-300)))
    return max(errors)


if __name__ == "__main__":
    sys.exit(main())
