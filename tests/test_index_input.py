"""Index notation as input (issue 14): ``sum_j A[i,j]*x[j]``, ``T[i,j,k]*u[i]*v[j]``,
``delta(i,k)``, ``-> [k,i]``; what it means, the errors it gives, and the round trip: every
result printed in index notation parses back to the same function.

The expected values come from the definitions of the notation (Einstein's convention: an index
written twice in a product is summed) evaluated with ``numpy.einsum``, never from the library.
"""

from __future__ import annotations

import string
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import matrixcalculus as mc
from matrixcalculus.transform.simplify import simplify

warnings.simplefilter("ignore", mc.MatrixCalculusNotice)

RNG = np.random.default_rng(14)
# Fixed, distinct sizes so that a wrong axis order cannot go unnoticed.
TYPES = {
    "T": (2, 3, 4),
    "S": (4, 3, 2),
    "A": (2, 3),
    "B": (3, 4),
    "Q": (3, 3),
    "u": (2,),
    "v": (3,),
    "w": (4,),
    "c": "scalar",
}
VALUES = {name: RNG.standard_normal(() if spec == "scalar" else spec) for name, spec in TYPES.items()}
# Index letters by the dimension they run over (two each, so that a letter may be reused).
LETTERS = {2: "ia", 3: "jb", 4: "kd"}
# A function's argument uses letters of its own, tagged (i1, j1 ...): the size of each.
DIMS = {f"{x}{tag}": size for size, letters in LETTERS.items() for x in letters for tag in ("", "1", "2", "3")}


def parse(text: str, **types: object) -> mc.Expression:
    return mc.parse(text, types=types or None)


def einsum(spec: str, *names: str) -> np.ndarray:
    return np.einsum(spec, *(VALUES[n] for n in names))


# ------------------------------------------------------------------------------ meaning


@pytest.mark.parametrize(
    ("index", "matrix"),
    [
        ("sum_j A[i,j]*x[j]", "A*x"),  # the printed form, the sum explicit
        ("A[i,j]*x[j]", "A*x"),  # Einstein: j written twice is summed
        ("x[i]*y[i]", "x'*y"),
        ("x[i]*y[j]", "x*y'"),
        ("x[i]*y[i] -> [i]", "x .* y"),  # listed as free: not summed
        ("A[i,j]*B[j,k]", "A*B"),
        ("A[i,j]*B[j,k] -> [k,i]", "(A*B)'"),
        ("A[j,i]", "A"),  # the free indices in order of first appearance are the axes
        ("A[i,j] -> [j,i]", "A'"),
        ("A[i,i]", "tr(A)"),
        ("sum_ij A[i,j]", "sum(A)"),
        ("2*sum_j A[i,j]*x[j] + y[i]", "2*A*x + y"),
        ("-sum_j A[i,j]*x[j]", "-A*x"),
        ("--x[i]", "x"),
        ("-x[i]*-y[i]", "x'*y"),  # signs are factors of the term: i is summed
        ("sum_i -Q[i,i]", "-tr(Q)"),
        ("A[i,j]/x[j]", "A*(1 ./ x)"),
        ("x[i]^2", "x.^2"),
        ("exp(A[i,j]*x[j])", "exp(A*x)"),
        ("max(0, A[i,j])", "relu(A)"),
        ("(A[i,j] > 0)*A[i,j] -> [i,j]", "(A > 0) .* A"),
        ("x'*(A[i,j]*y[j] -> [i])", "x'*(A*y)"),  # -> ends index notation: a vector in matrix notation
        ("inv(A[i,j]*B[j,k] -> [i,k])", "inv(A*B)"),
        ("(A*B)[i,j]*x[j]", "A*B*x"),  # an entry of a matrix expression
        # in matrix notation, index notation stands for the tensor of its free indices in order
        ("softmax(A[i,j]*x[j])", "softmax(A*x)"),
        ("(A[i,j])'", "A'"),
        ("(A[i,j]*B[j,k])'", "(A*B)'"),
        ("A[i,j]*B[j,k] + C", "A*B + C"),  # a matrix in a sum takes the free indices in order
    ],
)
def test_index_notation_is_the_same_graph_as_matrix_notation(index, matrix):
    """Hash-consed graphs: the same contraction written either way is the same node."""
    assert parse(index).node is parse(matrix).node


