"""The fuzzer's grammar, mutations and targets, shared by tests/test_fuzz.py and benchmarks/fuzz.py.

No test lives here (pytest collects only ``test_*.py``): the hypothesis tests and the long campaign
both import this module, so what CI checks and what a campaign checks cannot drift apart.

* **Grammar.** :func:`expression` builds the text of a random well-typed expression over the
  variables of :data:`TYPES` (scalars ``a, b, c``; vectors ``x, y, z``; matrices ``A, B``; a
  symmetric ``S``, all sizes 3), with every operator and every function of
  ``matrixcalculus.ir.functions``. It draws through a :class:`Chooser`, so the one grammar serves
  ``random.Random(seed)`` (:class:`RandomChooser`, the campaign) and hypothesis (a chooser over
  ``draw``, the tests, which then shrink).
  Arguments are kept in their function's domain by construction most of the time (``log`` and
  ``sqrt`` see positive expressions, ``arcsin``/``arccos`` values in (-1/2, 1/2), ``inv``/``det``/
  ``logdet`` symmetric positive definite matrices), and left free now and then so that points
  where a function is not finite are reached too; the targets skip those points.
* **Mutations.** :func:`mutate` takes a valid text and applies character and token edits:
  insertions, deletions, swaps, duplicated operators, unbalanced parentheses, huge and tiny
  numbers, keywords and hostile names.
* **Hostile names.** :func:`rename` gives variables names that collide with what generated code,
  printing or Python use (``t0``, ``_n``, ``xp``, ``lambda``, ``None``, ``exp``, ``n``, ...), in
  the text, in ``types`` and in ``wrt`` alike.
* **Targets.** :func:`run_parse`, :func:`run_derive`, :func:`run_compile` each return an
  :class:`Outcome`. A failure is an exception other than ``MatrixCalculusError`` escaping the
  library (``uncaught``) or a wrong number (``wrong``): a printed text that does not re-parse to
  an equal value, a derivative that disagrees with central finite differences in float64, or
  compiled code that disagrees with the interpreter.
"""

from __future__ import annotations

import math
import random
import re
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

import matrixcalculus as mc
from matrixcalculus.api.calculus import pure_derivatives
from matrixcalculus.compile.structured import Factored
from matrixcalculus.frontend.infer import Declared
from matrixcalculus.ir.functions import FUNCTIONS
from matrixcalculus.ir.graph import postorder

T = TypeVar("T")
N = 3  # every dimension; one size keeps every product well-typed whatever the grammar draws

TYPES: dict[str, str] = {
    "a": "scalar",
    "b": "scalar",
    "c": "scalar",
    "x": "vector",
    "y": "vector",
    "z": "vector",
    "A": "matrix",
    "B": "matrix",
    "S": "symmetric matrix",
}
SHAPE_OF_KIND = {"scalar": (), "vector": (N,), "matrix": (N, N), "symmetric matrix": (N, N)}
BY_SHAPE: dict[str, tuple[str, ...]] = {
    "s": ("a", "b", "c"),
    "v": ("x", "y", "z"),
    "m": ("A", "B", "S"),
}

# Names that collide with something: generated temporaries and size variables (t0, _n), the
# generated module's names (xp, np, _softmax), Python keywords and builtins, our own function and
# dimension names, float spellings, index-notation letters.
HOSTILE_NAMES: tuple[str, ...] = (
    "t0",
    "t1",
    "t2",
    "t5",
    "_n",
    "_m",
    "_",
    "__",
    "xp",
    "np",
    "_softmax",
    "_logsumexp",
    "lambda",
    "None",
    "True",
    "if",
    "def",
    "return",
    "import",
    "self",
    "print",
    "sum_",
    "exp",
    "sum",
    "eye",
    "n",
    "m",
    "e",
    "inf",
    "nan",
    "pi",
    "i",
    "j",
    "delta",
    "where",
    "values",
    "result",
    "__builtins__",
    "__class__",
    "dims",
    "ones",
    "out",
    "x0",
)
HOSTILE_TEXTS: tuple[str, ...] = (
    "<script>",
    "ÿ",
    "ｘ",
    "\x00",
    "∑",
    "é",
    "'; import os; '",
    "__import__('os')",
    "${x}",
    "%s",
    "\\",
    "\n",
    "\t",
    "#",
    "@",
    "!",
    "~",
    "&",
    "|",
    "[1]",
    "{x}",
    "x.y",
    "1_000",
    "0x10",
    "1e",
    ".e1",
    "..",
)
HUGE_NUMBERS: tuple[str, ...] = (
    "1e999999",
    "1e9999999",
    "1e5000",
    "1e400",
    "1e308",
    "1.8e308",
    "1e-400",
    "1e-320",
    "0",
    "0.0",
    "00",
    "123456789012345678901234567890",
    "9" * 5000,
    "0." + "0" * 400 + "1",
    "1e+308",
    "2^1024",
    "4.9e-324",
)


class Chooser(Protocol):
    """Where the grammar's choices come from: a seeded ``random.Random`` or hypothesis."""

    def choice(self, options: Sequence[T]) -> T: ...

    def integer(self, lo: int, hi: int) -> int: ...


