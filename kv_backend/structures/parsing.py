"""Parsing and formatting Redis arguments: integers, floats, score bounds, glob patterns, cursors."""

from __future__ import annotations

import math
import random
import re
import threading
from collections import OrderedDict
from functools import lru_cache

from kv_backend import longdouble
from kv_backend.errors import NotAnIntegerError
from kv_backend.structures.errors import NOT_FLOAT, NOT_INT, CommandError, NotAFloatError, c_string
from kv_backend.structures.layout import _I64_MAX, _I64_MIN, Value, _b


def format_float(value: float) -> bytes:
    """Redis's text form of a double: shortest round-trip digits, integers without ``.0``, ``inf``.

    (INCRBYFLOAT's long-double text is :func:`kv_backend.longdouble.format_human`.)
    """
    if math.isinf(value):
        return b"inf" if value > 0 else b"-inf"
    if math.isnan(value):  # no command stores one; a reply must still be encodable
        return b"nan"
    if value == int(value) and abs(value) < 1e17:
        return str(int(value)).encode()
    return repr(value).encode()


def keyword(raw: Value) -> bytes:
    """An option keyword (``NX``, ``LIMIT``, ``WITHSCORES``, a unit, an aggregate...) as Redis compares
    it: upper case and ending at its first NUL byte, as Redis's C-string ``strcasecmp`` reads it
    (``NX\\0junk`` is ``NX`` there). Command and subcommand names are not read this way: Redis looks
    them up whole."""
    return c_string(_b(raw)).upper()


def parse_int(value: Value) -> int:
    """Parse a Redis integer argument (signed 64-bit decimal) or raise :class:`NotAnIntegerError`."""
    if type(value) is bytes and value.isdigit() and (value[0] != 48 or len(value) == 1) and len(value) < 19:
        return int(value)  # the common case: a plain non-negative decimal well inside 64 bits
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        raw = _b(value)
        digits = raw[1:] if raw[:1] == b"-" else raw  # one sign at most: "--5" is no integer
        if not raw or len(raw) > 20 or raw != raw.strip() or not digits.isdigit():
            raise NotAnIntegerError(NOT_INT)
        if raw.startswith(b"-0") or (raw.startswith(b"0") and len(raw) > 1):
            raise NotAnIntegerError(NOT_INT)
        n = int(raw)
    if not _I64_MIN <= n <= _I64_MAX:
        raise NotAnIntegerError(NOT_INT)
    return n


