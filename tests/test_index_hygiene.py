"""Index notation is well formed: free indices are free, every summed index is bound by its
``sum_``, never reused as a free one, and no parenthesised index expression is subscripted.

The order-2 derivative of a two-layer network w.r.t. ``W1`` used to print
``((sum_l W2[l,i]*...) - ...)[i,j,k]*...*x[l]``: ``l`` both summed and free, and the index
notation of a sum (free indices of its own) subscripted again.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.cli import run

NETWORK = "0.5*norm2(W2*tanh(W1*x + b1) + b2 - t)^2"
NETWORK_TYPES = {"b1": "vector", "b2": "vector"}


def _matching_open(text: str, close: int) -> int:
    depth = 0
    for k in range(close, -1, -1):
        depth += (text[k] == ")") - (text[k] == "(")
        if depth == 0:
            return k
    raise AssertionError(f"unbalanced parentheses in {text}")


def _index_problems(text: str, free: set[str]) -> list[str]:
    """What is wrong with the indices of ``text`` (empty when nothing)."""
    problems: list[str] = []
    scopes: list[set[str]] = [set()]
    k = 0
    while k < len(text):
        ch = text[k]
        if ch == "(":
            scopes.append(set())
        elif ch == ")":
            scopes.pop()
            if text[k + 1 : k + 2] == "[":
                group = text[_matching_open(text, k) : k + 1]
                if "sum_" in group or "delta(" in group:
                    problems.append(f"an index expression subscripted: {group}[...")
        summed = re.match(r"sum_([a-z]+)\s", text[k:])
        if summed and (k == 0 or not text[k - 1].isalnum()):
            letters = set(summed.group(1))
            if letters & free:
                problems.append(f"summed index {sorted(letters & free)} is also free")
            bound = set().union(*scopes)
            if letters & bound:
                problems.append(f"summed index {sorted(letters & bound)} summed again inside its sum")
            scopes[-1] |= letters
            k += summed.end()
            continue
        used = re.match(r"(?:\[([a-z0-9,()]+)\]|delta\(([a-z]),([a-z])\))", text[k:])
        if used:
            letters = set(re.findall(r"[a-z][0-9]*", ",".join(x for x in used.groups() if x)))
            unbound = letters - free - set().union(*scopes)
            if unbound:
                problems.append(f"index {sorted(unbound)} neither free nor summed at {text[k : k + 20]!r}")
            k += used.end() if used.group(2) else 1
            continue
        k += 1
    return problems


def test_the_checker_finds_the_old_faults() -> None:
    old = "((sum_l W2[l,i]*s[i]*x[j]*W2[l,k]) - 2*delta(i,k)*M[k,j])[i,j,k]*s[k]*x[l]"
    assert _index_problems(old, {"i", "j", "k", "l"})
    nested = "((sum_a A[a,i]) - B[i,j])[i,j]"
    assert not _index_problems("(sum_a A[i,a]*B[a,j]) + C[i,j]", {"i", "j"})
    assert _index_problems("(sum_a A[i,a])*B[a,j]", {"i", "j"})  # a used outside its sum
    assert _index_problems(nested, {"i", "j"})


def test_order_two_network_index_notation_is_hygienic() -> None:
    d = mc.derivative(NETWORK, "W1", types=NETWORK_TYPES, order=2)
    text = d.index_notation()
    assert _index_problems(text, {"i", "j", "k", "l"}) == [], text
    # The free indices all appear.
    for letter in "ijkl":
        assert re.search(rf"[\[,(]{letter}[\],)]", text), (letter, text)


def test_order_two_network_cli_line_is_hygienic() -> None:
    output, status = run([NETWORK, "--wrt", "W1", "--order", "2", "--types", "b1=vector", "b2=vector"])
    assert status == 0
    head, _, body = output.splitlines()[0].partition(" = ")
    assert head == "d^2f/dW1^2[i,j,k,l]"
    assert _index_problems(body, {"i", "j", "k", "l"}) == [], body


@pytest.mark.parametrize(
    ("text", "wrt", "types"),
    [
        (NETWORK, "W2", NETWORK_TYPES),
        ("sum(tanh(W*x).^2)", "W", {}),
        ("0.5*norm2(W*x - t)^2", "W", {}),
        ("sum(exp(W*x + b))", "W", {"b": "vector"}),
        ("sum(sigmoid(A*X*B))", "X", {}),
    ],
)
def test_order_two_tensors_are_hygienic(text: str, wrt: str, types: dict) -> None:
    d = mc.derivative(text, wrt, types=types, order=2)
    notation = d.index_notation()
    assert _index_problems(notation, {"i", "j", "k", "l"}) == [], notation


def test_order_two_network_values_against_finite_differences() -> None:
    # The printed tensor's value (what the index notation denotes) against differences of the
    # hand-written gradient: df/dW1 = (W2' r .* s) x', r = W2 h + b2 - t, h = tanh(W1 x + b1), s = 1 - h^2.
    rng = np.random.default_rng(0)
    v = {
        "W1": rng.standard_normal((3, 2)),
        "W2": rng.standard_normal((2, 3)),
        "x": rng.standard_normal(2),
        "b1": rng.standard_normal(3),
        "b2": rng.standard_normal(2),
        "t": rng.standard_normal(2),
    }

    def grad(w1: np.ndarray) -> np.ndarray:
        h = np.tanh(w1 @ v["x"] + v["b1"])
        r = v["W2"] @ h + v["b2"] - v["t"]
        return np.outer((v["W2"].T @ r) * (1 - h**2), v["x"])

    eps = 1e-6
    want = np.zeros((3, 2, 3, 2))
    for idx in np.ndindex(3, 2):
        step = np.zeros((3, 2))
        step[idx] = eps
        want[..., idx[0], idx[1]] = (grad(v["W1"] + step) - grad(v["W1"] - step)) / (2 * eps)
    got = mc.derivative(NETWORK, "W1", types=NETWORK_TYPES, order=2).evaluate(v)
    np.testing.assert_allclose(got, want, atol=1e-7)