class RandomChooser:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def choice(self, options: Sequence[T]) -> T:
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


# ---------------------------------------------------------------------------- grammar


@dataclass(frozen=True)
class Gen:
    """A generated expression: its text and the subexpressions that must stay away from a kink.

    ``kinks`` are texts whose entries must not be near 0 (``relu``, ``abs``, ``sign``, ``norm1``,
    comparisons), ``norms`` texts that must not be near the zero tensor (``norm2``): there the
    function is not differentiable and finite differences cannot judge the derivative.
    """

    text: str
    kinks: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()


def _g(text: str, *parts: Gen, kinks: tuple[str, ...] = (), norms: tuple[str, ...] = ()) -> Gen:
    return Gen(
        f"({text})", tuple(k for p in parts for k in p.kinks) + kinks, tuple(k for p in parts for k in p.norms) + norms
    )


def _elementwise(where: Callable[[Any], bool]) -> tuple[str, ...]:
    return tuple(r.name for r in FUNCTIONS.values() if r.elementwise and where(r))


# The element-wise functions by the domain their registry record declares (a new record is fuzzed
# without a change here); a test below checks that these and the lists after them cover the table.
KINKED = _elementwise(lambda r: bool(r.kinks))
ANYWHERE = _elementwise(lambda r: not r.kinks and r.domain == (-math.inf, math.inf))
POSITIVE_ONLY = _elementwise(lambda r: not r.kinks and r.domain[1] == math.inf and -math.inf < r.domain[0] <= 0)
UNIT_ONLY = _elementwise(lambda r: not r.kinks and r.domain == (-1, 1))
# Finite on a wider interval, such as tan on (-pi/2, pi/2): given values in (-1/2, 1/2) as the above.
BOUNDED = _elementwise(
    lambda r: not r.kinks and r.domain != (-1, 1) and r.domain[0] <= -0.5 and 0.5 <= r.domain[1] < math.inf
)
# Two arguments of one shape, with a kink where they tie.
KINKED_PAIRS = ("max", "min")
MATRIX_SPD = ("det", "logdet", "inv")
MATRIX_ANY = ("norm1", "norm2", "mean")
VECTOR_ONLY = ("softmax", "logsumexp")
NUMBERS = ("2", "3", "0.5", "1.5", "(1/3)", "10", "1e-3", "0.25")


