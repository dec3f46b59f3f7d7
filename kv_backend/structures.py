"""Redis data structures (strings, hashes, lists, sets, sorted sets, streams) over :class:`kv_backend.DB`.

Every Redis key is one *metadata record* ``b"\\x00m" + name`` whose value starts
with a type tag; strings keep their value right there, collections keep a
count and a write counter, and their fields/elements/members live in records of
their own under a per-type prefix followed by the length-prefixed name::

    b"\\x00m" name                  -> b"s" value | b"h"/b"t"/b"z" count version | b"l" head tail version
    b"\\x00h" len name field        -> value      (hash fields)
    b"\\x00l" len name index(8)     -> element    (lists; index is a sortable int64)
    b"\\x00s" len name member       -> b""        (sets)
    b"\\x00z" len name member       -> score(8)   (sorted set: member -> score)
    b"\\x00Z" len name score(8) mbr -> b""        (sorted set: score order index)
    b"\\x00x" len name ms(8) seq(8) -> fields     (stream entries, in ID order)

A stream's metadata is ``b"x" count version last_ms last_seq``; an entry's
value is its field/value pairs, each length-prefixed.

Scores are IEEE-754 doubles turned into 8 bytes that sort like the numbers, so
score ranges and ranks are ordered engine scans. Expiry lives on the metadata
record (the engine's own TTL); a key whose metadata has expired is missing, and
the member records it leaves behind are removed when the name is used for a new
collection, deleted, or by :meth:`Structures.vacuum`. Every multi-record change
runs under ``db.locked()`` in one ``db.batch()``: other processes never see half
of it, and a crash never leaves half of it on disk.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import re
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from functools import lru_cache
from typing import Any

from kv_backend import longdouble
from kv_backend.db import DB, Batch
from kv_backend.errors import KVError, NotAnIntegerError

__all__ = [
    "CommandError",
    "NotAFloatError",
    "StructureError",
    "Structures",
    "WrongTypeError",
    "format_float",
    "glob_match",
]

Name = bytes | str | int | float
Value = bytes | str | int | float

META = b"\x00m"
HASH = b"\x00h"
LIST = b"\x00l"
SET = b"\x00s"
ZMEM = b"\x00z"
ZIDX = b"\x00Z"
STREAM = b"\x00x"
ALL_PREFIXES = (META, HASH, LIST, SET, ZMEM, ZIDX, STREAM)

T_STRING = 0x73  # b"s"
T_HASH = 0x68  # b"h"
T_LIST = 0x6C  # b"l"
T_SET = 0x74  # b"t"
T_ZSET = 0x7A  # b"z"
T_STREAM = 0x78  # b"x"
TYPE_NAMES = {
    T_STRING: "string",
    T_HASH: "hash",
    T_LIST: "list",
    T_SET: "set",
    T_ZSET: "zset",
    T_STREAM: "stream",
}
MEMBER_PREFIXES = {
    T_HASH: (HASH,),
    T_LIST: (LIST,),
    T_SET: (SET,),
    T_ZSET: (ZMEM, ZIDX),
    T_STREAM: (STREAM,),
}

_CNT = struct.Struct(">QQ")  # count, version
_XMETA = struct.Struct(">QQQQ")  # stream: count, version, last ID's milliseconds and sequence
_XID = struct.Struct(">QQ")  # a stream entry ID: milliseconds, sequence
_U64_MAX = (1 << 64) - 1
BAD_STREAM_ID = "ERR Invalid stream ID specified as stream command argument"
ID_TOO_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"
_LST = struct.Struct(">qqQ")  # head (inclusive), tail (exclusive), version
_U64 = struct.Struct(">Q")
_LEN = struct.Struct(">I")
_BIAS = 1 << 63
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_time = time.time


class StructureError(KVError):
    """Base class of the errors of :mod:`kv_backend.structures`; ``str()`` is a Redis-style message."""


class WrongTypeError(StructureError, TypeError):
    """The key holds another type than the operation needs (Redis's ``WRONGTYPE``)."""

    def __init__(
        self, msg: str = "WRONGTYPE Operation against a key holding the wrong kind of value"
    ) -> None:
        super().__init__(msg)


class NotAFloatError(StructureError, ValueError):
    """A value or argument is not a valid floating point number."""


class CommandError(StructureError, ValueError):
    """An argument is out of range or the operation cannot be done (Redis's ``ERR ...``)."""


class HashValueNotAnIntegerError(StructureError, NotAnIntegerError):
    """HINCRBY found a field value that is not an integer (also a :class:`NotAnIntegerError`)."""


NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"


# ----------------------------------------------------------------- encoding


def _b(value: Value) -> bytes:
    """Encode a name, field or value as redis-py does: bytes as is, str as UTF-8, numbers as text."""
    if type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        raise TypeError("booleans are not accepted as keys or values; pass bytes, str, int or float")
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()
    raise TypeError(f"expected bytes, str, int or float, not {type(value).__name__}")


def _lp(name: bytes) -> bytes:
    return _LEN.pack(len(name)) + name


def encode_score(score: float) -> bytes:
    """8 bytes that sort (as unsigned bytes) in the same order as the doubles."""
    if score == 0.0:
        score = 0.0  # -0.0 and 0.0 are the same score
    (bits,) = _U64.unpack(struct.pack(">d", score))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits & _BIAS else bits | _BIAS
    return _U64.pack(bits)


def decode_score(data: bytes) -> float:
    """Inverse of :func:`encode_score`."""
    (bits,) = _U64.unpack(data)
    bits = bits ^ _BIAS if bits & _BIAS else bits ^ 0xFFFFFFFFFFFFFFFF
    return struct.unpack(">d", _U64.pack(bits))[0]


def _idx(i: int) -> bytes:
    return _U64.pack(i + _BIAS)


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

    A finite number too large for a double (``1e500``) is refused, as Redis
    refuses it for scores and increments; ``overflow=True`` reads it as an
    infinity instead, as Redis does for range bounds.
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


# ------------------------------------------------------------------ the API


class Structures:
    """Redis-like strings, hashes, lists, sets and sorted sets stored in a :class:`DB`.

    Pass an open ``DB`` (shared with other code) or a directory path (then this
    object opens and owns the DB; extra keyword arguments go to ``DB``). Method
    names and results follow Redis commands (``hset``, ``zrangebyscore``...);
    names, fields and values may be bytes, str or numbers, results are bytes.
    Safe to use from many processes at once on one directory.
    """

    def __init__(self, db: DB | str | os.PathLike[str], **db_options: Any) -> None:
        if isinstance(db, DB):
            if db_options:
                raise TypeError("DB options can only be given together with a path")
            self.db = db
            self._owns_db = False
        else:
            self.db = DB(db, **db_options)
            self._owns_db = True
        self._cursors: dict[int, bytes] = {}

    def close(self) -> None:
        """Close the DB if this object opened it."""
        if self._owns_db:
            self.db.close()

    def __enter__(self) -> Structures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------- internals

    def _record(self, mk: bytes) -> tuple[bytes, float] | None:
        """Return ``(metadata, absolute expiry or 0)`` of a live key, or None."""
        return self.db._get_record(mk)

    def _meta(self, name: bytes, tag: int) -> tuple[bytes, float] | None:
        """The metadata of ``name`` if it exists; WRONGTYPE if it holds another type."""
        found = self.db._get_record(META + name)
        if found is not None and found[0][0] != tag:
            raise WrongTypeError()
        return found

    def _purge(self, b: Batch, name: bytes, tag: int) -> None:
        """Delete member records a previous, expired or deleted, key of this name left behind."""
        for prefix in MEMBER_PREFIXES.get(tag, ()):
            for key in list(self.db.keys(prefix=prefix + _lp(name))):
                b.delete(key)

    def _purge_all(self, b: Batch, name: bytes) -> None:
        for tag in MEMBER_PREFIXES:
            self._purge(b, name, tag)

    def _drop(self, b: Batch, name: bytes, meta: bytes) -> None:
        """Delete a live key: its metadata and all its members."""
        b.delete(META + name)
        self._purge(b, name, meta[0])

    @staticmethod
    def _count(meta: bytes) -> tuple[int, int]:
        if meta[0] == T_LIST:
            head, tail, version = _LST.unpack_from(meta, 1)
            return tail - head, version
        return _CNT.unpack_from(meta, 1)

    def _put_count(self, b: Batch, name: bytes, tag: int, count: int, version: int, expiry: float) -> None:
        if count <= 0:
            b.delete(META + name)
        else:
            b.put(META + name, bytes([tag]) + _CNT.pack(count, version + 1), expires_at=expiry)

    # ------------------------------------------------------------ keys

    def type(self, name: Name) -> str:
        """The type of a key: ``string``, ``hash``, ``list``, ``set``, ``zset`` or ``none``."""
        found = self.db.get(META + _b(name))
        return "none" if found is None else TYPE_NAMES.get(found[0], "none")

    def exists(self, *names: Name) -> int:
        """How many of ``names`` exist (a name given twice counts twice)."""
        return sum(1 for n in names if META + _b(n) in self.db)

    def delete(self, *names: Name) -> int:
        """Delete keys of any type; return how many existed."""
        db = self.db
        removed = 0
        with db.locked(), db.batch() as b:
            seen = set()
            for n in names:
                name = _b(n)
                if name in seen:
                    continue
                seen.add(name)
                found = db.get(META + name)
                if found is not None:
                    removed += 1
                    self._drop(b, name, found)
        return removed

    unlink = delete

    def expire(self, name: Name, seconds: float | None) -> bool:
        """Set the time to live of a key in seconds (None: never; <= 0 deletes it); False if missing."""
        name = _b(name)
        if seconds is not None and seconds <= 0:
            return self.delete(name) == 1
        return self.db.expire(META + name, seconds)

    def expireat(self, name: Name, timestamp: float) -> bool:
        """Make a key expire at exactly this Unix time (a past time deletes it); False if it is missing."""
        name = _b(name)
        if timestamp <= _time():
            return self.delete(name) == 1
        return self.db.expire(META + name, expires_at=timestamp)

    def expiretime(self, name: Name) -> float | None:
        """The Unix time a key expires at (None: never); raises ``KeyError`` if the key is missing."""
        name = _b(name)
        found = self.db.get_with_expiry(META + name)
        if found is None:
            raise KeyError(name)
        return found[1]

    def persist(self, name: Name) -> bool:
        """Remove the expiry of a key; True if it had one."""
        mk = META + _b(name)
        with self.db.locked():
            found = self._record(mk)
            if found is None or not found[1]:
                return False
            return self.db.persist(mk)

    def ttl(self, name: Name) -> float | None:
        """Seconds a key has left (None: no expiry); raises ``KeyError`` if the key is missing."""
        name = _b(name)
        try:
            return self.db.ttl(META + name)
        except KeyError:
            raise KeyError(name) from None

    def keys(self, pattern: Name = b"*") -> list[bytes]:
        """All key names matching a Redis glob pattern, in byte order."""
        return list(self.iter_keys(pattern))

    def iter_keys(
        self, pattern: Name = b"*", type: str | None = None, after: bytes | None = None
    ) -> Iterator[bytes]:
        """Yield key names matching ``pattern`` (and ``type``) in byte order, after ``after``."""
        pattern = _b(pattern)
        lit = _literal_prefix(pattern)
        start = META + after + b"\x00" if after is not None else None
        tag = None
        if type is not None:
            tags = [t for t, n in TYPE_NAMES.items() if n == type.lower()]
            tag = tags[0] if tags else -1
        db = self.db
        for key in db.keys(prefix=META + lit, start=start):
            name = key[2:]
            if pattern != b"*" and not glob_match(pattern, name):
                continue
            if tag is not None:
                found = db.get(key)
                if found is None or found[0] != tag:
                    continue
            yield name

    def scan(
        self,
        cursor: int | bytes | str = 0,
        match: Name | None = None,
        count: int = 10,
        type: str | None = None,
    ) -> tuple[int, list[bytes]]:
        """One step of a cursor scan over key names: ``(next cursor, names)``; cursor 0 starts and ends."""
        after = _decode_cursor(cursor, self._cursors)
        count = max(1, int(count))
        names: list[bytes] = []
        last = None
        for name in self.iter_keys(match if match is not None else b"*", type, after):
            names.append(name)
            last = name
            if len(names) >= count:
                return _encode_cursor(last, self._cursors), names
        return 0, names

    def rename(self, src: Name, dst: Name, nx: bool = False) -> bool:
        """Move a key (with its expiry) to a new name, replacing what was there; ``nx``: only if free.

        Raises ``KeyError`` if ``src`` is missing. Returns False only when ``nx`` and ``dst`` exists.
        """
        src, dst = _b(src), _b(dst)
        db = self.db
        with db.locked():
            found = self._record(META + src)
            if found is None:
                raise KeyError(src)
            if src == dst:
                return not nx
            old = db.get(META + dst)
            if nx and old is not None:
                return False
            meta, expiry = found
            with db.batch() as b:
                self._purge_all(b, dst)
                b.put(META + dst, meta, expires_at=expiry)
                b.delete(META + src)
                for prefix in MEMBER_PREFIXES.get(meta[0], ()):
                    sp, dp = prefix + _lp(src), prefix + _lp(dst)
                    for key, value in list(db.items(prefix=sp)):
                        b.put(dp + key[len(sp) :], value)
                        b.delete(key)
        return True

    def dbsize(self) -> int:
        """Number of keys (of every type)."""
        return sum(1 for _ in self.db.keys(prefix=META))

    def flushdb(self) -> None:
        """Delete every key of every type (one atomic batch); other engine keys are left alone."""
        db = self.db
        with db.locked(), db.batch() as b:
            for prefix in ALL_PREFIXES:
                for key in list(db.keys(prefix=prefix)):
                    b.delete(key)

    def randomkey(self) -> bytes | None:
        """A random existing key name, or None if there are none."""
        names = [k[2:] for k in self.db.keys(prefix=META)]
        return random.choice(names) if names else None

    def vacuum(self, chunk: int = 1000) -> int:
        """Delete member records whose key has expired or been replaced; return how many.

        Scans without the write lock and deletes in batches of at most ``chunk``
        records, re-checking each name under the lock, so other processes are
        never held up for long.
        """
        db = self.db
        removed = 0
        for tag, prefixes in MEMBER_PREFIXES.items():
            for prefix in prefixes:
                orphans: list[tuple[bytes, bytes]] = []
                alive: dict[bytes, bool] = {}
                for key in db.keys(prefix=prefix):
                    (n,) = _LEN.unpack_from(key, 2)
                    name = key[6 : 6 + n]
                    ok = alive.get(name)
                    if ok is None:
                        found = db.get(META + name)
                        ok = alive[name] = found is not None and found[0] == tag
                    if not ok:
                        orphans.append((name, key))
                    if len(orphans) >= chunk:
                        removed += self._delete_orphans(tag, orphans)
                        orphans = []
                removed += self._delete_orphans(tag, orphans)
        return removed

    def _delete_orphans(self, tag: int, orphans: list[tuple[bytes, bytes]]) -> int:
        """Delete the given member records whose key is (still, under the lock) gone."""
        if not orphans:
            return 0
        db = self.db
        removed = 0
        with db.locked(), db.batch() as b:
            alive: dict[bytes, bool] = {}
            for name, key in orphans:
                ok = alive.get(name)
                if ok is None:
                    found = db.get(META + name)
                    ok = alive[name] = found is not None and found[0] == tag
                if not ok and key in db:
                    b.delete(key)
                    removed += 1
        return removed

    def watch_token(self, name: Name) -> tuple[bytes, float] | None:
        """An opaque value that changes whenever the key is written (used by WATCH)."""
        return self._record(META + _b(name))

    # --------------------------------------------------------------- strings

    def get(self, name: Name) -> bytes | None:
        """The string value of a key, or None if it is missing."""
        found = self.db.get(META + _b(name))
        if found is None:
            return None
        if found[0] != T_STRING:
            raise WrongTypeError()
        return found[1:]

    def set(
        self,
        name: Name,
        value: Value,
        ex: float | None = None,
        nx: bool = False,
        xx: bool = False,
        keepttl: bool = False,
        get: bool = False,
        exat: float | None = None,
    ) -> Any:
        """Store a string (replacing a key of any type); ``ex`` is a TTL in seconds.

        ``nx``/``xx``: only if the key is missing/exists; ``keepttl``: keep the old
        expiry; ``get``: return the old string value instead of whether it was set;
        ``exat``: expire at this Unix time instead of after ``ex`` seconds (a past
        time stores the key already expired, as Redis's ``SET ... EXAT`` does).
        """
        name, value = _b(name), _b(value)
        if nx and xx:
            raise CommandError("ERR syntax error")
        if ex is not None and (ex <= 0 or exat is not None):
            raise CommandError("ERR invalid expire time in 'set' command")
        db = self.db
        mk = META + name
        data = b"s" + value
        if not (nx or xx or keepttl or get):
            # Only the type tag matters here, and the key is overwritten either way.
            tag = db._first_value_byte(mk)
            if tag is None or tag == T_STRING:
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

    def setnx(self, name: Name, value: Value) -> bool:
        """Store a string only if the key is missing."""
        return bool(self.set(name, value, nx=True))

    def setex(self, name: Name, seconds: float, value: Value) -> bool:
        """Store a string with a TTL in seconds."""
        return bool(self.set(name, value, ex=seconds))

    def mget(self, *names: Name) -> list[bytes | None]:
        """The string values of several keys (None for missing keys or keys of other types)."""
        out: list[bytes | None] = []
        for n in names:
            found = self.db.get(META + _b(n))
            out.append(found[1:] if found is not None and found[0] == T_STRING else None)
        return out

    def mset(self, mapping: Mapping[Name, Value]) -> bool:
        """Store several strings at once (all or nothing)."""
        db = self.db
        with db.locked(), db.batch() as b:
            for n, v in mapping.items():
                name = _b(n)
                found = db.get(META + name)
                if found is not None and found[0] != T_STRING:
                    self._purge(b, name, found[0])
                b.put(META + name, b"s" + _b(v))
        return True

    def msetnx(self, mapping: Mapping[Name, Value]) -> bool:
        """Store several strings only if none of the keys exists."""
        db = self.db
        with db.locked():
            if any(META + _b(n) in db for n in mapping):
                return False
            return self.mset(mapping)

    def getdel(self, name: Name) -> bytes | None:
        """Return a string value and delete the key."""
        mk = META + _b(name)
        with self.db.locked():
            value = self.get(name)
            if value is not None:
                self.db.delete(mk)
            return value

    def getset(self, name: Name, value: Value) -> bytes | None:
        """Store a string and return the old one (the TTL is dropped)."""
        return self.set(name, value, get=True)

    def getex(
        self, name: Name, ex: float | None = None, persist: bool = False, exat: float | None = None
    ) -> bytes | None:
        """Return a string value and change its expiry (``ex`` seconds, Unix time ``exat``, ``persist``)."""
        name = _b(name)
        with self.db.locked():
            value = self.get(name)
            if value is not None:
                if ex is not None:
                    self.expire(name, ex)
                elif exat is not None:
                    self.expireat(name, exat)
                elif persist:
                    self.db.persist(META + name)
            return value

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
                data, expiry = found[0] + _b(value), found[1]
            self.db.put(mk, data, expires_at=expiry)
            return len(data) - 1

    def strlen(self, name: Name) -> int:
        """Length of a string value (0 if missing)."""
        value = self.get(name)
        return 0 if value is None else len(value)

    def getrange(self, name: Name, start: int, end: int) -> bytes:
        """A substring by inclusive byte offsets (negative: from the end)."""
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

    def incrby(self, name: Name, amount: int = 1) -> int:
        """Add to an integer string (missing = 0, keeps the TTL); return the result."""
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

    def incr(self, name: Name) -> int:
        """Add 1 to an integer string."""
        return self.incrby(name, 1)

    def decr(self, name: Name) -> int:
        """Subtract 1 from an integer string."""
        return self.incrby(name, -1)

    def decrby(self, name: Name, amount: int = 1) -> int:
        """Subtract from an integer string."""
        return self.incrby(name, -parse_int(amount))

    def incrbyfloat(self, name: Name, amount: float | Value) -> float:
        """Add to a float string (missing = 0, keeps the TTL); return the result.

        The arithmetic is Redis's (long double, stored with at most 17
        decimals), so ``0.1`` plus ``0.2`` stores ``0.3``. The stored text is
        what :meth:`incrbyfloat_text` returns.
        """
        return float(self.incrbyfloat_text(name, amount))

    def incrbyfloat_text(self, name: Name, amount: float | Value) -> bytes:
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

    # ---------------------------------------------------------------- hashes

    def hset(self, name: Name, mapping: Mapping[Name, Value] | None = None, **fields: Value) -> int:
        """Set hash fields (``mapping`` and/or keyword fields); return how many were new."""
        items = [(_b(f), _b(v)) for f, v in (mapping or {}).items()]
        items += [(_b(f), _b(v)) for f, v in fields.items()]
        if not items:
            raise CommandError("ERR wrong number of arguments for 'hset' command")
        return self._hset(_b(name), items, nx=False)

    def hset_pairs(self, name: Name, pairs: list[tuple[Name, Value]]) -> int:
        """Set hash fields from ``(field, value)`` pairs, later pairs winning; return how many were new."""
        if not pairs:
            raise CommandError("ERR wrong number of arguments for 'hset' command")
        return self._hset(_b(name), [(_b(f), _b(v)) for f, v in pairs], nx=False)

    def _hset(self, name: bytes, items: list[tuple[bytes, bytes]], nx: bool) -> int:
        db = self.db
        pfx = HASH + _lp(name)
        with db.locked():
            if len(items) == 1 and not nx and db._first_value_byte(META + name) == T_HASH:
                # One existing field of a live hash overwritten: one record, the metadata is
                # unchanged, so its type tag is all that must be read.
                ((field, value),) = items
                if pfx + field in db:
                    db.put(pfx + field, value)
                    return 0
            found = self._meta(name, T_HASH)
            count, version = self._count(found[0]) if found else (0, 0)
            expiry = found[1] if found else 0.0
            added = 0
            puts: dict[bytes, bytes] = {}
            for field, value in items:
                fk = pfx + field
                if fk in puts:
                    if not nx:
                        puts[fk] = value
                    continue
                exists = found is not None and fk in db
                if nx and exists:
                    continue
                if not exists:
                    added += 1
                puts[fk] = value
            if not puts:
                return 0
            if added == 0 and len(puts) == 1:
                # Overwriting one existing field: one record, the metadata is unchanged.
                ((fk, value),) = puts.items()
                db.put(fk, value)
                return 0
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_HASH)
                for fk, value in puts.items():
                    b.put(fk, value)
                self._put_count(b, name, T_HASH, count + added, version, expiry)
            return added

    def hsetnx(self, name: Name, field: Name, value: Value) -> bool:
        """Set a hash field only if it does not exist."""
        return self._hset(_b(name), [(_b(field), _b(value))], nx=True) == 1

    def hget(self, name: Name, field: Name) -> bytes | None:
        """The value of a hash field, or None."""
        name = _b(name)
        if self._meta(name, T_HASH) is None:
            return None
        return self.db.get(HASH + _lp(name) + _b(field))

    def hmget(self, name: Name, *fields: Name) -> list[bytes | None]:
        """The values of several hash fields."""
        name = _b(name)
        if self._meta(name, T_HASH) is None:
            return [None] * len(fields)
        pfx = HASH + _lp(name)
        return [self.db.get(pfx + _b(f)) for f in fields]

    def _hitems(self, name: bytes) -> list[tuple[bytes, bytes]]:
        if self._meta(name, T_HASH) is None:
            return []
        pfx = HASH + _lp(name)
        n = len(pfx)
        return [(k[n:], v) for k, v in self.db.items(prefix=pfx)]

    def hgetall(self, name: Name) -> dict[bytes, bytes]:
        """All fields and values of a hash."""
        return dict(self._hitems(_b(name)))

    def hkeys(self, name: Name) -> list[bytes]:
        """The fields of a hash."""
        return [f for f, _ in self._hitems(_b(name))]

    def hvals(self, name: Name) -> list[bytes]:
        """The values of a hash."""
        return [v for _, v in self._hitems(_b(name))]

    def hlen(self, name: Name) -> int:
        """Number of fields in a hash."""
        found = self._meta(_b(name), T_HASH)
        return self._count(found[0])[0] if found else 0

    def hexists(self, name: Name, field: Name) -> bool:
        """Whether a hash has a field."""
        return self.hget(name, field) is not None

    def hstrlen(self, name: Name, field: Name) -> int:
        """Length of a hash field's value (0 if missing)."""
        value = self.hget(name, field)
        return 0 if value is None else len(value)

    def hdel(self, name: Name, *fields: Name) -> int:
        """Delete hash fields; return how many existed."""
        name = _b(name)
        return self._remove_members(name, T_HASH, HASH + _lp(name), fields)

    def _remove_members(self, name: bytes, type_: int, pfx: bytes, members: tuple[Name | Value, ...]) -> int:
        """Delete member records of a hash or set and fix its count, atomically; return how many existed."""
        db = self.db
        with db.locked():
            found = self._meta(name, type_)
            if found is None:
                return 0
            count, version = self._count(found[0])
            removed = 0
            with db.batch() as b:
                for member in {_b(m) for m in members}:
                    if pfx + member in db:
                        b.delete(pfx + member)
                        removed += 1
                if removed:
                    self._put_count(b, name, type_, count - removed, version, found[1])
            return removed

    def hincrby(self, name: Name, field: Name, amount: int = 1) -> int:
        """Add to an integer hash field (missing = 0); return the result."""
        amount = parse_int(amount)
        name, field = _b(name), _b(field)
        with self.db.locked():
            old = self.hget(name, field)
            try:
                current = 0 if old is None else parse_int(old)
            except NotAnIntegerError:
                raise HashValueNotAnIntegerError("ERR hash value is not an integer") from None
            result = current + amount
            if not _I64_MIN <= result <= _I64_MAX:
                raise CommandError("ERR increment or decrement would overflow")
            self._hset(name, [(field, str(result).encode())], nx=False)
            return result

    def hincrbyfloat(self, name: Name, field: Name, amount: float | Value) -> float:
        """Add to a float hash field (missing = 0) with Redis's arithmetic; return the result."""
        return float(self.hincrbyfloat_text(name, field, amount))

    def hincrbyfloat_text(self, name: Name, field: Name, amount: float | Value) -> bytes:
        """:meth:`hincrbyfloat`, returning the new value as stored (HINCRBYFLOAT's reply)."""
        incr = _long_double(amount)
        if isinstance(incr, float):
            raise CommandError("ERR value is NaN or Infinity")
        name, field = _b(name), _b(field)
        with self.db.locked():
            old = self.hget(name, field)
            current: longdouble.LongDouble = Fraction(0)
            if old is not None:
                try:
                    current = longdouble.parse(old)
                except ValueError:
                    raise NotAFloatError("ERR hash value is not a float") from None
            text = _add_long_double(current, incr)
            self._hset(name, [(field, text)], nx=False)
            return text

    def _member_scan(
        self, prefix: bytes, cursor: int | bytes | str, match: Name | None, count: int
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        after = _decode_cursor(cursor, self._cursors)
        start = prefix + after + b"\x00" if after is not None else None
        pattern = _b(match) if match is not None else None
        count = max(1, int(count))
        n = len(prefix)
        out: list[tuple[bytes, bytes]] = []
        for key in self.db.keys(prefix=prefix, start=start):
            member = key[n:]
            if pattern is not None and not glob_match(pattern, member):
                continue
            value = self.db.get(key)
            if value is None:
                continue
            out.append((member, value))
            if len(out) >= count:
                return _encode_cursor(member, self._cursors), out
        return 0, out

    def hscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int = 10
    ) -> tuple[int, dict[bytes, bytes]]:
        """One step of a cursor scan over a hash: ``(next cursor, {field: value})``."""
        name = _b(name)
        if self._meta(name, T_HASH) is None:
            return 0, {}
        cur, items = self._member_scan(HASH + _lp(name), cursor, match, count)
        return cur, dict(items)

    # ----------------------------------------------------------------- lists

    def _list(self, name: bytes) -> tuple[int, int, int, float] | None:
        found = self._meta(name, T_LIST)
        if found is None:
            return None
        head, tail, version = _LST.unpack_from(found[0], 1)
        return head, tail, version, found[1]

    def _put_list(self, b: Batch, name: bytes, head: int, tail: int, version: int, expiry: float) -> None:
        if tail <= head:
            b.delete(META + name)
        else:
            b.put(META + name, b"l" + _LST.pack(head, tail, version + 1), expires_at=expiry)

    def _push(self, name: Name, values: tuple[Value, ...], left: bool, only_existing: bool = False) -> int:
        name = _b(name)
        if not values:
            raise CommandError("ERR wrong number of arguments for 'push' command")
        db = self.db
        pfx = LIST + _lp(name)
        with db.locked():
            found = self._list(name)
            if found is None:
                if only_existing:
                    return 0
                head = tail = version = 0
                expiry = 0.0
            else:
                head, tail, version, expiry = found
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_LIST)
                for v in values:
                    if left:
                        head -= 1
                        b.put(pfx + _idx(head), _b(v))
                    else:
                        b.put(pfx + _idx(tail), _b(v))
                        tail += 1
                self._put_list(b, name, head, tail, version, expiry)
            return tail - head

    def lpush(self, name: Name, *values: Value) -> int:
        """Insert values at the head of a list (each in turn); return the new length."""
        return self._push(name, values, left=True)

    def rpush(self, name: Name, *values: Value) -> int:
        """Append values to a list; return the new length."""
        return self._push(name, values, left=False)

    def lpushx(self, name: Name, *values: Value) -> int:
        """LPUSH only if the list exists."""
        return self._push(name, values, left=True, only_existing=True)

    def rpushx(self, name: Name, *values: Value) -> int:
        """RPUSH only if the list exists."""
        return self._push(name, values, left=False, only_existing=True)

    def _pop(self, name: Name, count: int | None, left: bool) -> Any:
        name = _b(name)
        if count is not None and count < 0:
            raise CommandError("ERR value is out of range, must be positive")
        db = self.db
        pfx = LIST + _lp(name)
        with db.locked():
            found = self._list(name)
            if found is None:
                return None
            head, tail, version, expiry = found
            n = min(1 if count is None else count, tail - head)
            out = []
            with db.batch() as b:
                for _ in range(n):
                    if left:
                        key = pfx + _idx(head)
                        head += 1
                    else:
                        tail -= 1
                        key = pfx + _idx(tail)
                    out.append(db.get(key, b""))
                    b.delete(key)
                if n:
                    self._put_list(b, name, head, tail, version, expiry)
            if count is None:
                return out[0] if out else None
            return out

    def lpop(self, name: Name, count: int | None = None) -> Any:
        """Remove and return the first element (or a list of up to ``count``); None if missing."""
        return self._pop(name, count, left=True)

    def rpop(self, name: Name, count: int | None = None) -> Any:
        """Remove and return the last element (or a list of up to ``count``); None if missing."""
        return self._pop(name, count, left=False)

    def pop_first(self, names: Iterable[Name], left: bool = True) -> tuple[bytes, bytes] | None:
        """Pop an element of the first non-empty list of ``names`` (BLPOP/BRPOP without the wait).

        Returns ``(name, element)``, or None when every list is empty; a name
        holding another type raises WRONGTYPE when it is reached.
        """
        with self.db.locked():
            for name in names:
                key = _b(name)
                value = self._pop(key, None, left)
                if value is not None:
                    return key, value
        return None

    def blpop(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes] | None:
        """Pop the first element of the first non-empty list of ``names``, waiting for one if all are empty.

        Waits up to ``timeout`` seconds (0: for ever) for a push by any
        process; returns ``(name, element)``, or None when the time is up.
        """
        return self._blocking_pop(names, timeout, left=True)

    def brpop(self, names: Name | Iterable[Name], timeout: float = 0) -> tuple[bytes, bytes] | None:
        """Like :meth:`blpop`, from the tail of the list."""
        return self._blocking_pop(names, timeout, left=False)

    def _blocking_pop(
        self, names: Name | Iterable[Name], timeout: float, left: bool
    ) -> tuple[bytes, bytes] | None:
        if isinstance(names, (bytes, str, bytearray, memoryview, int, float)):
            names = [names]
        keys = [_b(n) for n in names]
        if not keys:
            raise CommandError("ERR wrong number of arguments for 'blpop' command")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or math.isnan(timeout):
            raise TypeError(f"timeout must be a number of seconds, not {timeout!r}")
        if timeout < 0:
            raise CommandError("ERR timeout is negative")
        deadline = None if timeout == 0 or math.isinf(timeout) else _time() + timeout
        db = self.db
        while True:
            token = db.change_token()  # taken before looking, so no push between the two is missed
            found = self.pop_first(keys, left)
            if found is not None:
                return found
            if deadline is None:
                db.wait_for_change(token)
            else:
                remaining = deadline - _time()
                if remaining <= 0 or not db.wait_for_change(token, remaining):
                    return None

    def llen(self, name: Name) -> int:
        """Length of a list."""
        found = self._list(_b(name))
        return 0 if found is None else found[1] - found[0]

    @staticmethod
    def _range(start: int, stop: int, n: int) -> tuple[int, int]:
        """Normalise inclusive Redis indexes to a Python half-open range."""
        if start < 0:
            start = max(n + start, 0)
        if stop < 0:
            stop = n + stop
        stop = min(stop, n - 1)
        return start, max(stop + 1, start)

    def lrange(self, name: Name, start: int, stop: int) -> list[bytes]:
        """Elements ``start``..``stop`` (inclusive, negative from the end)."""
        name = _b(name)
        found = self._list(name)
        if found is None:
            return []
        head, tail = found[0], found[1]
        lo, hi = self._range(start, stop, tail - head)
        pfx = LIST + _lp(name)
        get = self.db.get
        return [get(pfx + _idx(head + i), b"") for i in range(lo, hi)]

    def lindex(self, name: Name, index: int) -> bytes | None:
        """The element at ``index`` (negative from the end), or None."""
        name = _b(name)
        found = self._list(name)
        if found is None:
            return None
        head, tail = found[0], found[1]
        if index < 0:
            index += tail - head
        if not 0 <= index < tail - head:
            return None
        return self.db.get(LIST + _lp(name) + _idx(head + index))

    def lset(self, name: Name, index: int, value: Value) -> bool:
        """Replace the element at ``index``."""
        name = _b(name)
        db = self.db
        with db.locked():
            found = self._list(name)
            if found is None:
                raise CommandError("ERR no such key")
            head, tail, version, expiry = found
            if index < 0:
                index += tail - head
            if not 0 <= index < tail - head:
                raise CommandError("ERR index out of range")
            with db.batch() as b:
                b.put(LIST + _lp(name) + _idx(head + index), _b(value))
                self._put_list(b, name, head, tail, version, expiry)
        return True

    def _rewrite_list(self, name: bytes, found: tuple[int, int, int, float], elements: list[bytes]) -> None:
        head, tail, version, expiry = found
        pfx = LIST + _lp(name)
        with self.db.batch() as b:
            for i in range(head, tail):
                b.delete(pfx + _idx(i))
            for i, v in enumerate(elements):
                b.put(pfx + _idx(head + i), v)
            self._put_list(b, name, head, head + len(elements), version, expiry)

    def lrem(self, name: Name, count: int, value: Value) -> int:
        """Remove up to ``count`` elements equal to ``value`` (from the tail if negative, all if 0)."""
        name, value = _b(name), _b(value)
        with self.db.locked():
            found = self._list(name)
            if found is None:
                return 0
            items = self.lrange(name, 0, -1)
            order = range(len(items)) if count >= 0 else range(len(items) - 1, -1, -1)
            limit = abs(count) or len(items)
            drop = set()
            for i in order:
                if items[i] == value:
                    drop.add(i)
                    if len(drop) >= limit:
                        break
            if drop:
                self._rewrite_list(name, found, [v for i, v in enumerate(items) if i not in drop])
            return len(drop)

    def ltrim(self, name: Name, start: int, stop: int) -> bool:
        """Keep only elements ``start``..``stop`` (inclusive)."""
        name = _b(name)
        db = self.db
        with db.locked():
            found = self._list(name)
            if found is None:
                return True
            head, tail, version, expiry = found
            lo, hi = self._range(start, stop, tail - head)
            pfx = LIST + _lp(name)
            with db.batch() as b:
                for i in list(range(head, head + lo)) + list(range(head + hi, tail)):
                    b.delete(pfx + _idx(i))
                self._put_list(b, name, head + lo, head + hi, version, expiry)
        return True

    def linsert(self, name: Name, where: str, pivot: Value, value: Value) -> int:
        """Insert ``value`` BEFORE or AFTER the first ``pivot``; new length, -1 if no pivot, 0 if no list."""
        name, pivot = _b(name), _b(pivot)
        where_l = where.lower() if isinstance(where, str) else _b(where).decode().lower()
        if where_l not in ("before", "after"):
            raise CommandError("ERR syntax error")
        with self.db.locked():
            found = self._list(name)
            if found is None:
                return 0
            items = self.lrange(name, 0, -1)
            try:
                i = items.index(pivot)
            except ValueError:
                return -1
            items.insert(i if where_l == "before" else i + 1, _b(value))
            self._rewrite_list(name, found, items)
            return len(items)

    def rpoplpush(self, src: Name, dst: Name) -> bytes | None:
        """Move the last element of ``src`` to the head of ``dst``."""
        return self.lmove(src, dst, "RIGHT", "LEFT")

    def lmove(self, src: Name, dst: Name, wherefrom: str, whereto: str) -> bytes | None:
        """Move an element between lists (atomically)."""
        with self.db.locked():
            if self._list(_b(src)) is None:
                return None  # a missing source: nothing moves, whatever the destination holds
            self._list(_b(dst))  # WRONGTYPE before anything is popped
            value = self._pop(src, None, left=wherefrom.upper() == "LEFT")
            self._push(dst, (value,), left=whereto.upper() == "LEFT")
            return value

    # ------------------------------------------------------------------ sets

    def sadd(self, name: Name, *members: Value) -> int:
        """Add members to a set; return how many were new."""
        name = _b(name)
        if not members:
            raise CommandError("ERR wrong number of arguments for 'sadd' command")
        db = self.db
        pfx = SET + _lp(name)
        with db.locked():
            found = self._meta(name, T_SET)
            count, version = self._count(found[0]) if found else (0, 0)
            added = 0
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_SET)
                for m in {_b(x) for x in members}:
                    if found is None or pfx + m not in db:
                        b.put(pfx + m, b"")
                        added += 1
                if added:
                    self._put_count(b, name, T_SET, count + added, version, found[1] if found else 0.0)
            return added

    def srem(self, name: Name, *members: Value) -> int:
        """Remove members from a set; return how many were there."""
        name = _b(name)
        return self._remove_members(name, T_SET, SET + _lp(name), members)

    def smembers(self, name: Name) -> set[bytes]:
        """All members of a set."""
        name = _b(name)
        if self._meta(name, T_SET) is None:
            return set()
        pfx = SET + _lp(name)
        n = len(pfx)
        return {k[n:] for k in self.db.keys(prefix=pfx)}

    def sismember(self, name: Name, member: Value) -> bool:
        """Whether ``member`` is in the set."""
        name = _b(name)
        if self._meta(name, T_SET) is None:
            return False
        return SET + _lp(name) + _b(member) in self.db

    def smismember(self, name: Name, *members: Value) -> list[bool]:
        """Membership of several values."""
        return [self.sismember(name, m) for m in members]

    def scard(self, name: Name) -> int:
        """Number of members of a set."""
        found = self._meta(_b(name), T_SET)
        return self._count(found[0])[0] if found else 0

    def sinter(self, *names: Name) -> set[bytes]:
        """Intersection of sets."""
        sets = [self.smembers(n) for n in names]
        return set.intersection(*sets) if sets else set()

    def sunion(self, *names: Name) -> set[bytes]:
        """Union of sets."""
        return set().union(*(self.smembers(n) for n in names))

    def sdiff(self, *names: Name) -> set[bytes]:
        """Members of the first set that are in none of the others."""
        if not names:
            return set()
        out = self.smembers(names[0])
        for n in names[1:]:
            out -= self.smembers(n)
        return out

    def spop(self, name: Name) -> bytes | None:
        """Remove and return a random member."""
        with self.db.locked():
            members = list(self.smembers(name))
            if not members:
                return None
            m = random.choice(members)
            self.srem(name, m)
            return m

    def srandmember(self, name: Name) -> bytes | None:
        """A random member, or None."""
        members = list(self.smembers(name))
        return random.choice(members) if members else None

    def sscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int = 10
    ) -> tuple[int, list[bytes]]:
        """One step of a cursor scan over a set: ``(next cursor, members)``."""
        name = _b(name)
        if self._meta(name, T_SET) is None:
            return 0, []
        cur, items = self._member_scan(SET + _lp(name), cursor, match, count)
        return cur, [m for m, _ in items]

    # ----------------------------------------------------------- sorted sets

    def zadd(
        self,
        name: Name,
        mapping: Mapping[Value, float | Value] | Iterable[tuple[Value, float | Value]],
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
        ch: bool = False,
        incr: bool = False,
    ) -> Any:
        """Add members with scores; return how many were added (``ch``: added or changed).

        ``mapping`` is ``{member: score}`` or ``(member, score)`` pairs, applied in
        order (a member given twice is updated twice, as ZADD does). With ``incr``
        (one member) the score is added and the new score returned (None if a
        condition stopped it). ``nx``/``xx``/``gt``/``lt`` as in Redis.
        """
        name = _b(name)
        if nx and xx:
            raise CommandError("ERR XX and NX options at the same time are not compatible")
        if (gt and lt) or (nx and (gt or lt)):
            raise CommandError("ERR GT, LT, and/or NX options at the same time are not compatible")
        pairs = list(mapping.items() if isinstance(mapping, Mapping) else mapping)
        if not pairs:
            raise CommandError("ERR wrong number of arguments for 'zadd' command")
        if incr and len(pairs) != 1:
            raise CommandError("ERR INCR option supports a single increment-element pair")
        items = [(_b(m), parse_float(s)) for m, s in pairs]
        db = self.db
        mpfx, ipfx = ZMEM + _lp(name), ZIDX + _lp(name)
        with db.locked():
            found = self._meta(name, T_ZSET)
            count, version = self._count(found[0]) if found else (0, 0)
            added = changed = 0
            result: float | None = None
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_ZSET)
                pending: dict[bytes, float] = {}
                for member, score in items:
                    if member in pending:
                        old: float | None = pending[member]
                    else:
                        raw = db.get(mpfx + member) if found is not None else None
                        old = decode_score(raw) if raw is not None else None
                    if incr:
                        score = (old or 0.0) + score
                        if math.isnan(score):
                            raise CommandError("ERR resulting score is not a number (NaN)")
                    if old is None:
                        if xx:
                            continue
                    else:
                        if nx or (gt and score <= old) or (lt and score >= old):
                            continue
                    result = score
                    if old is not None and old == score:
                        continue
                    if old is None:
                        added += 1
                    else:
                        changed += 1
                        b.delete(ipfx + encode_score(old) + member)
                    enc = encode_score(score)
                    b.put(mpfx + member, enc)
                    b.put(ipfx + enc + member, b"")
                    pending[member] = score
                if len(b):
                    self._put_count(b, name, T_ZSET, count + added, version, found[1] if found else 0.0)
            if incr:
                return result
            return added + changed if ch else added

    def zincrby(self, name: Name, amount: float, member: Value) -> float:
        """Add to a member's score (missing = 0); return the new score."""
        return self.zadd(name, {member: amount}, incr=True)

    def zrem(self, name: Name, *members: Value) -> int:
        """Remove members; return how many were there."""
        name = _b(name)
        db = self.db
        mpfx, ipfx = ZMEM + _lp(name), ZIDX + _lp(name)
        with db.locked():
            found = self._meta(name, T_ZSET)
            if found is None:
                return 0
            count, version = self._count(found[0])
            removed = 0
            with db.batch() as b:
                for m in {_b(x) for x in members}:
                    raw = db.get(mpfx + m)
                    if raw is not None:
                        b.delete(mpfx + m)
                        b.delete(ipfx + raw + m)
                        removed += 1
                if removed:
                    self._put_count(b, name, T_ZSET, count - removed, version, found[1])
            return removed

    def zscore(self, name: Name, member: Value) -> float | None:
        """The score of a member, or None."""
        name = _b(name)
        if self._meta(name, T_ZSET) is None:
            return None
        raw = self.db.get(ZMEM + _lp(name) + _b(member))
        return None if raw is None else decode_score(raw)

    def zmscore(self, name: Name, *members: Value) -> list[float | None]:
        """The scores of several members."""
        return [self.zscore(name, m) for m in members]

    def zcard(self, name: Name) -> int:
        """Number of members of a sorted set."""
        found = self._meta(_b(name), T_ZSET)
        return self._count(found[0])[0] if found else 0

    def _zscan_order(self, name: bytes, reverse: bool = False) -> Iterator[tuple[bytes, float]]:
        """Yield ``(member, score)`` in score order."""
        ipfx = ZIDX + _lp(name)
        n = len(ipfx)
        for key in self.db.keys(prefix=ipfx, reverse=reverse):
            yield key[n + 8 :], decode_score(key[n : n + 8])

    def _zscore_range(
        self, name: bytes, lo: tuple[float, bool], hi: tuple[float, bool], reverse: bool = False
    ) -> Iterator[tuple[bytes, float]]:
        """Yield ``(member, score)`` with scores inside the bounds, in (reverse) score order."""
        (mn, mn_ex), (mx, mx_ex) = lo, hi
        ipfx = ZIDX + _lp(name)
        n = len(ipfx)
        if not reverse:
            start = ipfx + encode_score(mn)
        else:
            (bits,) = _U64.unpack(encode_score(mx))
            start = ipfx + _U64.pack(bits + 1) if bits < 0xFFFFFFFFFFFFFFFF else None
        for key in self.db.keys(prefix=ipfx, start=start, reverse=reverse):
            score = decode_score(key[n : n + 8])
            if score < mn or (mn_ex and score == mn):
                if reverse:
                    return
                continue
            if score > mx or (mx_ex and score == mx):
                if reverse:
                    continue
                return
            yield key[n + 8 :], score

    def zcount(self, name: Name, min: Value, max: Value) -> int:
        """Number of members with a score between ``min`` and ``max`` (``(x`` = exclusive)."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        if self._meta(name, T_ZSET) is None:
            return 0
        return sum(1 for _ in self._zscore_range(name, lo, hi))

    def zrange(
        self, name: Name, start: int, end: int, desc: bool = False, withscores: bool = False
    ) -> list[Any]:
        """Members by rank ``start``..``end`` (inclusive, negative from the end); ``desc`` reverses.

        With ``withscores`` the items are ``(member, score)`` pairs.
        """
        name = _b(name)
        found = self._meta(name, T_ZSET)
        if found is None:
            return []
        lo, hi = self._range(start, end, self._count(found[0])[0])
        out: list[Any] = []
        for i, (member, score) in enumerate(self._zscan_order(name, reverse=desc)):
            if i >= hi:
                break
            if i >= lo:
                out.append((member, score) if withscores else member)
        return out

    def zrevrange(self, name: Name, start: int, end: int, withscores: bool = False) -> list[Any]:
        """Members by rank from the highest score."""
        return self.zrange(name, start, end, desc=True, withscores=withscores)

    def zrangebyscore(
        self,
        name: Name,
        min: Value,
        max: Value,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        desc: bool = False,
    ) -> list[Any]:
        """Members with scores between ``min`` and ``max`` in score order; ``start``/``num`` is LIMIT."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        if self._meta(name, T_ZSET) is None:
            return []
        offset = start or 0
        out: list[Any] = []
        if num is not None and num < 0:
            num = None
        if offset < 0:
            return []
        for i, (member, score) in enumerate(self._zscore_range(name, lo, hi, reverse=desc)):
            if i < offset:
                continue
            if num is not None and len(out) >= num:
                break
            out.append((member, score) if withscores else member)
        return out

    def zrevrangebyscore(
        self,
        name: Name,
        max: Value,
        min: Value,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
    ) -> list[Any]:
        """Members with scores between ``max`` and ``min``, highest first."""
        return self.zrangebyscore(name, min, max, start, num, withscores, desc=True)

    def zrank(self, name: Name, member: Value, desc: bool = False) -> int | None:
        """The rank of a member (0 = lowest score; ``desc``: 0 = highest), or None."""
        name, member = _b(name), _b(member)
        if self._meta(name, T_ZSET) is None:
            return None
        raw = self.db.get(ZMEM + _lp(name) + member)
        if raw is None:
            return None
        target = ZIDX + _lp(name) + raw + member
        for rank, key in enumerate(self.db.keys(prefix=ZIDX + _lp(name), reverse=desc)):
            if key == target:
                return rank
        return None

    def zrevrank(self, name: Name, member: Value) -> int | None:
        """The rank of a member counted from the highest score."""
        return self.zrank(name, member, desc=True)

    def zremrangebyscore(self, name: Name, min: Value, max: Value) -> int:
        """Remove members with scores between ``min`` and ``max``; return how many."""
        name = _b(name)
        lo, hi = _score_bound(min), _score_bound(max)
        with self.db.locked():
            if self._meta(name, T_ZSET) is None:
                return 0
            members = [m for m, _ in self._zscore_range(name, lo, hi)]
            return self.zrem(name, *members) if members else 0

    def zremrangebyrank(self, name: Name, start: int, end: int) -> int:
        """Remove members by rank; return how many."""
        with self.db.locked():
            members = self.zrange(name, start, end)
            return self.zrem(name, *members) if members else 0

    def zscan(
        self, name: Name, cursor: int | bytes | str = 0, match: Name | None = None, count: int = 10
    ) -> tuple[int, list[tuple[bytes, float]]]:
        """One step of a cursor scan over a sorted set: ``(next cursor, [(member, score)])``."""
        name = _b(name)
        if self._meta(name, T_ZSET) is None:
            return 0, []
        cur, items = self._member_scan(ZMEM + _lp(name), cursor, match, count)
        return cur, [(m, decode_score(s)) for m, s in items]

    # --------------------------------------------------------------- streams

    def _stream(self, name: bytes) -> tuple[int, int, tuple[int, int], float] | None:
        """``(count, version, last ID, expiry)`` of a stream, None if missing; WRONGTYPE for another type."""
        found = self._meta(name, T_STREAM)
        if found is None:
            return None
        count, version, ms, seq = _XMETA.unpack_from(found[0], 1)
        return count, version, (ms, seq), found[1]

    def xadd(
        self,
        name: Name,
        fields: Mapping[Name, Value] | Iterable[tuple[Name, Value]],
        id: Name = b"*",
        *,
        maxlen: int | None = None,
        minid: Name | None = None,
        approximate: bool = False,
        limit: int | None = None,
        nomkstream: bool = False,
    ) -> bytes | None:
        """Append an entry to a stream; return its ID (``b"ms-seq"``; None: ``nomkstream`` and no stream).

        ``id`` is ``*`` (the time now, made unique), ``ms-*`` or an explicit ID
        above the stream's last one. ``maxlen``/``minid`` then trim the oldest
        entries (exactly, also with ``approximate``, which Redis may honour
        less strictly; ``limit`` caps how many go).
        """
        name = _b(name)
        pairs = [(_b(f), _b(v)) for f, v in (fields.items() if isinstance(fields, Mapping) else fields)]
        if not pairs:
            raise CommandError("ERR wrong number of arguments for 'xadd' command")
        trim = _trim_spec(maxlen, minid, approximate, limit)
        raw_id = _b(id)
        check_add_id(raw_id)  # as Redis: a bad ID is reported before the key's type
        db = self.db
        with db.locked():
            found = self._stream(name)
            if found is None:
                if nomkstream:
                    return None
                count, version, last, expiry = 0, 0, (0, 0), 0.0
            else:
                count, version, last, expiry = found
            new = _next_stream_id(raw_id, last)
            pfx = STREAM + _lp(name)
            with db.batch() as b:
                if found is None:
                    self._purge(b, name, T_STREAM)
                b.put(pfx + _XID.pack(*new), _encode_pairs(pairs))
                count += 1
                count -= self._trim_stream(b, pfx, count, trim, new)
                self._put_stream(b, name, count, version, new, expiry)
            return b"%d-%d" % new

    def _put_stream(
        self, b: Batch, name: bytes, count: int, version: int, last: tuple[int, int], expiry: float
    ) -> None:
        """Write a stream's metadata (an empty stream stays, as in Redis)."""
        b.put(META + name, b"x" + _XMETA.pack(count, version + 1, *last), expires_at=expiry)

    def _trim_stream(
        self,
        b: Batch,
        pfx: bytes,
        count: int,
        trim: tuple[str, Any, int | None] | None,
        pending: tuple[int, int] | None = None,
    ) -> int:
        """Delete the oldest entries that ``trim`` says must go; return how many (``pending``: just added)."""
        if trim is None:
            return 0
        kind, threshold, limit = trim
        if kind == "maxlen":
            excess = count - threshold
            if excess <= 0:
                return 0
            if limit is not None:
                excess = min(excess, limit)
            goners = list(itertools.islice(self.db.keys(prefix=pfx), excess))
            if pending is not None and len(goners) < excess:  # the entry added in this batch
                goners.append(pfx + _XID.pack(*pending))
        else:
            bound = pfx + _XID.pack(*threshold)
            goners = []
            for key in self.db.keys(prefix=pfx):
                if key >= bound or (limit is not None and len(goners) >= limit):
                    break
                goners.append(key)
            room = limit is None or len(goners) < limit
            if pending is not None and pending < threshold and room:
                goners.append(pfx + _XID.pack(*pending))
        for key in goners:
            b.delete(key)
        return len(goners)

    def xlen(self, name: Name) -> int:
        """The number of entries in a stream (0 if it is missing)."""
        found = self._stream(_b(name))
        return 0 if found is None else found[0]

    def xrange(
        self, name: Name, min: Name = b"-", max: Name = b"+", count: int | None = None
    ) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
        """Entries with IDs between ``min`` and ``max`` (``-``/``+``, ``(`` for exclusive), oldest first.

        Each entry is ``(id, [(field, value), ...])`` with its fields in the order they were added.
        """
        return self._xrange(_b(name), min, max, count, reverse=False)

    def xrevrange(
        self, name: Name, max: Name = b"+", min: Name = b"-", count: int | None = None
    ) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
        """Like :meth:`xrange`, newest first (``max`` comes first, as in XREVRANGE)."""
        return self._xrange(_b(name), min, max, count, reverse=True)

    @staticmethod
    def check_stream_range(min: Name, max: Name) -> None:
        """Raise Redis's error if ``min`` or ``max`` is not a valid XRANGE bound."""
        _range_id(_b(min), low=True)
        _range_id(_b(max), low=False)

    def _xrange(
        self, name: bytes, min: Name, max: Name, count: int | None, reverse: bool
    ) -> list[tuple[bytes, list[tuple[bytes, bytes]]]]:
        lo = _range_id(_b(min), low=True)
        hi = _range_id(_b(max), low=False)
        if self._stream(name) is None or lo > hi or (count is not None and count <= 0):
            return []
        pfx = STREAM + _lp(name)
        db = self.db
        out: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
        keys = db.keys(prefix=pfx, start=pfx + _XID.pack(*(hi if reverse else lo)), reverse=reverse)
        for key in keys:
            xid = _XID.unpack_from(key, len(pfx))
            if (xid < lo) if reverse else (xid > hi):
                break
            data = db.get(key)
            if data is None:
                continue
            out.append((b"%d-%d" % xid, _decode_pairs(data)))
            if count is not None and len(out) >= count:
                break
        return out

    def xread(
        self, streams: Mapping[Name, Name], count: int | None = None
    ) -> list[tuple[bytes, list[tuple[bytes, list[tuple[bytes, bytes]]]]]]:
        """Entries added after the given IDs (``$``: after the stream's last entry), per stream.

        Returns ``[(name, entries)]`` for the streams that have such entries, in the
        order given, with at most ``count`` entries each (None or 0: all).
        """
        return self.xread_after(self.stream_positions(streams), count)

    def stream_positions(
        self, streams: Mapping[Name, Name] | Iterable[tuple[Name, Name]]
    ) -> list[tuple[bytes, tuple[int, int]]]:
        """The ID each stream is read after: the ID given, or for ``$`` its last ID now.

        As Redis, streams are taken in order, each key's type checked before its ID is read.
        """
        positions: list[tuple[bytes, tuple[int, int]]] = []
        for name, raw in streams.items() if isinstance(streams, Mapping) else streams:
            key, raw_id = _b(name), _b(raw)
            found = self._stream(key)
            if raw_id == b"$":
                positions.append((key, (0, 0) if found is None else found[2]))
            else:
                positions.append((key, _parse_stream_id(raw_id, 0)))
        return positions

    def xread_after(
        self, positions: list[tuple[bytes, tuple[int, int]]], count: int | None = None
    ) -> list[tuple[bytes, list[tuple[bytes, list[tuple[bytes, bytes]]]]]]:
        """XREAD from resolved positions (see :meth:`stream_positions`)."""
        out = []
        for name, (ms, seq) in positions:
            if (ms, seq) == (_U64_MAX, _U64_MAX):  # nothing comes after it ("(" of it is no bound)
                self._stream(name)  # WRONGTYPE all the same
                continue
            entries = self._xrange(name, b"(%d-%d" % (ms, seq), b"+", count or None, reverse=False)
            if entries:
                out.append((name, entries))
        return out

    def xdel(self, name: Name, *ids: Name) -> int:
        """Delete entries by ID; return how many existed (the stream stays, even empty)."""
        name = _b(name)
        if not ids:
            raise CommandError("ERR wrong number of arguments for 'xdel' command")
        db = self.db
        with db.locked():
            found = self._stream(name)
            if found is None:
                return 0  # as Redis: the key is looked up before the IDs are read
            parsed = [_parse_stream_id(_b(i), 0) for i in ids]
            count, version, last, expiry = found
            pfx = STREAM + _lp(name)
            removed = 0
            with db.batch() as b:
                for xid in dict.fromkeys(parsed):
                    key = pfx + _XID.pack(*xid)
                    if key in db:
                        b.delete(key)
                        removed += 1
                if removed:
                    self._put_stream(b, name, count - removed, version, last, expiry)
            return removed

    def xtrim(
        self,
        name: Name,
        maxlen: int | None = None,
        minid: Name | None = None,
        approximate: bool = False,
        limit: int | None = None,
    ) -> int:
        """Delete the oldest entries beyond ``maxlen``, or with IDs below ``minid``; return how many."""
        name = _b(name)
        trim = _trim_spec(maxlen, minid, approximate, limit)
        if trim is None:
            raise CommandError("ERR syntax error")
        db = self.db
        with db.locked():
            found = self._stream(name)
            if found is None:
                return 0
            count, version, last, expiry = found
            with db.batch() as b:
                removed = self._trim_stream(b, STREAM + _lp(name), count, trim)
                if removed:
                    self._put_stream(b, name, count - removed, version, last, expiry)
            return removed


