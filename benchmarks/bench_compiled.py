"""Time compiled derivatives: ``mc.compile`` against hand-written NumPy, ``jax.jit`` and ``torch.func``.

Run:  .venv/bin/python benchmarks/bench_compiled.py [--quick] [--sizes 100,1000,3000]
          [--backends numpy,torch,jax,dask] [--problems quad,logreg,mf,mlp,...] [--dtypes float64,float32]
          [--torch-compile] [--threads 1] [--plot PATH] [--markdown]
      .venv/bin/python benchmarks/bench_compiled.py --overhead [--threads 1]   (per-call overhead at n = 100)

The problems of Laue et al. (NeurIPS 2018), each at every size n, on the same float64 inputs
(one process, one seed):

* ``quad``: ``x'*A*x`` with A n x n (not symmetric), wrt x.
* ``logreg``: ``sum(log(1 + exp(-y .* (X*w))))`` with X 2n x n, y in {-1, +1}, wrt w.
* ``mf``: ``norm2(T - U*V')^2`` with T n x n, U and V n x 10, wrt U. Its Hessian is the 4-d
  array ``2*delta(i,k)*(V'*V)[j,l]`` of shape n x 10 x n x 10: dense it has 100 n^2 entries.
* ``mlp``: ``0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2``, input n, hidden n, output 10, wrt W1;
  gradient only (its Hessian is n^4 entries).
* ``softmax_ce``: ``-y'*log(softmax(A*w))``, A n x n, y a probability vector, wrt w (gradient and
  Hessian; the expert's Hessian is ``sum(y)*(B'B - u u')``, ``B = diag(sqrt(s))*A``, ``u = A's``).
* ``mlp_batch``: a 784-256-256-10 relu MLP on a batch of 128 (biases as ``b*ones(N)'``), the
  gradient w.r.t. all six parameters at once (fixed sizes: one row).
* ``attention``: one head, sequence 128, width 64, the row softmax spelled with exp and ones,
  ``0.5*norm2(softmax_rows(X*Wq*Wk'*X'/8)*X*Wv - T)^2`` wrt Wq, Wk, Wv (fixed sizes: one row).
* ``layernorm``: ``t'*((x - mean(x)) / sqrt(mean((x - mean(x)).^2) + 1e-5))`` wrt x.
* ``logdet``: ``logdet(X)`` wrt X, X symmetric positive definite (the expert: ``inv(X).T``).

Each problem runs in every dtype of ``--dtypes`` (float64 and float32: the inputs are cast, and
so is every reference's code path); the first table gives ours (the best of our backends) over the
best reference that agrees, and whether the issue-15 goal is met (<= 1.0 at n >= 1000 and the
fixed-size rows, <= 1.2 at n = 100).

For each problem the gradient and the Hessian (wrt the same variable) are timed for

* ``ours``: ``fn = mc.compile(expr, wrt=..., derivatives=("gradient",) or ("hessian",),
  backend="numpy", types=...)``, called as ``fn(values)``; the compile step is not timed (its time
  is printed in the table of one-off costs). ``--backends numpy,torch,jax,dask`` adds a column
  ``ours-<backend>`` per backend, fed arrays of that library (dask: the data matrix A, X, T or W1
  chunked by rows into ``--dask-chunks`` blocks, the rest one chunk; the timed call includes
  ``dask.compute``; jax results are ``block_until_ready``). A compile or call that fails shows
  ``error`` in its cell and the message below the table. Where ours returns a structured result
  (a Kronecker ``Factored`` for the mf Hessian) it is timed as returned, and compiled again with
  ``dense=True`` into a column ``ours(dense)`` (``ours-<backend>(dense)``): the like-for-like one.
* ``numpy``: the closed form an expert writes by hand (two mat-vecs for ``(A + A')*x``, a stable
  sigmoid and ``(X.T * s) @ X`` for logistic regression, manual backprop for the MLP). For the mf
  Hessian it builds the *dense* 4-d array ``2*delta(i,k)*(V'V)[j,l]`` -- the array that jax and
  torch return -- as ``np.zeros`` plus the n diagonal 10 x 10 blocks (5x faster than
  ``2*einsum('ik,jl->ijkl', eye(n), V'V)``); the structured form (just ``2*V'V``) would cost next
  to nothing, and a structured result from ours is densified (its ``dense()``) to check it.
* ``jax.jit``: ``jax.jit(jax.grad(f))`` / ``jax.jit(jax.hessian(f))`` in float64
  (``jax_enable_x64``), all inputs passed as arguments (no baked-in constants), compiled by the
  warm-up call (its time is in the one-off table), timed with ``block_until_ready``.
* ``torch.func``: ``torch.func.grad(f)`` / ``torch.func.hessian(f)`` on float64 CPU tensors,
  eager, default thread count (``--threads N`` restarts the script with BLAS, torch and XLA
  limited to N threads: steadier figures on a shared machine).

f is the loss written as an expert would in each library (``softplus`` for the logistic loss,
``sum((T - U@V.T)**2)`` for the Frobenius norm squared). For torch, ``x @ A @ x`` and
``w @ X.T`` rather than ``x @ (A @ x)`` and ``X @ w``: ``torch.func.hessian`` (jacfwd over jacrev)
through a matrix-vector product is 10x-25x slower than through a vector-matrix one (torch 2.13,
n = 1000: 9 s against 0.4 s for the logistic Hessian); jax is indifferent.

Timing: one warm-up call, then repeats timed with ``time.perf_counter`` until ``--budget``
seconds are spent in the cell (at least 3 repeats unless that takes 3 budgets) or
``--max-repeats`` are done; the median (``--statistic min``: the minimum, the figure least moved
by other processes on a shared machine, as ``timeit`` advises; the same for every method) is
reported in milliseconds. Every result is compared with
the hand-written NumPy one (``np.allclose``, rtol 1e-6, atol 1e-8 * max|ref|); a ``!`` after a
time marks a disagreement (details below the table).

Skipped cells: a Hessian whose dense array exceeds ``--max-hessian-entries`` (2e8: 1.6 GB) is
``skip(size)`` for every method; an autodiff Hessian whose batched (vmapped) intermediates
would need more than ``--max-autodiff-gb`` is ``skip(mem)`` for that method only (jax and torch
build ``jacfwd(jacrev(f))``: for mf that is 10 n tangents of n x n each, 80 GB at n = 1000); a
method whose call, extrapolated as n^3 from the previous size, would take over ``--max-call``
seconds is ``skip(time)``.

Ratios: time / baseline, where the baseline is the fastest of (numpy, jax.jit) for gradients and
numpy for Hessians -- the issue's targets (ours <= 1.2 at n >= 1000).

Output: the table on stdout (``--markdown`` for a Markdown table, e.g. for docs/performance.md),
a PNG of time against n per problem and derivative (``--plot``, default benchmarks/compiled.png),
and optionally the raw figures as JSON (``--json``). At the default sizes on a 2-core CPU the
script takes a few minutes; ``--quick`` (n = 100, 300, short budgets) under a minute on an idle
machine. The run reports when other processes took a noticeable share of the CPU meanwhile.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import matrixcalculus as mc

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - optional reference
    jax = jnp = None

try:
    import torch
    import torch.func
except ImportError:  # pragma: no cover - optional reference
    torch = None

try:
    import dask
    import dask.array as da
except ImportError:  # pragma: no cover - optional backend
    dask = da = None

Values = dict[str, np.ndarray]
RANK = 10  # matrix factorisation rank
OUT = 10  # MLP output size


# --------------------------------------------------------------------------- hand-written NumPy


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Stable logistic sigmoid: never exp of a large positive number."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _quad_grad(v: Values) -> np.ndarray:
    A, x = v["A"], v["x"]
    return A @ x + A.T @ x  # two mat-vecs, never the n x n sum A + A'


def _quad_hess(v: Values) -> np.ndarray:
    A = v["A"]
    return A + A.T


def _logreg_grad(v: Values) -> np.ndarray:
    X, y, w = v["X"], v["y"], v["w"]
    return -(X.T @ (y * _sigmoid(-y * (X @ w))))  # negate the n-vector, not X


def _logreg_hess(v: Values) -> np.ndarray:
    X, y, w = v["X"], v["y"], v["w"]
    p = _sigmoid(-y * (X @ w))
    s = p * (1.0 - p)  # y^2 = 1
    B = X * np.sqrt(s)[:, None]  # s >= 0: B'B is one symmetric rank-k update (BLAS syrk)
    return B.T @ B


def _mf_grad(v: Values) -> np.ndarray:
    # The expert's form: never the n x n product U*V' (the Gram matrix V'V is 10 x 10).
    T, U, V = v["T"], v["U"], v["V"]
    return 2.0 * (U @ (V.T @ V) - T @ V)


def _mf_hess(v: Values) -> np.ndarray:
    # Dense n x k x n x k: H[i,j,k,l] = 2 delta(i,k) (V'V)[j,l], written as zeros plus the n
    # diagonal k x k blocks: 5x faster than 2*einsum('ik,jl->ijkl', eye(n), V'V) at n = 300..1000.
    V = v["V"]
    n, k = V.shape
    H = np.zeros((n, k, n, k), dtype=V.dtype)
    i = np.arange(n)
    H[i, :, i, :] = 2.0 * (V.T @ V)
    return H


def _mlp_grad(v: Values) -> np.ndarray:
    W1, x, b1, W2, b2, t = v["W1"], v["x"], v["b1"], v["W2"], v["b2"], v["t"]
    a = W1 @ x + b1
    r = W2 @ np.maximum(a, 0.0) + b2 - t
    delta = (W2.T @ r) * (a > 0)
    return np.outer(delta, x)


def _softmax(z: np.ndarray, axis: int = 0) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _ce_grad(v: Values) -> np.ndarray:
    A, y, w = v["A"], v["y"], v["w"]
    s = _softmax(A @ w)
    return A.T @ (s * np.sum(y) - y)


def _ce_hess(v: Values) -> np.ndarray:
    # sum(y) * A'(diag(s) - s s')A, as B'B - u u' with B = diag(sqrt(s))*A, u = A's.
    A, y, w = v["A"], v["y"], v["w"]
    s = _softmax(A @ w)
    B = A * np.sqrt(s)[:, None]
    u = A.T @ s
    return np.sum(y) * (B.T @ B - np.outer(u, u))


def _mlp_batch_grad(v: Values) -> tuple[np.ndarray, ...]:
    W1, b1, W2, b2, W3, b3, X, Y = (v[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3", "X", "Y"))
    a1 = W1 @ X + b1[:, None]
    h1 = np.maximum(a1, 0.0)
    a2 = W2 @ h1 + b2[:, None]
    h2 = np.maximum(a2, 0.0)
    r = W3 @ h2 + b3[:, None] - Y
    d2 = (W3.T @ r) * (a2 > 0)
    d1 = (W2.T @ d2) * (a1 > 0)
    return (d1 @ X.T, d1.sum(axis=1), d2 @ h1.T, d2.sum(axis=1), r @ h2.T, r.sum(axis=1))


def _attention_grad(v: Values) -> tuple[np.ndarray, ...]:
    X, Wq, Wk, Wv, T = (v[k] for k in ("X", "Wq", "Wk", "Wv", "T"))
    Q, K, V = X @ Wq, X @ Wk, X @ Wv
    A = _softmax(Q @ K.T / ATT_SCALE, axis=1)
    R = A @ V - T
    dA = R @ V.T
    dS = A * (dA - np.sum(dA * A, axis=1, keepdims=True)) / ATT_SCALE
    return (X.T @ (dS @ K), X.T @ (dS.T @ Q), X.T @ (A.T @ R))


def _layernorm_grad(v: Values) -> np.ndarray:
    x, t = v["x"], v["t"]
    c = x - x.mean()
    r = 1.0 / np.sqrt(np.mean(c * c) + LN_EPS)
    yhat = c * r
    return r * (t - t.mean() - yhat * (t @ yhat) / x.shape[0])


def _logdet_grad(v: Values) -> np.ndarray:
    return np.linalg.inv(v["X"]).T


# --------------------------------------------------------------------------- jax and torch losses


def _jax_losses() -> dict[str, Callable[..., Any]]:
    return {
        "quad": lambda x, A: x @ A @ x,
        "logreg": lambda w, X, y: jnp.sum(jax.nn.softplus(-y * (X @ w))),
        "mf": lambda U, T, V: jnp.sum((T - U @ V.T) ** 2),
        "mlp": lambda W1, x, b1, W2, b2, t: 0.5 * jnp.sum((W2 @ jax.nn.relu(W1 @ x + b1) + b2 - t) ** 2),
        "softmax_ce": lambda w, A, y: -y @ jax.nn.log_softmax(A @ w),
        "mlp_batch": lambda W1, b1, W2, b2, W3, b3, X, Y: (
            0.5
            * jnp.sum((W3 @ jax.nn.relu(W2 @ jax.nn.relu(W1 @ X + b1[:, None]) + b2[:, None]) + b3[:, None] - Y) ** 2)
        ),
        "attention": lambda Wq, Wk, Wv, X, T: (
            0.5 * jnp.sum((jax.nn.softmax((X @ Wq) @ (X @ Wk).T / ATT_SCALE, axis=1) @ (X @ Wv) - T) ** 2)
        ),
        "layernorm": lambda x, t: t @ ((x - jnp.mean(x)) / jnp.sqrt(jnp.mean((x - jnp.mean(x)) ** 2) + LN_EPS)),
        "logdet": lambda X: jnp.linalg.slogdet(X)[1],
    }


def _torch_losses() -> dict[str, Callable[..., Any]]:
    F = torch.nn.functional
    return {
        # x @ A @ x and w @ X.T, not x @ (A @ x) and X @ w: torch.func.hessian (jacfwd over jacrev)
        # of a matrix-vector product is 10x-25x slower than of a vector-matrix one (n = 1000).
        "quad": lambda x, A: x @ A @ x,
        "logreg": lambda w, X, y: F.softplus(-y * (w @ X.T)).sum(),
        "mf": lambda U, T, V: ((T - U @ V.T) ** 2).sum(),
        "mlp": lambda W1, x, b1, W2, b2, t: 0.5 * ((W2 @ torch.relu(W1 @ x + b1) + b2 - t) ** 2).sum(),
        "softmax_ce": lambda w, A, y: -y @ torch.log_softmax(w @ A.T, 0),
        "mlp_batch": lambda W1, b1, W2, b2, W3, b3, X, Y: (
            0.5 * ((W3 @ torch.relu(W2 @ torch.relu(W1 @ X + b1[:, None]) + b2[:, None]) + b3[:, None] - Y) ** 2).sum()
        ),
        "attention": lambda Wq, Wk, Wv, X, T: (
            0.5 * ((torch.softmax((X @ Wq) @ (X @ Wk).T / ATT_SCALE, 1) @ (X @ Wv) - T) ** 2).sum()
        ),
        "layernorm": lambda x, t: t @ ((x - x.mean()) / torch.sqrt(((x - x.mean()) ** 2).mean() + LN_EPS)),
        "logdet": lambda X: torch.logdet(X),
    }


# --------------------------------------------------------------------------- problems


def _make_quad(n: int, rng: np.random.Generator) -> Values:
    return {"A": rng.standard_normal((n, n)), "x": rng.standard_normal(n)}


def _make_logreg(n: int, rng: np.random.Generator) -> Values:
    X = rng.standard_normal((2 * n, n)) / math.sqrt(n)
    w = rng.standard_normal(n)
    y = np.where(rng.random(2 * n) < 0.5, -1.0, 1.0)
    return {"X": X, "y": y, "w": w}


def _make_mf(n: int, rng: np.random.Generator) -> Values:
    return {"T": rng.standard_normal((n, n)), "U": rng.standard_normal((n, RANK)), "V": rng.standard_normal((n, RANK))}


def _make_mlp(n: int, rng: np.random.Generator) -> Values:
    return {
        "W1": rng.standard_normal((n, n)) / math.sqrt(n),
        "x": rng.standard_normal(n),
        "b1": rng.standard_normal(n),
        "W2": rng.standard_normal((OUT, n)) / math.sqrt(n),
        "b2": rng.standard_normal(OUT),
        "t": rng.standard_normal(OUT),
    }


def _make_softmax_ce(n: int, rng: np.random.Generator) -> Values:
    y = rng.random(n)
    return {"A": rng.standard_normal((n, n)) / math.sqrt(n), "y": y / y.sum(), "w": rng.standard_normal(n)}


# The deep-learning rows have fixed sizes (the issue's): a 784-256-256-10 MLP on a batch of 128,
# one attention head over a sequence of 128 of width 64.
MLP_SIZES = (784, 256, 256, 10)
BATCH = 128
SEQ, WIDTH = 128, 64
ATT_SCALE = 8.0  # sqrt(WIDTH)
LN_EPS = 1e-5


def _make_mlp_batch(n: int, rng: np.random.Generator) -> Values:
    i, h1, h2, o = MLP_SIZES
    return {
        "W1": rng.standard_normal((h1, i)) / math.sqrt(i),
        "b1": rng.standard_normal(h1) * 0.1,
        "W2": rng.standard_normal((h2, h1)) / math.sqrt(h1),
        "b2": rng.standard_normal(h2) * 0.1,
        "W3": rng.standard_normal((o, h2)) / math.sqrt(h2),
        "b3": rng.standard_normal(o) * 0.1,
        "X": rng.standard_normal((i, BATCH)),
        "Y": rng.standard_normal((o, BATCH)),
    }


def _make_attention(n: int, rng: np.random.Generator) -> Values:
    return {
        "Wq": rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH),
        "Wk": rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH),
        "Wv": rng.standard_normal((WIDTH, WIDTH)) / math.sqrt(WIDTH),
        "X": rng.standard_normal((SEQ, WIDTH)),
        "T": rng.standard_normal((SEQ, WIDTH)),
    }


def _make_layernorm(n: int, rng: np.random.Generator) -> Values:
    return {"x": rng.standard_normal(n), "t": rng.standard_normal(n)}


def _make_logdet(n: int, rng: np.random.Generator) -> Values:
    B = rng.standard_normal((n, n))
    return {"X": B @ B.T / n + np.eye(n)}  # symmetric positive definite


@dataclass(frozen=True)
class Problem:
    key: str
    expr: str
    wrt: str | tuple[str, ...]  # several: the gradient w.r.t. each (all parameters at once)
    types: dict[str, str]
    order: tuple[str, ...]  # argument order of the jax/torch loss; the wrt names first
    chunked: str  # the data matrix that dask chunks by rows
    make: Callable[[int, np.random.Generator], Values]
    grad: Callable[[Values], np.ndarray]
    hess: Callable[[Values], np.ndarray] | None
    hess_entries: Callable[[int], int]
    # Rough peak bytes of jacfwd(jacrev(f)) per library: (number of tangents) x (largest batched
    # intermediate) x (how many such buffers live at once, measured: mf at n = 300 peaks at
    # 2.5 GB in jax, 11 GB in torch).
    autodiff_bytes: Callable[[int], dict[str, float]] = field(default=lambda n: {})
    fixed: str = ""  # a problem of fixed sizes (run once, at the first n): how its row reads them


PROBLEMS = [
    Problem(
        "quad",
        "x'*A*x",
        "x",
        {"A": "matrix", "x": "vector"},
        ("x", "A"),
        "A",
        _make_quad,
        _quad_grad,
        _quad_hess,
        lambda n: n * n,
        lambda n: {"jax": 4 * 8 * n * n, "torch": 6 * 8 * n * n},
    ),
    Problem(
        "logreg",
        "sum(log(1 + exp(-y .* (X*w))))",
        "w",
        {"X": "matrix", "y": "vector", "w": "vector"},
        ("w", "X", "y"),
        "X",
        _make_logreg,
        _logreg_grad,
        _logreg_hess,
        lambda n: n * n,
        lambda n: {"jax": 6 * 8 * 2 * n * n, "torch": 8 * 8 * 2 * n * n},
    ),
    Problem(
        "mf",
        "norm2(T - U*V')^2",
        "U",
        {"T": "matrix", "U": "matrix", "V": "matrix"},
        ("U", "T", "V"),
        "T",
        _make_mf,
        _mf_grad,
        _mf_hess,
        lambda n: (RANK * n) ** 2,
        lambda n: {"jax": 1.2 * 8 * RANK * n**3, "torch": 5.0 * 8 * RANK * n**3},
    ),
    Problem(
        "mlp",
        "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2",
        "W1",
        {"W1": "matrix", "x": "vector", "b1": "vector", "W2": "matrix", "b2": "vector", "t": "vector"},
        ("W1", "x", "b1", "W2", "b2", "t"),
        "W1",
        _make_mlp,
        _mlp_grad,
        None,
        lambda n: n**4,
    ),
    Problem(
        "softmax_ce",
        "-y'*log(softmax(A*w))",
        "w",
        {"A": "matrix", "y": "vector", "w": "vector"},
        ("w", "A", "y"),
        "A",
        _make_softmax_ce,
        _ce_grad,
        _ce_hess,
        lambda n: n * n,
        lambda n: {"jax": 6 * 8 * n * n, "torch": 8 * 8 * n * n},
    ),
    Problem(
        "mlp_batch",
        "0.5*norm2(W3*relu(W2*relu(W1*X + b1*ones(N)') + b2*ones(N)') + b3*ones(N)' - Y)^2",
        ("W1", "b1", "W2", "b2", "W3", "b3"),
        {
            "W1": "matrix",
            "W2": "matrix",
            "W3": "matrix",
            "X": "matrix",
            "Y": "matrix",
            "b1": "vector",
            "b2": "vector",
            "b3": "vector",
        },
        ("W1", "b1", "W2", "b2", "W3", "b3", "X", "Y"),
        "X",
        _make_mlp_batch,
        _mlp_batch_grad,
        None,
        lambda n: 0,
        fixed="784-256-256-10 b128",
    ),
    Problem(
        "attention",
        "0.5*norm2((exp(X*Wq*Wk'*X'/8) ./ (exp(X*Wq*Wk'*X'/8)*ones(s)*ones(s)'))*X*Wv - T)^2",
        ("Wq", "Wk", "Wv"),
        {"X": "matrix", "Wq": "matrix", "Wk": "matrix", "Wv": "matrix", "T": "matrix"},
        ("Wq", "Wk", "Wv", "X", "T"),
        "X",
        _make_attention,
        _attention_grad,
        None,
        lambda n: 0,
        fixed="s128 d64",
    ),
    Problem(
        "layernorm",
        "t'*((x - mean(x)) / sqrt(mean((x - mean(x)).^2) + 0.00001))",
        "x",
        {"x": "vector", "t": "vector"},
        ("x", "t"),
        "x",
        _make_layernorm,
        _layernorm_grad,
        None,
        lambda n: n * n,
    ),
    Problem(
        "logdet",
        "logdet(X)",
        "X",
        {"X": "matrix"},
        ("X",),
        "X",
        _make_logdet,
        _logdet_grad,
        None,
        lambda n: n**4,
    ),
]


# --------------------------------------------------------------------------- timing and checking


@dataclass
class Cell:
    ms: float | None = None  # median
    status: str = ""  # "", "error", "skip(size)", "skip(mem)", "n/a", "missing"
    mismatch: str = ""  # why the result disagrees with numpy
    error: str = ""
    repeats: int = 0
    setup_ms: float | None = None  # ours: mc.compile; jax: first call (trace + XLA compile)
    result_type: str = ""  # ours: the type of the result
    choices: list[str] = field(default_factory=list)  # ours: the forms the cost model chose


def _sync(out: Any) -> Any:
    """Finish lazy or asynchronous work inside the timed region."""
    if dask is not None and any(isinstance(o, da.Array) for o in _leaves(out)):
        out = dask.compute(*out) if isinstance(out, tuple) else dask.compute(out)[0]
    if jax is not None:
        out = jax.block_until_ready(out)
    return out


def _leaves(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _is_structured(r: Any) -> bool:
    """A result that is not an array of any library but can make one (e.g. a Kronecker ``Factored``)."""
    if isinstance(r, np.ndarray) or (torch is not None and isinstance(r, torch.Tensor)):
        return False
    if (jax is not None and isinstance(r, jax.Array)) or (da is not None and isinstance(r, da.Array)):
        return False
    return any(callable(getattr(r, a, None)) for a in ("dense", "todense", "toarray"))


def _to_numpy(r: Any) -> np.ndarray:
    if _is_structured(r):
        r = next(getattr(r, a) for a in ("dense", "todense", "toarray") if callable(getattr(r, a, None)))()
    if torch is not None and isinstance(r, torch.Tensor):
        return r.detach().cpu().numpy()
    if da is not None and isinstance(r, da.Array):
        r = r.compute()
    if type(r).__module__.startswith("cupy"):
        r = r.get()
    return np.asarray(r, dtype=np.float64)


def _compare(result: Any, ref: Any) -> str:
    if isinstance(ref, tuple):
        if not isinstance(result, (tuple, list)) or len(result) != len(ref):
            return f"expected {len(ref)} arrays, got {type(result).__name__}"
        for k, (r, e) in enumerate(zip(result, ref, strict=True)):
            why = _compare(r, e)
            if why:
                return f"part {k}: {why}"
        return ""
    try:
        got = _to_numpy(result)
    except Exception as exc:  # a result we cannot read is a disagreement
        return f"cannot convert {type(result).__name__}: {exc}"
    if got.shape != ref.shape:
        return f"shape {got.shape}, expected {ref.shape}"
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    # float32: about 7 digits, less what long sums lose
    rtol, atol = (1e-6, 1e-8) if ref.dtype == np.float64 else (2e-3, 2e-4)
    if not np.allclose(got, ref.astype(np.float64), rtol=rtol, atol=atol * max(scale, 1.0)):
        err = float(np.max(np.abs(got - ref))) / max(scale, 1e-300)
        return f"max |diff| / max |ref| = {err:.2e}"
    return ""


# The statistic of the repeats each cell reports (--statistic).
_STATISTIC: Callable[[list[float]], float] = statistics.median


def _time(call: Callable[[], Any], budget: float, max_repeats: int) -> tuple[float, int, Any, float]:
    """Warm up once, then repeat; returns (median s per call, or the minimum with --statistic
    min; repeats, warm-up result, warm-up s).

    A call under a millisecond is timed in batches of calls that take about a millisecond
    together (the median per call of the batches): a single call of a few microseconds is
    mostly the timer and the scheduler's noise."""
    gc.collect()
    t0 = time.perf_counter()
    first = call()
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    call()
    once = time.perf_counter() - t0
    batch = max(1, min(200, int(1e-3 / max(once, 1e-7))))
    times: list[float] = []
    total = 0.0
    while len(times) < max_repeats:
        t0 = time.perf_counter()
        for _ in range(batch):
            call()
        dt = (time.perf_counter() - t0) / batch
        times.append(dt)
        total += dt * batch
        if total >= budget and (len(times) >= 3 or total >= 3 * budget):
            break
    return _STATISTIC(times), len(times), first, warm


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


