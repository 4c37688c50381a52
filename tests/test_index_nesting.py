"""Index notation nested in printed text: a function of a contraction that has no matrix
notation (``sigmoid(sum_ijk A[i,j]*S[k,j,i])``) inside a product with free indices, and the
derivatives of such expressions.

Two faults the random round trips of ``tests/test_index_input.py`` found after index-notation
input met the printer:

* the nested sum reused the names bound outside it,
  ``sum_k sigmoid(sum_ijk A[i,j]*S[k,j,i])*... -> [i,j]``: the reader (an index listed by
  ``-> [...]`` is free wherever it is written) refused it, and a reader cannot tell the
  ``i`` inside from the ``i`` outside;
* a vector in index notation inside matrix notation, ``sigmoid(sum_jkl ...*A[l,i])*u'*A``,
  pulled the product into index notation, where ``u'`` is an error.

Every printed text here must parse back to the same function (values equal at fixed inputs),
and no name bound by a nested ``sum_`` or ``-> [...]`` may be used outside it. The expected
values are written with ``numpy.einsum`` from the meaning of the notation, never from the library.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import matrixcalculus as mc

warnings.simplefilter("ignore", mc.MatrixCalculusNotice)

TYPES = {"T": (2, 3, 4), "S": (4, 3, 2), "A": (2, 3), "B": (3, 4), "u": (2,), "v": (3,), "w": (4,)}
RNG = np.random.default_rng(15)
VALUES = {name: RNG.standard_normal(shape) for name, shape in TYPES.items()}
T, S, A, B, u, v, w = (VALUES[n] for n in ("T", "S", "A", "B", "u", "v", "w"))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


# ------------------------------------------------------------------------------ the checker


def _names(text: str) -> set[str]:
    """Every index name written in ``text``: in brackets, in delta(...), after sum_."""
    found: set[str] = set()
    for inside in re.findall(r"\[([a-z0-9,()]*)\]", text):
        found |= set(re.findall(r"[a-z][0-9]*", inside))
    for a, b in re.findall(r"delta\(([a-z][0-9]*),([a-z][0-9]*)\)", text):
        found |= {a, b}
    for listed in re.findall(r"(?<![A-Za-z0-9_])sum_([a-z0-9,]+)", text):
        found |= set(re.findall(r"[a-z][0-9]*", listed))
    return found


def _bound(text: str) -> set[str]:
    """The names ``text`` binds itself: summed by sum_ or listed by -> [...]."""
    found: set[str] = set()
    for listed in re.findall(r"(?<![A-Za-z0-9_])sum_([a-z0-9,]+)", text):
        found |= set(re.findall(r"[a-z][0-9]*", listed))
    for listed in re.findall(r"-> \[([a-z0-9,]*)\]", text):
        found |= set(re.findall(r"[a-z][0-9]*", listed))
    return found


def _scopes(text: str) -> list[tuple[int, int, int]]:
    """The outermost spans ``f(...)`` (a function applied, not delta) or ``(...)`` whose
    content binds names of its own: (start, content start, end)."""
    spans: list[tuple[int, int, int]] = []
    k = 0
    while k < len(text):
        head = re.match(r"(?:[A-Za-z][A-Za-z0-9]*)?\(", text[k:])
        if head and (k == 0 or not (text[k - 1].isalnum() or text[k - 1] == "_")) and head.group(0) != "delta(":
            start = k + head.end() - 1
            depth, end = 0, start
            for end in range(start, len(text)):
                depth += (text[end] == "(") - (text[end] == ")")
                if depth == 0:
                    break
            if _bound(text[start : end + 1]):
                spans.append((k, start + 1, end))
                k = end + 1
                continue
        k += 1
    return spans


def clashes(text: str) -> set[str]:
    """Names bound inside a nested scope (a function's argument, a parenthesis with its own
    sum_ or -> [...]) and also written in the text around it, at any depth."""
    spans = _scopes(text)
    inside = set().union(*(_bound(text[a:b]) for _, a, b in spans)) if spans else set()
    outside = text
    for start, _, end in reversed(spans):
        outside = outside[:start] + " " + outside[end + 1 :]
    found = inside & _names(outside)
    for _, a, b in spans:
        found |= clashes(text[a:b])
    return found


def test_the_checker_finds_the_old_faults():
    old_derivative = "sum_k sigmoid(sum_ijk A[i,j]*S[k,j,i])*(1 - sigmoid(sum_ijk A[i,j]*S[k,j,i]))*S[k,j,i] -> [i,j]"
    assert clashes(old_derivative) == {"i", "j", "k"}
    old_round_trip = "(sigmoid(sum_jkl B[j,k]*S[k,j,l]*A[l,i])*u'*A + v*v')[j,i] -> [i,j]"
    assert clashes(old_round_trip) == {"j"}  # its i is free inside: a name of the outer text
    assert not clashes("sum_k sigmoid(sum_lab A[l,a]*S[b,a,l])*S[k,j,i] -> [i,j]")
    # An element-wise function of an entry of the same term shares its free indices.
    assert not clashes("A[i,j]*(1 - tanh((sum_l T[i,j,l]*w[l]))^2)*w[k] -> [i,j,k]")


# ------------------------------------------------------------------------------ reading back


def reads_back(text: str, expected: np.ndarray) -> None:
    """``text`` parses to the values ``expected`` and binds no name twice. A delta whose indices
    occur in no other factor runs over a dimension the text does not name (docs/conventions.md):
    it is bound here to the size the expected value has."""
    back = mc.parse(text, types=TYPES)
    dims = {b: s for b, s in zip(back.shape, np.shape(expected), strict=True) if isinstance(b, str)}
    got = back.evaluate(VALUES, dims=dims or None)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12, err_msg=text)
    assert not clashes(text), text


def test_falsifying_derivative_sigmoid_of_a_full_contraction():
    """d/dA sigmoid(sum_ijk A[i,j]*S[k,j,i]) = s*(1 - s)*sum_k S[k,j,i], s the sigmoid."""
    e = mc.parse("sigmoid((sum_k1 A[i1,j1]*S[k1,j1,i1]))", types=TYPES)
    s = sigmoid(np.einsum("ij,kji->", A, S))
    np.testing.assert_allclose(e.evaluate(VALUES), s)
    d = mc.derivative(e, "A")
    expected = s * (1 - s) * np.einsum("kji->ij", S)
    np.testing.assert_allclose(d.evaluate(VALUES), expected)
    for text in (d.index_notation(), str(d), e.index_notation(), str(e)):
        reads_back(text, expected if text in (d.index_notation(), str(d)) else s)


def test_falsifying_round_trip_vector_function_in_a_matrix_part():
    """u[i]*sigmoid(B[b2,k2]*S[k2,b2,i2]*A[i2,j2])*A[i,j] + v[j2]*v[j] -> [j,j2]: a matrix over
    (j, j2); the sigmoid's argument is a vector over j2 with no matrix notation."""
    text = "u[i]*sigmoid((B[b2,k2]*S[k2,b2,i2]*A[i2,j2]))*A[i,j] + v[j2]*v[j] -> [j,j2]"
    e = mc.parse(text, types=TYPES)
    inner = sigmoid(np.einsum("bk,kbi,ij->j", B, S, A))
    expected = np.einsum("i,l,ij->jl", u, inner, A) + np.einsum("l,j->jl", v, v)
    np.testing.assert_allclose(e.evaluate(VALUES), expected)
    for printed in (e.index_notation(), str(e)):
        reads_back(printed, expected)
    assert "u'" not in e.index_notation()


