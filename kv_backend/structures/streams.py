"""Redis streams: entries in ID order, with XADD trimming and XREAD."""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from kv_backend.db import Batch
from kv_backend.structures.errors import CommandError, ForeignRecordError, c_string, wrong_arity
from kv_backend.structures.keyspace import Keyspace, _block_seconds, _name_limit
from kv_backend.structures.layout import (
    _LEN,
    META,
    STREAM,
    T_STREAM,
    Name,
    NameT,
    Value,
    _b,
    _lp,
    _pairs,
    counts,
    foreign_member,
)
from kv_backend.structures.parsing import parse_index, parse_read_count

_XMETA = struct.Struct(">QQQQQQQ")  # count, version, last ID, entries added, largest deleted ID
_XMETA_V1 = struct.Struct(">QQQQ")  # count, version, last ID (streams written before consumer groups)
_XID = struct.Struct(">QQ")  # a stream entry ID: milliseconds, sequence
_U64_MAX = (1 << 64) - 1
BAD_STREAM_ID = "ERR Invalid stream ID specified as stream command argument"
ID_TOO_SMALL = "ERR The ID specified in XADD is equal or smaller than the target stream top item"


class StreamMeta(NamedTuple):
    """A stream's metadata record, decoded."""

    count: int  # type: ignore[assignment]  # entries in the stream now (shadows tuple.count on purpose)
    version: int  # bumped by every write (WATCH)
    last: tuple[int, int]  # the last ID ever given (XADD never goes below it)
    expiry: float  # absolute expiry time, 0.0 for none
    added: int  # entries ever added (XINFO's entries-added; consumer group lag)
    max_deleted: tuple[int, int]  # the largest ID XDEL removed (0-0: none)