def _encode_pairs(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_LEN.pack(len(f)) + f + _LEN.pack(len(v)) + v for f, v in pairs)


def _decode_pairs(data: bytes) -> list[tuple[bytes, bytes]]:
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        (fl,) = _LEN.unpack_from(data, pos)
        f = data[pos + 4 : pos + 4 + fl]
        pos += 4 + fl
        (vl,) = _LEN.unpack_from(data, pos)
        out.append((f, data[pos + 4 : pos + 4 + vl]))
        pos += 4 + vl
    return out


def _parse_stream_id(raw: bytes, missing_seq: int) -> tuple[int, int]:
    """``ms-seq`` (or ``ms``, completed with ``missing_seq``) as a pair of u64; Redis's error otherwise."""
    ms_text, sep, seq_text = raw.partition(b"-")
    try:
        if not ms_text.isdigit() or (sep and not seq_text.isdigit()):
            raise ValueError
        ms = int(ms_text)
        seq = int(seq_text) if sep else missing_seq
    except ValueError:
        raise CommandError(BAD_STREAM_ID) from None
    if ms > _U64_MAX or seq > _U64_MAX:
        raise CommandError(BAD_STREAM_ID)
    return ms, seq


def _range_id(raw: bytes, low: bool) -> tuple[int, int]:
    """A bound of XRANGE: ``-``, ``+``, an ID, ``ms`` (the whole millisecond), ``(ID`` exclusive."""
    if raw == b"-":
        return (0, 0)
    if raw == b"+":
        return (_U64_MAX, _U64_MAX)
    exclusive = raw.startswith(b"(")
    if exclusive:
        raw = raw[1:]
    ms, seq = _parse_stream_id(raw, 0 if low else _U64_MAX)
    if exclusive:
        if low:
            if seq == _U64_MAX:
                if ms == _U64_MAX:
                    raise CommandError("ERR invalid start ID for the interval")
                return (ms + 1, 0)
            return (ms, seq + 1)
        if seq == 0:
            if ms == 0:
                raise CommandError("ERR invalid end ID for the interval")
            return (ms - 1, _U64_MAX)
        return (ms, seq - 1)
    return (ms, seq)


