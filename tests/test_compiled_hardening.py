"""Issue 9, compiled side: several ``wrt`` with structured results, hostile variable names, and the
policy for domain errors (a non-finite result is an error) in generated code.

References are independent of the code generator: the interpreter (``mc.derivative(...).evaluate``)
and central finite differences written here.
"""

from __future__ import annotations

import keyword

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

import matrixcalculus as mc
from matrixcalculus.compile.structured import Factored
from matrixcalculus.errors import EvaluationError, MatrixCalculusError, ParseError

from .conftest import require

SYM = {"S": "symmetric matrix"}
TYPES = {"A": "matrix", "B": "matrix", "S": "symmetric matrix", "x": "vector"}


def _inputs(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(3, 3)) * 0.5
    return {
        "A": rng.normal(size=(3, 3)) * 0.5,
        "B": rng.normal(size=(3, 3)) * 0.5,
        "S": s + s.T,
        "x": rng.normal(size=3) * 0.5,
    }


def _dense(a: object) -> np.ndarray:
    return np.asarray(a.dense() if isinstance(a, Factored) else a, dtype=float)


def _direction(name: str, value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = rng.normal(size=value.shape)
    return (d + d.T) / 2 if name == "S" else d  # a symmetric variable moves symmetrically


def _fd_first(f: mc.Expression, values: dict, name: str, d: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central difference of f along d in variable ``name``."""
    plus = {**values, name: values[name] + h * d}
    minus = {**values, name: values[name] - h * d}
    return (np.asarray(f.evaluate(plus)) - np.asarray(f.evaluate(minus))) / (2 * h)


def _fd_second(f: mc.Expression, values: dict, name: str, d: np.ndarray, h: float = 1e-4) -> float:
    """Second central difference of a scalar f along d: d' H d, from values alone."""
    plus = {**values, name: values[name] + h * d}
    minus = {**values, name: values[name] - h * d}
    return float((f.evaluate(plus) - 2 * f.evaluate(values) + f.evaluate(minus)) / h**2)


def _along(jac: np.ndarray, d: np.ndarray) -> np.ndarray:
    """A derivative (numerator layout: f.shape + w.shape) applied to a direction of w."""
    return np.tensordot(jac, d, axes=d.ndim)


# ------------------------------------------------------------------ finding 1: several wrt


def test_issue_example_kronecker_factor_is_not_reused_in_an_array_sum() -> None:
    values = _inputs(0)
    fn = mc.compile("B*(A + B)", wrt=["A", "B"], dense=True)
    value, (d_a, d_b) = fn(values)
    a, b = values["A"], values["B"]
    np.testing.assert_allclose(value, b @ (a + b))
    rng = np.random.default_rng(1)
    for name, got in (("A", d_a), ("B", d_b)):
        d = rng.normal(size=(3, 3))
        moved = {**values, name: values[name] + d}
        # The function is quadratic: its change along d is J d + (second-order part, exact below).
        exact = moved["B"] @ (moved["A"] + moved["B"]) - value
        second = (d @ d) if name == "B" else np.zeros((3, 3))
        np.testing.assert_allclose(_along(got, d), exact - second, atol=1e-12)


@pytest.mark.parametrize(
    ("f", "wrt"), [("S + B", ["B", "S"]), ("(S .* S)*(A + S)", ["A", "S"]), ("B*(A + B)", ["B", "A"])]
)
@pytest.mark.parametrize("dense", [True, False])
def test_issue_examples_with_symmetric_variables_match_the_interpreter(f: str, wrt: list[str], dense: bool) -> None:
    values = _inputs(2)
    got = mc.compile(f, wrt=wrt, types=SYM, dense=dense)(values)[1]
    want = mc.derivative(f, wrt, types=SYM)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(_dense(g), w.evaluate(values), atol=1e-12)


@st.composite
def _matrix(draw: st.DrawFn, depth: int = 2) -> str:
    leaves = ["A", "B", "S", "(x*x')"]
    if depth == 0:
        return draw(st.sampled_from(leaves))
    kind = draw(st.sampled_from(["leaf", "leaf", "+", "*", ".*", "'", "tanh", "scale"]))
    if kind == "leaf":
        return draw(st.sampled_from(leaves))
    a = draw(_matrix(depth - 1))
    if kind == "'":
        return f"({a})'"
    if kind == "tanh":
        return f"tanh({a})"
    if kind == "scale":
        return f"0.5*({a})"
    return f"({a} {kind} {draw(_matrix(depth - 1))})"


@st.composite
def _problem(draw: st.DrawFn) -> tuple[str, bool]:
    m = draw(_matrix())
    scalar = draw(
        st.sampled_from([f"sum({m})", f"tr({m})", f"x'*({m})*x", f"sum(tanh(({m})*x))", f"tr(({m})*({m})')", None])
    )
    return (scalar, True) if scalar is not None else (m, False)


@given(
    _problem(),
    st.integers(0, 2**32 - 1),
    st.lists(st.sampled_from("ABSx"), min_size=1, max_size=4, unique=True),
    st.booleans(),
)
def test_several_wrt_compiled_equals_interpreted_equals_finite_differences(problem, seed, wrt, dense) -> None:
    text, scalar = problem
    f = mc.parse(text, types=TYPES)
    # A wrt that is not in f has a zero derivative: still a useful case (it needs its own size).
    wrt = [w for w in wrt if w in f.variables] or [sorted(f.variables)[0]]
    kinds = ("value", "gradient", "hessian") if scalar else ("value", "gradient")
    note(f"f = {text}  wrt = {wrt}  dense = {dense}")
    values = {k: v for k, v in _inputs(seed).items() if k in f.variables}
    fn = mc.compile(f, wrt=wrt, derivatives=kinds, types=TYPES, dense=dense)
    got = fn(values)
    np.testing.assert_allclose(_dense(got[0]), f.evaluate(values), rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(seed)
    for order in range(1, len(kinds)):
        part = got[order] if len(wrt) > 1 else (got[order],)
        want = mc.derivative(f, wrt, types=TYPES, order=order)
        want = want if isinstance(want, tuple) else (want,)
        if order == 2:
            # A list at order 2 is every block; compile's "hessian" is each variable's own block.
            want = tuple(want[k][k] for k in range(len(wrt)))
        for name, g, w in zip(wrt, part, want, strict=True):
            g = _dense(g)
            if not dense and order == 2:
                assert isinstance(part[wrt.index(name)], Factored | np.ndarray | np.floating)
            reference = np.asarray(w.evaluate(values), dtype=float)
            scale = max(1.0, float(np.max(np.abs(reference), initial=0.0)))
            np.testing.assert_allclose(
                g, reference, rtol=1e-9, atol=1e-11 * scale, err_msg=f"order {order} w.r.t. {name}"
            )
            d = _direction(name, values[name], rng)
            if order == 1:
                np.testing.assert_allclose(
                    _along(g, d),
                    _fd_first(f, values, name, d),
                    rtol=1e-5,
                    atol=1e-6 * scale,
                    err_msg=f"gradient w.r.t. {name} vs FD",
                )
            else:
                fd = _fd_second(f, values, name, d)
                np.testing.assert_allclose(
                    float(np.sum(_along(g, d) * d)),
                    fd,
                    rtol=1e-3,
                    atol=1e-3 * scale,
                    err_msg=f"Hessian w.r.t. {name} vs FD",
                )


# ------------------------------------------------------------------ finding 2: names

HOSTILE = [
    "t0",
    "t1",
    "t2",
    "_n",
    "_m",
    "xp",
    "np",
    "jax",
    "torch",
    "_device",
    "_softmax",
    "_logsumexp",
    "_logdet",
    "derivatives",
    "lambda",
    "None",
    "True",
    "if",
    "class",
    "def",
    "return",
    "sum",
    "print",
    "max",
    "float",
    "__debug__",
    "_",
    "match",
    "x_",
    "lambda_",
    "xp_",
    "t0_",
    "uff58_",
]


def _identifier() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,6}\Z")


def test_issue_example_variable_named_like_a_temporary() -> None:
    values = {"t0": np.array([0.3, -0.2, 0.5]), "A": np.arange(9.0).reshape(3, 3) / 10}
    f = "t0'*A*t0 + sum(exp(t0))"
    value, grad = mc.compile(f, "t0")(values)
    np.testing.assert_allclose(value, values["t0"] @ values["A"] @ values["t0"] + np.exp(values["t0"]).sum())
    np.testing.assert_allclose(grad, mc.gradient(f, "t0").evaluate(values))


@pytest.mark.parametrize("name", ["lambda", "None", "if", "class", "_n", "xp", "_softmax", "sum", "print"])
def test_keywords_and_internal_names_compile(name: str) -> None:
    f = f"sum(exp({name})) + logsumexp({name}) + sum(softmax({name}) .* {name})"
    values = {name: np.array([0.1, -0.4, 0.7])}
    types = {name: "vector"}  # lambda would be a scalar, None a matrix by name
    got = mc.compile(f, name, types=types)(values)
    want = (mc.parse(f, types=types).evaluate(values), mc.gradient(f, name, types=types).evaluate(values))
    np.testing.assert_allclose(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1])


def test_names_python_would_fold_together_stay_apart() -> None:
    # "ｘ" (fullwidth) is read by Python as "x": the parser rejects it, but a wrt name reaches codegen.
    fn = mc.compile("sum(exp(x))", wrt=["x", "ｘ"])
    value, (gx, gy) = fn({"x": np.zeros(3), "ｘ": np.zeros(2)})
    assert value == 3.0 and gx.tolist() == [1.0, 1.0, 1.0] and gy.tolist() == [0.0, 0.0]
    with pytest.raises(MatrixCalculusError):
        mc.vector("ｘ")


def test_ordinary_names_read_as_typed() -> None:
    source = mc.codegen("W1'*x + sum(A*x) + mean(x)", wrt="x", types={"W1": "vector"})
    assert "def derivatives(W1, x, A):" in source
    assert "W1_" not in source and "x_" not in source and "_n = W1.shape[0]" in source


@given(
    st.lists(st.one_of(st.sampled_from(HOSTILE), _identifier()), min_size=3, max_size=3, unique=True),
    st.integers(0, 2**32 - 1),
)
def test_hostile_names_compile_to_the_evaluated_numbers(names: list[str], seed: int) -> None:
    u, v, m = names
    text = f"sum(exp({u})) + {u}'*{m}*{v} + logsumexp({v}) + sum(softmax({u}) .* {v}) + logdet(eye(3) + {m}'*{m})"
    types = {u: "vector", v: "vector", m: "matrix"}
    try:
        f = mc.parse(text, types=types)
    except MatrixCalculusError:
        # Names the parser refuses (function names like exp) never reach codegen.
        assume(False)
    assume(set(f.variables) == {u, v, m})
    rng = np.random.default_rng(seed)
    values = {u: rng.normal(size=3), v: rng.normal(size=3), m: rng.normal(size=(3, 3))}
    note(text)
    fn = mc.compile(f, wrt=[u, v, m], derivatives=("value", "gradient"), types=types)
    value, grads = fn(values)
    np.testing.assert_allclose(value, f.evaluate(values), rtol=1e-12)
    for g, w in zip(grads, mc.derivative(f, [u, v, m], types=types), strict=True):
        np.testing.assert_allclose(g, w.evaluate(values), rtol=1e-10, atol=1e-12)
    compile(mc.codegen(f, wrt=[u, v, m], types=types), "<generated>", "exec")  # standalone source is valid
    for kw in keyword.kwlist:
        assert f"def derivatives({kw}," not in mc.codegen(f, wrt=[u], types=types)


# ------------------------------------------------------------------ finding 3 and 8: domain errors


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE values with the check off
def test_logdet_of_a_negative_determinant_raises_instead_of_zero() -> None:
    fn = mc.compile("logdet(-eye(3)) + sum(x)", wrt="x")
    with pytest.raises(EvaluationError, match="logdet"):
        fn({"x": np.ones(3)})
    with pytest.raises(EvaluationError, match="logdet"):
        mc.compile("logdet(X)", wrt="X")({"X": -np.eye(3)})
    value, _ = mc.compile("logdet(X)", wrt="X", check_finite=False)({"X": -np.eye(3)})
    assert np.isnan(value)  # IEEE: the log of a negative determinant is not a number, not 0


def test_zero_to_the_minus_one_is_a_library_error_not_zero_division() -> None:
    # 0^-1 names no finite value: the parser refuses it at the column, before any code exists.
    with pytest.raises(ParseError, match="division by zero at column 2"):
        mc.compile("0^-1*sum(x)", wrt="x")


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE values with the check off
def test_division_by_a_zero_entry_follows_the_policy() -> None:
    fn = mc.compile("sum(x ./ y)", wrt="x")
    values = {"x": np.array([1.0, 2.0, 3.0]), "y": np.array([1.0, 0.0, 2.0])}
    with pytest.raises(EvaluationError, match=r"division by zero: y\[1\] = 0"):
        fn(values)
    value, grad = mc.compile("sum(x ./ y)", wrt="x", check_finite=False)(values)
    assert value == np.inf and grad.tolist() == [1.0, np.inf, 0.5]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE values with the check off
def test_constant_powers_of_literals_are_computed_as_arrays() -> None:
    # (-1)^(1/2) in Python float arithmetic is complex, 10^400 overflows: arrays give nan/inf.
    with pytest.raises(EvaluationError):
        mc.compile("(-1)^0.5*sum(x)", wrt="x")({"x": np.ones(2)})
    value, _ = mc.compile("(-1)^0.5*sum(x)", wrt="x", check_finite=False)({"x": np.ones(2)})
    assert np.isnan(value)
    value, _ = mc.compile("4^0.5*sum(x)", wrt="x")({"x": np.ones(2)})
    assert value == 4.0


def test_constants_beyond_float64_are_a_library_error() -> None:
    # A folded literal product beyond float64 is refused by the parser; a power that is left
    # unfolded overflows when computed, and the finite check names it.
    with pytest.raises(ParseError, match="too large"):
        mc.codegen("1e308*1e308*sum(x)", wrt="x")
    with pytest.raises(EvaluationError, match=r"power overflows in 2\^2000"):
        mc.compile("2^2000*sum(x)", wrt="x")({"x": np.ones(3)})


def test_stable_softplus_stays_finite_compiled() -> None:
    value, grad = mc.compile("sum(log(1 + exp(x)))", wrt="x")({"x": np.array([1000.0, -1000.0, 0.0])})
    np.testing.assert_allclose(value, 1000 + np.log(2))
    np.testing.assert_allclose(grad, [1.0, 0.0, 0.5])


def test_singular_inverse_is_a_library_error_naming_inv() -> None:
    fn = mc.compile("sum(inv(A)*x)", wrt="x")
    with pytest.raises(EvaluationError, match="inv"):
        fn({"A": np.zeros((3, 3)), "x": np.ones(3)})


def test_non_finite_output_names_the_operation_as_evaluate_does() -> None:
    # exp overflows in both paths; the compiled call reruns the interpreter to name the operation.
    fn = mc.compile("sum(exp(x))", wrt="x")
    with pytest.raises(EvaluationError, match=r"exp overflows: x\[0\] = 1000 in exp\(x\) \(computing the value\)"):
        fn({"x": np.array([1000.0, 0.0])})


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # IEEE values with the check off
@pytest.mark.parametrize("backend", ["torch", "jax", "dask"])
def test_other_backends_apply_the_policy(backend: str) -> None:
    if backend == "dask":
        da = require("dask.array")
        x_bad, x_ok = da.from_array(np.array([1000.0, 0.0]), chunks=1), da.from_array(np.zeros(2), chunks=1)
        fn = mc.compile("sum(exp(x))", wrt="x", backend="dask")
        value, grad = fn({"x": x_ok})
        assert float(value.compute()) == 2.0
        value, grad = fn({"x": x_bad})  # lazy: the check runs when computed
        with pytest.raises(EvaluationError, match="exp overflows"):
            grad.compute()
        with pytest.raises(EvaluationError, match="logdet"):
            mc.compile("logdet(X)", wrt="X", backend="dask")({"X": da.from_array(-np.eye(3))})[0].compute()
        return
    lib = require(backend)
    if backend == "jax":
        lib.config.update("jax_enable_x64", True)
        arr = lib.numpy.asarray
    else:

        def arr(a: np.ndarray) -> object:
            return lib.tensor(a, dtype=lib.float64)

    with pytest.raises(EvaluationError, match="logdet"):
        mc.compile("logdet(X)", wrt="X", backend=backend)({"X": arr(-np.eye(3))})
    with pytest.raises(EvaluationError, match="exp overflows"):
        mc.compile("sum(exp(x))", wrt="x", backend=backend)({"x": arr(np.array([1000.0, 0.0]))})
    with pytest.raises(EvaluationError, match=r"inv of a singular matrix|inv: "):
        mc.compile("sum(inv(A)*x)", wrt="x", backend=backend)({"A": arr(np.zeros((3, 3))), "x": arr(np.ones(3))})
    value, _ = mc.compile("(-1)^0.5*sum(x)", wrt="x", backend=backend, check_finite=False)({"x": arr(np.ones(2))})
    assert np.isnan(float(value))
    value, grad = mc.compile("sum(log(1 + exp(x)))", wrt="x", backend=backend)({"x": arr(np.array([1000.0, -1000.0]))})
    np.testing.assert_allclose(float(value), 1000.0)
