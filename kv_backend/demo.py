"""A short demonstration of the engine: several processes sharing one store.

Run with ``python -m kv_backend.demo`` (``make demo`` does). It uses the
directory ``demo-data/`` next to the current directory and removes nothing else.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time

from kv_backend import DB


def _worker(path: str, n: int) -> None:
    with DB(path) as db:
        for i in range(n):
            db.incr(b"visits")
            db.put(f"worker:{os.getpid()}:{i}".encode(), b"hello", ttl=60)


def main(path: str = "demo-data/engine") -> None:
    """Show writes from four processes, a crash-safe batch, TTLs and reopening."""
    shutil.rmtree(path, ignore_errors=True)
    print(f"kv_backend demo: store at {os.path.abspath(path)}")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(path, 250)) for _ in range(4)]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    with DB(path) as db:
        print(f"4 processes x 250 atomic incr -> visits = {db[b'visits'].decode()} ({elapsed:.2f} s)")
        with db.batch() as b:
            b.put(b"order:1", b"paid")
            b.put(b"stock:42", b"9")
        print("batch applied:", db[b"order:1"], db[b"stock:42"])
        db.put(b"session", b"short-lived", ttl=0.5)
        print("session ttl:", round(db.ttl(b"session") or 0, 2), "s")
        time.sleep(0.6)
        print("after expiry:", db.get(b"session"))
        stats = db.stats()
    with DB(path, read_only=True) as db:
        print("reopened read-only: keys =", len(db), "first keys:", list(db.keys())[:3])
    print("stats:", {k: stats[k] for k in ("keys", "live_bytes", "dead_bytes", "files")})


if __name__ == "__main__":
    main()
