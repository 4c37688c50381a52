"""The fuzzer in CI: grammar- and mutation-based inputs through parse, derivative and compile.

The grammar, the mutations and the targets are in ``tests/fuzzing.py``; ``benchmarks/fuzz.py``
runs the same targets for campaigns of 10^5 inputs. Here hypothesis draws the grammar's choices
(so a failure shrinks to a small expression), with the ``ci`` profile's example count.

Each target asserts: only ``MatrixCalculusError`` escapes the library; printed text re-parses to
an equal value; derivatives of orders 1 and 2 agree with central finite differences in float64;
compiled code (several ``wrt``, ``dense=True``) equals the interpreter; and every input finishes
within a generous 5 s (a guard against hangs, not a speed test).

``tests/fuzz_regressions.jsonl`` keeps every input a campaign or an issue ever found, one JSON
object a line: the ``target``, the ``case`` (text, types, wrt, seed, optionally a ``point``), the
``expect``ed outcome (``ok``: computed and checked; ``error``: a library error; ``no-failure``:
either, or a point that cannot be judged), and the ``finding``. A ``pending`` field marks a record
whose fix is not on this branch yet: the test is an ``xfail(strict=False)`` with that reason, and
the field is deleted once the fix is merged.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

import matrixcalculus as mc
from matrixcalculus.ir.functions import FUNCTIONS

from . import fuzzing as fz

BOUND_S = 5.0  # per input; generous, because it guards against hangs, not for speed
PENDING_BOUND_S = 2.0  # a record known to fail here (its fix is on another branch) need not hang CI
REGRESSIONS = Path(__file__).with_name("fuzz_regressions.jsonl")


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: float) -> Iterator[None]:
    """Interrupt the body after ``seconds`` (SIGALRM, main thread on POSIX; elsewhere unguarded)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class DrawChooser:
    """The grammar's choices drawn by hypothesis, so failures shrink."""

    def __init__(self, draw: st.DrawFn):
        self.draw = draw

    def choice(self, options: Any) -> Any:
        return self.draw(st.sampled_from(options))

    def integer(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))


@st.composite
def cases(draw: st.DrawFn, target: str, hostile: int = 0) -> fz.Case:
    """A case of ``target``; ``hostile`` > 0 renames 1 in ``hostile`` variables to a hostile name."""
    ch = DrawChooser(draw)
    seed = draw(st.integers(0, 2**31 - 1))
    if target == "parse":
        return fz.parse_case(ch, seed)
    if target == "derive":
        return fz.derive_case(ch, seed, hostile=hostile, max_depth=3)
    return fz.compile_case(ch, seed, hostile=hostile, max_depth=3)


def _note(text: str) -> None:
    with contextlib.suppress(InvalidArgument):  # outside a hypothesis test (the regressions) there is nothing to note
        note(text)


def check(target: str, case: fz.Case, bound: float = BOUND_S) -> fz.Outcome:
    _note(f"{target}: {json.dumps(case.as_json(), ensure_ascii=False)}")
    start = time.perf_counter()
    try:
        with time_bound(bound):
            out = fz.TARGETS[target](case)
    except Hang:
        pytest.fail(f"{target} of {case.text!r} took over {bound:g} s")
    _note(f"outcome: {out.status} {out.detail} ({time.perf_counter() - start:.2f} s)")
    assert not out.failed, f"{target} of {case.text!r} (wrt {case.wrt}): {out.status}: {out.detail}"
    return out


# ---------------------------------------------------------------------------- the harness can fail


def test_grammar_covers_every_function() -> None:
    # kron changes sizes (m x n and p x q give mp x nq), which this grammar of one size per kind
    # cannot draw; tests/test_dimensions.py checks it.
    assert fz.covered_functions() == set(FUNCTIONS) - {"kron"}


def test_finite_difference_check_catches_a_wrong_derivative() -> None:
    x0 = np.array([0.3, 0.7, 1.1])
    with pytest.raises(fz.Failure, match="finite differences"):
        fz._check_fd(lambda x: np.sin(x), x0, False, np.diag(np.cos(x0)) * 1.01, "d/dx")
    fz._check_fd(lambda x: np.sin(x), x0, False, np.diag(np.cos(x0)), "d/dx")  # and passes a right one


