"""DUMP and RESTORE: a key's value as Redis's serialized payload, and back.

The payload format is Redis's (see :mod:`.rdb`), so a value dumped by redis-server 7.0 restores
here with the same content, and one dumped here restores into redis-server 7.0.
"""

from __future__ import annotations

from kv_backend.db import Batch
from kv_backend.structures import rdb
from kv_backend.structures.errors import CommandError
from kv_backend.structures.groups import (
    _CONS,
    _GRP,
    _NACK,
    StreamGroups,
    _consumer_prefix,
    _pel_prefix,
)
from kv_backend.structures.keyspace import _check_group_fits, _name_limit
from kv_backend.structures.layout import (
    _CNT,
    _I64_MAX,
    _LST,
    GROUP,
    HASH,
    LIST,
    META,
    SET,
    STREAM,
    T_HASH,
    T_LIST,
    T_SET,
    T_STREAM,
    T_STRING,
    T_ZSET,
    ZIDX,
    ZMEM,
    Name,
    _b,
    _idx,
    _lp,
    _time,
    decode_score,
    encode_score,
)
from kv_backend.structures.parsing import parse_index
from kv_backend.structures.streams import _XID, _XMETA, _decode_pairs, _encode_pairs, _entry_id

BUSYKEY = "BUSYKEY Target key name already exists."
BAD_TTL = "ERR Invalid TTL value, must be >= 0"

_TAGS = {"string": T_STRING, "list": T_LIST, "set": T_SET, "hash": T_HASH, "zset": T_ZSET, "stream": T_STREAM}