def expression(
    ch: Chooser, shape: str = "s", depth: int = 3, domain: str = "any", top: bool = True, free: int = 0
) -> Gen:
    """A random expression of ``shape`` (``s`` scalar, ``v`` vector, ``m`` matrix) and ``domain``.

    ``domain`` is ``any``; ``pos`` (entries > 0, for the values :func:`values` draws); ``unit``
    (entries in (-1/2, 1/2)); or ``spd`` (a symmetric positive definite matrix). ``free`` > 0
    lets functions see arguments outside their domain now and then (1 in ``free`` draws).
    """

    def sub(s: str, d: str = "any") -> Gen:
        return expression(ch, s, depth - 1, d, False, free)

    def leaf() -> Gen:
        if domain == "spd":
            return Gen(ch.choice(("S", "eye(3)", "(S*S)", "(2*eye(3))")))
        if domain == "unit":
            return Gen(f"(0.5*tanh({ch.choice(BY_SHAPE[shape])}))")
        if shape == "s":
            return Gen(ch.choice(BY_SHAPE["s"] + (NUMBERS if domain == "pos" else (*NUMBERS, "-1", "0"))))
        if shape == "v":
            return Gen(ch.choice(BY_SHAPE["v"] + ("ones(3)",)))
        if domain == "pos":  # matrix entries are of either sign: make them positive
            return Gen(f"exp({ch.choice(BY_SHAPE['m'])})")
        return Gen(ch.choice(BY_SHAPE["m"] + ("eye(3)",)))

    if depth <= 0 or (not top and ch.integer(0, 4) == 0):
        return leaf()

    if domain == "unit":
        e = sub(shape)
        return _g(ch.choice(("0.5*tanh({})", "sin({})/2", "sigmoid({}) - 0.5", "0.4*cos({})")).format(e.text), e)
    if domain == "spd":
        choice = ch.integer(0, 5)
        if choice == 0:
            e = sub("m")
            return _g(f"{e.text}*{e.text}' + eye(3)", e)
        if choice == 1:
            e = sub("m")
            return _g(f"{e.text}'*{e.text} + 0.5*eye(3)", e)
        if choice == 2:
            e, p = sub("m", "spd"), sub("s", "pos")
            return _g(f"{p.text}*{e.text}", e, p)
        if choice == 3:
            e, f = sub("m", "spd"), sub("m", "spd")
            return _g(f"{e.text} + {f.text}", e, f)
        if choice == 4:
            e = sub("m", "spd")
            return _g(f"inv({e.text})", e)
        v = sub("v")
        return _g(f"diag(exp({v.text})) + {v.text}*{v.text}'", v)
    if domain == "pos":
        choice = ch.integer(0, 9)
        if choice == 0:
            e, f = sub(shape, "pos"), sub(shape, "pos")
            return _g(f"{e.text} + {f.text}", e, f)
        if choice == 1:
            e, f = sub(shape, "pos"), sub(shape, "pos")
            return _g(f"{e.text} .* {f.text}", e, f)
        if choice == 2:
            e, f = sub(shape, "pos"), sub(shape, "pos")
            return _g(f"{e.text} ./ {f.text}", e, f)
        if choice == 3:
            e = sub(shape)
            return _g(f"{ch.choice(('exp', 'sigmoid', 'softplus'))}({e.text})", e)
        if choice == 4:
            e = sub(shape)
            return _g(f"1 + {e.text}.^2", e)
        if choice == 5:
            e = sub(shape, "pos")
            return _g(f"sqrt({e.text})", e)
        if choice == 6 and shape == "s":
            e = sub(ch.choice(("v", "m")))
            return _g(f"1 + norm2({e.text})^2", e)
        if choice == 7 and shape == "v":
            e = sub("v")
            return _g(f"softmax({e.text})", e)
        if choice == 8 and shape == "s":
            e = sub("m", "spd")
            return _g(f"{ch.choice(('det', 'tr'))}({e.text})", e)
        e, p = sub(shape, "pos"), sub("s")
        return _g(f"{e.text}.^{p.text}" if shape != "s" else f"{e.text}^{p.text}", e, p)

    # domain "any"
    def function() -> Gen:
        if free and ch.integer(1, free) == 1:  # outside the domain on purpose
            name = ch.choice((*POSITIVE_ONLY, *UNIT_ONLY, *BOUNDED))
            e = sub(shape)
            return _g(f"{name}({e.text})", e)
        kind = ch.integer(0, 4)
        if kind == 0:
            e = sub(shape, "pos")
            return _g(f"{ch.choice(POSITIVE_ONLY)}({e.text})", e)
        if kind == 1:
            e = sub(shape, "unit")
            return _g(f"{ch.choice(UNIT_ONLY + BOUNDED)}({e.text})", e)
        if kind == 2:
            name = ch.choice(KINKED + KINKED_PAIRS)
            if name in KINKED_PAIRS:
                e, f = sub(shape), sub(shape)
                return _g(f"{name}({e.text}, {f.text})", e, f, kinks=(f"{e.text} - {f.text}",))
            e = sub(shape)
            return _g(f"{name}({e.text})", e, kinks=(e.text,))
        e = sub(shape)
        return _g(f"{ch.choice(ANYWHERE)}({e.text})", e)

    def arithmetic() -> Gen:
        op = ch.choice(("+", "-", ".*", "./", "cmp", "scale", "broadcast", ".^"))
        if op in ("+", "-", ".*"):
            e, f = sub(shape), sub(shape)
            return _g(f"{e.text} {op} {f.text}", e, f)
        if op == "./":
            e, f = sub(shape), sub(shape, "pos")
            return _g(f"{e.text} ./ {f.text}", e, f)
        if op == "cmp":
            e, f, h = sub(shape), sub(shape), sub(shape)
            return _g(
                f"({e.text} {ch.choice(('>', '<'))} {f.text}) .* {h.text}", e, f, h, kinks=(f"{e.text} - {f.text}",)
            )
        if op == "scale":
            s, e = sub("s"), sub(shape)
            form = ch.choice(("{s}*{e}", "{e}*{s}", "{e}/{p}", "-{e}", "{s} .* {e}"))
            p = sub("s", "pos")
            return _g(form.format(s=s.text, e=e.text, p=p.text), s, e, p)
        if op == "broadcast":
            s, e = sub("s"), sub(shape)
            return _g(ch.choice(("{e} + {s}", "{s} - {e}")).format(s=s.text, e=e.text), s, e)
        e = sub(shape)
        k = ch.choice(("2", "3", "-1", "0.5", "(1/3)", "p"))
        if k in ("2", "3"):
            return _g(f"{e.text}.^{k}" if shape != "s" else f"{e.text}^{k}", e)
        if k == "-1" and shape == "s":
            f = sub("s", "pos")
            return _g(f"{f.text}^-1", f)
        base = sub(shape, "pos")
        p = sub("s") if k == "p" else Gen(k)
        return _g(f"{base.text}.^{p.text}", base, p)

    choices: list[Callable[[], Gen]] = [function, function, arithmetic, arithmetic, arithmetic]
    if shape == "s":

        def scalar() -> Gen:
            kind = ch.integer(0, 9)
            if kind == 0:
                u, v = sub("v"), sub("v")
                return _g(f"{u.text}'*{v.text}", u, v)
            if kind == 1:
                u, M, v = sub("v"), sub("m"), sub("v")
                return _g(f"{u.text}'*{M.text}*{v.text}", u, M, v)
            if kind == 2:
                e = sub(ch.choice(("v", "m")))
                return _g(f"sum({e.text})", e)
            if kind == 3:
                e = sub("m")
                return _g(f"tr({e.text})", e)
            if kind == 4:
                e = sub("m", "any" if free and ch.integer(1, free) == 1 else "spd")
                return _g(f"{ch.choice(MATRIX_SPD[:2])}({e.text})", e)
            if kind == 5:
                e = sub(ch.choice(("v", "m")))
                name = ch.choice(MATRIX_ANY)
                marks = {"norm1": {"kinks": (e.text,)}, "norm2": {"norms": (e.text,)}}.get(name, {})
                return _g(f"{name}({e.text})", e, **marks)
            if kind == 6:
                e = sub("v")
                return _g(f"logsumexp({e.text})", e)
            if kind == 7:
                e = sub("s")
                return _g(f"{e.text}'", e)
            b, p = sub("s", "pos"), sub("s")
            return _g(f"{b.text}^{p.text}", b, p)

        choices += [scalar, scalar, scalar]
    elif shape == "v":

        def vector() -> Gen:
            kind = ch.integer(0, 5)
            if kind == 0:
                M, v = sub("m"), sub("v")
                return _g(f"{M.text}*{v.text}", M, v)
            if kind == 1:
                v, M = sub("v"), sub("m")
                return _g(f"({v.text}'*{M.text})'", v, M)
            if kind == 2:
                v = sub("v")
                return _g(f"softmax({v.text})", v)
            if kind == 3:
                M = sub("m")
                return _g(f"diag({M.text})", M)
            if kind == 4:
                M, v = sub("m", "spd"), sub("v")
                return _g(f"inv({M.text})*{v.text}", M, v)
            v = sub("v")
            return _g(f"{v.text}''", v)

        choices += [vector, vector]
    else:

        def matrix() -> Gen:
            kind = ch.integer(0, 4)
            if kind == 0:
                M, K = sub("m"), sub("m")
                return _g(f"{M.text}*{K.text}", M, K)
            if kind == 1:
                u, v = sub("v"), sub("v")
                return _g(f"{u.text}*{v.text}'", u, v)
            if kind == 2:
                M = sub("m")
                return _g(f"{M.text}'", M)
            if kind == 3:
                v = sub("v")
                return _g(f"diag({v.text})", v)
            M = sub("m", "any" if free and ch.integer(1, free) == 1 else "spd")
            return _g(f"inv({M.text})", M)

        choices += [matrix, matrix]
    return ch.choice(choices)()