def parse_index(value: object) -> int:
    """An index, offset or count argument: a Python int as it is (ranges clamp any size), a str
    or bytes as :func:`parse_int` reads it; a float, None... is :class:`NotAnIntegerError`, as
    Redis answers "1.5" (it raised Python's TypeError or ValueError, or struct.error)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (bytes, str)):
        return parse_int(value)
    raise NotAnIntegerError(NOT_INT)


def parse_read_count(value: object) -> int | None:
    """XREAD's and XREADGROUP's ``count``: the most entries per stream, or None for all of them.

    None, 0 and a negative count read every entry, as Redis takes a COUNT below 1; in-process a
    negative count gave no entry (XREAD, which with ``block`` then waited for nothing) or one
    (XREADGROUP). Text is read as :func:`parse_index` reads it.
    """
    if value is None:
        return None
    count = parse_index(value)
    return count if count > 0 else None


def parse_scan_count(value: object) -> int:
    """A SCAN-family ``count``: an int as :func:`parse_index` reads it, which must be 1 or more.

    Redis answers ``COUNT 0`` or a negative count with "ERR syntax error"; a step of no names
    would never advance the cursor, so it is refused (it was taken as 1) with a CommandError
    whose message says what is wrong. None (redis-py's default: no ``COUNT``) is Redis's 10.
    """
    if value is None:
        return 10
    count = parse_index(value)
    if count < 1:
        raise CommandError(f"ERR syntax error: a scan's count must be 1 or more, not {count}")
    return count


#: The most members a negative count may ask HRANDFIELD, SRANDMEMBER or ZRANDMEMBER for (they may
#: repeat). Redis 7.0 starts any such reply: one of 2**62 members never ends, its memory growing
#: until it is killed; kvb refuses more than this, which it can build in seconds.
MAX_RANDOM_REPEATS = 10_000_000


def random_repeats(count: int) -> int:
    """How many members a negative random-member ``count`` of a non-empty key asks for (``-count``);
    a CommandError (Redis's "value is out of range") beyond :data:`MAX_RANDOM_REPEATS`."""
    if -count > MAX_RANDOM_REPEATS:
        raise CommandError(
            f"ERR value is out of range, a negative count may ask for at most {MAX_RANDOM_REPEATS} members"
        )
    return -count


def parse_float(value: Value, msg: str = NOT_FLOAT, overflow: bool = False) -> float:
    """Parse a Redis float argument (``inf``/``-inf`` allowed, NaN refused).

    A finite number too large for a double (``1e500``), or a non-zero one so
    small that it would read as 0 (``1e-400``), is refused, as Redis refuses
    them for scores and increments; ``overflow=True`` reads them as an infinity
    or 0 instead, as Redis does for range bounds.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            f = float(value)
        except OverflowError:  # an int beyond a double's range, read as its text would be
            if not overflow:
                raise NotAFloatError(msg) from None
            f = math.inf if value > 0 else -math.inf
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
    """Parse a ZRANGEBYSCORE bound: a float, ``(float`` (exclusive), ``-inf``, ``+inf``.

    As Redis reads it with C's ``strtod``: up to a NUL byte, with white space before the number
    (`` 1``, ``( 1``); but not hexadecimal, nor an empty number (``(``), which Redis reads as 0.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        # (a NaN matched nothing, an int beyond a double raised OverflowError)
        return parse_float(value, "ERR min or max is not a float", overflow=True), False
    # as Redis's strtod: a C string (up to a NUL byte), white space allowed before the number
    raw = c_string(_b(value))
    exclusive = raw.startswith(b"(")
    text = raw[1:] if exclusive else raw
    number = text.lstrip(b" \t\n\v\f\r") or text  # only white space stays refused
    return parse_float(number, "ERR min or max is not a float", overflow=True), exclusive


#: A lexicographical range bound: (-1 for ``-``, 1 for ``+``, 0 for a member; the member; exclusive).
LexBound = tuple[int, bytes, bool]


def _lex_bound(value: Value) -> LexBound:
    """Parse a ZRANGEBYLEX bound: ``[member`` (inclusive), ``(member`` (exclusive), ``-`` or ``+``.

    As in Redis, ``-`` and ``+`` are exclusive (``ZLEXCOUNT k - -`` is 0) and anything else,
    the empty string included, is refused.
    """
    raw = _b(value)
    head = raw[:1]
    if head in (b"-", b"+") and (len(raw) == 1 or raw[1] == 0):  # Redis reads a C string here
        return (-1 if head == b"-" else 1), b"", True
    if head in (b"[", b"("):
        return 0, raw[1:], head == b"("
    raise CommandError("ERR min or max not valid string range item")


def _lex_empty(lo: LexBound, hi: LexBound) -> bool:
    """Whether no member can be in the range (min above max, or equal and one of them exclusive)."""
    cmp = (lo[0] > hi[0]) - (lo[0] < hi[0])
    if cmp == 0 and lo[0] == 0:
        cmp = (lo[1] > hi[1]) - (lo[1] < hi[1])
    return cmp > 0 or (cmp == 0 and (lo[2] or hi[2]))


def _lex_gte_min(member: bytes, lo: LexBound) -> bool:
    if lo[0]:
        return lo[0] < 0
    return member > lo[1] if lo[2] else member >= lo[1]


def _lex_lte_max(member: bytes, hi: LexBound) -> bool:
    if hi[0]:
        return hi[0] > 0
    return member < hi[1] if hi[2] else member <= hi[1]


def _glob_range(a: int, b: int) -> list[bytes]:
    """A ``[a-b]`` range of a glob as regex ranges. Redis compares C ``char`` values, which are
    signed: bytes from 0x80 on come before 0x00, so a range from one below 0x80 to one from 0x80
    on (``[\\x00-\\xff]``) holds the bytes from the high one up to 0xff and from 0x00 up to the low
    one (``\\xff`` and ``\\x00``), not those between them."""
    lo, hi = sorted(x - 256 if x >= 128 else x for x in (a, b))
    spans = [(lo + 256, 255), (0, hi)] if lo < 0 <= hi else [(lo % 256, hi % 256)]
    return [re.escape(bytes([x])) + b"-" + re.escape(bytes([y])) for x, y in spans]


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
                elif j + 2 < n and pattern[j + 1 : j + 2] == b"-":  # as Redis: "[a-]" is "]" to "a"
                    items += _glob_range(pattern[j], pattern[j + 2])
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


def glob_match(pattern: bytes, name: bytes, star_matches_all: bool = True) -> bool:
    """Redis-style glob matching (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\`` escapes). As Redis's, no
    pattern but the empty one matches the empty name, except a lone ``*`` while
    ``star_matches_all`` (KEYS and the SCAN family take it as "everything"; PSUBSCRIBE and PUBSUB
    CHANNELS do not)."""
    if pattern == b"*" and star_matches_all:
        return True
    if not name:
        return not pattern
    return _glob_regex(pattern).match(name) is not None


def _literal_prefix(pattern: bytes) -> bytes:
    """The part of a glob pattern before its first special character (for prefix scans)."""
    for i, c in enumerate(pattern):
        if c in b"*?[\\":
            return pattern[:i]
    return pattern


#: Every cursor handed out is below 2**53: a JavaScript number holds it exactly (node-redis), and so do
#: the signed and unsigned 64-bit integers other clients read cursors into (go-redis, Jedis...).
CURSOR_LIMIT = 1 << 53
#: Cursors below this hold the name to resume after themselves: 0x01 then up to 6 bytes of name.
_DIRECT_LIMIT = 1 << 49
_U64 = 1 << 64
_INVALID_CURSOR = "ERR invalid cursor"


def parse_cursor(cursor: int | Value) -> int:
    """Read a SCAN cursor argument as Redis does (C ``strtoul``): an unsigned 64-bit integer.

    As in Redis, a leading ``+`` or ``-`` is allowed (``-1`` is 2**64 - 1), and so are leading zeros;
    the empty string is 0; the text ends at a NUL byte; leading or trailing spaces, any other
    character and values of 2**64 and more are ``ERR invalid cursor``. An int must be in 0 .. 2**64-1.
    """
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        if not 0 <= cursor < _U64:
            raise CommandError(_INVALID_CURSOR)
        return cursor
    raw = c_string(_b(cursor))  # a C string: Redis reads up to the first NUL
    sign = raw[:1] if raw[:1] in (b"+", b"-") else b""
    digits = raw[len(sign) :].lstrip(b"0")
    if not raw:
        return 0
    if not raw[len(sign) :].isdigit() or len(digits) > 20:
        raise CommandError(_INVALID_CURSOR)
    n = int(digits or b"0")
    if n >= _U64:
        raise CommandError(_INVALID_CURSOR)
    return (_U64 - n) % _U64 if sign == b"-" else n


class CursorTable:
    """The SCAN cursors one :class:`~kv_backend.structures.keyspace.Keyspace` handed out as tokens.

    A name of up to 6 bytes fits in a cursor below 2**53 (``0x01`` + name); a longer one gets a
    random token in ``[2**49, 2**53)`` that this table maps to it. The table holds at most
    ``max_entries`` tokens and ``max_bytes`` bytes of names (a name may be 64 KiB). A token stays
    valid after use (a client may send a cursor again, say after a timeout) until evicted. When
    full, the least recently used of the tokens already resumed from goes first, as long as they
    hold more than a tenth of either limit (the rest are kept for such retries): a long scan then
    does not push out the cursor another, slower, client has not used yet. Otherwise the least
    recently used of the tokens not used yet goes.
    """

    def __init__(self, max_entries: int = 10_000, max_bytes: int = 16 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._fresh: OrderedDict[int, bytes] = OrderedDict()  # not resumed from yet
        self._used: OrderedDict[int, bytes] = OrderedDict()  # resumed from at least once
        self._bytes = 0  # of every name held
        self._used_bytes = 0  # of the names in _used
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._fresh) + len(self._used)

    @property
    def nbytes(self) -> int:
        """Total length of the names held."""
        return self._bytes

    def add(self, name: bytes) -> int:
        """A new token for ``name``, evicting old tokens to stay within the limits."""
        with self._lock:
            while len(self) and (len(self) >= self.max_entries or self._bytes + len(name) > self.max_bytes):
                if self._used and (
                    not self._fresh
                    or len(self._used) > self.max_entries // 10
                    or self._used_bytes > self.max_bytes // 10
                ):
                    size = len(self._used.popitem(last=False)[1])
                    self._used_bytes -= size
                else:
                    size = len(self._fresh.popitem(last=False)[1])
                self._bytes -= size
            token = random.randrange(_DIRECT_LIMIT, CURSOR_LIMIT)
            while token in self._fresh or token in self._used:
                token = random.randrange(_DIRECT_LIMIT, CURSOR_LIMIT)
            self._fresh[token] = name
            self._bytes += len(name)
            return token

    def get(self, token: int) -> bytes | None:
        """The name ``token`` stands for (now the most recently used token), or None if unknown."""
        with self._lock:
            name = self._used.pop(token, None)
            if name is None:
                name = self._fresh.pop(token, None)
                if name is None:
                    return None
                self._used_bytes += len(name)
            self._used[token] = name
            return name


def _encode_cursor(last: bytes, table: CursorTable) -> int:
    """A SCAN cursor (a positive int below 2**53) that resumes after ``last``."""
    if len(last) <= 6:
        return int.from_bytes(b"\x01" + last, "big")
    return table.add(last)


def _decode_cursor(cursor: int | Value, table: CursorTable) -> bytes | None:
    """Return the position a cursor resumes after (None: from the start).

    A malformed cursor, or one this table never handed out or has evicted, is ``ERR invalid cursor``:
    starting over would hand a client names again with no end in sight, skipping on would lose them.
    """
    n = parse_cursor(cursor)
    if n == 0:
        return None
    if n < _DIRECT_LIMIT:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        if raw[:1] == b"\x01":
            return raw[1:]
    elif n < CURSOR_LIMIT:
        found = table.get(n)
        if found is not None:
            return found
    raise CommandError(_INVALID_CURSOR)