# --------------------------------------------------------------------------- backends for ours


def _convert(values: Values, backend: str, chunked: str, dask_chunks: int) -> dict[str, Any]:
    if backend == "numpy":
        return dict(values)
    if backend == "torch":
        if torch is None:
            raise ImportError("torch is not installed")
        return {k: torch.from_numpy(v) for k, v in values.items()}
    if backend == "jax":
        if jax is None:
            raise ImportError("jax is not installed")
        return {k: jnp.asarray(v) for k, v in values.items()}
    if backend == "dask":
        if da is None:
            raise ImportError("dask is not installed")
        out = {}
        for k, v in values.items():
            if k == chunked:
                rows = max(1, math.ceil(v.shape[0] / dask_chunks))
                out[k] = da.from_array(v, chunks=(rows,) + v.shape[1:])
            else:
                out[k] = da.from_array(v, chunks=v.shape)
        return out
    if backend == "cupy":
        import cupy

        return {k: cupy.asarray(v) for k, v in values.items()}
    raise ValueError(f"unknown backend {backend!r}")


# --------------------------------------------------------------------------- the run


REF_METHODS = ("numpy", "jax.jit", "torch.func", "torch.compile")


def _method_names(backends: list[str], torch_compile: bool = False) -> list[str]:
    ours = ["ours" if b == "numpy" else f"ours-{b}" for b in backends]
    return ours + [m for m in REF_METHODS if torch_compile or m != "torch.compile"]


