"""Parsing and formatting Redis arguments: integers, floats, score bounds, glob patterns, cursors."""

from __future__ import annotations

import math
import random
import re
from functools import lru_cache

from kv_backend import longdouble
from kv_backend.errors import NotAnIntegerError
from kv_backend.structures.errors import NOT_FLOAT, NOT_INT, CommandError, NotAFloatError
from kv_backend.structures.layout import _I64_MAX, _I64_MIN, Value, _b


def format_float(value: float) -> bytes:
    """Redis's text form of a double: shortest round-trip digits, integers without ``.0``, ``inf``.

    (INCRBYFLOAT's long-double text is :func:`kv_backend.longdouble.format_human`.)
    """
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if value == int(value) and abs(value) < 1e17:
        return str(int(value)).encode()
    return repr(value).encode()


def parse_int(value: Value) -> int:
    """Parse a Redis integer argument (signed 64-bit decimal) or raise :class:`NotAnIntegerError`."""
    if type(value) is bytes and value.isdigit() and (value[0] != 48 or len(value) == 1) and len(value) < 19:
        return int(value)  # the common case: a plain non-negative decimal well inside 64 bits
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        raw = _b(value)
        if not raw or len(raw) > 20 or raw != raw.strip() or not raw.lstrip(b"-").isdigit():
            raise NotAnIntegerError(NOT_INT)
        if raw.startswith(b"-0") or (raw.startswith(b"0") and len(raw) > 1):
            raise NotAnIntegerError(NOT_INT)
        n = int(raw)
    if not _I64_MIN <= n <= _I64_MAX:
        raise NotAnIntegerError(NOT_INT)
    return n


def parse_float(value: Value, msg: str = NOT_FLOAT, overflow: bool = False) -> float:
    """Parse a Redis float argument (``inf``/``-inf`` allowed, NaN refused).

    A finite number too large for a double (``1e500``), or a non-zero one so
    small that it would read as 0 (``1e-400``), is refused, as Redis refuses
    them for scores and increments; ``overflow=True`` reads them as an infinity
    or 0 instead, as Redis does for range bounds.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        f = float(value)
    else:
        raw = _b(value)
        if not raw or raw != raw.strip():
            raise NotAFloatError(msg)
        low = raw.lower()
        if low in (b"inf", b"+inf", b"infinity", b"+infinity"):
            return math.inf
        if low in (b"-inf", b"-infinity"):
            return -math.inf
        try:
            f = float(raw)
        except ValueError:
            raise NotAFloatError(msg) from None
        if b"_" in raw or low.startswith((b"0x", b"-0x", b"+0x")):
            raise NotAFloatError(msg)
        if math.isinf(f) and not overflow:
            raise NotAFloatError(msg)
        if f == 0.0 and not overflow and any(c in b"123456789" for c in low.split(b"e")[0]):
            raise NotAFloatError(msg)  # a non-zero number too small for a double (1e-400), as Redis
    if math.isnan(f):
        raise NotAFloatError(msg)
    return f


def _long_double(value: float | Value) -> longdouble.LongDouble:
    """An INCRBYFLOAT operand: text read as Redis reads it, or a Python number."""
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return longdouble.from_number(value)
        return longdouble.parse(_b(value))
    except ValueError:
        raise NotAFloatError(NOT_FLOAT) from None


def _add_long_double(a: longdouble.LongDouble, b: longdouble.LongDouble) -> bytes:
    """``a + b`` as INCRBYFLOAT stores it; an infinite or NaN sum is Redis's error."""
    try:
        total = longdouble.add(a, b)
        return longdouble.format_human(total)
    except ValueError:
        raise CommandError("ERR increment would produce NaN or Infinity") from None


def _score_bound(value: Value) -> tuple[float, bool]:
    """Parse a ZRANGEBYSCORE bound: a float, ``(float`` (exclusive), ``-inf``, ``+inf``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), False
    raw = _b(value)
    if raw.startswith(b"("):
        return parse_float(raw[1:], "ERR min or max is not a float", overflow=True), True
    return parse_float(raw, "ERR min or max is not a float", overflow=True), False


@lru_cache(maxsize=256)
def _glob_regex(pattern: bytes) -> re.Pattern[bytes]:
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i : i + 1]))
        elif c == b"[":
            j = i + 1
            neg = j < n and pattern[j : j + 1] == b"^"
            if neg:
                j += 1
            items = []
            while j < n and pattern[j : j + 1] != b"]":
                if pattern[j : j + 1] == b"\\" and j + 1 < n:
                    j += 1
                    items.append(re.escape(pattern[j : j + 1]))
                elif j + 2 < n and pattern[j + 1 : j + 2] == b"-" and pattern[j + 2 : j + 3] != b"]":
                    lo, hi = sorted((pattern[j], pattern[j + 2]))
                    items.append(re.escape(bytes([lo])) + b"-" + re.escape(bytes([hi])))
                    j += 2
                else:
                    items.append(re.escape(pattern[j : j + 1]))
                j += 1
            body = b"".join(items)
            if not body:
                out.append(b"[^\\x00-\\xff]" if not neg else b"[\\x00-\\xff]")
            else:
                out.append(b"[" + (b"^" if neg else b"") + body + b"]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"".join(out) + b"\\Z", re.S)


def glob_match(pattern: bytes, name: bytes) -> bool:
    """Redis-style glob matching (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes)."""
    if pattern == b"*":
        return True
    return _glob_regex(pattern).match(name) is not None


def _literal_prefix(pattern: bytes) -> bytes:
    """The part of a glob pattern before its first special character (for prefix scans)."""
    for i, c in enumerate(pattern):
        if c in b"*?[\\":
            return pattern[:i]
    return pattern


def _encode_cursor(last: bytes, table: dict[int, bytes]) -> int:
    """A SCAN cursor (a positive int) that resumes after ``last``."""
    if len(last) <= 1024:
        return int.from_bytes(b"\x01" + last, "big")
    token = random.getrandbits(62) | (1 << 62)
    if len(table) > 10000:
        table.pop(next(iter(table)))
    table[token] = last
    return int.from_bytes(b"\x02" + token.to_bytes(8, "big"), "big")


def _decode_cursor(cursor: int | bytes | str, table: dict[int, bytes]) -> bytes | None:
    """Return the position a cursor resumes after (None: from the start)."""
    try:
        n = int(cursor)
    except (TypeError, ValueError):
        raise CommandError("ERR invalid cursor") from None
    if n == 0:
        return None
    if n < 0:
        raise CommandError("ERR invalid cursor")
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if raw[:1] == b"\x01":
        return raw[1:]
    if raw[:1] == b"\x02" and len(raw) == 9:
        found = table.get(int.from_bytes(raw[1:], "big"))
        if found is not None:
            return found
    raise CommandError("ERR invalid cursor")
