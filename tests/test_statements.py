"""Code generation on statements: the plan is data (typed values, ``target = op(args...)``), and
sharing, dead-code removal, helper selection and transposed BLAS forms are decided on it.

The expected statement lists are derived by hand from the mathematics (the gradient of ``x'*A*x``
is ``(A + A')*x``: two mat-vecs), not copied from the generator; the property at the end ties the
generated code to the interpreter on random expressions with several ``wrt``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

import matrixcalculus as mc
from matrixcalculus.api.calculus import pure_derivatives
from matrixcalculus.compile.codegen import DIALECTS, Program, generate
from matrixcalculus.compile.emit import emit
from matrixcalculus.compile.plan import plan, product_order
from matrixcalculus.compile.statements import Block, Factors, Lit, Op, Statement, Value, View, live
from matrixcalculus.compile.structured import Factored

from .test_random_derivatives import TYPES, _values, problems


def _roots(f: str | mc.Expression, wrt: str, kinds: Sequence[str], types: dict | None = None) -> tuple[list, list]:
    expr = mc.parse(f, types=types) if isinstance(f, str) else f
    roots = []
    for kind in kinds:
        if kind == "value":
            roots.append(expr.node)
        else:
            roots.append(mc.derivative(expr, wrt, types=types, order=2 if kind == "hessian" else 1).node)
    return roots, list(expr.node_variables().values())


def _program(f: str, wrt: str, kinds: Sequence[str], dense: bool = True, backend: str = "numpy") -> Program:
    roots, variables = _roots(f, wrt, kinds)
    return generate(roots, variables, backend, dense=dense)


def _argument(block: Block, name: str) -> Value:
    return next(v for v in block.arguments if v.key == name)


def _readers(block: Block, value: Value) -> list[Statement]:
    return [s for s in block.statements if any(isinstance(a, View) and a.value == value for a in s.op.args)]


def _defined_helpers(source: str) -> set[str]:
    return set(re.findall(r"^def (_\w+)\(", source, flags=re.MULTILINE))


# ------------------------------------------------------------------------------ statement lists


def test_transposed_matvec_is_a_view_of_the_stored_matrix() -> None:
    # d(x'Ax)/dx = (A + A')x: A@x and A'@x, two mat-vecs; A' is read in place (A.T), never stored.
    block = _program("x'*A*x", "x", ("gradient",)).block
    A, x = _argument(block, "A"), _argument(block, "x")
    assert sorted(s.op.name for s in block.statements) == ["add", "matmul", "matmul"]
    products = {s.op.args for s in block.statements if s.op.name == "matmul"}
    assert products == {(View(A), View(x)), (View(A, (1, 0)), View(x))}
    # No statement has A (or its transpose) alone as its operand: a transpose is not a statement.
    assert not [s for s in block.statements if s.op.args in ((View(A),), (View(A, (1, 0)),))]
    assert "(A.T @ x)" in _program("x'*A*x", "x", ("gradient",)).source


def test_a_double_transpose_is_the_stored_matrix() -> None:
    # (A')' is A: the views compose, so x'*(A')'*x reads A and A.T exactly as x'*A*x does.
    block = _program("x'*(A')'*x", "x", ("gradient",)).block
    A, x = _argument(block, "A"), _argument(block, "x")
    assert {s.op.args for s in block.statements if s.op.name == "matmul"} == {
        (View(A), View(x)),
        (View(A, (1, 0)), View(x)),
    }


def test_one_matrix_vector_product_serves_value_and_gradient() -> None:
    # f = |Ax|^2, grad = 2 A'(Ax): the product Ax is computed once and read by both.
    block = _program("norm2(A*x)^2", "x", ("value", "gradient")).block
    A, x = _argument(block, "A"), _argument(block, "x")
    (ax,) = [s.target for s in block.statements if s.op == Op("matmul", (View(A), View(x)))]
    assert len(_readers(block, ax)) >= 2
    assert [s.op.name for s in block.statements].count("matmul") == 3  # Ax, (Ax)'(Ax), (Ax)'A


def test_equal_operations_are_one_statement_whatever_they_feed() -> None:
    # The logistic loss needs softplus(-y.*Xw) and its gradient sigmoid(-y.*Xw): one negation.
    block = _program("sum(log(1 + exp(-y .* (X*w))))", "w", ("value", "gradient")).block
    calls = [s for s in block.statements if s.op.name == "call"]
    assert len(calls) == 2 and calls[0].op.args == calls[1].op.args
    keys = Counter(s.op for s in block.statements)
    assert max(keys.values()) == 1


def test_dead_statements_of_a_structured_output_are_removed() -> None:
    # The Hessian of |T - UV'|^2 wrt U is 2 delta(i,k) (V'V)[j,l]: returned as factors, only V'V is
    # computed; the dense form (an identity, a tensor product) is planned and then found dead.
    roots, variables = _roots("norm2(T - U*V')^2", "U", ("hessian",))
    planned = plan(roots, variables, dense=False)
    assert "eye" in {s.op.name for s in planned.statements}
    kept = live(planned)
    V = next(v for v in kept.arguments if v.key == "V")
    assert [s.op for s in kept.statements] == [Op("matmul", (View(V, (1, 0)), View(V)))]
    (output,) = kept.outputs
    assert isinstance(output, Factors) and output.arrays == (View(kept.statements[0].target),)
    (generated,) = generate(roots, variables, dense=False).block.statements  # a fresh plan: its own values
    (arg0, arg1) = generated.op.args
    assert isinstance(arg0, View) and isinstance(arg1, View) and generated.op.name == "matmul"
    assert (arg0.value.key, arg0.axes, arg1.value.key, arg1.axes) == ("V", (1, 0), "V", None)


def test_liveness_keeps_what_outputs_read_and_the_sizes() -> None:
    b = Block()
    x = b.argument("x", ("n",))
    n = b.size("n", x, 0)
    two = Lit(Fraction(2))
    dead = b.assign(Op("call", (View(x),), ("exp",)), ("n",))
    used = b.assign(Op("mul", (two, View(x))), ("n",))
    b.assign(Op("add", (View(dead), View(used)), ((False, False),)), ("n",))  # reads both, itself dead
    out = b.assign(Op("sum", (View(used),), (None,)), ())
    b.outputs.append(View(out))
    kept = live(b)
    assert [s.target for s in kept.statements] == [used, out]
    assert [s.target for s in kept.sizes] == [n]


def test_equal_ops_are_shared_on_their_keys() -> None:
    b = Block()
    x = b.argument("x", ("n",))
    first = b.assign(Op("sum", (View(x),), (None,)), ())
    assert b.assign(Op("sum", (View(x),), (None,)), ()) is first
    assert b.assign(Op("sum", (View(x, (0, None)),), (None,)), ()) is not first
    assert len(b.statements) == 2


# ------------------------------------------------------------------------------ helpers


def test_helpers_are_emitted_for_live_calls_only() -> None:
    b = Block()
    x = b.argument("x", ("n",))
    b.assign(Op("call", (View(x),), ("logsumexp",)), ())  # dead
    soft = b.assign(Op("call", (View(x),), ("softmax",)), ("n",))
    b.outputs.append(View(soft))
    source = emit(live(b), DIALECTS["numpy"], "f")
    assert _defined_helpers(source) == {"_softmax"}
    namespace: dict = {}
    exec(source, namespace)
    v = np.array([1.0, 2.0, 3.0])
    (got,) = namespace["f"](v)
    np.testing.assert_allclose(got, np.exp(v) / np.exp(v).sum(), rtol=1e-14)


def test_helpers_follow_the_dialect() -> None:
    f = "logsumexp(x) + softmax(x)'*y + logdet(A)"
    numpy_source = _program(f, "x", ("value",)).source
    assert _defined_helpers(numpy_source) == {"_logsumexp", "_softmax", "_logdet"}
    # Gradient w.r.t. x only: logdet(A) is constant, so no _logdet.
    assert "_logdet" not in _defined_helpers(_program(f, "x", ("gradient",)).source)
    # jax spells logsumexp and softmax with jax.nn; torch has no softmax helper either.
    assert _defined_helpers(_program(f, "x", ("value",), backend="jax").source) == {"_logdet"}
    assert _defined_helpers(_program(f, "x", ("value",), backend="torch").source) == {"_logdet"}


# ------------------------------------------------------------------------------ dimensions, reshapes, records


def _run(roots: list, variables: list, *values: np.ndarray, backend: str = "numpy") -> tuple:
    program = generate(roots, variables, backend)
    namespace: dict = {}
    exec(program.source, namespace)  # our own generated source
    if backend == "dask":
        import dask.array as da

        return tuple(np.asarray(r) for r in namespace[program.function](*(da.from_array(v) for v in values)))
    return namespace[program.function](*values)


def test_a_product_dimension_is_one_size_statement_read_off_its_factors() -> None:
    from matrixcalculus.ir import graph as g

    x, y = g.var("x", "vector", ("m",)), g.var("y", "vector", ("p",))
    mp = g.dim_product("m", "p")
    roots = [g.ones((mp,)), g.size_of(mp)]  # ones(m*p) and the number m*p, both from one size
    block = live(plan(roots, [x, y]))
    products = [s for s in block.sizes if s.op.name == "product"]
    assert len(products) == 1
    assert {a.value.key for a in products[0].op.args if isinstance(a, View)} == {"m", "p"}
    ones, size = _run(roots, [x, y], np.zeros(3), np.zeros(5))
    assert ones.shape == (15,) and float(size) == 15.0 and np.asarray(size).dtype == np.float64


def test_a_reshape_reads_a_transposed_view_in_row_major_order() -> None:
    from matrixcalculus.ir import graph as g

    A = g.var("A", "matrix", ("m", "n"))
    flat = g.reshape(g.contract([A], [(0, 1)], (1, 0)), (g.dim_product("m", "n"),))  # vec of A' row-major
    block = live(plan([flat], [A]))
    (statement,) = block.statements
    assert statement.op.name == "reshape" and statement.op.args[0] == View(_argument(block, "A"), (1, 0))
    a = np.arange(6.0).reshape(2, 3)
    for backend in ("numpy", "dask"):
        (got,) = _run([flat], [A], a, backend=backend)
        np.testing.assert_array_equal(got, a.T.reshape(-1))


def test_a_call_takes_several_arguments_and_its_record_helpers() -> None:
    f = "sum(kron(A, B)*x)"
    assert _defined_helpers(_program(f, "A", ("value",), backend="dask").source) == {"_kron"}
    assert _defined_helpers(_program(f, "A", ("value",)).source) == set()
    roots, variables = _roots(f, "A", ("value",))
    (call,) = [s for s in live(plan(roots, variables)).statements if s.op.name == "call"]
    assert call.op.params == ("kron",) and len(call.op.args) == 2
    rng = np.random.default_rng(0)
    a, b, x = rng.normal(size=(2, 3)), rng.normal(size=(4, 5)), rng.normal(size=15)
    order = [v.name for v in variables]
    values = {"A": a, "B": b, "x": x}
    for backend in ("numpy", "dask"):
        (got,) = _run(roots, variables, *(values[n] for n in order), backend=backend)
        np.testing.assert_allclose(float(got), np.sum(np.kron(a, b) @ x), rtol=1e-12)


def test_a_spelling_that_reads_its_argument_twice_reads_a_computed_value() -> None:
    # norm2 is sqrt(sum(u * u)): u = A @ x must be one statement, not spelled twice.
    source = _program("norm2(A*x)", "x", ("value",)).source
    assert source.count("@") == 1 and "xp.sqrt(xp.sum(t0 * t0))" in source


def test_a_user_variable_named_like_a_helper_of_any_record_is_renamed() -> None:
    source = _program("_kron'*x", "x", ("value",)).source
    assert "def derivatives(_kron_, x):" in source


# ------------------------------------------------------------------------------ views and order


def test_views_print_as_numpy_views() -> None:
    b = Block()
    s = b.argument("s", ("n",))
    T = b.argument("T", ("n", "n", "n"))
    b.outputs += [View(s).broadcast((0, None)), View(T).permuted((2, 0, 1)), View(s).broadcast((None, 0))]
    source = emit(b, DIALECTS["numpy"], "f")
    assert "return (s[:, None], xp.transpose(T, (2, 0, 1)), s[None, :],)" in source
    assert "T.permute(2, 0, 1)" in emit(b, DIALECTS["torch"], "f")
    assert View(T).permuted((2, 0, 1)).permuted((1, 2, 0)) == View(T)


def test_product_order_prefers_the_matrix_vector_chain() -> None:
    # A*B*x with n = 100: A(Bx) costs 2 n^2, (AB)x costs n^3 + n^2.
    tree = product_order([(0, 1), (1, 2), (2,)], (0,), {0: 100, 1: 100, 2: 100})
    assert tree == (0, (1, 2, (1,)), (0,))


# ------------------------------------------------------------------------------ property


@given(problems(), st.data())
def test_compiled_with_several_wrt_equals_interpreted(problem, data) -> None:
    e, seed = problem
    f = mc.parse(e.text, types=TYPES)
    present = sorted(f.variables)
    assume(len(present) >= 2)
    wrt = data.draw(st.lists(st.sampled_from(present), min_size=2, max_size=3, unique=True), label="wrt")
    dense = data.draw(st.booleans(), label="dense")
    values = {k: v for k, v in _values(seed).items() if k in f.variables}
    note(f"f = {e.text}   wrt = {wrt}")
    value = np.asarray(f.evaluate(values), dtype=float)
    assume(np.all(np.isfinite(value)) and float(np.max(np.abs(value), initial=0.0)) < 1e6)
    kinds = ("value", "gradient") + (("hessian",) if not f.shape else ())
    # The reference first: a derivative the interpreter finds not finite (norm2 at 0) is no case.
    wants = []
    for order in range(1, len(kinds)):
        try:
            wants.append([mc.derivative(f, name, types=TYPES, order=order).evaluate(values) for name in wrt])
        except mc.EvaluationError:
            assume(False)
    assume(all(np.all(np.isfinite(np.asarray(w, dtype=float))) for ws in wants for w in ws))
    got = mc.compile(f, wrt=wrt, derivatives=kinds, types=TYPES, dense=dense)(values)
    assert np.allclose(np.asarray(got[0], dtype=float), value, rtol=1e-8, atol=1e-10 * max(1.0, np.abs(value).max()))
    for order, (per_wrt, want_per_wrt) in enumerate(zip(got[1:], wants, strict=True), start=1):
        assert len(per_wrt) == len(wrt)
        for name, g, w in zip(wrt, per_wrt, want_per_wrt, strict=True):
            want = np.asarray(w, dtype=float)
            g = np.asarray(g.dense() if isinstance(g, Factored) else g, dtype=float)
            scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
            np.testing.assert_allclose(g, want, rtol=1e-8, atol=1e-10 * scale, err_msg=f"order {order} w.r.t. {name}")
    # The block the code was printed from: every statement is read, no two compute the same op,
    # and the module defines exactly the helpers that its live calls need.
    roots = [f.node] + [r.node for k in range(1, len(kinds)) for r in pure_derivatives(f, wrt, types=TYPES, order=k)]
    program = generate(roots, list(f.node_variables().values()), dense=dense)
    block = program.block
    read = {a.value for s in block.statements for a in s.op.args if isinstance(a, View)}
    for out in block.outputs:
        read |= {a.value for a in (out.arrays if isinstance(out, Factors) else (out,)) if isinstance(a, View)}
    assert all(s.target in read for s in block.statements)
    assert len({s.op for s in block.statements}) == len(block.statements)
    numpy = DIALECTS["numpy"]
    assert _defined_helpers(program.source) == {h for name in block.functions() for h in numpy.requires(name)}


def _chain(sizes: Sequence[int]) -> tuple[list[tuple[int, ...]], tuple[int, ...], dict[int, int]]:
    """A product of matrices M_k of sizes[k] x sizes[k+1]: labels, output labels, label sizes."""
    labels: list[tuple[int, ...]] = [(k, k + 1) for k in range(len(sizes) - 1)]
    return labels, (0, len(sizes) - 1), dict(enumerate(sizes))


def test_long_products_are_ordered_no_worse_than_greedy() -> None:
    # Matrix-chain problems of 9 to 20 factors with sizes from 2 to 500: the chosen order is never
    # costlier than the greedy one, and matches the classic O(n^3) matrix-chain optimum up to 12.
    from matrixcalculus.compile.plan import _Network

    rng = np.random.default_rng(5)
    for n in (9, 10, 12, 16, 20):
        sizes = [int(s) for s in rng.choice([2, 10, 50, 200, 500], size=n + 1)]
        network = _Network(*_chain(sizes))
        tree = product_order(*_chain(sizes))
        assert network.members(tree) == frozenset(range(n))
        assert network.cost(tree) <= network.cost(network.greedy())
        if n <= 12:
            # The textbook dynamic programme for a chain (independent of ours), in multiply-adds.
            best = {(i, i): 0 for i in range(n)}
            for width in range(1, n):
                for i in range(n - width):
                    j = i + width
                    best[i, j] = min(
                        best[i, k] + best[k + 1, j] + sizes[i] * sizes[k + 1] * sizes[j + 1] for k in range(i, j)
                    )
            assert network.cost(tree) == best[0, n - 1]


def test_a_long_chain_compiles_to_its_product() -> None:
    sizes = [3, 40, 2, 30, 5, 60, 4, 20, 3, 50, 6]
    names = [f"M{k}" for k in range(len(sizes) - 1)]
    types = {name: (sizes[k], sizes[k + 1]) for k, name in enumerate(names)}
    rng = np.random.default_rng(0)
    values = {name: rng.standard_normal(shape) for name, shape in types.items()}
    f = "sum(" + "*".join(names) + ")"
    value, grad = mc.compile(f, wrt="M0", derivatives=("value", "gradient"), types=types)(values)
    product = np.linalg.multi_dot([values[name] for name in names])
    np.testing.assert_allclose(value, product.sum(), rtol=1e-10)
    rest = np.linalg.multi_dot([values[name] for name in names[1:]])
    np.testing.assert_allclose(grad, np.outer(np.ones(sizes[0]), rest.sum(axis=1)), rtol=1e-10)
