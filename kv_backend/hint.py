"""Hint files: a compact index of a merged data file, read instead of replaying it.

A hint file ``MMMMMMMMMM-NNN.hint`` belongs to the data file of the same id.
Layout (little-endian)::

    header (32 bytes): magic b"KVBHINT\\0" (8), version u32 (2), entry count u32,
                       data file size u64, crc32 of all entry bytes u32, reserved u32
    entry:             key length u32, offset u64, record size u32, expiry f64, key

One CRC covers all entries, so loading is one checksum call and one tight
loop. A hint file whose header, count, sizes or CRC do not check out is
ignored and its data file is replayed instead.
"""

from __future__ import annotations

import os
import struct
import zlib

HINT_MAGIC = b"KVBHINT\x00"
HINT_VERSION = 2
HINT_HEADER = struct.Struct("<8sIIQII")
ENTRY = struct.Struct("<IQId")
ENTRY_SIZE = ENTRY.size  # 24


def encode_entry(key: bytes, offset: int, size: int, expiry: float) -> bytes:
    """Return one hint entry."""
    return ENTRY.pack(len(key), offset, size, expiry) + key


def load(path: str, data_size: int) -> bytes | None:
    """Return the checked contents of a hint file, or None if missing, damaged or stale.

    ``data_size`` is the size of the data file the hints must describe.
    """
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError:
        return None
    if len(buf) < HINT_HEADER.size:
        return None
    magic, version, _count, size, crc, _ = HINT_HEADER.unpack_from(buf, 0)
    if magic != HINT_MAGIC or version != HINT_VERSION or size != data_size:
        return None
    if zlib.crc32(memoryview(buf)[HINT_HEADER.size :]) != crc:
        return None
    return buf


def iter_entries(buf: bytes, data_size: int):
    """Yield ``(key, offset, size, expiry)`` from the contents returned by :func:`load`.

    Raises ValueError if an entry points outside the data file.
    """
    unpack = ENTRY.unpack_from
    pos = HINT_HEADER.size
    end = len(buf)
    while pos < end:
        klen, offset, size, expiry = unpack(buf, pos)
        stop = pos + ENTRY_SIZE + klen
        if stop > end or offset + size > data_size:
            raise ValueError("hint entry out of range")
        yield buf[pos + ENTRY_SIZE : stop], offset, size, expiry
        pos = stop


def read_hints(path: str, data_size: int) -> list[tuple[bytes, int, int, float]] | None:
    """Return the entries ``(key, offset, size, expiry)`` of a hint file, or None if unusable."""
    buf = load(path, data_size)
    if buf is None:
        return None
    try:
        return list(iter_entries(buf, data_size))
    except (ValueError, struct.error):
        return None


def write_hints(path: str, data_size: int, entries: list[bytes]) -> None:
    """Write a hint file from encoded entries to ``path`` and fsync it (the caller renames it)."""
    body = b"".join(entries)
    header = HINT_HEADER.pack(HINT_MAGIC, HINT_VERSION, len(entries), data_size, zlib.crc32(body), 0)
    with open(path, "wb") as f:
        f.write(header)
        f.write(body)
        f.flush()
        os.fsync(f.fileno())
