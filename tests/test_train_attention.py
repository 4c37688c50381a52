"""examples/train_attention.py, run as a user runs it, at a size that keeps CI fast: the gradients
of the attention model it derives agree with PyTorch autograd, training lowers the loss, and the
accuracies of both trainings are stated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_attention.py"


def test_train_attention_small() -> None:
    pytest.importorskip("torch")
    args = ["--epochs", "3", "--train", "160", "--test", "50", "--batch", "16", "--width", "16", "--plot", ""]
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    error = float(re.search(r"largest relative error (\S+)", out).group(1))  # type: ignore[union-attr]
    assert error <= 1e-10
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)\n", out)]
    # a first epoch from random weights is near log(V) = log(10) = 2.3; training must go below it
    assert len(losses) == 3 and losses[-1] < losses[0] < 3.0
    found = re.search(r"per token: (\S+) with .*, (\S+) with", out)
    assert found is not None
    ours, theirs = (float(v) for v in found.groups())
    # same initial weights, same minibatches, gradients equal to 1e-15: the two trainings agree;
    # chance is 1/V = 0.1
    assert ours > 0.2 and abs(ours - theirs) <= 0.02
