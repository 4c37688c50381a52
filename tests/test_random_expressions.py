"""Random well-typed expressions: they parse, print back to the same graph, and evaluate like NumPy.

A recursive hypothesis strategy builds expressions of a requested kind (scalar, column or row
vector of length n or m, or a matrix with n or m rows and columns) from a fixed set of declared
variables, with every operator and function of the language. Each expression comes as a triple:
its text, an independent NumPy computation of its value, and its kind.

Values stay moderate: exp, log, sqrt, tan, arcsin, arccos, inv and logdet only see safe arguments
(``log(1 + t.^2)``, ``arcsin(tanh(t)/2)``, ``inv(eye(n) + K'*K)``, ...), and an example whose
intermediate values grow large is rejected. ``sign``, ``>`` and ``<`` are only applied to
variables and constants, so rounding can never flip them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

import matrixcalculus as mc

SIZES = {"n": 3, "m": 2}
BIG = 1e4

# The variables, declared two ways: with symbolic dimensions (and type words for some) or with sizes.
SYMBOLIC_TYPES = {
    "a": "scalar",
    "b": (),
    "x": ("n",),
    "y": ("n",),
    "z": "vector",
    "u": ("m",),
    "A": ("n", "n"),
    "B": "symmetric matrix",
    "C": ("n", "m"),
}
CONCRETE_TYPES = {
    "a": (),
    "b": "scalar",
    "x": (3,),
    "y": (3,),
    "z": (3,),
    "u": (2,),
    "A": (3, 3),
    "B": "symmetric matrix",
    "C": (3, 2),
}


class Ex(NamedTuple):
    text: str
    fn: Callable[[dict[str, Any]], np.ndarray]
    kind: tuple


class TooLargeError(Exception):
    pass


def guard(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], np.ndarray]:
    def run(v: dict[str, Any]) -> np.ndarray:
        out = np.asarray(fn(v), dtype=np.float64)
        if not np.all(np.isfinite(out)) or np.max(np.abs(out), initial=0.0) > BIG:
            raise TooLargeError
        return out

    return run


def par(text: str) -> str:
    """Parenthesise unless the text is a bare name."""
    return text if re.fullmatch(r"[A-Za-z_]\w*", text) else f"({text})"


# ---------------------------------------------------------------- kinds

S = ("s",)
COLS = [("c", "n"), ("c", "m")]
ROWS = [("r", "n"), ("r", "m")]
MATS = [("m", r, c) for r in "nm" for c in "nm"]
KINDS = [S, *COLS, *ROWS, *MATS]


def transposed(kind: tuple) -> tuple:
    if kind[0] == "c":
        return ("r", kind[1])
    if kind[0] == "r":
        return ("c", kind[1])
    if kind[0] == "m":
        return ("m", kind[2], kind[1])
    return kind


def np_transpose(value: np.ndarray) -> np.ndarray:
    return value.T if value.ndim == 2 else value


def np_shape(kind: tuple) -> tuple[int, ...]:
    return tuple(SIZES[d] for d in kind[1:])


def np_product(ka: tuple, kb: tuple) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The NumPy meaning of ``*`` between values of the two kinds."""
    if ka == S or kb == S:
        return np.multiply
    if ka[0] == "c" and kb[0] == "r":
        return np.outer
    return np.matmul  # r*c, m*c, r*m, m*m


def product_kind(ka: tuple, kb: tuple) -> tuple | None:
    """The kind of ``a*b`` for two non-scalars, or None where the shapes do not fit."""
    if ka[0] == "c" and kb[0] == "r":
        return ("m", ka[1], kb[1])
    inner = {"r": 1, "m": 2}.get(ka[0])
    if inner is None or kb[0] not in "cm" or ka[inner] != kb[1]:
        return None
    if kb[0] == "c":
        return S if ka[0] == "r" else ("c", ka[1])
    return ("r", kb[2]) if ka[0] == "r" else ("m", ka[1], kb[2])


