"""Explanations: a derivative worked out step by step, in the order the tutorials teach it.

:func:`explain` follows the expression as it was typed: it names intermediate variables where
functions are applied (``u = w'*x + b``, ``z = relu(u)``; see :mod:`~matrixcalculus.transform.chain`),
differentiates each level with the library's own engine, multiplies the local Jacobians
(shapes under each factor), collapses a 3-D or 4-D Jacobian into a vector-Jacobian product where
one appears, writes the entry formula in index notation and says why it has its structure,
reports the simplification rules applied (the simplifier's own trace), shows both layouts and
checks the result against finite differences. Nothing is written per example: every sentence is
chosen by the structure of the graph.

>>> import matrixcalculus as mc
>>> d = mc.explain("sum(w .* x)", "w")
>>> [s.title for s in d.steps][:3]
['The question and its shapes', 'Intermediate variables', 'The chain rule']
>>> str(d.answer)
'x'
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matrixcalculus.api.calculus import (
    LAYOUTS,
    _arrange,
    _expression,
    _names,
    _stacked_names,
    check,
    is_row,
    pure_derivatives,
)
from matrixcalculus.api.expression import Expression, MatrixCalculusNotice, Variable
from matrixcalculus.errors import DerivativeError, MatrixCalculusError
from matrixcalculus.frontend.infer import Declared, infer_with_notices
from matrixcalculus.frontend.syntax import Ast, parse_syntax
from matrixcalculus.ir import graph as g
from matrixcalculus.numeric.check import CheckResult, random_values
from matrixcalculus.render.printing import LATEX, index_notation, to_latex, to_text
from matrixcalculus.render.style import unwrapped
from matrixcalculus.transform import chain
from matrixcalculus.transform.simplify import RULE_STATEMENTS, simplify, traced

# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Step:
    """One step of a derivation: its title, its text, the same in LaTeX, and the expression it is
    about. ``parts``: the step in order, each ``("prose", text, "")`` or ``("math", text, latex)``,
    which the markdown, LaTeX and HTML renderings read.

    >>> Step("Check", "ok", "ok").title
    'Check'
    """

    title: str
    text: str
    latex: str
    expression: Expression | None = None
    parts: tuple[tuple[str, str, str], ...] = field(default=(), repr=False)


class Derivation:
    """A derivative worked out step by step (made by :func:`explain`).

    ``print(d)`` shows the plain text (what ``matrixcalculus EXPR --wrt NAME --explain`` prints);
    ``d.steps`` the :class:`Step` list; ``d.markdown()``, ``d.latex()``, ``d.html()`` the same steps
    for documents, papers and web pages; ``d.answer`` the derivative (a tuple for several variables).
    """

    def __init__(
        self, steps: Sequence[Step], answer: Expression | tuple[Expression, ...], question: str, size: int = 3
    ):
        self.steps = list(steps)
        self.answer = answer
        self.question = question
        self.size = size
        # The answers (by position) whose explicit form the steps show: html(picture=True) draws them.
        self.explicit_shown: tuple[int, ...] = ()

    def picture(self, format: str = "svg", which: int = 0) -> str | bytes:
        """The structure of the explicit Jacobian at the derivation's size: a matrix's nonzero
        pattern, a 3-D tensor's slices side by side, a 4-D tensor's blocks; ``"svg"`` text or
        ``"png"`` bytes (``which``: the variable, for a derivation by several). Needs the ``plot``
        extra (matplotlib)."""
        answers = self.answer if isinstance(self.answer, tuple) else (self.answer,)
        if not isinstance(which, int) or not 0 <= which < len(answers):
            raise MatrixCalculusError(f"which is the position of a variable, 0 to {len(answers) - 1}, not {which!r}")
        return answers[which].picture(self.size, format)

    def __str__(self) -> str:
        blocks = [self.question]
        for k, step in enumerate(self.steps, 1):
            lines = ("   " + line if line else "" for line in step.text.splitlines())
            blocks.append(f"{k}. {step.title}\n" + "\n".join(lines))
        return "\n\n".join(blocks)

    def __repr__(self) -> str:
        return f"Derivation({self.question!r}, {len(self.steps)} steps)"

    def markdown(self) -> str:
        """The steps in Markdown: a heading per step, prose as paragraphs, formulas as LaTeX in ``$$``
        blocks (as GitHub and Jupyter render them)."""
        out = [f"## {_md_escape(self.question)}"]
        for k, step in enumerate(self.steps, 1):
            out.append(f"### {k}. {_md_escape(step.title)}")
            for kind, text, tex in step.parts:
                out.append(_md_escape(text) if kind == "prose" else f"$$\n{tex}\n$$")
        return "\n\n".join(out) + "\n"

    def latex(self) -> str:
        """The steps as a LaTeX document fragment (``\\section*``, text, ``\\[ ... \\]``), for ``\\input``
        in a document that loads ``amsmath`` (``\\underset``, ``bmatrix``)."""
        out = [f"\\section*{{{_tex_prose(self.question)}}}"]
        for k, step in enumerate(self.steps, 1):
            out.append(f"\\subsection*{{{k}. {_tex_prose(step.title)}}}")
            out.append(step.latex)
        return "\n\n".join(out) + "\n"

    def html(self, picture: bool = False) -> str:
        """The steps as an HTML fragment: every text escaped, formulas as MathML (made here, on the
        server side, by latex2mathml: the ``html`` extra). ``picture=True``: the explicit small
        case's step also shows :meth:`picture` as inline SVG (the ``plot`` extra)."""
        try:
            from latex2mathml.converter import convert
        except ImportError:  # pragma: no cover - depends on the environment
            raise MatrixCalculusError(
                "Derivation.html() needs latex2mathml: pip install 'matrixcalculus[html]'"
            ) from None
        out = ['<article class="derivation">', f"<h2>{html.escape(self.question)}</h2>"]
        for k, step in enumerate(self.steps, 1):
            out.append(f'<section class="step"><h3>{k}. {html.escape(step.title)}</h3>')
            for kind, text, tex in step.parts:
                if kind == "prose":
                    out.append(f"<p>{html.escape(text)}</p>")
                else:
                    mathml = convert(tex, display="block")
                    out.append(f'<div class="formula" title="{html.escape(text, quote=True)}">{mathml}</div>')
            if picture and step.title == "The explicit small case":
                for k in self.explicit_shown:
                    svg = str(self.picture("svg", k))
                    out.append(f'<figure class="picture">{svg[svg.index("<svg") :]}</figure>')
            out.append("</section>")
        out.append("</article>")
        return "\n".join(out)

    def _repr_html_(self) -> str | None:
        """Jupyter shows the steps with typeset formulas (MathML) and the explicit case's picture;
        without latex2mathml or matplotlib, as much as they allow (else :meth:`_repr_markdown_`)."""
        for picture in (True, False):
            try:
                return self.html(picture=picture)
            except (MatrixCalculusError, ImportError):
                continue
        return None

    def _repr_markdown_(self) -> str:
        """The steps in Markdown with ``$$`` formulas, for frontends that show no HTML."""
        return self.markdown()


