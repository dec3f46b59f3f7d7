"""Persistent dicts: kv_backend.Store and kv_backend.shelve vs stdlib shelve, sqlitedict, diskcache.Index.

Every store gets the same keys and values in the same run: ``set`` writes N
new keys (each write durable against a process kill when the call returns,
except sqlitedict, which commits once at the end of the phase, its default
mode), ``get`` reads them back in random order, ``iterate`` walks every
``(key, value)`` pair. Figures are operations per second; ratios are
kv_backend's speed divided by the peer's. sqlitedict hands every write to a
background thread; each of its chunks of writes ends with a round trip to
that thread, so the time includes the work it queued (otherwise that work
would run during, and be charged to, the next store's chunk).

    python benchmarks/bench_store.py [--quick] [-n N] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import random
import shelve
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from statistics import median
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _report

import kv_backend.shelve as kshelve
from kv_backend import Store

PHASES = ("set", "get", "iterate")
ALONE = "get, each store alone"


def _value(i: int) -> dict[str, Any]:
    return {"id": i, "name": f"user{i}", "tags": ["alpha", "beta"], "score": i * 0.5}


def _openers(base: str) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
    """name -> (open, finish_writes) for every store in the comparison."""
    out: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
        "kv_backend.Store": (lambda: Store(os.path.join(base, "store")), lambda s: None),
        "kv_backend.shelve": (lambda: kshelve.open(os.path.join(base, "kvshelf")), lambda s: None),
        "stdlib shelve": (lambda: shelve.open(os.path.join(base, "stdshelf")), lambda s: s.sync()),  # noqa: SIM115
    }
    try:
        from sqlitedict import SqliteDict

        out["sqlitedict"] = (
            lambda: SqliteDict(os.path.join(base, "sqlitedict.sqlite")),
            lambda s: s.commit(),
        )
    except ImportError:
        print("sqlitedict is not installed: skipped", file=sys.stderr)
    try:
        from diskcache import Index

        out["diskcache.Index"] = (lambda: Index(os.path.join(base, "diskcache")), lambda s: None)
    except ImportError:
        print("diskcache is not installed: skipped", file=sys.stderr)
    return out


def _settle(s: Any) -> None:
    """Wait until a store has done the writes it queued (sqlitedict's background thread)."""
    conn = getattr(s, "conn", None)
    if conn is not None and hasattr(conn, "select_one"):
        conn.select_one("SELECT 1")  # queued behind every write it has not run yet


def _close(s: Any) -> None:
    close = getattr(s, "close", None)
    if close is not None:
        close()
    else:  # diskcache.Index has no close(); its cache does
        s.cache.close()


CHUNK = 250


def _read(s: Any, name: str, keys: list[str], indexes: list[int]) -> None:
    """Read ``keys[i]`` for each ``i`` of ``indexes``, checking each value."""
    for i in indexes:
        if s[keys[i]]["id"] != i:
            raise AssertionError(f"{name} read back a wrong value")


def run_round(
    openers: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]], n: int, seed: int
) -> dict[str, dict[str, float]]:
    """One round: every store does each phase, interleaved in chunks of CHUNK operations.

    The machine's load changes from second to second; running the stores turn
    about on small chunks makes those changes hit every store alike, so the
    ratios stay meaningful even on a busy machine.
    """
    keys = [f"key-{i:08d}" for i in range(n)]
    values = [_value(i) for i in range(n)]
    order = list(range(n))
    random.Random(seed).shuffle(order)
    stores = {name: open_() for name, (open_, _) in openers.items()}
    spent = {name: dict.fromkeys(PHASES, 0.0) for name in stores}
    names = list(stores)
    perf = time.perf_counter
    try:
        for c, lo in enumerate(range(0, n, CHUNK)):
            rotated = names[c % len(names) :] + names[: c % len(names)]
            for name in rotated:
                s = stores[name]
                t = perf()
                for i in range(lo, min(lo + CHUNK, n)):
                    s[keys[i]] = values[i]
                _settle(s)
                spent[name]["set"] += perf() - t
        for name in names:
            t = perf()
            openers[name][1](stores[name])  # sqlitedict's commit, stdlib shelve's index sync
            spent[name]["set"] += perf() - t
        for c, lo in enumerate(range(0, n, CHUNK)):
            rotated = names[c % len(names) :] + names[: c % len(names)]
            chunk = order[lo : lo + CHUNK]
            for name in rotated:
                t = perf()
                _read(stores[name], name, keys, chunk)
                spent[name]["get"] += perf() - t
        # Context, not a target: the same reads with each store alone, its caches warm from its own work.
        alone: dict[str, float] = {}
        for name in names:
            t = perf()
            _read(stores[name], name, keys, order)
            alone[name] = n / (perf() - t)
        for name in names:
            t = perf()
            count = sum(1 for _ in stores[name].items())
            spent[name]["iterate"] += perf() - t
            if count != n:
                raise AssertionError(f"{name} iterated {count} items, expected {n}")
    finally:
        for s in stores.values():
            _close(s)
    return {name: {**{p: n / spent[name][p] for p in PHASES}, ALONE: alone[name]} for name in names}


