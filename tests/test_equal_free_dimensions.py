"""``mc.equal`` of expressions whose dimensions no variable fixes (``eye(n)``, ``ones(n)``): each
such dimension gets a random size of its own, the same for the same name on both sides."""

from __future__ import annotations

import pytest

import matrixcalculus as mc


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("eye(n) + eye(n)", "2*eye(n)"),
        ("ones(n)*ones(n)'", "ones(n,n)"),
        ("tr(eye(n))", "ones(n)'*ones(n)"),
        ("ones(m)'*ones(m)*eye(n)", "tr(eye(m))*eye(n)"),
    ],
)
def test_equal_with_free_dimensions(a, b):
    assert mc.equal(a, b)


def test_a_factor_between_free_dimension_expressions_is_found():
    result = mc.equal("eye(n)", "2*eye(n)")
    assert not result
    assert result.relation == "factor" and result.factor == pytest.approx(2.0)


def test_free_dimensions_get_different_sizes_so_a_transpose_shows():
    # ones(m)*ones(n)' is m x n; its transpose is n x m: only different sizes tell them apart.
    result = mc.equal("ones(m)*ones(n)'", "ones(n)*ones(m)'")
    assert not result
    assert result.relation == "transpose"


def test_a_free_dimension_beside_variables():
    # n is the length of x (fixed by x's value); k is free.
    assert mc.equal("ones(k)'*ones(k)*x", "tr(eye(k))*x", types={"x": ("n",)})
    assert not mc.equal("ones(k)'*ones(k)*x", "x", types={"x": ("n",)})
