"""Redis stream consumer groups: XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM, XINFO, XSETID.

A group, its consumers and its pending entries list (PEL) are records of their
own next to the stream's entries, so they are written, renamed and deleted
with the stream::

    b"\\x00g" len name group                  -> last delivered ID(16) entries-read(8)
    b"\\x00c" len name len group consumer     -> seen time(8) active time(8)
    b"\\x00p" len name len group ms(8) seq(8) -> delivery time(8) deliveries(8) consumer

Times are Unix milliseconds, as Redis reports them. The PEL is one ordered
run of records per group (by entry ID); a consumer's own pending entries are
found by reading its group's PEL, which keeps every change to one record.
"""

from __future__ import annotations

import math
import struct
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from kv_backend.db import Batch
from kv_backend.errors import InvalidArgumentError, NotAnIntegerError
from kv_backend.structures.errors import NOT_INT, CommandError, c_string, quoted, wrong_arity
from kv_backend.structures.keyspace import _block_seconds, _check_group_fits, _given, _name_limit, _name_list
from kv_backend.structures.layout import (
    _I64_MAX,
    CONSUMER,
    GROUP,
    META,
    PENDING,
    STREAM,
    T_STREAM,
    Name,
    NameT,
    _b,
    _lp,
    _pairs,
    foreign_member,
)
from kv_backend.structures.parsing import parse_index, parse_read_count
from kv_backend.structures.streams import (
    _U64_MAX,
    _XID,
    StreamMeta,
    Streams,
    _decode_pairs,
    _entry_id,
    _id_text,
    _parse_stream_id,
    _range_id,
)

_GRP = struct.Struct(">QQq")  # last delivered ID, entries read (-1: not known)
_CONS = struct.Struct(">qq")  # seen time, active time (-1: never active)
_NACK = struct.Struct(">qQ")  # delivery time, delivery count; the consumer's name follows
UNKNOWN = -1  # an entries-read counter that cannot be known (XDEL left gaps)

ID = tuple[int, int]
Entry = tuple[bytes, "list[tuple[bytes, bytes]] | None"]


class Group(NamedTuple):
    """A consumer group's record, decoded."""

    last: ID  # the last entry ID delivered to the group
    entries_read: int  # how many stream entries the group has read (UNKNOWN: not known)


class Pending(NamedTuple):
    """One entry of a group's pending entries list."""

    id: ID
    consumer: bytes
    delivered: int  # Unix ms of the last delivery
    count: int  # type: ignore[assignment]  # times delivered (the field shadows tuple.count on purpose)


def _pel_prefix(name: bytes, group: bytes) -> bytes:
    """Where a group's pending entries are: this prefix, then the entry ID."""
    return PENDING + _lp(name) + _lp(group)


def _consumer_prefix(name: bytes, group: bytes) -> bytes:
    """Where a group's consumers are: this prefix, then the consumer's name."""
    return CONSUMER + _lp(name) + _lp(group)


def _decode_group(value: bytes, record: bytes) -> Group:
    """The consumer group whose record (the engine key ``record``) is ``value``."""
    try:
        ms, seq, entries_read = _GRP.unpack(value)
    except struct.error:
        raise foreign_member(record) from None
    return Group((ms, seq), entries_read)


def _decode_pending(xid: ID, value: bytes, record: bytes) -> Pending:
    """The pending entry ``xid`` whose record (the engine key ``record``) is ``value``."""
    try:
        delivered, count = _NACK.unpack_from(value)
    except struct.error:
        raise foreign_member(record) from None
    return Pending(xid, value[_NACK.size :], delivered, count)


def _decode_consumer(value: bytes, record: bytes) -> tuple[int, int]:
    """``(seen time, active time)`` of the consumer whose record (the engine key ``record``) is ``value``."""
    try:
        times: tuple[int, int] = _CONS.unpack(value)
    except struct.error:
        raise foreign_member(record) from None
    return times


def _now() -> int:
    return int(time.time() * 1000)


def _fmt(xid: ID) -> bytes:
    return b"%d-%d" % xid


def _strict_id(raw: Name) -> ID:
    """An entry ID as ``ms-seq`` or ``ms`` (no ``-``/``+``/``$``): Redis's "strict" IDs."""
    return _parse_stream_id(_b(raw), 0)


def _setid_id(raw: bytes, meta: StreamMeta) -> ID:
    """XGROUP SETID's ID: ``$`` (compared as a C string), ``-``, ``+`` (read as IDs are) or an ID."""
    if c_string(raw) == b"$":
        return meta.last
    if _id_text(raw) == b"-":
        return (0, 0)
    if _id_text(raw) == b"+":
        return (_U64_MAX, _U64_MAX)
    return _parse_stream_id(raw, 0)


