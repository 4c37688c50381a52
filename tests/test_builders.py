"""The Python builders build graph nodes directly, with the parser's typing rules.

Each expression built from Python operators must be the very node the parser makes from the
same formula (nodes are interned, so ``is`` compares structure), its variables must carry the
parser's shapes, and building must neither print nor parse: a chain of products costs time
linear in its length.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.api import expression as api_expression
from matrixcalculus.ir import graph as g

x, y, z = mc.vector("x"), mc.vector("y"), mc.vector("z")
A, B, C = mc.matrix("A"), mc.matrix("B"), mc.matrix("C")
a, b, c = mc.scalar("a"), mc.scalar("b"), mc.scalar("c")
S = mc.matrix("S", symmetric=True)
SCALARS = {"a": "scalar", "b": "scalar", "c": "scalar"}

# (built from Python, the same formula as text, the types the text needs)
TABLE: list[tuple[str, Callable[[], mc.Expression], str, dict]] = [
    ("quadratic form", lambda: x.T @ A @ x, "x'*A*x", {}),
    ("product chain", lambda: A @ B @ C, "A*B*C", {}),
    ("repeated factor squares it", lambda: A @ A, "A*A", {}),
    ("repeated in a chain", lambda: x.T @ A @ A @ A @ x, "x'*A*A*A*x", {}),
    ("shared variable far apart", lambda: A @ B @ A, "A*B*A", {}),
    ("transpose of a product", lambda: (A @ B).T @ x, "(A*B)'*x", {}),
    ("row vector times matrix", lambda: x.T @ A, "x'*A", {}),
    ("outer product", lambda: x @ y.T, "x*y'", {}),
    ("inner products summed", lambda: x.T @ y + y.T @ z, "x'*y + y'*z", {}),
    ("symmetric", lambda: x.T @ S @ x + a, "x'*S*x + a", {"S": "symmetric matrix", **SCALARS}),
    ("least squares", lambda: (A @ x - y).T @ (A @ x - y) / 2, "(A*x - y)'*(A*x - y)/2", {}),
    ("scalar sum broadcast per term", lambda: a + b + x, "a + b + x", SCALARS),
    ("scalar difference broadcast", lambda: a - b + x, "a - b + x", SCALARS),
    ("scalar sum minus a vector", lambda: a + b - x, "a + b - x", SCALARS),
    ("nested scalar sum broadcast whole", lambda: a + (b + c) + x, "a + (b + c) + x", SCALARS),
    ("vector sum plus scalars", lambda: x + a + b, "x + a + b", SCALARS),
    ("numbers", lambda: 2 * x + 0.5 - x / 4, "2*x + 0.5 - x/4", {}),
    ("reflected operators", lambda: 1 - 2 / x, "1 - 2./x", {}),
    ("element-wise", lambda: x * y / z, "x.*y./z", {}),
    ("powers", lambda: x**2 + 2**a + x**y, "x.^2 + 2^a + x.^y", SCALARS),
    ("negation", lambda: -(A @ x) + -a, "-(A*x) + -a", SCALARS),
    ("comparisons", lambda: (x > 0) * (y < x), "(x > 0).*(y < x)", {}),
    ("scalar factor", lambda: a * x + x * a, "a*x + x*a", SCALARS),
    ("matrix plus scalar", lambda: A @ B + 1, "A*B + 1", {}),
]


@pytest.mark.parametrize(("build", "text", "types"), [pytest.param(*row[1:], id=row[0]) for row in TABLE])
def test_built_is_parsed(build: Callable[[], mc.Expression], text: str, types: dict) -> None:
    built, parsed = build(), mc.parse(text, types=types)
    assert built.node is parsed.node
    assert list(built.variables) == list(parsed.variables)
    for name, v in parsed.variables.items():
        assert built.variables[name].node is v.node, name


def test_variable_names_that_are_dimension_names() -> None:
    # The parser never names a dimension after a variable: n and m are taken here.
    n, m = mc.vector("n"), mc.vector("m")
    assert (n @ m.T).node is mc.parse("n*m'").node
    assert (A @ m).node is mc.parse("A*m").node
    assert (m.T @ A @ n).node is mc.parse("m'*A*n").node


def test_fixed_sizes_and_named_dimensions() -> None:
    x4, A34 = mc.vector("x", 4), mc.matrix("A", 3, 4)
    assert (A34 @ x4).node is mc.parse("A*x", types={"A": (3, 4), "x": (4,)}).node
    # A size fixed on one side flows to the unknowns of the other.
    assert (A34 @ x).node is mc.parse("A*x", types={"A": (3, 4)}).node
    xk = mc.vector("x", "k")
    e = xk.T @ A @ xk
    assert e.node is mc.parse("x'*A*x", types={"x": ("k",)}).node
    assert e.variables["A"].shape == ("k", "k")
    # A named dimension is never renamed, and unknowns avoid its name.
    e = mc.vector("y", "n") + A @ x
    assert e.node is mc.parse("y + A*x", types={"y": ("n",)}).node


def test_building_on_parsed_expressions() -> None:
    assert (mc.parse("A*x") + mc.parse("B*y")).node is mc.parse("A*x + B*y").node
    assert (mc.parse("eye(k)*x") + y).node is mc.parse("eye(k)*x + y").node
    assert (mc.parse("x'") @ A).node is mc.parse("x'*A").node
    # vector(c) makes a dimension on no variable: still the parser's graph.
    assert (mc.parse("vector(c)") + x).node is mc.parse("vector(c) + x").node


def test_building_on_a_derivative() -> None:
    d = mc.derivative("x'*A*x", "x")
    assert isinstance(d, mc.Expression)
    built = d.T @ y
    # Built on the derivative's own graph (not on a parse of its printed text).
    assert d.node in g.postorder(built.node)
    assert list(built.variables) == ["x", "A", "y"] and built.variables["y"].shape == ("n",)
    np.testing.assert_allclose(
        built.evaluate({"x": np.arange(3.0), "A": np.eye(3) + 1, "y": np.ones(3)}),
        np.ones(3) @ ((np.eye(3) + 1) + (np.eye(3) + 1).T) @ np.arange(3.0),
    )
    hessian = mc.hessian("x'*x", "x")
    assert isinstance(hessian, mc.Expression)
    assert (hessian @ y).node is mc.parse("2*eye(n)*y").node


def test_built_values_against_numpy() -> None:
    rng = np.random.default_rng(11)
    vx, vy = rng.standard_normal(3), rng.standard_normal(3)
    vA, vB = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    values = {"x": vx, "y": vy, "A": vA, "B": vB, "a": 0.3}
    np.testing.assert_allclose((A @ B @ A @ x).evaluate(values), vA @ vB @ vA @ vx, rtol=1e-12)
    np.testing.assert_allclose((a + x * y - 2 / (x * x + 1)).evaluate(values), 0.3 + vx * vy - 2 / (vx**2 + 1))
    np.testing.assert_allclose((x @ y.T + A.T).evaluate(values), np.outer(vx, vy) + vA.T, rtol=1e-12)


# ----------------------------------------------------------------------------- errors


def test_ill_typed_product_names_operands_and_shapes() -> None:
    with pytest.raises(mc.ShapeError) as info:
        mc.matrix("A", 3, 4) @ mc.vector("x", 5)
    message = str(info.value)
    for word in ("A @ x", "3x4 matrix", "length 5", "4 columns", "5 rows"):
        assert word in message, (word, message)
    with pytest.raises(mc.ShapeError, match=r"x\.T @ y \(inner product\)"):
        x @ y
    with pytest.raises(mc.ShapeError, match="transpose one of them"):
        x.T @ y.T


def test_ill_typed_entrywise_operations() -> None:
    with pytest.raises(mc.ShapeError, match=r"cannot add x \(a column vector\) and x' \(a row vector\); transpose"):
        x + x.T
    with pytest.raises(mc.ShapeError, match="length 3 but y is a column vector of length 4"):
        mc.vector("x", 3) * mc.vector("y", 4)
    # A vector beside a matrix is repeated over it (implicit expansion) when its length fits.
    with pytest.raises(mc.ShapeError, match=r"A is a 3x4 matrix but x is a column vector of length 5"):
        mc.matrix("A", 3, 4) - mc.vector("x", 5)


def test_a_variable_with_two_types() -> None:
    with pytest.raises(mc.InferenceError, match="x is a vector on one side and a scalar on the other"):
        x + mc.scalar("x")
    with pytest.raises(mc.ShapeError, match=r"x has shape vector \(3\) in x but vector \(4\) in x"):
        mc.vector("x", 3) + mc.vector("x", 4)
    with pytest.raises(mc.InferenceError, match="symmetric matrix on one side and a matrix"):
        S + mc.matrix("S")


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: x / 0, "division by zero"),
        (lambda: (0 * a) ** -1, "0 to a negative power"),
        (lambda: x * float("nan"), "only finite numbers"),
        (lambda: x * 1e300 * 1e300 * 1e300, "too large"),
        (lambda: x + "y", "cannot combine an expression with str"),
        (lambda: x + True, "cannot combine an expression with bool"),
    ],
)
def test_bad_operations(build: Callable[[], object], pattern: str) -> None:
    with pytest.raises(mc.MatrixCalculusError, match=pattern):
        build()


def test_a_tensor_cannot_be_combined() -> None:
    jac = mc.derivative("A*x", "A")  # order three
    assert isinstance(jac, mc.Expression)
    with pytest.raises(mc.MatrixCalculusError, match="order three"):
        jac + 1
    with pytest.raises(mc.MatrixCalculusError, match="order three"):
        _ = jac.T


# ------------------------------------------------------------------------------ cost


def test_a_chain_of_products_neither_prints_nor_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    k = 400
    factors = [mc.matrix(f"A{i}") for i in range(k)]
    same = mc.matrix("Q")
    calls = {"parse": 0, "print": 0, "visited": 0}
    postorder = g.postorder

    def counting_postorder(*roots: g.Node) -> list[g.Node]:
        order = postorder(*roots)
        calls["visited"] += len(order)
        return order

    def refuse(what: str) -> Callable[..., object]:
        def call(*args: object, **kwargs: object) -> object:
            calls[what] += 1
            raise AssertionError(f"building called {what}")

        return call

    monkeypatch.setattr(api_expression, "parse_syntax", refuse("parse"))
    monkeypatch.setattr(api_expression, "to_text", refuse("print"))
    monkeypatch.setattr(g, "postorder", counting_postorder)
    distinct = x.T
    for f in factors:
        distinct = distinct @ f
    repeated = x.T
    for _ in range(k):
        repeated = repeated @ same
    monkeypatch.undo()
    assert calls["parse"] == calls["print"] == 0
    # Linear: each step walks at most its right operand and a few new nodes, never the chain.
    assert calls["visited"] <= 20 * k, calls
    text = "x'*" + "*".join(f"A{i}" for i in range(k))
    assert distinct.node is mc.parse(text).node
    assert repeated.node is mc.parse("x'*" + "*".join(["Q"] * k)).node


# ----------------------------------------------------------------- random formulas


LEAVES = {
    "x": (mc.vector("x"), "vector"),
    "y": (mc.vector("y"), "vector"),
    "n": (mc.vector("n"), "vector"),  # a variable named like a dimension
    "k": (mc.vector("k", 3), (3,)),
    "m": (mc.vector("m", "q"), ("q",)),
    "A": (mc.matrix("A"), "matrix"),
    "B": (mc.matrix("B"), "matrix"),
    "W": (mc.matrix("W", 3, "q"), (3, "q")),
    "S": (mc.matrix("S", symmetric=True), "symmetric matrix"),
    "a": (mc.scalar("a"), "scalar"),
    "b": (mc.scalar("b"), "scalar"),
}
# Python operator, the input language's, how to apply it.
OPERATORS: dict[str, tuple[str, Callable[[object, object], object]]] = {
    "+": ("+", lambda p, q: p + q),  # type: ignore[operator]
    "-": ("-", lambda p, q: p - q),  # type: ignore[operator]
    "@": ("*", lambda p, q: p @ q),  # type: ignore[operator]
    "*": (".*", lambda p, q: p * q),  # type: ignore[operator]
    "/": ("./", lambda p, q: p / q),  # type: ignore[operator]
}


def _formula(rng: np.random.Generator, depth: int) -> tuple[str, Callable[[], object]]:
    """A random formula as text and as a thunk applying Python operators to the leaves; every
    part but a lone number has a variable (Python computes ``0.5**2 - 2**2`` itself)."""
    text, thunk = _any_formula(rng, depth)
    if depth and not any(ch.isalpha() for ch in text):
        return "x", lambda: LEAVES["x"][0]
    return text, thunk


def _any_formula(rng: np.random.Generator, depth: int) -> tuple[str, Callable[[], object]]:
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.15:
            number = [2, 0.5, 3][rng.integers(3)]
            return str(number), lambda: number
        name = list(LEAVES)[rng.integers(len(LEAVES))]
        return name, lambda: LEAVES[name][0]
    choice = rng.integers(8)
    if choice == 0:
        text, f = _formula(rng, depth - 1)
        return f"({text})'", lambda: f().T  # type: ignore[attr-defined]
    if choice == 1:
        text, f = _formula(rng, depth - 1)
        return f"-({text})", lambda: -f()  # type: ignore[operator]
    if choice == 2:
        text, f = _formula(rng, depth - 1)
        return f"({text}).^(2)", lambda: f() ** 2  # type: ignore[operator]
    spelled, apply = list(OPERATORS.values())[rng.integers(len(OPERATORS))]
    (ta, fa), (tb, fb) = _formula(rng, depth - 1), _formula(rng, depth - 1)
    return f"({ta}){spelled}({tb})", lambda: apply(fa(), fb())


def test_random_formulas_built_and_parsed_agree() -> None:
    # Same graph when both accept, and the builders refuse exactly what the parser refuses.
    rng = np.random.default_rng(2024)
    agreed = 0
    for _ in range(600):
        text, thunk = _formula(rng, 4)
        try:
            built = thunk()
        except mc.MatrixCalculusError:
            built = None
        if not isinstance(built, mc.Expression | type(None)):
            continue
        types = {name: spec for name, (_, spec) in LEAVES.items()}
        try:
            parsed = mc.parse(text, types=types)
        except mc.MatrixCalculusError:
            parsed = None
        assert (built is None) == (parsed is None), text
        if built is not None and parsed is not None:
            assert built.node is parsed.node, text
            agreed += 1
    assert agreed > 150
