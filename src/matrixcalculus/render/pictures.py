"""Pictures of an explicit Jacobian's structure, drawn with matplotlib (the ``plot`` extra).

Each entry is a cell: blank where the entry is symbolically zero, light where it is a nonzero
constant (the 1s of an identity), dark where it is a formula of the variables; small matrices
carry the entries' text. A matrix is one grid; a 3-D tensor is its slices side by side (the m
matrices of ``d(A*x)/dA``, as the first tutorial draws them); a 4-D tensor is a grid of its
blocks. Axes are labelled with the index they run over and what it counts (``i: row of A*X*B``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from matrixcalculus.errors import MatrixCalculusError
from matrixcalculus.ir import graph as g

FORMATS = ("svg", "png")
ZERO, CONSTANT, FORMULA = 0, 1, 2
_COLOURS = ("#ffffff", "#9ecae1", "#2171b5")
_LEGEND = ("zero", "nonzero constant", "formula of the variables")
_INDEX_LETTERS = "ijklpq"
# Entries are written into their cells while they fit.
_MAX_TEXT = 9
_MAX_TEXT_COLUMNS = 6


def _matplotlib() -> Any:
    try:
        import matplotlib  # noqa: F401 - the extra's presence is what is checked
        from matplotlib.figure import Figure
    except ImportError:
        raise MatrixCalculusError(
            'pictures need matplotlib, which is not installed: pip install "matrixcalculus[plot]"'
        ) from None
    return Figure


def classify(node: g.Node) -> int:
    """``ZERO``, ``CONSTANT`` or ``FORMULA`` for one scalar entry."""
    if g.is_zero(node):
        return ZERO
    if isinstance(node, g.Const):
        return CONSTANT
    return FORMULA


def _grid(
    ax: Any,
    entries: Any,
    show: Callable[[g.Node], str],
    labels: Sequence[str],
    *,
    annotate: bool,
) -> None:
    from matplotlib.colors import ListedColormap

    matrix = entries if entries.ndim == 2 else entries.reshape((-1, 1) if entries.ndim == 1 else (1, 1))
    kinds = np.vectorize(classify, otypes=[int])(matrix) if matrix.size else np.zeros(matrix.shape, int)
    rows, cols = kinds.shape
    ax.imshow(kinds, cmap=ListedColormap(_COLOURS), vmin=0, vmax=2, interpolation="nearest", aspect="equal")
    ax.set_xticks(range(cols), [str(j + 1) for j in range(cols)], fontsize=8)
    ax.set_yticks(range(rows), [str(i + 1) for i in range(rows)], fontsize=8)
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="#999999", linewidth=0.6)
    ax.tick_params(which="minor", length=0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    if len(labels) >= 1:
        ax.set_ylabel(labels[0], fontsize=9)
    if len(labels) >= 2:
        ax.set_xlabel(labels[1], fontsize=9)
    if annotate:
        for (i, j), node in np.ndenumerate(matrix):
            if kinds[i, j] == ZERO:
                continue
            text = show(node)
            if len(text) <= _MAX_TEXT:
                colour = "white" if kinds[i, j] == FORMULA else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)


def draw(
    entries: Any,
    format: str = "svg",
    *,
    title: str,
    labels: Sequence[str] = (),
    show: Callable[[g.Node], str] = str,
) -> str | bytes:
    """The picture of an object array of scalar entries: SVG text or PNG bytes.

    ``labels``: one per axis, what it counts (``"i: entry of x .* z"``); ``show``: an entry's text.
    """
    if format not in FORMATS:
        raise MatrixCalculusError(f"a picture's format is 'svg' or 'png', not {format!r}")
    figure_class = _matplotlib()
    rank = entries.ndim
    if rank > 4:
        raise MatrixCalculusError(f"no picture of a tensor of order {rank} (at most four axes)")
    labels = list(labels) + [f"axis {k + 1}" for k in range(len(labels), rank)]
    inner = entries.shape[-2:] if rank >= 2 else (entries.shape[0], 1) if rank == 1 else (1, 1)
    annotate = inner[1] <= _MAX_TEXT_COLUMNS and inner[0] <= 2 * _MAX_TEXT_COLUMNS
    cell = 0.55 if annotate else 0.3
    if rank <= 2:
        grid_rows, grid_cols = 1, 1
    elif rank == 3:
        grid_rows, grid_cols = 1, entries.shape[0]
    else:
        grid_rows, grid_cols = entries.shape[0], entries.shape[1]
    width = max(4.0, grid_cols * (inner[1] * cell + 1.0) + 1.0)
    height = max(3.0, grid_rows * (inner[0] * cell + 1.1) + 1.4)
    figure = figure_class(figsize=(width, height), layout="constrained")
    axes = figure.subplots(grid_rows, grid_cols, squeeze=False)
    if rank <= 2:
        rows_label = labels[0] if rank >= 1 else ""
        _grid(axes[0][0], entries, show, [rows_label, labels[1] if rank == 2 else ""], annotate=annotate)
    elif rank == 3:
        for a in range(entries.shape[0]):
            ax = axes[0][a]
            _grid(ax, entries[a], show, [labels[1] if a == 0 else "", labels[2]], annotate=annotate)
            ax.set_title(f"{_INDEX_LETTERS[0]} = {a + 1}", fontsize=9)
        title = f"{title}\none slice per {labels[0]}"
    else:
        for a in range(entries.shape[0]):
            for b in range(entries.shape[1]):
                ax = axes[a][b]
                row_label = labels[2] if b == 0 else ""
                col_label = labels[3] if a == 0 else ""
                _grid(ax, entries[a, b], show, [row_label, col_label], annotate=annotate)
                ax.set_title(f"({_INDEX_LETTERS[0]}, {_INDEX_LETTERS[1]}) = ({a + 1}, {b + 1})", fontsize=8)
        title = f"{title}\nblock ({_INDEX_LETTERS[0]}, {_INDEX_LETTERS[1]}) for {labels[0]}, {labels[1]}"
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="#999999", label=t) for c, t in zip(_COLOURS, _LEGEND, strict=True)]
    figure.legend(handles=handles, loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    from matplotlib import rc_context

    # SVG keeps its text as text (searchable, selectable, small), not as glyph outlines.
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "matrixcalculus"}):
        figure.savefig(buffer, format=format, dpi=110, metadata={"Date": None} if format == "svg" else None)
    data = buffer.getvalue()
    return data.decode("utf-8") if format == "svg" else data
