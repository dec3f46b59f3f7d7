"""Redis data structures (strings, hashes, lists, sets, sorted sets, streams) over :class:`kv_backend.DB`.

Every Redis key is one *metadata record* ``b"\x00m" + name`` whose value starts
with a type tag; strings keep their value right there, collections keep a
count and a write counter, and their fields/elements/members live in records of
their own under a per-type prefix followed by the length-prefixed name::

    b"\x00m" name                  -> b"s" value | b"h"/b"t"/b"z" count version | b"l" head tail version
    b"\x00h" len name field        -> value      (hash fields)
    b"\x00l" len name index(8)     -> element    (lists; index is a sortable int64)
    b"\x00s" len name member       -> b""        (sets)
    b"\x00z" len name member       -> score(8)   (sorted set: member -> score)
    b"\x00Z" len name score(8) mbr -> b""        (sorted set: score order index)
    b"\x00x" len name ms(8) seq(8) -> fields     (stream entries, in ID order)

A stream's metadata is ``b"x" count version last_ms last_seq entries_added
max_deleted_ms max_deleted_seq``; an entry's value is its field/value pairs,
each length-prefixed. Consumer groups, their consumers and pending entries
have records of their own (see :mod:`.groups`).

The modules of this package: :mod:`.layout` (the record layout above),
:mod:`.parsing` (Redis argument parsing), :mod:`.errors`, :mod:`.keyspace`
(commands on keys of any type) and one module per type (:mod:`.strings`,
:mod:`.hashes`, :mod:`.lists`, :mod:`.sets`, :mod:`.zsets`, :mod:`.streams`,
:mod:`.groups` for stream consumer groups), :mod:`.bits` (bitmap commands on strings),
:mod:`.hyperloglog` (HyperLogLogs in Redis's value format), :mod:`.geo` (geo commands on
sorted sets, with the geohash arithmetic in :mod:`.geohash`) and :mod:`.dumps` (DUMP/RESTORE
in Redis's payload format, read and written by :mod:`.rdb`).

Scores are IEEE-754 doubles turned into 8 bytes that sort like the numbers, so
score ranges and ranks are ordered engine scans. Expiry lives on the metadata
record (the engine's own TTL); a key whose metadata has expired is missing, and
the member records it leaves behind are removed when the name is used for a new
collection, deleted, or by :meth:`Structures.vacuum`. Every multi-record change
runs under ``db.locked()`` in one ``db.batch()``: other processes never see half
of it, and a crash never leaves half of it on disk.
"""

from __future__ import annotations

from kv_backend.structures.bits import Bits
from kv_backend.structures.dumps import Dumps
from kv_backend.structures.errors import (
    CommandError,
    ForeignRecordError,
    HashValueNotAnIntegerError,
    KeyNameTooLongError,
    NotAFloatError,
    StructureError,
    WrongTypeError,
)
from kv_backend.structures.geo import GeoSets
from kv_backend.structures.groups import StreamGroups
from kv_backend.structures.hashes import Hashes
from kv_backend.structures.hyperloglog import HyperLogLogs
from kv_backend.structures.layout import decode_score, encode_score
from kv_backend.structures.lists import Lists
from kv_backend.structures.parsing import format_float, glob_match, parse_cursor, parse_float, parse_int
from kv_backend.structures.sets import Sets
from kv_backend.structures.sort import Sorting
from kv_backend.structures.streams import check_add_id, check_stream_id
from kv_backend.structures.strings import Strings
from kv_backend.structures.zsets import SortedSets

__all__ = [
    "CommandError",
    "ForeignRecordError",
    "HashValueNotAnIntegerError",
    "KeyNameTooLongError",
    "NotAFloatError",
    "StructureError",
    "Structures",
    "WrongTypeError",
    "check_add_id",
    "check_stream_id",
    "decode_score",
    "encode_score",
    "format_float",
    "glob_match",
    "parse_cursor",
    "parse_float",
    "parse_int",
]


class Structures(
    Strings, Bits, HyperLogLogs, Hashes, Sorting, Lists, Sets, GeoSets, SortedSets, Dumps, StreamGroups
):
    """Redis-like strings, hashes, lists, sets, sorted sets and streams stored in a :class:`DB`.

    Pass an open ``DB`` (shared with other code) or a directory path (then this
    object opens and owns the DB; extra keyword arguments go to ``DB``). Method
    names and results follow Redis commands (``hset``, ``zrangebyscore``...);
    names, fields and values may be bytes, str or numbers, results are bytes.
    Safe to use from many processes at once on one directory.
    """
