"""Merge and hint files: how long opening a large store takes with and without hints.

Builds a store of N keys (16-byte keys, 100-byte values; default 1,000,000),
overwrites a share of them so there is something to reclaim, then measures:

- open time by full replay of the data files (no hint files),
- the merge itself (seconds, bytes before and after),
- open time after the merge, through the hint files,

and prints the ratio. Target: opening with hints at least 3x faster than a
full replay. Writes the ``merge`` section of docs/benchmarks.md.

    python benchmarks/bench_merge.py [--keys N] [--quick] [--no-write]
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

from _report import table, write_section

from kv_backend import DB


def build(path: str, n: int, overwrite: float) -> None:
    """Fill a store with ``n`` keys, then overwrite a share of them."""
    rnd = __import__("random").Random(7)
    keys = [rnd.randbytes(16) for _ in range(n)]
    value = b"v" * 100
    with DB(path) as db:
        for i in range(0, n, 1000):
            with db.batch() as b:
                for k in keys[i : i + 1000]:
                    b.put(k, value)
        for k in keys[: int(n * overwrite)]:
            db.put(k, b"w" * 100)


def time_open(path: str, repeat: int = 3) -> tuple[float, int]:
    """Return the best of ``repeat`` open times and the key count."""
    best = float("inf")
    count = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        db = DB(path)
        best = min(best, time.perf_counter() - t0)
        count = len(db)
        db.close()
    return best, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keys", type=int, default=1_000_000, help="keys written to the store merged (default: 1000000)"
    )
    parser.add_argument("--quick", action="store_true", help="100k keys")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.keys
    root = tempfile.mkdtemp(prefix="kvb-bench-merge-")
    try:
        path = os.path.join(root, "store")
        t0 = time.perf_counter()
        build(path, n, overwrite=0.3)
        print(f"built {n} keys in {time.perf_counter() - t0:.1f} s")
        replay, count = time_open(path)
        with DB(path) as db:
            report = db.merge()
        hinted, count2 = time_open(path)
        assert count == count2 == n, (count, count2, n)
        ratio = replay / hinted
        rows = [
            ["open by replaying the data files", f"{replay:.2f} s", ""],
            [
                f"merge ({report.files_before} files -> {report.files_after})",
                f"{report.seconds:.2f} s",
                f"{report.bytes_before / 1e6:.1f} MB -> {report.bytes_after / 1e6:.1f} MB",
            ],
            ["open through hint files", f"{hinted:.2f} s", f"{ratio:.1f}x faster than replay"],
        ]
        verdict = "PASS" if ratio >= 3 else "FAIL"
        text = (
            f"{n:,} keys (16-byte keys, 100-byte values, 30% overwritten once), best of 3 opens.\n\n"
            + table(["step", "time", "note"], rows)
            + f"\n\n- {verdict}: open with hint files at least 3x faster than a full replay "
            f"(measured {ratio:.1f}x)."
        )
        print(text)
        if not args.no_write:
            write_section("merge", text)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