def covered_functions() -> set[str]:
    """The functions the grammar can emit (a test checks this is the whole table)."""
    return set(
        ANYWHERE + KINKED + KINKED_PAIRS + POSITIVE_ONLY + UNIT_ONLY + BOUNDED + MATRIX_SPD + MATRIX_ANY + VECTOR_ONLY
    )


assert set(FUNCTIONS) >= covered_functions()


# ---------------------------------------------------------------------------- names and mutations

_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def variables_in(text: str) -> list[str]:
    """The grammar's variables that occur in ``text`` (in :data:`TYPES` order)."""
    words = set(_WORD.findall(text))
    return [name for name in TYPES if name in words]


def rename(text: str, mapping: Mapping[str, str]) -> str:
    """Replace whole-word variable names (function names are longer words, so they stay)."""
    return _WORD.sub(lambda m: mapping.get(m.group(0), m.group(0)), text)


def hostile_mapping(ch: Chooser, names: Sequence[str], chance: int = 2) -> dict[str, str]:
    """Rename some of ``names`` (1 in ``chance`` each) to distinct hostile names."""
    taken: set[str] = set(names)
    mapping: dict[str, str] = {}
    for name in names:
        if ch.integer(1, chance) != 1:
            continue
        new = ch.choice(HOSTILE_NAMES)
        if new in taken:
            continue
        taken.add(new)
        mapping[name] = new
    return mapping


_TOKEN = re.compile(r"\d+\.?\d*(?:[eE][+-]?\d+)?|[A-Za-z_]\w*|\.[*/^]|\s+|.", re.S)
_OPERATORS = ("+", "-", "*", "/", ".*", "./", "^", ".^", "'", ">", "<", ",", "(", ")")


def mutate(ch: Chooser, text: str, count: int | None = None) -> str:
    """``text`` with 1-4 random character or token edits."""
    for _ in range(count if count is not None else ch.integer(1, 4)):
        tokens = _TOKEN.findall(text) or [""]
        i = ch.integer(0, len(tokens) - 1)
        kind = ch.integer(0, 11)
        if kind == 0:  # delete a token
            del tokens[i]
        elif kind == 1:  # insert an operator or parenthesis
            tokens.insert(i, ch.choice(_OPERATORS))
        elif kind == 2:  # swap two neighbours
            j = min(i + 1, len(tokens) - 1)
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:  # duplicate a token (``**``, ``''``, ``x x``)
            tokens.insert(i, tokens[i])
        elif kind == 4:  # a huge, tiny or over-long number in place of a token
            tokens[i] = ch.choice(HUGE_NUMBERS)
        elif kind == 5:  # a keyword or hostile name
            tokens[i] = ch.choice(HOSTILE_NAMES)
        elif kind == 6:  # characters that are not in the language
            tokens.insert(i, ch.choice(HOSTILE_TEXTS))
        elif kind == 7:  # unbalanced parentheses
            tokens.insert(i, ch.choice(("(", ")", "((", "))", "()", "(,)")))
        elif kind == 8:  # a division by zero or a 0^-1 for constant folding
            tokens.insert(i, ch.choice(("/0", "./0", "*(0/0)", "0^-1*", "^-1", "/(1-1)", "*1e308*1e308")))
        elif kind == 9:  # delete one character
            flat = "".join(tokens)
            k = ch.integer(0, max(0, len(flat) - 1))
            tokens = [flat[:k], flat[k + 1 :]]
        elif kind == 10:  # a call of a function with a wrong argument count or kind
            tokens.insert(
                i,
                ch.choice(
                    (
                        "eye(",
                        "ones(3,",
                        "zeros(n,m)*",
                        "sum(",
                        "diag(",
                        "vector(",
                        "matrix(",
                        "softmax(",
                        "det(",
                        "eye(0)",
                        "ones(-1)",
                        "eye(1e6)",
                        "ones(1e6,1e6)",
                    )
                ),
            )
        else:  # nest: wrap a prefix in many parentheses or a function
            depth = ch.integer(1, 60)
            tokens = ["(" * depth, *tokens, ")" * depth]
        text = "".join(tokens)
    return text


