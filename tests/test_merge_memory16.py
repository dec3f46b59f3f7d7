"""A merge held about 4.5 times what the key directory of the store it merges takes: each key's last put
as a tuple of location and expiry, then a second list of such tuples sorted by input, then the keys,
locations and expiries of the output file as Python lists, and the sorted list still alive while the
merged store was indexed anew beside the old index (1M keys: 685 MB resident, against 216 MB for an
open). It now keeps one packed location per key, copies the records in the order of their sorted
locations, reading each key and expiry back from its record, and collects the output's hint columns in
arrays: 437 MB."""

from __future__ import annotations

import time
import tracemalloc

from line_tables import with_line_tables

from kv_backend import DB

N = 20_000


def _fill(path: str, n: int) -> dict:
    """``n`` keys put twice (every other one the second time), one in five with an expiry, in data files
    of 256 KiB; returns what the store holds."""
    far = time.time() + 3600
    with DB(path, max_file_size=256 << 10) as db:
        for rnd in range(2):
            for start in range(rnd, n, 2000 if rnd else 1000):
                with db.batch() as b:
                    for i in range(start, min(start + 1000, n)):
                        b.put(
                            b"key-%012d" % i, b"v%d-%08d" % (rnd, i), expires_at=far if i % 5 == 0 else None
                        )
        return {k: db.get_with_expiry(k) for k in db}


def _merge(path: str) -> None:
    with DB(path, max_file_size=256 << 10) as db:
        db.merge()


def test_merge_peak_memory_stays_near_the_key_directory(store_path, tmp_path):
    small = str(tmp_path / "small")
    _fill(small, 50)
    with_line_tables(lambda: _merge(small))
    expected = _fill(store_path, N)
    tracemalloc.start()
    try:
        db = DB(store_path, max_file_size=256 << 10)
        key_directory = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        report = db.merge()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    try:
        assert report.records_kept == N and report.records_dropped > 0 and not report.corrupt_dropped
        assert {k: db.get_with_expiry(k) for k in db} == expected
    finally:
        db.close()
    with DB(store_path, read_only=True) as again:  # (through the merged files' hint files)
        assert {k: again.get_with_expiry(k) for k in again} == expected
    per_key = f"merge peak {peak / N:.0f} B/key, key directory {key_directory / N:.0f} B/key"
    # (before: 3.6 times the key directory; now 2.6, the merged store's key directory built beside it)
    assert peak < 3.1 * key_directory, per_key
