"""Commands on keys of any type (TYPE, DEL, EXPIRE, SCAN, RENAME...) and helpers the types share."""

from __future__ import annotations

import functools
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from kv_backend.db import DB, Batch
from kv_backend.errors import ConfigurationError, InvalidArgumentError, KeyTooLargeError, NotAnIntegerError
from kv_backend.record import FILE_HEADER_SIZE, HEADER_SIZE, MAX_KEY_SIZE, PUT, scan
from kv_backend.state import unpack_tail
from kv_backend.structures.errors import (
    CommandError,
    ForeignRecordError,
    KeyNameTooLongError,
    StructureError,
    WrongTypeError,
    wrong_arity,
)
from kv_backend.structures.layout import (
    _CNT,
    _U64,
    ALL_PREFIXES,
    GROUP,
    HASH,
    LIST,
    LIVE_META_BOUNDS,
    MEMBER_PREFIXES,
    META,
    META_SIZE,
    PENDING,
    SET,
    T_HASH,
    T_LIST,
    T_SET,
    T_STREAM,
    T_STRING,
    T_ZSET,
    TAG_OF,
    TYPE_NAMES,
    ZIDX,
    ZMEM,
    Name,
    Value,
    _b,
    _lp,
    _time,
    counts,
    has_layout_form,
    member_name,
)
from kv_backend.structures.parsing import (
    CursorTable,
    _decode_cursor,
    _encode_cursor,
    _literal_prefix,
    glob_match,
    keyword,
    parse_index,
    parse_int,
    parse_scan_count,
)

_COLLECTION_META = META_SIZE[T_HASH]  # the size of a hash's, set's or sorted set's metadata record

_S = TypeVar("_S", bound="Keyspace")
_P = TypeVar("_P")
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])


#: How long names may be, by type: one engine key of at most MAX_KEY_SIZE bytes holds a 2-byte
#: prefix, the name with its 4-byte length and a field, member, list index (8 bytes), score
#: (8 bytes, a sorted set's order index) or entry ID (16 bytes); see docs/redis.md.
_NAME_LIMITS = {
    T_STRING: f"a string's name may be up to {MAX_KEY_SIZE - 2} bytes",
    T_HASH: f"a hash's name and one field may be up to {MAX_KEY_SIZE - 6} bytes together",
    T_SET: f"a set's name and one member may be up to {MAX_KEY_SIZE - 6} bytes together",
    T_ZSET: f"a sorted set's (or geo key's) name and one member may be up to {MAX_KEY_SIZE - 14} "
    "bytes together",
    T_LIST: f"a list's name may be up to {MAX_KEY_SIZE - 14} bytes",
    T_STREAM: f"a stream's name may be up to {MAX_KEY_SIZE - 22} bytes, its name and a consumer "
    f"group's up to {MAX_KEY_SIZE - 26} together, and those with a consumer's name up to "
    f"{MAX_KEY_SIZE - 10}",
}


#: The keyword options of :class:`~kv_backend.DB`, which a Structures given a path passes on.
_DB_OPTIONS = frozenset({"sync", "max_file_size", "read_only", "auto_merge"})

#: How many times a read of several records on a read-only store runs before the last try stands
#: (see :meth:`Keyspace._read_consistent`).
_READ_TRIES = 20
#: How many times it runs on a writable store before it runs under the write lock.
_TRIES_BEFORE_LOCKING = 3


def _check_seconds(value: object, what: str, absolute: bool = False) -> float:
    """An expiry argument in seconds: a number, or as redis-py takes them a ``timedelta`` (a time
    to live) or, with ``absolute``, a ``datetime`` (a Unix time). Anything else (a str, None...)
    is refused before it is compared with 0, which raised Python's own TypeError ("'<=' not
    supported between 'str' and 'int'")."""
    return _check_time(value, what, absolute, "seconds", 1)


def _check_milliseconds(value: object, what: str, absolute: bool = False) -> float:
    """:func:`_check_seconds` for a time in milliseconds (PEXPIRE, SET's PX...)."""
    return _check_time(value, what, absolute, "milliseconds", 1000)


