"""Redis's INCRBYFLOAT arithmetic: 80-bit long doubles, printed with 17 decimals.

Redis parses the stored text and the increment with ``strtold``, adds them as
x87 extended-precision numbers (64-bit significand) and stores the sum printed
with ``%.17Lf``, trailing zeros removed. So ``0.1`` plus ``0.2`` is ``0.3``
and ``5e-20`` is ``0``, where double arithmetic would give
``0.30000000000000004`` and ``5e-20``. This module reproduces that exactly
with rational arithmetic, so values written by kv_backend and by Redis read
the same.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

__all__ = ["LongDouble", "add", "format_human", "from_number", "multiply", "parse"]

#: A long double value: exact (a Fraction), or an infinity (a float).
LongDouble = Fraction | float

_MANTISSA = 64  # bits of an x87 extended-precision significand
_MIN_EXP = -16382  # exponent of the smallest normal number
_MAX = (2 ** (_MANTISSA + 1) - 1) * Fraction(2) ** (16383 - _MANTISSA)  # largest finite
_MAX_TEXT = 5 * 1024  # Redis refuses longer number strings
# What strtold accepts as a decimal number (Fraction would also take "1/3", "1_0" and spaces).
_DECIMAL = re.compile(rb"([+-]?)(\d*)\.?(\d*)(?:[eE]([+-]?\d+))?")
# Decimal exponents past these overflow or underflow for certain (largest ~1.19e4932, smallest
# subnormal ~3.6e-4951), which strtold reports and Redis refuses: decided before any big number
# is built.
_TOO_BIG, _TOO_SMALL = 4934, -4952
_INFINITY = {b"inf": math.inf, b"infinity": math.inf}


def _round(x: Fraction) -> LongDouble:
    """Round an exact number to the nearest long double (ties to even), or to an infinity."""
    if x == 0:
        return Fraction(0)
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length()  # 2**(e - 1) < a < 2**(e + 1)
    if a < Fraction(2) ** e:
        e -= 1  # now 2**e <= a < 2**(e + 1): the step below keeps all 64 bits of a's significand
    q = max(e - (_MANTISSA - 1), _MIN_EXP - (_MANTISSA - 1))  # the spacing of numbers near a
    step = Fraction(2) ** q
    r = round(a / step) * step  # Fraction rounding: half to even
    if r > _MAX:
        return math.inf if x > 0 else -math.inf
    return r if x > 0 else -r


def parse(text: bytes) -> LongDouble:
    """Read a number as Redis does (``strtold``); raise ValueError for anything else, NaN, or a
    number that overflows or underflows (``inf`` itself is read)."""
    if not text or len(text) >= _MAX_TEXT:
        raise ValueError("not a number")
    m = _DECIMAL.fullmatch(text)
    if m is not None and (m.group(2) or m.group(3)):
        return _parse_decimal(m)
    sign, body = (-1, text[1:]) if text[:1] == b"-" else (1, text[1:] if text[:1] == b"+" else text)
    low = body.lower()
    if low in _INFINITY:
        return sign * _INFINITY[low]
    if low.startswith(b"0x"):
        try:
            return _round(sign * Fraction(float.fromhex(body.decode("ascii"))))
        except (ValueError, OverflowError, UnicodeDecodeError):
            raise ValueError("not a number") from None
    raise ValueError("not a number")


def _parse_decimal(m: re.Match[bytes]) -> LongDouble:
    """The long double nearest a decimal number; huge exponents never build huge integers."""
    sign, whole, frac, exp_text = m.groups()
    digits = (whole + frac).lstrip(b"0")
    if not digits:
        return Fraction(0)
    if exp_text and len(exp_text) >= 9:  # |exponent| far beyond what the few thousand digits offset
        exponent = -(10**8) if exp_text.startswith(b"-") else 10**8
    else:
        exponent = int(exp_text or b"0")
    # digits as an integer times 10**scale; the value lies in [10**(magnitude - 1), 10**magnitude)
    scale = exponent - len(frac)
    magnitude = scale + len(digits)
    if not _TOO_SMALL <= magnitude <= _TOO_BIG:
        raise ValueError("out of range")  # strtold's ERANGE, which Redis refuses
    # int() of a long digit string goes through Decimal: Python refuses str -> int past 4,300 digits.
    value = Fraction(int(Decimal(digits.decode("ascii")))) * Fraction(10) ** scale
    rounded = _round(-value if sign == b"-" else value)
    if isinstance(rounded, float) or rounded == 0:
        raise ValueError("out of range")  # overflows to an infinity or underflows to zero
    return rounded


def from_number(value: float | int) -> LongDouble:
    """A Python int or float as a long double (NaN raises ValueError).

    A float is read from its shortest text, as a Redis client sends it: ``0.2``
    means the decimal 0.2, not the double nearest to it.
    """
    if isinstance(value, float):
        if math.isnan(value):
            raise ValueError("NaN")
        if math.isinf(value):
            return value
        return parse(float.__repr__(value).encode("ascii"))  # a subclass (numpy float64) too
    return _round(Fraction(value))


def _with_infinity(x: LongDouble) -> float:
    """``x`` as a float for arithmetic with an infinity, where only a finite number's sign counts
    (``float()`` of one beyond a double's range, up to ~1.19e4932, would raise OverflowError)."""
    return x if isinstance(x, float) else float((x > 0) - (x < 0))


def add(a: LongDouble, b: LongDouble) -> LongDouble:
    """``a + b`` rounded to a long double; NaN (infinities of both signs) raises ValueError."""
    if isinstance(a, float) or isinstance(b, float):
        total = _with_infinity(a) + _with_infinity(b)
        if math.isnan(total):
            raise ValueError("NaN")
        return total
    return _round(a + b)


def multiply(a: LongDouble, b: LongDouble) -> LongDouble:
    """``a * b`` rounded to a long double (Redis's seconds to milliseconds of a blocking command's
    timeout); NaN (an infinity times 0) raises ValueError."""
    if isinstance(a, float) or isinstance(b, float):
        product = _with_infinity(a) * _with_infinity(b)
        if math.isnan(product):
            raise ValueError("NaN")
        return product
    return _round(a * b)


def format_human(value: LongDouble) -> bytes:
    """``%.17Lf`` with trailing zeros (and a bare point) removed, ``-0`` as ``0``: Redis's text."""
    if isinstance(value, float):
        raise ValueError("an infinity has no decimal text")
    scaled = round(value * 10**17)  # half to even, on the exact value, as glibc's printf
    # Through Decimal: str() of an int over 4,300 digits is refused by Python, and a long double
    # reaches 4,933 digits before the point.
    digits = str(Decimal(abs(scaled))).rjust(18, "0")
    whole, frac = digits[:-17], digits[-17:].rstrip("0")
    text = whole + ("." + frac if frac else "")
    return ("-" + text if scaled < 0 else text).encode("ascii")