def _cast(values: Values, dtype: str) -> Values:
    return {k: v.astype(dtype) for k, v in values.items()}


def _wrt_names(p: Problem) -> tuple[str, ...]:
    return p.wrt if isinstance(p.wrt, tuple) else (p.wrt,)


def _columns(rows: list[dict[str, Any]], backends: list[str], torch_compile: bool = False) -> list[str]:
    """The methods of the table: ours per backend, each followed by its (dense) variant where one ran."""
    out = []
    for m in _method_names(backends, torch_compile):
        out.append(m)
        if m.startswith("ours") and any(f"{m}(dense)" in r["cells"] for r in rows):
            out.append(f"{m}(dense)")
    return out


def _cell(row: dict[str, Any], method: str) -> Cell:
    return row["cells"].get(method) or Cell()


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dtype in args.dtypes:
        rows += _run_dtype(args, dtype)
    return rows


def _run_dtype(args: argparse.Namespace, dtype: str) -> list[dict[str, Any]]:
    backends = args.backends
    methods = _method_names(backends, args.torch_compile)
    jax_f = _jax_losses() if jax is not None else {}
    torch_f = _torch_losses() if torch is not None else {}
    rows: list[dict[str, Any]] = []
    problems = [p for p in PROBLEMS if p.key in args.problems]
    for p in problems:
        for deriv in ("gradient", "hessian"):
            if deriv == "hessian" and p.hess is None:
                continue  # no Hessian row for this problem (its Hessian is n^4 entries or several blocks)
            for n in args.sizes[:1] if p.fixed else args.sizes:
                cells = {m: Cell() for m in methods}
                row = {
                    "problem": p.key,
                    "expr": p.expr,
                    "wrt": p.wrt,
                    "derivative": deriv,
                    "n": p.fixed or n,
                    "dtype": dtype,
                    "cells": cells,
                }
                rows.append(row)
                ref_fn = p.grad if deriv == "gradient" else p.hess
                if ref_fn is None:
                    for c in cells.values():
                        c.status = "n/a"
                    _progress(row, args)
                    continue
                if deriv == "hessian" and p.hess_entries(n) > args.max_hessian_entries:
                    for c in cells.values():
                        c.status = "skip(size)"
                    _progress(row, args)
                    continue
                values = _cast(p.make(n, np.random.default_rng(args.seed)), dtype)
                ref_call = lambda f=ref_fn, v=values: f(v)  # noqa: E731
                med, reps, ref, _ = _time(ref_call, args.budget, args.max_repeats)
                cells["numpy"].ms, cells["numpy"].repeats = med * 1e3, reps

                # the autodiff references
                mem = p.autodiff_bytes(n) if deriv == "hessian" else {}
                argnums = tuple(range(len(_wrt_names(p))))
                argnums_ = argnums if len(argnums) > 1 else 0
                references = [("jax.jit", jax, jax_f), ("torch.func", torch, torch_f)]
                if args.torch_compile:
                    references.append(("torch.compile", torch, torch_f))
                for name, lib, fs in references:
                    cell = cells[name]
                    if lib is None:
                        cell.status = "missing"
                        continue
                    key = "jax" if name == "jax.jit" else "torch"
                    if mem.get(key, 0.0) > args.max_autodiff_gb * 1e9:
                        cell.status = "skip(mem)"
                        continue
                    if _too_slow(rows, name, args):
                        cell.status = "skip(time)"
                        continue
                    args_ = [jnp.asarray(values[k]) if key == "jax" else torch.from_numpy(values[k]) for k in p.order]
                    f = fs[p.key]
                    try:
                        if key == "jax":
                            d = jax.jit(jax.grad(f, argnums_) if deriv == "gradient" else jax.hessian(f))
                            call = lambda d=d, a=args_: jax.block_until_ready(d(*a))  # noqa: E731
                        else:
                            d = torch.func.grad(f, argnums_) if deriv == "gradient" else torch.func.hessian(f)
                            if name == "torch.compile":
                                d = torch.compile(d)
                            call = lambda d=d, a=args_: d(*a)  # noqa: E731
                        med, reps, out, warm = _time(call, args.budget, args.max_repeats)
                        cell.ms, cell.repeats = med * 1e3, reps
                        if key == "jax" or name == "torch.compile":
                            cell.setup_ms = warm * 1e3
                        cell.mismatch = _compare(out, ref)
                        del out
                    except Exception as exc:
                        cell.status, cell.error = "error", _short(exc)
                    del args_

                # ours, per backend; a structured result (Factored) is timed again compiled with
                # dense=True, in the column "<ours>(dense)"
                for b in backends:
                    name = "ours" if b == "numpy" else f"ours-{b}"
                    if _too_slow(rows, name, args):
                        cells[name].status = "skip(time)"
                        continue
                    structured = _time_ours(p, deriv, b, values, ref, cells[name], args, dense=False)
                    if structured:
                        cells[f"{name}(dense)"] = dense_cell = Cell()
                        if _too_slow(rows, f"{name}(dense)", args):
                            dense_cell.status = "skip(time)"
                        else:
                            _time_ours(p, deriv, b, values, ref, dense_cell, args, dense=True)
                del values, ref
                _progress(row, args)
    return rows


