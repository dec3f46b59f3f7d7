"""A large value is copied once into its record (a put held it three times: value, body, record)."""

from __future__ import annotations

import tracemalloc
import zlib

import pytest

from kv_backend import DB
from kv_backend import record as rec


def _reference(rtype: int, key: bytes, value: bytes, expiry: float, flags: int) -> bytes:
    """The record as docs/file-format.md defines it: CRC-32 of everything after it, then that."""
    body = rec.BODY_HEADER.pack(rtype, flags, len(key), len(value), expiry) + key + value
    return zlib.crc32(body).to_bytes(4, "little") + body


_SPLIT = rec._LARGE_VALUE
_KINDS = [(rec.PUT, 0.0, 0), (rec.PUT, 1.5e9, 1), (rec.DELETE, 0.0, 0)]


@pytest.mark.parametrize("size", [0, 1, _SPLIT - 1, _SPLIT, _SPLIT + 1, 3 << 20])
@pytest.mark.parametrize(("rtype", "expiry", "flags"), _KINDS)
def test_same_encoding_either_side_of_the_split(size: int, rtype: int, expiry: float, flags: int) -> None:
    value = bytes(range(256)) * (size // 256) + bytes(size % 256)
    expected = _reference(rtype, b"some-key", value, expiry, flags)
    assert rec.encode(rtype, b"some-key", value, expiry, flags) == expected


def test_a_large_value_is_copied_once() -> None:
    value = bytes(16 << 20)
    tracemalloc.start()
    try:
        record = rec.encode(rec.PUT, b"k", value)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(record) == rec.HEADER_SIZE + 1 + len(value)
    assert peak < 1.1 * len(value), f"encoding held {peak} bytes for a value of {len(value)}"


def test_a_put_of_a_large_value_holds_one_copy_and_reads_back(tmp_path) -> None:
    value = bytes(range(256)) * (64 << 10)  # 16 MiB
    with DB(str(tmp_path / "s")) as db:
        db.put(b"warm", b"x")  # (the first write opens the active file)
        tracemalloc.start()
        try:
            db.put(b"big", value)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1.2 * len(value), f"put held {peak} bytes for a value of {len(value)}"
        assert db.get(b"big") == value
    with DB(str(tmp_path / "s")) as db:
        assert db.get(b"big") == value