class _Body:
    """The parts of one step as it is being written."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, str]] = []

    def say(self, prose: str) -> None:
        self.parts.append(("prose", prose, ""))

    def show(self, text: str, tex: str) -> None:
        self.parts.append(("math", text, tex))

    def step(self, title: str, expression: Expression | None = None) -> Step:
        lines = []
        for kind, t, _ in self.parts:
            # A formula is indented, every line of it (an explicit tensor spans several).
            lines.append(t if kind == "prose" else "\n".join("  " + line if line else "" for line in t.splitlines()))
        text = "\n".join(lines)
        tex = "\n\n".join(_tex_prose(t) if kind == "prose" else f"\\[ {x} \\]" for kind, t, x in self.parts)
        return Step(title, text, tex, expression, tuple(self.parts))


_TEX_SPECIALS = {c: "\\" + c for c in "&%$#_{}"} | {
    "\\": "\\textbackslash{}",
    "^": "\\^{}",
    "~": "\\~{}",
    "×": "$\\times$",
    "∂": "$\\partial$",
    "δ": "$\\delta$",
    "·": "$\\cdot$",
    "→": "$\\to$",
    "'": "\\textquotesingle{}",
}


def _tex_prose(text: str) -> str:
    """Plain text as LaTeX text (special characters escaped, the few symbols we use in math mode)."""
    return "".join(_TEX_SPECIALS.get(c, c) for c in text)


def _md_escape(text: str) -> str:
    """Prose for Markdown: characters that would start emphasis or a tag are escaped."""
    return "".join("\\" + c if c in "*_`<>[]#|" else c for c in text)


# --------------------------------------------------------------------------- words and shapes


_KIND = {0: "scalar", 1: "vector", 2: "matrix"}


def _kind(shape: g.Shape) -> str:
    return _KIND.get(len(shape), f"tensor of order {len(shape)}")


def _dims(shape: g.Shape) -> str:
    return "×".join(g.dim_text(d) for d in shape)


def _shape_words(shape: g.Shape) -> str:
    """``a scalar``, ``a vector of length n``, ``an m×n matrix``."""
    if not shape:
        return "a scalar"
    if len(shape) == 1:
        return f"a vector of length {g.dim_text(shape[0])}"
    return f"{'an' if _dims(shape)[:1] in 'aefhilmnorsx' else 'a'} {_dims(shape)} {_kind(shape)}"


def jacobian_shape(out: g.Shape, wrt: g.Shape) -> str:
    """The shape of d(out)/d(wrt) in the numerator layout, as the tutorials draw it: a scalar by a
    vector is ``1×n``, a vector by a scalar ``m×1``, a vector by a vector ``m×n``; with a matrix,
    ``out`` axes then the variable's reversed (a scalar by an m×n matrix is ``n×m``).

    A tensor (order three or more) has the function's axes, then the variable's: ``m×m×n``.

    >>> jacobian_shape((), ("n",)), jacobian_shape(("m",), ()), jacobian_shape((), ("m", "n"))
    ('1×n', 'm×1', 'n×m')
    """
    if len(out) <= 1 and len(wrt) <= 1:
        rows = g.dim_text(out[0]) if out else "1"
        columns = g.dim_text(wrt[0]) if wrt else "1"
        return f"{rows}×{columns}"
    if len(out) + len(wrt) > 2:
        # A tensor: the function's axes, then the variable's, as the tutorials draw m×m×n.
        return _dims(tuple(out) + tuple(wrt))
    return _dims(tuple(out) + tuple(reversed(wrt)))


def _tex_dims(text: str) -> str:
    return text.replace("×", "\\times ").replace("*", "\\,")


def _case(out: g.Shape, wrt: g.Shape) -> str:
    """Which of the tutorials' cases: ``a scalar by a vector`` and what its Jacobian is."""
    a, b = _kind(out), _kind(wrt)
    if len(out) <= 1 and len(wrt) <= 1:
        number = {(0, 0): 1, (0, 1): 2, (1, 0): 3, (1, 1): 4}[(len(out), len(wrt))]
        what = {
            1: "the derivative is a scalar, as in single-variable calculus",
            2: "the gradient: one partial derivative per entry of the variable",
            3: "one derivative per entry of the function",
            4: "the Jacobian: one row per entry of the function, one column per entry of the variable",
        }[number]
        return f"{a} by {b} (the tutorials' case {number}: {what})"
    if not out:
        return f"{a} by {b}: one partial derivative per entry of the matrix, a matrix again"
    order = len(out) + len(wrt)
    return (
        f"{a} by {b}: one partial derivative per entry of the function and entry of the variable, "
        f"a tensor of order {order}"
    )


def _why_shape(out: g.Shape, wrt: g.Shape, layout: str) -> str:
    f_axes = _dims(out) or "1"
    if layout == "shape":
        if not out:
            return (
                "in the shape layout a derivative has the shape of f followed by that of the variable: "
                "a gradient has its variable's shape"
            )
        return f"in the shape layout the axes of f ({f_axes}) come first, then the variable's ({_dims(wrt) or '1'})"
    if layout == "numerator":
        if not out and len(wrt) == 1:
            return (
                "in the numerator layout the partial derivatives of f lie along a row: the 1×n row the tutorials draw"
            )
        return (
            "in the numerator layout each entry of f has a row of partial derivatives: rows follow f, "
            "columns the variable (reversed for a matrix)"
        )
    return "the denominator layout is the numerator layout transposed: rows follow the variable, columns f"


# --------------------------------------------------------------------------- printing helpers


def _text(node: g.Node, row: bool | None = None) -> str:
    if node.rank > 2:
        return index_notation(node)
    return to_text(node, result=True, share=True, row=row)


def _tex(node: g.Node, row: bool | None = None) -> str:
    if node.rank > 2:
        return index_notation(node, LATEX)
    return to_latex(node, result=True, share=True, row=row)


def _numerator(node: g.Node, out_rank: int) -> tuple[g.Node, bool]:
    """A shape-layout derivative in the numerator layout, and whether it is a 1×n row."""
    arranged = _arrange(node, out_rank, "numerator")
    return arranged, is_row(out_rank, arranged.rank, "numerator")


