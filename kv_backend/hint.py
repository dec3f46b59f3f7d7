"""Hint files: a compact index of a merged data file, read instead of replaying it.

A hint file ``MMMMMMMMMM-NNN.hint`` belongs to the data file of the same id.
It starts with a 24-byte header and then holds one entry per live record::

    header: magic b"KVBHINT\\0" (8), version u32, reserved u32, data file size u64
    entry:  crc32 u32 (of the rest of the entry), key length u32, offset u64,
            record size u32, expiry f64, key

A hint file whose header, sizes or any CRC do not check out is ignored and
its data file is replayed instead.
"""

from __future__ import annotations

import os
import struct
import zlib

HINT_MAGIC = b"KVBHINT\x00"
HINT_HEADER = struct.Struct("<8sIIQ")
HINT_ENTRY = struct.Struct("<IIQId")
_ENTRY_BODY = struct.Struct("<IQId")


def encode_entry(key: bytes, offset: int, size: int, expiry: float) -> bytes:
    """Return one hint entry."""
    body = _ENTRY_BODY.pack(len(key), offset, size, expiry) + key
    return zlib.crc32(body).to_bytes(4, "little") + body


def header(data_size: int) -> bytes:
    """Return the hint file header for a data file of ``data_size`` bytes."""
    return HINT_HEADER.pack(HINT_MAGIC, 1, 0, data_size)


def read_hints(path: str, data_size: int) -> list[tuple[bytes, int, int, float]] | None:
    """Return the entries ``(key, offset, size, expiry)`` of a hint file.

    Returns None if the file is missing or damaged, or does not describe a
    data file of ``data_size`` bytes; the caller then replays the data file.
    """
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError:
        return None
    if len(buf) < HINT_HEADER.size:
        return None
    magic, version, _, size = HINT_HEADER.unpack_from(buf, 0)
    if magic != HINT_MAGIC or version != 1 or size != data_size:
        return None
    out: list[tuple[bytes, int, int, float]] = []
    append = out.append
    unpack = HINT_ENTRY.unpack_from
    esize = HINT_ENTRY.size
    crc32 = zlib.crc32
    mv = memoryview(buf)
    pos = HINT_HEADER.size
    end = len(buf)
    while pos < end:
        if end - pos < esize:
            return None
        crc, klen, offset, rsize, expiry = unpack(mv, pos)
        stop = pos + esize + klen
        if stop > end or crc32(mv[pos + 4 : stop]) != crc or offset + rsize > data_size:
            return None
        append((bytes(mv[pos + esize : stop]), offset, rsize, expiry))
        pos = stop
    return out


def write_hints(path: str, data_size: int, entries: list[bytes]) -> None:
    """Write a hint file from encoded entries (to ``path``; caller renames it)."""
    with open(path, "wb") as f:
        f.write(header(data_size))
        f.writelines(entries)
        f.flush()
        os.fsync(f.fileno())