SEED_TEXTS: tuple[str, ...] = (
    "x'*A*x",
    "B*(A + B)",
    "S + B",
    "(S .* S)*(A + S)",
    "t0'*A*t0 + sum(exp(t0))",
    "1e9999999*x",
    "x/0",
    "(0/0)*x",
    "0^-1*sum(x)",
    "logdet(-eye(3))",
    "softmax(softmax(x))",
    "tr(A*A*A)",
    "norm2(A*x - y)^2/2",
    "sum(log(1 + exp(x)))",
    "logsumexp(A*x) - y'*A*x",
    "det(S)*inv(S)*x",
    "relu(A*x + b)",
    "a^b + c",
    "(x > y) .* z",
    "diag(x)*A*diag(y)",
    "arcsin(0.5*tanh(x))'*y",
)


# ---------------------------------------------------------------------------- values


def values(names: Mapping[str, str], seed: int) -> dict[str, Any]:
    """Random values in each variable's domain, for ``names`` (new name -> kind word).

    Scalars and vectors are positive (in [0.25, 2]), so ``log`` and ``sqrt`` of variables are
    finite; a symmetric matrix is positive definite, a general one a small perturbation of the
    identity (so its determinant is positive too).
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for name, kind in names.items():
        if kind == "scalar":
            out[name] = float(rng.uniform(0.25, 2.0))
        elif kind == "vector":
            out[name] = rng.uniform(0.25, 2.0, N)
        elif kind == "symmetric matrix":
            m = 0.5 * rng.standard_normal((N, N))
            out[name] = m @ m.T + np.eye(N)
        else:
            out[name] = np.eye(N) + 0.4 * rng.standard_normal((N, N))
    return out


# ---------------------------------------------------------------------------- targets


class Failure(Exception):
    """A finding: ``kind`` is ``uncaught`` (a non-library exception) or ``wrong`` (a wrong number)."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Skip(Exception):
    """This point cannot judge the input (not finite, near a kink, too curved for differences)."""


