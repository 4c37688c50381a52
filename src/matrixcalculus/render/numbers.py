"""Number formatting: the exact constants of the graph as text that parses back to them.

Ordinary numbers keep their familiar forms: ``3``, ``0.5``, ``0.001``, ``1/3``, ``2/7``. A number
whose integer or fraction form would run to many digits is written in exponent form instead,
``1e300``, ``3.5e-200``, ``4.9e-324``: ``1e-320`` as ``1/1000...0`` would be 321 digits long, and
its denominator is beyond the largest double, which the parser refuses. The parser reads a
decimal literal exactly (up to ``frontend.syntax.EXACT_DIGITS`` significant digits), so the
exponent form is the same number, not an approximation. A fraction whose denominator is not a
power of ten times a short integer keeps a short integer divisor: ``1e-320/3``.
"""

from __future__ import annotations

from fractions import Fraction

from matrixcalculus.ir.graph import PI

# An integer with more digits than this prints in exponent form when that is shorter (``1e21``),
# as JavaScript prints numbers; below it, integers print in full (``123456789012345``).
PLAIN_DIGITS = 21
# A decimal with more digits after the point than this prints as a fraction or in exponent form.
DECIMAL_PLACES = 6


def decimal(value: Fraction) -> str | None:
    """An exact short decimal for ``value`` if it has one (0.5, 0.001), else None.

    >>> decimal(Fraction(1, 8)), decimal(Fraction(1, 3))
    ('0.125', None)
    """
    twos, fives, rest = _tens_in(value.denominator)
    if rest != 1:
        return None
    digits = max(twos, fives)
    if digits > DECIMAL_PLACES:
        return None
    text = f"{float(value):.{digits}f}" if digits else str(value.numerator)
    return text if Fraction(text) == value else None


def pi_multiple(value: Fraction) -> Fraction | None:
    """``value/pi`` when ``value`` is a short rational multiple of the language's constant ``pi``
    (the double nearest to π), else None. Constants are exact fractions, so ``pi/2`` divided by
    ``pi`` is exactly 1/2: a number the user typed is never mistaken for one.

    >>> pi_multiple(PI * Fraction(3, 4)), pi_multiple(Fraction(3))
    (Fraction(3, 4), None)
    """
    ratio = value / PI
    if ratio == 0 or ratio.denominator > 1000 or abs(ratio.numerator) > 1000:
        return None
    return ratio


def is_long(value: Fraction) -> bool:
    """Would ``value`` run to many digits as an integer or a fraction ``p/q``?"""
    return len(str(abs(value.numerator))) > PLAIN_DIGITS or len(str(value.denominator)) > PLAIN_DIGITS


def exponent_form(value: Fraction) -> str:
    """``value`` as ``mantissa e exponent``, exactly, with a short integer divisor if it needs one.

    The value is ``p / (2^a 5^b r)`` with ``r`` prime to ten: ``p / (2^a 5^b)`` is a terminating
    decimal, written ``d.ddd e±k`` with every significant digit, and ``r`` is the divisor.

    >>> [exponent_form(Fraction(1, 10**320)), exponent_form(Fraction(35 * 10**199))]
    ['1e-320', '3.5e200']
    >>> exponent_form(Fraction(1, 3 * 10**40))
    '1e-40/3'
    """
    twos, fives, rest = _tens_in(value.denominator)
    places = max(twos, fives)
    # value * rest * 10^places is a whole number: the mantissa's digits, shifted by `places`.
    scaled = value * rest * 10**places
    assert scaled.denominator == 1
    mantissa = scaled.numerator
    if places == 0 and len(str(abs(mantissa))) <= PLAIN_DIGITS:
        text = str(mantissa)  # a short numerator over a long divisor: 2/3^50
    else:
        text = scientific(mantissa, -places)
    return text if rest == 1 else f"{text}/{rest}"


def scientific(mantissa: int, exponent: int) -> str:
    """``mantissa * 10^exponent`` written ``d.ddd e k`` (``3.5e200``, ``-1e-320``, ``12`` as ``1.2e1``).

    >>> scientific(35, 199), scientific(-1, -320)
    ('3.5e200', '-1e-320')
    """
    sign = "-" if mantissa < 0 else ""
    digits = str(abs(mantissa))
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    if not stripped:
        return "0"
    exponent += len(stripped) - 1
    head, tail = stripped[0], stripped[1:]
    return f"{sign}{head}{'.' + tail if tail else ''}e{exponent}"


def _tens_in(n: int) -> tuple[int, int, int]:
    """``n = 2^twos * 5^fives * rest`` with ``rest`` prime to ten."""
    twos = fives = 0
    while n % 2 == 0:
        n //= 2
        twos += 1
    while n % 5 == 0:
        n //= 5
        fives += 1
    return twos, fives, n