def test_sum_over_an_index_written_once_is_a_row_sum():
    e = parse("sum_j A[i,j]", A=(2, 3))
    assert np.allclose(e.evaluate({"A": VALUES["A"]}), VALUES["A"].sum(axis=1))


def test_delta_is_the_identity():
    assert mc.equal(parse("delta(i,j)*x[j]"), "x")
    e = parse("delta(i,k)*x[j]", x=(3,))  # the free indices in order of first appearance: i, k, j
    n = e.shape[0]
    assert e.shape == (n, n, 3)
    value = e.evaluate({"x": VALUES["v"]}, dims={n: 2})
    assert np.allclose(value, np.einsum("ik,j->ikj", np.eye(2), VALUES["v"]))


@pytest.mark.parametrize(
    ("text", "spec", "names"),
    [
        ("T[i,j,k]*u[i]*v[j]", "ijk,i,j->k", ("T", "u", "v")),
        ("T[i,j,k]*w[k]", "ijk,k->ij", ("T", "w")),
        ("sum_ijk T[i,j,k]*S[k,j,i]", "ijk,kji->", ("T", "S")),
        ("T[i,j,k]*S[k,b,i]", "ijk,kbi->jb", ("T", "S")),  # i and k summed, j and b free in that order
        ("T[i,j,k]*A[i,b] -> [b,k,j]", "ijk,ib->bkj", ("T", "A")),
        ("sum_i T[i,j,k]*u[i]*u[i]", "ijk,i,i->jk", ("T", "u", "u")),  # three factors: sum_i says so
        ("Q[j,j]*T[i,b,k]", "jj,ibk->ibk", ("Q", "T")),
    ],
)
def test_tensor_contractions_evaluate_as_einsum(text, spec, names):
    e = mc.parse(text, types=TYPES)
    assert np.allclose(e.evaluate(VALUES), einsum(spec, *names))


def test_functions_apply_to_entries():
    e = mc.parse("tanh(T[i,j,k]) + T[i,j,k]^2", types=TYPES)
    assert e.node is mc.parse("tanh(T) + T.^2", types=TYPES).node
    assert np.allclose(e.evaluate(VALUES), np.tanh(VALUES["T"]) + VALUES["T"] ** 2)


def test_terms_are_aligned_by_index_name():
    """T[i,j,k] + S[k,j,i]: the second term's axes are reordered to the first's."""
    e = mc.parse("T[i,j,k] + S[k,j,i]", types=TYPES)
    assert np.allclose(e.evaluate(VALUES), VALUES["T"] + VALUES["S"].transpose(2, 1, 0))


def test_parentheses_make_a_factor():
    """(x[i]*y[i])*z[i]: the parenthesised product sums i, the outer i is free."""
    e = parse("(u[i]*u[i])*u[i]", u=(2,))
    u = VALUES["u"]
    assert np.allclose(e.evaluate({"u": u}), (u @ u) * u)


def test_where_binding_with_indices():
    """The printer binds a shared tensor as t1[i,j,k] = ...; the form parses."""
    text = "t1[i,j,k]*w[k] + t1[i,j,d]*w[d] where t1[i,j,k] = T[i,j,k]*c"
    e = mc.parse(text, types=TYPES)
    assert np.allclose(e.evaluate(VALUES), 2 * VALUES["c"] * einsum("ijk,k->ij", "T", "w"))


def test_zeros_and_ones_of_any_order():
    e = mc.parse("zeros(2, 3, 4)")
    assert e.shape == (2, 3, 4)
    assert e.evaluate({}).shape == (2, 3, 4)
    assert mc.parse("ones(m, n, p)").shape == ("m", "n", "p")


# ------------------------------------------------------------------------------ errors


