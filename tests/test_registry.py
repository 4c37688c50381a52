"""The function registry, record by record: every record works in every stage on every backend.

For each record in ``FUNCTIONS`` (the registry itself, never a list kept here) and each installed
backend: a call parses and infers to the expected shape; its value equals an independent reference
(NumPy, SciPy, ``math``); its first and second derivatives equal central finite differences of
that reference, on random inputs from the domain the record declares; and compiled code gives the
interpreter's value and derivatives. A record that lacks anything (an evaluation, a derivative, a
template, a spelling or definition for some dialect, a reference below) fails by its name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import matrixcalculus as mc
from matrixcalculus.compile.codegen import DIALECTS
from matrixcalculus.ir import graph as g
from matrixcalculus.ir import registry
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.registry import FunctionRecord, register
from matrixcalculus.render.printing import to_latex, to_text

try:  # SciPy is the independent reference where it has the function; math otherwise.
    import scipy.special as special
except ImportError:  # pragma: no cover - CI installs SciPy
    special = None


def _erf(x: Any) -> Any:
    if special is not None:
        return special.erf(x)
    return np.vectorize(math.erf, otypes=[float])(x)  # pragma: no cover


def _softmax(x: Any) -> Any:
    e = np.exp(x - x.max())
    return e / e.sum()


# Independent references: written from the definitions, not from the records' code.
REFERENCE: dict[str, Callable[..., Any]] = {
    "exp": np.exp,
    "log": np.log,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "tanh": np.tanh,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "sign": np.sign,
    "relu": lambda x: np.where(x > 0, x, 0.0),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.log(1 + np.exp(x)),
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "det": np.linalg.det,
    "logdet": lambda X: np.log(np.linalg.det(X)),
    "inv": np.linalg.inv,
    "norm1": lambda X: np.sum(np.abs(X)),
    "norm2": lambda X: np.sqrt(np.sum(X**2)),
    "softmax": _softmax,
    "logsumexp": lambda x: np.log(np.sum(np.exp(x))),
    "erf": _erf,
    # x * Phi(x), Phi the standard normal distribution function.
    "gelu": lambda x: x * (1 + _erf(x / math.sqrt(2))) / 2,
    "log1p": lambda x: np.log(1 + x),
    "expm1": lambda x: np.exp(x) - 1,
    "mean": lambda X: np.sum(X) / X.size,
    "kron": lambda A, B: _kron(A, B),
    "max": lambda a, b: np.where(a >= b, a, b),
    "min": lambda a, b: np.where(a <= b, a, b),
}


def _kron(A: Any, B: Any) -> Any:
    """kron(A, B)[(i,k),(j,l)] = A[i,j] B[k,l], rows and columns the pairs in row-major order."""
    if A.ndim == 1:
        return np.einsum("i,k->ik", A, B).reshape(-1)
    return np.einsum("ij,kl->ikjl", A, B).reshape(A.shape[0] * B.shape[0], A.shape[1] * B.shape[1])


BACKENDS = ("numpy", "dask", "torch", "jax")
NAMES = sorted(FUNCTIONS)
# The shape of each argument kind in these tests ("any" is a matrix: the most general case).
SHAPES = {"any": (3, 3), "scalar": (), "vector": (4,), "matrix": (3, 3), "square": (3, 3)}
# Records whose arguments are better drawn in shapes of their own: the factors of a Kronecker
# product of different sizes, not square, so that a transposed or swapped pair of axes shows.
ARGUMENT_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {"kron": ((2, 3), (3, 2))}


def _draw(record: FunctionRecord, kind: str, rng: np.random.Generator, shape: tuple[int, ...] | None = None) -> Any:
    """A random argument from the record's domain, away from its kinks and the domain's ends."""
    shape = SHAPES[kind] if shape is None else shape
    if record.elementwise:
        lo, hi = record.domain  # type: ignore[misc]
        lo, hi = max(lo, -2.0), min(hi, 2.0)
        margin = 0.1 * (hi - lo)
        x = rng.uniform(lo + margin, hi - margin, shape)
        for kink in record.kinks:
            # Away from a kink by more than the finite-difference step.
            x = np.where(np.abs(x - kink) < 0.2, kink + np.where(x >= kink, 0.2, -0.2) + 0.1 * (x - kink), x)
        return x
    z = rng.standard_normal(shape)
    if record.domain == "positive definite":
        return z @ z.T / 3 + np.eye(shape[0])
    if record.domain == "invertible":
        return z / 3 + 2 * np.eye(shape[0])
    if record.domain in ("any", "square"):
        return z
    raise AssertionError(f"{record.name}: no sampler for the domain {record.domain!r}")


def _case(name: str, scalar: bool = False) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The call's text, the declared types and random values for it."""
    record = FUNCTIONS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    names = [f"a{k}" for k in range(record.arity)]
    kinds = ["scalar" if scalar else kind for kind in record.arguments]
    shapes = tuple(SHAPES[k] for k in kinds)
    if not scalar:
        shapes = ARGUMENT_SHAPES.get(name, shapes)
    types = dict(zip(names, shapes, strict=True))
    values = {n: _draw(record, k, rng, shape) for n, k, shape in zip(names, kinds, shapes, strict=True)}
    return f"{name}({', '.join(names)})", types, values