def check_add_id(raw: bytes, syntax_only: bool = False) -> None:
    """Refuse an XADD ID that is not ``*``, ``ms-*`` or an ID (above 0-0), whatever the stream holds."""
    if raw == b"*":
        return
    if raw.endswith(b"-*"):
        _parse_stream_id(raw[:-2], 0)
    elif _parse_stream_id(raw, 0) == (0, 0) and not syntax_only:
        raise CommandError("ERR The ID specified in XADD must be greater than 0-0")


def _next_stream_id(raw: bytes, last: tuple[int, int]) -> tuple[int, int]:
    """The ID XADD gives a new entry: ``*``, ``ms-*`` or explicit, always above ``last``.

    ``raw`` has passed :func:`check_add_id`.
    """
    last_ms, last_seq = last
    if raw == b"*":
        now = int(time.time() * 1000)
        if now > last_ms:
            return now, 0
        if last_seq == _U64_MAX:
            if last_ms == _U64_MAX:
                raise CommandError(
                    "ERR The stream has exhausted the last possible ID, unable to add more items"
                )
            return last_ms + 1, 0
        return last_ms, last_seq + 1
    if raw.endswith(b"-*"):
        ms, _ = _parse_stream_id(raw[:-2], 0)
        if ms > last_ms:
            return ms, 0
        if ms == last_ms and last_seq < _U64_MAX:
            return ms, last_seq + 1
        raise CommandError(ID_TOO_SMALL)
    new = _parse_stream_id(raw, 0)  # above 0-0: check_add_id ran first
    if new <= last:
        raise CommandError(ID_TOO_SMALL)
    return new


def _trim_spec(
    maxlen: int | None, minid: Name | None, approximate: bool, limit: int | None
) -> tuple[str, Any, int | None] | None:
    """Check XADD/XTRIM trimming options: ``("maxlen", n, limit)``, ``("minid", id, limit)`` or None."""
    if maxlen is not None and minid is not None:
        raise CommandError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
    if limit is not None and not approximate:
        raise CommandError("ERR syntax error, LIMIT cannot be used without the special ~ option")
    if limit is not None and limit < 0:
        raise CommandError("ERR The LIMIT argument must be >= 0.")
    if limit == 0:
        limit = None  # LIMIT 0: no cap, as in Redis
    if maxlen is not None:
        if maxlen < 0:
            raise CommandError("ERR The MAXLEN argument must be >= 0.")
        return ("maxlen", maxlen, limit)
    if minid is not None:
        return ("minid", _parse_stream_id(_b(minid), 0), limit)
    return None