def error(text: str, cls: type = mc.MatrixCalculusError, **types: object) -> mc.MatrixCalculusError:
    with pytest.raises(cls) as info:
        mc.parse(text, types=types or None)
    return info.value


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        # an index used three times: at the third use
        ("x[i]*y[i]*z[i]", 13, ["index i", "3 times", "sum_i", "->"]),
        ("A[i,j]*x[j]*y[j]", 15, ["index j", "3 times"]),
        # the free indices of the terms of a sum differ: at the operator
        ("A[i,j] + x[i]", 8, ["free indices differ", "i, j", "has i"]),
        ("A[i,j]*x[j] - y[j]", 13, ["free indices differ"]),
        # a sum over an index its term does not use
        ("sum_k A[i,j]*x[j]", 5, ["sum_k", "k", "does not use"]),
        # an explicit output that does not match the free indices
        ("A[i,j]*B[j,k] -> [i]", 15, ["-> [i]", "k free but not listed"]),
        ("A[i,j] -> [i,j,k]", 8, ["k listed but not free"]),
        # a number is no index
        ("x[0]", 3, ["'0'", "index is a name"]),
        ("A[(i,k),j]", 3, ["pair index", "product dimension"]),
    ],
)
def test_index_errors_point_at_their_column(text, column, words):
    exc = error(text, mc.ParseError)
    assert exc.column == column, str(exc)
    for word in words:
        assert word in str(exc), f"{word!r} not in {exc}"


def test_wrong_number_of_indices_is_an_error_at_the_entry():
    exc = error("T[i,j]*x[j]", mc.MatrixCalculusError, T="3-tensor")
    assert exc.column == 2
    assert "2 indices" in str(exc) and "3-tensor" in str(exc)
    exc = error("A[i,j,k]*x[k]")
    assert exc.column == 2
    assert 'types={"A": "3-tensor"}' in str(exc)


def test_dimension_clash_between_two_uses_of_an_index():
    """i runs over A's 3 rows and x's 4 entries: an error at the second i."""
    exc = error("A[i,j]*x[i]", mc.ShapeError, A=(3, 5), x=(4,))
    assert exc.column == 10
    assert "index i" in str(exc) and "different" in str(exc)
    exc = error("T[i,j,k] + S[i,j,k]", mc.ShapeError, T=(2, 3, 4), S=(4, 3, 2))
    assert "index" in str(exc)


def test_a_tensor_in_matrix_notation_is_an_error_with_the_index_form():
    exc = error("T*A", mc.ShapeError, T="3-tensor")
    assert "index notation" in str(exc) and "T[i,j,k]" in str(exc)
    exc = error("T'", mc.ShapeError, T="3-tensor")
    assert exc.column == 2 and "-> [k,j,i]" in str(exc)


def test_a_vector_inside_index_notation_needs_its_index():
    exc = error("A[i,j]*x", mc.ShapeError, x=(3,))
    assert "x[i" in str(exc) and "inside index notation" in str(exc)


# ------------------------------------------------------------------------------ round trip


def _same_function(back: mc.Expression, d: mc.Expression) -> bool:
    """The same graph, else the same canonical form, else equal values at random inputs. A
    delta whose indices occur in no other factor runs over a dimension the text does not name:
    it is read with a fresh name, bound here to the size the derivative has."""
    if back.node is d.node or simplify(back.node) is simplify(d.node):
        return True
    dims = {b: s for b, s in zip(back.shape, d.shape, strict=True) if b != s and isinstance(b, str)}
    assert all(isinstance(s, int) for s in d.shape), "declare numeric shapes to compare values"
    rng = np.random.default_rng(0)
    values = {name: rng.standard_normal(v.shape) for name, v in d.variables.items()}
    for name, v in back.variables.items():
        values.setdefault(name, rng.standard_normal(tuple(dims.get(s, s) for s in v.shape)))
    return bool(np.allclose(back.evaluate(values, dims=dims or None), d.evaluate(values), rtol=1e-9, atol=1e-12))