def _reference(name: str, values: dict[str, Any]) -> Any:
    return np.asarray(REFERENCE[name](*values.values()), dtype=float)


def _finite_difference(
    f: Callable[[dict[str, Any]], Any], values: dict[str, Any], wrt: str, h: float = 1e-5
) -> np.ndarray:
    """d f / d wrt by central differences, in numerator layout (f's axes, then wrt's)."""
    x = np.asarray(values[wrt], dtype=float)
    columns = []
    for i in np.ndindex(x.shape or (1,)):
        step = np.zeros(x.size)
        step[np.ravel_multi_index(i, x.shape) if x.shape else 0] = h
        plus = {**values, wrt: x + step.reshape(x.shape)}
        minus = {**values, wrt: x - step.reshape(x.shape)}
        columns.append((np.asarray(f(plus)) - np.asarray(f(minus))) / (2 * h))
    out = np.stack(columns, axis=-1)
    return out.reshape(out.shape[:-1] + x.shape)


def _assert_close(got: Any, want: Any, what: str, tol: float = 1e-6) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    scale = 1 + np.max(np.abs(want), initial=0)
    assert np.max(np.abs(got - want), initial=0) <= tol * scale, f"{what}:\n{got}\nexpected\n{want}"


# ------------------------------------------------------------------------ completeness


@pytest.mark.parametrize("name", NAMES)
def test_record_is_complete(name: str) -> None:
    record = FUNCTIONS[name]
    missing = []
    if record.evaluate is None and record.definition is None:
        missing.append("an evaluation or a definition")
    if record.derivative is None:
        missing.append("a derivative")
    if name not in REFERENCE:
        missing.append("an independent reference in tests/test_registry.py")
    for dialect in DIALECTS:
        spelling = record.spelling(dialect)
        if spelling is None and record.definition is None:
            missing.append(f"a spelling or a definition for the {dialect} dialect")
            continue
        # Every helper a spelling calls is one the record gives that dialect.
        for helper in re.findall(r"(?<![\w.])(_\w+)\(", spelling or ""):
            if helper not in record.helper_sources(dialect):
                missing.append(f"the source of {helper} for the {dialect} dialect")
    latex = record.latex_template()
    text = record.text_template()
    for k in range(record.arity):
        if f"{{{k}}}" not in latex and f"{{p{k}}}" not in latex:
            missing.append(f"argument {k} in the LaTeX template {latex!r}")
        if f"{{{k}}}" not in text:
            missing.append(f"argument {k} in the text template {text!r}")
    assert not missing, f"the record {name!r} lacks " + "; ".join(missing)


def test_aliases_and_names_are_unique() -> None:
    seen: dict[str, str] = {}
    for record in FUNCTIONS.values():
        for word in (record.name, *record.aliases):
            assert word not in seen, f"{word!r} names both {seen[word]} and {record.name}"
            seen[word] = record.name


def test_an_alias_is_answered_with_the_name() -> None:
    for record in FUNCTIONS.values():
        for alias in record.aliases:
            with pytest.raises(mc.ParseError, match=f"did you mean '{record.name}'"):
                mc.parse(f"{alias}(x)")


# ------------------------------------------------------------------------ every stage


@pytest.mark.parametrize("name", NAMES)
def test_parse_infer_evaluate_against_the_reference(name: str) -> None:
    text, types, values = _case(name)
    expr = mc.parse(text, types=types)
    want = _reference(name, values)
    assert expr.shape == want.shape, f"{text}: inferred shape {expr.shape}, reference {want.shape}"
    _assert_close(expr.evaluate(values), want, f"value of {text}", 1e-12)
    # Printed in both notations by the record's templates, and the text reads back as the same call.
    assert mc.parse(str(expr), types=types).evaluate(values) == pytest.approx(want, rel=1e-12)
    assert to_latex(expr.node) and to_text(expr.node) == str(expr)


# An element-wise function is also checked on a scalar (its second derivative is then f'').
CALLS = [(name, False) for name in NAMES] + [(name, True) for name in NAMES if FUNCTIONS[name].elementwise]