# Functions of contractions with no matrix notation, inside products with free indices.
_CASES = {
    # a scalar function of a full contraction, times a matrix over free i, j
    "sigmoid(sum_ijk T[i,j,k]*S[k,j,i])*A[i,j]": lambda: sigmoid(np.einsum("ijk,kji->", T, S)) * A,
    # a matrix function of a contraction with a 3-tensor, its indices summed by the product
    "tanh(T[i,j,k]*w[k])*A[i,j]": lambda: np.sum(np.tanh(T @ w) * A),
    # a scalar function beside a vector-matrix product: a vector over j
    "u[i]*sin(T[a,b,k]*S[k,b,a])*A[i,j]": lambda: np.sin(np.einsum("abk,kba->", T, S)) * (u @ A),
    # a vector function of a contraction, its index free in the function, summed outside
    "sigmoid(T[i,j,k]*S[k,b,i]*v[b])*v[j]": lambda: np.sum(sigmoid(np.einsum("ijk,kbi,b->j", T, S, v)) * v),
    "exp(S[k,j,i]*A[i,j])*w[k]": lambda: np.sum(np.exp(np.einsum("kji,ij->k", S, A)) * w),
    "u[i]*sigmoid(B[b,k]*S[k,b,a]*A[a,j])*A[i,j]": lambda: u @ A @ sigmoid(np.einsum("bk,kba,aj->j", B, S, A)),
    # the vector over i of the function, contracted with A: a vector over j
    "A[i,j]*tanh(T[i,b,k]*w[k]*v[b])": lambda: A.T @ np.tanh(np.einsum("ibk,k,b->i", T, w, v)),
    # a vector function as a row beside a matrix product, listed in another order
    "sigmoid(T[i,j,k]*S[k,b,i]*v[b])*u[a] -> [a,j]": lambda: np.outer(u, sigmoid(np.einsum("ijk,kbi,b->j", T, S, v))),
}


