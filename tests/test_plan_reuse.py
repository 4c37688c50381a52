"""The planner reuses the products it has computed, and orients products as entry-wise passes read them.

Issue 15: the gradient of a relu network on a batch w.r.t. all its parameters is the expert's
backpropagation: ``d2 = (W3'*r) .* (a2 > 0)`` once, the weight gradient ``d2*h1'`` and the bias
gradient ``sum(d2, 2)`` from it (never the bias gradient as a fresh contraction of ``r``, the mask
and ``W3``), and ``W3'*r`` is made in the orientation of the mask it multiplies entry by entry
(a C-ordered array times a transposed one is a strided pass, about 4x slower in NumPy).
References: backpropagation written here in NumPy from the chain rule, and central differences.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.codegen import Program, generate
from matrixcalculus.compile.statements import View
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import finite_difference

LOSS = "0.5*norm2(W3*relu(W2*relu(W1*X + b1*ones(N)') + b2*ones(N)') + b3*ones(N)' - Y)^2"
PARAMETERS = ["W1", "b1", "W2", "b2", "W3", "b3"]
TYPES = {"W1": "matrix", "W2": "matrix", "W3": "matrix", "X": "matrix", "Y": "matrix"}
TYPES |= {"b1": "vector", "b2": "vector", "b3": "vector"}


def _network(sizes: tuple[int, int, int, int], batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    i, h1, h2, o = sizes
    rng = np.random.default_rng(seed)
    return {
        "W1": rng.standard_normal((h1, i)) / np.sqrt(i),
        "b1": 0.1 * rng.standard_normal(h1),
        "W2": rng.standard_normal((h2, h1)) / np.sqrt(h1),
        "b2": 0.1 * rng.standard_normal(h2),
        "W3": rng.standard_normal((o, h2)) / np.sqrt(h2),
        "b3": 0.1 * rng.standard_normal(o),
        "X": rng.standard_normal((i, batch)),
        "Y": rng.standard_normal((o, batch)),
    }


def _backprop(v: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The gradients by the chain rule, layer by layer (float64)."""
    a1 = v["W1"] @ v["X"] + v["b1"][:, None]
    h1 = np.maximum(a1, 0.0)
    a2 = v["W2"] @ h1 + v["b2"][:, None]
    h2 = np.maximum(a2, 0.0)
    r = v["W3"] @ h2 + v["b3"][:, None] - v["Y"]
    d2 = (v["W3"].T @ r) * (a2 > 0)
    d1 = (v["W2"].T @ d2) * (a1 > 0)
    return [d1 @ v["X"].T, d1.sum(axis=1), d2 @ h1.T, d2.sum(axis=1), r @ h2.T, r.sum(axis=1)]


def _loss(v: dict[str, np.ndarray]) -> float:
    a1 = np.maximum(v["W1"] @ v["X"] + v["b1"][:, None], 0.0)
    a2 = np.maximum(v["W2"] @ a1 + v["b2"][:, None], 0.0)
    return 0.5 * float(np.sum((v["W3"] @ a2 + v["b3"][:, None] - v["Y"]) ** 2))


def _statements(source: str) -> dict[str, str]:
    """``{"t3": "(t1 @ W2)", ...}``: each assignment of the generated function."""
    return dict(re.findall(r"^\s+(t\d+) = (.+)$", source, flags=re.MULTILINE))


def _returned(source: str) -> list[str]:
    found = re.search(r"return \((.*)\)", source)
    assert found is not None
    return [name.strip() for name in found.group(1).split(",") if name.strip()]


@pytest.fixture(scope="module")
def mlp_batch() -> tuple[Any, dict[str, np.ndarray], str]:
    values = _network((784, 256, 256, 10), 128)
    f = mc.compile(LOSS, wrt=PARAMETERS, derivatives=("gradient",), types=TYPES)
    return f, values, f.source(values)


