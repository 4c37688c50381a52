"""What the page's JSON API computes: requests checked, then answered from the library.

:func:`validate` runs in the server process and only looks at the request (types, lengths,
counts), so that a malformed request is refused before any work starts. :func:`answer` does the
work and runs in a worker process (see :mod:`matrixcalculus.web.workers`), under the page's
:class:`WebLimits`, where a derivation that runs too long can be stopped.

>>> status, body = answer("derivative", validate("derivative", {"expression": "x'*A*x", "wrt": ["x"]}))
>>> status, body["results"][0]["text"]
(200, "(A + A')*x")
"""

from __future__ import annotations

import base64
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from matrixcalculus.api.calculus import LAYOUTS, check, pure_derivatives
from matrixcalculus.api.compiling import codegen
from matrixcalculus.api.explanation import explain
from matrixcalculus.api.expression import Expression, MatrixCalculusNotice, parse
from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g
from matrixcalculus.limits import resource_limits
from matrixcalculus.numeric.check import CheckResult, derivative_label
from matrixcalculus.render.printing import LATEX
from matrixcalculus.web.mathml import mathml

__all__ = ["BACKENDS", "DEFAULT_LIMITS", "KINDS", "RequestError", "WebLimits", "answer", "validate"]

# The words of the variables' table (the library also takes "symmetric" for the last).
KINDS = ("scalar", "vector", "matrix", "symmetric matrix")
BACKENDS = ("numpy", "torch", "jax")
ENDPOINTS = ("parse", "derivative", "compile", "explicit", "explain")


@dataclass(frozen=True)
class WebLimits:
    """The bounds on one request to the page's server (``docs/web.md`` lists them).

    They are tighter than the library's own :class:`~matrixcalculus.limits.Limits`, which suit
    one person at a terminal: a server answers whoever connects.
    """

    # Bytes of a request body: a 2,000-character expression and its options fit many times over.
    max_body_bytes: int = 64_000
    # Characters of an expression (the hosted peer takes a line; a page's box is a few lines).
    max_expression_length: int = 2_000
    # Nodes of any graph built (parsed or derived): the library's max_nodes, for this server.
    max_nodes: int = 50_000
    # Order of a derivative (Hessians are order 2; each order multiplies the work).
    max_order: int = 3
    # Variables differentiated by at once, and declarations in types.
    max_wrt: int = 8
    max_types: int = 64
    # Size of each dimension of an explicit matrix, a picture or a numeric check.
    max_size: int = 6
    # Seconds one request may compute before its worker is stopped (503).
    time_limit: float = 10.0


DEFAULT_LIMITS = WebLimits()


class RequestError(Exception):
    """A request the server refuses, with its HTTP status and a message for the person."""

    def __init__(self, status: int, message: str, **detail: Any):
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, **self.detail}}


# Patterns as text (the re module caches them); no compile( call anywhere in the package.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# A shape as text: numbers "3", "3x4"; names "n", "m x n", "m, n" (an "x" between names needs spaces).
_SIZE = r"(?:\d+|[A-Za-z_][A-Za-z0-9_]*)"
_SHAPE = rf"\s*(\d+)\s*[x×]\s*(\d+)\s*\Z|\s*({_SIZE})\s*\Z|\s*({_SIZE})(?:\s+x\s+|\s*[×,]\s*)({_SIZE})\s*\Z"