def _too_slow(rows: list[dict[str, Any]], method: str, args: argparse.Namespace) -> bool:
    """Whether ``method`` on the last row would take over ``--max-call`` seconds a call, extrapolated
    as n^3 from its time at the largest smaller n of the same problem and derivative, where that
    took at least 0.1 s (below, fixed overheads and scheduling noise would make the guess wild)."""
    row = rows[-1]
    prev = [
        (r["n"], _cell(r, method).ms)
        for r in rows[:-1]
        if (r["problem"], r["derivative"], r["dtype"]) == (row["problem"], row["derivative"], row["dtype"])
        and isinstance(r["n"], int)
        and isinstance(row["n"], int)
        and r["n"] < row["n"]
        and _cell(r, method).ms is not None
    ]
    if not prev:
        return False
    n0, ms = max(prev)
    return ms >= 100 and ms / 1e3 * (row["n"] / n0) ** 3 > args.max_call


def _time_ours(
    p: Problem,
    deriv: str,
    backend: str,
    values: Values,
    ref: np.ndarray,
    cell: Cell,
    args: argparse.Namespace,
    dense: bool,
) -> bool:
    """Compile and time ours into ``cell``; returns whether the result came back structured."""
    structured = False
    try:
        inputs = _convert(values, backend, p.chunked, args.dask_chunks)
        extra = {"dense": True} if dense else {}
        t0 = time.perf_counter()
        wrt = list(p.wrt) if isinstance(p.wrt, tuple) else p.wrt
        fn = mc.compile(p.expr, wrt=wrt, derivatives=(deriv,), backend=backend, types=p.types, **extra)
        cell.setup_ms = (time.perf_counter() - t0) * 1e3
        # The forms the cost model chose for this signature (comments of the generated source).
        cell.choices = [line.strip()[2:] for line in fn.source(inputs).splitlines() if line.strip().startswith("# ")]
        # Eager NumPy and torch results are done when the call returns, as the references'
        # (timed without a sync): _sync walks the outputs (a few microseconds at n = 100).
        call = (lambda: fn(inputs)) if backend in ("numpy", "torch") else (lambda: _sync(fn(inputs)))
        med, reps, out, _ = _time(call, args.budget, args.max_repeats)
        cell.ms, cell.repeats = med * 1e3, reps
        if not isinstance(out, (tuple, list)) or len(out) != 1:
            cell.mismatch = f"expected a 1-tuple, got {type(out).__name__}"
        else:
            structured = not isinstance(out[0], tuple) and _is_structured(out[0])
            cell.result_type = type(out[0]).__name__
            cell.mismatch = _compare(out[0], ref)
    except Exception as exc:
        cell.status, cell.error = "error", _short(exc)
        if args.verbose:
            traceback.print_exc()
    return structured


