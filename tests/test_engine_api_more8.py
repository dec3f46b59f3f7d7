"""More of DB's public API at its edges: bytes-like keys, TTL bounds, counters, change waits, paths."""

from __future__ import annotations

import array

import pytest

from kv_backend import DB


@pytest.fixture
def db(tmp_path):
    with DB(str(tmp_path / "db")) as d:
        yield d


@pytest.mark.parametrize(
    "make",
    [
        lambda b: memoryview(bytearray(b)),  # writable: cannot be hashed
        lambda b: memoryview(array.array("B", b)),  # writable too, through the array's buffer
        lambda b: bytearray(b),
        lambda b: memoryview(b),
    ],
    ids=["writable-memoryview", "array-memoryview", "bytearray", "memoryview"],
)
def test_reads_accept_every_bytes_like_key_that_writes_accept(db, make):
    """put() copies a bytearray or memoryview key, so get(), [] and ``in`` take the same key
    (a writable memoryview made get() and ``in`` raise a bare "cannot hash" ValueError)."""
    db.put(make(b"k"), b"v")
    assert db.get(make(b"k")) == b"v"
    assert db[make(b"k")] == b"v"
    assert make(b"k") in db
    assert make(b"missing") not in db
    assert db.get(make(b"missing"), b"d") == b"d"
