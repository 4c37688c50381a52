"""Every construct of the input language, one table row each.

For each row: the text parses; ``str(e)`` re-parses (with the same ``types=``) to the very same
graph node; the shape and the variables' kinds and shapes are as documented (undeclared
dimensions are named n, m, p, ... in order of first appearance, a matrix's columns before its
rows); ``e.latex()`` is non-empty LaTeX; and ``e.evaluate`` gives the numbers of a NumPy
computation written out independently here, on random float64 inputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc

# Sizes of the symbolic dimensions when evaluating.
DIMS = {"n": 3, "m": 4, "p": 2, "q": 5, "k": 6}


def sc() -> tuple[str, tuple]:
    return ("scalar", ())


def vec(d: str | int = "n") -> tuple[str, tuple]:
    return ("vector", (d,))


def mat(r: str | int = "m", c: str | int = "n") -> tuple[str, tuple]:
    return ("matrix", (r, c))


def sym(d: str | int = "n") -> tuple[str, tuple]:
    return ("symmetric", (d, d))


def spd(rng: np.random.Generator, n: int) -> np.ndarray:
    """A well-conditioned symmetric positive definite matrix."""
    G = rng.standard_normal((n, n))
    return G @ G.T + n * np.eye(n)


@dataclass(frozen=True)
class Case:
    text: str
    shape: tuple
    variables: dict[str, tuple[str, tuple]]
    ref: Callable[[dict[str, Any]], Any]
    types: dict[str, Any] = field(default_factory=dict)
    values: str = "normal"  # "normal", "positive" (0.5..2) or "unit" (-0.9..0.9)
    make: Callable[[np.random.Generator], dict[str, Any]] | None = None


def case(text: str, shape: tuple, variables: dict, ref: Callable, **kw: Any) -> Any:
    return pytest.param(Case(text, shape, variables, ref, **kw), id=text)


def sigmoid(x: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-x))


ELEMENTWISE = {
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": sigmoid,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
}
NEEDS_POSITIVE = {"log", "sqrt"}


def softmax(x: np.ndarray) -> np.ndarray:
    return np.exp(x) / np.sum(np.exp(x))


SCALARS_ABC = {"a": "scalar", "b": "scalar", "c": "scalar"}

CASES = [
    # ------------------------------------------------------------ numbers
    case("2", (), {}, lambda v: 2.0),
    case("0.5", (), {}, lambda v: 0.5),
    case("1e-3", (), {}, lambda v: 0.001),
    case("1e-3*x", ("n",), {"x": vec()}, lambda v: 0.001 * v["x"]),
    # ------------------------------------------------------------ names
    case("W1", ("m", "n"), {"W1": mat()}, lambda v: v["W1"]),
    # The convention: a-g scalars, h-z vectors, A-Z matrices, Greek names scalars.
    case("alpha", (), {"alpha": sc()}, lambda v: v["alpha"]),
    case("b_2", (), {"b_2": sc()}, lambda v: v["b_2"]),
    case("e", (), {"e": sc()}, lambda v: v["e"]),
    case("alpha", ("n",), {"alpha": vec()}, lambda v: v["alpha"], types={"alpha": "vector"}),
    case("i", ("n",), {"i": vec()}, lambda v: v["i"]),
    case("e + i", ("n",), {"e": vec(), "i": vec()}, lambda v: v["e"] + v["i"], types={"e": "vector"}),
    case("e^2", (), {"e": sc()}, lambda v: v["e"] ** 2),
    case("i*e'", ("n", "m"), {"i": vec("n"), "e": vec("m")}, lambda v: np.outer(v["i"], v["e"]), types={"e": "vector"}),
    case("alpha*x", ("n",), {"alpha": sc(), "x": vec()}, lambda v: v["alpha"] * v["x"]),
    case(
        "W1*x + b_2",
        ("m",),
        {"W1": mat(), "x": vec(), "b_2": vec("m")},
        lambda v: v["W1"] @ v["x"] + v["b_2"],
        types={"b_2": "vector"},
    ),
    # ------------------------------------------------------------ parentheses
    case("(x + y)'*z", (), {"x": vec(), "y": vec(), "z": vec()}, lambda v: (v["x"] + v["y"]) @ v["z"]),
    case("A*(x - y)", ("m",), {"A": mat(), "x": vec(), "y": vec()}, lambda v: v["A"] @ (v["x"] - v["y"])),
    case("((a))", (), {"a": sc()}, lambda v: v["a"], types={"a": "scalar"}),
    case("(A*B)'", ("p", "m"), {"A": mat(), "B": mat("n", "p")}, lambda v: (v["A"] @ v["B"]).T),
    case("x - (y - z)", ("n",), {"x": vec(), "y": vec(), "z": vec()}, lambda v: v["x"] - (v["y"] - v["z"])),
    # ------------------------------------------------------------ + and -
    case("x + y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] + v["y"]),
    case("x - y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] - v["y"]),
    case("x - y - z", ("n",), {"x": vec(), "y": vec(), "z": vec()}, lambda v: v["x"] - v["y"] - v["z"]),
    case("-x", ("n",), {"x": vec()}, lambda v: -v["x"]),
    case("+x", ("n",), {"x": vec()}, lambda v: v["x"]),
    case("a - -b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] + v["b"], types=SCALARS_ABC),
    case("A - B", ("m", "n"), {"A": mat(), "B": mat()}, lambda v: v["A"] - v["B"]),
    case("x + a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] + v["a"], types={"a": "scalar"}),
    case("a + x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] + v["x"], types={"a": "scalar"}),
    case("a - x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] - v["x"], types={"a": "scalar"}),
    case("x - a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] - v["a"], types={"a": "scalar"}),
    case("A + a", ("m", "n"), {"A": mat(), "a": sc()}, lambda v: v["A"] + v["a"], types={"a": ()}),
    case("1 - A", ("m", "n"), {"A": mat()}, lambda v: 1 - v["A"]),
    # Undeclared, a is a scalar by its name (a-g), repeated over x: the default reading stands.
    case("x + a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] + v["a"]),
    case("a + b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] + v["b"], types=SCALARS_ABC),
    # ------------------------------------------------------------ * (matrix product, scalar times anything)
    case("A*x", ("m",), {"A": mat(), "x": vec()}, lambda v: v["A"] @ v["x"]),
    case("A*B", ("m", "p"), {"A": mat(), "B": mat("n", "p")}, lambda v: v["A"] @ v["B"]),
    case("A*B*x", ("m",), {"A": mat(), "B": mat("n", "p"), "x": vec("p")}, lambda v: v["A"] @ v["B"] @ v["x"]),
    case("x'*A", ("m",), {"x": vec(), "A": mat("n", "m")}, lambda v: v["x"] @ v["A"]),
    case("x'*y", (), {"x": vec(), "y": vec()}, lambda v: v["x"] @ v["y"]),
    case("x*y'", ("n", "m"), {"x": vec(), "y": vec("m")}, lambda v: np.outer(v["x"], v["y"])),
    case("x*y'*z", ("n",), {"x": vec(), "y": vec("m"), "z": vec("m")}, lambda v: np.outer(v["x"], v["y"]) @ v["z"]),
    case("2*A", ("m", "n"), {"A": mat()}, lambda v: 2 * v["A"]),
    case("A*2", ("m", "n"), {"A": mat()}, lambda v: v["A"] * 2),
    case("a*x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] * v["x"], types={"x": "vector"}),
    case("a*x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] * v["x"]),
    case("x*a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] * v["a"], types={"a": "scalar"}),
    case("a*A", ("m", "n"), {"a": sc(), "A": mat()}, lambda v: v["a"] * v["A"]),
    case("a*b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] * v["b"], types=SCALARS_ABC),
    case("x'*x", (), {"x": vec()}, lambda v: v["x"] @ v["x"]),
    case(
        "a'*X*b",
        (),
        {"a": vec(), "X": mat("n", "m"), "b": vec("m")},
        lambda v: v["a"] @ v["X"] @ v["b"],
        types={"a": "vector", "b": "vector"},
    ),
    case("x'*A*x", (), {"x": vec(), "A": mat("n", "n")}, lambda v: v["x"] @ v["A"] @ v["x"]),
    case("(x'*y)*z", ("m",), {"x": vec(), "y": vec(), "z": vec("m")}, lambda v: (v["x"] @ v["y"]) * v["z"]),
    case("x'*y*z", ("m",), {"x": vec(), "y": vec(), "z": vec("m")}, lambda v: (v["x"] @ v["y"]) * v["z"]),
    case("z*(x'*y)", ("n",), {"z": vec(), "x": vec("m"), "y": vec("m")}, lambda v: v["z"] * (v["x"] @ v["y"])),
    case("x'*A'*y", (), {"x": vec(), "A": mat("m", "n"), "y": vec("m")}, lambda v: v["x"] @ v["A"].T @ v["y"]),
    # ------------------------------------------------------------ / by a scalar
    case("x/2", ("n",), {"x": vec()}, lambda v: v["x"] / 2),
    case(
        "A/a", ("m", "n"), {"A": mat(), "a": sc()}, lambda v: v["A"] / v["a"], types={"a": "scalar"}, values="positive"
    ),
    case("(x'*y)/a", (), {"x": vec(), "y": vec(), "a": sc()}, lambda v: (v["x"] @ v["y"]) / v["a"], values="positive"),
    case("x/(1 + a)", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] / (1 + v["a"]), values="positive"),
    case(
        "a/b/c",
        (),
        {"a": sc(), "b": sc(), "c": sc()},
        lambda v: v["a"] / v["b"] / v["c"],
        types=SCALARS_ABC,
        values="positive",
    ),
    case("x/3", ("n",), {"x": vec()}, lambda v: v["x"] / 3),
    # ------------------------------------------------------------ ^ (power of a scalar)
    case("x^2", (), {"x": sc()}, lambda v: v["x"] ** 2),
    case("(x'*x)^0.5", (), {"x": vec()}, lambda v: (v["x"] @ v["x"]) ** 0.5),
    case("(a'*x)^(1/3)", (), {"a": vec(), "x": vec()}, lambda v: (v["a"] @ v["x"]) ** (1 / 3), values="positive"),
    case("2^a", (), {"a": sc()}, lambda v: 2.0 ** v["a"]),
    case("a^b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] ** v["b"], values="positive"),
    case("x^-1", (), {"x": sc()}, lambda v: 1 / v["x"], values="positive"),
    case("x^0.5", (), {"x": sc()}, lambda v: np.sqrt(v["x"]), values="positive"),
    case("norm2(x)^2/2", (), {"x": vec()}, lambda v: np.sum(v["x"] ** 2) / 2),
    # ------------------------------------------------------------ postfix ' (transpose)
    case("A'", ("n", "m"), {"A": mat()}, lambda v: v["A"].T),
    case("x'", ("n",), {"x": vec()}, lambda v: v["x"]),
    case("A''", ("m", "n"), {"A": mat()}, lambda v: v["A"]),
    case("A'*A", ("n", "n"), {"A": mat()}, lambda v: v["A"].T @ v["A"]),
    case("(x + y)'", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] + v["y"]),
    # ------------------------------------------------------------ element-wise .* ./ .^
    case("x .* y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] * v["y"]),
    case("x ./ y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] / v["y"], values="positive"),
    case("x .^ 2", ("n",), {"x": vec()}, lambda v: v["x"] ** 2),
    case("x .^ y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] ** v["y"], values="positive"),
    case("x .^ 0.5", ("n",), {"x": vec()}, lambda v: np.sqrt(v["x"]), values="positive"),
    case("2 .^ x", ("n",), {"x": vec()}, lambda v: 2.0 ** v["x"]),
    case("a .* x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] * v["x"], types={"a": "scalar"}),
    case("x .* a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] * v["a"], types={"a": "scalar"}),
    case(
        "x ./ a", ("n",), {"x": vec(), "a": sc()}, lambda v: v["x"] / v["a"], types={"a": "scalar"}, values="positive"
    ),
    case(
        "a ./ x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] / v["x"], types={"a": "scalar"}, values="positive"
    ),
    case(
        "a .^ x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] ** v["x"], types={"a": "scalar"}, values="positive"
    ),
    case("A .* B", ("m", "n"), {"A": mat(), "B": mat()}, lambda v: v["A"] * v["B"]),
    case("A ./ B", ("m", "n"), {"A": mat(), "B": mat()}, lambda v: v["A"] / v["B"], values="positive"),
    case(
        "A .^ a",
        ("m", "n"),
        {"A": mat(), "a": sc()},
        lambda v: v["A"] ** v["a"],
        types={"a": "scalar"},
        values="positive",
    ),
    case("2*x.^2", ("n",), {"x": vec()}, lambda v: 2 * v["x"] ** 2),
    case("x.^2 .* y", ("n",), {"x": vec(), "y": vec()}, lambda v: v["x"] ** 2 * v["y"]),
    # ------------------------------------------------------------ > and <
    case("x > y", ("n",), {"x": vec(), "y": vec()}, lambda v: (v["x"] > v["y"]).astype(float)),
    case("x < 0", ("n",), {"x": vec()}, lambda v: (v["x"] < 0).astype(float)),
    case("A > 0", ("m", "n"), {"A": mat()}, lambda v: (v["A"] > 0).astype(float)),
    case("a < b", (), {"a": sc(), "b": sc()}, lambda v: float(v["a"] < v["b"]), types=SCALARS_ABC),
    case("x > a", ("n",), {"x": vec(), "a": sc()}, lambda v: (v["x"] > v["a"]).astype(float), types={"a": "scalar"}),
    case("x + y > z", ("n",), {"x": vec(), "y": vec(), "z": vec()}, lambda v: (v["x"] + v["y"] > v["z"]).astype(float)),
    case(
        "(w'*x + b > 0)*x",
        ("n",),
        {"w": vec(), "x": vec(), "b": sc()},
        lambda v: float(v["w"] @ v["x"] + v["b"] > 0) * v["x"],
    ),
    # ------------------------------------------------------------ element-wise functions
    *[
        case(
            f"{f}(x)",
            ("n",),
            {"x": vec()},
            lambda v, fn=fn: fn(v["x"]),
            values="positive" if f in NEEDS_POSITIVE else "unit",
        )
        for f, fn in ELEMENTWISE.items()
    ],
    *[
        case(
            f"{f}(A)",
            ("m", "n"),
            {"A": mat()},
            lambda v, fn=fn: fn(v["A"]),
            values="positive" if f in NEEDS_POSITIVE else "unit",
        )
        for f, fn in ELEMENTWISE.items()
    ],
    *[
        case(
            f"{f}(a)",
            (),
            {"a": sc()},
            lambda v, fn=fn: fn(v["a"]),
            types={"a": "scalar"},
            values="positive" if f in NEEDS_POSITIVE else "unit",
        )
        for f, fn in ELEMENTWISE.items()
    ],
    case("sqrt(x'*x)", (), {"x": vec()}, lambda v: np.sqrt(v["x"] @ v["x"])),
    case("log(1 + exp(x))", ("n",), {"x": vec()}, lambda v: np.log(1 + np.exp(v["x"]))),
    case(
        "relu(W*x + b)",
        ("m",),
        {"W": mat(), "x": vec(), "b": vec("m")},
        lambda v: np.maximum(v["W"] @ v["x"] + v["b"], 0.0),
        types={"b": "vector"},
    ),
    # ------------------------------------------------------------ vector and matrix functions
    case("sum(x)", (), {"x": vec()}, lambda v: np.sum(v["x"])),
    case("sum(A)", (), {"A": mat()}, lambda v: np.sum(v["A"])),
    case("sum(A*x)", (), {"A": mat(), "x": vec()}, lambda v: np.sum(v["A"] @ v["x"])),
    case("norm1(x)", (), {"x": vec()}, lambda v: np.sum(np.abs(v["x"]))),
    case("norm1(A)", (), {"A": mat()}, lambda v: np.sum(np.abs(v["A"]))),
    case("norm2(x)", (), {"x": vec()}, lambda v: np.linalg.norm(v["x"])),
    case("norm2(A)", (), {"A": mat()}, lambda v: np.linalg.norm(v["A"], "fro")),
    case(
        "norm2(W*x - t)",
        (),
        {"W": mat(), "x": vec(), "t": vec("m")},
        lambda v: np.linalg.norm(v["W"] @ v["x"] - v["t"]),
    ),
    case("tr(A)", (), {"A": mat("n", "n")}, lambda v: np.trace(v["A"])),
    case("tr(A*B)", (), {"A": mat(), "B": mat("n", "m")}, lambda v: np.trace(v["A"] @ v["B"])),
    case("tr(w)", (), {"w": mat("n", "n")}, lambda v: np.trace(v["w"])),  # tr forces a matrix
    case("det(A)", (), {"A": mat("n", "n")}, lambda v: np.linalg.det(v["A"])),
    case(
        "logdet(A)",
        (),
        {"A": mat("n", "n")},
        lambda v: np.log(np.linalg.det(v["A"])),
        make=lambda rng: {"A": spd(rng, DIMS["n"])},
    ),
    case(
        "logdet(S)",
        (),
        {"S": sym()},
        lambda v: np.linalg.slogdet(v["S"])[1],
        types={"S": "symmetric matrix"},
        make=lambda rng: {"S": spd(rng, DIMS["n"])},
    ),
    case(
        "inv(A)",
        ("n", "n"),
        {"A": mat("n", "n")},
        lambda v: np.linalg.inv(v["A"]),
        make=lambda rng: {"A": spd(rng, DIMS["n"])},
    ),
    case(
        "inv(A)*x",
        ("n",),
        {"A": mat("n", "n"), "x": vec()},
        lambda v: np.linalg.solve(v["A"], v["x"]),
        make=lambda rng: {"A": spd(rng, DIMS["n"]), "x": rng.standard_normal(DIMS["n"])},
    ),
    case("diag(x)", ("n", "n"), {"x": vec()}, lambda v: np.diag(v["x"])),
    case("diag(A)", ("n",), {"A": mat("n", "n")}, lambda v: np.diag(v["A"]).copy()),
    case("diag(diag(x))", ("n",), {"x": vec()}, lambda v: v["x"]),
    case("diag(x)*A", ("n", "m"), {"x": vec(), "A": mat("n", "m")}, lambda v: np.diag(v["x"]) @ v["A"]),
    case("A*diag(x)", ("m", "n"), {"A": mat(), "x": vec()}, lambda v: v["A"] @ np.diag(v["x"])),
    case("softmax(x)", ("n",), {"x": vec()}, lambda v: softmax(v["x"])),
    case("logsumexp(x)", (), {"x": vec()}, lambda v: np.log(np.sum(np.exp(v["x"])))),
    case(
        "y'*log(softmax(W*x))",
        (),
        {"y": vec(), "W": mat("n", "m"), "x": vec("m")},
        lambda v: v["y"] @ np.log(softmax(v["W"] @ v["x"])),
    ),
    # ------------------------------------------------------------ eye, ones, zeros
    case("eye(n)", ("n", "n"), {}, lambda v: np.eye(v["n"])),
    case("eye(3)", (3, 3), {}, lambda v: np.eye(3)),
    case("ones(n)", ("n",), {}, lambda v: np.ones(v["n"])),
    case("ones(3)", (3,), {}, lambda v: np.ones(3)),
    case("ones(m,n)", ("m", "n"), {}, lambda v: np.ones((v["m"], v["n"]))),
    case("zeros(n)", ("n",), {}, lambda v: np.zeros(v["n"])),
    case("zeros(m,n)", ("m", "n"), {}, lambda v: np.zeros((v["m"], v["n"]))),
    case("zeros(2,3)", (2, 3), {}, lambda v: np.zeros((2, 3))),
    case("x + ones(3)", (3,), {"x": vec(3)}, lambda v: v["x"] + 1),
    case("eye(n)*x", ("n",), {"x": vec()}, lambda v: v["x"]),
    case("A*ones(n)", ("m",), {"A": mat()}, lambda v: v["A"].sum(axis=1)),
    case("x'*eye(k)*x", (), {"x": vec("k")}, lambda v: v["x"] @ v["x"]),
    case("A + zeros(2,3)", (2, 3), {"A": mat(2, 3)}, lambda v: v["A"]),
    case("vector(c)", ("n",), {"c": sc()}, lambda v: v["c"] * np.ones(v["n"])),
    case("matrix(c)", ("n", "m"), {"c": sc()}, lambda v: v["c"] * np.ones((v["n"], v["m"]))),
    case("x .* vector(c)", ("n",), {"x": vec(), "c": sc()}, lambda v: v["x"] * v["c"]),
    case("A + matrix(c)", ("m", "n"), {"A": mat(), "c": sc()}, lambda v: v["A"] + v["c"]),
    # ------------------------------------------------------------ precedence and associativity (MATLAB)
    case("2*x'", ("n",), {"x": vec()}, lambda v: 2 * v["x"]),
    case("-x^2", (), {"x": sc()}, lambda v: -(v["x"] ** 2)),
    case("-a*x", ("n",), {"a": sc(), "x": vec()}, lambda v: -v["a"] * v["x"]),
    case("a*-b", ("n",), {"a": sc(), "b": vec()}, lambda v: v["a"] * -v["b"], types={"b": "vector"}),
    case("2^-1", (), {}, lambda v: 0.5),
    case("2^3^2", (), {}, lambda v: 64.0),
    case("-2^2", (), {}, lambda v: -4.0),
    case("2^-1*a", (), {"a": sc()}, lambda v: 0.5 * v["a"], types={"a": "scalar"}),
    case("a + b*c", (), {"a": sc(), "b": sc(), "c": sc()}, lambda v: v["a"] + v["b"] * v["c"], types=SCALARS_ABC),
    case("a^2*b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] ** 2 * v["b"], types=SCALARS_ABC),
    case("a*b^2", (), {"a": sc(), "b": sc()}, lambda v: v["a"] * v["b"] ** 2, types=SCALARS_ABC),
    case("x'*-y", (), {"x": vec(), "y": vec()}, lambda v: -(v["x"] @ v["y"])),
    case("-A'", ("n", "m"), {"A": mat()}, lambda v: -v["A"].T),
    case(
        "x'*A*x + b'*x + c",
        (),
        {"x": vec(), "A": mat("n", "n"), "b": vec(), "c": sc()},
        lambda v: v["x"] @ v["A"] @ v["x"] + v["b"] @ v["x"] + v["c"],
        types={"b": "vector", "c": "scalar"},
    ),
    # ------------------------------------------------------------ printing: parentheses, signs, coefficients
    case("(-a)^2", (), {"a": sc()}, lambda v: (-v["a"]) ** 2, types=SCALARS_ABC),
    case("-(-a)", (), {"a": sc()}, lambda v: v["a"], types=SCALARS_ABC),
    case("-(a - b)", (), {"a": sc(), "b": sc()}, lambda v: v["b"] - v["a"], types=SCALARS_ABC),
    case("a - (b + c)", (), {"a": sc(), "b": sc(), "c": sc()}, lambda v: v["a"] - v["b"] - v["c"], types=SCALARS_ABC),
    case(
        "a^(b^c)",
        (),
        {"a": sc(), "b": sc(), "c": sc()},
        lambda v: v["a"] ** (v["b"] ** v["c"]),
        types=SCALARS_ABC,
        values="positive",
    ),
    case(
        "a/(b/c)",
        (),
        {"a": sc(), "b": sc(), "c": sc()},
        lambda v: v["a"] / (v["b"] / v["c"]),
        types=SCALARS_ABC,
        values="positive",
    ),
    case(
        "(a + b)^-1", (), {"a": sc(), "b": sc()}, lambda v: 1 / (v["a"] + v["b"]), types=SCALARS_ABC, values="positive"
    ),
    case(
        "(a > b) > c",
        (),
        {"a": sc(), "b": sc(), "c": sc()},
        lambda v: float(float(v["a"] > v["b"]) > v["c"]),
        types=SCALARS_ABC,
    ),
    case("a/2*b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] / 2 * v["b"], types=SCALARS_ABC),
    case("a/2/b", (), {"a": sc(), "b": sc()}, lambda v: v["a"] / 2 / v["b"], types=SCALARS_ABC, values="positive"),
    case("-(x'*y)", (), {"x": vec(), "y": vec()}, lambda v: -(v["x"] @ v["y"])),
    case("x'*(2*y)", (), {"x": vec(), "y": vec()}, lambda v: v["x"] @ (2 * v["y"])),
    case("(A/2)*x", ("m",), {"A": mat(), "x": vec()}, lambda v: (v["A"] / 2) @ v["x"]),
    case("A*(x/2)", ("m",), {"A": mat(), "x": vec()}, lambda v: v["A"] @ (v["x"] / 2)),
    case("x'*(A/2)*x", (), {"x": vec(), "A": mat("n", "n")}, lambda v: v["x"] @ (v["A"] / 2) @ v["x"]),
    case("tr(A/2)", (), {"A": mat("n", "n")}, lambda v: np.trace(v["A"]) / 2),
    case("sum(x/2)", (), {"x": vec()}, lambda v: np.sum(v["x"]) / 2),
    case("diag(x/2)", ("n", "n"), {"x": vec()}, lambda v: np.diag(v["x"] / 2)),
    case("(x*y')'", ("m", "n"), {"x": vec(), "y": vec("m")}, lambda v: np.outer(v["y"], v["x"])),
    case("(A*x)'*(A*x)", (), {"A": mat(), "x": vec()}, lambda v: (v["A"] @ v["x"]) @ (v["A"] @ v["x"])),
    case("eye(n)*A", ("n", "m"), {"A": mat("n", "m")}, lambda v: v["A"]),
    case("A*eye(n)", ("m", "n"), {"A": mat()}, lambda v: v["A"]),
    case("x + vector(c)", ("n",), {"x": vec(), "c": sc()}, lambda v: v["x"] + v["c"]),
    case("vector(a) + ones(n)", ("n",), {"a": sc()}, lambda v: v["a"] + np.ones(v["n"])),
    case("a + ones(n)", ("n",), {"a": sc()}, lambda v: v["a"] + np.ones(v["n"]), types={"a": "scalar"}),
    case("ones(n) + ones(n)", ("n",), {}, lambda v: 2 * np.ones(v["n"])),
    case("0.5 - ones(m,n)", ("m", "n"), {}, lambda v: 0.5 - np.ones((v["m"], v["n"]))),
    case(
        "1 + (x'*C)/2",
        (2,),
        {"x": vec(3), "C": mat(3, 2)},
        lambda v: 1 + v["x"] @ v["C"] / 2,
        types={"x": (3,), "C": (3, 2)},
    ),
    case("eye(n)'", ("n", "n"), {}, lambda v: np.eye(v["n"])),
    case("A + eye(n)'", ("n", "n"), {"A": mat("n", "n")}, lambda v: v["A"] + np.eye(v["n"])),
    case(
        "2 .^ (x'*A)",
        (3,),
        {"x": vec(3), "A": mat(3, 3)},
        lambda v: 2.0 ** (v["x"] @ v["A"]),
        types={"x": (3,), "A": (3, 3)},
    ),
    case(
        "a + x'*A",
        (3,),
        {"a": sc(), "x": vec(3), "A": mat(3, 3)},
        lambda v: v["a"] + v["x"] @ v["A"],
        types={"a": "scalar", "x": (3,), "A": (3, 3)},
    ),
    # ------------------------------------------------------------ type inference
    case("x^3 + 2*x + 1", (), {"x": sc()}, lambda v: v["x"] ** 3 + 2 * v["x"] + 1),
    case(
        "relu(w'*x + b)", (), {"w": vec(), "x": vec(), "b": sc()}, lambda v: np.maximum(v["w"] @ v["x"] + v["b"], 0.0)
    ),
    case("X", ("m", "n"), {"X": mat()}, lambda v: v["X"]),
    case("x", ("n",), {"x": vec()}, lambda v: v["x"]),
    case("sigmoid(w'*x)", (), {"w": vec(), "x": vec()}, lambda v: sigmoid(v["w"] @ v["x"])),
    case("x", (4,), {"x": vec(4)}, lambda v: v["x"], types={"x": (4,)}),
    case("A*x", (3,), {"A": mat(3, 4), "x": vec(4)}, lambda v: v["A"] @ v["x"], types={"A": (3, 4)}),
    case("x'*y", (), {"x": vec(4), "y": vec(4)}, lambda v: v["x"] @ v["y"], types={"x": (4,)}),
    case("a*x", ("n",), {"a": sc(), "x": vec()}, lambda v: v["a"] * v["x"], types={"a": ()}),
    case("x", ("k",), {"x": vec("k")}, lambda v: v["x"], types={"x": ("k",)}),
    case(
        "A*x + c",
        ("m",),
        {"A": mat(), "x": vec(), "c": sc()},
        lambda v: v["A"] @ v["x"] + v["c"],
        types={"x": "vector", "A": "matrix", "c": "scalar"},
    ),
    case(
        "x'*A*x",
        (),
        {"x": vec(), "A": sym()},
        lambda v: v["x"] @ v["A"] @ v["x"],
        types={"A": "symmetric matrix"},
        make=lambda rng: {"x": rng.standard_normal(3), "A": spd(rng, 3)},
    ),
    case("a", (), {"a": sc()}, lambda v: v["a"], types={"a": "Scalar"}),
    case("B*x", ("m",), {"B": mat(), "x": vec()}, lambda v: v["B"] @ v["x"], types={"B": "matrix", "x": "vector"}),
]


def concrete(shape: tuple) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) else DIMS[d] for d in shape)


def make_values(c: Case, rng: np.random.Generator) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (kind, shape) in c.variables.items():
        size = concrete(shape)
        if c.values == "positive":
            value = rng.uniform(0.5, 2.0, size)
        elif c.values == "unit":
            value = rng.uniform(-0.9, 0.9, size)
        else:
            value = rng.standard_normal(size)
        if kind == "symmetric":
            value = (value + value.T) / 2
        values[name] = float(value) if size == () else value
    if c.make is not None:
        values.update(c.make(rng))
    return values


@pytest.mark.parametrize("c", CASES)
def test_prints_back_to_the_same_graph(c: Case) -> None:
    e = mc.parse(c.text, types=c.types)
    printed = str(e)
    assert isinstance(printed, str) and printed
    again = mc.parse(printed, types=c.types)
    assert again.node is e.node, f"{c.text!r} printed as {printed!r}, which parses to a different graph"
    assert str(again) == printed


@pytest.mark.parametrize("c", CASES)
def test_shape_and_variables(c: Case) -> None:
    e = mc.parse(c.text, types=c.types)
    assert e.shape == c.shape
    got = {name: (v.kind, tuple(v.shape)) for name, v in e.variables.items()}
    assert got == c.variables


@pytest.mark.parametrize("c", CASES)
def test_latex_is_nonempty(c: Case) -> None:
    tex = mc.parse(c.text, types=c.types).latex()
    assert isinstance(tex, str) and tex.strip()
    assert tex.count("{") == tex.count("}")
    # matrix notation in LaTeX: products by juxtaposition, transposes as ^\top, no input syntax
    assert "*" not in tex and "'" not in tex and ".^" not in tex


@pytest.mark.parametrize("c", CASES)
def test_evaluates_like_numpy(c: Case) -> None:
    rng = np.random.default_rng(20240607)
    values = make_values(c, rng)
    e = mc.parse(c.text, types=c.types)
    got = e.evaluate(values, dims=DIMS)
    want = np.asarray(c.ref({**values, **DIMS}), dtype=np.float64)
    assert np.shape(got) == concrete(c.shape)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("text", "types", "tex"),
    [
        ("x'*A*x", {"A": "symmetric matrix"}, r"x^\top A x"),
        ("x'*A*x", {}, r"x^\top A x"),
        ("x'*y", {}, r"x^\top y"),
        ("x*y'", {}, r"x y^\top"),
        ("A'", {}, r"A^\top"),
        ("A*B", {}, r"A B"),
        ("a*x", {}, r"a x"),
        ("x .* y", {}, r"x \odot y"),
        ("inv(A)", {}, r"A^{-1}"),
        ("x^2", {}, r"x^{2}"),
        ("sqrt(x)", {}, r"\sqrt{x}"),
        ("x - y", {}, r"x - y"),
        ("-x", {}, r"-x"),
    ],
)
def test_latex_exact(text: str, types: dict, tex: str) -> None:
    assert mc.parse(text, types=types).latex() == tex


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("alpha*x", r"\alpha"),
        ("W1", "W_{1}"),
        ("b_2", "b_{2}"),
        ("tr(A)", "tr"),
        ("det(A)", r"\det"),
        ("exp(x)", r"\exp"),
        ("norm2(x)", r"\|"),
    ],
)
def test_latex_contains(text: str, name: str) -> None:
    assert name in mc.parse(text).latex()


def test_latex_is_not_text_syntax() -> None:
    # LaTeX should not be the input syntax verbatim for anything with an operator
    for text in ["x'*A*x", "A*B", "x .* y", "x.^2", "inv(A)"]:
        assert mc.parse(text).latex() != text


# ---------------------------------------------------------------- the issue's API example


def test_issue_example() -> None:
    e = mc.parse("x'*A*x", types={"A": "symmetric matrix"})
    assert repr(e.variables["x"]) == "x: vector (n)"
    assert repr(e.variables["A"]) == "A: symmetric matrix (n x n)"
    assert e.shape == ()
    assert str(e) == "x'*A*x"
    assert mc.parse(str(e)).node is mc.parse("x'*A*x").node
    assert e.latex() == r"x^\top A x"
    assert e.evaluate({"x": np.ones(3), "A": np.eye(3)}) == pytest.approx(3.0)
    x, A = mc.vector("x"), mc.matrix("A")
    f = x.T @ A @ x
    assert f.node is mc.parse("x'*A*x").node


def test_operator_precedence_values() -> None:
    assert mc.parse("2^3^2").evaluate({}) == pytest.approx(64.0)
    assert mc.parse("2^-1").evaluate({}) == pytest.approx(0.5)
    assert mc.parse("-2^2").evaluate({}) == pytest.approx(-4.0)
    assert mc.parse("-x^2").evaluate({"x": 3.0}) == pytest.approx(-9.0)
    assert mc.parse("2^3^2").node is mc.parse("(2^3)^2").node
    assert mc.parse("-x^2").node is mc.parse("-(x^2)").node
    assert mc.parse("2*x'").node is mc.parse("2*(x')").node
    assert mc.parse("a*-b").node is mc.parse("a*(-b)").node


# ---------------------------------------------------------------- the builder API

x_, y_, A_, B_, a_ = mc.vector("x"), mc.vector("y"), mc.matrix("A"), mc.matrix("B"), mc.scalar("a")

BUILT = [
    pytest.param(lambda: x_.T @ A_ @ x_, "x'*A*x", {}, id="x.T @ A @ x"),
    pytest.param(lambda: x_.T @ y_, "x'*y", {}, id="x.T @ y"),
    pytest.param(lambda: x_ @ y_.T, "x*y'", {}, id="x @ y.T"),
    pytest.param(lambda: A_ @ x_, "A*x", {}, id="A @ x"),
    pytest.param(lambda: A_ @ B_, "A*B", {}, id="A @ B"),
    pytest.param(lambda: A_.T, "A'", {}, id="A.T"),
    pytest.param(lambda: x_ + y_, "x + y", {}, id="x + y"),
    pytest.param(lambda: x_ - y_, "x - y", {}, id="x - y"),
    pytest.param(lambda: -x_, "-x", {}, id="-x"),
    pytest.param(lambda: +x_, "x", {}, id="+x"),
    pytest.param(lambda: x_ + 1, "x + 1", {}, id="x + 1"),
    pytest.param(lambda: 1 + x_, "1 + x", {}, id="1 + x"),
    pytest.param(lambda: 1 - x_, "1 - x", {}, id="1 - x"),
    pytest.param(lambda: 2 * x_, "2*x", {}, id="2 * x"),
    pytest.param(lambda: x_ * 2, "x*2", {}, id="x * 2"),
    pytest.param(lambda: 0.5 * x_, "0.5*x", {}, id="0.5 * x"),
    pytest.param(lambda: x_ / 2, "x/2", {}, id="x / 2"),
    pytest.param(lambda: a_ * x_, "a*x", {"a": "scalar"}, id="a * x"),
    pytest.param(lambda: x_ * y_, "x .* y", {}, id="x * y"),
    pytest.param(lambda: x_ / y_, "x ./ y", {}, id="x / y"),
    pytest.param(lambda: x_**2, "x.^2", {}, id="x ** 2"),
    pytest.param(lambda: a_**2, "a^2", {"a": "scalar"}, id="a ** 2"),
    pytest.param(lambda: 2**a_, "2^a", {"a": "scalar"}, id="2 ** a"),
    pytest.param(lambda: a_ + x_, "a + x", {"a": "scalar"}, id="a + x"),
    pytest.param(lambda: x_ > 0, "x > 0", {}, id="x > 0"),
    pytest.param(lambda: x_ < y_, "x < y", {}, id="x < y"),
    pytest.param(lambda: (A_ @ x_ - y_).T @ (A_ @ x_ - y_) / 2, "(A*x - y)'*(A*x - y)/2", {}, id="least squares"),
]


@pytest.mark.parametrize(("build", "text", "types"), BUILT)
def test_builder_makes_the_parsers_graph(build: Callable[[], mc.Expression], text: str, types: dict) -> None:
    built = build()
    parsed = mc.parse(text, types=types)
    assert built.node is parsed.node
    assert built.shape == parsed.shape
    assert mc.parse(str(built), types=types).node is built.node


def test_builder_values() -> None:
    rng = np.random.default_rng(7)
    x, A, a = rng.standard_normal(3), rng.standard_normal((3, 3)), 0.7
    values = {"x": x, "A": A, "a": a}
    np.testing.assert_allclose((x_.T @ A_ @ x_).evaluate(values), x @ A @ x, rtol=1e-12)
    np.testing.assert_allclose((a_ * x_ + 1).evaluate(values), a * x + 1, rtol=1e-12)
    np.testing.assert_allclose((x_**2 / 2).evaluate(values), x**2 / 2, rtol=1e-12)
    np.testing.assert_allclose((A_.T @ x_).evaluate(values), A.T @ x, rtol=1e-12)
    np.testing.assert_allclose((2**a_).evaluate(values), 2**a, rtol=1e-12)


def test_builder_kinds_and_shapes() -> None:
    assert mc.scalar("a").shape == ()
    assert mc.vector("x").shape == ("n",)
    assert mc.vector("x", 4).shape == (4,)
    assert mc.matrix("A", 3, 4).shape == (3, 4)
    S = mc.matrix("S", symmetric=True)
    assert S.variables["S"].kind == "symmetric"
    x = mc.vector("x")
    q = x.T @ S @ x
    assert q.shape == ()
    assert q.node is mc.parse("x'*S*x", types={"S": "symmetric matrix"}).node
    assert q.variables["S"].kind == "symmetric"
    assert tuple(q.variables["S"].shape) == ("n", "n")
    G = rng_spd = spd(np.random.default_rng(3), 3)
    assert q.evaluate({"x": np.ones(3), "S": G}) == pytest.approx(np.sum(rng_spd))


def test_builder_fixed_sizes_flow_through() -> None:
    x, A = mc.vector("x", 4), mc.matrix("A", 3, 4)
    e = A @ x
    assert e.shape == (3,)
    assert e.node is mc.parse("A*x", types={"A": (3, 4), "x": (4,)}).node


def test_names_are_not_constants() -> None:
    # e and i are ordinary variables: evaluating needs their values
    e = mc.parse("e + i", types={"e": "scalar", "i": "scalar"})
    assert set(e.variables) == {"e", "i"}
    assert e.evaluate({"e": 1.0, "i": 2.0}) == pytest.approx(3.0)


def test_symbolic_dimension_names_in_text() -> None:
    # x'*A*x makes A square with x's length, whatever name that length has
    e = mc.parse("x'*A*x", types={"x": ("k",)})
    assert tuple(e.variables["A"].shape) == ("k", "k")
    e = mc.parse("x'*A*x", types={"x": (5,)})
    assert tuple(e.variables["A"].shape) == (5, 5)
    assert re.fullmatch(r"[a-z]\w*", str(mc.parse("x'*A*x").variables["A"].shape[0]))