def _in_layout(node: g.Node, out_rank: int, layout: str) -> tuple[g.Node, bool]:
    """A shape-layout derivative in ``layout``, and whether it is a row."""
    arranged = _arrange(node, out_rank, layout)
    return arranged, is_row(out_rank, arranged.rank, layout)


def _label(top: str, var: str) -> tuple[str, str]:
    """``df/dw`` and its LaTeX."""
    return f"d{top}/d{var}", f"\\frac{{\\partial {LATEX.name(top)}}}{{\\partial {LATEX.name(var)}}}"


def _entry_label(top: str, out_rank: int, var: str, idx: Sequence[str]) -> tuple[str, str]:
    """``∂f_i/∂x_j`` (indices of f first, then of the variable) and its LaTeX."""
    f_idx, w_idx = idx[:out_rank], idx[out_rank:]
    f_sub = "_" + "".join(f_idx) if f_idx else ""
    w_sub = "_" + "".join(w_idx) if w_idx else ""
    tex_f = _tex_entry(top, f_idx)
    tex_w = _tex_entry(var, w_idx)
    return f"∂{top}{f_sub}/∂{var}{w_sub}", f"\\frac{{\\partial {tex_f}}}{{\\partial {tex_w}}}"


def _tex_entry(name: str, idx: Sequence[str]) -> str:
    """``x_{i}``; a name with a subscript of its own is braced first: ``{W_{1}}_{ij}``."""
    base = LATEX.name(name)
    if not idx:
        return base
    return f"{{{base}}}_{{{''.join(idx)}}}" if "_" in base else f"{base}_{{{''.join(idx)}}}"


def _local_text(node: g.Node, out_shape: g.Shape, top: str, var: str) -> tuple[str, str]:
    """A local derivative for reading: matrix notation in the numerator layout, or for a tensor
    its entry formula (index notation)."""
    if node.rank > 2:
        from matrixcalculus.render.index import free_indices

        idx = free_indices(node)
        label, tex_label = _entry_label(top, len(out_shape), var, idx)
        return f"{label} = {index_notation(node)}", f"{tex_label} = {index_notation(node, LATEX)}"
    arranged, row = _numerator(node, len(out_shape))
    label, tex_label = _label(top, var)
    return f"{label} = {_text(arranged, row)}", f"{tex_label} = {_tex(arranged, row)}"


# --------------------------------------------------------------------------- the walk


@dataclass
class _Plan:
    """Everything the steps are written from."""

    expr: Expression
    top: str
    wrts: list[g.Var]
    names: list[str]
    single: bool  # one variable asked for (not a list): the answer is one expression
    layout: str
    answers: tuple[Expression, ...]  # in the chosen layout
    shape_answers: list[g.Node]  # in the shape layout
    paths: dict[str, list[chain.Level]]  # per variable name, top first
    variables: dict[g.Node, g.Var]  # intermediate node -> its variable
    trace: list[tuple[str, g.Node, g.Node]]
    # Per variable, the derivative (shape layout) in the names of the chain (delta_1*x'), where
    # backpropagation found one: the later steps read it instead of the answer written out.
    short: dict[str, g.Node]
    # Positions of the answers whose explicit form is shown.
    explicit_shown: list[int] = field(default_factory=list)
    # Local Jacobians by (definition, variable): several steps read the same one.
    locals_: dict[tuple[g.Node, g.Var], g.Node] = field(default_factory=dict)
    # The typed tree's subtrees (id -> (subtree, node)): a level is written as it was typed.
    subtrees: dict[int, tuple[Ast, g.Node]] = field(default_factory=dict)


def _local(plan: _Plan, level: chain.Level, by: g.Var) -> g.Node:
    """The level's own derivative by ``by`` (the variable below it, or the one differentiated by)."""
    key = (level.definition, by)
    if key not in plan.locals_:
        plan.locals_[key] = chain.local_jacobian(level, by)
    return plan.locals_[key]


def _typed_tree(expr: Expression) -> tuple[Ast | None, dict[int, tuple[Ast, g.Node]]]:
    """The expression's syntax tree, each subtree with its graph node (None if it cannot be read back)."""
    try:
        source = expr._text()
        subtrees: dict[int, tuple[Ast, g.Node]] = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MatrixCalculusNotice)
            root, _, _, _ = infer_with_notices(parse_syntax(source), source, expr._declared(), subtrees=subtrees)
    except MatrixCalculusError:
        return None, {}
    if root is not expr.node:
        return None, {}
    children = {id(a) for ast, _ in subtrees.values() for a in ast.args}
    tops = [ast for key, (ast, node) in subtrees.items() if key not in children and node is root]
    return (tops[0] if tops else None), subtrees


def _free_name(candidates: Sequence[str], taken: set[str]) -> str:
    for name in candidates:
        if name not in taken and not any(t.startswith(name) and t[len(name) :].isdigit() for t in taken):
            return name
    k = 1
    while f"v{k}" in taken:
        k += 1
    return f"v{k}"


def _name_intermediates(cut_lists: Sequence[Sequence[chain.Cut]], taken: set[str]) -> dict[g.Node, g.Var]:
    """A variable per intermediate: arguments ``u`` (``u1, u2, ...`` from the innermost out, as
    layers are numbered), function values ``z``; names of the expression are avoided."""
    depth: dict[g.Node, int] = {}
    role: dict[g.Node, str] = {}
    for cuts in cut_lists:
        for k, c in enumerate(cuts):
            depth[c.node] = max(depth.get(c.node, 0), k + 1)
            role.setdefault(c.node, c.role)
    out: dict[g.Node, g.Var] = {}
    for kind, candidates in (("argument", ("u", "v", "r", "s")), ("result", ("z", "h", "y", "q"))):
        members = sorted((n for n in depth if role[n] == kind), key=lambda n: -depth[n])
        if not members:
            continue
        letter = _free_name(candidates, taken)
        taken.add(letter)
        for k, node in enumerate(members, 1):
            name = letter if len(members) == 1 else f"{letter}{k}"
            out[node] = g.var(name, _KIND.get(node.rank, "matrix"), node.shape)
    return out