def _check_time(value: object, what: str, absolute: bool, unit: str, per_second: int) -> float:
    """A time argument in ``unit`` (``per_second`` of them in a second); see :func:`_check_seconds`."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        if absolute and isinstance(value, datetime):
            return value.timestamp() * per_second  # (a naive one in local time, as redis-py reads it)
        if not absolute and isinstance(value, timedelta):
            return value.total_seconds() * per_second
        raise InvalidArgumentError(f"{what} must be a number of {unit}, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):  # (the engine's error named its own ttl)
        raise ConfigurationError(f"{what} must be a finite number of {unit}, not {value!r}")
    return value


def _check_expire_options(nx: bool, xx: bool, gt: bool, lt: bool) -> None:
    """Refuse EXPIRE's options that exclude each other, with Redis 7's errors."""
    if nx and (xx or gt or lt):
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        raise CommandError("ERR GT and LT options at the same time are not compatible")


def _name_list(names: Name | Iterable[Name]) -> list[bytes]:
    """The names given to a method on several keys: one name (bytes, str or a number) stands for
    itself, as blpop() takes it; a str was iterated, so lmpop("lst") popped from a key "l"."""
    if isinstance(names, (bytes, str, bytearray, memoryview, int, float)) or not isinstance(names, Iterable):
        return [_b(names)]  # (None, or another non-iterable: the InvalidArgumentError of any bad name)
    return [_b(n) for n in names]


_Items = TypeVar("_Items", bound=Sized)


def _given(items: _Items, command: str) -> _Items:
    """``items``, the names, fields or members a method was given: none is Redis's wrong argument
    count for ``command``, its answer to what redis-py sends for such a call."""
    if not items:
        raise wrong_arity(command)
    return items


def _check_group_fits(name: bytes, group: bytes) -> None:
    """Refuse a consumer group of stream ``name`` whose pending entries' engine keys (prefix, both
    names with their lengths, a 16-byte ID) would be too long: its own record fits in fewer bytes,
    so a group created, renamed, copied or restored that way made XREADGROUP, XPENDING and XINFO
    fail on the stream for as long as it existed."""
    if len(PENDING) + 8 + len(name) + len(group) + 16 > MAX_KEY_SIZE:
        raise KeyTooLargeError("a consumer group's pending entries would not fit in an engine key")


def scan_pages(step: Callable[[int], tuple[int, _P]]) -> Iterator[_P]:
    """Each page ``step(cursor)`` gives, from cursor 0 until the cursor comes back to 0 (what
    redis-py's ``scan_iter``, ``hscan_iter``, ``sscan_iter`` and ``zscan_iter`` walk)."""
    cursor = 0
    while True:
        cursor, page = step(cursor)
        yield page
        if cursor == 0:
            return


def _block_seconds(block: object) -> float:
    """XREAD's and XREADGROUP's ``block`` (milliseconds, 0: for ever) in seconds; a non-number is
    an InvalidArgumentError, as a blocking pop's timeout is."""
    if not isinstance(block, (int, float)) or isinstance(block, bool):
        raise InvalidArgumentError(f"block must be a number of milliseconds (0: for ever), not {block!r}")
    try:
        return block / 1000
    except OverflowError:  # an int beyond a float's range: as long as an infinite wait
        return math.inf if block > 0 else -math.inf


def mismatch(name: bytes, meta: bytes) -> StructureError:
    """The error of a command on ``name`` for one type whose metadata ``meta`` is not of it: WRONGTYPE,
    or ForeignRecordError where it has not the form of a record of this layout (another front end
    wrote it: see :func:`~kv_backend.structures.layout.has_layout_form`)."""
    return WrongTypeError() if has_layout_form(meta) else ForeignRecordError(name)


#: The message of the :class:`KeyNameTooLongError` a write to a key of each type raises (None:
#: of any type: every type's limit).
TOO_LONG: dict[int | None, str] = {
    tag: f"ERR key name too long: {limit}; use a shorter name" for tag, limit in _NAME_LIMITS.items()
}
TOO_LONG[None] = f"ERR key name too long: {'; '.join(_NAME_LIMITS.values())}; use a shorter name"


def _name_limit(tag: int | None) -> Callable[[_F], _F]:
    """Decorate a write to a key of type ``tag`` (None: of any type): the engine's
    ``KeyTooLargeError`` ("keys must be 1 to 65536 bytes long", counting the prefix and field
    it adds to the name) becomes a :class:`KeyNameTooLongError` that gives the limit of names.

    The hottest writes (``set``, ``incrby``, ``hset``, ``hset_pairs``, ``sadd``, ``lpush``,
    ``rpush``, ``zadd``) do the same in their own bodies instead, ``try: ... except
    KeyNameTooLongError: raise except KeyTooLargeError: raise KeyNameTooLongError(TOO_LONG[tag])``,
    which costs nothing until it raises, where this wrapper's extra call costs about 0.08 µs a
    call (1% to 3% of those writes in-process)."""
    message = TOO_LONG[tag]

    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def write(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except KeyNameTooLongError:
                raise
            except KeyTooLargeError:
                raise KeyNameTooLongError(message) from None

        return write  # type: ignore[return-value]

    return decorate


class Keyspace:
    """The base of :class:`~kv_backend.structures.Structures`: the DB, shared helpers, key commands.

    Pass an open ``DB`` (shared with other code) or a directory path (then this
    object opens and owns the DB; extra keyword arguments go to ``DB``). Method
    names and results follow Redis commands (``hset``, ``zrangebyscore``...);
    names, fields and values may be bytes, str or numbers, results are bytes.
    Safe to use from many processes at once on one directory.
    """

    def __init__(self, db: DB | str | os.PathLike[str], **db_options: Any) -> None:
        if isinstance(db, DB):
            if db_options:
                raise InvalidArgumentError("DB options can only be given together with a path")
            self.db = db
            self._owns_db = False
        else:
            unknown = sorted(set(db_options) - _DB_OPTIONS)
            if unknown:  # a misspelt option: say which ones exist rather than DB's TypeError
                raise ConfigurationError(
                    f"unknown Structures option {unknown[0]!r}: the options are the engine's "
                    f"{', '.join(sorted(_DB_OPTIONS))}"
                )
            self.db = DB(db, **db_options)
            self._owns_db = True
        #: SCAN cursors handed out for names too long to fit in one (see :class:`CursorTable`).
        self._cursors = CursorTable()
        #: The consumers of stream groups this object has made (XREADGROUP, XCLAIM...: a count that
        #: kvb serve's INFO rdb_changes_since_last_save reads, as redis-server counts them).
        self.consumers_made = 0

    def close(self) -> None:
        """Close the DB if this object opened it."""
        if self._owns_db:
            self.db.close()

    def transaction(self) -> AbstractContextManager[DB]:
        """A block of commands that takes effect as a whole or not at all (MULTI/EXEC's in-process twin).

        Use it as ``with s.transaction():``. The store's write lock is held for the
        block; commands in it see each other's writes, other processes see all of
        them when the block ends, and an exception or a crash leaves none of them.
        """
        return self.db.transaction()

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_consistent(self, read: Callable[[], _T]) -> _T:
        """Return ``read()``, a read of several records that must see them as one moment left them.

        It runs until no process wrote while it ran (a few tries), without the write lock,
        which another process may hold for long (a script running long on another server) and a
        store opened with ``read_only=True`` cannot take (LCS, DUMP, SORT raised ReadOnlyError
        there, though they write nothing); then under the lock, or, read-only, the last try stands.
        """
        db = self.db
        for _ in range(_READ_TRIES - 1 if db.read_only else _TRIES_BEFORE_LOCKING):
            token = db.change_token()
            try:
                out = read()
            except Exception:
                if db.change_token() == token:
                    raise
                continue  # (a key read half before and half after another process's change)
            if db.change_token() == token:
                return out
        if db.read_only:
            return read()
        with db.locked():
            return read()

    def _record(self, mk: bytes) -> tuple[bytes, float] | None:
        """Return ``(metadata, absolute expiry or 0)`` of a live key, or None, read from its metadata
        record ``mk`` (``META + name``); ForeignRecordError if it has not the form of one of this
        layout (:func:`~kv_backend.structures.layout.has_layout_form`)."""
        found = self.db._get_record(mk)
        if found is not None and not has_layout_form(found[0]):
            raise ForeignRecordError(mk[len(META) :])
        return found

    def _whole_record(self, name: bytes) -> tuple[bytes, float] | None:
        """:meth:`_record` of ``name``, for a command that reads or copies the whole key (RENAME,
        COPY, DUMP, SORT, MEMORY USAGE...): a collection's metadata this layout cannot have written
        (see :func:`~kv_backend.structures.layout.counts`) is a ForeignRecordError too."""
        found = self._record(META + name)
        if found is not None and found[0][0] != T_STRING and counts(found[0]) is None:
            raise ForeignRecordError(name)
        return found

    def _meta_value(self, name: bytes) -> bytes | None:
        """The metadata of ``name`` (``self._value(META + name)``), or None; ForeignRecordError if it
        has not the form of one of this layout (see :meth:`_record`)."""
        found = self._value(META + name)
        if found is not None and not has_layout_form(found):
            raise ForeignRecordError(name)
        return found

    def _value(self, key: bytes) -> bytes | None:
        """``db.get(key)``, and None for a key too long for the engine as for a missing one.

        A name, field or member that makes its engine key longer than the engine allows can never
        have been stored, so a read of it answers absence, as Redis does for any name it does not
        hold, instead of raising the engine's ``KeyTooLargeError`` (writes still raise it).
        """
        try:
            return self.db.get(key)
        except KeyTooLargeError:
            return None

    def _stored(self, key: bytes) -> bool:
        """``key in db``, and False for a key too long for the engine (see :meth:`_value`)."""
        try:
            return key in self.db
        except KeyTooLargeError:
            return False

    def _meta(self, name: bytes, tag: int, _size: dict[int, int] = META_SIZE) -> tuple[bytes, float] | None:
        """The metadata of ``name`` if it exists; WRONGTYPE if it holds another type, ForeignRecordError
        if it has not the form of a record of this layout (see :func:`mismatch`): that of a collection
        ``tag`` is of its size. A collection's count is checked where it is read (:meth:`_count`).
        (``_size``: :data:`~kv_backend.structures.layout.META_SIZE` as a local name, a few ns faster.)"""
        found = self.db._get_record(META + name)
        try:  # (the return inside: no jump past the handler on the hot path)
            if (
                found is not None
                and (found[0][0] != tag or len(found[0]) != _size[tag])
                and (found[0][0] != tag or not has_layout_form(found[0]))  # (a stream's older size passes)
            ):
                raise mismatch(name, found[0])
            return found
        except IndexError:  # an empty record
            raise ForeignRecordError(name) from None

    def _counted_meta(
        self, name: bytes, tag: int, _bounds: dict[int, tuple[bytes, bytes]] = LIVE_META_BOUNDS
    ) -> tuple[bytes, float] | None:
        """:meth:`_meta` of a hash, set or sorted set ``tag``, and ForeignRecordError for a record of
        its size whose counts no such key has (:meth:`_count`): for the commands that read members
        without the count (ZRANK, ZCOUNT, HSCAN...), which refuse such a record as those reading the
        count do. A record of the layout is told by one bytes comparison (see
        :data:`~kv_backend.structures.layout.HASH_META_ABOVE`), so it costs no more than :meth:`_meta`."""
        found = self.db._get_record(META + name)
        if found is None:
            return None
        meta = found[0]
        above, below = _bounds[tag]
        if above < meta < below and len(meta) == _COLLECTION_META and not meta[9] and not meta[10]:
            return found  # (its tag, 0 < count < _BOUND, version < _BOUND)
        found = self._meta(name, tag)  # WRONGTYPE, ForeignRecordError for another form, or None
        if found is not None:
            self._count(name, found[0])
        return found

    def _purge(self, b: Batch, name: bytes, tag: int) -> None:
        """Delete member records a previous, expired or deleted, key of this name left behind."""
        self._delete_prefixes(b, [prefix + _lp(name) for prefix in MEMBER_PREFIXES.get(tag, ())])

    def _delete_prefixes(self, b: Batch, prefixes: Iterable[bytes]) -> None:
        """Delete, in ``b``, every record whose key starts with one of ``prefixes``."""
        for prefix in prefixes:
            for key in list(self.db.keys(prefix=prefix)):
                b.delete(key)

    def _purge_all(self, b: Batch, name: bytes) -> None:
        for tag in MEMBER_PREFIXES:
            self._purge(b, name, tag)

    def _drop(self, b: Batch, name: bytes, meta: bytes) -> None:
        """Delete a live key: its metadata and all its members (a metadata record another front end
        wrote, empty or of no type, has none: DEL removes it)."""
        b.delete(META + name)
        self._purge(b, name, meta[0] if meta else 0)

    @staticmethod
    def _replacing(meta: bytes, old: bytes | None) -> bytes:
        """``meta``, a collection's metadata checked whole (:meth:`_whole_record`) or this layout's
        own, to write over a key whose metadata is ``old`` (None: missing), its write counter moved
        past ``old``'s.

        A collection copied or renamed over one of the same size would otherwise leave the
        metadata record as it was, and a watcher in another process, who sees only that
        record, would not see the key replaced. An ``old`` another front end wrote has no counter.
        """
        at = _VERSION_AT.get(meta[0])
        old_counts = counts(old) if old is not None else None
        if at is None or old_counts is None:
            return meta
        (version,) = _U64.unpack_from(meta, at)
        if version > old_counts[1]:
            return meta
        return meta[:at] + _U64.pack(old_counts[1] + 1) + meta[at + 8 :]

    @staticmethod
    def _version_over(old: bytes | None, tag: int) -> int:
        """The write counter a collection of type ``tag`` written over a key whose metadata is ``old``
        (None: missing) goes on from: ``old``'s if it is one of that type, else 0."""
        found = counts(old) if old is not None and old[:1] == TAG_OF[tag] else None
        return 0 if found is None else found[1]

    @staticmethod
    def _count(name: bytes, meta: bytes) -> tuple[int, int]:
        """``(count, version)`` of collection ``name`` from its metadata ``meta``; ForeignRecordError
        if this layout cannot have written it (see :func:`~kv_backend.structures.layout.counts`)."""
        found = counts(meta)
        if found is None:
            raise ForeignRecordError(name)
        return found

    def _check_members(self, name: bytes, meta: bytes, found: int | None = None) -> None:
        """Check that the hash, set or sorted set ``name`` (with metadata ``meta``; any other type passes)
        has as many records of members as its metadata counts: ``found`` of them (those a command read
        whole), else those stored, counted. A record another front end wrote under its prefix (a Store's
        ``"\\x00h" + len + name + field``) cannot be told from a member, but the count tells that one is
        there: :meth:`ForeignRecordError.miscounted`. Call it where the records and ``meta`` are read as
        one moment left them (:meth:`_read_consistent`, or under the write lock)."""
        prefixes = _COUNTED.get(meta[0])
        if prefixes is None:
            return
        count = self._count(name, meta)[0]
        for prefix in prefixes:
            prefix += _lp(name)
            stored = self.db.count(prefix=prefix) if found is None else found
            if stored != count:
                raise ForeignRecordError.miscounted(name, prefix, count, stored)
            found = None  # (a sorted set's order index is counted)

    def _put_count(self, b: Batch, name: bytes, tag: int, count: int, version: int, expiry: float) -> None:
        if count <= 0:
            b.delete(META + name)
        else:
            b.put(META + name, bytes([tag]) + _CNT.pack(count, version + 1), expires_at=expiry)

    def _wait_for(self, attempt: Callable[[bool], _T | None], timeout: float) -> _T | None:
        """Call ``attempt(first)`` until it returns something, waiting for any process's writes.

        ``timeout`` is in seconds (0: for ever); None comes back when it passes. The change
        token is taken before each try, so a write between a try and the wait is never missed.
        Inside this thread's ``db.transaction()`` or ``db.locked()`` block it does not wait, as
        blocking commands inside ``MULTI``/``EXEC`` do not in Redis: no other thread or process
        can write while the block holds the write lock, so the wait could only end by its timeout.
        """
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise InvalidArgumentError(f"timeout must be a number of seconds (0: for ever), not {timeout!r}")
        try:
            timeout = float(timeout)
        except OverflowError:  # an int beyond a float's range: as long as an infinite wait
            timeout = math.inf if timeout > 0 else -math.inf
        if math.isnan(timeout):
            raise InvalidArgumentError(f"timeout must be a number of seconds (0: for ever), not {timeout!r}")
        if timeout < 0:
            raise CommandError("ERR timeout is negative")
        # A duration, on the monotonic clock: a change of the wall clock (NTP, an operator) during
        # the wait neither ends it early nor stretches it (DB.wait_for_change measures it so too).
        started = time.monotonic()
        deadline = None if timeout == 0 or math.isinf(timeout) else started + timeout
        db = self.db
        first = True
        while True:
            token = db.change_token()
            found = attempt(first)
            if found is not None:
                return found
            if db._lock.held:
                return None
            first = False
            # since=: a write of another key, which ends a wait, does not bring back the engine's
            # checks every 0.2-2 ms; its pauses keep growing from the start of this wait.
            if deadline is None:
                db.wait_for_change(token, since=started)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not db.wait_for_change(token, remaining, since=started):
                    return None

    def _retry_pop(self, keys: list[bytes], pop: Callable[[list[bytes]], _T | None]) -> _T | None:
        """A waiting pop's retry: ``pop([key])`` for each of ``keys`` in turn, under the lock.

        As Redis serves a client blocked on lists (sorted sets) only from a key of that type, a
        key set to another type while it waits is passed over, not answered WRONGTYPE; the
        first try, ``pop(keys)``, still is.
        """
        with self.db.locked():
            for key in keys:
                try:
                    found = pop([key])
                except WrongTypeError:
                    continue
                if found is not None:
                    return found
        return None

    def type(self, name: Name) -> str:
        """The type of a key: ``string``, ``hash``, ``list``, ``set``, ``zset`` or ``none``."""
        found = self._meta_value(_b(name))
        return "none" if found is None else TYPE_NAMES[found[0]]

    def exists(self, *names: Name) -> int:
        """How many of ``names`` exist (a name given twice counts twice)."""
        stored = self._stored
        return sum(1 for n in _given(names, "exists") if stored(META + _b(n)))

    def delete(self, *names: Name) -> int:
        """Delete keys of any type; return how many existed."""
        return self._delete(names, "del")

    def unlink(self, *names: Name) -> int:
        """:meth:`delete` (UNLINK: kvb frees nothing in the background)."""
        return self._delete(names, "unlink")

    def _delete(self, names: tuple[Name, ...], command: str) -> int:
        _given(names, command)
        db = self.db
        removed = 0
        with db.locked(), db.batch() as b:
            seen = set()
            for n in names:
                name = _b(n)
                if name in seen:
                    continue
                seen.add(name)
                found = self._value(META + name)
                if found is not None:
                    removed += 1
                    self._drop(b, name, found)
        return removed

    def expire(
        self,
        name: Name,
        seconds: float | timedelta | None,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        """Set the time to live of a key in seconds (None: never; <= 0 deletes it); False if missing.

        ``nx``/``xx``/``gt``/``lt`` are Redis 7's options (and redis-py's): only if the key has no
        expiry / has one / the new one is later / earlier (no expiry counting as the latest);
        False when the option refuses.
        """
        if nx or xx or gt or lt:
            _check_expire_options(nx, xx, gt, lt)
            if seconds is None:
                raise InvalidArgumentError("nx, xx, gt and lt need an expire time, not None")
            seconds = _check_seconds(seconds, "the expire time")
            return self._expire_if(_b(name), _time() + seconds, nx, xx, gt, lt)
        name = _b(name)
        if seconds is not None:
            seconds = _check_seconds(seconds, "the expire time")
        return self._set_expiry(name, seconds, seconds is not None and seconds <= 0)

    def expireat(
        self,
        name: Name,
        timestamp: float | datetime,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        """Make a key expire at exactly this Unix time (a past time deletes it); False if it is missing.

        ``nx``/``xx``/``gt``/``lt``: as :meth:`expire`'s.
        """
        name = _b(name)
        timestamp = _check_seconds(timestamp, "the Unix time to expire at", absolute=True)
        if nx or xx or gt or lt:
            _check_expire_options(nx, xx, gt, lt)
            return self._expire_if(name, timestamp, nx, xx, gt, lt)
        return self._set_expiry(name, None, timestamp <= _time(), at=timestamp)

    def _set_expiry(self, name: bytes, seconds: float | None, gone: bool, at: float | None = None) -> bool:
        """Give key ``name`` a time to live of ``seconds`` (None: none), or the Unix time ``at`` to
        expire at, or delete it if ``gone`` (a time to live of 0 or less, a time past); False if it is
        missing. A metadata record another front end wrote is a ForeignRecordError, as through kvb
        serve's EXPIRE: its expiry is that front end's key's, and DEL alone removes it."""
        mk = META + name
        with self.db.locked():
            if self._record(mk) is None:  # (a name too long to be stored too: missing, see _value)
                return False
            if gone:
                return self.delete(name) == 1
            return self.db.expire(mk, seconds) if at is None else self.db.expire(mk, expires_at=at)

    def _expire_if(self, name: bytes, at: float, nx: bool, xx: bool, gt: bool, lt: bool) -> bool:
        """EXPIRE's NX/XX/GT/LT: expire ``name`` at Unix time ``at`` if the options allow it."""
        with self.db.locked():
            try:
                current = self.expiretime(name)
            except KeyError:
                return False
            if (nx and current is not None) or (xx and current is None):
                return False
            if gt and (current is None or at <= current):
                return False
            if lt and current is not None and at >= current:
                return False
            return self.expireat(name, at)  # (a time already past deletes the key, as in Redis)

    def pexpire(
        self,
        name: Name,
        milliseconds: float | timedelta,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        """:meth:`expire` with the time to live in milliseconds (PEXPIRE)."""
        milliseconds = _check_milliseconds(milliseconds, "the expire time")
        return self.expire(name, milliseconds / 1000, nx, xx, gt, lt)

    def pexpireat(
        self,
        name: Name,
        timestamp_ms: float | datetime,
        nx: bool = False,
        xx: bool = False,
        gt: bool = False,
        lt: bool = False,
    ) -> bool:
        """:meth:`expireat` with the Unix time in milliseconds (PEXPIREAT)."""
        timestamp_ms = _check_milliseconds(timestamp_ms, "the Unix time to expire at", absolute=True)
        return self.expireat(name, timestamp_ms / 1000, nx, xx, gt, lt)

    def expiretime(self, name: Name) -> float | None:
        """The Unix time a key expires at (None: never); raises ``KeyError`` if the key is missing."""
        name = _b(name)
        found = self._record(META + name)
        if found is None:
            raise KeyError(name)
        return found[1] or None

    def pexpiretime(self, name: Name) -> int | None:
        """The Unix time in whole milliseconds a key expires at (None: never); ``KeyError`` if missing."""
        at = self.expiretime(name)
        return None if at is None else round(at * 1000)

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
        at = self.expiretime(name)  # (ForeignRecordError for another front end's record, as TTL's)
        return None if at is None else max(at - _time(), 0.0)

    def pttl(self, name: Name) -> int | None:
        """Milliseconds a key has left (None: no expiry); raises ``KeyError`` if the key is missing."""
        left = self.ttl(name)
        return None if left is None else round(left * 1000)

    def keys(self, pattern: Name = b"*") -> list[bytes]:
        """All key names matching a Redis glob pattern, in byte order."""
        return list(self.iter_keys(pattern))

    def iter_keys(
        self, pattern: Name = b"*", type: str | bytes | None = None, after: Name | None = None
    ) -> Iterator[bytes]:
        """Yield key names matching ``pattern`` (and ``type``, str or bytes, any case) in byte
        order, after ``after``."""
        pattern = _b(pattern)
        lit = _literal_prefix(pattern)
        start = META + _b(after) + b"\x00" if after is not None else None  # (a str too, as a name)
        tag = None
        if type is not None:
            # (a bytes type, b"hash", matched no type: every scan came back empty)
            word = keyword(type).decode("latin-1").lower()
            tags = [t for t, n in TYPE_NAMES.items() if n == word]
            tag = tags[0] if tags else -1
        db = self.db
        for key in db.keys(prefix=META + lit, start=start):
            name = key[2:]
            if pattern != b"*" and not glob_match(pattern, name):
                continue
            if tag is not None:
                found = db.get(key)
                if not found or found[0] != tag or not has_layout_form(found):  # (another front end's)
                    continue
            yield name

    def scan(
        self,
        cursor: int | bytes | str = 0,
        match: Name | None = None,
        count: int | None = 10,
        type: str | bytes | None = None,
        _type: str | bytes | None = None,
    ) -> tuple[int, list[bytes]]:
        """One step of a cursor scan over key names: ``(next cursor, names)``; cursor 0 starts and ends.

        ``type`` (or ``_type``, redis-py's name) keeps the keys of that type only.
        """
        if _type is not None:
            if type is not None:
                raise InvalidArgumentError("scan() takes type or _type (the same option), not both")
            type = _type
        after = _decode_cursor(cursor, self._cursors)
        count = parse_scan_count(count)
        names: list[bytes] = []
        last = None
        for name in self.iter_keys(match if match is not None else b"*", type, after):
            names.append(name)
            last = name
            if len(names) >= count:
                return _encode_cursor(last, self._cursors), names
        return 0, names

    def scan_iter(
        self, match: Name | None = None, count: int | None = None, _type: str | bytes | None = None
    ) -> Iterator[bytes]:
        """Yield the key names :meth:`scan` steps through from cursor 0 to its end (redis-py's
        ``scan_iter``); a key added or removed meanwhile may or may not come, as in Redis."""
        for names in scan_pages(lambda cursor: self.scan(cursor, match, count, _type=_type)):
            yield from names

    def renamenx(self, src: Name, dst: Name) -> bool:
        """:meth:`rename` only if ``dst`` does not exist (RENAMENX); False if it does."""
        return self.rename(src, dst, nx=True)

    @_name_limit(None)
    def rename(self, src: Name, dst: Name, nx: bool = False) -> bool:
        """Move a key (with its expiry) to a new name, replacing what was there; ``nx``: only if free.

        Raises ``KeyError`` if ``src`` is missing. Returns False only when ``nx`` and ``dst`` exists.
        """
        src, dst = _b(src), _b(dst)
        db = self.db
        with db.locked():
            found = self._whole_record(src)
            if found is None:
                raise KeyError(src)
            self._check_members(src, found[0])
            if src == dst:
                return not nx
            old = self._meta_value(dst)
            if nx and old is not None:
                return False
            meta, expiry = found
            with db.batch() as b:
                self._purge_all(b, dst)
                b.put(META + dst, self._replacing(meta, old), expires_at=expiry)
                b.delete(META + src)
                for prefix in MEMBER_PREFIXES.get(meta[0], ()):
                    sp, dp = prefix + _lp(src), prefix + _lp(dst)
                    for key, value in list(db.items(prefix=sp)):
                        if prefix == GROUP:
                            _check_group_fits(dst, key[len(sp) :])
                        b.put(dp + key[len(sp) :], value)
                        b.delete(key)
        return True

    def dbsize(self) -> int:
        """Number of keys (of every type)."""
        return self.db.count(prefix=META)

    def expiring(self) -> tuple[int, int]:
        """``(live keys with a time to live, their mean remaining TTL in ms)``: INFO's ``expires`` and
        ``avg_ttl`` (Redis estimates the mean from samples; this is the exact one)."""
        expiries = self.db._expiry_snapshot()  # none of another thread's open transaction
        now = _time()
        left = [e - now for k, e in expiries if e > now and k.startswith(META)]
        return len(left), int(sum(left) * 1000 / len(left)) if left else 0

    def flushdb(self, asynchronous: bool = False) -> None:
        """Delete every key of every type (one atomic batch); other engine keys are left alone.
        (``asynchronous``, redis-py's ``FLUSHDB ASYNC``, is accepted: the flush is done at once.)

        Keys that have expired but are still stored go too: otherwise active expiry would find
        them afterwards and ``kvb serve`` would report them as ``expired`` keyspace events.
        """
        db = self.db
        with db.locked(), db.batch() as b:
            self._delete_prefixes(b, ALL_PREFIXES)
            if db._tailw.value != db._seen:
                db._refresh()
            for key in [k for k in db._ix.exp if k.startswith(ALL_PREFIXES)]:
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
                    name = member_name(key)
                    if name is None:
                        continue  # no record of a Redis key: another front end's, left alone
                    ok = alive.get(name)
                    if ok is None:
                        found = db.get(META + name)
                        ok = alive[name] = found is not None and found[:1] == TAG_OF[tag]
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
                    ok = alive[name] = found is not None and found[:1] == TAG_OF[tag]
                if not ok and key in db:
                    b.delete(key)
                    removed += 1
        return removed

    def watch_token(self, name: Name) -> tuple[tuple[bytes, float], int, int | None] | None:
        """An opaque value that changes whenever the key's metadata record is written (used by WATCH).

        The record's content, and where it is stored: every write appends a new record, so a change
        undone before EXEC (``SET k 2`` then ``SET k 1``, ``INCR`` then ``DECR``, a key deleted and
        re-created as it was) still gives another token, as Redis fails the EXEC then. A merge moves
        the records it copies (and renumbers the files), so it changes the token of every key (the
        store's generation is part of it): a spurious EXEC failure, which clients retry, never a
        missed change.
        """
        db = self.db
        mk = META + _b(name)
        found = db._get_record(mk)
        if found is None:
            return None
        # After the read, which caught up with the store: a write in between gives a newer place
        # than content, which at worst fails the EXEC.
        return found, db._gen, db._view[0].get(mk)

    def watch_mark(self) -> tuple[int, int]:
        """Where the store's log ends now, for :meth:`created_since`: take it before reading the
        key (a write in between is then looked at, never skipped)."""
        db = self.db
        return db._gen, db._tailw.value

    def created_since(self, name: Name, mark: tuple[int, int], most: int = 16 << 20) -> bool:
        """Whether any process wrote ``name``'s metadata record (created or set the key) since
        ``mark`` (:meth:`watch_mark`), whatever became of the key since: WATCH of a key missing
        then and now, which has no record to compare (used by ``kvb serve``'s EXEC).

        Deletions do not count: removing the records of a key that had already expired changes
        nothing, as in Redis. See :meth:`_put_since` for when it answers True without looking.
        """
        mk = META + _b(name)
        return self._put_since(mark, mk, lambda key: key == mk, most)

    def hash_fields_written_since(self, name: Name, mark: tuple[int, int], most: int = 16 << 20) -> bool:
        """Whether any process wrote a field of hash ``name`` since ``mark`` (:meth:`watch_mark`):
        overwriting one existing field writes only the field's record, not the metadata that
        :meth:`watch_token` compares, so ``kvb serve``'s EXEC looks for it here (the write itself
        pays nothing for WATCH). See :meth:`_put_since`."""
        prefix = HASH + _lp(_b(name))
        return self._put_since(mark, prefix, lambda key: key.startswith(prefix), most)

    def _put_since(
        self, mark: tuple[int, int], needle: bytes, match: Callable[[bytes], bool], most: int
    ) -> bool:
        """Whether the log written since ``mark`` holds a put of a key that ``match`` accepts
        (and which contains ``needle``, searched for first: a fast byte search skips the files
        that cannot hold one). Answers True, without looking, when it cannot tell at a small cost:
        a merge since (the files were rewritten) or more than ``most`` bytes to read."""
        db = self.db
        if db._tailw.value != db._seen:
            db._refresh()
        gen, since = mark
        now = db.change_token()
        if now == since:
            return False
        if db._gen != gen or not since:
            return True
        first, start = unpack_tail(since)
        last, stop = unpack_tail(now)
        maps = db._view[1]
        for fid in sorted(f for f in db._fidx if f[1] == 0 and first <= f[0] <= last):
            idx = db._fidx[fid]
            begin = start if fid[0] == first else FILE_HEADER_SIZE
            end = stop if fid[0] == last else db._sizes.get(fid, -1)  # (an older file: its records' end)
            most -= end - begin
            if most < 0 or end < begin or len(maps[idx]) < end:
                return True
            if maps[idx].find(needle, begin, end) < 0:
                continue  # the bytes are nowhere there: no such record
            found = scan(maps[idx], begin, end, trust_lengths=True)
            if found.stop_reason is not None:
                return True
            if any(kind == PUT and match(key) for kind, key, *_ in found.entries):
                return True
        return False

    def expired_names(self, limit: int) -> list[bytes]:
        """Up to ``limit`` names whose key has expired but whose records are still stored.

        Looks only at this process's index of keys with a TTL (Redis's active expiry
        looks at its expires table the same way); :meth:`remove_expired` deletes them.
        """
        db = self.db
        if db._tailw.value != db._seen:  # index other processes' writes first
            db._refresh()
        now = _time()
        found = []
        for key, when in list(db._ix.exp.items()):
            if when <= now and key.startswith(META):
                found.append(key[len(META) :])
                if len(found) >= limit:
                    break
        return found

    def remove_expired(self, name: Name) -> bool:
        """Delete the records of a key that has expired; False if it is live, missing or already gone.

        A key that expired is already missing for every command; this reclaims its
        records at once and tells the caller it was there (``kvb serve`` reports it as
        an ``expired`` keyspace event).
        """
        db = self.db
        mk = META + _b(name)
        if db._tailw.value != db._seen:
            db._refresh()
        when = db._ix.exp.get(mk) if mk in db._view[0] else None
        if when is None or when > _time():  # the cheap test first: no lock for a live key
            return False
        with db.locked():
            when = db._ix.exp.get(mk) if mk in db._view[0] else None
            if when is None or when > _time():
                return False
            with db.batch() as b:
                b.delete(mk)
                self._purge_all(b, _b(name))
        return True

    def _remove_members(
        self,
        name: bytes,
        type_: int,
        pfx: bytes,
        members: tuple[Name | Value, ...],
        index: bytes | None = None,
    ) -> int:
        """Delete member records of a hash, set or sorted set and fix its count, atomically.

        With ``index`` (sorted sets), each member's ``index + value + member``
        record goes too. Returns how many of ``members`` existed.
        """
        db = self.db
        with db.locked():
            found = self._meta(name, type_)
            if found is None:
                return 0
            count, version = self._count(name, found[0])
            removed = 0
            with db.batch() as b:
                for member in {_b(m) for m in members}:
                    key = pfx + member
                    if index is None:
                        if not self._stored(key):
                            continue
                    else:
                        value = self._value(key)
                        if value is None:
                            continue
                        b.delete(index + value + member)
                    b.delete(key)
                    removed += 1
                if removed:
                    self._put_count(b, name, type_, count - removed, version, found[1])
            return removed

    def _member_scan(
        self, prefix: bytes, cursor: int | bytes | str, match: Name | None, count: int | None
    ) -> tuple[int, list[tuple[bytes, bytes]]]:
        after = _decode_cursor(cursor, self._cursors)
        start = prefix + after + b"\x00" if after is not None else None
        pattern = _b(match) if match is not None else None
        count = parse_scan_count(count)
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

    @staticmethod
    def _range(start: int, stop: int, n: int) -> tuple[int, int]:
        """Normalise inclusive Redis indexes to a Python half-open range."""
        start, stop = parse_index(start), parse_index(stop)
        if start < 0:
            start = max(n + start, 0)
        if stop < 0:
            stop = n + stop
        stop = min(stop, n - 1)
        return start, max(stop + 1, start)

    @_name_limit(None)
    def copy(self, src: Name, dst: Name, replace: bool = False, *, destination_db: int | None = None) -> bool:
        """Copy a key of any type, with its TTL, to ``dst``; False if ``src`` is missing or ``dst``
        exists (unless ``replace``). A stream is copied with its consumer groups, their consumers
        and pending entries, as Redis copies them. ``destination_db`` (redis-py's ``DB`` option)
        may only be 0, the one database, as in Redis run with one.
        """
        if destination_db is not None and parse_index(destination_db) != 0:
            raise CommandError("ERR DB index is out of range")
        src, dst = _b(src), _b(dst)
        if src == dst:
            raise CommandError("ERR source and destination objects are the same")
        db = self.db
        with db.locked():
            found = self._whole_record(src)
            if found is None:
                return False
            self._check_members(src, found[0])
            old = self._meta_value(dst)
            if old is not None and not replace:
                return False
            meta, expiry = found
            with db.batch() as b:
                self._purge_all(b, dst)
                b.put(META + dst, self._replacing(meta, old), expires_at=expiry)
                for prefix in MEMBER_PREFIXES.get(meta[0], ()):
                    sp, dp = prefix + _lp(src), prefix + _lp(dst)
                    for key, value in db.items(prefix=sp):
                        if prefix == GROUP:
                            _check_group_fits(dst, key[len(sp) :])
                        b.put(dp + key[len(sp) :], value)
        return True

    def touch(self, *names: Name) -> int:
        """How many of ``names`` exist (TOUCH: kvb keeps no access times, so this only counts)."""
        return self.exists(*_given(names, "touch"))

    def object_encoding(self, name: Name) -> str | None:
        """The encoding Redis 7.2 would report for this value (OBJECT ENCODING), or None if missing.

        Worked out from the value as it is now (see docs/redis.md, "OBJECT"): a string is
        ``int`` (a 64-bit integer written as Redis writes it), ``embstr`` (up to 44 bytes) or
        ``raw``; a small list ``listpack`` (up to 8 KiB as a listpack), else ``quicklist``; a
        set ``intset`` (up to 512 integers), ``listpack`` (up to 128 members of up to 64 bytes)
        or ``hashtable``; a hash ``listpack`` (up to 512 fields, fields and values of up to 64
        bytes) or ``hashtable``; a sorted set ``listpack`` (up to 128 members of up to 64 bytes)
        or ``skiplist``; a stream ``stream``. At most a bounded number of members is read.
        """
        name = _b(name)
        found = self._meta_value(name)
        if found is None:
            return None
        tag = found[0]
        if tag == T_STRING:
            value = found[1:]
            if _redis_int(value) is not None:
                return "int"
            return "embstr" if len(value) <= 44 else "raw"
        count = self._count(name, found)[0]
        if tag == T_STREAM:
            return "stream"
        if tag == T_LIST:
            return "listpack" if self._fits_listpack(name, count) else "quicklist"
        if tag == T_SET:
            if count <= 512:
                members = self._first_members(SET + _lp(name), count)
                if all(_redis_int(m) is not None for m, _ in members):
                    return "intset"
                if count <= 128 and all(len(m) <= 64 for m, _ in members):
                    return "listpack"
            return "hashtable"
        small = count <= (512 if tag == T_HASH else 128)  # (hash-max-listpack-entries, zset-max-...)
        if small:
            pfx = (HASH if tag == T_HASH else ZMEM) + _lp(name)
            items = self._first_members(pfx, count)
            small = all(len(m) <= 64 for m, _ in items)
            if tag == T_HASH:
                small = small and all(len(v) <= 64 for _, v in items)
        if tag == T_HASH:
            return "listpack" if small else "hashtable"
        return "listpack" if small else "skiplist"

    def object_refcount(self, name: Name) -> int | None:
        """What OBJECT REFCOUNT answers in Redis: 2147483647 for the integers 0-9999 (shared
        objects there), 1 for any other value; None if the key is missing."""
        found = self._meta_value(_b(name))
        if found is None:
            return None
        if found[0] == T_STRING:
            n = _redis_int(found[1:])
            if n is not None and 0 <= n < 10000:
                return 2147483647
        return 1

    def memory_usage(self, name: Name, samples: int = 5) -> int | None:
        """MEMORY USAGE: an estimate of the bytes the key takes in the store's log, or None if missing.

        The rule (see docs/redis.md, "MEMORY"): each record counts its header (22 bytes), its
        engine key and its value. A string is its one metadata record; a collection adds, for each
        kind of member record (a sorted set has two per member), the average size of its first
        ``samples`` records (all of them if ``samples`` is 0) times the member count, as Redis
        extrapolates from its samples. A stream's consumer groups are not counted.
        """
        name = _b(name)
        if parse_index(samples) < 0:
            raise CommandError("ERR samples must be 0 (all) or more")  # a ValueError too, as it was
        found = self._whole_record(name)
        if found is None:
            return None
        meta = found[0]
        size = HEADER_SIZE + len(META) + len(name) + len(meta)
        tag = meta[0]
        if tag == T_STRING:
            return size
        count = self._count(name, meta)[0]
        prefixes = MEMBER_PREFIXES[tag][:1] if tag == T_STREAM else MEMBER_PREFIXES[tag]
        for prefix in prefixes:
            pfx = prefix + _lp(name)
            taken = total = 0
            for key, value in self.db.items(prefix=pfx):
                total += HEADER_SIZE + len(key) + len(value)
                taken += 1
                if taken == samples:
                    break
            if taken:
                size += total if taken >= count else round(total * count / taken)
        return size

    def _first_members(self, prefix: bytes, count: int) -> list[tuple[bytes, bytes]]:
        """Up to ``count`` ``(member, value)`` records under ``prefix``, in byte order."""
        n = len(prefix)
        out = []
        for key, value in self.db.items(prefix=prefix):
            out.append((key[n:], value))
            if len(out) >= count:
                break
        return out

    def _fits_listpack(self, name: bytes, count: int) -> bool:
        """Whether a list's elements fit one 8 KiB listpack (Redis 7.2's list-max-listpack-size -2)."""
        if count * 2 + 7 > _LISTPACK_LIMIT:  # each entry takes at least 2 bytes
            return False
        size = 7  # header and end byte
        for _, element in self._first_members(LIST + _lp(name), count):
            size += _listpack_entry_size(element)
            if size > _LISTPACK_LIMIT:
                return False
        return True


_LISTPACK_LIMIT = 8192

#: The prefixes of the member records a collection's count counts, one record each a member.
_COUNTED = {T_HASH: (HASH,), T_SET: (SET,), T_ZSET: (ZMEM, ZIDX)}

#: Where the write counter is in each collection's metadata (a string has none).
_VERSION_AT = {T_HASH: 9, T_SET: 9, T_ZSET: 9, T_STREAM: 9, T_LIST: 17}


def _redis_int(value: bytes) -> int | None:
    """``value`` as Redis's string2ll reads a whole string (canonical signed 64-bit), else None."""
    if not value or len(value) > 20:
        return None
    try:
        return parse_int(value)
    except NotAnIntegerError:
        return None


def intset_order(members: Iterable[bytes]) -> list[bytes] | None:
    """``members`` (a whole set) in numeric order if Redis 7.2 would keep the set as an intset (at
    most 512 members, each a 64-bit integer as Redis writes one, as OBJECT ENCODING says), which is
    the order Redis answers it in; else None. Reads at most 513 members."""
    numbered: list[tuple[int, bytes]] = []
    for member in members:
        number = _redis_int(member)
        if number is None or len(numbered) == 512:
            return None
        numbered.append((number, member))
    numbered.sort()
    return [m for _, m in numbered]


def _listpack_entry_size(element: bytes) -> int:
    """The bytes one element takes in a listpack: its encoding, data and back-length."""
    n = _redis_int(element)
    if n is not None:
        if 0 <= n <= 127:
            size = 1
        elif -4096 <= n <= 4095:
            size = 2
        elif -(1 << 15) <= n < 1 << 15:
            size = 3
        elif -(1 << 23) <= n < 1 << 23:
            size = 4
        elif -(1 << 31) <= n < 1 << 31:
            size = 5
        else:
            size = 9
    else:
        length = len(element)
        size = length + (1 if length < 64 else 2 if length < 4096 else 5)
    return size + (1 if size < 128 else 2 if size < 16384 else 3 if size < 2097152 else 4)