def test_symmetric_finite_differences_follow_the_convention() -> None:
    # f(S) = sum(S .* M): the symmetric gradient is (M + M')/2 (docs/conventions.md).
    m = np.arange(9.0).reshape(3, 3)
    s0 = np.eye(3)
    fz._check_fd(lambda s: np.sum(s * m), s0, True, (m + m.T) / 2, "d/dS")


def test_an_exception_that_is_not_ours_is_a_finding() -> None:
    with pytest.raises(fz.Failure, match="ZeroDivisionError"):
        fz.lib(lambda: 1 / 0)
    with pytest.raises(mc.ParseError):
        fz.lib(mc.parse, "x +")


def test_mutations_change_the_text_and_hostile_names_reach_text_and_wrt() -> None:
    import random

    ch = fz.RandomChooser(random.Random(1))
    assert sum(fz.mutate(ch, "x'*A*x") != "x'*A*x" for _ in range(50)) >= 40
    renamed = [fz.derive_case(ch, i, hostile=1) for i in range(40)]
    assert any(set(c.wrt) & set(fz.HOSTILE_NAMES) for c in renamed)
    assert all(w in fz.variables_in(c.text) or w in c.text for c in renamed for w in c.wrt)


def test_campaign_kills_a_hang_and_records_it(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    fuzz = pytest.importorskip("benchmarks.fuzz")

    def hang(case: fz.Case) -> fz.Outcome:
        time.sleep(60)
        return fz.Outcome("ok")

    monkeypatch.setitem(fz.TARGETS, "hang", hang)  # the workers are forked and see it
    if "fork" not in fuzz.mp.get_all_start_methods():
        pytest.skip("needs fork to hand the workers a patched target")
    pool = fuzz.Pool(1, kill_after=0.5, memory_mb=0)
    try:
        start = time.perf_counter()
        results = list(
            pool.run(iter([("hang", 0, fz.Case("x", {}).as_json()), ("parse", 1, fz.Case("x'*A*x", {}).as_json())]))
        )
        assert time.perf_counter() - start < 10
    finally:
        pool.close()
    assert [r[1] for r in results] == ["timeout", "ok"]


# ---------------------------------------------------------------------------- hypothesis over the targets


@given(cases("parse"))
def test_any_text_parses_or_gives_a_library_error(case: fz.Case) -> None:
    check("parse", case)


@given(cases("derive"))
def test_derivatives_match_finite_differences_and_print_back(case: fz.Case) -> None:
    check("derive", case)


@given(cases("derive", hostile=1))
def test_derivatives_with_hostile_names(case: fz.Case) -> None:
    check("derive", case)


@given(cases("compile"))
def test_compiled_with_several_wrt_equals_evaluated(case: fz.Case) -> None:
    check("compile", case)


@given(cases("compile", hostile=1))
def test_compiled_with_hostile_names_equals_evaluated(case: fz.Case) -> None:
    check("compile", case)


# ---------------------------------------------------------------------------- regressions


def _records() -> list[Any]:
    params = []
    for number, line in enumerate(REGRESSIONS.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        marks = [pytest.mark.xfail(strict=False, reason=record["pending"])] if "pending" in record else []
        params.append(
            pytest.param(record, id=f"{number}-{record['target']}-{record['case']['text'][:30]}", marks=marks)
        )
    return params


@pytest.mark.parametrize("record", _records())
def test_regression(record: dict[str, Any]) -> None:
    case = fz.Case.from_json(record["case"])
    bound = PENDING_BOUND_S if "pending" in record else BOUND_S
    out = check(record["target"], case, bound)
    expect = record["expect"]
    if expect == "ok":
        assert out.status == "ok", f"{record['finding']}: expected a checked result, got {out.status}: {out.detail}"
    elif expect == "error":
        assert out.status == "error", f"{record['finding']}: expected a library error, got {out.status}: {out.detail}"
    else:
        assert expect == "no-failure", f"unknown expectation {expect!r}"


def test_regression_file_is_well_formed() -> None:
    for line in REGRESSIONS.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert record["target"] in fz.TARGETS and record["expect"] in ("ok", "error", "no-failure")
        assert record["finding"] and record["case"]["text"]