# ---------------------------------------------------------------- leaves


def _var(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda v: v[name]


def _leaf(text: str, fn: Callable[[dict[str, Any]], Any], kind: tuple) -> Ex:
    return Ex(text, guard(fn), kind)


def leaf_list(kind: tuple) -> list[Ex]:
    n, m = SIZES["n"], SIZES["m"]
    table: dict[tuple, list[Ex]] = {
        S: [
            _leaf("a", _var("a"), S),
            _leaf("b", _var("b"), S),
            _leaf("2", lambda v: 2.0, S),
            _leaf("0.5", lambda v: 0.5, S),
            _leaf("3", lambda v: 3.0, S),
            _leaf("1e-3", lambda v: 1e-3, S),
            _leaf("1/3", lambda v: 1 / 3, S),
        ],
        ("c", "n"): [_leaf(t, _var(t), ("c", "n")) for t in "xyz"]
        + [_leaf("ones(<n>)", lambda v: np.ones(n), ("c", "n"))],
        ("c", "m"): [_leaf("u", _var("u"), ("c", "m")), _leaf("ones(<m>)", lambda v: np.ones(m), ("c", "m"))],
        ("r", "n"): [_leaf(f"{t}'", _var(t), ("r", "n")) for t in "xyz"],
        ("r", "m"): [_leaf("u'", _var("u"), ("r", "m"))],
        ("m", "n", "n"): [
            _leaf("A", _var("A"), ("m", "n", "n")),
            _leaf("B", _var("B"), ("m", "n", "n")),
            _leaf("eye(<n>)", lambda v: np.eye(n), ("m", "n", "n")),
        ],
        ("m", "n", "m"): [
            _leaf("C", _var("C"), ("m", "n", "m")),
            _leaf("ones(<n>,<m>)", lambda v: np.ones((n, m)), ("m", "n", "m")),
            _leaf("zeros(<n>,<m>)", lambda v: np.zeros((n, m)), ("m", "n", "m")),
        ],
        ("m", "m", "n"): [_leaf("C'", lambda v: v["C"].T, ("m", "m", "n"))],
        ("m", "m", "m"): [_leaf("eye(<m>)", lambda v: np.eye(m), ("m", "m", "m"))],
    }
    return table[kind]


def leaves(kind: tuple) -> st.SearchStrategy[Ex]:
    return st.sampled_from(leaf_list(kind))


# ---------------------------------------------------------------- combinators


def un(
    child: st.SearchStrategy[Ex], text: Callable[[str], str], fn: Callable[[Any], Any], kind: tuple
) -> st.SearchStrategy[Ex]:
    def build(e: Ex) -> Ex:
        return Ex(text(e.text), guard(lambda v: fn(e.fn(v))), kind)

    return child.map(build)


def bin_(
    left: st.SearchStrategy[Ex],
    right: st.SearchStrategy[Ex],
    text: Callable[[str, str], str],
    fn: Callable[[Any, Any], Any],
    kind: tuple,
) -> st.SearchStrategy[Ex]:
    def build(pair: tuple[Ex, Ex]) -> Ex:
        a, b = pair
        return Ex(text(a.text, b.text), guard(lambda v: fn(a.fn(v), b.fn(v))), kind)

    return st.tuples(left, right).map(build)


def tanh_half(t: Any) -> Any:
    return np.tanh(t) / 2


ELEMENTWISE: list[tuple[Callable[[str], str], Callable[[Any], Any]]] = [
    (lambda t: f"sin({t})", np.sin),
    (lambda t: f"cos({t})", np.cos),
    (lambda t: f"tanh({t})", np.tanh),
    (lambda t: f"arctan({t})", np.arctan),
    (lambda t: f"abs({t})", np.abs),
    (lambda t: f"relu({t})", lambda x: np.maximum(x, 0.0)),
    (lambda t: f"sigmoid({t})", lambda x: 1.0 / (1.0 + np.exp(-x))),
    (lambda t: f"softplus({t})", lambda x: np.log1p(np.exp(x))),
    (lambda t: f"exp(tanh({t}))", lambda x: np.exp(np.tanh(x))),
    (lambda t: f"exp(-{par(t)}.^2)", lambda x: np.exp(-(x**2))),
    (lambda t: f"log(1 + {par(t)}.^2)", lambda x: np.log(1 + x**2)),
    (lambda t: f"sqrt(1 + {par(t)}.^2)", lambda x: np.sqrt(1 + x**2)),
    (lambda t: f"tan(tanh({t}))", lambda x: np.tan(np.tanh(x))),
    (lambda t: f"arcsin(tanh({t})/2)", lambda x: np.arcsin(tanh_half(x))),
    (lambda t: f"arccos(tanh({t})/2)", lambda x: np.arccos(tanh_half(x))),
    (lambda t: f"-{par(t)}", np.negative),
    (lambda t: f"+{par(t)}", lambda x: x),
    (lambda t: f"{par(t)}.^2", np.square),
    (lambda t: f"(1 + {par(t)}.^2).^0.5", lambda x: (1 + x**2) ** 0.5),
    (lambda t: f"(1 + {par(t)}.^2).^(1/3)", lambda x: (1 + x**2) ** (1 / 3)),
    (lambda t: f"2 .^ tanh({t})", lambda x: 2.0 ** np.tanh(x)),
    (lambda t: f"{par(t)}/2", lambda x: x / 2),
]


def as_float(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64)


@functools.cache
def exprs(kind: tuple, depth: int) -> st.SearchStrategy[Ex]:
    """Expressions of ``kind`` nested at most ``depth`` deep."""
    if depth == 0:
        return leaves(kind)
    sub = functools.partial(exprs, depth=depth - 1)
    K = sub(kind)
    s = sub(S)
    opts: list[st.SearchStrategy[Ex]] = [leaves(kind)]

    # element-wise, same kind
    opts += [un(K, text, fn, kind) for text, fn in ELEMENTWISE]
    opts += [
        bin_(K, K, lambda p, q: f"{p} + {q}", np.add, kind),
        bin_(K, K, lambda p, q: f"{p} - {par(q)}", np.subtract, kind),
        bin_(K, K, lambda p, q: f"{par(p)} .* {par(q)}", np.multiply, kind),
        bin_(K, K, lambda p, q: f"{par(p)} ./ (1 + {par(q)}.^2)", lambda p, q: p / (1 + q**2), kind),
        # sign, > and < on variables and constants only
        un(leaves(kind), lambda t: f"sign({t})", np.sign, kind),
        bin_(leaves(kind), leaves(kind), lambda p, q: f"({par(p)} > {par(q)})", lambda p, q: as_float(p > q), kind),
        bin_(leaves(kind), leaves(kind), lambda p, q: f"({par(p)} < {par(q)})", lambda p, q: as_float(p < q), kind),
        bin_(leaves(kind), leaves(S), lambda p, q: f"({par(p)} > {par(q)})", lambda p, q: as_float(p > q), kind),
        # transpose
        un(sub(transposed(kind)), lambda t: f"{par(t)}'", np_transpose, kind),
    ]

    # a scalar with anything: broadcast, scaling, division by a scalar
    opts += [
        bin_(K, s, lambda p, q: f"{p} + {par(q)}", np.add, kind),
        bin_(s, K, lambda p, q: f"{par(p)} + {q}", np.add, kind),
        bin_(K, s, lambda p, q: f"{p} - {par(q)}", np.subtract, kind),
        bin_(s, K, lambda p, q: f"{par(p)} - {par(q)}", np.subtract, kind),
        bin_(s, K, lambda p, q: f"{par(p)}*{par(q)}", np.multiply, kind),
        bin_(K, s, lambda p, q: f"{par(p)}*{par(q)}", np.multiply, kind),
        bin_(s, K, lambda p, q: f"{par(p)} .* {par(q)}", np.multiply, kind),
        bin_(K, s, lambda p, q: f"{par(p)} .* {par(q)}", np.multiply, kind),
        bin_(K, s, lambda p, q: f"{par(p)}/(1 + {par(q)}^2)", lambda p, q: p / (1 + q**2), kind),
        bin_(s, K, lambda p, q: f"{par(p)} ./ (1 + {par(q)}.^2)", lambda p, q: p / (1 + q**2), kind),
        bin_(K, s, lambda p, q: f"(1 + {par(p)}.^2) .^ tanh({q})", lambda p, q: (1 + p**2) ** np.tanh(q), kind),
        bin_(s, K, lambda p, q: f"(1 + {par(p)}^2) .^ tanh({q})", lambda p, q: (1 + p**2) ** np.tanh(q), kind),
    ]

    if kind == S:
        opts += [
            un(s, lambda t: f"{par(t)}^2", np.square, S),
            un(s, lambda t: f"{par(t)}^3", lambda x: x**3, S),
            un(s, lambda t: f"(1 + {par(t)}^2)^0.5", lambda x: (1 + x**2) ** 0.5, S),
            un(s, lambda t: f"(1 + {par(t)}^2)^(1/3)", lambda x: (1 + x**2) ** (1 / 3), S),
            un(s, lambda t: f"(1 + {par(t)}^2)^-1", lambda x: 1 / (1 + x**2), S),
            un(s, lambda t: f"2^tanh({t})", lambda x: 2.0 ** np.tanh(x), S),
            bin_(s, s, lambda p, q: f"{par(p)}*{par(q)}", np.multiply, S),
            bin_(s, s, lambda p, q: f"{par(p)}/(1 + {par(q)}^2)", lambda p, q: p / (1 + q**2), S),
            bin_(s, s, lambda p, q: f"(1 + {par(p)}^2)^tanh({q})", lambda p, q: (1 + p**2) ** np.tanh(q), S),
        ]
        for d in "nm":
            opts.append(bin_(sub(("r", d)), sub(("c", d)), lambda p, q: f"{par(p)}*{par(q)}", np.matmul, S))
            for vk in (("c", d), ("r", d)):
                opts.append(un(sub(vk), lambda t: f"logsumexp({t})", lambda x: np.log(np.sum(np.exp(x))), S))
            sq = sub(("m", d, d))
            opts += [
                un(sq, lambda t: f"tr({t})", np.trace, S),
                un(sq, lambda t: f"det({t})", np.linalg.det, S),
            ]
            for e in "nm":
                opts.append(
                    un(
                        sub(("m", e, d)),
                        lambda t, d=d: f"logdet(eye(<{d}>) + {par(t)}'*{par(t)})",
                        lambda x: np.linalg.slogdet(np.eye(x.shape[1]) + x.T @ x)[1],
                        S,
                    )
                )
        for k in KINDS[1:]:
            opts += [
                un(sub(k), lambda t: f"sum({t})", np.sum, S),
                un(sub(k), lambda t: f"norm1({t})", lambda x: np.sum(np.abs(x)), S),
                un(sub(k), lambda t: f"norm2({t})", lambda x: np.sqrt(np.sum(x**2)), S),
            ]
    else:
        # products that give this kind
        for ka in KINDS[1:]:
            for kb in KINDS[1:]:
                if product_kind(ka, kb) == kind:
                    opts.append(bin_(sub(ka), sub(kb), lambda p, q: f"{par(p)}*{par(q)}", np_product(ka, kb), kind))
        if kind[0] in "cr":
            opts.append(un(K, lambda t: f"softmax({t})", lambda x: np.exp(x) / np.sum(np.exp(x)), kind))
        if kind[0] == "c":
            d = kind[1]
            opts += [
                un(sub(("m", d, d)), lambda t: f"diag({t})", lambda x: np.diag(x).copy(), kind),
                bin_(K, s, lambda p, q: f"{p} + vector({q})", np.add, kind),
            ]
        if kind[0] == "m":
            opts.append(bin_(K, s, lambda p, q: f"{par(p)} .* matrix({q})", np.multiply, kind))
            if kind[1] == kind[2]:
                d = kind[1]
                for vk in (("c", d), ("r", d)):
                    opts.append(un(sub(vk), lambda t: f"diag({t})", np.diag, kind))
                for e in "nm":
                    opts.append(
                        un(
                            sub(("m", e, d)),
                            lambda t, d=d: f"inv(eye(<{d}>) + {par(t)}'*{par(t)})",
                            lambda x: np.linalg.inv(np.eye(x.shape[1]) + x.T @ x),
                            kind,
                        )
                    )
    return opaque(st.one_of(opts))


def opaque(strategy: st.SearchStrategy[Ex]) -> st.SearchStrategy[Ex]:
    """``strategy`` behind a composite, so hypothesis does not flatten the nested one_of/map
    tree into its branches (which grows exponentially with the depth)."""

    @st.composite
    def draw_one(draw: st.DrawFn) -> Ex:
        return draw(strategy)

    return draw_one()


def rank(kind: tuple) -> int:
    return len(kind) - 1


MAX_DEPTH = 3
expressions = st.one_of([exprs(k, MAX_DEPTH) for k in KINDS])


def values_for(seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n, m = SIZES["n"], SIZES["m"]
    B = rng.uniform(-1.5, 1.5, (n, n))
    return {
        "a": float(rng.uniform(-1.5, 1.5)),
        "b": float(rng.uniform(-1.5, 1.5)),
        "x": rng.uniform(-1.5, 1.5, n),
        "y": rng.uniform(-1.5, 1.5, n),
        "z": rng.uniform(-1.5, 1.5, n),
        "u": rng.uniform(-1.5, 1.5, m),
        "A": rng.uniform(-1.5, 1.5, (n, n)),
        "B": (B + B.T) / 2,
        "C": rng.uniform(-1.5, 1.5, (n, m)),
    }


def realise(template: str, symbolic: bool) -> str:
    """Spell the dimensions of eye/ones/zeros as names or as sizes."""
    for d, size in SIZES.items():
        template = template.replace(f"<{d}>", d if symbolic else str(size))
    return template


def setup(ex: Ex, symbolic: bool) -> tuple[str, dict[str, Any], dict[str, int] | None]:
    text = realise(ex.text, symbolic)
    note(f"text: {text}")
    types = SYMBOLIC_TYPES if symbolic else CONCRETE_TYPES
    # sizes for the dimensions that eye/ones/zeros name (other dimensions get their sizes from the values)
    dims = {d: size for d, size in SIZES.items() if f"<{d}>" in ex.text}
    return text, types, (dims if symbolic else None)


@given(ex=expressions, symbolic=st.booleans())
def test_random_expression_prints_back_to_the_same_graph(ex: Ex, symbolic: bool) -> None:
    text, types, _ = setup(ex, symbolic)
    e = mc.parse(text, types=types)
    assert len(e.shape) == rank(ex.kind)
    printed = str(e)
    note(f"printed: {printed}")
    again = mc.parse(printed, types=types)
    assert again.node is e.node


@given(ex=expressions, symbolic=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_random_expression_evaluates_like_numpy(ex: Ex, symbolic: bool, seed: int) -> None:
    text, types, dims = setup(ex, symbolic)
    values = values_for(seed)
    try:
        want = ex.fn(values)
    except TooLargeError:
        assume(False)
    e = mc.parse(text, types=types)
    got = e.evaluate(values, dims=dims)
    assert np.shape(got) == np_shape(ex.kind)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=1e-9, atol=1e-9)
