"""Backup and restore: kv_backend's incremental backups against SQLite's and LMDB's online copies.

Builds the same data set in kv_backend, SQLite (WAL mode) and LMDB, then times
a full backup of each to local disk, a second backup after 1% of the keys
changed (kv_backend sends only new or changed files; the peers copy everything
again) and a restore. Writes the "backup" section of docs/benchmarks.md and
docs/charts/backup.png.

    python benchmarks/bench_backup.py [--quick] [--no-write]
    python benchmarks/bench_backup.py --startup 1000000   # start-up of an incremental backup only

``--check-rate`` prints (and writes nothing) how long the CRC check of every record costs that a backup
runs on each data file it sends (``kv_backend.check.snapshot_problems``), per 50 MB of records with
values of 60 bytes, 1 KiB and 4 KiB: docs/backup.md quotes it.

``--verify-rate`` prints (and writes nothing) how long ``verify_backups`` (``kvb backups URL --verify``)
takes to read back and check a backup of a 50 MB store on local disk, against a restore of the same
backup: docs/backup.md quotes it.

``--startup KEYS`` prints (and writes nothing) what an incremental backup of a never-merged store of
KEYS small keys costs in a fresh process, with the store opened first (``db.backup``) and without
(``backup_store``, what ``kvb backup`` runs): seconds and peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import CHART_DIR, table, write_section

from kv_backend import DB
from kv_backend.backup import restore


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small data set (about 20 MB)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument("--startup", type=int, metavar="KEYS", help="only time an incremental backup's start-up")
    ap.add_argument(
        "--check-rate",
        action="store_true",
        help="only time the record check a backup runs on the files it sends",
    )
    ap.add_argument(
        "--verify-rate",
        action="store_true",
        help="only time a verify of a backup of a 50 MB store against a restore of it",
    )
    args = ap.parse_args()
    if args.verify_rate:
        verify_rate()
        return
    if args.startup:
        startup(args.startup)
        return
    if args.check_rate:
        check_rate()
        return
    n = 20_000 if args.quick else 200_000
    value_size = 1000
    changed = n // 100
    work = tempfile.mkdtemp(prefix="kvb-bench-backup-")
    try:
        rows, timings = run(work, n, value_size, changed)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        table(
            ["operation", "kv_backend", "SQLite backup API", "LMDB copy", "SQLite time / kv_backend time"],
            rows,
        )
    )
    if args.no_write:
        return
    write_section(
        "backup",
        f"{n} keys with {value_size}-byte values (about {n * value_size >> 20} MiB); the second backup "
        f"follows {changed} changed keys (1%). Backups go to local disk (`file://`); SQLite uses "
        "`Connection.backup`, LMDB `Environment.copy`, both full copies every time. Seconds, lower is "
        "better.\n\n"
        + table(
            ["operation", "kv_backend", "SQLite backup API", "LMDB copy", "SQLite time / kv_backend time"],
            rows,
        ),
    )
    chart(timings)


def run(work: str, n: int, value_size: int, changed: int) -> tuple[list[list[object]], dict]:
    import lmdb

    value = os.urandom(value_size // 2).hex().encode()
    keys = [b"key-%09d" % i for i in range(n)]

    kv_path = os.path.join(work, "kv")
    db = DB(kv_path, max_file_size=8 << 20)
    for start in range(0, n, 1000):
        with db.batch() as b:
            for k in keys[start : start + 1000]:
                b.put(k, value)
    sq_path = os.path.join(work, "sq.db")
    sq = sqlite3.connect(sq_path)
    sq.execute("PRAGMA journal_mode=WAL")
    sq.execute("CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB)")
    sq.executemany("INSERT INTO kv VALUES (?, ?)", ((k, value) for k in keys))
    sq.commit()
    env = lmdb.open(os.path.join(work, "lm"), map_size=4 << 30)
    with env.begin(write=True) as txn:
        for k in keys:
            txn.put(k, value)

    url = f"file://{work}/kv-backups"
    import fsspec.implementations.local  # noqa: F401 - import time is not backup time

    t: dict[str, dict[str, float]] = {"kv_backend": {}, "SQLite": {}, "LMDB": {}}

    def sqlite_copy(dest: str) -> None:
        out = sqlite3.connect(dest)
        sq.backup(out)
        out.close()

    t["kv_backend"]["full backup"] = timed(lambda: db.backup(url, name="full"))
    t["SQLite"]["full backup"] = timed(lambda: sqlite_copy(os.path.join(work, "sq-full.db")))
    os.mkdir(os.path.join(work, "lm-full"))
    t["LMDB"]["full backup"] = timed(lambda: env.copy(os.path.join(work, "lm-full")))

    new = os.urandom(value_size // 2).hex().encode()
    for i in range(0, n, n // changed):
        db.put(keys[i], new)
        sq.execute("UPDATE kv SET v = ? WHERE k = ?", (new, keys[i]))
        with env.begin(write=True) as txn:
            txn.put(keys[i], new)
    sq.commit()
    report = None

    def second() -> None:
        nonlocal report
        report = db.backup(url, name="second")

    t["kv_backend"]["backup after 1% changed"] = timed(second)
    t["SQLite"]["backup after 1% changed"] = timed(lambda: sqlite_copy(os.path.join(work, "sq-2.db")))
    os.mkdir(os.path.join(work, "lm-2"))
    t["LMDB"]["backup after 1% changed"] = timed(lambda: env.copy(os.path.join(work, "lm-2")))

    t["kv_backend"]["restore (verified)"] = timed(lambda: restore(url, os.path.join(work, "kv-restored")))
    t["SQLite"]["restore (verified)"] = timed(
        lambda: (
            shutil.copy(os.path.join(work, "sq-2.db"), os.path.join(work, "sq-restored.db")),
            sqlite3.connect(os.path.join(work, "sq-restored.db"))
            .execute("PRAGMA integrity_check")
            .fetchall(),
        )
    )
    t["LMDB"]["restore (verified)"] = timed(
        lambda: shutil.copytree(os.path.join(work, "lm-2"), os.path.join(work, "lm-restored"))
    )
    assert report is not None
    print(
        f"second kv_backend backup: {report.files_copied} files sent ({report.bytes_copied >> 10} KiB), "
        f"{report.files_skipped} skipped; store {dir_size(kv_path) >> 20} MiB"
    )
    db.close()
    sq.close()
    env.close()
    rows = []
    for op in t["kv_backend"]:
        kv, s, lm = t["kv_backend"][op], t["SQLite"][op], t["LMDB"][op]
        rows.append([op, f"{kv:.3f}", f"{s:.3f}", f"{lm:.3f}", f"{s / kv:.2f}" if kv else "-"])
    return rows, t


_STARTUP_CHILD = """
import sys, time
t = time.perf_counter()
from kv_backend import DB
from kv_backend.backup import backup_store
path, url, how = sys.argv[1:]
if how == "open":
    with DB(path, read_only=True) as db:
        report = db.backup(url)
