"""Redis strings: GET, SET and its options, counters, ranges."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from kv_backend import longdouble
from kv_backend.errors import KeyTooLargeError
from kv_backend.structures.errors import CommandError, KeyNameTooLongError, WrongTypeError
from kv_backend.structures.keyspace import (
    TOO_LONG,
    Keyspace,
    _check_milliseconds,
    _check_seconds,
    _given,
    _name_limit,
    mismatch,
)
from kv_backend.structures.layout import (
    _I64_MAX,
    _I64_MIN,
    META,
    T_STRING,
    Name,
    NameT,
    Value,
    _b,
    _list_or_args,
    _pairs,
)
from kv_backend.structures.parsing import _add_long_double, _long_double, parse_index, parse_int

#: The largest string Redis lets a command build (its ``proto-max-bulk-len``, 512 MiB).
MAX_STRING_SIZE = 512 * 1024 * 1024


def _check_size(size: int) -> None:
    """Refuse to build a string longer than Redis would (APPEND, SETRANGE), with Redis's error."""
    if size > MAX_STRING_SIZE:
        raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")


def _ms_expiry(
    ex: float | timedelta | None,
    exat: float | datetime | None,
    px: float | timedelta | None,
    pxat: float | datetime | None,
) -> tuple[float | None, float | None]:
    """SET's and GETEX's ``px``/``pxat`` (one of them given) as the ``(ex, exat)`` in seconds they
    stand for; with another expiry option it is Redis's syntax error."""
    if ex is not None or exat is not None or (px is not None and pxat is not None):
        raise CommandError("ERR syntax error")  # (as Redis: one expiry option at most)
    if px is not None:
        return _check_milliseconds(px, "px") / 1000, None
    return None, _check_milliseconds(pxat, "pxat", absolute=True) / 1000


def _decrement(amount: Value) -> int:
    """DECRBY's amount as the increment it stands for; the lowest 64-bit integer has no positive
    counterpart, which Redis answers "decrement would overflow" (it was "not an integer")."""
    n = parse_int(amount)
    if n == _I64_MIN:
        raise CommandError("ERR decrement would overflow")
    return -n