def _plan(f: str | Expression, wrt: Any, types: Mapping[str, Any] | None, layout: str) -> _Plan:
    expr = _expression(f, types, wrt)
    names, single = _names(wrt if isinstance(wrt, str | Expression | Variable) else list(wrt), stacks=True)
    answers = pure_derivatives(expr, names, types=types, layout=layout)
    shape_answers = (
        [a.node for a in pure_derivatives(expr, names, types=types)] if layout != "shape" else [a.node for a in answers]
    )
    taken = set(expr.variables) | {d for v in expr.variables.values() for d in map(str, v.shape)}
    top = _free_name(("f", "L", "F"), set(expr.variables))
    taken.add(top)
    wrts: list[g.Var] = []
    for name in names:
        if _stacked_names(name) is None and name in expr.variables:
            wrts.append(expr.variables[name].node)
    root, subtrees = _typed_tree(expr)
    cut_lists = {w.name: (chain.path(root, subtrees, w) if root is not None else []) for w in wrts}
    variables = _name_intermediates(list(cut_lists.values()), taken)
    by_name = {w.name: w for w in wrts}
    paths = {
        name: chain.levels(expr.node, cuts, variables, by_name[name], top, root) for name, cuts in cut_lists.items()
    }
    return _Plan(
        expr, top, wrts, names, single, layout, answers, shape_answers, paths, variables, [], {}, subtrees=subtrees
    )


def _typed_latex(text: str, types: Mapping[str, Declared]) -> str | None:
    """The LaTeX of ``text`` with its functions as typed (``\\max(0, u)``, not relu), or None."""
    try:
        with warnings.catch_warnings(), g.as_typed():
            warnings.simplefilter("ignore", MatrixCalculusNotice)
            node, _, form, _ = infer_with_notices(parse_syntax(text), text, types)
    except MatrixCalculusError:
        return None
    return to_latex(node, result=False, row=form == "r" if node.rank == 1 else None)


def _typed_definition(plan: _Plan, level: chain.Level) -> tuple[str, str] | None:
    """The level's definition as the user typed it, the intermediates below it by their names
    (``f = max(0, u)``, where the graph holds ``relu(u)``), in text and LaTeX; None when the typed
    text does not read back as the definition (then the definition is printed from the graph)."""
    if level.ast is None:
        return None
    named = {v for v in g.postorder(level.definition) if isinstance(v, g.Var)}
    names = {
        key: plan.variables[node].name
        for key, (_, node) in plan.subtrees.items()
        if node in plan.variables and plan.variables[node] in named
    }
    text = chain.typed_text(plan.expr._text(), level.ast, names)
    text = unwrapped(text) if text is not None else None  # u = w'*x + b, typed (w'*x + b)
    if text is None or not all(isinstance(d, int | str) for v in named for d in v.shape):
        return None
    # Read back with every name of the definition declared as it is there: the same graph, or no.
    types = {v.name: Declared(v.kind, v.shape) for v in named}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MatrixCalculusNotice)
            node, _, _, _ = infer_with_notices(parse_syntax(text), text, types)
    except MatrixCalculusError:
        return None
    if simplify(node) is not simplify(level.definition):
        return None
    tex = _typed_latex(text, types)
    return (text, tex) if tex is not None else None


# --------------------------------------------------------------------------- the steps


def _question(plan: _Plan) -> Step:
    body = _Body()
    expr, top = plan.expr, plan.top
    # As typed, in LaTeX too: the neuron is max(0, w'x + b), as the user wrote it.
    typed_tex = _typed_latex(expr._source, expr._declared()) if expr._source is not None else None
    body.show(f"{top} = {_source(expr)}", f"{LATEX.name(top)} = {typed_tex or expr.latex()}")
    for v in expr.variables.values():
        body.say(f"{v.name}: {_shape_words(v.shape)}")
    for scalar, other in _expansions(expr.node):
        body.say(
            f"Scalar expansion: the scalar {_text(scalar)} meets {_shape_words(other.shape)} entry by entry, as if it "
            f"were {_text(scalar)}*{_text(g.ones(other.shape))}, the same number in every entry."
        )
    for name, answer in zip(plan.names, plan.answers, strict=True):
        stacked = _stacked_names(name)
        if stacked is not None:
            wrt_shape: g.Shape = (len(stacked),)
            body.say(
                f"with respect to {name}: the stack of the scalars {', '.join(stacked)}, "
                f"a vector of length {len(stacked)}"
            )
        elif name in expr.variables:
            wrt_shape = expr.variables[name].shape
        else:
            body.say(f"{name} does not occur in {top}: its derivative is zero")
            continue
        body.say(f"d{top}/d{name} is the derivative of {_case(expr.shape, wrt_shape)}.")
        if answer.node.rank <= 2:
            shape = jacobian_shape(expr.shape, wrt_shape) if plan.layout == "numerator" else _answer_dims(answer, plan)
        else:
            shape = _dims(answer.shape)
        body.say(f"Its shape in the {plan.layout} layout is {shape}: {_why_shape(expr.shape, wrt_shape, plan.layout)}.")
    return body.step("The question and its shapes", expr)


def _source(expr: Expression) -> str:
    """The expression as the user wrote it (the text parsed), else as it prints."""
    return " ".join(expr._source.split()) if expr._source is not None else str(expr)


def _expansions(root: g.Node) -> list[tuple[g.Node, g.Node]]:
    """Scalars repeated over a tensor (``x + a``, ``a*x``): ``(scalar, the tensor it meets)``, read off
    the graph: a contraction of a scalar with ``ones`` (a sum's broadcast) or with a tensor it scales."""
    found: dict[g.Node, g.Node] = {}
    for node in g.postorder(root):
        if not isinstance(node, g.Contract) or not node.rank:
            continue
        scalars = [op for op, labs in zip(node.args, node.labels, strict=True) if not labs and op.rank == 0]
        tensors = [op for op in node.args if op.rank]
        # A stack literal places its scalars with unit vectors: no expansion there.
        placed = any(isinstance(op, g.Embed) or (isinstance(op, g.Add) and _is_placement(op)) for op in tensors)
        if len(scalars) == 1 and tensors and not placed and not isinstance(scalars[0], g.Const):
            found.setdefault(scalars[0], node)
    return list(found.items())


def _is_placement(node: g.Node) -> bool:
    return all(isinstance(op, g.Embed) for term in node.args if isinstance(term, g.Contract) for op in term.args)


def _answer_dims(answer: Expression, plan: _Plan) -> str:
    if answer.node.rank == 1 and answer._form == "r":
        return f"1×{g.dim_text(answer.shape[0])}"
    if answer.node.rank == 1 and plan.layout != "shape":
        return f"{g.dim_text(answer.shape[0])}×1"
    return _dims(answer.shape) or "1×1"