class Streams(Keyspace):
    """The stream commands of :class:`~kv_backend.structures.Structures`."""

    def _stream(self, name: bytes) -> StreamMeta | None:
        """The metadata of a stream, None if it is missing; WRONGTYPE for another type."""
        found = self._meta(name, T_STREAM)
        if found is None:
            return None
        meta, expiry = found
        if counts(meta) is None:
            raise ForeignRecordError(name)
        if len(meta) == 1 + _XMETA_V1.size:
            count, version, ms, seq = _XMETA_V1.unpack_from(meta, 1)
            return StreamMeta(count, version, (ms, seq), expiry, count, (0, 0))
        count, version, ms, seq, added, del_ms, del_seq = _XMETA.unpack_from(meta, 1)
        return StreamMeta(count, version, (ms, seq), expiry, added, (del_ms, del_seq))

    @_name_limit(T_STREAM)
    def xadd(
        self,
        name: Name,
        fields: Mapping[NameT, Value] | Iterable[tuple[Name, Value]],
        id: Name = b"*",
        maxlen: int | None = None,
        approximate: bool = False,
        nomkstream: bool = False,
        minid: Name | None = None,
        limit: int | None = None,
    ) -> bytes | None:
        """Append an entry to a stream; return its ID (``b"ms-seq"``; None: ``nomkstream`` and no stream).

        ``id`` is ``*`` (the time now, made unique), ``ms-*`` or an explicit ID
        above the stream's last one. ``maxlen``/``minid`` then trim the oldest
        entries (exactly, also with ``approximate``, which Redis may honour
        less strictly; ``limit`` caps how many go).
        """
        name = _b(name)
        entry = _encode_pairs(_pairs(fields, "fields"))
        if not entry:
            raise wrong_arity("xadd")
        trim = _trim_spec(maxlen, minid, approximate, limit)
        raw_id = _b(id)
        check_add_id(raw_id)  # as Redis: a bad ID is reported before the key's type
        db = self.db
        with db.locked():
            found = self._stream(name)
            fresh = found is None
            if found is None:
                if nomkstream:
                    return None
                found = StreamMeta(0, 0, (0, 0), 0.0, 0, (0, 0))
            new = _next_stream_id(raw_id, found.last)
            pfx = STREAM + _lp(name)
            with db.batch() as b:
                if fresh:
                    self._purge(b, name, T_STREAM)
                b.put(pfx + _XID.pack(*new), entry)
                count = found.count + 1
                if trim is not None:
                    count -= self._trim_stream(b, pfx, count, trim, new)
                meta = StreamMeta(count, found.version, new, found.expiry, found.added + 1, found.max_deleted)
                self._put_stream(b, name, meta)
            return b"%d-%d" % new

    def _put_stream(self, b: Batch, name: bytes, meta: StreamMeta) -> None:
        """Write a stream's metadata with its version bumped (an empty stream stays, as in Redis)."""
        b.put(
            META + name,
            b"x" + _XMETA.pack(meta.count, meta.version + 1, *meta.last, meta.added, *meta.max_deleted),
            expires_at=meta.expiry,
        )

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
            if len(key) != len(pfx) + 16:  # no entry's: it would go as one, the count one short
                raise foreign_member(key)
            b.delete(key)
        return len(goners)

    def xlen(self, name: Name) -> int:
        """The number of entries in a stream (0 if it is missing)."""
        found = self._stream(_b(name))
        return 0 if found is None else found.count

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
        count = None if count is None else parse_index(count)
        if self._stream(name) is None or lo > hi or (count is not None and count <= 0):
            return []
        pfx = STREAM + _lp(name)
        db = self.db
        out: list[tuple[bytes, list[tuple[bytes, bytes]]]] = []
        keys = db.keys(prefix=pfx, start=pfx + _XID.pack(*(hi if reverse else lo)), reverse=reverse)
        n = len(pfx)
        for key in keys:
            if len(key) != n + 16:
                raise foreign_member(key)
            xid = _XID.unpack_from(key, n)
            if (xid < lo) if reverse else (xid > hi):
                break
            data = db.get(key)
            if data is None:
                continue
            out.append((b"%d-%d" % xid, _decode_pairs(data, key)))
            if count is not None and len(out) >= count:
                break
        return out

    def xread(
        self, streams: Mapping[NameT, Name], count: int | None = None, block: int | None = None
    ) -> list[tuple[bytes, list[tuple[bytes, list[tuple[bytes, bytes]]]]]]:
        """Entries added after the given IDs (``$``: after the stream's last entry), per stream.

        Returns ``[(name, entries)]`` for the streams that have such entries, in the
        order given, with at most ``count`` entries each (None, 0 or negative: all, as in
        Redis). With ``block`` (milliseconds, 0: for ever, as in XREAD and redis-py) it waits
        for an entry that any process adds, and returns ``[]`` if none comes in time.
        """
        count = parse_read_count(count)
        positions = self.stream_positions(streams)
        if not positions:  # (Redis's answer to XREAD STREAMS with no stream)
            raise wrong_arity("xread")
        if block is None:
            return self.xread_after(positions, count)
        timeout = _block_seconds(block)
        return self._wait_for(lambda first: self.xread_after(positions, count) or None, timeout) or []

    def stream_positions(
        self, streams: Mapping[NameT, Name] | Iterable[tuple[Name, Name]]
    ) -> list[tuple[bytes, tuple[int, int]]]:
        """The ID each stream is read after: the ID given, or for ``$`` its last ID now.

        As Redis, streams are taken in order, each key's type checked before its ID is read.
        """
        positions: list[tuple[bytes, tuple[int, int]]] = []
        for name, raw in _pairs(streams, "streams"):
            key, raw_id = _b(name), _b(raw)
            found = self._stream(key)
            if c_string(raw_id) == b"$":
                positions.append((key, (0, 0) if found is None else found.last))
            elif c_string(raw_id) == b">":
                raise CommandError(
                    "ERR The > ID can be specified only when calling XREADGROUP using the GROUP "
                    "<group> <consumer> option."
                )
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
            entries = self._xrange(name, b"(%d-%d" % (ms, seq), b"+", parse_read_count(count), reverse=False)
            if entries:
                out.append((name, entries))
        return out

    def xdel(self, name: Name, *ids: Name) -> int:
        """Delete entries by ID; return how many existed (the stream stays, even empty)."""
        name = _b(name)
        if not ids:
            raise wrong_arity("xdel")
        db = self.db
        with db.locked():
            found = self._stream(name)
            if found is None:
                return 0  # as Redis: the key is looked up before the IDs are read
            parsed = [_parse_stream_id(_b(i), 0) for i in ids]
            with db.batch() as b:
                gone = self._delete_ids(b, STREAM + _lp(name), parsed)
                removed = len(gone)
                if removed:
                    max_deleted = max(found.max_deleted, *gone)
                    meta = found._replace(count=found.count - removed, max_deleted=max_deleted)
                    self._put_stream(b, name, meta)
            return removed

    def _delete_ids(self, b: Batch, pfx: bytes, ids: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Delete the records ``pfx + ID`` that exist (each ID once); return their IDs."""
        db = self.db
        gone = []
        for xid in dict.fromkeys(ids):
            key = pfx + _XID.pack(*xid)
            if key in db:
                b.delete(key)
                gone.append(xid)
        return gone

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
            with db.batch() as b:
                removed = self._trim_stream(b, STREAM + _lp(name), found.count, trim)
                if removed:
                    self._put_stream(b, name, found._replace(count=found.count - removed))
            return removed


def _encode_pairs(pairs: Iterable[tuple[Name, Value]]) -> bytes:
    """An entry's record: each field and value (as :func:`_b` encodes them) after its length."""
    pack = _LEN.pack
    out: list[bytes] = []
    for f, v in pairs:
        fb, vb = _b(f), _b(v)
        out += (pack(len(fb)), fb, pack(len(vb)), vb)
    return b"".join(out)


def _decode_pairs(data: bytes, record: bytes) -> list[tuple[bytes, bytes]]:
    """The fields and values of the stream entry ``data`` (the value of the engine key ``record``);
    ForeignRecordError where its lengths do not add up to it (another front end wrote the record)."""
    out = []
    pos = 0
    n = len(data)
    try:
        while pos < n:
            (fl,) = _LEN.unpack_from(data, pos)
            f = data[pos + 4 : pos + 4 + fl]
            pos += 4 + fl
            (vl,) = _LEN.unpack_from(data, pos)
            out.append((f, data[pos + 4 : pos + 4 + vl]))
            pos += 4 + vl
    except struct.error:
        raise foreign_member(record) from None
    if pos != n:
        raise foreign_member(record)
    return out


def _entry_id(key: bytes, n: int) -> tuple[int, int]:
    """The entry ID that the engine key ``key`` (of a stream entry or a pending entry) holds after its
    ``n`` bytes of prefix; ForeignRecordError where it holds not just 16 bytes there (another front end
    wrote it)."""
    if len(key) != n + 16:
        raise foreign_member(key)
    xid: tuple[int, int] = _XID.unpack_from(key, n)
    return xid


#: White space C's ``isspace`` knows (in the C locale), which ``strtoull`` skips.
_C_SPACE = b" \t\n\v\f\r"


def _id_text(raw: bytes) -> bytes:
    """An ID argument as Redis reads it: copied to a 128-byte buffer (more than 127 bytes is an
    invalid ID), then read as a C string, up to its first NUL byte."""
    if len(raw) > 127:
        raise CommandError(BAD_STREAM_ID)
    return c_string(raw)


def _id_part(text: bytes) -> int:
    """One part of a stream ID read as Redis's ``string2ull`` reads it: a canonical 64-bit integer
    (refused when negative), else as C ``strtoull`` (leading white space, one ``+`` or ``-`` sign,
    which negates modulo 2**64, then digits to the end, below 2**64)."""
    body = text.lstrip(_C_SPACE)
    sign = body[:1] if body[:1] in (b"+", b"-") else b""
    digits = body[len(sign) :]
    if not digits.isdigit():  # also no digit at all
        raise CommandError(BAD_STREAM_ID)
    n = int(digits)
    if n > _U64_MAX:
        raise CommandError(BAD_STREAM_ID)
    if sign == b"-":
        if text == body and digits[0] != 48 and n <= 1 << 63:  # string2ll reads it: a negative number
            raise CommandError(BAD_STREAM_ID)
        return -n % (1 << 64)
    return n


def _parse_stream_id(raw: bytes, missing_seq: int) -> tuple[int, int]:
    """``ms-seq`` (or ``ms``, completed with ``missing_seq``) as a pair of u64; Redis's error otherwise.

    Each part is read as Redis reads it (:func:`_id_part`: ``+1``, `` 1`` and ``1--0`` are IDs), the
    whole as a C string of at most 127 bytes; the first ``-`` separates the parts.
    """
    ms_text, sep, seq_text = _id_text(raw).partition(b"-")
    return _id_part(ms_text), (_id_part(seq_text) if sep else missing_seq)


def _parse_add_id(raw: bytes) -> tuple[int, int | None] | None:
    """XADD's ID: None for ``*``, ``(ms, None)`` for ``ms-*`` (a ``*`` after the first ``-``),
    else the ID, each read as Redis reads it (as C strings)."""
    if c_string(raw) == b"*":
        return None
    ms_text, sep, seq_text = _id_text(raw).partition(b"-")
    if sep and seq_text == b"*":
        return _id_part(ms_text), None
    return _parse_stream_id(raw, 0)


def _range_id(raw: bytes, low: bool) -> tuple[int, int]:
    """A bound of XRANGE: ``-``, ``+``, an ID, ``ms`` (the whole millisecond), ``(ID`` exclusive."""
    exclusive = len(raw) > 1 and raw.startswith(b"(")
    if exclusive:
        raw = raw[1:]  # then read strictly: "(-" and "(+" are no IDs
    elif _id_text(raw) == b"-":
        return (0, 0)
    elif _id_text(raw) == b"+":
        return (_U64_MAX, _U64_MAX)
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


def check_stream_id(raw: bytes) -> None:
    """Refuse what is not an ``ms[-seq]`` stream ID, with Redis's error (a MINID threshold, say)."""
    _parse_stream_id(raw, 0)


def check_add_id(raw: bytes, syntax_only: bool = False) -> None:
    """Refuse an XADD ID that is not ``*``, ``ms-*`` or an ID (above 0-0), whatever the stream holds."""
    if _parse_add_id(raw) == (0, 0) and not syntax_only:
        raise CommandError("ERR The ID specified in XADD must be greater than 0-0")


def _next_stream_id(raw: bytes, last: tuple[int, int]) -> tuple[int, int]:
    """The ID XADD gives a new entry: ``*``, ``ms-*`` or explicit, always above ``last``.

    ``raw`` has passed :func:`check_add_id`.
    """
    last_ms, last_seq = last
    if last == (_U64_MAX, _U64_MAX):  # as Redis, whatever ID was asked for
        raise CommandError("ERR The stream has exhausted the last possible ID, unable to add more items")
    asked = _parse_add_id(raw)
    if asked is None:
        now = int(time.time() * 1000)
        if now > last_ms:
            return now, 0
        if last_seq == _U64_MAX:
            return last_ms + 1, 0
        return last_ms, last_seq + 1
    ms, seq = asked
    if seq is None:
        if ms > last_ms:
            return ms, 0
        if ms == last_ms:
            if last_seq < _U64_MAX:
                return ms, last_seq + 1
            # Redis 7.0's wording when the sequence numbers of that millisecond are used up
            raise CommandError("ERR Elements are too large to be stored")
        raise CommandError(ID_TOO_SMALL)
    new = (ms, seq)  # above 0-0: check_add_id ran first
    if new <= last:
        raise CommandError(ID_TOO_SMALL)
    return new


def _trim_spec(
    maxlen: int | None, minid: Name | None, approximate: bool, limit: int | None
) -> tuple[str, Any, int | None] | None:
    """Check XADD/XTRIM trimming options: ``("maxlen", n, limit)``, ``("minid", id, limit)`` or None."""
    if maxlen is not None and minid is not None:
        raise CommandError("ERR syntax error, MAXLEN and MINID options at the same time are not compatible")
    maxlen = None if maxlen is None else parse_index(maxlen)
    limit = None if limit is None else parse_index(limit)
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