@pytest.mark.parametrize("text", sorted(_CASES))
def test_nested_function_round_trips(text):
    e = mc.parse(text, types=TYPES)
    expected = _CASES[text]()
    np.testing.assert_allclose(e.evaluate(VALUES), expected)
    for printed in (e.index_notation(), str(e)):
        reads_back(printed, expected)


_DERIVATIVES = [(text, wrt) for text in sorted(_CASES) for wrt in "TSAu" if re.search(rf"\b{wrt}\[", text)]


@pytest.mark.parametrize(("text", "wrt"), _DERIVATIVES)
def test_derivatives_of_nested_functions_read_back(text, wrt):
    """The derivative printed in index notation and in the matrix notation of ``str`` reads
    back with the derivative's values; those values against central differences of the
    function's own value (float64)."""
    e = mc.parse(text, types=TYPES)
    d = mc.derivative(e, wrt)
    want = d.evaluate(VALUES)
    for printed in (d.index_notation(), str(d)):
        reads_back(printed, want)
    # The derivative itself: d[out..., in...] against central differences in each entry of wrt.
    eps = 1e-6
    x = VALUES[wrt]
    for idx in list(np.ndindex(x.shape))[:5]:
        step = np.zeros_like(x)
        step[idx] = eps
        up = e.evaluate({**VALUES, wrt: x + step})
        down = e.evaluate({**VALUES, wrt: x - step})
        np.testing.assert_allclose(want[(..., *idx)], (up - down) / (2 * eps), atol=1e-7)


def test_nested_names_avoid_every_name_outside():
    """The derivative that used to print sum_ijk inside sum_k ... -> [i,j]: the nested sum
    now names none of i, j, k, and a repeated part keeps one text."""
    d = mc.derivative("sigmoid(sum_ijk A[i,j]*S[k,j,i])", "A", types=TYPES)
    text = d.index_notation()
    assert text.endswith("-> [i,j]") or "sum_" in text, text
    inner = re.findall(r"sigmoid\(([^()]*)\)", text)
    assert len(inner) == 2 and inner[0] == inner[1], text
    assert not _bound(inner[0]) & {"i", "j", "k"}, text


def test_a_scalar_part_beside_a_matrix_in_matrix_notation_is_closed():
    """sigmoid(sum_ijk T[i,j,k]*S[k,j,i])*A: without -> [] the product would be read in index
    notation, where A is a matrix without indices."""
    e = mc.parse("sigmoid(sum_ijk T[i,j,k]*S[k,j,i])*A[i,j]", types=TYPES)
    text = str(e)
    assert text.endswith("*A"), text
    reads_back(text, sigmoid(np.einsum("ijk,kji->", T, S)) * A)
    # Alone, the scalar needs no -> []: it is the whole text.
    alone = mc.parse("sigmoid(sum_ijk T[i,j,k]*S[k,j,i])", types=TYPES)
    assert "->" not in str(alone) and "->" not in alone.index_notation()


def test_a_sum_binds_its_indices_inside_parenthesised_factors():
    """sum_a (...)*v[a]: inside, a is the sum's index wherever written (docs/conventions.md), so
    the printed derivative below, whose parenthesised term writes a three times, reads back."""
    x, y, z = VALUES["v"], VALUES["v"] ** 2, np.arange(3.0) - 1
    types = {"x": (3,), "y": (3,), "z": (3,)}
    values = {"x": x, "y": y, "z": z}
    np.testing.assert_allclose(mc.parse("sum_i (x[i]*y[i])*z[i]", types=types).evaluate(values), np.sum(x * y * z))
    np.testing.assert_allclose(mc.parse("(x[i]*y[i])*z[i]", types=types).evaluate(values), (x @ y) * z)
    # Found by the random round trips: d/du of this prints sum_ab ((sum_cd delta(j,a)*...
    # sigmoid(u[l]*v[a]*u[b])*(1 - sigmoid(u[l]*v[a]*u[b]))) + ...)*v[a]*u[b] -> [i,j,k,l].
    e = mc.parse("sum_k v[b]*sigmoid((u[i2]*v[j2]*u[a2]))*B[b,k] + u[i2]*v[j2]*u[a2]", types=TYPES)
    d = mc.derivative(e, "u")
    want = d.evaluate(VALUES)
    for printed in (d.index_notation(), str(d)):
        reads_back(printed, want)