def _intermediates(plan: _Plan) -> Step | None:
    """Each level, innermost first: its definition, its own derivative and that derivative's shape."""
    body = _Body()
    seen: set[tuple[g.Node, str]] = set()
    rows: list[tuple[chain.Level, g.Var]] = []
    depth: dict[g.Node, int] = {}
    for w in plan.wrts:
        for k, level in enumerate(plan.paths[w.name]):
            depth[level.value] = max(depth.get(level.value, 0), k)
            by = level.below if level.below is not None else w
            if (level.value, by.name) not in seen:
                seen.add((level.value, by.name))
                rows.append((level, by))
    rows.sort(key=lambda row: depth[row[0].value])  # stable: the top first, each level together
    if all(level.role == "top" for level, _ in rows):
        return None
    body.say(
        "Name the parts where functions are applied, as the tutorials do, and differentiate each on its own "
        "(numerator layout: one row per entry of the part):"
    )
    # Innermost first: the order of the levels reversed, each level once, defined by the level
    # below it where a path has one.
    definitions: dict[str, chain.Level] = {}
    for level, _ in rows:
        if level.below is not None or level.name not in definitions:
            definitions[level.name] = level
    defined: set[str] = set()
    for level, by in reversed(rows):
        if level.name not in defined:
            defined.add(level.name)
            definition = definitions[level.name].definition
            # As typed where that reads back as the definition: f = max(0, u), not relu(u).
            typed = _typed_definition(plan, definitions[level.name])
            text, tex = typed if typed is not None else (_text(definition), _tex(definition))
            body.show(f"{level.name} = {text}", f"{LATEX.name(level.name)} = {tex}")
        local = _local(plan, level, by)
        text, tex = _local_text(local, level.value.shape, level.name, by.name)
        shape = jacobian_shape(level.value.shape, by.shape)
        body.show(f"{text}    ({shape})", f"{tex} \\quad ({_tex_dims(shape)})")
    return body.step("Intermediate variables")


def _chain_step(plan: _Plan) -> Step | None:
    body = _Body()
    scalar = not plan.expr.shape
    deltas: dict[g.Node, tuple[g.Var, g.Node]] = {}  # value node -> (delta variable, its value)
    taken = set(plan.expr.variables) | {v.name for v in plan.variables.values()}
    with traced() as trace:
        for w in plan.wrts:
            levels = plan.paths[w.name]
            arguments = sum(level.role == "argument" for level in levels)
            tensor = _local(plan, levels[-1], levels[-1].below or w).rank > 2
            if len(levels) > 1 and len(plan.wrts) == 1:
                _jacobian_product(plan, w, levels, body)
            if scalar and len(levels) > 1 and (len(plan.wrts) > 1 or arguments > 1 or tensor):
                _backprop(plan, w, levels, deltas, taken, body, final=not tensor)
            elif len(levels) == 1:
                _whole(plan, w, levels[0], body)
            if tensor:
                _collapse(plan, w, levels, deltas, taken, body)
    plan.trace.extend(trace)
    for name, node in zip(plan.names, plan.shape_answers, strict=True):
        stacked = _stacked_names(name)
        if stacked is not None:
            _stacked_rows(plan, name, stacked, node, body)
    answer = plan.answers[0] if len(plan.answers) == 1 else None
    if not body.parts:
        return None
    return body.step("The chain rule", answer)


def _stacked_rows(plan: _Plan, name: str, stacked: list[str], node: g.Node, body: _Body) -> None:
    """By a stack ``[x; y]`` of scalars: the row of each entry of f is its gradient by the stack,
    and the Jacobian stacks those rows (the numerator layout)."""
    top = plan.top
    if node.rank != 2 or not isinstance(node.shape[0], int):
        body.say(f"d{top}/d{name} stacks the derivatives by {', '.join(stacked)} side by side:")
        arranged, row = _in_layout(node, plan.expr.node.rank, plan.layout)
        body.show(f"d{top}/d{name} = {_text(arranged, row)}", f"{_label(top, name)[1]} = {_tex(arranged, row)}")
        return
    body.say(f"Each entry of {top} has a gradient by {name}, a row; the Jacobian stacks the rows:")
    for k in range(node.shape[0]):
        entry = simplify(g.contract([node, g.embed(node.shape[0], k)], [(0, 1), (0,)], (1,)))
        body.show(
            f"grad {top}_{k + 1} = {_text(entry, True)}",
            f"\nabla {LATEX.name(top)}_{{{k + 1}}} = {_tex(entry, True)}",
        )
    arranged, row = _numerator(node, 1)
    body.show(f"d{top}/d{name} = {_text(arranged, row)}", f"{_label(top, name)[1]} = {_tex(arranged, row)}")


def _jacobian_product(plan: _Plan, w: g.Var, levels: Sequence[chain.Level], body: _Body) -> None:
    """``df/dw = df/du · du/dw``, the shapes under each factor, the factors, and the product."""
    top = plan.top
    names = [level.name for level in levels] + [w.name]
    shapes = [level.value.shape for level in levels] + [w.shape]
    factors = [f"d{names[k]}/d{names[k + 1]}" for k in range(len(levels))]
    tex_factors = [_label(names[k], names[k + 1])[1] for k in range(len(levels))]
    dims = [jacobian_shape(shapes[k], shapes[k + 1]) for k in range(len(levels))]
    whole = jacobian_shape(plan.expr.shape, w.shape)
    if any(len(shapes[k]) + len(shapes[k + 1]) > 2 for k in range(len(levels))):
        # With a tensor among the factors the product is read in the shape layout (the shape of
        # the variable for a scalar function), each scalar a 1 in front, as the first tutorial does.
        whole = _dims(plan.expr.shape + w.shape)
    body.say("The chain rule multiplies the local derivatives, a product of Jacobians; their shapes chain up:")
    body.show(
        f"d{top}/d{w.name} = " + " · ".join(factors),
        _label(top, w.name)[1] + " = " + " \\, ".join(tex_factors),
    )
    body.show(
        f"{whole} = " + "".join(f"({d})" for d in dims),
        f"\\underset{{{_tex_dims(whole)}}}{{{_label(top, w.name)[1]}}} = "
        + " \\, ".join(f"\\underset{{{_tex_dims(d)}}}{{{t}}}" for d, t in zip(dims, tex_factors, strict=True)),
    )
    jacobians = [_local(plan, level, level.below or w) for level in levels]
    if all(j.rank <= 2 for j in jacobians):
        texts, texes = [], []
        for level, jac in zip(levels, jacobians, strict=True):
            arranged, row = _numerator(jac, level.value.rank)
            text = _text(arranged, row)
            texts.append(_factor(text))
            tex = _tex(arranged, row)
            texes.append(tex if _factor(text) == text else f"\\left({tex}\\right)")
        body.show(f"d{top}/d{w.name} = " + " · ".join(texts), _label(top, w.name)[1] + " = " + " \\, ".join(texes))
    product = chain.chain_product(jacobians, [level.value.shape for level in levels[1:]])
    values: dict[g.Node, g.Node] = {level.variable: level.value for level in levels[1:] if level.variable is not None}
    multiplied = simplify(chain.substitute(simplify(product), values))
    out_rank = plan.expr.node.rank
    arranged = _arrange(multiplied, out_rank, plan.layout)
    row = is_row(out_rank, arranged.rank, plan.layout)
    if arranged.rank <= 2:
        body.say(f"Multiplied out, with each intermediate written out again, and simplified ({plan.layout} layout):")
        body.show(f"d{top}/d{w.name} = {_text(arranged, row)}", f"{_label(top, w.name)[1]} = {_tex(arranged, row)}")