def ratio(rounds: list[dict[str, dict[str, float]]], ours: str, peer: str, phase: str) -> float:
    """Median over rounds of ours/peer measured in the same round (robust to a changing load)."""
    return median(r[ours][phase] / r[peer][phase] for r in rounds)


def chart(results: dict[str, dict[str, float]], path: str) -> None:
    _report.grouped_bars(
        {name: [res[p] for p in PHASES] for name, res in results.items()},
        PHASES,
        path,
        title="Persistent dicts: kv_backend vs stdlib shelve, sqlitedict, diskcache.Index",
        ylabel="operations per second (log scale, higher is better)",
        log=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (2,000 keys, one round)")
    parser.add_argument("-n", type=int, default=None, help="number of keys (default 10,000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds; medians over rounds are reported")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/ unchanged")
    args = parser.parse_args(argv)
    n = args.n or (2_000 if args.quick else 10_000)
    repeat = args.repeat or (1 if args.quick else 5)
    load_before = os.getloadavg()[0]

    results: dict[str, dict[str, float]] = {}
    base = tempfile.mkdtemp(prefix="kvb-bench-store-")
    try:
        openers = _openers(base)
        rounds: list[dict[str, dict[str, float]]] = []
        for r in range(repeat):
            for entry in os.listdir(base):
                full = os.path.join(base, entry)
                shutil.rmtree(full) if os.path.isdir(full) else os.remove(full)
            got = run_round(openers, n, seed=r)
            rounds.append(got)
            for name, res in got.items():
                figures = "  ".join(f"{p} {res[p]:>10,.0f}/s" for p in PHASES)
                print(f"round {r + 1}/{repeat} {name:18s} {figures}", flush=True)
        columns = (*PHASES, ALONE)
        results = {name: {p: median(r[name][p] for r in rounds) for p in columns} for name in openers}
        load_after = os.getloadavg()[0]
    finally:
        shutil.rmtree(base, ignore_errors=True)

    rows = []
    for name, res in results.items():
        rows.append([name, *(f"{res[p]:,.0f}" for p in (*PHASES, ALONE))])
    ratio_rows = []
    for ours in ("kv_backend.Store", "kv_backend.shelve"):
        for peer in results:
            if peer.startswith("kv_backend"):
                continue
            ratio_rows.append(
                [f"{ours} / {peer}", *(f"{ratio(rounds, ours, peer, p):.1f}x" for p in (*PHASES, ALONE))]
            )
    checks = []
    for ours in ("kv_backend.Store", "kv_backend.shelve"):
        for p in ("set", "get"):
            r = ratio(rounds, ours, "stdlib shelve", p)
            verdict = "met" if r >= 5 else "MISSED"
            checks.append(f"- {ours} {p} vs stdlib shelve: {r:.2f}x (target 5x) {verdict}")
    if "diskcache.Index" in results:
        for ours in ("kv_backend.Store", "kv_backend.shelve"):
            r = ratio(rounds, ours, "diskcache.Index", "set")
            verdict = "met" if r >= 3 else "MISSED"
            checks.append(f"- {ours} set vs diskcache.Index: {r:.2f}x (target 3x) {verdict}")

    text = "\n".join(
        [
            f"{n:,} keys (`key-00000001`...), values are small dicts (~90 bytes pickled); {repeat} "
            f"rounds; in each round the stores take turns on chunks of {CHUNK} operations. Figures are "
            "medians over the rounds; each speed-up is the median of the same-round ratios. "
            "Operations per second, higher is better. stdlib `shelve` runs on "
            f"the interpreter's default dbm (`{_default_dbm()}` here). kv_backend and diskcache make "
            "every write survive a killed process when the call returns; sqlitedict runs in its default "
            "mode (writes queued to its background thread, one commit at the end of the phase; each of its "
            "chunks waits for that thread to run the writes it queued, so their time is counted as its own). "
            f"Load average {load_before:.1f} before and {load_after:.1f} after the run on "
            f"{os.cpu_count()} cores"
            + (
                ": a busy machine, so these figures are provisional."
                if load_before > 1 or load_after > 1
                else "."
            ),
            "",
            _report.table(["store", *PHASES, ALONE], rows),
            "",
            "Speed-up of kv_backend (median of its ops/s divided by the peer's, same round):",
            "",
            _report.table(["comparison", *PHASES, ALONE], ratio_rows),
            "",
            "The last column reads the same keys in the same order once more, each store alone (no other "
            "store's work between its reads, so its caches stay warm). It shows how much of the interleaved "
            "gap is cache misses; the targets are judged on the interleaved figures.",
            "",
            "Targets:",
            "",
            *checks,
            "",
            "![store benchmark](charts/store.png)",
        ]
    )
    print()
    print(text)
    if not args.no_write:
        _report.write_section("store", text)
        chart(results, os.path.join(_report.CHART_DIR, "store.png"))
    return 0


def _default_dbm() -> str:
    import dbm

    for name in dbm._names:  # the order dbm.open tries them in
        try:
            __import__(name)
            return name
        except ImportError:
            continue
    return "dbm.dumb"


if __name__ == "__main__":
    sys.exit(main())
