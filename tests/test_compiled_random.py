"""Random well-typed expressions: compiled code (value, gradient, Hessian) equals the interpreter.

The expressions come from the strategy of ``test_random_derivatives`` (every operator and function,
safe domains); the interpreter's derivatives are themselves checked against finite differences
there, so this property ties the generated code to an independently checked reference.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, note
from hypothesis import strategies as st

import matrixcalculus as mc
from matrixcalculus.compile.structured import Factored

from .test_random_derivatives import TYPES, _values, problems


@given(problems(), st.data())
def test_compiled_equals_interpreted(problem, data) -> None:
    e, seed = problem
    f = mc.parse(e.text, types=TYPES)
    present = sorted(f.variables)
    assume(present)
    wrt = data.draw(st.sampled_from(present), label="wrt")
    values = {k: v for k, v in _values(seed).items() if k in f.variables}
    note(f"f = {e.text}   wrt = {wrt}")
    value = np.asarray(f.evaluate(values), dtype=float)
    assume(np.all(np.isfinite(value)) and float(np.max(np.abs(value), initial=0.0)) < 1e6)
    kinds = ("value", "gradient") + (("hessian",) if not f.shape else ())
    fn = mc.compile(f, wrt=wrt, derivatives=kinds, types=TYPES)
    copies = {k: np.copy(v) for k, v in values.items()}
    got = fn(values)
    for k, v in values.items():  # generated code writes only into its own temporaries
        np.testing.assert_array_equal(v, copies[k], err_msg=f"argument {k} written to by {e.text}")
    want = [value] + [
        np.asarray(mc.derivative(f, wrt, types=TYPES, order=k).evaluate(values), dtype=float)
        for k in range(1, len(kinds))
    ]
    for kind, g, w in zip(kinds, got, want, strict=True):
        g = np.asarray(g.dense() if isinstance(g, Factored) else g, dtype=float)
        assume(np.all(np.isfinite(w)))
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0)))
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-10 * scale, err_msg=f"{kind} of {e.text} w.r.t. {wrt}")
