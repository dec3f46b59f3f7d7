"""Replay scanned a data file 8 MiB at a time and indexed each chunk's records as a list of tuples of
about 200 bytes each: opening a store of small records held some 40 MB besides its key directory, half
as much again as the key directory of a million keys (1M keys: 210 MB resident at its peak, 162 MB
with 1 MiB chunks). It now scans 2 MiB at a time (169 MB), as fast."""

from __future__ import annotations

import tracemalloc

from line_tables import with_line_tables

from kv_backend import DB
from kv_backend import record as rec

N = 150_000


def test_open_peak_memory_stays_near_the_key_directory(store_path, tmp_path):
    small = str(tmp_path / "small")
    with DB(small) as db:
        with db.batch() as b:
            b.put(b"key", b"v")
        db.delete(b"key")
    with_line_tables(lambda: DB(small, read_only=True).close())
    with DB(store_path) as db:
        for start in range(0, N, 1000):
            with db.batch() as b:
                for i in range(start, start + 1000):
                    b.put(b"key-%012d" % i, b"v%08d" % i)
        db.delete(b"key-%012d" % 7)
    tracemalloc.start()
    try:
        with DB(store_path, read_only=True) as db:
            held, peak = tracemalloc.get_traced_memory()
            assert len(db) == N - 1 and db[b"key-%012d" % (N - 1)] == b"v%08d" % (N - 1)
    finally:
        tracemalloc.stop()
    per_key = f"open peak {peak / N:.0f} B/key, key directory {held / N:.0f} B/key"
    # (before: 2.7 times the key directory, the records of 8 MiB at once; now 1.7)
    assert peak < 2 * held, per_key


def test_a_batch_bigger_than_a_scan_chunk_is_replayed_whole(store_path):
    value = b"x" * 4096
    count = 2 * rec.SCAN_CHUNK // len(value) + 10
    with DB(store_path) as db:
        db.put(b"before", b"1")
        with db.batch() as b:
            for i in range(count):
                b.put(b"big%06d" % i, value)
        db.put(b"after", b"2")
    with DB(store_path, read_only=True) as db:
        assert len(db) == count + 2 and db[b"after"] == b"2" and db[b"big%06d" % (count - 1)] == value
        assert db.stats()["corrupt_records"] == 0
