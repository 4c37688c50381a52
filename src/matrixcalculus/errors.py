"""The library's one exception family.

Every error a user can provoke with bad input is a :class:`MatrixCalculusError`. Errors that
point into the input text carry the text and a column, and render a caret under it::

    unknown function 'sine' at column 5; did you mean 'sin'?
      2 + sine(x)
          ^
"""

from __future__ import annotations

__all__ = [
    "DerivativeError",
    "EvaluationError",
    "InferenceError",
    "MatrixCalculusError",
    "ParseError",
    "ShapeError",
]


class MatrixCalculusError(ValueError):
    """Base class of every error raised by matrixcalculus on bad input.

    ``text`` and ``column`` (1-based) are set when the error points into an input expression.
    """

    # The resource limit that was exceeded (limits.py sets it), None for an error of the input.
    limit: str | None = None

    def __init__(self, message: str, *, text: str | None = None, column: int | None = None):
        self.message = message
        self.text = text
        self.column = column
        super().__init__(self._render())

    def _render(self) -> str:
        if self.text is None or self.column is None:
            return self.message
        text, column = self.text, self.column
        if len(text) > 200:
            text, column = _window(text, column)
        return f"{self.message}\n  {text}\n  {' ' * (column - 1)}^"


def _window(text: str, column: int, width: int = 80) -> tuple[str, int]:
    """A slice of a long input around ``column``, with the column re-based into it."""
    start = max(0, column - 1 - width // 2)
    piece = text[start : start + width]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + width < len(text) else ""
    return prefix + piece + suffix, column - start + len(prefix)


class ParseError(MatrixCalculusError):
    """The text is not a well-formed expression (unexpected character, unknown function, ...)."""


class ShapeError(MatrixCalculusError):
    """Operands whose shapes do not fit, e.g. ``A*x`` with ``A`` 3x4 and ``x`` of length 5."""


class InferenceError(ShapeError):
    """A variable's type cannot be decided: the uses are ambiguous or contradict each other."""


class EvaluationError(MatrixCalculusError):
    """Numeric evaluation failed: a missing value, an array of the wrong shape, a singular matrix."""


class DerivativeError(MatrixCalculusError):
    """A derivative was asked for that does not exist or does not fit (e.g. a gradient of a vector)."""
