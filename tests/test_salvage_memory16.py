"""kvb salvage held about 470 bytes per key (a tuple of location and expiry per key, then a sorted list of
(location, key) tuples beside it, then the copy's key directory on top): a store that opened in the
memory its key directory takes (about 125 bytes per 16-byte key) could be one that could not be
salvaged. It now keeps one packed location per key, expiries only for keys that expire, and frees that
index before the copy is written, so salvage's peak stays near the key directory of an open."""

from __future__ import annotations

import time
import tracemalloc

from helpers import data_files
from line_tables import with_line_tables
from test_format_reader11 import records

from kv_backend import DB
from kv_backend.record import PUT
from kv_backend.salvage import salvage

N = 20_000


def _fill(path: str, n: int = N) -> None:
    with DB(path) as db:
        for start in range(0, n, 1000):
            with db.batch() as b:
                for i in range(start, min(start + 1000, n)):
                    b.put(b"key-%012d" % i, b"v%08d" % i, ttl=3600 if i % 10 == 0 else None)


def test_salvage_peak_memory_stays_near_the_key_directory(tmp_path):
    small = str(tmp_path / "small")
    _fill(small, 20)

    def warm_up() -> None:
        DB(small, read_only=True).close()
        salvage(small, str(tmp_path / "small-copy"))

    with_line_tables(warm_up)
    src = str(tmp_path / "src")
    _fill(src)
    tracemalloc.start()
    try:
        with DB(src, read_only=True):
            key_directory = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        report = salvage(src, str(tmp_path / "copy"))
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert report.clean and report.keys_copied == N
    # (before: 2.8 times the key directory; now about 1.4 times, the copy's own key directory included)
    per_key = f"salvage peak {peak / N:.0f} B/key, key directory {key_directory / N:.0f} B/key"
    assert peak < 1.7 * key_directory, per_key


def test_salvage_copies_newest_values_expiries_in_log_order_across_merged_and_replayed_files(tmp_path):
    src, dst = str(tmp_path / "src"), str(tmp_path / "copy")
    far = time.time() + 3600
    with DB(src, max_file_size=4096) as db:
        for i in range(300):
            db.put(b"a%03d" % i, b"old%d" % i, expires_at=far + i if i % 3 == 0 else None)
        db.put(b"gone", b"x")
        db.merge(wait=True)  # merged files, read through their hint files
        for i in range(0, 300, 7):
            db.put(b"a%03d" % i, b"new%d" % i, expires_at=far - i if i % 2 else None)  # expiry changed
        for i in range(1, 300, 11):
            db.delete(b"a%03d" % i)
        db.delete(b"gone")
        db.put(b"short", b"s", ttl=0.01)
        with db.batch() as b:
            b.put(b"a005", b"batched")
            b.put(b"z", b"last")
        expected = {k: db.get_with_expiry(k) for k in db if k != b"short"}
    time.sleep(0.02)
    assert len(data_files(src)) > 3
    report = salvage(src, dst)
    assert report.clean and report.keys_copied == len(expected)
    with DB(dst) as copy:
        got = {k: copy.get_with_expiry(k) for k in copy}
    assert got.keys() == expected.keys()
    for k, (value, expiry) in expected.items():
        assert got[k][0] == value
        assert (got[k][1] is None) == (expiry is None) and abs((got[k][1] or 0) - (expiry or 0)) < 1e-3, k
    # Log order: the copy's records come in the order of the source's newest records.
    src_order = [key for path in data_files(src) for _, rtype, _, key, _, _ in records(path) if rtype == PUT]
    newest_at = {key: i for i, key in enumerate(src_order)}
    copied = [key for path in data_files(dst) for _, rtype, _, key, _, _ in records(path) if rtype == PUT]
    assert copied == sorted(expected, key=newest_at.__getitem__)
