"""Hint files: a compact, columnar index of a merged data file, read instead of replaying it.

A hint file ``MMMMMMMMMM-NNN.hint`` belongs to the data file of the same id.
Layout (little-endian)::

    header (40 bytes): magic b"KVBHINT\\0" (8), version u32 (3), entry count n u32,
                       data file size u64, crc32 of everything after the header u32,
                       reserved u32, total key bytes u64
    key lengths:       n x u32
    locations:         n x u64   (record offset << 32 | record size)
    expiries:          n x f64   (absolute UNIX time, 0.0 = never)
    keys:              the n keys, concatenated

The columns let a reader load a whole file with a handful of C-level calls
(one CRC, array conversions, one dict update) instead of a Python loop per
key. A hint file whose header, sizes or CRC do not check out is ignored and
its data file is replayed instead.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate, pairwise
from operator import add
from typing import Any

from kv_backend import record as rec
from kv_backend.checksum import crc32
from kv_backend.owners import give_to_store_owner

HINT_MAGIC = b"KVBHINT\x00"
HINT_VERSION = 3
HINT_HEADER = struct.Struct("<8sIIQIIQ")
_BIG_ENDIAN = sys.byteorder == "big"


class Hints:
    """The columns of one checked hint file."""

    __slots__ = ("expiries", "keys", "locations", "sizes")

    def __init__(
        self, keys: list[bytes], locations: array[int], expiries: array[float], sizes: array[int]
    ) -> None:
        self.keys = keys
        self.locations = locations
        self.expiries = expiries
        #: The record sizes alone (the low 32 bits of each location), for sums in C.
        self.sizes = sizes

    def __len__(self) -> int:
        return len(self.keys)

    def entries(self) -> list[tuple[bytes, int, int, float]]:
        """Return ``(key, offset, size, expiry)`` tuples."""
        m32 = (1 << 32) - 1
        return [
            (k, loc >> 32, loc & m32, e)
            for k, loc, e in zip(self.keys, self.locations, self.expiries, strict=True)
        ]


def _column(buf: bytes, typecode: str, start: int, count: int) -> array[Any]:
    col = array(typecode)
    col.frombytes(buf[start : start + count * col.itemsize])
    if _BIG_ENDIAN:
        col.byteswap()
    return col


def load(path: str, data_size: int) -> Hints | None:
    """Return the checked columns of a hint file, or None if missing, damaged or stale.

    ``data_size`` is the size of the data file the hints must describe.
    """
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError:
        return None
    hsize = HINT_HEADER.size
    if len(buf) < hsize:
        return None
    magic, version, count, size, crc, _, key_bytes = HINT_HEADER.unpack_from(buf, 0)
    if magic != HINT_MAGIC or version != HINT_VERSION or size != data_size:
        return None
    if len(buf) != hsize + count * (4 + 8 + 8) + key_bytes:
        return None
    if crc32(memoryview(buf)[hsize:]) != crc:
        return None
    klens = _column(buf, "I", hsize, count)
    locs = _column(buf, "Q", hsize + 4 * count, count)
    exps = _column(buf, "d", hsize + 12 * count, count)
    blob_start = hsize + 20 * count
    if sum(klens) != key_bytes:
        return None
    keys = [buf[start:end] for start, end in pairwise(accumulate(klens, initial=blob_start))]
    # Each location, offset << 32 | size, as two 32-bit words (offsets in a hint file fit in
    # 32 bits): the columns of sizes and offsets, checked against the data file without a
    # Python-level loop.
    words = _column(buf, "I", hsize + 4 * count, 2 * count)
    sizes, offsets = words[0::2], words[1::2]
    if count and max(map(add, offsets, sizes)) > data_size:
        return None
    return Hints(keys, locs, exps, sizes)


def usable(path: str, data_size: int, *, step: int = 1 << 17) -> bool:
    """Whether :func:`load` would take the hint file at ``path``, read ``step`` entries (and a MiB of
    the CRC) at a time, as ``kvb check`` asks it (:func:`usable_at`) of every hint file: in memory that
    does not grow with them (loading one builds every key, some 60 bytes each, besides the file's bytes)."""
    try:
        with open(path, "rb") as f:
            return usable_at(rec.file_reader(f.fileno()), os.fstat(f.fileno()).st_size, data_size, step=step)
    except OSError:
        return False


def usable_at(
    read: Callable[[int, int], bytes], file_size: int, data_size: int, *, step: int = 1 << 17
) -> bool:
    """:func:`usable` of the hint file of ``file_size`` bytes read with ``read(offset, n)`` (a backup's
    snapshot of it)."""
    try:
        return _usable(read, file_size, data_size, step) >= 0
    except OSError:
        return False


def lost_from(path: str, data_size: int) -> int | None:
    """The size of the data file the hint file at ``path`` describes, where its data file is ``data_size``
    bytes, shorter than that, and the hint file checks out for that size with records past
    ``data_size`` (so not its size field alone damaged), the last of them ending at that size: the data
    file lost bytes, and with them the acknowledged records there (a merge output holds the only copy of
    the values it kept). None otherwise: no hint file, one that does not check out, or one that describes
    ``data_size`` or less; or one whose size lies past the end of the last record it points to, which no
    merge writes (its outputs hold nothing but the records their hint files list), so damage to the size
    field, outside the checksum: a bit flipped there high would have had every reader read, and recovery
    fill, up to a terabyte of zeros.
    Every reader reads such a data file as if zeros followed its bytes up to that size, and recovery
    fills it so: read through its hint file, the keys lost raise CorruptionError (docs/file-format.md,
    "Hint files")."""
    try:
        with open(path, "rb") as f:
            head = os.pread(f.fileno(), HINT_HEADER.size, 0)
            if len(head) < HINT_HEADER.size:
                return None
            size = HINT_HEADER.unpack(head)[3]
            if size <= data_size:
                return None
            reach = _usable(rec.file_reader(f.fileno()), os.fstat(f.fileno()).st_size, size, 1 << 17)
            return size if data_size < reach == size else None
    except OSError:
        return None


def zeroed(hints: Hints, read: Callable[[int, int], bytes], data_size: int) -> list[int]:
    """The offsets of the records ``hints`` points to that zeros ending their data file (``data_size``
    bytes, read with ``read``) stand in for, in file order: where the data file lost bytes below the size
    its hint file gives (see :func:`lost_from`), read, or filled by recovery, with zeros up to there, the
    records it lost and the one the loss cut. A read of each of their keys raises CorruptionError.

    Cheap enough for every open: a data file that ends in another byte is looked at no further, and
    otherwise the entries are walked back from the last, in the file order a merge writes them, while
    their record's header is all zeros (no record's is: its type is never 0), then the record before
    them is checked whole (a value may end in zeros)."""
    if not len(hints) or read(data_size - 1, 1) != b"\0":
        return []
    lost: list[int] = []
    after = data_size
    m32 = (1 << 32) - 1
    for i in range(len(hints) - 1, -1, -1):
        loc = hints.locations[i]
        off, size = loc >> 32, loc & m32
        if off + size > after:
            break  # (not in file order, as no merge writes a hint file: nothing more is told)
        if read(off, rec.HEADER_SIZE).strip(b"\0"):
            if not rec.holds_put(read, off, size, hints.keys[i]):
                lost.append(off)
            break
        lost.append(off)
        after = off
    return lost[::-1]


def _usable(read: Callable[[int, int], bytes], file_size: int, data_size: int, step: int) -> int:
    """How far the records the hint file of ``file_size`` bytes read with ``read(offset, n)`` points to
    reach if it checks out for a data file of ``data_size`` bytes, else -1."""
    hsize = HINT_HEADER.size
    head = read(0, hsize)
    if len(head) < hsize:
        return -1
    magic, version, count, size, crc, _, key_bytes = HINT_HEADER.unpack(head)
    if magic != HINT_MAGIC or version != HINT_VERSION or size != data_size:
        return -1
    if file_size != hsize + count * (4 + 8 + 8) + key_bytes:
        return -1
    running, pos = 0, hsize
    while pos < file_size and (chunk := read(pos, min(1 << 20, file_size - pos))):
        running = crc32(chunk, running)
        pos += len(chunk)
    if running != crc:
        return -1
    total = 0
    reach = 0
    for start in range(0, count, step):
        n = min(step, count - start)
        total += sum(_column(read(hsize + 4 * start, 4 * n), "I", 0, n))
        # (offset << 32 | size as two 32-bit words, as load() checks them)
        words = _column(read(hsize + 4 * count + 8 * start, 8 * n), "I", 0, 2 * n)
        reach = max(reach, max(map(add, words[1::2], words[0::2])))
    return reach if total == key_bytes and reach <= data_size else -1


def entries_at(read: Callable[[int, int], bytes], step: int = 1 << 10) -> Iterator[tuple[bytes, int, int]]:
    """``(key, offset, size)`` of each record the hint file read with ``read(offset, n)`` (one that
    :func:`usable_at` takes: ``kvb check``'s through one descriptor, a backup's snapshot) points to, its
    columns read ``step`` entries at a time (memory that does not grow with it)."""
    hsize = HINT_HEADER.size
    count = HINT_HEADER.unpack(read(0, hsize))[2]
    key_pos = hsize + 20 * count
    for start in range(0, count, step):
        n = min(step, count - start)
        klens = _column(read(hsize + 4 * start, 4 * n), "I", 0, n)
        locs = _column(read(hsize + 4 * count + 8 * start, 8 * n), "Q", 0, n)
        blob = read(key_pos, sum(klens))
        key_pos += len(blob)
        p = 0
        for klen, loc in zip(klens, locs, strict=True):
            yield blob[p : p + klen], loc >> 32, loc & 0xFFFFFFFF
            p += klen


class KeyColumn:
    """Keys as a hint file stores them, their lengths and their bytes end to end: about the key's
    length plus 4 bytes each, where a list of ``bytes`` holds about 57 for a 16-byte key (a merge
    collects every key of an output file of up to 4 GiB before writing its hint file)."""

    __slots__ = ("blob", "lengths")

    def __init__(self, keys: Iterable[bytes] = ()) -> None:
        self.lengths = array("I")
        self.blob = bytearray()
        for key in keys:
            self.append(key)

    def append(self, key: bytes) -> None:
        self.lengths.append(len(key))
        self.blob += key

    def __len__(self) -> int:
        return len(self.lengths)


def write_hints(
    path: str,
    data_size: int,
    keys: list[bytes] | KeyColumn,
    locations: Iterable[int],
    expiries: Iterable[float],
    mode: int = 0o666,
) -> None:
    """Write a hint file to ``path`` and fsync it (the caller renames it into place).

    A new file gets the permission ``mode``, less the umask (or what
    :func:`kv_backend.files.files_granting` withholds instead, in its block).
    """
    column = keys if isinstance(keys, KeyColumn) else KeyColumn(keys)
    klens = column.lengths
    locs = locations if isinstance(locations, array) and locations.typecode == "Q" else array("Q", locations)
    exps = expiries if isinstance(expiries, array) and expiries.typecode == "d" else array("d", expiries)
    if _BIG_ENDIAN:
        klens, locs, exps = array("I", klens), array("Q", locs), array("d", exps)  # (copies: swapped here)
        for col in (klens, locs, exps):
            col.byteswap()
    # (the columns one after the other, never joined into one more copy of them all)
    body: tuple[array[int], array[int], array[float], bytearray] = (klens, locs, exps, column.blob)
    crc = 0
    for part in body:
        crc = crc32(part, crc)
    header = HINT_HEADER.pack(HINT_MAGIC, HINT_VERSION, len(column), data_size, crc, 0, len(column.blob))
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        give_to_store_owner(f.fileno(), os.path.dirname(path))
        f.write(header)
        for part in body:
            f.write(part)
        f.flush()
        os.fsync(f.fileno())