@pytest.mark.parametrize(("name", "scalar"), CALLS, ids=[f"{n}-{'scalar' if s else 'tensor'}" for n, s in CALLS])
def test_derivatives_against_finite_differences(name: str, scalar: bool) -> None:
    text, types, values = _case(name, scalar)
    for wrt in values:
        first = mc.derivative(text, wrt, types=types).evaluate(values)
        fd = _finite_difference(lambda v: _reference(name, v), values, wrt)
        _assert_close(first, fd, f"d {text} / d {wrt}", 1e-6)
        second = mc.derivative(text, wrt, types=types, order=2).evaluate(values)
        # The second derivative: central differences of central differences of the reference.
        fd2 = _finite_difference(
            lambda v, wrt=wrt: _finite_difference(lambda u: _reference(name, u), v, wrt, 1e-4), values, wrt, 1e-4
        )
        _assert_close(second, fd2, f"d2 {text} / d {wrt}2", 1e-5)


def _to_backend(backend: str) -> Callable[[Any], Any]:
    if backend == "numpy":
        return np.asarray
    if backend == "dask":
        da = pytest.importorskip("dask.array")
        return da.from_array
    if backend == "torch":
        torch = pytest.importorskip("torch")
        return lambda a: torch.as_tensor(a, dtype=torch.float64)
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jnp.asarray


def _to_numpy(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    if hasattr(value, "compute"):
        value = value.compute()
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=float)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_compiled_equals_evaluated(name: str, backend: str) -> None:
    convert = _to_backend(backend)
    text, types, values = _case(name)
    expr = mc.parse(text, types=types)
    wrt = list(values)
    kinds = ("value", "gradient") + (("hessian",) if not expr.shape else ())
    fn = mc.compile(text, wrt=wrt, derivatives=kinds, types=types, backend=backend, dense=True)
    got = _to_numpy(fn({k: convert(v) for k, v in values.items()}))
    _assert_close(got[0], expr.evaluate(values), f"{backend}: compiled value of {text}", 1e-10)
    for k, w in enumerate(wrt):
        gradient = got[1][k] if isinstance(got[1], tuple) else got[1]
        want = mc.derivative(text, w, types=types).evaluate(values)
        _assert_close(gradient, want, f"{backend}: compiled derivative of {text} w.r.t. {w}", 1e-10)
        if "hessian" in kinds:
            hessian = got[2][k] if isinstance(got[2], tuple) else got[2]
            want = mc.derivative(text, w, types=types, order=2).evaluate(values)
            _assert_close(hessian, want, f"{backend}: compiled Hessian of {text} w.r.t. {w}", 1e-10)


# A user variable may bear the name of a helper that a spelling defines in generated code (_erf,
# _logdet, _kron): the helper is reserved, so the variable is renamed and the call still reaches it.
HOSTILE = sorted(
    {
        (name, backend, helper)
        for name in NAMES
        for backend in BACKENDS
        for helper in FUNCTIONS[name].helper_sources(backend)
        if re.search(rf"(?<![\w.]){helper}\(", FUNCTIONS[name].spelling(backend) or "")
    }
)


@pytest.mark.parametrize(("name", "backend", "helper"), HOSTILE, ids=["-".join(h) for h in HOSTILE])
def test_a_variable_named_like_a_helper_does_not_hide_it(name: str, backend: str, helper: str) -> None:
    assert helper in registry.helper_names()
    convert = _to_backend(backend)
    call, types, values = _case(name)
    text = f"sum({call}) + {helper}"
    types, values = {**types, helper: ()}, {**values, helper: np.asarray(2.0)}
    want = mc.parse(text, types=types).evaluate(values)
    fn = mc.compile(text, wrt=list(types), derivatives="value", types=types, backend=backend, dense=True)
    (got,) = _to_numpy(fn({k: convert(v) for k, v in values.items()}))
    _assert_close(got, want, f"{backend}: {text}", 1e-10)


# ------------------------------------------------------------------------ the record type


def test_a_record_is_refused_where_it_is_inconsistent() -> None:
    with pytest.raises(ValueError, match="argument kind"):
        FunctionRecord("f", ("tensor",))
    with pytest.raises(ValueError, match="at least one argument"):
        FunctionRecord("f", ())
    with pytest.raises(ValueError, match="element-wise"):
        FunctionRecord("f", ("vector",), elementwise=True)
    with pytest.raises(ValueError, match="already registered"):
        register(FUNCTIONS["exp"])