def _nogroup(name: bytes, group: bytes, where: str = "") -> CommandError:
    return CommandError(f"NOGROUP No such key '{quoted(name)}' or consumer group '{quoted(group)}'{where}")


def _nogroup_for_key(name: bytes, group: bytes) -> CommandError:
    return CommandError(f"NOGROUP No such consumer group '{quoted(group)}' for key name '{quoted(name)}'")


class StreamGroups(Streams):
    """The consumer-group commands of :class:`~kv_backend.structures.Structures`."""

    # ------------------------------------------------------------ records

    def _group(self, name: bytes, group: bytes) -> Group | None:
        key = GROUP + _lp(name) + group
        data = self._value(key)
        return None if data is None else _decode_group(data, key)

    @staticmethod
    def _put_group(b: Batch, name: bytes, group: bytes, g: Group) -> None:
        b.put(GROUP + _lp(name) + group, _GRP.pack(*g.last, g.entries_read))

    def _groups(self, name: bytes) -> dict[bytes, Group]:
        """``{group name: group}`` of a stream, in name order."""
        pfx = GROUP + _lp(name)
        return {key[len(pfx) :]: _decode_group(value, key) for key, value in self.db.items(prefix=pfx)}

    def _consumers(self, name: bytes, group: bytes) -> dict[bytes, tuple[int, int]]:
        """``{consumer: (seen time, active time)}`` in name order."""
        pfx = _consumer_prefix(name, group)
        n = len(pfx)
        out = {}
        for key, value in self.db.items(prefix=pfx):
            out[key[n:]] = _decode_consumer(value, key)
        return out

    def _pel(self, name: bytes, group: bytes, start: ID = (0, 0), end: ID | None = None) -> list[Pending]:
        """The group's pending entries with IDs from ``start`` to ``end`` (inclusive), in ID order."""
        pfx = _pel_prefix(name, group)
        n = len(pfx)
        out = []
        for key, value in self.db.items(prefix=pfx, start=pfx + _XID.pack(*start)):
            xid = _entry_id(key, n)
            if end is not None and xid > end:
                break
            out.append(_decode_pending(xid, value, key))
        return out

    def _pending(self, name: bytes, group: bytes, xid: ID) -> Pending | None:
        key = _pel_prefix(name, group) + _XID.pack(*xid)
        value = self._value(key)
        return None if value is None else _decode_pending(xid, value, key)

    @staticmethod
    def _put_pending(b: Batch, name: bytes, group: bytes, p: Pending) -> None:
        b.put(
            _pel_prefix(name, group) + _XID.pack(*p.id),
            _NACK.pack(p.delivered, p.count) + p.consumer,
        )

    def _touch_consumer(
        self, b: Batch, name: bytes, group: bytes, consumer: bytes, now: int, seen: bool, active: bool
    ) -> None:
        """Set a consumer's seen time (``seen``) and active time (``active``) to ``now``.

        A missing consumer is created (seen now, never active). Times are in ms: a
        record they leave unchanged is not rewritten.
        """
        key = _consumer_prefix(name, group) + consumer
        data = self.db.get(key)
        old = _decode_consumer(data, key) if data is not None else None
        new = (
            now if seen or old is None else old[0],
            now if active else (old[1] if old is not None else UNKNOWN),
        )
        if new != old:
            b.put(key, _CONS.pack(*new))
            if old is None:
                self.consumers_made += 1

    def _entry(self, name: bytes, xid: ID) -> list[tuple[bytes, bytes]] | None:
        key = STREAM + _lp(name) + _XID.pack(*xid)
        data = self.db.get(key)
        return None if data is None else _decode_pairs(data, key)

    def _behind_first(self, name: bytes, xid: ID) -> bool:
        """Whether ``xid`` comes before the stream's first entry (trimming took every entry up to
        it): a group there reads its counter anew, as Redis does since its fix of the lag after
        XTRIM (redis/redis#13958), which :meth:`_lag` follows. Looked up directly when the entry
        ``xid`` still exists (the common case), by an ordered scan only otherwise."""
        if self.db._get_record(STREAM + _lp(name) + _XID.pack(*xid)) is not None:
            return False
        return xid < self._first_id(name)

    def _first_id(self, name: bytes) -> ID:
        pfx = STREAM + _lp(name)
        for key in self.db.keys(prefix=pfx):
            return _entry_id(key, len(pfx))
        return (0, 0)

    def _existing_group(self, name: bytes, group: bytes, where: str = "") -> tuple[StreamMeta, Group]:
        meta = self._stream(name)
        g = None if meta is None else self._group(name, group)
        if meta is None or g is None:
            raise _nogroup(name, group, where)
        return meta, g

    @staticmethod
    def check_entry_id(raw: Name) -> None:
        """Raise Redis's "Invalid stream ID" error unless ``raw`` is an entry ID (``ms-seq`` or ``ms``)."""
        _strict_id(raw)

    def require_group(self, name: Name, group: Name) -> None:
        """Raise Redis's NOGROUP error unless the stream and its group exist (WRONGTYPE for another type)."""
        self._existing_group(_b(name), _b(group))

    # ------------------------------------------------------- group counters

    @staticmethod
    def _has_tombstones_after(meta: StreamMeta, start: ID) -> bool:
        """Whether an XDEL removed an entry at or after ``start`` (so counting reads is not possible)."""
        if not meta.count or meta.max_deleted == (0, 0):
            return False
        return start <= meta.max_deleted

    @staticmethod
    def _reads_up_to(meta: StreamMeta, xid: ID, first: ID) -> int:
        """How many entries come up to ``xid`` since the stream began, or UNKNOWN."""
        if not meta.added:
            return 0
        if not meta.count and xid <= meta.last:
            return meta.added
        if xid != (0, 0) and xid < meta.max_deleted:
            return UNKNOWN
        if xid == meta.last:
            return meta.added
        if xid > meta.last:
            return UNKNOWN
        if meta.max_deleted == (0, 0) or meta.max_deleted < first:
            if xid < first:
                return meta.added - meta.count
            if xid == first:
                return meta.added - meta.count + 1
        return UNKNOWN

    def _lag(self, meta: StreamMeta, g: Group, first: ID) -> int | None:
        """Entries the group has yet to read (``first``: the stream's first entry ID), None when
        gaps left by XDEL make it unknowable."""
        if not meta.added or not meta.count:
            return 0
        if g.last < first and meta.max_deleted < first:
            return meta.count
        if g.entries_read != UNKNOWN and not self._has_tombstones_after(meta, g.last):
            return meta.added - g.entries_read
        read = self._reads_up_to(meta, g.last, first)
        return None if read == UNKNOWN else meta.added - read

    # -------------------------------------------------------------- XGROUP

    def _group_target(self, name: bytes, group: bytes, need_group: bool) -> tuple[StreamMeta, Group | None]:
        meta = self._stream(name)
        if meta is None:
            raise CommandError(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want "
                "to use the MKSTREAM option to create an empty stream automatically."
            )
        g = self._group(name, group)
        if g is None and need_group:
            raise _nogroup_for_key(name, group)
        return meta, g

    @staticmethod
    def _check_entries_read(entries_read: int | None) -> int:
        if entries_read is None:
            return UNKNOWN
        entries_read = parse_index(entries_read)
        if entries_read > _I64_MAX:  # Redis's long long (it raised struct.error, not a KVError)
            raise NotAnIntegerError(NOT_INT)
        if entries_read < 0 and entries_read != UNKNOWN:
            raise CommandError("ERR value for ENTRIESREAD must be positive or -1")
        return entries_read

    @_name_limit(T_STREAM)
    def xgroup_create(
        self,
        name: Name,
        group: Name,
        id: Name = b"$",
        mkstream: bool = False,
        entries_read: int | None = None,
    ) -> bool:
        """Create a consumer group that will deliver entries after ``id`` (``$``: only new ones).

        ``mkstream`` creates an empty stream when the key is missing. Raises Redis's
        BUSYGROUP error if the group exists.
        """
        name, group, raw = _b(name), _b(group), _b(id)
        read = self._check_entries_read(entries_read)
        db = self.db
        with db.locked():
            meta = self._stream(name)
            if meta is None and not mkstream:
                self._group_target(name, group, need_group=False)  # raises
            start = (meta.last if meta else (0, 0)) if c_string(raw) == b"$" else _strict_id(raw)
            if meta is not None and self._group(name, group) is not None:
                raise CommandError("BUSYGROUP Consumer Group name already exists")
            _check_group_fits(name, group)
            with db.batch() as b:
                if meta is None:
                    self._purge(b, name, T_STREAM)
                    self._put_stream(b, name, StreamMeta(0, 0, (0, 0), 0.0, 0, (0, 0)))
                self._put_group(b, name, group, Group(start, read))
        return True

    def xgroup_setid(self, name: Name, group: Name, id: Name, entries_read: int | None = None) -> bool:
        """Make the group deliver entries after ``id`` next (``$``: the stream's last ID)."""
        name, group, raw = _b(name), _b(group), _b(id)
        read = self._check_entries_read(entries_read)
        with self.db.locked():
            meta, g = self._group_target(name, group, need_group=True)
            start = _setid_id(raw, meta)
            if g != Group(start, read):  # the same values: nothing is written (no change for WATCH)
                with self.db.batch() as b:
                    self._put_group(b, name, group, Group(start, read))
        return True

    def xgroup_destroy(self, name: Name, group: Name) -> int:
        """Delete a group with its consumers and pending entries; 1 if it existed, else 0."""
        name, group = _b(name), _b(group)
        db = self.db
        with db.locked():
            _, g = self._group_target(name, group, need_group=False)
            if g is None:
                return 0
            with db.batch() as b:
                b.delete(GROUP + _lp(name) + group)
                self._delete_prefixes(b, (_consumer_prefix(name, group), _pel_prefix(name, group)))
        return 1

    @_name_limit(T_STREAM)
    def xgroup_createconsumer(self, name: Name, group: Name, consumer: Name) -> int:
        """Add a consumer to a group; 1 if it is new, 0 if it existed."""
        name, group, consumer = _b(name), _b(group), _b(consumer)
        db = self.db
        with db.locked():
            self._group_target(name, group, need_group=True)
            if _consumer_prefix(name, group) + consumer in db:
                return 0
            with db.batch() as b:
                self._touch_consumer(b, name, group, consumer, _now(), seen=True, active=False)
        return 1

    def xgroup_delconsumer(self, name: Name, group: Name, consumer: Name) -> int:
        """Remove a consumer and its pending entries (they are no longer pending); how many it had."""
        name, group, consumer = _b(name), _b(group), _b(consumer)
        db = self.db
        with db.locked():
            self._group_target(name, group, need_group=True)
            ckey = _consumer_prefix(name, group) + consumer
            if not self._stored(ckey):
                return 0
            mine = [p for p in self._pel(name, group) if p.consumer == consumer]
            pfx = _pel_prefix(name, group)
            with db.batch() as b:
                b.delete(ckey)
                for p in mine:
                    b.delete(pfx + _XID.pack(*p.id))
        return len(mine)

    def xsetid(
        self,
        name: Name,
        last_id: Name,
        entries_added: int | None = None,
        max_deleted_id: Name | None = None,
    ) -> bool:
        """Set a stream's last ID (and entries-added, max-deleted-entry-id), as XSETID."""
        name = _b(name)
        new_last = _strict_id(last_id)
        entries_added = None if entries_added is None else parse_index(entries_added)
        if entries_added is not None and entries_added > _I64_MAX:  # Redis's long long, as ENTRIESREAD
            raise NotAnIntegerError(NOT_INT)
        if entries_added is not None and entries_added < 0:
            raise CommandError("ERR entries_added must be positive")
        max_del = None
        if max_deleted_id is not None:
            max_del = _strict_id(max_deleted_id)
            if new_last < max_del:
                raise CommandError(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"
                )
        db = self.db
        with db.locked():
            meta = self._stream(name)
            if meta is None:
                raise CommandError("ERR no such key")
            if meta.count:
                pfx = STREAM + _lp(name)
                top = next(iter(db.keys(prefix=pfx, reverse=True)))
                if new_last < _entry_id(top, len(pfx)):
                    raise CommandError(
                        "ERR The ID specified in XSETID is smaller than the target stream top item"
                    )
                if entries_added is not None and meta.count > entries_added:
                    raise CommandError(
                        "ERR The entries_added specified in XSETID is smaller than the target stream length"
                    )
            if new_last < meta.max_deleted:
                raise CommandError(
                    "ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"
                )
            new = meta._replace(last=new_last)
            if entries_added is not None:
                new = new._replace(added=entries_added)
            if max_del is not None and max_del != (0, 0):
                new = new._replace(max_deleted=max_del)
            if new != meta:  # the same values: nothing is written (no change for WATCH)
                with db.batch() as b:
                    self._put_stream(b, name, new)
        return True

    # ---------------------------------------------------------- XREADGROUP

    @_name_limit(T_STREAM)
    def xreadgroup(
        self,
        group: Name,
        consumer: Name,
        streams: Mapping[NameT, Name] | Iterable[tuple[Name, Name]],
        count: int | None = None,
        block: int | None = None,
        noack: bool = False,
        touch: bool = True,
    ) -> list[tuple[bytes, list[Entry]]]:
        """Read as ``consumer`` of ``group``: ``>`` for entries never delivered to the group, an ID for
        the consumer's own pending entries after it.

        Returns ``[(stream, [(id, fields), ...])]``: streams read with ``>`` appear only when they
        had new entries; a history read always appears, and a pending entry that was deleted from
        the stream comes back as ``(id, None)``. New deliveries go to the pending entries list
        unless ``noack``. ``touch=False`` leaves a known consumer's seen-time alone when nothing
        is delivered (for retries of a blocked read). With ``block`` (milliseconds, 0: for
        ever) it waits for entries that any process adds, and returns ``[]`` if none come.
        ``block`` comes before ``noack``, as in redis-py: a redis-py call with ``block`` as its
        fifth argument must not turn ``noack`` on (entries never pending, so never redelivered).
        """
        pairs = _given(_pairs(streams, "streams"), "xreadgroup")  # (Redis's answer to no stream)
        if block is not None:

            def attempt(first: bool) -> list[tuple[bytes, list[Entry]]] | None:
                with self.db.locked():  # the check and the read see the same streams
                    if not first:
                        self._check_still_grouped(group, pairs)
                    found = self.xreadgroup(group, consumer, pairs, count, noack=noack, touch=touch and first)
                return found or None

            return self._wait_for(attempt, _block_seconds(block)) or []
        group, consumer = _b(group), _b(consumer)
        limit = parse_read_count(count)  # (None, 0 or negative: every entry, as in Redis)
        db = self.db
        with db.locked():
            targets: list[tuple[bytes, StreamMeta, Group, ID | None]] = []
            for raw_name, raw_id in pairs:
                name, raw = _b(raw_name), _b(raw_id)
                meta = self._stream(name)
                g = None if meta is None else self._group(name, group)
                if meta is None or g is None:
                    raise _nogroup(name, group, " in XREADGROUP with GROUP option")
                if c_string(raw) == b"$":  # "+" is an invalid ID, as in Redis 7.0 (7.4 reads it)
                    raise CommandError(
                        "ERR The $ ID is meaningless in the context of XREADGROUP: you want "
                        "to read the history of this consumer by specifying a proper ID, or use the > ID "
                        "to get new messages. The $ ID would just return an empty result set."
                    )
                targets.append((name, meta, g, None if c_string(raw) == b">" else _strict_id(raw)))
            now = _now()
            out: list[tuple[bytes, list[Entry]]] = []
            for i, (name, meta, g, after) in enumerate(targets):
                if i and any(t[0] == name for t in targets[:i]):  # named again: see what the first read did
                    g = self._group(name, group) or g
                # one batch per stream, so that a stream named twice sees its first read
                with db.batch() as b:
                    if after is None:
                        entries = self._deliver_new(b, name, meta, g, group, consumer, limit, noack, now)
                        if entries:
                            out.append((name, entries))
                    else:
                        entries = self._deliver_history(b, name, group, consumer, after, limit, now)
                        out.append((name, entries))
                    active = bool(entries) and after is None and not noack
                    self._touch_consumer(b, name, group, consumer, now, touch or bool(entries), active)
        return out

    def _check_still_grouped(self, group: Name, pairs: Sequence[tuple[Name, Name]]) -> None:
        """A blocked XREADGROUP's retry: as in Redis, a stream deleted (or replaced by a key of
        another type) while it waited ends the wait with ``UNBLOCKED the stream key no longer
        exists``, and its group destroyed meanwhile with ``NOGROUP the consumer group this client
        was blocked on no longer exists``, where a plain XREADGROUP's NOGROUP (or WRONGTYPE) did
        not tell a consumer that the stream it had read was gone."""
        group = _b(group)
        for raw_name, _ in pairs:
            name = _b(raw_name)
            found = self._record(META + name)
            if found is None or found[0][0] != T_STREAM:
                raise CommandError("UNBLOCKED the stream key no longer exists")
            if self._group(name, group) is None:
                raise CommandError("NOGROUP the consumer group this client was blocked on no longer exists")

    def _deliver_new(
        self,
        b: Batch,
        name: bytes,
        meta: StreamMeta,
        g: Group,
        group: bytes,
        consumer: bytes,
        limit: int | None,
        noack: bool,
        now: int,
    ) -> list[Entry]:
        if g.last >= meta.last:  # nothing was added after what the group has seen: no scan
            return []
        entries: list[Entry] = []
        last, read = g.last, g.entries_read
        first: ID | None = None
        lname = _lp(name)
        pel = PENDING + lname + _lp(group)  # _pel_prefix(name, group), the name prefixed once
        delivery = _NACK.pack(now, 1) + consumer  # each entry's PEL record: delivered now, once
        for xid, key, data in self._entries_after(STREAM + lname, g.last, meta.last):
            if read != UNKNOWN and last == g.last and self._behind_first(name, last):
                read = UNKNOWN  # trimmed past the group: its counter no longer counts from here
            if read != UNKNOWN and not self._has_tombstones_after(meta, last):
                read += 1
            elif meta.added:
                if first is None:
                    first = self._first_id(name)
                read = self._reads_up_to(meta, xid, first)
            last = xid
            entries.append((_fmt(xid), _decode_pairs(data, key)))
            if not noack:
                b.put(pel + _XID.pack(*xid), delivery)
            if limit is not None and len(entries) >= limit:
                break
        if entries:
            self._put_group(b, name, group, Group(last, read))
        return entries

    def _entries_after(self, pfx: bytes, after: ID, top: ID) -> Iterator[tuple[ID, bytes, bytes]]:
        """The entries (``pfx``: the stream's) with IDs above ``after``, in ID order, as (ID, engine key,
        record).

        ``top`` is the stream's last ID: no entry lies beyond it. Entries added in a burst
        have consecutive IDs (``ms-0``, ``ms-1``...), so the ID right after the last one
        delivered is first looked up directly: one index lookup where an ordered scan walks
        (and first brings up to date) the sorted index. The first ID missing that way
        switches to the scan, which finds the next entry wherever it is.
        """
        get = self.db._get_record  # (a missing key costs no exception, as it would in get)
        xid = after
        while xid < top:
            xid = (xid[0], xid[1] + 1) if xid[1] < _U64_MAX else (xid[0] + 1, 0)
            key = pfx + _XID.pack(*xid)
            found = get(key)
            if found is None:
                break
            yield xid, key, found[0]
        else:
            return
        n = len(pfx)
        for key, data in self.db.items(prefix=pfx, start=pfx + _XID.pack(*xid)):
            yield _entry_id(key, n), key, data

    def _deliver_history(
        self, b: Batch, name: bytes, group: bytes, consumer: bytes, after: ID, limit: int | None, now: int
    ) -> list[Entry]:
        if after == (_U64_MAX, _U64_MAX):
            return []
        start = (after[0], after[1] + 1) if after[1] < _U64_MAX else (after[0] + 1, 0)
        entries: list[Entry] = []
        for p in self._pel(name, group, start):
            if p.consumer != consumer:
                continue
            fields = self._entry(name, p.id)
            entries.append((_fmt(p.id), fields))
            if fields is not None:
                self._put_pending(b, name, group, p._replace(delivered=now, count=p.count + 1))
            if limit is not None and len(entries) >= limit:
                break
        return entries

    # ---------------------------------------------------------------- XACK

    def xack(self, name: Name, group: Name, *ids: Name) -> int:
        """Acknowledge entries: remove them from the group's pending entries; how many were pending."""
        name, group = _b(name), _b(group)
        if not ids:
            raise wrong_arity("xack")
        db = self.db
        with db.locked():
            meta = self._stream(name)
            if meta is None or self._group(name, group) is None:
                return 0
            parsed = [_strict_id(i) for i in ids]
            with db.batch() as b:
                return len(self._delete_ids(b, _pel_prefix(name, group), parsed))

    # ------------------------------------------------------------ XPENDING

    def xpending(
        self, name: Name, group: Name
    ) -> tuple[int, bytes | None, bytes | None, list[tuple[bytes, int]]]:
        """The group's pending entries in summary: ``(count, lowest ID, highest ID, [(consumer, count)])``."""
        name, group = _b(name), _b(group)
        self._existing_group(name, group)
        pel = self._pel(name, group)
        if not pel:
            return 0, None, None, []
        per = Counter(p.consumer for p in pel)
        return len(pel), _fmt(pel[0].id), _fmt(pel[-1].id), sorted(per.items())

    def xpending_range(
        self,
        name: Name,
        group: Name,
        min: Name,
        max: Name,
        count: int,
        consumer: Name | None = None,
        idle: int | None = None,
        *,
        consumername: Name | None = None,
    ) -> list[tuple[bytes, bytes, int, int]]:
        """Pending entries between two IDs (``-``, ``+``, ``(`` exclusive), at most ``count``:
        ``[(id, consumer, ms since last delivery, deliveries)]``, only those idle ``idle`` ms or more
        (of ``consumer``'s only, which redis-py names ``consumername``).
        """
        if consumername is not None:
            if consumer is not None:
                raise InvalidArgumentError("xpending_range() takes consumer or consumername, not both")
            consumer = consumername
        name, group = _b(name), _b(group)
        lo = _range_id(_b(min), low=True)
        hi = _range_id(_b(max), low=False)
        self._existing_group(name, group)
        count, idle = parse_index(count), None if idle is None else parse_index(idle)
        if count <= 0:
            return []
        who = None if consumer is None else _b(consumer)
        now = _now()
        out = []
        for p in self._pel(name, group, lo, hi):
            if who is not None and p.consumer != who:
                continue
            if idle and now - p.delivered < idle:
                continue
            elapsed = now - p.delivered
            out.append((_fmt(p.id), p.consumer, elapsed if elapsed > 0 else 0, p.count))
            if len(out) >= count:
                break
        return out

    # ------------------------------------------------------ XCLAIM, XAUTOCLAIM

    @_name_limit(T_STREAM)
    def xclaim(
        self,
        name: Name,
        group: Name,
        consumer: Name,
        min_idle_time: int,
        ids: Name | Iterable[Name],
        idle: int | None = None,
        time: int | None = None,
        retrycount: int | None = None,
        force: bool = False,
        justid: bool = False,
        lastid: Name | None = None,
    ) -> list[Any]:
        """Take pending entries idle for ``min_idle_time`` ms or more over to ``consumer``.

        Returns the claimed entries ``(id, fields)``, or their IDs with ``justid``
        (which also leaves the delivery count alone). Pending entries deleted from
        the stream are dropped from the PEL. ``idle``/``time`` set the new delivery
        time, ``retrycount`` the delivery count, ``force`` claims IDs not yet pending,
        ``lastid`` moves the group's last delivered ID forward.
        """
        name, group, consumer = _b(name), _b(group), _b(consumer)
        parsed = [_strict_id(i) for i in _name_list(ids)]  # (one ID may be given as a str)
        last_claim = None if lastid is None else _strict_id(lastid)
        min_idle = max(0, parse_index(min_idle_time))
        idle, time, retrycount = (None if n is None else parse_index(n) for n in (idle, time, retrycount))
        db = self.db
        with db.locked():
            _, g = self._existing_group(name, group)
            now = _now()
            when = now if idle is None else now - idle
            if time is not None:
                when = time
            if when < 0 or when > now:
                when = now
            claimed: list[Any] = []
            with db.batch() as b:
                if last_claim is not None and last_claim > g.last:
                    self._put_group(b, name, group, g._replace(last=last_claim))
                pel_pfx = _pel_prefix(name, group)
                done: dict[ID, Pending] = {}  # claimed by this call (an ID may be given twice)
                for xid in parsed:
                    p = done[xid] if xid in done else self._pending(name, group, xid)
                    fields = self._entry(name, xid)
                    if fields is None:
                        if p is not None:
                            b.delete(pel_pfx + _XID.pack(*xid))
                        continue
                    fresh = p is None
                    if p is None:
                        if not force:
                            continue
                        p = Pending(xid, consumer, now, 1)
                    if not fresh and min_idle and now - p.delivered < min_idle:
                        continue
                    n = retrycount if retrycount is not None and retrycount >= 0 else p.count + (not justid)
                    done[xid] = Pending(xid, consumer, when, n)
                    self._put_pending(b, name, group, done[xid])
                    claimed.append(_fmt(xid) if justid else (_fmt(xid), fields))
                self._touch_consumer(b, name, group, consumer, now, seen=True, active=bool(claimed))
        return claimed

    @_name_limit(T_STREAM)
    def xautoclaim(
        self,
        name: Name,
        group: Name,
        consumer: Name,
        min_idle_time: int,
        start: Name = b"0-0",
        count: int | None = 100,
        justid: bool = False,
        *,
        start_id: Name | None = None,
    ) -> tuple[bytes, list[Any], list[bytes]]:
        """Claim up to ``count`` pending entries idle ``min_idle_time`` ms or more, from ``start`` on
        (``start_id``, redis-py's name for it).

        Returns ``(cursor, claimed, deleted)``: the ID to continue from (``0-0``: the
        end was reached), the claimed entries (IDs with ``justid``) and the IDs that
        were pending but deleted from the stream (now dropped from the PEL).
        """
        if start_id is not None:
            if _b(start) != b"0-0":
                raise InvalidArgumentError("xautoclaim() takes start or start_id (the same), not both")
            start = start_id
        name, group, consumer = _b(name), _b(group), _b(consumer)
        lo = _range_id(_b(start), low=True)
        count = 100 if count is None else parse_index(count)  # (None: redis-py's "no COUNT")
        if count < 1:
            raise CommandError("ERR COUNT must be > 0")
        min_idle = max(0, parse_index(min_idle_time))
        db = self.db
        with db.locked():
            self._existing_group(name, group)
            now = _now()
            pel = self._pel(name, group, lo)
            attempts = count * 10
            pos = 0
            claimed: list[Any] = []
            deleted: list[bytes] = []
            pel_pfx = _pel_prefix(name, group)
            with db.batch() as b:
                while attempts and count and pos < len(pel):
                    attempts -= 1
                    p = pel[pos]
                    pos += 1
                    fields = self._entry(name, p.id)
                    if fields is None:
                        b.delete(pel_pfx + _XID.pack(*p.id))
                        deleted.append(_fmt(p.id))
                        count -= 1
                        continue
                    if min_idle and now - p.delivered < min_idle:
                        continue
                    self._put_pending(b, name, group, Pending(p.id, consumer, now, p.count + (not justid)))
                    claimed.append(_fmt(p.id) if justid else (_fmt(p.id), fields))
                    count -= 1
                self._touch_consumer(b, name, group, consumer, now, seen=True, active=bool(claimed))
            cursor = _fmt(pel[pos].id) if pos < len(pel) else b"0-0"
        return cursor, claimed, deleted

    # --------------------------------------------------------------- XINFO

    def require_stream(self, name: Name) -> StreamMeta:
        """The stream's metadata; Redis's "no such key" error if it is missing, WRONGTYPE if not a stream."""
        meta = self._stream(_b(name))
        if meta is None:
            raise CommandError("ERR no such key")
        return meta

    def xinfo_stream(self, name: Name, full: bool = False, count: int = 10) -> dict[str, Any]:
        """What XINFO STREAM reports: length, IDs, counters, groups, first and last entries.

        With ``full``: up to ``count`` entries (0: all) and every group with its pending
        entries and consumers. ``radix-tree-keys`` and ``radix-tree-nodes`` describe
        Redis's memory layout; they are reported as the number of 100-entry blocks the
        stream would take there.
        """
        name = _b(name)
        meta = self.require_stream(name)
        blocks = math.ceil(meta.count / 100)
        first_id = self._first_id(name)
        info: dict[str, Any] = {
            "length": meta.count,
            "radix-tree-keys": blocks,
            "radix-tree-nodes": blocks + 1 if blocks else 1,
            "last-generated-id": _fmt(meta.last),
            "max-deleted-entry-id": _fmt(meta.max_deleted),
            "entries-added": meta.added,
            "recorded-first-entry-id": _fmt(first_id),
        }
        if not full:
            first = self._xrange(name, b"-", b"+", 1, reverse=False)
            last = self._xrange(name, b"-", b"+", 1, reverse=True)
            info["groups"] = len(self._groups(name))
            info["first-entry"] = first[0] if first else None
            info["last-entry"] = last[0] if last else None
            return info
        count = parse_index(count)  # a float or a dict raised TypeError
        if count < 0:
            count = 10
        limit = count or None
        info["entries"] = self._xrange(name, b"-", b"+", limit, reverse=False)
        groups = []
        for group, g in self._groups(name).items():
            pel = self._pel(name, group)
            by_consumer: dict[bytes, list[Pending]] = {}
            for p in pel:
                by_consumer.setdefault(p.consumer, []).append(p)
            consumers = []
            for cname, (seen, active) in self._consumers(name, group).items():
                mine = by_consumer.get(cname, [])
                consumers.append(
                    {
                        "name": cname,
                        "seen-time": seen,
                        "active-time": active,
                        "pel-count": len(mine),
                        "pending": [(_fmt(p.id), p.delivered, p.count) for p in mine[:limit]],
                    }
                )
            groups.append(
                {
                    "name": group,
                    "last-delivered-id": _fmt(g.last),
                    "entries-read": None if g.entries_read == UNKNOWN else g.entries_read,
                    "lag": self._lag(meta, g, first_id),
                    "pel-count": len(pel),
                    "pending": [(_fmt(p.id), p.consumer, p.delivered, p.count) for p in pel[:limit]],
                    "consumers": consumers,
                }
            )
        info["groups"] = groups
        return info

    def xinfo_groups(self, name: Name) -> list[dict[str, Any]]:
        """What XINFO GROUPS reports for each group of a stream, in name order."""
        name = _b(name)
        meta = self.require_stream(name)
        first_id = self._first_id(name)
        out = []
        for group, g in self._groups(name).items():
            out.append(
                {
                    "name": group,
                    "consumers": len(self._consumers(name, group)),
                    "pending": len(self._pel(name, group)),
                    "last-delivered-id": _fmt(g.last),
                    "entries-read": None if g.entries_read == UNKNOWN else g.entries_read,
                    "lag": self._lag(meta, g, first_id),
                }
            )
        return out

    def xinfo_consumers(self, name: Name, group: Name) -> list[dict[str, Any]]:
        """What XINFO CONSUMERS reports: each consumer's pending count, idle and inactive ms."""
        name, group = _b(name), _b(group)
        self.require_stream(name)
        if self._group(name, group) is None:
            raise _nogroup_for_key(name, group)
        per = Counter(p.consumer for p in self._pel(name, group))
        now = _now()
        return [
            {
                "name": cname,
                "pending": per.get(cname, 0),
                "idle": max(0, now - seen),
                "inactive": UNKNOWN if active == UNKNOWN else max(0, now - active),
            }
            for cname, (seen, active) in self._consumers(name, group).items()
        ]