def test_the_batch_gradient_is_backpropagation(mlp_batch: tuple) -> None:
    _, _, source = mlp_batch
    statements = _statements(source)
    products = [name for name, op in statements.items() if "@" in op]
    # Three layers forward, W3'*r and W2'*d2 back, one product per weight gradient: 8 matrix
    # products. The bias gradients are sums over the batch of r, d2, d1: no product of their own.
    assert len(products) == 8, source
    dW1, db1, dW2, db2, dW3, db3 = _returned(source)
    for bias, weight in ((db1, dW1), (db2, dW2), (db3, dW3)):
        summed = re.fullmatch(r"xp\.sum\((t\d+), axis=1\)", statements[bias])
        assert summed is not None, f"{bias} = {statements[bias]}"
        # The array the bias gradient sums over the batch is the one its weight gradient multiplies.
        assert re.fullmatch(rf"\({summed.group(1)} @ \w+(\.T)?\)", statements[weight]), source


def test_entry_wise_products_read_arrays_in_one_order(mlp_batch: tuple) -> None:
    _, _, source = mlp_batch
    for name, op in _statements(source).items():
        if "@" not in op and "*" in op:
            assert ".T" not in op, f"{name} = {op}: a stored array against a transposed one"
    assert all(not name.endswith(".T") for name in _returned(source))


def test_the_batch_gradient_agrees_with_backpropagation(mlp_batch: tuple) -> None:
    f, values, _ = mlp_batch
    (got,) = f(values)  # the gradient: one array per parameter
    for name, ours, expected in zip(PARAMETERS, got, _backprop(values), strict=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max(), err_msg=name)


def test_the_batch_gradient_agrees_with_central_differences() -> None:
    values = _network((5, 4, 3, 2), 6, seed=3)
    f = mc.compile(LOSS, wrt=PARAMETERS, derivatives=("gradient",), types=TYPES)
    (got,) = f(values)  # the gradient: one array per parameter
    for name, ours in zip(PARAMETERS, got, strict=True):

        def loss_at(x: np.ndarray, name: str = name) -> float:
            return _loss(values | {name: x})

        fd = finite_difference(loss_at, values[name])
        np.testing.assert_allclose(ours, fd, rtol=1e-6, atol=1e-7, err_msg=name)
    for name, ours, expected in zip(PARAMETERS, got, _backprop(values), strict=True):
        np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-14, err_msg=name)


# ------------------------------------------------------------------------ the planner's block


def _generated(roots: list[g.Node], variables: list[g.Var], sizes: dict[str, int]) -> Program:
    return generate(roots, variables, "numpy", dict(sizes))


