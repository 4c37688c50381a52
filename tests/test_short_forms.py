"""The short forms of the common losses, reached by general simplification rules, and their stability.

Expected forms are written from the math (the identities practitioners use), whitespace aside;
every derivative is also checked against central finite differences, and compiled gradients
against the closed forms at logits far apart (±1e4 in float64, ±80 in float32).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.render.bindings import taken_names, with_bindings
from tests.test_registry import _to_backend, _to_numpy

BCE = "-y'*log(sigmoid(X*w)) - (1 - y)'*log(1 - sigmoid(X*w))"


def _same(got: Any, want: str) -> None:
    assert re.sub(r"\s", "", str(got)) == re.sub(r"\s", "", want)


@pytest.mark.parametrize(
    ("f", "wrt", "types", "want"),
    [
        # (t ./ s)'*s = sum(t): the division by softmax cancels.
        ("-t'*log(softmax(z))", "z", {}, "sum(t)*softmax(z) - t"),
        ("-t'*log(softmax(W*x + b))", "W", {"b": "vector"}, "(sum(t)*softmax(W*x + b) - t)*x'"),
        # The logistic loss: (-y ./ s + (1 - y) ./ (1 - s)) .* s .* (1 - s) = s - y.
        (BCE, "w", {}, "X'*(sigmoid(X*w) - y)"),
        # exp(x)/sum(exp(x)) is softmax(x), then d softmax = diag(s) - s*s'.
        ("exp(x)/sum(exp(x))", "x", {}, "diag(softmax(x)) - softmax(x)*softmax(x)'"),
        # sum(softmax(z)) = 1: its derivative is zero.
        ("sum(softmax(z))", "z", {}, "zeros(n)"),
        ("a*sum(softmax(z)) + a", "a", {}, "2"),
        # sigmoid(-z) = 1 - sigmoid(z): one sigmoid, and 1 - (1 - s) is s.
        ("x'*sigmoid(-z)", "z", {}, "-sigmoid(z) .* (1 - sigmoid(z)) .* x"),
        # The batched cross-entropy with softmax along the columns.
        ("sum(logsumexp(Z, 1)) - sum(sum(Y .* Z))", "Z", {}, "softmax(Z, 1) - Y"),
    ],
)
def test_short_form(f: str, wrt: str, types: dict[str, str], want: str) -> None:
    d = mc.derivative(f, wrt, types=types)
    _same(d, want)
    assert mc.check(f, wrt, types=types).ok
    # The short form is the same function as the full derivative: parse it back and compare.
    assert mc.equal(mc.parse(str(d), types={**types, "x": "vector"} if "x" in str(d) else types), d)


def test_the_rules_are_general_not_per_loss() -> None:
    # The same cancellation with other names and an extra factor around it.
    _same(mc.derivative("-u'*log(softmax(A*v))", "v"), "A'*(sum(u)*softmax(A*v) - u)")
    # A quotient cancelled in a matrix: (Y ./ S)'*S summed per column is sum(Y, 1).
    d = mc.derivative("-sum(sum(Y .* log(softmax(Z, 1))))", "Z")
    assert "./" not in str(d) and mc.check("-sum(sum(Y .* log(softmax(Z, 1))))", "Z").ok
    # s'*(1 ./ s) = n: the cancelled pair leaves ones, so the sum over it stays.
    from matrixcalculus.transform.simplify import simplify

    assert str(mc.Expression(simplify(mc.parse("s'*(1 ./ s)").node), mc.parse("s").variables)) in (
        "ones(n)'*ones(n)",
        "sum(ones(n))",
        "n",
    )
    # A factored form stays factored where expanding cancels nothing (the cookbook's 2*A'*W*(x - A*s)).
    _same(mc.derivative("(x - A*s)'*W*(x - A*s)", "s", types={"W": "symmetric matrix"}), "-2*A'*W*(x - A*s)")


def test_a_batch_bias_gradient_sums_rows_instead_of_forming_a_diagonal() -> None:
    types = {"b1": "vector", "X": ("n", "N"), "T": ("p", "N")}
    f = "norm2(W2*tanh(W1*X + b1*ones(N)') - T)^2"
    d = str(mc.derivative(f, "b1", types=types))
    assert "diag" not in d and d.startswith("2*sum(") and d.endswith(", 2)")
    assert mc.check(f, "b1", types=types).ok


def _network(layers: int) -> str:
    h = "x"
    for k in range(1, layers + 1):
        h = f"tanh(W{k}*{h})"
    return f"norm2({h} - t)^2/2"


def _printed_gradient(layers: int) -> tuple[str, list[tuple[str, str]]]:
    grads = mc.gradient(_network(layers), [f"W{k}" for k in range(1, layers + 1)], types={"t": "vector"})
    roots = [d.node for d in grads]
    texts, bindings = with_bindings(roots, set().union(*(taken_names(r) for r in roots)))
    return "\n".join(texts), bindings


def test_a_deep_networks_printed_gradient_grows_linearly() -> None:
    sizes = {}
    for layers in (10, 20, 40):
        body, bindings = _printed_gradient(layers)
        sizes[layers] = len(body) + sum(len(name) + len(text) for name, text in bindings)
    # Doubling the depth doubles the text (quadratic growth would quadruple it).
    assert sizes[20] / sizes[10] < 2.3 and sizes[40] / sizes[20] < 2.3, sizes


def test_each_layers_error_signal_is_bound_once() -> None:
    body, bindings = _printed_gradient(3)
    texts = dict(bindings)
    # The output layer's delta (t4 - t) .* (1 - t4.^2) is one binding, used by every gradient.
    deltas = [name for name, text in bindings if ".*" in text and "- t)" in text]
    assert len(deltas) == 1, bindings
    (delta,) = deltas
    assert body.count(delta) + sum(text.count(delta) for text in texts.values()) >= 2
    # Each binding's text appears once: nothing of the backward chain is written out twice.
    assert len(set(texts.values())) == len(texts)


# ------------------------------------------------------------------------ stability


def test_compiled_code_never_divides_by_what_it_could_cancel() -> None:
    for f, wrt in (("-t'*log(softmax(z))", "z"), (BCE, "w"), ("-sum(sum(Y .* log(softmax(Z, 1))))", "Z")):
        source = mc.codegen(f, wrt, derivatives="gradient")
        body = source[source.index("def derivatives") :]
        assert "/" not in body, f"{f}:\n{source}"


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_losses_stay_finite_for_logits_far_apart(backend: str) -> None:
    convert = _to_backend(backend)
    z = np.array([1e4, -1e4, 0.0, 3.0])
    t = np.array([0.1, 0.5, 0.2, 0.2])
    value, grad = _to_numpy(
        mc.compile("-t'*log(softmax(z))", wrt="z", backend=backend)({"z": convert(z), "t": convert(t)})
    )
    # log softmax(z) = z - max(z) - log(sum(exp(z - max(z)))): exactly 0, -2e4, -1e4, 3 - 1e4 here.
    log_softmax = z - 1e4
    assert value == pytest.approx(-t @ log_softmax, rel=1e-12)
    np.testing.assert_allclose(grad, t.sum() * np.array([1.0, 0, 0, 0]) - t, atol=1e-15)

    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    w = np.array([1e4, -1e4])
    y = np.array([0.0, 1.0, 1.0])
    value, grad = _to_numpy(
        mc.compile(BCE, wrt="w", backend=backend)({"X": convert(X), "w": convert(w), "y": convert(y)})
    )
    u = X @ w  # 1e4, -1e4, 0: losses 1e4, 1e4, log 2
    assert value == pytest.approx(2e4 + np.log(2), rel=1e-12)
    s = np.array([1.0, 0.0, 0.5])
    np.testing.assert_allclose(grad, X.T @ (s - y), atol=1e-12)
    assert np.all(np.isfinite(u))

    Z = np.array([[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]])
    Y = np.eye(3)[:, :2]
    value, grad = _to_numpy(
        mc.compile("-sum(sum(Y .* log(softmax(Z, 1))))", wrt="Z", backend=backend)({"Z": convert(Z), "Y": convert(Y)})
    )
    assert value == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(grad, np.zeros((3, 2)), atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_logits_of_80_stay_finite(backend: str) -> None:
    if backend == "torch":
        torch = pytest.importorskip("torch")
        convert: Any = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    else:
        convert = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    z = np.array([80.0, -80.0, 0.0])
    t = np.array([0.0, 1.0, 0.0])
    value, grad = _to_numpy(
        mc.compile("-t'*log(softmax(z))", wrt="z", backend=backend)({"z": convert(z), "t": convert(t)})
    )
    assert value == pytest.approx(160.0, rel=1e-6)
    assert np.all(np.isfinite(grad))
    Z = np.array([[80.0, -80.0], [-80.0, 80.0]])
    value, grad = _to_numpy(
        mc.compile("sum(logsumexp(Z, 1)) - sum(sum(Y .* Z))", wrt="Z", backend=backend)(
            {"Z": convert(Z), "Y": convert(np.eye(2))}
        )
    )
    assert value == pytest.approx(0.0, abs=1e-4)
    assert np.all(np.isfinite(grad))


def test_evaluation_uses_the_log_softmax_form_too() -> None:
    z = np.array([1e4, -1e4])
    t = np.array([0.0, 1.0])
    assert mc.parse("-t'*log(softmax(z))").evaluate({"z": z, "t": t}) == pytest.approx(2e4, rel=1e-12)
    X = np.array([[1.0]])
    assert mc.parse(BCE).evaluate({"X": X, "w": np.array([-1e4]), "y": np.array([1.0])}) == pytest.approx(1e4)