def _progress(row: dict[str, Any], args: argparse.Namespace) -> None:
    if args.quiet:
        return
    bits = []
    for m, c in row["cells"].items():
        bits.append(f"{m}={_fmt_cell(c)}")
    print(f"  [{row['problem']} {row['derivative']} n={row['n']}] " + " ".join(bits), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- output


def _fmt_ms(ms: float) -> str:
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    if ms >= 1:
        return f"{ms:.2f}"
    return f"{ms:.3f}"


def _fmt_cell(c: Cell) -> str:
    if c.ms is None:
        return c.status or "-"
    return _fmt_ms(c.ms) + ("!" if c.mismatch else "")


def _baseline(row: dict[str, Any]) -> tuple[str, float | None]:
    """The best reference that agrees: the fastest of hand-written NumPy, jax.jit, torch.func
    (and torch.compile where it ran)."""
    cells = row["cells"]
    cands = [(m, cells[m].ms) for m in REF_METHODS if m in cells and cells[m].ms is not None and not cells[m].mismatch]
    if cands:
        return min(cands, key=lambda t: t[1])
    return "-", None


def _ours(row: dict[str, Any]) -> tuple[str, float | None]:
    """Ours: the best of our backends (a structured result as returned)."""
    cells = row["cells"]
    cands = [
        (m, c.ms)
        for m, c in cells.items()
        if m.startswith("ours") and not m.endswith("(dense)") and c.ms is not None and not c.mismatch
    ]
    return min(cands, key=lambda t: t[1]) if cands else ("-", None)


def _goal(row: dict[str, Any], ratio: float) -> str:
    """The issue's goal: ours <= 1.0x the best reference at n >= 1000 (and the fixed-size deep
    learning rows), <= 1.2x at n = 100."""
    n = row["n"]
    limit = 1.2 if isinstance(n, int) and n < 1000 else 1.0
    return "yes" if ratio <= limit else "no"


def _key(row: dict[str, Any]) -> list[str]:
    return [row["problem"], row["derivative"], str(row["n"]), row.get("dtype", "float64")]


KEY_HEAD = ["problem", "derivative", "n", "dtype"]


def _summary(rows: list[dict[str, Any]], markdown: bool) -> str:
    """ours / best reference per row, whether the goal is met, and for Hessians jax.hessian / ours."""
    head = KEY_HEAD + ["ours", "ours ms", "best", "best ms", "ours/best", "goal", "jax/ours"]
    lines = []
    for row in rows:
        o_name, o_ms = _ours(row)
        b_name, b_ms = _baseline(row)
        ratio = o_ms / b_ms if o_ms and b_ms else None
        jax_ms = _cell(row, "jax.jit").ms
        ahead = f"{jax_ms / o_ms:.1f}" if row["derivative"] == "hessian" and jax_ms and o_ms else ""
        lines.append(
            _key(row)
            + [
                o_name,
                _fmt_ms(o_ms) if o_ms else "-",
                b_name,
                _fmt_ms(b_ms) if b_ms else "-",
                f"{ratio:.2f}" if ratio else "",
                _goal(row, ratio) if ratio else "",
                ahead,
            ]
        )
    return _render(head, lines, markdown)


def _tables(rows: list[dict[str, Any]], methods: list[str], markdown: bool) -> list[str]:
    """Median ms per method, the baseline, and each method's time / baseline: one table, or two
    (times, then ratios) when there are more than five methods."""
    ms_head = [f"{m} ms" for m in methods]
    ratio_methods = [m for m in methods if m != "numpy"]
    ratio_head = [f"{m}/base" for m in ratio_methods]
    ms_lines, ratio_lines = [], []
    for row in rows:
        base_name, base = _baseline(row)
        key = _key(row)
        ms_lines.append(key + [_fmt_cell(_cell(row, m)) for m in methods])
        ratios = []
        for m in ratio_methods:
            c = _cell(row, m)
            ratios.append(f"{c.ms / base:.2f}" if c.ms is not None and base else "")
        ratio_lines.append(key + [base_name if base is not None else "-"] + ratios)
    return [
        _render(KEY_HEAD + ms_head, ms_lines, markdown),
        _render(KEY_HEAD + ["baseline"] + ratio_head, ratio_lines, markdown),
    ]


def _choices(rows: list[dict[str, Any]]) -> list[str]:
    """The forms the cost model chose (with its estimates), per row of ours (numpy backend)."""
    out = []
    for row in rows:
        c = _cell(row, "ours")
        for choice in c.choices:
            out.append(f"{' '.join(_key(row))}: {choice} (measured {_fmt_ms(c.ms) if c.ms else '-'} ms)")
    return out


def _render(head: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        rule = ["---" if i < 2 else "---:" for i in range(len(head))]
        return "\n".join("| " + " | ".join(line) + " |" for line in [head, rule, *lines])
    return _align(head, lines)


def _align(head: list[str], lines: list[list[str]]) -> str:
    """Plain-text columns: the first two left-aligned, the rest right-aligned."""
    widths = [max([len(h)] + [len(line[i]) for line in lines]) for i, h in enumerate(head)]

    def fmt(cols: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths, strict=True)))

    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(line) for line in lines])


