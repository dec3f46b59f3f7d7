"""Redis's DUMP payload format: one value in RDB encoding, read and written in pure Python.

A payload (what DUMP answers and RESTORE takes) is an RDB object-type byte, the value in RDB
encoding, the RDB version as 2 little-endian bytes and the CRC-64 (Jones polynomial, reflected,
as Redis's ``crc64``) of everything before it, as 8 little-endian bytes. :func:`load` reads every
encoding redis-server 7.0 (RDB version 10) writes or still loads: strings (raw, integer or LZF
compressed), lists (plain, ziplist, quicklist of ziplists or listpacks), sets (plain, intset),
sorted sets (plain with text or binary scores, ziplist, listpack), hashes (plain, zipmap, ziplist,
listpack) and streams (listpacks, versions 1 and 2, with consumer groups and pending entries).
:func:`dump` writes the simplest encodings redis-server 7.0 loads: plain strings, lists, sets,
sorted sets (binary scores) and hashes, and streams as listpacks of up to 100 entries.

A payload that cannot be read raises :class:`~kv_backend.structures.errors.CommandError` with
Redis's texts (:data:`BAD_FORMAT`, :data:`BAD_FOOTER`), never a Python error from the parser.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kv_backend.structures.errors import CommandError, NotAFloatError
from kv_backend.structures.parsing import parse_float

#: The RDB version kvb writes and the newest it reads (redis-server 7.0's).
RDB_VERSION = 10

BAD_FORMAT = "ERR Bad data format"
BAD_FOOTER = "ERR DUMP payload version or checksum are wrong"

# RDB object types
T_STRING, T_LIST, T_SET, T_ZSET, T_HASH, T_ZSET_2 = 0, 1, 2, 3, 4, 5
T_HASH_ZIPMAP, T_LIST_ZIPLIST, T_SET_INTSET, T_ZSET_ZIPLIST, T_HASH_ZIPLIST = 9, 10, 11, 12, 13
T_LIST_QUICKLIST, T_STREAM_LISTPACKS, T_HASH_LISTPACK, T_ZSET_LISTPACK = 14, 15, 16, 17
T_LIST_QUICKLIST_2, T_STREAM_LISTPACKS_2 = 18, 19
#: The opcode before each library's code in a FUNCTION DUMP payload (RDB_OPCODE_FUNCTION2).
OPCODE_FUNCTION2 = 245
#: The opcode of Redis 7.0's release candidates (name, engine, description and code).
OPCODE_FUNCTION_PRE_GA = 246

_STREAM_SAMEFIELDS, _STREAM_DELETED = 2, 1
_STREAM_NODE_ENTRIES = 100  # entries per listpack kvb writes (Redis's stream-node-max-entries)
_U64 = 1 << 64

ID = tuple[int, int]


class Pending(NamedTuple):
    """One entry of a consumer group's pending entries list."""

    id: ID
    consumer: bytes
    delivered: int  # Unix ms of the last delivery
    count: int  # type: ignore[assignment]  # deliveries (the field shadows tuple.count on purpose)


@dataclass
class Group:
    """A stream consumer group: its last delivered ID, entries read (-1: not known), pending
    entries (in ID order) and consumers ``(name, seen time, active time)`` in name order."""

    name: bytes
    last: ID
    entries_read: int
    pending: list[Pending] = field(default_factory=list)
    consumers: list[tuple[bytes, int, int]] = field(default_factory=list)


@dataclass
class Stream:
    """A stream's entries ``(id, [(field, value)...])`` in ID order, its counters and groups."""

    entries: list[tuple[ID, list[tuple[bytes, bytes]]]]
    last: ID
    added: int
    max_deleted: ID
    groups: list[Group] = field(default_factory=list)


class Value(NamedTuple):
    """A decoded value: ``kind`` is ``string`` (``data``: bytes), ``list`` or ``set`` (a list of
    bytes), ``hash`` (``(field, value)`` pairs), ``zset`` (``(member, score)`` pairs) or
    ``stream`` (a :class:`Stream`)."""

    kind: str
    data: Any


# ------------------------------------------------------------------ checksum


def _crc64_table() -> list[int]:
    poly = 0x95AC9329AC4BC9B5  # Jones polynomial 0xad93d23594c935a9, bit-reversed
    table = []
    for n in range(256):
        crc = n
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc64_table()


