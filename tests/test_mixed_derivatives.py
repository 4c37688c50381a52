"""Mixed second derivatives: every block of a list at order 2, one block for a tuple, ``--wrt2``.

Expected values come from the mathematics (hand-written gradients and their central
differences in float64), never from the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.cli import run

TYPES = {"b": "vector", "t": "vector"}


def _point(seed: int = 0, m: int = 3, n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": rng.standard_normal((m, n)),
        "x": rng.standard_normal(n),
        "b": rng.standard_normal(m),
        "t": rng.standard_normal(m),
    }


def _fd(fn: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of ``fn`` at ``x0``: shape fn(x0).shape + x0.shape."""
    f0 = np.asarray(fn(x0))
    out = np.zeros(f0.shape + x0.shape)
    for idx in np.ndindex(*x0.shape):
        step = np.zeros_like(x0)
        step[idx] = h
        out[(..., *idx)] = (np.asarray(fn(x0 + step)) - np.asarray(fn(x0 - step))) / (2 * h)
    return out


def _gradients_least_squares(v: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """By hand: f = |W x + b - t|^2 / 2, r = W x + b - t; df/dW = r x', df/db = r."""
    r = v["W"] @ v["x"] + v["b"] - v["t"]
    return {"W": np.outer(r, v["x"]), "b": r}


def _gradients_tanh(v: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """By hand: f = sum(tanh(W x + b)), s = 1 - tanh(W x + b)^2; df/dW = s x', df/db = s."""
    s = 1 - np.tanh(v["W"] @ v["x"] + v["b"]) ** 2
    return {"W": np.outer(s, v["x"]), "b": s}


def _fd_block(gradients: Callable[..., dict[str, np.ndarray]], v: dict[str, np.ndarray], first: str, second: str):
    """d/d(second) of df/d(first), by central differences of the hand-written gradient."""
    return _fd(lambda value: gradients({**v, second: value})[first], v[second])


@pytest.mark.parametrize(
    ("text", "gradients"),
    [("0.5*norm2(W*x + b - t)^2", _gradients_least_squares), ("sum(tanh(W*x + b))", _gradients_tanh)],
)
def test_every_block_of_a_list_at_order_two(text: str, gradients: Callable[..., dict[str, np.ndarray]]) -> None:
    blocks = mc.derivative(text, ["W", "b"], types=TYPES, order=2)
    assert isinstance(blocks, tuple) and len(blocks) == 2
    v = _point()
    names = ["W", "b"]
    for i, first in enumerate(names):
        assert isinstance(blocks[i], tuple) and len(blocks[i]) == 2
        for j, second in enumerate(names):
            block = blocks[i][j]
            assert isinstance(block, mc.Expression)
            got = np.asarray(block.evaluate(v))
            want = _fd_block(gradients, v, first, second)
            assert got.shape == v[first].shape + v[second].shape, (first, second)
            np.testing.assert_allclose(got, want, atol=1e-7, err_msg=f"d/d{second} df/d{first}")


def test_blocks_of_least_squares_are_the_known_formulas() -> None:
    # d2f/dW[i,j]db[k] = delta(i,k) x[j]; d2f/db db = I; d2f/dW[i,j]dW[k,l] = delta(i,k) x[j] x[l].
    blocks = mc.derivative("0.5*norm2(W*x + b - t)^2", ["W", "b"], types=TYPES, order=2)
    v = _point(1)
    x, eye = v["x"], np.eye(3)
    np.testing.assert_allclose(blocks[0][1].evaluate(v), np.einsum("ik,j->ijk", eye, x))
    np.testing.assert_allclose(blocks[1][0].evaluate(v), np.einsum("ij,k->ijk", eye, x))
    np.testing.assert_allclose(blocks[1][1].evaluate(v), eye)
    np.testing.assert_allclose(blocks[0][0].evaluate(v), np.einsum("ik,j,l->ijkl", eye, x, x))
    assert str(blocks[1][1]) == "eye(m)"


def test_a_tuple_is_one_mixed_block() -> None:
    assert str(mc.derivative("x'*A*y", ("x", "y"))) == "A"
    assert str(mc.derivative("x'*A*y", ("y", "x"))) == "A'"
    v = _point(2)
    mixed = mc.derivative("0.5*norm2(W*x + b - t)^2", ("W", "b"), types=TYPES)
    assert isinstance(mixed, mc.Expression)
    np.testing.assert_allclose(mixed.evaluate(v), _fd_block(_gradients_least_squares, v, "W", "b"), atol=1e-7)
    # The same block as in the list of every block.
    blocks = mc.derivative("0.5*norm2(W*x + b - t)^2", ["W", "b"], types=TYPES, order=2)
    np.testing.assert_allclose(mixed.evaluate(v), blocks[0][1].evaluate(v))


def test_a_tuple_of_x_and_y_against_a_bilinear_form() -> None:
    rng = np.random.default_rng(3)
    a, x, y = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal(4)
    values = {"A": a, "x": x, "y": y}
    # df/dx = A y, so d/dy of it is A; df/dy = A' x, d/dx of it is A'.
    np.testing.assert_allclose(_fd(lambda yy: a @ yy, y), a)
    np.testing.assert_allclose(mc.derivative("x'*A*y", ("x", "y")).evaluate(values), a)
    np.testing.assert_allclose(mc.derivative("x'*A*y", ("y", "x")).evaluate(values), a.T)
    assert mc.check("x'*A*y", ("x", "y")).ok


def test_a_pure_tuple_is_the_second_derivative() -> None:
    assert str(mc.derivative("x'*A*x", ("x", "x"))) == str(mc.derivative("x'*A*x", "x", order=2))


def test_hessian_of_a_list_is_every_block() -> None:
    # f = x'*A*y is linear in each: the diagonal blocks are zero, the mixed ones A and A'.
    blocks = mc.hessian("x'*A*y", ["x", "y"])
    assert str(blocks[0][1]) == "A" and str(blocks[1][0]) == "A'"
    rng = np.random.default_rng(4)
    values = {"A": rng.standard_normal((3, 4)), "x": rng.standard_normal(3), "y": rng.standard_normal(4)}
    np.testing.assert_array_equal(np.broadcast_to(blocks[0][0].evaluate(values), (3, 3)), np.zeros((3, 3)))
    np.testing.assert_array_equal(np.broadcast_to(blocks[1][1].evaluate(values), (4, 4)), np.zeros((4, 4)))


def test_a_tuple_with_an_order_is_refused() -> None:
    with pytest.raises(mc.MatrixCalculusError, match="leave out order"):
        mc.derivative("x'*A*y", ("x", "y"), order=2)


def test_cli_wrt2_prints_the_mixed_block_and_checks_it() -> None:
    text, status = run(["0.5*norm2(W*x + b - t)^2", "--wrt", "W", "--wrt2", "b", "--types", "b=vector", "--check"])
    assert status == 0
    first = text.splitlines()[0]
    assert first.startswith("d^2f/dW db[i,j,k] = ")
    assert "shape of d^2f/dW db: m x n x m" in text
    assert "check: d^2f/dW db:" in text and "(ok)" in text
    text, status = run(["x'*A*y", "--wrt", "x", "--wrt2", "y"])
    assert status == 0 and text.splitlines()[0] == "d^2f/dx dy = A"


def test_cli_wrt2_needs_one_wrt() -> None:
    with pytest.raises(mc.MatrixCalculusError, match="one --wrt"):
        run(["x'*A*y", "--wrt", "x", "--wrt", "A", "--wrt2", "y"])
    with pytest.raises(mc.MatrixCalculusError, match="leave out --order"):
        run(["x'*A*y", "--wrt", "x", "--wrt2", "y", "--order", "2"])


def test_cli_help_and_readme_name_wrt2() -> None:
    from pathlib import Path

    from matrixcalculus.cli import build_parser

    assert "--wrt2" in build_parser().format_help()
    readme = Path(__file__).resolve().parents[1] / "README.md"
    assert "--wrt2 NAME" in readme.read_text()