def _setup_table(rows: list[dict[str, Any]], methods: list[str]) -> str:
    cols = [m for m in methods if m.startswith("ours")] + ["jax.jit"]
    head = KEY_HEAD + [f"{m} setup ms" for m in cols]
    lines = []
    for row in rows:
        setups = [_cell(row, m).setup_ms for m in cols]
        if all(ms is None for ms in setups):
            continue
        lines.append(_key(row) + [_fmt_ms(ms) if ms is not None else "-" for ms in setups])
    if not lines:
        return ""
    return _align(head, lines)


def _is_structured_name(type_name: str) -> bool:
    return type_name not in ("ndarray", "Tensor", "ArrayImpl", "Array", "tuple")


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes: list[str] = []
    seen: set[tuple[str, str]] = set()
    seen_types: set[tuple[str, str, str]] = set()
    for row in rows:
        tag = f"{row['problem']} {row['derivative']} n={row['n']}"
        for m, c in row["cells"].items():
            if (
                m.startswith("ours")
                and c.result_type
                and _is_structured_name(c.result_type)
                and ((row["problem"], row["derivative"], c.result_type) not in seen_types)
            ):
                seen_types.add((row["problem"], row["derivative"], c.result_type))
                notes.append(
                    f"note {row['problem']} {row['derivative']}: ours returns a structured {c.result_type},"
                    " timed as returned and checked densified; the (dense) columns time"
                    " mc.compile(..., dense=True)"
                )
            if c.mismatch:
                notes.append(f"! {tag} {m}: disagrees with numpy: {c.mismatch}")
            if c.error:
                key = (m, c.error)
                if key in seen:
                    continue
                seen.add(key)
                notes.append(f"error {tag} {m}: {c.error}")
    return notes