class Dumps(StreamGroups):
    """DUMP and RESTORE for :class:`~kv_backend.structures.Structures`."""

    def dump(self, name: Name) -> bytes | None:
        """The key's value serialized as Redis's DUMP serializes it (None if the key is missing).

        Strings, lists, sets, hashes and sorted sets are written in Redis's plain encodings,
        streams as listpacks with their consumer groups, pending entries and consumers; the
        TTL is not part of the payload (as in Redis).
        """
        name = _b(name)
        value = self._read_consistent(lambda: self._dump_value(name))  # one view of its records
        return None if value is None else rdb.dump(value)

    def _dump_value(self, name: bytes) -> rdb.Value | None:
        db = self.db
        found = self._whole_record(name)
        if found is None:
            return None
        meta = found[0]
        tag = meta[0]
        if tag == T_STRING:
            return rdb.Value("string", meta[1:])
        if tag == T_STREAM:
            return rdb.Value("stream", self._dump_stream(name))
        prefix = {T_LIST: LIST, T_SET: SET, T_HASH: HASH, T_ZSET: ZMEM}[tag] + _lp(name)
        n = len(prefix)
        if tag == T_LIST:  # the elements LRANGE reads, not any record another front end put under the prefix
            head, tail = _LST.unpack_from(meta, 1)[:2]  # (checked by _whole_record)
            get = db.get
            return rdb.Value("list", [get(prefix + _idx(i), b"") for i in range(head, tail)])
        items = list(db.items(prefix=prefix))
        self._check_members(name, meta, len(items))
        if tag == T_SET:
            return rdb.Value("set", [key[n:] for key, _ in items])
        if tag == T_HASH:
            return rdb.Value("hash", [(key[n:], value) for key, value in items])
        return rdb.Value("zset", [(key[n:], decode_score(value, key)) for key, value in items])

    def _dump_stream(self, name: bytes) -> rdb.Stream:
        meta = self._stream(name)
        assert meta is not None
        pfx = STREAM + _lp(name)
        n = len(pfx)
        entries = [(_entry_id(key, n), _decode_pairs(data, key)) for key, data in self.db.items(prefix=pfx)]
        stream = rdb.Stream(entries, meta.last, meta.added, meta.max_deleted)
        for group, g in self._groups(name).items():
            pending = [rdb.Pending(p.id, p.consumer, p.delivered, p.count) for p in self._pel(name, group)]
            consumers = [(c, seen, active) for c, (seen, active) in self._consumers(name, group).items()]
            stream.groups.append(rdb.Group(group, g.last, g.entries_read, pending, consumers))
        return stream

    @_name_limit(None)
    def restore(
        self,
        name: Name,
        ttl: int,
        payload: bytes,
        replace: bool = False,
        absttl: bool = False,
        idletime: int | None = None,
        frequency: int | None = None,
    ) -> bool:
        """Create a key from a DUMP payload (of this store or of redis-server), as RESTORE does.

        ``ttl`` is in milliseconds: 0 for no expiry, else the time to live or, with ``absttl``,
        the Unix time in ms it expires at. Raises Redis's BUSYKEY error if the key exists (unless
        ``replace``), its errors for a negative ``ttl`` and for a payload that cannot be read.
        Returns False if the expiry time is already past: then no key is created (and, with
        ``replace``, the existing one is deleted), as in Redis. The key and all its records are
        written in one batch: a crash or an error leaves the old value (or no key), never part
        of the new one. ``idletime`` and ``frequency`` (IDLETIME, FREQ, one of them) are checked
        as Redis checks them, then ignored: no access times or frequencies are kept.
        """
        if idletime is not None or frequency is not None:  # (the options before the key, as Redis)
            if idletime is not None and frequency is not None:
                raise CommandError("ERR syntax error")
            if idletime is not None and parse_index(idletime) < 0:
                raise CommandError("ERR Invalid IDLETIME value, must be >= 0")
            if frequency is not None and not 0 <= parse_index(frequency) <= 255:
                raise CommandError("ERR Invalid FREQ value, must be >= 0 and <= 255")
        name = _b(name)
        db = self.db
        if not replace and META + name in db:  # as Redis: before the TTL and payload are looked at
            raise CommandError(BUSYKEY)
        ttl = parse_index(ttl)  # (a NaN stored the key already expired)
        if ttl < 0:
            raise CommandError(BAD_TTL)
        value = rdb.load(_b(payload))  # read outside the lock: a large payload takes a while
        expiry = 0.0
        if ttl:
            at_ms = ttl if absttl else int(_time() * 1000) + ttl
            # Redis adds the current time in a signed 64-bit number: past its end, the time wraps
            # round to a negative one, which has already passed
            expiry = at_ms / 1000 if at_ms <= _I64_MAX else 0.0
        with db.locked():
            old = self._meta_value(name)
            if old is not None and not replace:
                raise CommandError(BUSYKEY)
            if ttl and (expiry == 0.0 or expiry <= _time()):
                if old is not None:
                    self.delete(name)
                return False
            with db.batch() as b:
                self._purge_all(b, name)
                meta = self._write_value(b, name, value)
                b.put(META + name, self._replacing(meta, old), expires_at=expiry)
        return True

    def _write_value(self, b: Batch, name: bytes, value: rdb.Value) -> bytes:
        """Put the member records of ``value`` in the batch ``b``; return its metadata."""
        kind, data = value
        put = b.put
        if kind == "string":
            meta: bytes = b"s" + data
            return meta
        if kind == "list":
            pfx = LIST + _lp(name)
            for i, element in enumerate(data):
                put(pfx + _idx(i), element)
            return b"l" + _LST.pack(0, len(data), 1)
        if kind == "set":
            pfx = SET + _lp(name)
            for member in data:
                put(pfx + member, b"")
        elif kind == "hash":
            pfx = HASH + _lp(name)
            for field, v in data:
                put(pfx + field, v)
        elif kind == "zset":
            mpfx, ipfx = ZMEM + _lp(name), ZIDX + _lp(name)
            for member, score in data:
                enc = encode_score(score)
                put(mpfx + member, enc)
                put(ipfx + enc + member, b"")
        else:
            return self._write_stream(b, name, data)
        return bytes([_TAGS[kind]]) + _CNT.pack(len(data), 1)

    @staticmethod
    def _write_stream(b: Batch, name: bytes, s: rdb.Stream) -> bytes:
        put = b.put
        pfx = STREAM + _lp(name)
        for xid, pairs in s.entries:
            put(pfx + _XID.pack(*xid), _encode_pairs(pairs))
        for g in s.groups:
            _check_group_fits(name, g.name)
            put(GROUP + _lp(name) + g.name, _GRP.pack(*g.last, g.entries_read))
            cpfx, ppfx = _consumer_prefix(name, g.name), _pel_prefix(name, g.name)
            for consumer, seen, active in g.consumers:
                put(cpfx + consumer, _CONS.pack(seen, active))
            for p in g.pending:
                put(ppfx + _XID.pack(*p.id), _NACK.pack(p.delivered, p.count) + p.consumer)
        return b"x" + _XMETA.pack(len(s.entries), 1, *s.last, s.added, *s.max_deleted)