else:
    report = backup_store(path, url)
assert report.files_copied == 0, report
# (VmHWM, not ru_maxrss, which a child keeps from the parent it was forked from)
with open("/proc/self/status") as f:
    rss = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
print(time.perf_counter() - t, rss)
"""


def startup(n: int) -> None:
    """Print the time and peak memory (Linux) of an incremental backup of a never-merged ``n``-key store."""
    work = tempfile.mkdtemp(prefix="kvb-bench-backup-startup-")
    try:
        path, url = os.path.join(work, "kv"), os.path.join(work, "bk")
        with DB(path) as db:
            for start in range(0, n, 1000):
                with db.batch() as b:
                    for i in range(start, min(start + 1000, n)):
                        b.put(b"key-%012d" % i, b"v%08d" % i)
            db.backup(url)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        rows = []
        for how, label in (("open", "DB(read_only=True) + db.backup"), ("path", "backup_store (kvb backup)")):
            runs = []
            for _ in range(3):
                out = subprocess.run(
                    [sys.executable, "-c", _STARTUP_CHILD, path, url, how],
                    env=env,
                    check=True,
                    capture_output=True,
                )
                seconds, rss = out.stdout.split()
                runs.append((float(seconds), int(rss)))
            seconds, rss = sorted(runs)[1]
            rows.append([label, f"{seconds:.2f}", f"{rss / 1024:.0f}"])
        print(
            f"incremental backup (nothing changed) of a never-merged store of {n:,} keys, "
            f"{dir_size(path) >> 20} MiB"
        )
        print(table(["how", "seconds (median of 3)", "peak RSS MiB"], rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def check_rate(target: int = 50 << 20) -> None:
    """Print the seconds the record check of a backup takes per 50 MB of records, by value size."""
    from kv_backend.check import snapshot_problems
    from kv_backend.files import data_name, list_data_files

    rows = []
    for value_size in (60, 1024, 4096):
        work = tempfile.mkdtemp(prefix="kvb-bench-backup-check-")
        try:
            path = os.path.join(work, "kv")
            value = os.urandom(value_size)
            n = target // (value_size + 40)
            with DB(path, max_file_size=1 << 30) as db:
                for start in range(0, n, 1000):
                    with db.batch() as b:
                        for i in range(start, min(start + 1000, n)):
                            b.put(b"key-%012d" % i, value)
            names = [os.path.join(path, data_name(fid)) for fid in list_data_files(path)]
            size = sum(os.path.getsize(name) for name in names)
            best = float("inf")
            for _ in range(3):
                spent = 0.0
                for name in names:
                    with open(name, "rb") as f:
                        data = f.read()
                    t = time.perf_counter()
                    problems = snapshot_problems(
                        lambda off, k, d=data: d[off : off + k], len(data), name, tail=True
                    )
                    spent += time.perf_counter() - t
                    assert not problems, problems
                best = min(best, spent)
            rows.append([f"{value_size:,} B", f"{n:,}", f"{size >> 20}", f"{best * (50 << 20) / size:.2f}"])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(f"record check of the data files a backup sends, best of 3, load {os.getloadavg()[0]:.1f}")
    print(table(["values", "records", "MiB", "seconds per 50 MB"], rows))


def verify_rate(target: int = 50 << 20) -> None:
    """Print the seconds a verify of a backup of a store of ``target`` bytes takes, against a restore
    of the same backup, both from local disk (best of 3)."""
    from kv_backend.backup import verify_backups

    work = tempfile.mkdtemp(prefix="kvb-bench-backup-verify-")
    try:
        path, url = os.path.join(work, "kv"), os.path.join(work, "bk")
        value = os.urandom(1000)
        n = target // (len(value) + 40)
        with DB(path) as db:
            for start in range(0, n, 1000):
                with db.batch() as b:
                    for i in range(start, min(start + 1000, n)):
                        b.put(b"key-%012d" % i, value)
            db.backup(url, name="one")
        size = dir_size(os.path.join(url, "files"))
        verify, restored = float("inf"), float("inf")
        for attempt in range(3):
            report = verify_backups(url)
            assert report.ok and report.bytes == size, report
            verify = min(verify, report.seconds)
            dest = os.path.join(work, f"restored-{attempt}")
            restored = min(restored, timed(lambda d=dest: restore(url, d)))
            shutil.rmtree(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [
        ["verify (kvb backups --verify)", f"{verify:.2f}", f"{size / verify / (1 << 20):.0f}"],
        ["restore", f"{restored:.2f}", f"{size / restored / (1 << 20):.0f}"],
    ]
    print(
        f"a backup of {n:,} keys with 1000-byte values ({size >> 20} MiB) on local disk, best of 3, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(table(["operation", "seconds", "MiB/s"], rows))


def chart(t: dict[str, dict[str, float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops = list(t["kv_backend"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.27
    for i, name in enumerate(t):
        ax.bar([x + (i - 1) * width for x in range(len(ops))], [t[name][o] for o in ops], width, label=name)
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops)
    ax.set_ylabel("seconds (lower is better)")
    ax.set_title("Backup and restore to local disk")
    ax.legend()
    fig.tight_layout()
    os.makedirs(CHART_DIR, exist_ok=True)
    fig.savefig(os.path.join(CHART_DIR, "backup.png"), dpi=100)


if __name__ == "__main__":
    main()