class Strings(Keyspace):
    """The string commands of :class:`~kv_backend.structures.Structures`."""

    def get(self, name: Name) -> bytes | None:
        """The string value of a key, or None if it is missing."""
        try:  # (self._value's check inlined: this is the hottest read)
            found = self.db.get(META + _b(name))
        except KeyTooLargeError:
            return None  # a name too long to be stored is missing (see _value)
        if found is None:
            return None
        try:  # (the return inside: no jump past the handler on the hot path)
            if found[0] == T_STRING:
                return found[1:]
        except IndexError:  # an empty record: another front end's
            pass
        raise mismatch(_b(name), found)

    def set(
        self,
        name: Name,
        value: Value,
        ex: float | timedelta | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
        exat: float | datetime | None = None,
        px: float | timedelta | None = None,
        pxat: float | datetime | None = None,
    ) -> Any:
        """Store a string (replacing a key of any type); ``ex`` is a TTL in seconds.

        ``nx``/``xx``: only if the key is missing/exists; ``keepttl``: keep the old
        expiry; ``get``: return the old string value instead of whether it was set;
        ``exat``: expire at this Unix time instead of after ``ex`` seconds (a past
        time stores the key already expired, as Redis's ``SET ... EXAT`` does);
        ``px``/``pxat``: ``ex``/``exat`` in milliseconds (redis-py's names).
        """
        try:
            if px is not None or pxat is not None:
                ex, exat = _ms_expiry(ex, exat, px, pxat)
            name, value = _b(name), _b(value)
            expiring = ex is not None or exat is not None
            if (nx and xx) or (ex is not None and exat is not None) or (keepttl and expiring):
                raise CommandError("ERR syntax error")  # (as Redis: one expiry option at most)
            if ex is not None:
                ex = _check_seconds(ex, "ex")
            if ex is not None and ex <= 0:
                raise CommandError("ERR invalid expire time in 'set' command")
            if exat is not None:
                exat = _check_seconds(exat, "exat", absolute=True)
                if exat <= 0:  # (as Redis; the engine took 0 for "never" and refused a negative time)
                    raise CommandError("ERR invalid expire time in 'set' command")
            db = self.db
            mk = META + name
            data = b"s" + value
            if not (nx or xx or keepttl or get):
                # Only the type tag matters here, and the key is overwritten either way.
                tag = db._peek_value(mk)
                if tag is None or tag == b"s":
                    db.put(mk, data, ex, expires_at=exat)
                    return True
            with db.locked():
                found = self._record(mk)
                if get and found is not None and found[0][0] != T_STRING:
                    raise WrongTypeError()
                old_value = found[0][1:] if found is not None else None
                if (nx and found is not None) or (xx and found is None):
                    return old_value if get else False
                # KEEPTTL keeps the old expiry exactly (0.0: none).
                keep = found[1] if keepttl and found is not None and ex is None and exat is None else exat
                if found is not None and found[0][0] != T_STRING:
                    with db.batch() as b:
                        self._purge(b, name, found[0][0])
                        b.put(mk, data, ex, expires_at=keep)
                else:
                    db.put(mk, data, ex, expires_at=keep)
            return old_value if get else True
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_STRING]) from None

    @_name_limit(T_STRING)
    def setnx(self, name: Name, value: Value) -> bool:
        """Store a string only if the key is missing."""
        return bool(self.set(name, value, nx=True))

    @_name_limit(T_STRING)
    def setex(self, name: Name, seconds: float | timedelta, value: Value) -> bool:
        """Store a string with a TTL in seconds."""
        seconds = _check_seconds(seconds, "the expire time")
        if seconds <= 0:  # (set()'s error named 'set')
            raise CommandError("ERR invalid expire time in 'setex' command")
        return bool(self.set(name, value, ex=seconds))

    @_name_limit(T_STRING)
    def psetex(self, name: Name, milliseconds: float | timedelta, value: Value) -> bool:
        """Store a string with a TTL in milliseconds."""
        milliseconds = _check_milliseconds(milliseconds, "the expire time")
        if milliseconds <= 0:
            raise CommandError("ERR invalid expire time in 'psetex' command")
        return bool(self.set(name, value, px=milliseconds))

    def mget(self, *names: Name | Iterable[Name]) -> list[bytes | None]:
        """The string values of several keys (None for missing keys or keys of other types); the
        names may come as a list, as redis-py's ``mget(keys, *args)`` takes them."""
        out: list[bytes | None] = []
        for n in _list_or_args(names):
            found = self._meta_value(_b(n))
            out.append(found[1:] if found is not None and found[0] == T_STRING else None)
        return out

    @_name_limit(T_STRING)
    def mset(self, mapping: Mapping[NameT, Value] | Iterable[tuple[Name, Value]]) -> bool:
        """Store several strings at once (all or nothing); ``mapping`` may also be ``(name, value)`` pairs."""
        db = self.db
        pairs = _given(_pairs(mapping, "mapping"), "mset")
        with db.locked(), db.batch() as b:
            for n, v in pairs:
                name = _b(n)
                found = self._meta_value(name)
                if found is not None and found[0] != T_STRING:
                    self._purge(b, name, found[0])
                b.put(META + name, b"s" + _b(v))
        return True

    @_name_limit(T_STRING)
    def msetnx(self, mapping: Mapping[NameT, Value] | Iterable[tuple[Name, Value]]) -> bool:
        """Store several strings only if none of the keys exists."""
        db = self.db
        pairs = _given(_pairs(mapping, "mapping"), "msetnx")
        with db.locked():
            # Every name's record read (a list, not any() stopping at the first key found): another front
            # end's is refused, as by SET ... NX and by mset(), whatever the other names hold.
            if any([self._meta_value(_b(n)) is not None for n, _ in pairs]):
                return False
            return self.mset(pairs)

    def getdel(self, name: Name) -> bytes | None:
        """Return a string value and delete the key."""
        mk = META + _b(name)
        with self.db.locked():
            value = self.get(name)
            if value is not None:
                self.db.delete(mk)
            return value

    @_name_limit(T_STRING)
    def getset(self, name: Name, value: Value) -> bytes | None:
        """Store a string and return the old one (the TTL is dropped)."""
        old: bytes | None = self.set(name, value, get=True)
        return old

    def getex(
        self,
        name: Name,
        ex: float | timedelta | None = None,
        persist: bool = False,
        exat: float | datetime | None = None,
        px: float | timedelta | None = None,
        pxat: float | datetime | None = None,
    ) -> bytes | None:
        """Return a string value and change its expiry (``ex`` seconds, Unix time ``exat``, ``persist``;
        ``px``/``pxat`` the same in milliseconds)."""
        if px is not None or pxat is not None:
            ex, exat = _ms_expiry(ex, exat, px, pxat)
        name = _b(name)
        if (ex is not None) + (exat is not None) + bool(persist) > 1:
            raise CommandError("ERR syntax error")  # (as Redis: one expiry option at most)
        if ex is not None:
            ex = _check_seconds(ex, "ex")
            if ex <= 0:  # (as SET's ex; it deleted the key and answered its value)
                raise CommandError("ERR invalid expire time in 'getex' command")
        if exat is not None:
            exat = _check_seconds(exat, "exat", absolute=True)
            if exat <= 0:  # (as Redis; it deleted the key and answered its value)
                raise CommandError("ERR invalid expire time in 'getex' command")
        with self.db.locked():
            value = self.get(name)
            if value is not None:
                if ex is not None:
                    self.expire(name, ex)
                elif exat is not None:
                    self.expireat(name, exat)
                elif persist:
                    self.persist(name)  # writes nothing without a TTL: WATCH sees no change, as in Redis
            return value

    @_name_limit(T_STRING)
    def append(self, name: Name, value: Value) -> int:
        """Append to a string (creating it); return the new length."""
        mk = META + _b(name)
        with self.db.locked():
            found = self._record(mk)
            if found is None:
                data, expiry = b"s" + _b(value), 0.0
            elif found[0][0] != T_STRING:
                raise WrongTypeError()
            else:
                _check_size(len(found[0]) - 1 + len(_b(value)))
                data, expiry = found[0] + _b(value), found[1]
            self.db.put(mk, data, expires_at=expiry)
            return len(data) - 1

    def strlen(self, name: Name) -> int:
        """Length of a string value (0 if missing)."""
        value = self.get(name)
        return 0 if value is None else len(value)

    def substr(self, name: Name, start: int, end: int = -1) -> bytes:
        """:meth:`getrange` (SUBSTR, its old name; redis-py's ``end`` defaults to -1)."""
        return self.getrange(name, start, end)

    def getrange(self, name: Name, start: int, end: int) -> bytes:
        """A substring by inclusive byte offsets (negative: from the end)."""
        start, end = parse_index(start), parse_index(end)
        value = self.get(name) or b""
        n = len(value)
        if start < 0 and end < 0 and start > end:
            return b""
        # Offsets past either end are clamped to the string, as Redis does: "GETRANGE k 0 -100"
        # of a non-empty value is its first byte.
        start = max(n + start, 0) if start < 0 else start
        end = max(n + end, 0) if end < 0 else end
        end = min(end, n - 1)
        return value[start : end + 1] if start <= end else b""

    def lcs(
        self,
        a: Name,
        b: Name,
        len: bool = False,
        idx: bool = False,
        minmatchlen: int = 0,
        withmatchlen: bool = False,
    ) -> Any:
        """Redis's LCS: the longest common subsequence of two strings (missing keys read as empty),
        or with ``len`` its length, or with ``idx`` ``{b"matches": [...], b"len": n}``, the matches
        as ``[[a_start, a_end], [b_start, b_end]]`` (with ``withmatchlen`` also their length),
        last first, those shorter than ``minmatchlen`` left out. Takes time and memory in the
        product of the two lengths, as in Redis."""
        minmatchlen = parse_index(minmatchlen)
        names = (_b(a), _b(b))
        found = self._read_consistent(lambda: [self._record(META + name) for name in names])
        if any(f is not None and f[0][0] != T_STRING for f in found):
            raise CommandError("ERR The specified keys must contain string values")
        if len and idx:
            raise CommandError("ERR If you want both the length and indexes, please just use IDX.")
        x, y = (b"" if f is None else f[0][1:] for f in found)
        # table[i][j]: the LCS length of x[:i] and y[:j]
        table = [[0] * (builtins.len(y) + 1)]
        for i in range(builtins.len(x)):
            above, row, xi = table[i], [0], x[i]
            for j, yj in enumerate(y):
                row.append(above[j] + 1 if xi == yj else max(above[j + 1], row[j]))
            table.append(row)
        i, j = builtins.len(x), builtins.len(y)
        total = table[i][j]
        if len:
            return total
        out = bytearray()
        matches: list[list[Any]] = []
        start = None  # the range being walked back: [a_start, a_end, b_start, b_end]
        while i > 0 and j > 0:
            emit = False
            if x[i - 1] == y[j - 1]:
                out.append(x[i - 1])
                if start is None:
                    start = [i - 1, i - 1, j - 1, j - 1]
                else:  # walking back from a match always reaches the previous byte of both
                    start[0], start[2] = start[0] - 1, start[2] - 1
                emit = start[0] == 0 or start[2] == 0
                i, j = i - 1, j - 1
            else:
                if table[i - 1][j] > table[i][j - 1]:
                    i -= 1
                else:
                    j -= 1
                emit = start is not None
            if emit and start is not None:
                size = start[1] - start[0] + 1
                if size >= minmatchlen:
                    match: list[Any] = [[start[0], start[1]], [start[2], start[3]]]
                    matches.append([*match, size] if withmatchlen else match)
                start = None
        if idx:
            return {b"matches": matches, b"len": total}
        return bytes(reversed(out))

    def incrby(self, name: Name, amount: int = 1) -> int:
        """Add to an integer string (missing = 0, keeps the TTL); return the result."""
        try:
            amount = parse_int(amount)
            mk = META + _b(name)
            with self.db.locked():
                found = self._record(mk)
                if found is None:
                    current, expiry = 0, 0.0
                else:
                    value, expiry = found
                    if value[0] != T_STRING:
                        raise WrongTypeError()
                    current = parse_int(value[1:])
                result = current + amount
                if not _I64_MIN <= result <= _I64_MAX:
                    raise CommandError("ERR increment or decrement would overflow")
                self.db.put(mk, b"s%d" % result, expires_at=expiry)
                return result
        except KeyNameTooLongError:
            raise
        except KeyTooLargeError:
            raise KeyNameTooLongError(TOO_LONG[T_STRING]) from None

    def incr(self, name: Name, amount: int = 1) -> int:
        """Add 1 (or ``amount``, as redis-py's ``incr``) to an integer string."""
        return self.incrby(name, amount)

    def decr(self, name: Name, amount: int = 1) -> int:
        """Subtract 1 (or ``amount``, as redis-py's ``decr``) from an integer string."""
        return self.incrby(name, _decrement(amount))

    @_name_limit(T_STRING)
    def decrby(self, name: Name, amount: int = 1) -> int:
        """Subtract from an integer string."""
        return self.incrby(name, _decrement(amount))

    @_name_limit(T_STRING)
    def incrbyfloat(self, name: Name, amount: float | Value = 1.0) -> float:
        """Add to a float string (missing = 0, keeps the TTL); return the result.

        The arithmetic is Redis's (long double, stored with at most 17
        decimals), so ``0.1`` plus ``0.2`` stores ``0.3``. The stored text is
        what :meth:`incrbyfloat_text` returns.
        """
        return float(self.incrbyfloat_text(name, amount))

    @_name_limit(T_STRING)
    def incrbyfloat_text(self, name: Name, amount: float | Value = 1.0) -> bytes:
        """:meth:`incrbyfloat`, returning the new value as stored (INCRBYFLOAT's reply)."""
        mk = META + _b(name)
        with self.db.locked():
            found = self._record(mk)
            if found is None:
                current: longdouble.LongDouble = Fraction(0)
                expiry = 0.0
            else:
                if found[0][0] != T_STRING:
                    raise WrongTypeError()  # the type first, then the numbers, as Redis
                current, expiry = _long_double(found[0][1:]), found[1]
            text = _add_long_double(current, _long_double(amount))
            self.db.put(mk, b"s" + text, expires_at=expiry)
            return text

    @_name_limit(T_STRING)
    def setrange(self, name: Name, offset: int, value: Value) -> int:
        """Overwrite part of a string from byte ``offset`` (zero bytes pad a gap); return the new length.

        As in Redis: the string may grow to at most 512 MiB; an empty ``value`` changes
        nothing (a missing key stays missing) and answers the current length; the TTL stays.
        """
        name, value, offset = _b(name), _b(value), parse_int(offset)
        if offset < 0:
            raise CommandError("ERR offset is out of range")
        mk = META + name
        with self.db.locked():
            found = self._record(mk)
            if found is not None and found[0][0] != T_STRING:
                raise WrongTypeError()
            old, expiry = (found[0][1:], found[1]) if found is not None else (b"", 0.0)
            if not value:
                return len(old)
            _check_size(offset + len(value))
            if offset > len(old):
                old += bytes(offset - len(old))
            data = old[:offset] + value + old[offset + len(value) :]
            self.db.put(mk, b"s" + data, expires_at=expiry)
            return len(data)