def test_a_function_with_an_axis_argument() -> None:
    # No record takes an axis yet; one made here goes through the graph, evaluation and printing.
    record = register(
        FunctionRecord(
            "cumulative",
            ("any",),
            "same",
            evaluate=lambda xp, x, dim: xp.cumsum(x, axis=dim),
            dim=True,
            domain="any",
        )
    )
    try:
        X = g.var("X", "matrix", ("m", "n"))
        node = g.apply("cumulative", X, dim=1)
        assert node.dim == 1 and node.shape == ("m", "n") and node is g.apply("cumulative", X, dim=1)
        assert to_text(node) == "cumulative(X, 1)"
        assert to_latex(node) == r"\operatorname{cumulative}_{1}\left(X\right)"
        value = np.arange(6.0).reshape(2, 3)
        assert node.evaluate(np, [value], int).tolist() == np.cumsum(value, axis=1).tolist()
        with pytest.raises(mc.ShapeError, match="takes no axis"):
            g.apply("exp", X, dim=0)
    finally:
        del FUNCTIONS[record.name]


def test_a_definition_evaluates_and_compiles_as_its_composition() -> None:
    # A record with a definition and neither evaluation nor spelling: lowering substitutes it.
    record = register(
        FunctionRecord(
            "twice_exp",
            ("any",),
            "same",
            elementwise=True,
            derivative=lambda x: g.scale(2, g.apply("exp", x)),
            definition=lambda x: g.scale(2, g.apply("exp", x)),
        )
    )
    try:
        x = g.var("x", "vector", ("n",))
        node = g.apply("twice_exp", x)
        value = np.array([0.0, 1.0, -2.0])
        assert node.evaluate(np, [value], int) == pytest.approx(2 * np.exp(value))
        assert record.spelling("numpy") is None
        from matrixcalculus.compile.codegen import generate

        program = generate([node], [x])
        namespace: dict[str, Any] = {}
        exec(program.source, namespace)  # our own generated source
        (out,) = namespace[program.function](value)
        assert out == pytest.approx(2 * np.exp(value)) and "exp" in program.source
    finally:
        del FUNCTIONS[record.name]


# ------------------------------------------------------------------------ erf, gelu, log1p, expm1


def test_erf_matches_scipy_into_the_tails() -> None:
    scipy_special = pytest.importorskip("scipy.special")
    x = np.concatenate([np.linspace(-6, 6, 97), [1e-300, -1e-10, 27.0]])
    got = mc.parse("erf(x)").evaluate({"x": x})
    np.testing.assert_allclose(got, scipy_special.erf(x), rtol=1e-15, atol=0)


def test_log1p_and_expm1_keep_the_digits_of_tiny_arguments() -> None:
    # log(1 + x) of x = 1e-12 keeps 4 digits; log1p keeps all of them (log1p(x) = x - x^2/2 + ...).
    x = np.array([1e-12, -3e-17, 2e-9])
    np.testing.assert_allclose(mc.parse("log1p(x)").evaluate({"x": x}), x - x**2 / 2, rtol=1e-15)
    np.testing.assert_allclose(mc.parse("expm1(x)").evaluate({"x": x}), x + x**2 / 2, rtol=1e-15)
    fn = mc.compile("sum(log1p(x) + expm1(x))", wrt="x")
    value, gradient = fn({"x": x})
    assert value == pytest.approx(2 * x.sum(), rel=1e-12)
    np.testing.assert_allclose(gradient, 1 / (1 + x) + np.exp(x), rtol=1e-15)


def test_log1p_below_minus_one_is_named() -> None:
    with pytest.raises(mc.EvaluationError, match=r"log1p of an entry at most -1: x\[1\] = -2"):
        mc.parse("log1p(x)").evaluate({"x": np.array([0.5, -2.0])})


def test_gelu_is_torch_exact_gelu() -> None:
    torch = pytest.importorskip("torch")
    x = np.linspace(-5, 5, 41)
    want = torch.nn.functional.gelu(torch.as_tensor(x), approximate="none")
    np.testing.assert_allclose(mc.parse("gelu(x)").evaluate({"x": x}), want.numpy(), rtol=1e-14, atol=1e-300)
    (gradient,) = mc.compile("sum(gelu(x))", wrt="x", derivatives="gradient", backend="torch")(
        {"x": torch.as_tensor(x)}
    )
    t = torch.as_tensor(x).requires_grad_()
    torch.nn.functional.gelu(t, approximate="none").sum().backward()
    np.testing.assert_allclose(gradient.numpy(), t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_new_functions_print() -> None:
    # gelu' = Phi + x .* phi, and Phi(x) = (1 + erf(x/sqrt(2)))/2 in the text's own notation.
    assert "(1 + erf(x/sqrt(2)))/2" in str(mc.derivative("gelu(x)", "x"))
    assert mc.parse("log1p(x) + expm1(x)").latex() == r"\log\left(1 + x\right) + \left(\exp\left(x\right) - 1\right)"
    assert mc.parse("erf(x)").latex() == r"\operatorname{erf}\left(x\right)"