def lib(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call the library: a ``MatrixCalculusError`` passes through, anything else is a finding."""
    try:
        return fn(*args, **kwargs)
    except mc.MatrixCalculusError:
        raise
    except Exception as exc:  # the whole point: any other exception class is a bug
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise Failure(
            "uncaught",
            f"{type(exc).__name__}: {str(exc)[:300]} (at {where.filename.rsplit('/', 1)[-1]}:{where.lineno})",
        ) from None


@dataclass
class Case:
    """One input: expression text, declared types (by name as written), and variables to differentiate."""

    text: str
    types: dict[str, str]
    wrt: list[str] = field(default_factory=list)
    seed: int = 0
    kinks: tuple[str, ...] = ()
    norms: tuple[str, ...] = ()
    point: dict[str, Any] | None = None  # values to use instead of random ones (regressions at a point)

    def as_json(self) -> dict[str, Any]:
        d = {
            "text": self.text,
            "types": self.types,
            "wrt": self.wrt,
            "seed": self.seed,
            "kinks": list(self.kinks),
            "norms": list(self.norms),
        }
        return d if self.point is None else {**d, "point": self.point}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Case:
        return cls(
            d["text"],
            dict(d.get("types", {})),
            list(d.get("wrt", [])),
            int(d.get("seed", 0)),
            tuple(d.get("kinks", ())),
            tuple(d.get("norms", ())),
            d.get("point"),
        )

    def values(self, types: Mapping[str, str] | None = None) -> dict[str, Any]:
        out = values(self.types if types is None else types, self.seed)
        for name, v in (self.point or {}).items():
            out[name] = float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64)
        return out


@dataclass
class Outcome:
    """What a target made of a case: ``ok``, ``error`` (a library error, which is fine), ``skip``, or
    a failure ``uncaught`` / ``wrong``; ``seconds`` is the wall time."""

    status: str
    detail: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status in ("uncaught", "wrong")


def _run(body: Callable[[], str]) -> Outcome:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            detail = body()
        status = "ok"
    except Failure as f:
        status, detail = f.kind, f.detail
    except Skip as s:
        status, detail = "skip", str(s)
    except mc.MatrixCalculusError as e:
        status, detail = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return Outcome(status, detail, time.perf_counter() - start)


def _dims(*exprs: Any) -> dict[str, int]:
    """Every named dimension of these expressions (and of their variables) has size N."""
    dims: dict[str, int] = {}
    for e in exprs:
        # Interior nodes too: a printed derivative can hold a dimension no variable carries any
        # more (tr(ones(n,n)) once S is differentiated away); every size in the fuzzer is N.
        for node in postorder(e.node):
            for d in node.shape:
                if isinstance(d, str):
                    dims[d] = N
    return dims


def _eval(expr: Any, vals: Mapping[str, Any], dims: Mapping[str, int]) -> np.ndarray:
    """Evaluate; a library error (the domain policy: non-finite raises) or a non-finite value is a Skip."""
    try:
        out = np.asarray(lib(expr.evaluate, vals, dims=dict(dims)), dtype=np.float64)
    except mc.EvaluationError as e:
        raise Skip(f"not finite here: {str(e).splitlines()[0]}") from None
    if not np.all(np.isfinite(out)) or float(np.max(np.abs(out), initial=0.0)) > 1e8:
        raise Skip("not finite (or huge) here")
    return out


def _close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=rtol, atol=atol))


# Index notation: an entry x[k], a summation sum_kl, a Kronecker delta(i,j).
_INDEX_NOTATION = re.compile(r"\bsum_[a-z0-9]+ |\bdelta\(|[\w)]\[[a-z(]")


def _reparse_equal(expr: Any, types: Mapping[str, str], vals: Mapping[str, Any], what: str) -> str:
    """Printed text of ``expr`` parses again (same types) to an expression of equal value; returns the text."""
    text = lib(str, expr)
    if len(expr.shape) > 2 or _INDEX_NOTATION.search(text):
        # Order three or more prints in index notation, and so does a matrix result the printer has
        # no matrix notation for: not input syntax yet (its values are checked against finite
        # differences all the same).
        return text
    try:
        # "The same types" are the types the expression was read with: every variable's kind and
        # shape, dimension names included (as the command line prints them under a result), so a
        # dimension used as a value (exp(y)/n for mean) reads back as that dimension.
        inferred = {n: Declared(v.kind, v.shape) for n, v in expr.variables.items()}
        again = lib(mc.parse, text, types=inferred)
    except mc.MatrixCalculusError as e:
        raise Failure("wrong", f"printed {what} {text!r} does not parse: {str(e).splitlines()[0]}") from None
    dims = _dims(expr, again)
    want = _eval(expr, vals, dims)
    try:
        got = np.asarray(lib(again.evaluate, vals, dims=dims), dtype=np.float64)
    except mc.EvaluationError as e:
        raise Failure("wrong", f"printed {what} {text!r} does not evaluate: {str(e).splitlines()[0]}") from None
    if not _close(
        got,
        np.broadcast_to(want, got.shape) if got.size == want.size else want,
        1e-9,
        1e-9 * max(1.0, float(np.max(np.abs(want), initial=0.0))),
    ):
        raise Failure("wrong", f"printed {what} {text!r} evaluates to {got.ravel()[:4]}, not {want.ravel()[:4]}")
    return text


def _near_kink(case: Case, vals: Mapping[str, Any]) -> bool:
    """Whether a kink argument is within 1e-3 of its kink at this point (or cannot be evaluated)."""
    for texts, norm in ((case.kinks, False), (case.norms, True)):
        for text in texts:
            try:
                e = mc.parse(text, types=case.types)
                k = np.asarray(e.evaluate(vals, dims=_dims(e)), dtype=np.float64)
            except Exception:  # a kink text the library cannot evaluate here: do not judge this point
                return True
            size = float(np.sqrt(np.sum(k * k))) if norm else float(np.min(np.abs(k), initial=np.inf))
            if not np.isfinite(size) or size < 1e-3:
                return True
    return False


def _directions(shape: tuple[int, ...], symmetric: bool) -> list[tuple[tuple[int, ...], np.ndarray]]:
    out = []
    for idx in np.ndindex(*shape):
        d = np.zeros(shape)
        if symmetric:
            d[idx] += 0.5
            d[idx[::-1]] += 0.5
        else:
            d[idx] = 1.0
        out.append((idx, d))
    return out


def finite_difference(fn: Callable[[Any], np.ndarray], x0: Any, symmetric: bool, h: float) -> tuple[np.ndarray, float]:
    """Central differences with one Richardson step (O(h^4)), and the gap between steps h and h/2."""
    x0 = np.asarray(x0, dtype=np.float64)
    out: np.ndarray | None = None
    gap = 0.0
    for idx, d in _directions(x0.shape, symmetric):

        def central(step: float, d: np.ndarray = d) -> np.ndarray:
            plus, minus = x0 + step * d, x0 - step * d
            return (
                fn(float(plus) if plus.shape == () else plus) - fn(float(minus) if minus.shape == () else minus)
            ) / (2 * step)

        coarse, fine = central(h), central(h / 2)
        gap = max(gap, float(np.max(np.abs(fine - coarse), initial=0.0)))
        column = (4 * fine - coarse) / 3
        if out is None:
            out = np.zeros(column.shape + x0.shape)
        out[(Ellipsis, *idx)] = column
    assert out is not None
    return out, gap


def _check_fd(fn: Callable[[Any], np.ndarray], x0: Any, symmetric: bool, got: np.ndarray, what: str) -> None:
    """``got`` agrees with central differences of ``fn`` at ``x0``; ill-conditioned points are skipped.

    A disagreement counts only when differences with two quite different steps agree with each
    other: near a kink or a pole they do not, and then the point cannot judge the derivative.
    """
    fd, gap = finite_difference(fn, x0, symmetric, 1e-4)
    scale = max(1.0, float(np.max(np.abs(fd), initial=0.0)))
    if not np.all(np.isfinite(fd)) or gap > 1e-4 * scale:
        raise Skip("too curved here for finite differences")
    if got.shape != fd.shape:
        raise Failure("wrong", f"{what} has shape {got.shape}, finite differences {fd.shape}")
    if _close(got, fd, 1e-5, 1e-6 * scale):
        return
    other, _ = finite_difference(fn, x0, symmetric, 1e-3)
    if not _close(other, fd, 1e-5, 1e-6 * scale):
        raise Skip("finite differences depend on the step here")
    err = float(np.max(np.abs(got - fd)))
    raise Failure("wrong", f"{what} differs from finite differences by {err:.3g} (scale {scale:.3g})")


def run_parse(case: Case) -> Outcome:
    """Parse (any text): only library errors; a parsed expression prints, re-parses and evaluates equal."""

    def body() -> str:
        e = lib(mc.parse, case.text, types=case.types)
        vals = case.values({n: case.types.get(n, _convention(n, v)) for n, v in e.variables.items()})
        try:
            return _reparse_equal(e, case.types, vals, "expression")
        except Skip:
            return "parsed"

    return _run(body)


def _convention(name: str, var: Any) -> str:
    return {"scalar": "scalar", "vector": "vector", "symmetric": "symmetric matrix"}.get(var.kind, "matrix")


def run_derive(case: Case, orders: Sequence[int] = (1, 2)) -> Outcome:
    """Derivatives (orders 1, 2) of a valid expression against finite differences; printed results re-parse."""

    def body() -> str:
        f = lib(mc.parse, case.text, types=case.types)
        vals = case.values()
        dims = _dims(f)
        value = _eval(f, vals, dims)
        _reparse_equal(f, case.types, vals, "expression")
        if _near_kink(case, vals):
            raise Skip("near a kink")
        for w in case.wrt:
            sym = case.types[w] == "symmetric matrix"
            lower: Any = f
            for order in orders:
                d = lib(mc.derivative, f, w, types=case.types, order=order)
                ddims = _dims(f, d)
                got = _eval(d, vals, ddims)
                want_shape = value.shape + (np.shape(vals[w]),)[0] * order
                if got.shape != want_shape:
                    raise Failure("wrong", f"d^{order}/d{w} has shape {got.shape}, expected {want_shape}")
                below = lower

                def fn(x: Any, below: Any = below, w: str = w) -> np.ndarray:
                    return np.asarray(lib(below.evaluate, {**vals, w: x}, dims=_dims(f, below)), dtype=np.float64)

                _check_fd(fn, vals[w], sym, got, f"d^{order}/d{w}")
                _reparse_equal(d, case.types, vals, f"derivative d^{order}/d{w}")
                lower = d
        return "checked"

    return _run(body)


def _dense(a: Any) -> np.ndarray:
    """A compiled result as a real float64 array; a complex one is a wrong result (a real function)."""
    out = np.asarray(a.dense() if isinstance(a, Factored) else a)
    if np.iscomplexobj(out):
        raise Failure("wrong", f"compiled code returns a complex value: {out.ravel()[:2]}")
    return out.astype(np.float64)


def run_compile(case: Case, hessian: bool = True) -> Outcome:
    """``mc.compile`` with several ``wrt`` (dense) equals the interpreter: value, gradient, Hessian."""

    def body() -> str:
        f = lib(mc.parse, case.text, types=case.types)
        vals = case.values()
        kinds = ["value", "gradient"] + (["hessian"] if hessian and not f.shape else [])
        fn = lib(mc.compile, f, wrt=list(case.wrt), derivatives=tuple(kinds), types=case.types, dense=True)
        try:
            want_value = np.asarray(lib(f.evaluate, vals, dims=_dims(f)), dtype=np.float64)
            interpreted: Exception | None = None
        except mc.EvaluationError as e:
            interpreted = e
        try:
            got = lib(fn, vals)
        except mc.MatrixCalculusError as e:
            if interpreted is not None:
                raise  # both paths refuse the point: agreed
            if not np.all(np.isfinite(want_value)):
                raise Skip("compiled raises where evaluate gives a non-finite value") from None
            if _some_derivative_refuses(f, case, vals, kinds):
                raise  # the value is finite but a derivative is not (a kink such as norm2 at 0): agreed
            raise Failure(
                "wrong",
                f"compiled raises {type(e).__name__} ({str(e).splitlines()[0]}) "
                f"where evaluate gives {want_value.ravel()[:3]}",
            ) from None
        if interpreted is not None:
            if all(np.all(np.isfinite(_dense(a))) for a in _flatten(got)):
                raise Failure(
                    "wrong", f"compiled returns finite values where evaluate raises: {str(interpreted).splitlines()[0]}"
                )
            return "both refuse"
        skipped = 0
        wants: list[list[Any]] = [[want_value]]
        for kind in kinds[1:]:
            ds = lib(pure_derivatives, f, list(case.wrt), types=case.types, order=2 if kind == "hessian" else 1)
            wants.append(list(ds))
        for kind, g, w in zip(kinds, got, wants, strict=True):
            g_list = [g] if kind == "value" or len(case.wrt) == 1 else list(g)
            for name, gi, wi in zip(["value"] if kind == "value" else case.wrt, g_list, w, strict=True):
                if kind != "value":
                    try:
                        wi = np.asarray(lib(wi.evaluate, vals, dims=_dims(f, wi)), dtype=np.float64)
                    except mc.EvaluationError:
                        skipped += 1
                        continue
                gi = _dense(gi)
                if not np.all(np.isfinite(wi)):
                    skipped += 1
                    continue
                scale = max(1.0, float(np.max(np.abs(wi), initial=0.0)))
                if gi.shape != wi.shape or not _close(gi, wi, 1e-7, 1e-9 * scale):
                    diff = float(np.max(np.abs(gi - wi))) if gi.shape == wi.shape else float("nan")
                    raise Failure(
                        "wrong",
                        f"compiled {kind} for {name} differs from evaluate by {diff:.3g} "
                        f"(shapes {gi.shape}, {wi.shape})",
                    )
        if skipped:  # compiled may well be right there (stable forms), but nothing could judge it
            raise Skip(f"{skipped} result(s) not finite in the interpreter")
        return "agrees"

    return _run(body)


def _some_derivative_refuses(f: Any, case: Case, vals: Mapping[str, Any], kinds: list[str]) -> bool:
    """Whether the interpreter raises for one of the derivatives that the compiled call also computed."""
    for kind in kinds[1:]:
        for d in lib(pure_derivatives, f, list(case.wrt), types=case.types, order=2 if kind == "hessian" else 1):
            try:
                lib(d.evaluate, vals, dims=_dims(f, d))
            except mc.EvaluationError:
                return True
    return False


def _flatten(items: Any) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out += _flatten(item) if isinstance(item, tuple) else [item]
    return out


TARGETS: dict[str, Callable[[Case], Outcome]] = {"parse": run_parse, "derive": run_derive, "compile": run_compile}


# ---------------------------------------------------------------------------- cases


def _renamed(ch: Chooser, gen: Gen, hostile: int) -> tuple[str, dict[str, str], dict[str, str]]:
    present = variables_in(gen.text)
    mapping = hostile_mapping(ch, present, hostile) if hostile else {}
    types = {mapping.get(n, n): TYPES[n] for n in TYPES}
    return rename(gen.text, mapping), types, mapping


def derive_case(ch: Chooser, seed: int, hostile: int = 3, max_depth: int = 4) -> Case:
    """A valid expression and one or two of its variables (possibly renamed to hostile names)."""
    gen = expression(ch, ch.choice(("s", "s", "v", "m")), ch.integer(1, max_depth), free=8)
    text, types, mapping = _renamed(ch, gen, hostile)
    present = [mapping.get(n, n) for n in variables_in(gen.text)]
    wrt = [ch.choice(present)] if present else []
    return Case(
        text,
        types,
        wrt,
        seed,
        tuple(rename(k, mapping) for k in gen.kinks),
        tuple(rename(k, mapping) for k in gen.norms),
    )


def compile_case(ch: Chooser, seed: int, hostile: int = 2, max_depth: int = 3) -> Case:
    """A valid expression and several ``wrt`` (two or three of its variables, symmetric ones often)."""
    gen = expression(ch, ch.choice(("s", "s", "v", "m")), ch.integer(1, max_depth), free=6)
    text, types, mapping = _renamed(ch, gen, hostile)
    present = [mapping.get(n, n) for n in variables_in(gen.text)]
    k = min(len(present), ch.integer(1, 3))
    wrt: list[str] = []
    for _ in range(k):
        w = ch.choice(present)
        if w not in wrt:
            wrt.append(w)
    return Case(text, types, wrt or [ch.choice(list(types))], seed)


def parse_case(ch: Chooser, seed: int) -> Case:
    """Any text: a grammar expression, a seed text or a mutation of either."""
    source = ch.integer(0, 3)
    if source == 0:
        gen = expression(ch, ch.choice(("s", "v", "m")), ch.integer(0, 4), free=4)
        text, types, _ = _renamed(ch, gen, 3)
        return Case(text, types, [], seed)
    base = ch.choice(SEED_TEXTS) if source == 1 else expression(ch, ch.choice(("s", "v", "m")), ch.integer(0, 3)).text
    text = mutate(ch, base)
    mapping = hostile_mapping(ch, variables_in(text), 4)
    # Declared types only for the names in the text; the others are left to the convention.
    types = {mapping.get(n, n): TYPES[n] for n in variables_in(text) if ch.integer(0, 3)}
    return Case(rename(text, mapping), types, [], seed)


CASES: dict[str, Callable[[Chooser, int], Case]] = {"parse": parse_case, "derive": derive_case, "compile": compile_case}