@pytest.mark.parametrize(
    ("f", "wrt", "order", "types"),
    [
        ("A*x", "A", 1, {"A": (2, 3), "x": (3,)}),
        ("R'*R", "R", 1, {"R": (2, 3)}),
        ("sum(exp(x))", "x", 3, {"x": (3,)}),
        ("tanh(W*x)", "W", 2, {"W": (2, 3), "x": (3,)}),
        ("diag(x)", "x", 1, {"x": (3,)}),
        ("inv(A)", "A", 1, {"A": (3, 3)}),
        ("log(x'*A*x)", "A", 2, {"A": (3, 3), "x": (3,)}),
        ("x'*A*x", "A", 2, {"A": (3, 3), "x": (3,)}),
        ("softmax(W*x)", "W", 1, {"W": (2, 3), "x": (3,)}),
        ("T[i,j,k]*u[i]*v[j]", "T", 1, {"T": (2, 3, 4), "u": (2,), "v": (3,)}),
        ("tanh(T[i,j,k]*w[k])", "T", 2, {"T": (2, 3, 4), "w": (4,)}),
        ("sum(tanh(X[b,t,d]*W[d,e]))", "W", 2, {"X": (2, 3, 4), "W": (4, 5)}),
        ("sum(tanh(X[b,t,d]*W[d,e]))", "X", 2, {"X": (2, 3, 4), "W": (4, 5)}),
    ],
)
def test_printed_derivatives_parse_back(f, wrt, order, types):
    """The index notation of a result is input syntax for the same function."""
    d = mc.derivative(f, wrt, order=order, types=types)
    back = mc.parse(d.index_notation(), types=types)
    assert len(back.shape) == len(d.shape)
    assert _same_function(back, d), d.index_notation()


@pytest.mark.parametrize(
    ("f", "text"),
    [
        # the worked example of docs/conventions.md: dA*x/dA
        ("A*x", "delta(i,j)*x[k]"),
        # diag(x) by x: delta(i,k)*delta(j,k) reads as a sum over k, so the axes are listed
        ("diag(x)", "delta(i,k)*delta(j,k) -> [i,j,k]"),
    ],
)
def test_printed_forms(f, text):
    d = mc.derivative(f, "A" if "A" in f else "x")
    assert d.index_notation() == text


# Random tensor expressions: the text, its free indices in order, and its value by einsum.
_FACTORS = {"T": (2, 3, 4), "S": (4, 3, 2), "A": (2, 3), "B": (3, 4), "Q": (3, 3), "u": (2,), "v": (3,), "w": (4,)}
_VECTORS = {2: "u", 3: "v", 4: "w"}
_FUNCTIONS = {"tanh": np.tanh, "sin": np.sin, "sigmoid": lambda z: 1 / (1 + np.exp(-z))}


def _einsum(specs: list[list[str]], arrays: list[np.ndarray], out: list[str]) -> np.ndarray:
    """numpy.einsum with index names of any length (mapped to letters)."""
    letter = {name: string.ascii_letters[k] for k, name in enumerate(dict.fromkeys(x for s in specs for x in s))}
    spec = ",".join("".join(letter[x] for x in s) for s in specs) + "->" + "".join(letter[x] for x in out)
    return np.einsum(spec, *arrays)


@st.composite
def _term(draw: st.DrawFn, depth: int = 0, tag: str = "") -> tuple[str, list[str], np.ndarray]:
    """A product of 1-3 factors (entries of variables, or a function of a smaller term), each
    letter used at most twice; optionally sum_ over some free indices and a number in front.

    A function's argument is a term of its own with letters of its own (``tag``: i1, j1, ...), so
    that the indices it sums are no index of the outer term (an index listed by -> [...] is
    free wherever it is written)."""
    letters_of = {size: tuple(f"{x}{tag}" for x in LETTERS[size]) for size in LETTERS}
    uses: dict[str, int] = {}
    texts: list[str] = []
    specs: list[list[str]] = []
    arrays: list[np.ndarray] = []
    for _ in range(draw(st.integers(1, 3))):
        if depth < 1 and draw(st.booleans()) and draw(st.booleans()):
            inner_text, inner_free, inner_value = draw(_term(depth + 1, str(len(texts) + 1)))
            if any(uses.get(letter, 0) >= 2 for letter in inner_free):
                continue
            name = draw(st.sampled_from(sorted(_FUNCTIONS)))
            texts.append(f"{name}({inner_text})")
            letters = inner_free
            arrays.append(_FUNCTIONS[name](inner_value))
        else:
            name = draw(st.sampled_from(sorted(_FACTORS)))
            letters = []
            for size in _FACTORS[name]:
                free_letters = [x for x in letters_of[size] if uses.get(x, 0) + letters.count(x) < 2]
                if not free_letters:
                    break
                letters.append(draw(st.sampled_from(free_letters)))
            if len(letters) != len(_FACTORS[name]):
                continue
            texts.append(f"{name}[{','.join(letters)}]")
            arrays.append(VALUES[name])
        for letter in letters:
            uses[letter] = uses.get(letter, 0) + 1
        specs.append(list(letters))
    if not texts:
        first = letters_of[2][0]
        texts, specs, arrays, uses = [f"u[{first}]"], [[first]], [VALUES["u"]], {first: 1}
    order = list(dict.fromkeys(x for spec in specs for x in spec))
    free = [x for x in order if uses[x] == 1]
    marked = [x for x in free if draw(st.booleans()) and draw(st.booleans())]
    free = [x for x in free if x not in marked]
    value = _einsum(specs, arrays, free)
    text = "*".join(texts)
    coeff = draw(st.sampled_from([1, 2, -1]))
    if coeff != 1:
        text, value = f"{coeff}*{text}", coeff * value
    if marked:
        text = f"sum_{','.join(marked) if any(len(x) > 1 for x in marked) else ''.join(marked)} {text}"
    return (f"({text})" if depth else text), free, value


