"""Resource limits: how much work one call may start, so that no input hangs or exhausts memory.

Each limit is checked where the work starts, before it is done, and exceeding one raises the
library's error naming the limit and how to raise it:

========================  ==================================================  ====================
limit                     what it bounds                                      checked in
========================  ==================================================  ====================
``max_length``            characters of an expression's text                  ``parse``
``max_nodes``             nodes of an expression graph (parsed or derived)    ``parse``, ``derivative``
``max_order``             the order of a derivative                           ``derivative``
``max_array_bytes``       bytes of one float64 array in a numeric evaluation  ``evaluate``, checks,
                                                                              random inputs
``max_check_entries``     entries of a variable that finite differences       ``check_derivative``
                          perturb (each costs two evaluations)
``max_explicit_size``     the size of each axis of an explicit Jacobian        ``explicit``, ``picture``
``max_explicit_entries``  entries of an explicit Jacobian (each is a formula)  ``explicit``, ``picture``
========================  ==================================================  ====================

The defaults suit an interactive tool on a laptop. To change them for a block of code (they
are context-local, so threads and async tasks each see their own)::

    with mc.resource_limits(max_order=12, max_nodes=10**7):
        mc.derivative(f, "x", order=10)

The command line takes ``--limit max_order=12``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from matrixcalculus.errors import EvaluationError, MatrixCalculusError

__all__ = ["Limits", "current_limits", "resource_limits"]


@dataclass(frozen=True)
class Limits:
    """The limits in force; every field is a positive whole number."""

    # 1 MB expressions are a stated use (the command line reads them from standard input); twice
    # that leaves room while bounding the parser's memory.
    max_length: int = 2_000_000
    # A graph node costs a few hundred bytes; a million of them is a few hundred MB.
    max_nodes: int = 1_000_000
    # Each further order multiplies the time to differentiate and simplify (order 8 of
    # logsumexp(W*x) takes seconds) and adds an axis to the result; Hessians are order 2.
    max_order: int = 6
    # One array of 2^27 float64 entries is 1 GiB; a larger one is almost surely a typo of a size.
    max_array_bytes: int = 2**30
    # A finite-difference check evaluates the function twice per entry of the variable.
    max_check_entries: int = 10_000
    # An explicit Jacobian is written entry by entry for a person to read: past a dozen per axis
    # or a few thousand formulas it is no longer read (the web page caps sizes the same way).
    max_explicit_size: int = 12
    max_explicit_entries: int = 2_000

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MatrixCalculusError(f"limit {f.name} must be a positive whole number, not {value!r}")


_CURRENT: ContextVar[Limits] = ContextVar("matrixcalculus_limits", default=Limits())  # noqa: B039 - frozen


def current_limits() -> Limits:
    """The limits in force in this context."""
    return _CURRENT.get()


@contextmanager
def resource_limits(**overrides: int) -> Iterator[Limits]:
    """Change some limits inside a ``with`` block: ``with resource_limits(max_order=10): ...``."""
    known = {f.name for f in dataclasses.fields(Limits)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise MatrixCalculusError(f"unknown limit {', '.join(unknown)}; the limits are {', '.join(sorted(known))}")
    limits = dataclasses.replace(_CURRENT.get(), **overrides)
    token = _CURRENT.set(limits)
    try:
        yield limits
    finally:
        _CURRENT.reset(token)


def exceeded(name: str, what: str) -> str:
    """The message for an exceeded limit: what, the limit's value, and how to raise it."""
    value = getattr(current_limits(), name)
    unit = " bytes" if name == "max_array_bytes" else ""
    return (
        f"{what}; the limit is {value:,}{unit} ({name}; raise it with "
        f"matrixcalculus.resource_limits({name}=...) or --limit {name}=...)"
    )


E = TypeVar("E", bound=MatrixCalculusError)


def limit_error(error: type[E], name: str, what: str, **where: Any) -> E:
    """An error of class ``error`` for the exceeded limit ``name``; ``.limit`` names it (the command
    line tells these apart from errors of the input itself)."""
    exc = error(exceeded(name, what), **where)
    exc.limit = name
    return exc


def check_array(shape: tuple[int, ...], what: str) -> None:
    """Refuse to allocate a float64 array of ``shape`` beyond ``max_array_bytes``."""
    entries = 1
    for size in shape:
        entries *= int(size)
    nbytes = 8 * entries
    if nbytes > current_limits().max_array_bytes:
        dims = " x ".join(str(s) for s in shape)
        raise limit_error(EvaluationError, "max_array_bytes", f"{what} would be a {dims} array of {_bytes(nbytes)}")


def _bytes(n: int) -> str:
    if n >= 10**15:  # integer arithmetic only: a size such as eye(1e308) is beyond float division
        digits = str(n)
        return f"about {digits[0]}.{digits[1:3]}e{len(digits) - 1} bytes"
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def check_nodes(roots: Sequence[Any], what: str, error: type[MatrixCalculusError] = MatrixCalculusError) -> int:
    """Refuse a graph of more than ``max_nodes`` nodes; returns how many it has."""
    from matrixcalculus.ir.graph import postorder  # the graph module is a later stage than this one

    count = len(postorder(*roots))
    check_count(count, what, error)
    return count


def check_count(count: int, what: str, error: type[MatrixCalculusError] = MatrixCalculusError) -> None:
    """Refuse ``count`` nodes (counted by the caller) if over ``max_nodes``."""
    if count > current_limits().max_nodes:
        raise limit_error(error, "max_nodes", f"{what} has {count:,} nodes")