def validate(endpoint: str, payload: Any, limits: WebLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The request's fields, checked and normalised; :class:`RequestError` (422) when one is wrong."""
    if not isinstance(payload, dict):
        raise RequestError(422, 'the request body is a JSON object, e.g. {"expression": "x\'*A*x", "wrt": ["x"]}')
    known = {"expression", "types", "wrt", "order", "layout", "check", "size", "seed", "backend", "picture"}
    unknown = sorted(str(k) for k in payload if k not in known)
    if unknown:
        raise RequestError(422, f"unknown field {', '.join(unknown)[:200]}; the fields are {', '.join(sorted(known))}")
    expression = payload.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise RequestError(422, 'expression is a non-empty string, e.g. "x\'*A*x"')
    if len(expression) > limits.max_expression_length:
        raise RequestError(
            422,
            f"the expression has {len(expression):,} characters; this server takes at most "
            f"{limits.max_expression_length:,} (max_expression_length)",
            limit="max_expression_length",
        )
    request: dict[str, Any] = {"expression": expression, "types": _types(payload.get("types"), limits)}
    if endpoint == "parse":
        return request
    request["wrt"] = _wrt(payload.get("wrt"), limits)
    order = payload.get("order", 1)
    if not isinstance(order, int) or isinstance(order, bool) or not 1 <= order <= limits.max_order:
        raise RequestError(
            422, f"order is a whole number from 1 to {limits.max_order}, not {order!r}"[:200], limit="max_order"
        )
    request["order"] = order
    layout = payload.get("layout", "shape")
    if layout not in LAYOUTS:
        raise RequestError(422, f"layout is one of {', '.join(LAYOUTS)}")
    request["layout"] = layout
    request["check"] = _flag(payload.get("check", False), "check")
    request["picture"] = _flag(payload.get("picture", True), "picture")
    request["size"] = _whole(payload.get("size", 3), "size", 1, limits.max_size, "max_size")
    request["seed"] = _whole(payload.get("seed", 0), "seed", 0, 2**31 - 1)
    backend = payload.get("backend", "numpy")
    if backend not in BACKENDS:
        raise RequestError(422, f"backend is one of {', '.join(BACKENDS)}")
    request["backend"] = backend
    return request


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise RequestError(422, f"{name} is true or false")
    return value


def _whole(value: Any, name: str, low: int, high: int, limit: str | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise RequestError(
            422, f"{name} is a whole number from {low} to {high:,}", **({"limit": limit} if limit else {})
        )
    return value


def _wrt(value: Any, limits: WebLimits) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(w, str) and w.strip() for w in items):
        raise RequestError(422, 'wrt is a name or a list of names, e.g. ["x"] or ["W", "b"] or ["[x; y]"]')
    if len(items) > limits.max_wrt:
        raise RequestError(422, f"at most {limits.max_wrt} variables in wrt (max_wrt)", limit="max_wrt")
    if any(len(w) > 200 for w in items):
        raise RequestError(422, "a name in wrt has more than 200 characters")
    return [w.strip() for w in items]


def _types(value: Any, limits: WebLimits) -> dict[str, Any]:
    """``{"A": "symmetric matrix", "W": "3x4", "x": [5], "s": []}`` -> the library's ``types=``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(422, 'types is an object such as {"A": "symmetric matrix", "W": "3x4"}')
    if len(value) > limits.max_types:
        raise RequestError(422, f"at most {limits.max_types} declarations in types (max_types)", limit="max_types")
    types: dict[str, Any] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not re.fullmatch(_NAME, name) or len(name) > 100:
            raise RequestError(422, f"types: {str(name)[:100]!r} is not a variable name")
        types[name] = _spec(name, spec)
    return types


def _spec(name: str, spec: Any) -> Any:
    """A declaration: a kind word, a shape as text (``3x4``, ``n``, ``m x n``) or a list."""
    if isinstance(spec, str):
        word = spec.strip().lower()
        if word in KINDS or word == "symmetric":
            return word
        if shape := re.match(_SHAPE, spec):
            return tuple(int(p) if p.isdigit() else p for p in shape.groups() if p is not None)
        if spec.strip() in ("", "()"):
            return ()
    elif isinstance(spec, list) and len(spec) <= 2:
        if all(
            (isinstance(p, int) and not isinstance(p, bool)) or (isinstance(p, str) and re.fullmatch(_NAME, p))
            for p in spec
        ):
            return tuple(spec)
    raise RequestError(
        422,
        f"types: {name} is declared {str(spec)[:60]!r}; a declaration is scalar, vector, matrix, "
        "symmetric matrix, or a shape such as 3, n, 3x4, m x n",
    )


# ----------------------------------------------------------------------------- the work


def answer(endpoint: str, request: Mapping[str, Any], limits: WebLimits = DEFAULT_LIMITS) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a validated request; a library error is a 422 naming
    what and where (the column of a parse error, the limit exceeded)."""
    try:
        with (
            resource_limits(
                max_length=limits.max_expression_length,
                max_nodes=limits.max_nodes,
                max_order=limits.max_order,
                max_array_bytes=2**26,
                max_check_entries=1_000,
                max_explicit_size=limits.max_size,
            ),
            warnings.catch_warnings(),
        ):
            # Notices are part of the answer (expression.notices), not warnings.
            warnings.simplefilter("ignore", MatrixCalculusNotice)
            return 200, _ANSWERS[endpoint](request)
    except MatrixCalculusError as exc:
        error: dict[str, Any] = {"message": exc.message, "kind": type(exc).__name__}
        if exc.column is not None and exc.text is not None:
            error |= {"column": exc.column, "text": exc.text}
        if exc.limit is not None:
            error["limit"] = exc.limit
        return 422, {"error": error}
    except RecursionError:
        return 422, {"error": {"message": "the expression is nested too deeply", "kind": "RecursionError"}}


def _parse(request: Mapping[str, Any]) -> dict[str, Any]:
    return {"expression": _describe(parse(request["expression"], types=request["types"]))}


def _derivative(request: Mapping[str, Any]) -> dict[str, Any]:
    expr = parse(request["expression"], types=_stack_types(request))
    wrt, order, layout = request["wrt"], request["order"], request["layout"]
    results = pure_derivatives(expr, wrt, types=_stack_types(request), order=order, layout=layout)
    answers = []
    for name, result in zip(wrt, results, strict=True):
        item = {
            "wrt": name,
            "label": derivative_label(name, order),
            "text": str(result),
            "latex": result.latex(),
            "label_latex": _label_latex(name, order, result),
            "index": result.index_notation(),
            "shape": g.shape_text(result.shape) if result.shape else "scalar",
            "layout": layout,
        }
        item["mathml"] = mathml(f"{item['label_latex']} = {item['latex']}")
        if request["check"]:
            report = check(
                expr, name, result, types=_stack_types(request), order=order, layout=layout,
                size=request["size"], seed=request["seed"],
            )  # fmt: skip
            assert isinstance(report, CheckResult)
            error = report.max_abs_error
            item["check"] = {
                "ok": report.ok,
                "text": str(report),
                "max_abs_error": error if math.isfinite(error) else None,
            }
        answers.append(item)
    return {"expression": _describe(expr), "results": answers}


def _compile(request: Mapping[str, Any]) -> dict[str, Any]:
    kinds = ("value", "gradient", "hessian")[: 1 + min(request["order"], 2)]
    source = codegen(
        request["expression"], request["wrt"], derivatives=kinds, backend=request["backend"],
        types=_stack_types(request),
    )  # fmt: skip
    return {"backend": request["backend"], "derivatives": list(kinds), "source": source,
            "filename": f"derivatives_{request['backend']}.py"}  # fmt: skip


def _explicit(request: Mapping[str, Any]) -> dict[str, Any]:
    """Each derivative written entry by entry at ``size`` (the tutorials' explicit small case),
    and the picture of its structure: an SVG, sent base64-encoded for an ``<img>`` (where nothing
    inside it can run)."""
    expr = parse(request["expression"], types=_stack_types(request))
    results = pure_derivatives(
        expr, request["wrt"], types=_stack_types(request), order=request["order"], layout=request["layout"]
    )
    answers = []
    for name, result in zip(request["wrt"], results, strict=True):
        explicit = result.explicit(request["size"])
        latex = explicit.latex()
        item: dict[str, Any] = {
            "wrt": name,
            "title": explicit.title(),
            "sizes": explicit.sizes,
            "shape": " x ".join(map(str, explicit.shape)) or "scalar",
            "text": explicit.text(),
            "latex": latex,
            "mathml": mathml(latex),
        }
        if request["picture"]:
            try:
                svg = explicit.picture("svg")
            except MatrixCalculusError as exc:  # no plot extra (matplotlib): the rest still stands
                item["picture_error"] = exc.message
            else:
                assert isinstance(svg, str)
                item["picture"] = base64.b64encode(svg.encode()).decode("ascii")
                item["picture_alt"] = f"the structure of {explicit.title()}: zero entries blank, formulas dark"
        answers.append(item)
    return {"results": answers}


def _explain(request: Mapping[str, Any]) -> dict[str, Any]:
    """The derivation step by step (``mc.explain``): each step's title and its parts in order,
    prose as text and formulas as MathML made here from the step's LaTeX (cleaned)."""
    if request["order"] != 1:
        raise MatrixCalculusError("explanations are of first derivatives; set the order to 1")
    wrt = request["wrt"]
    derivation = explain(
        request["expression"], wrt[0] if len(wrt) == 1 else wrt, types=_stack_types(request),
        layout=request["layout"], size=request["size"],
    )  # fmt: skip
    steps = []
    for step in derivation.steps:
        parts: list[dict[str, Any]] = []
        for kind, text, tex in step.parts:
            if kind == "prose":
                parts.append({"kind": "prose", "text": text})
            else:
                parts.append({"kind": "math", "text": text, "latex": tex, "mathml": mathml(tex)})
        steps.append({"title": step.title, "text": step.text, "parts": parts})
    return {"question": derivation.question, "steps": steps, "text": str(derivation)}


_ANSWERS = {"parse": _parse, "derivative": _derivative, "compile": _compile, "explicit": _explicit, "explain": _explain}


def _stack_types(request: Mapping[str, Any]) -> dict[str, Any]:
    """The declarations, with the lower-case scalars of a stacked wrt ``[x; y]`` declared
    scalars, as the command line reads ``--wrt "[x; y]"``."""
    types = dict(request["types"])
    for item in request.get("wrt", ()):
        if item.startswith("["):
            for name in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", item):
                if not name[:1].isupper():
                    types.setdefault(name, "scalar")
    return types


def _describe(expr: Expression) -> dict[str, Any]:
    latex = expr.latex()
    return {
        "text": str(expr),
        "latex": latex,
        "mathml": mathml(latex),
        "shape": g.shape_text(expr.shape) if expr.shape else "scalar",
        "variables": [
            {
                "name": name,
                "kind": "symmetric matrix" if v.kind == "symmetric" else v.kind,
                "shape": " x ".join(g.dim_text(d) for d in v.shape),
            }
            for name, v in expr.variables.items()
        ],
        "notices": list(expr.notices),
    }


def _label_latex(name: str, order: int, result: Expression) -> str:
    """``\\frac{\\partial f}{\\partial W}``, with the free indices of a tensor of order three or more."""
    below = LATEX.name(name) if re.fullmatch(_NAME, name) else name.replace("[", "\\left[").replace("]", "\\right]")
    if order == 1:
        label = f"\\frac{{\\partial f}}{{\\partial {below}}}"
    else:
        label = f"\\frac{{\\partial^{{{order}}} f}}{{\\partial {below}^{{{order}}}}}"
    if result.node.rank > 2:
        from matrixcalculus.render.printing import free_indices

        label = f"\\left({label}\\right)_{{{''.join(free_indices(result.node))}}}"
    return label
