"""matrixcalculus: matrix calculus for deep learning.

Type a formula such as ``x'*A*x`` or ``norm2(W*x - t)^2/2``; get a typed expression graph that
prints back in matrix notation or LaTeX and evaluates with NumPy.

>>> import matrixcalculus as mc
>>> e = mc.parse("x'*A*x", types={"A": "symmetric matrix"})
>>> str(e)
"x'*A*x"
"""

from matrixcalculus.api.calculus import check, derivative, gradient, hessian, jacobian, jvp, vjp
from matrixcalculus.api.compiling import codegen, compile
from matrixcalculus.api.equality import Comparison, equal
from matrixcalculus.api.explanation import Derivation, Step, explain
from matrixcalculus.api.expression import Expression, MatrixCalculusNotice, Variable, matrix, parse, scalar, vector
from matrixcalculus.errors import (
    DerivativeError,
    EvaluationError,
    InferenceError,
    MatrixCalculusError,
    ParseError,
    ShapeError,
)
from matrixcalculus.limits import Limits, current_limits, resource_limits
from matrixcalculus.numeric.check import CheckResult

__all__ = [
    "CheckResult",
    "Comparison",
    "Derivation",
    "DerivativeError",
    "EvaluationError",
    "Expression",
    "InferenceError",
    "Limits",
    "MatrixCalculusError",
    "MatrixCalculusNotice",
    "ParseError",
    "ShapeError",
    "Step",
    "Variable",
    "check",
    "codegen",
    "compile",
    "current_limits",
    "derivative",
    "equal",
    "explain",
    "gradient",
    "hessian",
    "jacobian",
    "jvp",
    "matrix",
    "parse",
    "resource_limits",
    "scalar",
    "vector",
    "vjp",
]

__version__ = "0.1.0"