def _factor(text: str) -> str:
    """A factor of a written product: parenthesised unless it is one name (maybe transposed), one
    call or one group: ``x'``, ``diag(1 ./ u)``, ``(u > 0)``; but ``(-diag(y)*X)``."""
    head = text.rstrip("'")
    if head.replace("_", "").isalnum():
        return text
    name, paren, _ = head.partition("(")
    if paren and (not name or name.replace("_", "").isalnum()) and _closes_at_end(head[len(name) :]):
        return text
    return f"({text})"


def _closes_at_end(text: str) -> bool:
    depth = 0
    for k, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and k < len(text) - 1:
            return False
    return True


def _delta_name(level: chain.Level, taken: set[str]) -> str:
    suffix = level.name.lstrip("uvrs")
    name = f"delta_{suffix}" if suffix.isdigit() else "delta"
    while name in taken:
        name += "_"
    return name


def _backprop(
    plan: _Plan,
    w: g.Var,
    levels: Sequence[chain.Level],
    deltas: dict[g.Node, tuple[g.Var, g.Node]],
    taken: set[str],
    body: _Body,
    final: bool = True,
) -> None:
    """Backpropagation: the error signal δ = df/du of each named argument, once, each from the
    one above it, then the gradient by ``w`` from the last: as a vector-Jacobian product."""
    top = plan.top
    cotangent: g.Node = g.const(1)
    for k, level in enumerate(levels):
        if level.below is None:
            if not final:
                return  # the collapse of the tensor at this level says it
            gradient = chain.pull_back(level, w, cotangent)
            plan.short[w.name] = gradient
            arranged, row = _in_layout(gradient, 0, plan.layout)
            label, tex_label = _label(top, w.name)
            body.show(f"{label} = {_text(arranged, row)}", f"{tex_label} = {_tex(arranged, row)}")
            return
        below = levels[k + 1]
        if below.value in deltas:
            cotangent = deltas[below.value][0]
            continue
        pulled = chain.pull_back(level, w, cotangent)
        if below.role != "argument":
            cotangent = pulled  # a function's value: its signal goes on to its argument unnamed
            continue
        name = _delta_name(below, taken)
        taken.add(name)
        delta = g.var(name, _KIND.get(pulled.rank, "matrix"), pulled.shape)
        deltas[below.value] = (delta, pulled)
        if len(deltas) == 1:
            body.say(
                f"Backpropagation: the error signal of each intermediate u is δ = d{top}/du (the shape of u); "
                "each comes from the one above it by a vector-Jacobian product, and is written once:"
            )
        body.show(
            f"{name} = d{top}/d{below.name} = {_text(pulled)}",
            f"{LATEX.name(name)} = {_label(top, below.name)[1]} = {_tex(pulled)}",
        )
        cotangent = delta


def _whole(plan: _Plan, w: g.Var, level: chain.Level, body: _Body) -> None:
    """No intermediate: the derivative of the whole, from the rules of its operations."""
    top = plan.top
    jac = _local(plan, level, w)
    if jac.rank > 2:
        return  # its entry formula and the collapse below say it
    arranged, row = _in_layout(jac, plan.expr.node.rank, plan.layout)
    label, tex_label = _label(top, w.name)
    body.say(
        f"{top} is differentiated as a whole, by the rules of its operations (no function application to name "
        f"in between; {plan.layout} layout):"
    )
    body.show(f"{label} = {_text(arranged, row)}", f"{tex_label} = {_tex(arranged, row)}")


def _collapse(
    plan: _Plan,
    w: g.Var,
    levels: Sequence[chain.Level],
    deltas: dict[g.Node, tuple[g.Var, g.Node]],
    taken: set[str],
    body: _Body,
) -> None:
    """A 3-D or 4-D Jacobian at the last level: never formed, multiplied by a cotangent instead."""
    level = levels[-1]
    jac = _local(plan, level, w)
    shape = jacobian_shape(level.value.shape, w.shape)
    name = level.name
    text, tex = _local_text(jac, level.value.shape, name, w.name)
    body.say(
        f"d{name}/d{w.name} is a tensor of order {jac.rank} ({shape}): one matrix of partial derivatives per entry "
        f"of {name}, mostly zero:"
    )
    body.show(text, tex)
    cot_name = _free_name(("g", "G", "gamma"), set(taken))
    if plan.expr.shape:
        # f is no scalar: the collapse happens for a scalar loss L of f, through every level.
        top = levels[0]
        cotangent = g.var(cot_name, _KIND.get(top.value.rank, "matrix"), top.value.shape)
        pulled: g.Node = cotangent
        for each in levels:
            pulled = chain.pull_back(each, w, pulled)
        body.say(
            f"For a scalar loss L downstream, with {cot_name} = dL/d{plan.top} (the shape of {plan.top}), the chain "
            f"rule multiplies {cot_name} with this tensor; the product collapses to the shape of {w.name} and needs "
            "no tensor at all (the vector-Jacobian product):"
        )
        body.show(
            f"dL/d{w.name} = {_text(pulled)}",
            f"\\frac{{\\partial L}}{{\\partial {LATEX.name(w.name)}}} = {_tex(pulled)}",
        )
        return
    cotangent = g.var(cot_name, _KIND.get(level.value.rank, "matrix"), level.value.shape)
    collapsed = chain.pull_back(level, w, cotangent)
    known = deltas.get(level.value)
    signal = known[0].name if known is not None else cot_name
    body.say(
        f"Multiplying the signal {signal} = d{plan.top}/d{name} with this tensor collapses it to the shape of "
        f"{w.name}: the vector-Jacobian product, which never forms the tensor:"
    )
    if known is not None:
        collapsed = simplify(chain.substitute(collapsed, {cotangent: known[0]}))
        plan.short[w.name] = collapsed
    arranged, row = _in_layout(collapsed, 0, plan.layout)
    body.show(
        f"d{plan.top}/d{w.name} = {_text(arranged, row)}", f"{_label(plan.top, w.name)[1]} = {_tex(arranged, row)}"
    )


