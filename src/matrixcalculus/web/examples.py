"""The page's menu of examples: the tutorials' worked examples, in the order they teach them.

Each gives the expression as the tutorials write it, the variables to differentiate by, the
declarations it needs, where it comes from, and the derivative the tutorial derives (the
page's tests check the page shows it).

>>> EXAMPLES[0].expression, EXAMPLES[0].wrt, EXAMPLES[0].expected
('x^3 + 2*x + 1', ('x',), ('3*x^2 + 2',))
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EXAMPLES", "Example"]


@dataclass(frozen=True)
class Example:
    title: str
    expression: str
    wrt: tuple[str, ...]
    source: str
    expected: tuple[str, ...]
    types: dict[str, str] = field(default_factory=dict)
    layout: str = "shape"


_PARR = "Parr & Howard, Matrix Calculus for Deep Learning"
_CARSON = "J. D. Carson, Matrix Calculus"

EXAMPLES = (
    Example("A scalar polynomial", "x^3 + 2*x + 1", ("x",), _PARR, ("3*x^2 + 2",)),
    Example("Partial derivative", "10*x^2*y^2", ("x",), _PARR, ("20*x*y^2",)),
    Example("Scalar expansion: x + a by a", "x + a", ("a",), _PARR, ("ones(n)",), {"a": "scalar"}),
    Example("Scalar expansion: a*x by x", "a*x", ("x",), _PARR, ("a*eye(n)",), {"a": "scalar"}),
    Example("Element-wise product (a diagonal Jacobian)", "x .* z", ("x",), _PARR, ("diag(z)",)),
    Example("Element-wise exp", "exp(x)", ("x",), _PARR, ("diag(exp(x))",)),
    Example("Vector sum", "sum(x)", ("x",), _PARR, ("ones(n)",)),
    Example("Matrix times vector, by the vector", "A*x", ("x",), _PARR, ("A",)),
    Example("Matrix times vector, by the matrix (3-D)", "A*x", ("A",), _PARR, ("delta(i,j)*x[k]",)),
    Example(
        "The neuron max(0, w'x + b)", "max(0, w'*x + b)", ("w", "b"), _PARR, ("(w'*x + b > 0)*x", "(w'*x + b > 0)")
    ),
    Example("Gradient as a row (numerator layout)", "w'*x", ("w",), _PARR, ("x'",), layout="numerator"),
    Example("Bilinear form y'Ax", "y'*A*x", ("A",), _CARSON, ("y*x'",)),
    Example("Quadratic form x'Ax", "x'*A*x", ("x",), _CARSON, ("(A + A')*x",)),
    Example("Least squares", "0.5*norm2(W*x - t)^2", ("W",), _CARSON, ("(W*x - t)*x'",)),
    # d(R'R)[i,j]/dR[k,l] = delta(i,l)*R[k,j] + delta(j,l)*R[k,i]; "-> [i,j,k,l]" states the axes' order.
    Example("R'R (4-D)", "R'*R", ("R",), _CARSON, ("delta(i,l)*R[k,j] + delta(j,l)*R[k,i] -> [i,j,k,l]",)),
    Example("Log-determinant", "logdet(X)", ("X",), _CARSON, ("inv(X)'",)),
    Example(
        "Stacked functions: the Jacobian of [f; g]",
        "[3*x^2*y; 2*x + y^8]",
        ("[x; y]",),
        _PARR,
        ("[6*x*y, 3*x^2; 2, 8*y^7]",),
    ),
    Example(
        "A two-layer network",
        "0.5*norm2(W2*relu(W1*x + b1) + b2 - t)^2",
        ("W2", "b2"),
        _CARSON,
        ("(W2*relu(W1*x + b1) + b2 - t)*relu(W1*x + b1)'", "W2*relu(W1*x + b1) + b2 - t"),
        {"b1": "vector", "b2": "vector"},
    ),
)
