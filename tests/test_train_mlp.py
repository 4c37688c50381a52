"""examples/train_mlp.py, run as a user runs it, at a size that keeps CI fast: the gradients it
derives agree with PyTorch autograd, training lowers the loss, and both accuracies are stated."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_mlp.py"


def test_train_mlp_small() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    args = ["--epochs", "3", "--hidden", "16", "--batch", "50", "--limit", "400", "--plot", ""]
    done = subprocess.run([sys.executable, str(EXAMPLE), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    error = float(re.search(r"largest relative error (\S+)", out).group(1))  # type: ignore[union-attr]
    assert error <= 1e-10
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)\n", out)]
    assert len(losses) == 3 and losses[-1] < losses[0]
    ours, theirs = (float(v) for v in re.search(r"test accuracy: (\S+) with .*, (\S+) with", out).groups())  # type: ignore[union-attr]
    assert ours > 0.5 and abs(ours - theirs) <= 0.02