def _run(program: Program, values: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    namespace: dict[str, object] = {}
    exec(program.source, namespace)  # the generated module (our own code, not user text)
    function = namespace[program.function]
    assert callable(function)
    return tuple(function(*(values[name] for name in program.arguments)))


def _backprop_nodes() -> tuple[list[g.Var], g.Node, g.Node]:
    """``d2 = (W'*r) .* M`` (n x N) and its sum over the batch (n), as contractions of r, W, M."""
    r = g.var("r", "matrix", ("m", "N"))
    w = g.var("W", "matrix", ("m", "n"))
    mask = g.var("M", "matrix", ("n", "N"))
    d2 = g.contract([r, w, mask], [(2, 1), (2, 0), (0, 1)], (0, 1))
    summed = g.contract([r, w, mask], [(2, 1), (2, 0), (0, 1)], (0,))
    return [r, w, mask], d2, summed


def _backprop_values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {
        "r": rng.standard_normal((10, 128)),
        "W": rng.standard_normal((10, 256)),
        "M": rng.standard_normal((256, 128)),
    }


def test_a_held_product_is_summed_not_recomputed() -> None:
    variables, d2, summed = _backprop_nodes()
    program = _generated([d2, summed], variables, {"m": 10, "n": 256, "N": 128})
    block = program.block
    names = [s.op.name for s in block.statements]
    # Alone, the sum is ordered r*M' first (10 x 256 x 128 multiply-adds), then W .* that; with
    # d2 held it is the sum of d2 over the batch: one matrix product in all.
    assert names.count("matmul") == 1, names
    last = block.statements[-1]
    held = block.outputs[0]
    assert isinstance(held, View) and isinstance(last.op.args[0], View)
    assert last.op.name == "sum" and last.op.args[0].value is held.value
    values = _backprop_values()
    product, total = _run(program, values)
    expected = (values["W"].T @ values["r"]) * values["M"]
    np.testing.assert_allclose(product, expected, rtol=1e-13)
    np.testing.assert_allclose(total, expected.sum(axis=1), rtol=1e-12, atol=1e-12)
    alone = _generated([summed], variables, {"m": 10, "n": 256, "N": 128})
    assert [s.op.name for s in alone.block.statements].count("matmul") == 1
    np.testing.assert_allclose(_run(alone, values)[0], expected.sum(axis=1), rtol=1e-12, atol=1e-12)


def test_a_product_is_oriented_as_the_array_it_multiplies_entry_by_entry() -> None:
    variables, d2, _ = _backprop_nodes()
    program = _generated([d2], variables, {"m": 10, "n": 256, "N": 128})
    (matmul,) = [s for s in program.block.statements if s.op.name == "matmul"]
    assert matmul.target.shape == ("n", "N")  # W'*r, the mask's orientation, not r'*W
    for statement in program.block.statements:
        if statement.op.name == "mul":
            assert not any(isinstance(a, View) and a.is_transpose for a in statement.op.args), statement
    output = program.block.outputs[0]
    assert isinstance(output, View) and output.axes is None  # returned as stored, not as a transpose
    values = _backprop_values()
    np.testing.assert_allclose(_run(program, values)[0], (values["W"].T @ values["r"]) * values["M"], rtol=1e-13)


def test_a_result_is_made_in_its_own_orientation() -> None:
    # (A'*B)' = B'*A: made as B.T @ A, not returned as the transpose of A.T @ B.
    a = g.var("A", "matrix", ("n", "p"))
    b = g.var("B", "matrix", ("n", "q"))
    product = g.contract([a, b], [(0, 1), (0, 2)], (2, 1))
    program = _generated([product], [a, b], {"n": 50, "p": 3, "q": 4})
    output = program.block.outputs[0]
    assert isinstance(output, View) and output.axes is None
    rng = np.random.default_rng(4)
    values = {"A": rng.standard_normal((50, 3)), "B": rng.standard_normal((50, 4))}
    np.testing.assert_allclose(_run(program, values)[0], values["B"].T @ values["A"], rtol=1e-13)


def test_a_held_product_is_not_taken_where_computing_afresh_is_cheaper() -> None:
    # With A*B (n x n, from n x 2 and 2 x n) held, the sum of all its entries is still
    # (ones'*A)*(B*ones): two passes over the thin matrices and a dot product (about 4n) against
    # a pass over the held product (n^2).
    a = g.var("A", "matrix", ("n", "p"))
    b = g.var("B", "matrix", ("p", "n"))
    product = g.contract([a, b], [(0, 1), (1, 2)], (0, 2))
    total = g.contract([a, b], [(0, 1), (1, 2)], ())
    program = _generated([product, total], [a, b], {"n": 500, "p": 2})
    held = program.block.outputs[0]
    assert isinstance(held, View)
    readers = [
        s for s in program.block.statements if any(isinstance(x, View) and x.value is held.value for x in s.op.args)
    ]
    assert not readers, readers
    rng = np.random.default_rng(5)
    values = {"A": rng.standard_normal((500, 2)), "B": rng.standard_normal((2, 500))}
    got_product, got_total = _run(program, values)
    np.testing.assert_allclose(got_product, values["A"] @ values["B"], rtol=1e-13)
    np.testing.assert_allclose(got_total, np.sum(values["A"] @ values["B"]), rtol=1e-10)


def test_a_diagonal_factor_is_no_orientation() -> None:
    # diag(A) is A read with one label twice ('aa'): no order of labels to take from it
    # (a hypothesis case once made the entry-wise product of sigmoid(x) and 1 - sigmoid(x) transpose
    # a vector by the axes (0, 0)).
    f = mc.compile("(a ./ (1 + ((diag(A))'*(sigmoid(x))).^2))", wrt="x", derivatives=("gradient",))
    rng = np.random.default_rng(0)
    values = {"a": np.float64(0.7), "A": rng.standard_normal((3, 3)), "x": rng.standard_normal(3)}
    (got,) = f(values)
    s = 1 / (1 + np.exp(-values["x"]))
    t = np.diag(values["A"]) @ s
    # d/dx a (1 + t^2)^-1 = -2 a t (1 + t^2)^-2 dt/dx, dt/dx = diag(A) .* s .* (1 - s)
    expected = -2 * values["a"] * t / (1 + t**2) ** 2 * np.diag(values["A"]) * s * (1 - s)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