def _elementwise(plan: _Plan) -> Step | None:
    from matrixcalculus.render.index import free_indices

    body = _Body()
    top = plan.top
    if plan.short:
        body.say("In the names of the chain (the error signals above):")
    for name, node in zip(plan.names, plan.shape_answers, strict=True):
        if _stacked_names(name) is not None:
            continue  # its entries are the rows above
        node = plan.short.get(name, node)
        idx = free_indices(node)
        label, tex_label = _entry_label(top, plan.expr.node.rank, name, idx)
        body.show(f"{label} = {index_notation(node)}", f"{tex_label} = {index_notation(node, LATEX)}")
        w = next((v for v in plan.wrts if v.name == name), None)
        body.say(_structure(node, plan.expr.node.rank, w, name in plan.short))
    if not body.parts:
        return None
    return body.step("The element-wise view")


def _structure(node: g.Node, out_rank: int, w: g.Var | None, named: bool = False) -> str:
    """Why the entries look as they do, read off the result's graph."""
    if g.is_zero(node):
        return "Every entry is zero: the function does not depend on the variable."
    f_idx, w_idx = set(range(out_rank)), set(range(out_rank, node.rank))
    reasons: list[str] = []
    terms = node.args if isinstance(node, g.Add) else (node,)
    linked = outer = False
    for term in terms:
        if isinstance(term, g.Delta) and out_rank == 1 and node.rank == 2:
            linked = True  # the identity itself: df_i/dx_j = delta(i,j)
        if not isinstance(term, g.Contract):
            continue
        for op, labs in zip(term.args, term.labels, strict=True):
            if isinstance(op, g.Delta):
                axes = {term.out.index(lab) for lab in labs if lab in term.out}
                if axes & f_idx and axes & w_idx:
                    linked = True
        free_ops = [set(term.out.index(lab) for lab in labs if lab in term.out) for labs in term.labels]
        summed = {lab for labs in term.labels for lab in labs} - set(term.out)
        if (
            out_rank
            and node.rank - out_rank
            and not summed
            and all(op <= f_idx or op <= w_idx for op in free_ops)
            and any(op and op <= f_idx for op in free_ops)
            and any(op and op <= w_idx for op in free_ops)
            and not any(isinstance(op, g.Delta) for op in term.args)
        ) or (
            not out_rank
            and node.rank == 2
            and not summed
            and len(term.args) >= 2
            and all(len(op) == 1 for op in free_ops if op)
        ):
            outer = True
    if linked:
        pairs = "entry i of the function depends only on the entries of the variable at the same position"
        if out_rank == 1 and node.rank == 2:
            reasons.append(
                f"The Kronecker delta says {pairs}: off the diagonal every partial derivative is zero, so the "
                "Jacobian is diagonal (an element-wise operation)."
            )
        else:
            reasons.append(
                f"The Kronecker delta says {pairs} (a row, a block): every other partial derivative is zero, "
                "which is why the tensor is mostly zeros and need not be formed."
            )
    if outer:
        reasons.append(
            "Each entry is a product of a factor indexed like the function (or the variable's rows) and a factor "
            "indexed like the variable's columns: an outer product."
        )
    if w is not None and not chain.depends_on(node, [w]) and not named:
        reasons.append(f"No entry depends on {w.name}: the function is linear in {w.name}, its Jacobian a constant.")
    if not reasons:
        if "sum_" in index_notation(node):
            reasons.append("The sums run over the indices that the products contract.")
        else:
            reasons.append("Every entry is this one formula at its indices; no entry is forced to zero.")
    return " ".join(reasons)


# A rewrite is shown when its "before" is small enough to read (a rule applied deep inside a
# large product is still counted).
_REWRITE_NODES = 30


def _simplification(plan: _Plan, limit: int = 8) -> Step:
    body = _Body()
    shown: list[tuple[str, str, str, str, str]] = []
    keys: set[tuple[str, g.Node]] = set()
    more = 0
    for name, before, after in plan.trace:
        if (name, after) in keys:
            continue
        keys.add((name, after))
        if len(shown) >= limit or len(g.postorder(before)) > _REWRITE_NODES:
            more += 1
            continue
        before_text, after_text = _text(before), _text(after)
        if before_text == after_text:
            continue  # a rewrite the notation does not show (a delta the printer already hides)
        shown.append((name, before_text, after_text, _tex(before), _tex(after)))
    if not shown and not more:
        body.say("Nothing to simplify: the product of the local derivatives is already in its simplest form.")
        return body.step("Simplification")
    body.say("The simplifier's rules, as it applied them to the product (each named):")
    for name, before_text, after_text, before_tex, after_tex in shown:
        body.say(f"{name}: {RULE_STATEMENTS.get(name, name)}")
        body.show(f"{before_text}  →  {after_text}", f"{before_tex} \\;\\to\\; {after_tex}")
    if more:
        body.say(f"... and {more} more applications of these rules inside larger products.")
    return body.step("Simplification")


def _layouts(plan: _Plan) -> Step | None:
    body = _Body()
    for name, node in zip(plan.names, plan.shape_answers, strict=True):
        node = plan.short.get(name, node)
        if node.rank > 2 or node.rank == 0:
            continue
        out_rank = plan.expr.node.rank
        numerator, row_n = _numerator(node, out_rank)
        denominator = _arrange(node, out_rank, "denominator")
        row_d = is_row(out_rank, denominator.rank, "denominator")
        text_n, text_d = _text(numerator, row_n), _text(denominator, row_d)
        if text_n == text_d:
            continue
        wrt_shape = node.shape[out_rank:]
        shape_n = jacobian_shape(plan.expr.shape, wrt_shape)
        shape_d = jacobian_shape(wrt_shape, plan.expr.shape)
        label, tex_label = _label(plan.top, name)
        body.say(f"d{plan.top}/d{name} in the two layouts of the tutorials:")
        body.show(
            f"numerator:   {label} = {text_n}    ({shape_n})",
            f"\\text{{numerator: }} {tex_label} = {_tex(numerator, row_n)}",
        )
        body.show(
            f"denominator: {label} = {text_d}    ({shape_d})",
            f"\\text{{denominator: }} {tex_label} = {_tex(denominator, row_d)}",
        )
    if not body.parts:
        return None
    body.say("The denominator layout is the numerator layout transposed; pick one and stay with it.")
    return body.step("Both layouts")


# An explicit form is shown when it stays readable: entries this long at most, this many in all.
_EXPLICIT_ENTRY_CHARS = 60
_EXPLICIT_ENTRIES = 81
# ... and only for a derivative of at most this many graph nodes (its entries write it out).
_EXPLICIT_FORMULA_NODES = 12