@st.composite
def _expression(draw: st.DrawFn) -> tuple[str, list[str], np.ndarray]:
    """A term, maybe plus an outer product of vectors over the same free indices in another
    order, maybe with its free indices listed in another order by -> [...]."""
    text, free, value = draw(_term())
    if free and draw(st.booleans()):
        other = draw(st.permutations(free))
        text += " + " + "*".join(f"{_VECTORS[DIMS[x]]}[{x}]" for x in other)
        outer = _einsum([[x] for x in other], [VALUES[_VECTORS[DIMS[x]]] for x in other], free)
        value = value + outer
    if free and draw(st.booleans()):
        listed = draw(st.permutations(free))
        value = _einsum([free], [value], listed)
        text, free = f"{text} -> [{','.join(listed)}]", list(listed)
    return text, free, value


@given(_expression())
def test_random_tensor_expressions_round_trip(case):
    """Text -> graph has the einsum value; graph -> printed index notation -> graph is the same
    graph (identity, else the same canonical form, else equal values) with the same value."""
    text, free, expected = case
    e = mc.parse(text, types=TYPES)
    assert e.shape == tuple(DIMS[x] for x in free)
    assert np.allclose(e.evaluate(VALUES), expected), text
    printed = e.index_notation()
    back = mc.parse(printed, types=TYPES)
    assert back.node is e.node or simplify(back.node) is simplify(e.node) or mc.equal(back, e), (text, printed)
    assert np.allclose(back.evaluate(VALUES), expected), (text, printed)


@given(_expression())
def test_random_tensor_derivatives_print_back(case):
    """The derivative in T of a random expression, printed in index notation, reads back as the
    same function."""
    text, _, _ = case
    e = mc.parse(text, types=TYPES)
    wrt = next((name for name in ("T", "A", "u") if name in e.variables), None)
    if wrt is None:
        return
    d = mc.derivative(e, wrt)
    printed = d.index_notation()
    back = mc.parse(printed, types=TYPES)
    assert _same_function(back, d), (text, printed)


def test_index_letters_are_not_variables():
    """Indices live in brackets: an index i and a variable i do not meet."""
    e = mc.parse("A[i,j]*i[j]", types={"i": (3,), "A": (2, 3)})
    assert set(e.variables) == {"A", "i"}
    assert np.allclose(e.evaluate({"A": VALUES["A"], "i": VALUES["v"]}), VALUES["A"] @ VALUES["v"])


def test_batched_gradient_prints_compactly_and_reads_back():
    """d/dW sum(tanh(X[b,t,d]*W[d,e])) = sum_bt X[b,t,d]*(1 - tanh(Y)^2)[b,t,e]: the number 1
    of the sum is written as a number, and the text is the same graph when read."""
    types = {"X": "b x t x d", "W": "d x e"}
    grad = mc.gradient("sum(tanh(X[b,t,d]*W[d,e]))", "W", types=types)
    text = str(grad)
    assert "(1 - " in text and "ones(" not in text
    assert mc.parse(text, types=types).node is grad.node
