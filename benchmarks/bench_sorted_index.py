"""What the sorted key index costs writers: puts of new keys and deletes, with and without it.

The first ordered scan (``keys()``, ``items()``, a Redis ``SCAN``/``KEYS``)
builds a sorted index of the keys. This measures, in one run on stores of N
keys, a put of a new key and a delete when no index exists and when one does
(which ``kvb serve`` always has: it scans at start-up), and what the next scan
pays for the changes noted meanwhile. For comparison it times
``SortedList.add``, which is what keeping the index up to date at each write
would cost. Writes the ``sorted-index`` section of docs/benchmarks.md.

    python benchmarks/bench_sorted_index.py [-n N] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report
from sortedcontainers import SortedList

from kv_backend import DB

OPS = 20_000


def _fill(path: str, n: int) -> DB:
    db = DB(path, sync="never")
    with db.batch() as b:
        for i in range(n):
            b.put(b"key:%09d" % (i * 2), b"v" * 100)
    return db


def _per_op(fn, keys: list[bytes]) -> float:
    t = time.perf_counter()
    for k in keys:
        fn(k)
    return (time.perf_counter() - t) / len(keys) * 1e6


def measure(base: str, n: int, indexed: bool) -> dict[str, float]:
    """Microseconds per put of a new key and per delete, and ms for the scan that follows."""
    path = os.path.join(base, f"db-{n}-{int(indexed)}")
    db = _fill(path, n)
    try:
        if indexed:
            next(iter(db.keys()))  # builds the sorted index
        new = [b"key:%09d" % (i * 2 + 1) for i in range(OPS)]  # between existing keys
        value = b"v" * 100
        put_us = _per_op(lambda k: db.put(k, value), new)
        t = time.perf_counter()
        next(iter(db.keys(start=b"key:")))
        scan_after_puts = (time.perf_counter() - t) * 1e3
        delete_us = _per_op(db.delete, new)
        t = time.perf_counter()
        next(iter(db.keys(start=b"key:")))
        scan_after_deletes = (time.perf_counter() - t) * 1e3
    finally:
        db.close()
        shutil.rmtree(path, ignore_errors=True)
    return {
        "put": put_us,
        "delete": delete_us,
        "scan_puts": scan_after_puts,
        "scan_deletes": scan_after_deletes,
    }


def sortedlist_add_us(n: int) -> float:
    srt = SortedList(b"key:%09d" % (i * 2) for i in range(n))
    new = [b"key:%09d" % (i * 2 + 1) for i in range(OPS)]
    return _per_op(srt.add, new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, action="append", help="keys in the store (repeatable; default 100k, 1M)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args(argv)
    sizes = args.n or [100_000, 1_000_000]
    base = tempfile.mkdtemp(prefix="kvb-sorted-")
    rows = []
    try:
        for n in sizes:
            best: dict[bool, dict[str, float]] = {}
            for _ in range(3):  # best of 3 runs, each on a fresh store
                for indexed in (False, True):
                    got = measure(base, n, indexed)
                    prev = best.get(indexed)
                    best[indexed] = got if prev is None else {k: min(v, got[k]) for k, v in prev.items()}
            add = min(sortedlist_add_us(n) for _ in range(3))
            plain, idx = best[False], best[True]
            rows.append(
                [
                    f"{n:,}",
                    f"{plain['put']:.2f}",
                    f"{idx['put']:.2f} ({idx['put'] - plain['put']:+.2f})",
                    f"{plain['delete']:.2f}",
                    f"{idx['delete']:.2f} ({idx['delete'] - plain['delete']:+.2f})",
                    f"{idx['scan_puts']:.1f} / {idx['scan_deletes']:.1f}",
                    f"{add:.2f}",
                ]
            )
            print(" | ".join(rows[-1]), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = (
        f"Microseconds per `DB.put` of a new key and per `DB.delete` ({OPS:,} of each, best of 3 runs, "
        "`sync='never'` so the disk is not what is measured), on a store of N keys without and with "
        "the sorted index that the first ordered scan builds; the milliseconds the next scan's first "
        f"step takes (it applies the noted changes) after the {OPS:,} puts / deletes; and "
        "`SortedList.add` on a list of N keys, the least each write would pay to keep the index up "
        "to date at once.\n\n"
        + _report.table(
            [
                "keys",
                "put, no index",
                "put, index",
                "delete, no index",
                "delete, index",
                "next scan ms (puts / deletes)",
                "SortedList.add",
            ],
            rows,
        )
    )
    if not args.no_write:
        _report.write_section("sorted-index", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