def _explicit(plan: _Plan, size: int) -> Step | None:
    """The Jacobian at a small concrete size, entry by entry in the components of the variables:
    a matrix as itself, a 3-D tensor as its slices, a 4-D tensor as its blocks."""
    body = _Body()
    for position, (name, answer) in enumerate(zip(plan.names, plan.answers, strict=True)):
        if not answer.node.rank or name in plan.short or _stacked_names(name) is not None:
            continue  # a scalar; written with the error signals; a stack's rows (shown above)
        label = f"d{plan.top}/d{name}"
        if len(g.postorder(answer.node)) > _EXPLICIT_FORMULA_NODES:
            # Each entry would write out the whole formula again: not worth computing to skip it.
            body.say(
                f"{label} written entry by entry would repeat its whole formula in every entry: too long to read "
                f"here (d.answer.explicit({size}) has it)."
            )
            continue
        try:
            form = answer.explicit(size)
        except MatrixCalculusError:
            continue  # beyond the limits of an explicit form: the formulas above say it all
        entries = [str(e) for e in form.entries.flat]
        sizes = "at " + ", ".join(f"{k} = {v}" for k, v in form.sizes.items()) if form.sizes else "as it is"
        if len(entries) > _EXPLICIT_ENTRIES or max(map(len, entries)) > _EXPLICIT_ENTRY_CHARS:
            body.say(
                f"{label} {sizes} has {len(entries)} entries of up to {max(map(len, entries))} characters: too long "
                f"to read here (d.answer.explicit({size}) has them)."
            )
            continue
        rank = answer.node.rank
        if rank == 1:
            what = "one entry per partial derivative"
        elif rank == 2 and not plan.expr.shape:
            what = f"entry (i, j) is the partial derivative by {name}[i,j]"
        elif rank == 2:
            what = "row i holds the partial derivatives of entry i"
        elif rank == 3:
            what = "a tensor of order 3, written as its slices [i, :, :], one matrix per index of the first axis"
        else:
            what = f"a tensor of order {rank}, written as its blocks [i, j, :, :], one matrix per pair of first indices"
        body.say(f"{label} {sizes}, entry by entry in the components of the variables ({what}; {plan.layout} layout):")
        body.show(form.text(), form.latex())
        plan.explicit_shown.append(position)
    if not body.parts:
        return None
    return body.step("The explicit small case")


def _flattening(plan: _Plan, orders: Sequence[str]) -> Step | None:
    """A tensor Jacobian as the matrix d vec(F)/d vec(X), in column-major and row-major order."""
    body = _Body()
    for name, answer in zip(plan.names, plan.answers, strict=True):
        if answer.node.rank <= 2:
            continue
        body.say(
            f"Stacking the entries of {plan.top} and of {name} into vectors (vec) makes d{plan.top}/d{name} a matrix: "
            "row by entry of vec(f), column by entry of vec(" + name + "); in Kronecker form where one exists."
        )
        for order in orders:
            flat = answer.flatten(order)
            major = "column-major" if order == "column" else "row-major"
            body.show(
                f"{major}: d vec({plan.top})/d vec({name}) = {flat}",
                f"\\text{{{major}: }} \\frac{{\\partial\\, \\mathrm{{vec}}({LATEX.name(plan.top)})}}"
                f"{{\\partial\\, \\mathrm{{vec}}({LATEX.name(name)})}} = {flat.latex()}",
            )
    if not body.parts:
        return None
    body.say("Each equals the tensor's entries reshaped in that order (numpy.reshape with order='F' or 'C').")
    return body.step("Flattening")


def _check(plan: _Plan, size: int) -> Step | None:
    body = _Body()
    variables = plan.expr.node_variables()
    point = random_values(variables, size, 0, within=plan.expr.node)
    for name, answer in zip(plan.names, plan.answers, strict=True):
        if name not in plan.expr.variables and _stacked_names(name) is None:
            continue
        report = check(plan.expr, name, answer, layout=plan.layout, values=point, size=size)
        assert isinstance(report, CheckResult)
        body.show(f"check: {report}", f"\\text{{{_tex_prose('check: ' + str(report))}}}")
    if not body.parts:
        return None  # nothing to check: no variable of f was asked for
    body.say(
        f"Central finite differences in float64 at random inputs (size {size}) inside each function's domain "
        "agree with the derivative."
        if all("(ok)" in t for kind, t, _ in body.parts if kind == "math")
        else "The derivative does not agree with finite differences: please report it."
    )
    return body.step("A numeric check")


def explain(
    f: str | Expression,
    wrt: str | Expression | Variable | Sequence[str | Expression | Variable],
    types: Mapping[str, Any] | None = None,
    layout: str = "shape",
    size: int = 3,
    flatten: str | None = None,
) -> Derivation:
    """The derivative of ``f`` with respect to ``wrt`` (a name, or a list of names: one derivation
    with the shared intermediates and error signals written once), worked out step by step.

    ``layout``: of the answer (``"shape"``, ``"numerator"``, ``"denominator"``; the steps use the
    tutorials' numerator layout for local derivatives); ``size``: the size of each dimension for
    the explicit small case and the numeric check; ``flatten``: the order of the flattening of a
    tensor Jacobian (``"column"`` or ``"row"``; both by default).

    >>> d = explain("relu(w'*x + b)", "w")
    >>> print(d.steps[1].text.splitlines()[1])
      u = w'*x + b
    """
    if layout not in LAYOUTS:
        raise DerivativeError(f"layout is 'shape', 'numerator' or 'denominator', not {layout!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise DerivativeError(f"size is a whole number of at least 1, not {size!r}")
    if flatten not in (None, "column", "row"):
        raise DerivativeError(f"flatten is 'column' or 'row' (or None for both), not {flatten!r}")
    plan = _plan(f, wrt, types, layout)
    steps: list[Step | None] = [
        _question(plan),
        _intermediates(plan),
        _chain_step(plan),
        _elementwise(plan),
        _explicit(plan, size),
        _simplification(plan),
        _layouts(plan),
        _flattening(plan, ("column", "row") if flatten is None else (flatten,)),
        _check(plan, size),
    ]
    answer: Expression | tuple[Expression, ...] = plan.answers[0] if plan.single else plan.answers
    question = f"d{plan.top}/d{', '.join(plan.names)} of {plan.top} = {_source(plan.expr)}"
    derivation = Derivation([s for s in steps if s is not None], answer, question, size)
    derivation.explicit_shown = tuple(plan.explicit_shown)
    return derivation


__all__ = ["Derivation", "Step", "explain"]