def _plot(rows: list[dict[str, Any]], methods: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if isinstance(r["n"], int) and r.get("dtype", "float64") == "float64"]
    panels = []
    for row in rows:
        key = (row["problem"], row["derivative"])
        if key not in panels:
            panels.append(key)
    panels = [
        k
        for k in panels
        if any(_cell(r, m).ms is not None for r in rows if (r["problem"], r["derivative"]) == k for m in methods)
    ]
    if not panels:
        return
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(11, 3.4 * nrows), squeeze=False)
    styles = {"numpy": ("k", "o", "-"), "jax.jit": ("tab:blue", "s", "-"), "torch.func": ("tab:orange", "^", "-")}
    ours_colors = ["tab:red", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan"]
    base_ours = [m for m in methods if m.startswith("ours") and not m.endswith("(dense)")]
    for i, m in enumerate(base_ours):
        styles[m] = (ours_colors[i % len(ours_colors)], "D", "-")
        styles[f"{m}(dense)"] = (ours_colors[i % len(ours_colors)], "d", "--")
    for ax, (prob, deriv) in zip(axes.flat, panels, strict=False):
        sub = [r for r in rows if r["problem"] == prob and r["derivative"] == deriv]
        for m in methods:
            pts = [(r["n"], _cell(r, m).ms) for r in sub if _cell(r, m).ms is not None]
            if pts:
                color, marker, line = styles[m]
                ax.plot(*zip(*pts, strict=True), marker=marker, linestyle=line, color=color, label=m)
        expr = sub[0]["expr"]
        ax.set_title(f"{prob}: {deriv} of {expr} wrt {sub[0]['wrt']}", fontsize=9)
        ax.set_xscale("log")
        ns = sorted({r["n"] for r in sub})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("n")
        ax.set_ylabel("median ms")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Compiled derivatives, float64, {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        fontsize=10,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cpu_snapshot() -> tuple[float, float, float] | None:
    """(wall s, busy CPU s of the whole machine, CPU s of this process), Linux only."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(f[:3]) + sum(f[5:8])  # user nice system irq softirq steal (not idle, iowait)
    t = os.times()
    return time.monotonic(), busy / os.sysconf("SC_CLK_TCK"), t.user + t.system


def _others_share(a: tuple[float, float, float] | None, b: tuple[float, float, float] | None) -> float | None:
    """Fraction of the machine's CPU capacity that other processes used between two snapshots."""
    if a is None or b is None or b[0] - a[0] <= 0:
        return None
    others = (b[1] - a[1]) - (b[2] - a[2])
    return max(0.0, others) / ((b[0] - a[0]) * (os.cpu_count() or 1))


def _versions() -> str:
    bits = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"matrixcalculus {mc.__version__}"]
    if jax is not None:
        bits.append(f"jax {jax.__version__}")
    if torch is not None:
        bits.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if os.environ.get("BENCH_COMPILED_THREADS"):
        bits.append(f"--threads {os.environ['BENCH_COMPILED_THREADS']} (BLAS, torch, XLA)")
    if dask is not None:
        bits.append(f"dask {dask.__version__}")
    return ", ".join(bits)


def overhead_table(n: int = 100, rounds: int = 300, batch: int = 20) -> None:
    """Per-call overhead at size n: the hand-written NumPy gradient, our generated function called
    directly (no signature look-up, no checks), the compiled call without the finite check
    (``check_finite=False``) and the compiled call; interleaved minimum times (the fairest
    comparison of microsecond calls on a shared machine)."""
    print(f"Per-call overhead at n = {n} (interleaved minimum of {rounds} batches of {batch} calls):")
    print(f"{'problem':<12} {'hand-written':>13} {'generated':>10} {'unchecked':>10} {'call':>8} {'call/hand':>10}")
    for p in PROBLEMS:
        if p.fixed:
            continue
        values = p.make(n, np.random.default_rng(0))
        wrt = list(p.wrt) if isinstance(p.wrt, tuple) else p.wrt
        fn = mc.compile(p.expr, wrt=wrt, derivatives=("gradient",), types=p.types)
        unchecked = mc.compile(p.expr, wrt=wrt, derivatives=("gradient",), types=p.types, check_finite=False)
        fn(values)
        unchecked(values)
        entry = fn._entry(values)
        arguments = [values[name] for name in fn._names]  # read once: the function alone is timed
        calls = {
            "hand": lambda p=p, v=values: p.grad(v),
            "generated": lambda e=entry, a=arguments: e.fn(*a),
            "unchecked": lambda f=unchecked, v=values: f(v),
            "call": lambda f=fn, v=values: f(v),
        }
        best = dict.fromkeys(calls, math.inf)
        for _ in range(rounds):
            for key, call in calls.items():
                t0 = time.perf_counter()
                for _ in range(batch):
                    call()
                best[key] = min(best[key], (time.perf_counter() - t0) / batch)
        us = {k: v * 1e6 for k, v in best.items()}
        ratio = us["call"] / us["hand"]
        print(
            f"{p.key:<12} {us['hand']:11.1f}us {us['generated']:8.1f}us {us['unchecked']:8.1f}us"
            f" {us['call']:6.1f}us {ratio:10.2f}"
        )


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", help="comma-separated n (default 100,1000,3000; --quick: 100,300)")
    ap.add_argument("--quick", action="store_true", help="n = 100, 300 and short budgets")
    ap.add_argument("--backends", default="numpy", help="backends for ours, comma-separated: numpy,torch,jax,dask,cupy")
    ap.add_argument("--problems", default=",".join(p.key for p in PROBLEMS), help="comma-separated subset")
    ap.add_argument("--budget", type=float, help="seconds of repeats per cell (default 1.5; --quick 0.3)")
    ap.add_argument("--max-repeats", type=int, help="most repeats per cell (default 25; --quick 5)")
    ap.add_argument("--max-hessian-entries", type=float, default=2e8, help="skip dense Hessians larger than this")
    ap.add_argument(
        "--max-autodiff-gb",
        type=float,
        default=8.0,
        help="skip jax/torch Hessians whose estimated peak memory is larger",
    )
    ap.add_argument(
        "--max-call",
        type=float,
        default=20.0,
        help="skip a method whose call, extrapolated (n^3) from the previous size, exceeds this (s)",
    )
    ap.add_argument("--dtypes", default="float64,float32", help="comma-separated: float64,float32")
    ap.add_argument(
        "--torch-compile",
        action="store_true",
        help="also time torch.compile(torch.func.grad/hessian) (its compile takes a while per cell)",
    )
    ap.add_argument("--dask-chunks", type=int, default=4, help="row blocks of the data matrix for ours-dask")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for BLAS, torch and XLA (restarts the script with OMP_NUM_THREADS etc. set);"
        " default: each library's own (all cores)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--statistic",
        choices=("median", "min"),
        default="median",
        help="the statistic of each cell's repeats (min: least moved by other processes)",
    )
    ap.add_argument("--overhead", action="store_true", help="only the per-call overhead table (gradients at n = 100)")
    ap.add_argument(
        "--plot",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "compiled.png"),
        help="PNG path, '' for none (default: compiled.png beside this script)",
    )
    ap.add_argument("--json", default="", help="also write the raw figures here")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--quiet", action="store_true", help="no per-cell progress on stderr")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = ap.parse_args(argv)
    if args.sizes:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    else:
        args.sizes = [100, 300] if args.quick else [100, 1000, 3000]
    if args.budget is None:
        args.budget = 0.3 if args.quick else 1.5
    if args.max_repeats is None:
        args.max_repeats = 5 if args.quick else 25
    args.sizes = sorted(set(args.sizes))
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.problems = [s.strip() for s in args.problems.split(",") if s.strip()]
    args.dtypes = [s.strip() for s in args.dtypes.split(",") if s.strip()]
    unknown = set(args.problems) - {p.key for p in PROBLEMS}
    if unknown:
        ap.error(f"unknown problems: {', '.join(sorted(unknown))}")
    return args


