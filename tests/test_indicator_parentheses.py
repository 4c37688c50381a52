"""An indicator such as ``(W1*x + b1 > 0)`` prints in one pair of parentheses of its own: it is
subscripted as it is in index notation (``(W1*x + b1 > 0)[i]``, not ``((W1*x + b1 > 0))[i]``) and
fills a call's parentheses as it is (``diag(u > 0)``, not ``diag((u > 0))``); the texts still
read back as the same expressions."""

from __future__ import annotations

import re

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.render.style import is_wrapped, unwrapped

TYPES = {"b1": "vector"}


@pytest.mark.parametrize(
    ("f", "wrt", "index"),
    [
        ("relu(W1*x + b1)", "x", "(W1*x + b1 > 0)[i]*W1[i,j] -> [i,j]"),
        ("W2*relu(W1*x + b1)", "x", "sum_k W2[i,k]*(W1*x + b1 > 0)[k]*W1[k,j]"),
    ],
)
def test_index_notation_subscripts_an_indicator_once(f, wrt, index):
    d = mc.derivative(f, wrt, types=TYPES)
    assert d.index_notation() == index
    assert "((" not in d.index_notation()


def test_index_notation_of_a_typed_indicator():
    e = mc.parse("(W1*x + b1 > 0) .* y", types=TYPES)
    assert e.index_notation() == "(W1*x + b1 > 0)[i]*y[i] -> [i]"


def test_diag_of_an_indicator_has_one_pair_and_reads_back():
    d = mc.derivative("relu(W1*x + b1)", "x", types=TYPES)
    assert str(d) == "diag(W1*x + b1 > 0)*W1"
    assert d.latex() == r"\operatorname{diag}\left(W_{1} x + b_{1} > 0\right) W_{1}"
    again = mc.parse(str(d), types={"b1": "vector", "W1": d._context["W1"].shape, "x": d._context["x"].shape})
    assert mc.equal(again, d)
    rng = np.random.default_rng(3)
    values = {"W1": rng.normal(size=(3, 4)), "x": rng.normal(size=4), "b1": rng.normal(size=3)}
    z = values["W1"] @ values["x"] + values["b1"]
    assert np.allclose(d.evaluate(values), np.diag((z > 0).astype(float)) @ values["W1"])


def test_a_registry_function_of_an_indicator_has_one_pair():
    e = mc.parse("max(x > 0, y)")
    assert str(e) == "max(x > 0, y)"
    assert mc.parse(str(e)).node is e.node


def test_only_a_pair_around_the_whole_text_is_dropped():
    assert is_wrapped("(a > b)") and is_wrapped(r"\left(a > b\right)")
    assert not is_wrapped("(a)*(b)") and not is_wrapped("(x)'") and not is_wrapped("x")
    assert unwrapped("(a > b)") == "a > b"
    assert unwrapped(r"\left(a > b\right)") == "a > b"
    assert unwrapped("(a)*(b)") == "(a)*(b)"


def test_no_doubled_parentheses_in_the_index_notation_of_a_network():
    d = mc.derivative("0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2", "W1", types={"b1": "vector", "b2": "vector"})
    for text in (d.index_notation(), str(d)):
        assert not re.search(r"\(\([^()]*>[^()]*\)\)", text), text