def crc64(data: bytes, crc: int = 0) -> int:
    """Redis's CRC-64 of ``data`` (continuing from ``crc``); ``crc64(b"123456789")`` is
    ``0xe9c6d914c4b8d9ca``. Table-driven, one step per byte."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


def _footer(body: bytes) -> bytes:
    body += struct.pack("<H", RDB_VERSION)
    return body + struct.pack("<Q", crc64(body))


def check_footer(payload: bytes) -> bytes:
    """The body of a payload whose version and checksum are right (Redis's error otherwise)."""
    if len(payload) < 10:
        raise CommandError(BAD_FOOTER)
    version, crc = struct.unpack_from("<HQ", payload, len(payload) - 10)
    if version > RDB_VERSION or crc64(payload[:-8]) != crc:
        raise CommandError(BAD_FOOTER)
    return payload[:-10]


# ------------------------------------------------------------------ LZF


def lzf_decompress(data: bytes, size: int) -> bytes:
    """Undo LZF compression (as Redis compresses long strings); ``size`` is the expected length."""
    out = bytearray()
    pos, n = 0, len(data)
    while pos < n:
        ctrl = data[pos]
        pos += 1
        if ctrl < 32:  # a run of ctrl + 1 literal bytes
            end = pos + ctrl + 1
            if end > n:
                raise CommandError(BAD_FORMAT)
            out += data[pos:end]
            pos = end
            continue
        length = ctrl >> 5
        if length == 7:
            if pos >= n:
                raise CommandError(BAD_FORMAT)
            length += data[pos]
            pos += 1
        if pos >= n:
            raise CommandError(BAD_FORMAT)
        back = ((ctrl & 0x1F) << 8) + data[pos] + 1
        pos += 1
        length += 2
        start = len(out) - back
        if start < 0:
            raise CommandError(BAD_FORMAT)
        if back >= length:
            out += out[start : start + length]
        else:  # the copy overlaps what it writes: the last ``back`` bytes repeat
            chunk = out[start:]
            out += (chunk * (length // back + 1))[:length]
        if len(out) > size:
            raise CommandError(BAD_FORMAT)
    if len(out) != size:
        raise CommandError(BAD_FORMAT)
    return bytes(out)


# ------------------------------------------------------------------ reading


def _int_text(value: bytes | int) -> bytes:
    return b"%d" % value if isinstance(value, int) else value


class _Reader:
    """Reads RDB-encoded items from ``data`` (any overrun is Redis's "Bad data format")."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def raw(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise CommandError(BAD_FORMAT)
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise CommandError(BAD_FORMAT)
        self.pos += 1
        return self.data[self.pos - 1]

    def _length(self) -> tuple[int, bool]:
        """A length, or (with True) the special-encoding number of an encoded string."""
        first = self.byte()
        kind = first >> 6
        if kind == 0:
            return first & 0x3F, False
        if kind == 1:
            return ((first & 0x3F) << 8) | self.byte(), False
        if kind == 3:
            return first & 0x3F, True
        if first == 0x80:
            return struct.unpack(">I", self.raw(4))[0], False
        if first == 0x81:
            return struct.unpack(">Q", self.raw(8))[0], False
        raise CommandError(BAD_FORMAT)

    def length(self) -> int:
        n, encoded = self._length()
        if encoded:
            raise CommandError(BAD_FORMAT)
        return n

    def string(self) -> bytes:
        n, encoded = self._length()
        if not encoded:
            return self.raw(n)
        if n == 0:
            return b"%d" % struct.unpack("<b", self.raw(1))[0]
        if n == 1:
            return b"%d" % struct.unpack("<h", self.raw(2))[0]
        if n == 2:
            return b"%d" % struct.unpack("<i", self.raw(4))[0]
        if n == 3:
            compressed, size = self.length(), self.length()
            return lzf_decompress(self.raw(compressed), size)
        raise CommandError(BAD_FORMAT)

    def millis(self) -> int:
        ms: int = struct.unpack("<q", self.raw(8))[0]
        return ms

    def stream_id(self) -> ID:
        ms, seq = struct.unpack(">QQ", self.raw(16))
        return ms, seq

    def text_double(self) -> float:
        """A score of the old sorted-set encoding: a length byte (253-255: NaN, +inf, -inf), text."""
        n = self.byte()
        if n == 253:
            raise CommandError(BAD_FORMAT)  # a NaN score: Redis refuses it
        if n == 254:
            return math.inf
        if n == 255:
            return -math.inf
        return _score(self.raw(n))

    def binary_double(self) -> float:
        value: float = struct.unpack("<d", self.raw(8))[0]
        if math.isnan(value):
            raise CommandError(BAD_FORMAT)
        return value


def _score(text: bytes | int) -> float:
    if isinstance(text, int):
        return float(text)
    try:
        return parse_float(text, overflow=True)
    except NotAFloatError:
        raise CommandError(BAD_FORMAT) from None


_LP_INTS = {0xF1: (2, "<h"), 0xF2: (3, None), 0xF3: (4, "<i"), 0xF4: (8, "<q")}


def _backlen_size(n: int) -> int:
    return 1 if n <= 127 else 2 if n < 16383 else 3 if n < 2097151 else 4 if n < 268435455 else 5


def listpack_items(lp: bytes) -> list[bytes | int]:
    """The elements of a listpack, integers as ints."""
    if len(lp) < 7 or struct.unpack_from("<I", lp)[0] != len(lp) or lp[-1] != 0xFF:
        raise CommandError(BAD_FORMAT)
    out: list[bytes | int] = []
    pos, end = 6, len(lp) - 1
    while pos < end:
        b = lp[pos]
        item: bytes | int
        if b < 0x80:
            item, size = b, 1
        elif b & 0xC0 == 0x80:
            size = 1 + (b & 0x3F)
            item = lp[pos + 1 : pos + size]
        elif b & 0xE0 == 0xC0:
            if pos + 2 > end:
                raise CommandError(BAD_FORMAT)
            value = ((b & 0x1F) << 8) | lp[pos + 1]
            item, size = (value - 8192 if value >= 4096 else value), 2
        elif b & 0xF0 == 0xE0:
            if pos + 2 > end:
                raise CommandError(BAD_FORMAT)
            size = 2 + (((b & 0x0F) << 8) | lp[pos + 1])
            item = lp[pos + 2 : pos + size]
        elif b == 0xF0:
            if pos + 5 > end:
                raise CommandError(BAD_FORMAT)
            size = 5 + struct.unpack_from("<I", lp, pos + 1)[0]
            item = lp[pos + 5 : pos + size]
        elif b in _LP_INTS:
            width, fmt = _LP_INTS[b]
            size = 1 + width
            if pos + size > end:
                raise CommandError(BAD_FORMAT)
            if fmt is None:
                item = int.from_bytes(lp[pos + 1 : pos + 4], "little", signed=True)
            else:
                item = struct.unpack_from(fmt, lp, pos + 1)[0]
        else:
            raise CommandError(BAD_FORMAT)
        pos += size + _backlen_size(size)
        if pos > end:
            raise CommandError(BAD_FORMAT)
        out.append(item)
    return out


_ZL_INTS = {0xC0: (2, "<h"), 0xD0: (4, "<i"), 0xE0: (8, "<q"), 0xF0: (3, None), 0xFE: (1, "<b")}


def ziplist_items(zl: bytes) -> list[bytes]:
    """The elements of a ziplist (the encoding of Redis before 7.0), integers as text."""
    if len(zl) < 11 or struct.unpack_from("<I", zl)[0] != len(zl) or zl[-1] != 0xFF:
        raise CommandError(BAD_FORMAT)
    out: list[bytes] = []
    pos, end = 10, len(zl) - 1
    while pos < end:
        pos += 1 if zl[pos] < 254 else 5
        if pos >= end:
            raise CommandError(BAD_FORMAT)
        enc = zl[pos]
        kind = enc >> 6
        if kind == 0:
            start, size = pos + 1, enc & 0x3F
        elif kind == 1:
            start, size = pos + 2, ((enc & 0x3F) << 8) | zl[pos + 1]
        elif enc == 0x80:
            start, size = pos + 5, struct.unpack_from(">I", zl, pos + 1)[0]
        elif enc in _ZL_INTS:
            width, fmt = _ZL_INTS[enc]
            if pos + 1 + width > end:
                raise CommandError(BAD_FORMAT)
            if fmt is None:
                value = int.from_bytes(zl[pos + 1 : pos + 4], "little", signed=True)
            else:
                value = struct.unpack_from(fmt, zl, pos + 1)[0]
            out.append(b"%d" % value)
            pos += 1 + width
            continue
        elif 0xF1 <= enc <= 0xFD:
            out.append(b"%d" % ((enc & 0x0F) - 1))
            pos += 1
            continue
        else:
            raise CommandError(BAD_FORMAT)
        if start + size > end:
            raise CommandError(BAD_FORMAT)
        out.append(zl[start : start + size])
        pos = start + size
    return out


def _zipmap_pairs(zm: bytes) -> list[tuple[bytes, bytes]]:
    """The field/value pairs of a zipmap (hashes of Redis 2.x)."""
    pos, out = 1, []

    def length() -> int:
        nonlocal pos
        if pos >= len(zm):
            raise CommandError(BAD_FORMAT)
        n = zm[pos]
        if n < 254:
            pos += 1
            return n
        if n == 254 and pos + 5 <= len(zm):
            pos += 5
            big: int = struct.unpack_from("<I", zm, pos - 4)[0]
            return big
        raise CommandError(BAD_FORMAT)

    while pos < len(zm) and zm[pos] != 0xFF:
        n = length()
        key = zm[pos : pos + n]
        pos += n
        if len(key) != n:
            raise CommandError(BAD_FORMAT)
        n = length()
        if pos >= len(zm):
            raise CommandError(BAD_FORMAT)
        free = zm[pos]
        value = zm[pos + 1 : pos + 1 + n]
        pos += 1 + n + free
        if pos > len(zm) or len(value) != n:
            raise CommandError(BAD_FORMAT)
        out.append((key, value))
    if pos >= len(zm):
        raise CommandError(BAD_FORMAT)
    return out


def _pairs(items: list[Any]) -> list[tuple[Any, Any]]:
    if len(items) % 2:
        raise CommandError(BAD_FORMAT)
    return list(zip(items[::2], items[1::2], strict=True))


def _unique(kind: str, items: list[Any]) -> Value:
    """A hash, set or sorted set, refused (as Redis refuses it) if empty or a name repeats."""
    names = [i[0] for i in items] if kind in ("hash", "zset") else items
    if not items or len(set(names)) != len(names):
        raise CommandError(BAD_FORMAT)
    return Value(kind, items)


def _nonempty(kind: str, items: list[bytes]) -> Value:
    if not items:
        raise CommandError(BAD_FORMAT)
    return Value(kind, items)


def load(payload: bytes) -> Value:
    """Decode a DUMP payload (its footer checked first); Redis's errors for what cannot be read.

    As redis-server reads it: the value may run on into the footer's bytes (a value cut short
    by a payload made by hand), and bytes left after it are ignored.
    """
    check_footer(payload)
    r = _Reader(payload)
    kind = r.byte()
    if kind == T_STRING:
        return Value("string", r.string())
    if kind in (T_LIST, T_SET):
        items = [r.string() for _ in range(r.length())]
        return _nonempty("list", items) if kind == T_LIST else _unique("set", items)
    if kind in (T_ZSET, T_ZSET_2):
        read = r.text_double if kind == T_ZSET else r.binary_double
        return _unique("zset", [(r.string(), read()) for _ in range(r.length())])
    if kind == T_HASH:
        return _unique("hash", [(r.string(), r.string()) for _ in range(r.length())])
    if kind == T_HASH_ZIPMAP:
        return _unique("hash", _zipmap_pairs(r.string()))
    if kind in (T_LIST_ZIPLIST, T_HASH_ZIPLIST, T_ZSET_ZIPLIST):
        items = ziplist_items(r.string())
        if kind == T_LIST_ZIPLIST:
            return _nonempty("list", items)
        if kind == T_HASH_ZIPLIST:
            return _unique("hash", _pairs(items))
        return _unique("zset", [(m, _score(s)) for m, s in _pairs(items)])
    if kind == T_SET_INTSET:
        return _unique("set", _intset(r.string()))
    if kind in (T_HASH_LISTPACK, T_ZSET_LISTPACK):
        items = [_int_text(i) for i in listpack_items(r.string())]
        if kind == T_HASH_LISTPACK:
            return _unique("hash", _pairs(items))
        return _unique("zset", [(m, _score(s)) for m, s in _pairs(items)])
    if kind == T_LIST_QUICKLIST:
        items = []
        for _ in range(r.length()):
            items += ziplist_items(r.string())
        return _nonempty("list", items)
    if kind == T_LIST_QUICKLIST_2:
        items = []
        for _ in range(r.length()):
            container = r.length()
            if container == 1:  # PLAIN: one large element
                items.append(r.string())
            elif container == 2:  # PACKED: a listpack
                items += [_int_text(i) for i in listpack_items(r.string())]
            else:
                raise CommandError(BAD_FORMAT)
        return _nonempty("list", items)
    if kind in (T_STREAM_LISTPACKS, T_STREAM_LISTPACKS_2):
        return Value("stream", _load_stream(r, kind == T_STREAM_LISTPACKS_2))
    raise CommandError(BAD_FORMAT)


def _intset(data: bytes) -> list[bytes]:
    if len(data) < 8:
        raise CommandError(BAD_FORMAT)
    width, count = struct.unpack_from("<II", data)
    fmt = {2: "h", 4: "i", 8: "q"}.get(width)
    if fmt is None or len(data) != 8 + width * count:
        raise CommandError(BAD_FORMAT)
    return [b"%d" % n for n in struct.unpack_from(f"<{count}{fmt}", data, 8)]


def _lp_int(item: bytes | int) -> int:
    """A number stored in a stream listpack (Redis writes them as integers; text is read too)."""
    if isinstance(item, int):
        return item
    try:
        return int(item)
    except ValueError:
        raise CommandError(BAD_FORMAT) from None


def _stream_node(master: ID, items: list[bytes | int]) -> list[tuple[ID, list[tuple[bytes, bytes]]]]:
    """The live entries of one listpack of a stream (``master``: its key, the base of the IDs)."""
    try:
        live, deleted, nfields = (_lp_int(i) for i in items[:3])
        fields = [_int_text(f) for f in items[3 : 3 + nfields]]
        if len(fields) != nfields or _lp_int(items[3 + nfields]) != 0:
            raise CommandError(BAD_FORMAT)
        pos = 4 + nfields
        out, gone = [], 0
        while pos < len(items):
            flags, ms, seq = (_lp_int(i) for i in items[pos : pos + 3])
            start = pos
            pos += 3
            xid = ((master[0] + ms) % _U64, (master[1] + seq) % _U64)
            if flags & _STREAM_SAMEFIELDS:
                values = [_int_text(v) for v in items[pos : pos + nfields]]
                pos += nfields
                pairs = list(zip(fields, values, strict=True))
            else:
                n = _lp_int(items[pos])
                pairs = [(_int_text(f), _int_text(v)) for f, v in _pairs(items[pos + 1 : pos + 1 + 2 * n])]
                pos += 1 + 2 * n
                if len(pairs) != n:
                    raise CommandError(BAD_FORMAT)
            if _lp_int(items[pos]) != pos - start:
                raise CommandError(BAD_FORMAT)
            pos += 1
            if flags & _STREAM_DELETED:
                gone += 1
            else:
                out.append((xid, pairs))
    except (IndexError, ValueError):
        raise CommandError(BAD_FORMAT) from None
    if len(out) != live or gone != deleted:
        raise CommandError(BAD_FORMAT)
    return out


def _load_stream(r: _Reader, v2: bool) -> Stream:
    entries: list[tuple[ID, list[tuple[bytes, bytes]]]] = []
    for _ in range(r.length()):
        key = r.string()
        if len(key) != 16:
            raise CommandError(BAD_FORMAT)
        items = listpack_items(r.string())
        if not items:  # Redis refuses an empty listpack in a stream
            raise CommandError(BAD_FORMAT)
        node = _stream_node(struct.unpack(">QQ", key), items)
        if node and entries and node[0][0] <= entries[-1][0]:
            raise CommandError(BAD_FORMAT)
        if any(a[0] >= b[0] for a, b in itertools.pairwise(node)):
            raise CommandError(BAD_FORMAT)
        entries += node
    length = r.length()
    last = (r.length(), r.length())
    if v2:
        r.length(), r.length()  # the first entry's ID: kvb finds it from the entries
        max_deleted = (r.length(), r.length())
        added = r.length()
    else:
        max_deleted, added = (0, 0), length
    if length != len(entries) or (entries and entries[-1][0] > last):
        raise CommandError(BAD_FORMAT)
    stream = Stream(entries, last, added, max_deleted)
    names: set[bytes] = set()
    for _ in range(r.length()):
        name = r.string()
        if name in names:
            raise CommandError(BAD_FORMAT)
        names.add(name)
        group_last = (r.length(), r.length())
        entries_read = r.length() if v2 else -1
        if entries_read >= 1 << 63:  # Redis writes its -1 (not known) as a 64-bit length
            entries_read = -1
        pel: dict[ID, tuple[int, int]] = {}
        for _ in range(r.length()):
            xid = r.stream_id()
            if xid in pel:
                raise CommandError(BAD_FORMAT)
            pel[xid] = (r.millis(), r.length())
        owners: dict[ID, bytes] = {}
        consumers = []
        seen_names: set[bytes] = set()
        for _ in range(r.length()):
            cname = r.string()
            seen = r.millis()
            if cname in seen_names:
                raise CommandError(BAD_FORMAT)
            seen_names.add(cname)
            consumers.append((cname, seen, seen))  # 7.0 keeps no active time: the seen time, as 7.2
            for _ in range(r.length()):
                xid = r.stream_id()
                if xid not in pel or xid in owners:
                    raise CommandError(BAD_FORMAT)
                owners[xid] = cname
        if len(owners) != len(pel):  # a pending entry nobody owns
            raise CommandError(BAD_FORMAT)
        pending = [Pending(xid, owners[xid], *pel[xid]) for xid in sorted(pel)]
        consumers.sort()
        stream.groups.append(Group(name, group_last, entries_read, pending, consumers))
    stream.groups.sort(key=lambda g: g.name)
    return stream


# ------------------------------------------------------------------ writing


def _length(n: int) -> bytes:
    if n < 64:
        return bytes([n])
    if n < 16384:
        return bytes([0x40 | (n >> 8), n & 0xFF])
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def _string(data: bytes) -> bytes:
    return _length(len(data)) + data


def _backlen(n: int) -> bytes:
    """An element's length as a listpack writes it after the element: 7 bits a byte, most
    significant first, every byte but the first flagged (it is read backwards from the end)."""
    size = _backlen_size(n)
    return bytes([(n >> (7 * (size - 1 - i))) & 127 | (128 if i else 0) for i in range(size)])


def _lp_entry(item: bytes | int) -> bytes:
    if isinstance(item, int):
        if 0 <= item <= 127:
            enc = bytes([item])
        elif -4096 <= item <= 4095:
            v = item & 0x1FFF
            enc = bytes([0xC0 | (v >> 8), v & 0xFF])
        elif -(1 << 15) <= item < 1 << 15:
            enc = b"\xf1" + struct.pack("<h", item)
        elif -(1 << 23) <= item < 1 << 23:
            enc = b"\xf2" + (item & 0xFFFFFF).to_bytes(3, "little")
        elif -(1 << 31) <= item < 1 << 31:
            enc = b"\xf3" + struct.pack("<i", item)
        else:
            enc = b"\xf4" + struct.pack("<q", item)
    else:
        n = len(item)
        if n < 64:
            enc = bytes([0x80 | n]) + item
        elif n < 4096:
            enc = bytes([0xE0 | (n >> 8), n & 0xFF]) + item
        else:
            enc = b"\xf0" + struct.pack("<I", n) + item
    return enc + _backlen(len(enc))


def listpack(items: list[bytes | int]) -> bytes:
    """A listpack of ``items`` (ints in integer encodings, bytes as strings)."""
    body = b"".join(_lp_entry(i) for i in items)
    return struct.pack("<IH", 6 + len(body) + 1, min(len(items), 65535)) + body + b"\xff"


def _signed64(n: int) -> int:
    n %= _U64
    return n - _U64 if n >= 1 << 63 else n


def _dump_stream(s: Stream) -> bytes:
    out = [bytes([T_STREAM_LISTPACKS_2])]
    nodes = [s.entries[i : i + _STREAM_NODE_ENTRIES] for i in range(0, len(s.entries), _STREAM_NODE_ENTRIES)]
    out.append(_length(len(nodes)))
    for node in nodes:
        master, first_pairs = node[0]
        fields = [f for f, _ in first_pairs]
        items: list[bytes | int] = [len(node), 0, len(fields), *fields, 0]
        for xid, pairs in node:
            same = [f for f, _ in pairs] == fields
            flags = _STREAM_SAMEFIELDS if same else 0
            items += [flags, _signed64(xid[0] - master[0]), _signed64(xid[1] - master[1])]
            if same:
                items += [v for _, v in pairs]
                items.append(3 + len(pairs))
            else:
                items.append(len(pairs))
                for f, v in pairs:
                    items += [f, v]
                items.append(4 + 2 * len(pairs))
        out.append(_string(struct.pack(">QQ", *master)))
        out.append(_string(listpack(items)))
    first = s.entries[0][0] if s.entries else (0, 0)
    for n in (len(s.entries), *s.last, *first, *s.max_deleted, s.added):
        out.append(_length(n))
    out.append(_length(len(s.groups)))
    for g in s.groups:
        out += [_string(g.name), _length(g.last[0]), _length(g.last[1])]
        out.append(_length(g.entries_read if g.entries_read >= 0 else _U64 - 1))
        out.append(_length(len(g.pending)))
        for p in g.pending:
            out += [struct.pack(">QQ", *p.id), struct.pack("<q", p.delivered), _length(p.count)]
        out.append(_length(len(g.consumers)))
        for cname, seen, _active in g.consumers:
            mine = [p.id for p in g.pending if p.consumer == cname]
            out += [_string(cname), struct.pack("<q", seen), _length(len(mine))]
            out += [struct.pack(">QQ", *xid) for xid in mine]
    return b"".join(out)


def dump(value: Value) -> bytes:
    """The DUMP payload of ``value``, in encodings redis-server 7.0 loads."""
    kind, data = value
    if kind == "string":
        body = bytes([T_STRING]) + _string(data)
    elif kind in ("list", "set"):
        body = bytes([T_LIST if kind == "list" else T_SET]) + _length(len(data))
        body += b"".join(_string(i) for i in data)
    elif kind == "hash":
        body = bytes([T_HASH]) + _length(len(data))
        body += b"".join(_string(f) + _string(v) for f, v in data)
    elif kind == "zset":
        body = bytes([T_ZSET_2]) + _length(len(data))
        body += b"".join(_string(m) + struct.pack("<d", s) for m, s in data)
    elif kind == "stream":
        body = _dump_stream(data)
    else:
        raise ValueError(f"unknown kind of value {kind!r}")
    return _footer(body)


# ------------------------------------------------------------------ functions


def load_functions(payload: bytes) -> list[bytes]:
    """The library codes of a FUNCTION DUMP payload (Redis's errors for what is not one).

    The format of Redis 7.0's release candidates (name, engine, description, then the code
    without its ``#!`` line) is read too, its code given the ``#!<engine> name=<name>`` line
    it lacks, as redis-server 7.0 reads it.
    """
    end = len(check_footer(payload))
    r = _Reader(payload)
    codes = []
    while r.pos < end:
        opcode = r.byte()
        if opcode == OPCODE_FUNCTION2:
            codes.append(_function_field(r, "library payload"))
        elif opcode == OPCODE_FUNCTION_PRE_GA:
            name = _function_field(r, "function name")
            engine = _function_field(r, "engine name")
            if _function_length(r, "function description"):
                _function_field(r, "function description")
            code = _function_field(r, "function code")
            codes.append(b"#!%b name=%b\n%b" % (engine, name, code))
        else:
            raise CommandError("ERR given type is not a function")
    return codes


def _function_field(r: _Reader, what: str) -> bytes:
    try:
        return r.string()
    except CommandError:
        raise CommandError(f"ERR Failed loading {what}") from None


def _function_length(r: _Reader, what: str) -> int:
    try:
        return r.length()
    except CommandError:
        raise CommandError(f"ERR Failed loading {what}") from None


def dump_functions(codes: list[bytes]) -> bytes:
    """A FUNCTION DUMP payload of these libraries' codes."""
    return _footer(b"".join(bytes([OPCODE_FUNCTION2]) + _string(code) for code in codes))