def _restart_with_threads(threads: int) -> None:
    """Thread counts of OpenBLAS/MKL, torch and XLA are fixed when they start: set them in the
    environment and run this script again (once)."""
    if os.environ.get("BENCH_COMPILED_THREADS") == str(threads):
        return
    env = dict(os.environ, BENCH_COMPILED_THREADS=str(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    xla = [f for f in env.get("XLA_FLAGS", "").split() if "multi_thread_eigen" not in f]
    if threads == 1:
        xla += ["--xla_cpu_multi_thread_eigen=false"]
    env["XLA_FLAGS"] = " ".join(xla)
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.threads and argv is None:
        _restart_with_threads(args.threads)
    if args.overhead:
        overhead_table()
        return 0
    global _STATISTIC
    _STATISTIC = min if args.statistic == "min" else statistics.median
    t_start = time.perf_counter()
    cpu0 = _cpu_snapshot()
    rows = run(args)
    others = _others_share(cpu0, _cpu_snapshot())
    methods = _columns(rows, args.backends, args.torch_compile)
    print(
        f"# {_versions()}; {os.cpu_count()} cores; sizes {args.sizes}; budget {args.budget} s/cell, "
        f"at most {args.max_repeats} repeats"
    )
    print("ours / best reference (goal: <= 1.0 at n >= 1000 and the fixed-size rows, <= 1.2 at n = 100):")
    print(_summary(rows, args.markdown))
    print()
    print("\n\n".join(_tables(rows, methods, args.markdown)))
    print(
        f"\nms: {args.statistic} per call; '!': disagrees with numpy; baseline: fastest of (numpy, jax.jit) for"
        " gradients,"
        " numpy for Hessians (mf: the dense n x 10 x n x 10 array);\nskip(size): dense Hessian over"
        f" {args.max_hessian_entries:.0e} entries; skip(mem): jacfwd(jacrev) estimated over"
        f" {args.max_autodiff_gb} GB; skip(time): a call extrapolated (n^3) over {args.max_call} s."
    )
    setup = _setup_table(rows, methods)
    if setup:
        print("\nOne-off costs (ms): mc.compile for ours, the first call (trace + XLA compile) for jax.jit\n" + setup)
    choices = _choices(rows)
    if choices:
        print("\nForms chosen by the cost model (estimated cost: multiply-adds + 8 x entries moved):")
        print("\n".join(choices))
    notes = _notes(rows)
    if others is not None and others > 0.1:
        notes.append(
            f"warning: other processes used {100 * others:.0f}% of the machine's CPU time during the run, "
            "so timings are noisy (rerun on an idle machine)"
        )
    if notes:
        print("\n" + "\n".join(notes))
    if args.plot:
        try:
            _plot(rows, methods, args.plot)
            print(f"\nplot: {args.plot}")
        except ImportError:
            print("\nplot: skipped (matplotlib is not installed)")
    if args.json:
        data = [
            {**{k: v for k, v in r.items() if k != "cells"}, "cells": {m: vars(c) for m, c in r["cells"].items()}}
            for r in rows
        ]
        with open(args.json, "w") as fh:
            json.dump({"versions": _versions(), "args": vars(args), "rows": data}, fh, indent=1)
    print(f"total {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
