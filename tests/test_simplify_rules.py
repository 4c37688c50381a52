"""Simplification rules that a fuzz campaign caught rewriting to a wrong value, checked against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import matrixcalculus as mc


def _central_gradient(fn, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        grad[index] = (fn(x + step) - fn(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize(
    ("text", "reference"),
    [
        # inv of a Hadamard product with the identity is not a product of inverses (B .* eye(3) .* R
        # is no chain B*eye(3)'*R): the inverse-expansion rule must leave it alone.
        ("logdet(B .* (eye(3) ./ exp(A)))", lambda A, B: np.linalg.slogdet(B * (np.eye(3) / np.exp(A)))[1]),
        (
            "det(inv(B) .* (inv(eye(3)) ./ exp(A).^2))",
            lambda A, B: np.linalg.det(np.linalg.inv(B) * (np.eye(3) / np.exp(A) ** 2)),
        ),
        ("tr(A*inv(B .* A))", lambda A, B: np.trace(A @ np.linalg.inv(B * A))),
    ],
)
def test_inverse_of_a_hadamard_product_is_not_expanded(text, reference) -> None:
    rng = np.random.default_rng(7)
    A = np.eye(3) + 0.4 * rng.standard_normal((3, 3))
    B = 3 * np.eye(3) + rng.standard_normal((3, 3))
    grad = np.asarray(mc.derivative(text, "A", types={"A": "matrix", "B": "matrix"}).evaluate({"A": A, "B": B}))
    expected = _central_gradient(lambda a: reference(a, B), A)
    np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-8)
