"""Storage-engine benchmark: kv_backend.DB against diskcache, py-lmdb, sqlitedict, dbm and a dict.

Every store runs in the same process run, one after the other, each in a fresh
temporary directory, with the same random 16-byte keys and 100-byte values:

* set (every key once), get (every key, random order), delete (every key);
* open time of an existing store holding N keys (including the index load);
* memory held per key once a store is open (Python heap through tracemalloc,
  and the RSS delta), measured in a fresh interpreter; for kv_backend also at
  ``--memory-keys`` keys, the figure the key-directory target refers to;
* several processes sharing ONE store, each running a 50% set / 50% get mix
  on a shared key space: aggregate ops/s and per-op latency percentiles.

It prints a table with microseconds per operation and ratios against
kv_backend, checks the targets of the storage engine (PASS/FAIL), then writes
the ``engine`` section of docs/benchmarks.md and docs/charts/engine.png.

    python benchmarks/bench_engine.py            # N = 100k keys, 1M keys for memory
    python benchmarks/bench_engine.py --quick    # about 30 seconds
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import os
import pickle
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (HERE, ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import _report  # noqa: E402

KEY_SIZE = 16
VALUE_SIZE = 100
KVB = "kv_backend"

# Targets of the storage engine (issue #2).
SET_VS_DISKCACHE = 10.0  # kv_backend set at least this many times faster than diskcache.Cache.set
GET_VS_DISKCACHE = 3.0  # kv_backend get at least this many times faster than diskcache.Cache.get
GET_VS_LMDB = 1.5  # kv_backend get at most this many times lmdb's get
KEYDIR_BYTES_PER_KEY = 130  # Python heap held per 16-byte key by an open DB ...
KEYDIR_TARGET_KEYS = 1_000_000  # ... holding this many keys


# --------------------------------------------------------------------------- the stores


@dataclass
class Store:
    """How to drive one library: open/close a store and the three per-key operations.

    ``put``, ``get`` and ``delete`` take an open handle and return the bound
    callable that the timing loops call once per key, so that every library
    pays the same loop overhead.
    """

    name: str
    module: str  # what must be importable for the row to run
    open: Callable[[str, int], Any]  # (path, expected key count) -> handle
    close: Callable[[Any], None]
    put: Callable[[Any], Callable[[bytes, bytes], Any]]
    get: Callable[[Any], Callable[[bytes], Any]]
    delete: Callable[[Any], Callable[[bytes], Any]]
    index: str  # where the store keeps its index (explains the memory figures)
    multiprocess: bool = True

    def missing(self) -> str | None:
        """Return why this store cannot run here, or None if it can."""
        try:
            __import__(self.module)
        except ImportError:
            return "not installed"
        return None


def _kvb_open(path: str, n: int) -> Any:
    from kv_backend import DB

    return DB(path, sync="never")


def _diskcache_open(path: str, n: int) -> Any:
    import diskcache

    return diskcache.Cache(path)


def _lmdb_map_size(n: int) -> int:
    return max(256 << 20, n * 4096)


def _lmdb_open(path: str, n: int) -> Any:
    import lmdb

    return lmdb.open(path, map_size=_lmdb_map_size(n), sync=False)


def _lmdb_put(env: Any) -> Callable[[bytes, bytes], Any]:
    begin = env.begin

    def put(key: bytes, value: bytes) -> None:
        with begin(write=True) as txn:
            txn.put(key, value)

    return put


def _lmdb_get(env: Any) -> Callable[[bytes], Any]:
    begin = env.begin

    def get(key: bytes) -> bytes | None:
        with begin() as txn:
            return txn.get(key)

    return get


def _lmdb_delete(env: Any) -> Callable[[bytes], Any]:
    begin = env.begin

    def delete(key: bytes) -> bool:
        with begin(write=True) as txn:
            return txn.delete(key)

    return delete


def _sqlitedict_open(path: str, n: int) -> Any:
    from sqlitedict import SqliteDict

    return SqliteDict(path + ".sqlite", autocommit=True)


def _dbm_open(path: str, n: int) -> Any:
    import dbm

    return dbm.open(path, "c")


class PickledDict(dict):
    """The in-memory ceiling: a dict, pickled to a file on close and unpickled on open."""

    path = ""

    @classmethod
    def load(cls, path: str, n: int) -> PickledDict:
        d = cls()
        if os.path.exists(path):
            with open(path, "rb") as f:
                d.update(pickle.load(f))
        d.path = path
        return d

    def close(self) -> None:
        with open(self.path, "wb") as f:
            pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)


STORES: dict[str, Store] = {
    s.name: s
    for s in (
        Store(
            KVB,
            "kv_backend",
            _kvb_open,
            lambda db: db.close(),
            lambda db: db.put,
            lambda db: db.get,
            lambda db: db.delete,
            "in-memory key directory (dict of packed ints)",
        ),
        Store(
            "diskcache",
            "diskcache",
            _diskcache_open,
            lambda c: c.close(),
            lambda c: c.set,
            lambda c: c.get,
            lambda c: c.delete,
            "SQLite B-tree on disk (page cache)",
        ),
        Store(
            "lmdb",
            "lmdb",
            _lmdb_open,
            lambda env: env.close(),
            _lmdb_put,
            _lmdb_get,
            _lmdb_delete,
            "memory-mapped B+tree (page cache)",
        ),
        Store(
            "sqlitedict",
            "sqlitedict",
            _sqlitedict_open,
            lambda d: d.close(),
            lambda d: d.__setitem__,
            lambda d: d.__getitem__,
            lambda d: d.__delitem__,
            "SQLite B-tree on disk (page cache)",
            multiprocess=False,
        ),
        Store(
            "dbm",
            "dbm",
            _dbm_open,
            lambda d: d.close(),
            lambda d: d.__setitem__,
            lambda d: d.__getitem__,
            lambda d: d.__delitem__,
            "depends on the dbm module (dbm.dumb: in-memory dict of offsets)",
            multiprocess=False,
        ),
        Store(
            "dict+pickle",
            "pickle",
            PickledDict.load,
            lambda d: d.close(),
            lambda d: d.__setitem__,
            lambda d: d.__getitem__,
            lambda d: d.__delitem__,
            "the whole dict, values included, in memory",
            multiprocess=False,
        ),
    )
}


def dbm_module(path: str) -> str:
    """Return the module ``dbm`` picked for the store at ``path`` (e.g. dbm.dumb)."""
    import dbm

    return dbm.whichdb(path) or "unknown"


# --------------------------------------------------------------------------- data and timing


def make_keys(n: int, seed: int = 1) -> list[bytes]:
    """Return ``n`` distinct random 16-byte keys (deterministic for a seed)."""
    rng = random.Random(seed)
    keys: list[bytes] = []
    seen: set[bytes] = set()
    while len(keys) < n:
        blob = rng.randbytes(KEY_SIZE * (n - len(keys)))
        for i in range(0, len(blob), KEY_SIZE):
            k = blob[i : i + KEY_SIZE]
            if k not in seen:
                seen.add(k)
                keys.append(k)
    return keys


def make_value(seed: int = 2) -> bytes:
    """Return the 100-byte value every benchmark writes."""
    return random.Random(seed).randbytes(VALUE_SIZE)


_CHUNK = 64  # operations between two looks at the clock, once operations prove fast


def _next_chunk(size: int, spent: float) -> int:
    """Grow the chunk while a chunk takes under 5 ms, so a very slow store still stops near the cap."""
    return size * 2 if size < _CHUNK and spent < 0.005 else size


@dataclass
class Timing:
    """Seconds spent on ``done`` operations out of ``total`` asked for."""

    seconds: float
    done: int
    total: int

    @property
    def us_per_op(self) -> float:
        return self.seconds / self.done * 1e6 if self.done else float("nan")

    @property
    def partial(self) -> bool:
        return self.done < self.total


def time_puts(put: Callable[[bytes, bytes], Any], keys: Sequence[bytes], value: bytes, cap: float) -> Timing:
    """Call ``put(key, value)`` for every key; stop early once ``cap`` seconds have passed."""
    clock = time.perf_counter
    done = 0
    elapsed = 0.0
    n = len(keys)
    size = 1
    while done < n and elapsed < cap:
        chunk = keys[done : done + size]
        t0 = clock()
        for k in chunk:
            put(k, value)
        spent = clock() - t0
        elapsed += spent
        done += len(chunk)
        size = _next_chunk(size, spent)
    return Timing(elapsed, done, n)


def time_calls(fn: Callable[[bytes], Any], keys: Sequence[bytes], cap: float) -> Timing:
    """Call ``fn(key)`` for every key; stop early once ``cap`` seconds have passed."""
    clock = time.perf_counter
    done = 0
    elapsed = 0.0
    n = len(keys)
    size = 1
    while done < n and elapsed < cap:
        chunk = keys[done : done + size]
        t0 = clock()
        for k in chunk:
            fn(k)
        spent = clock() - t0
        elapsed += spent
        done += len(chunk)
        size = _next_chunk(size, spent)
    return Timing(elapsed, done, n)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


# --------------------------------------------------------------------------- memory (fresh interpreter)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1


def _memory_child(name: str, path: str, n: int, probe_hex: str, mode: str) -> dict[str, Any]:
    """Open the store in this (fresh) process and return what opening it added to memory."""
    store = STORES[name]
    __import__(store.module)
    if name == KVB:
        import kv_backend.db  # noqa: F401  (every engine module loaded before the baseline)
    probe = bytes.fromhex(probe_hex)
    gc.collect()
    if mode == "tracemalloc":
        import tracemalloc

        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        handle = store.open(path, n)
        store.get(handle)(probe)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
    else:
        rss0 = _rss_bytes()
        handle = store.open(path, n)
        store.get(handle)(probe)
        gc.collect()
        held = _rss_bytes() - rss0
    return {"bytes": held, "per_key": held / n if n else float("nan")}


def measure_memory(name: str, path: str, n: int, probe: bytes, mode: str, timeout: float = 600) -> float:
    """Bytes per key held after opening the store at ``path`` in a fresh interpreter.

    ``mode`` is ``"tracemalloc"`` (Python heap allocated by the open and still
    held) or ``"rss"`` (resident set growth). Returns NaN if the child fails.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [sys.executable, os.path.abspath(__file__), "--child-memory", name, path, str(n), probe.hex(), mode]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        print(f"  memory ({mode}) of {name} failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return float("nan")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["per_key"])


def keydir_memory(m: int, tmp: str, batch: int = 1000) -> dict[str, float]:
    """Build a kv_backend store with ``m`` keys, then measure its key directory in a fresh process."""
    from kv_backend import DB

    path = os.path.join(tmp, "kvb-memory")
    keys = make_keys(m, seed=7)
    value = make_value()
    t0 = time.perf_counter()
    with DB(path, sync="never") as db:
        for i in range(0, m, batch):
            with db.batch() as b:
                for k in keys[i : i + batch]:
                    b.put(k, value)
    build = time.perf_counter() - t0
    probe = keys[0]
    del keys
    gc.collect()
    try:
        heap = measure_memory(KVB, path, m, probe, "tracemalloc")
        rss = measure_memory(KVB, path, m, probe, "rss")
        t0 = time.perf_counter()
        DB(path, sync="never").close()
        open_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {"keys": m, "heap_per_key": heap, "rss_per_key": rss, "build_s": build, "open_s": open_s}


# --------------------------------------------------------------------------- one process


@dataclass
class SingleResult:
    """Figures of one store in one process."""

    name: str
    skipped: str | None = None
    label: str = ""
    set: Timing | None = None
    get: Timing | None = None
    delete: Timing | None = None
    open_ms: float = float("nan")
    heap_per_key: float = float("nan")
    rss_per_key: float = float("nan")
    memory_keys: int = 0
    notes: list[str] = field(default_factory=list)


_SLICE = 1000  # keys one store works through before the next store takes its turn


def _interleave(
    work: dict[str, tuple[Callable[..., Any], Sequence[bytes]]],
    value: bytes | None,
    cap: float,
    failed: dict[str, str],
) -> dict[str, Timing]:
    """Run every store's pass over its keys in turns of ``_SLICE`` keys, timing each store apart.

    Taking turns spreads the changing load of a shared machine evenly over
    the stores, so the ratios stay fair even when absolute figures drift.
    ``value`` given means the callables are puts. A store stops at ``cap``
    seconds of its own time; one that raises is recorded in ``failed`` and
    left out of the result.
    """
    seconds = dict.fromkeys(work, 0.0)
    done = dict.fromkeys(work, 0)
    active = list(work)
    while active:
        for name in list(active):
            fn, keys = work[name]
            part = keys[done[name] : done[name] + _SLICE]
            left = cap - seconds[name]
            try:
                t = time_puts(fn, part, value, left) if value is not None else time_calls(fn, part, left)
            except Exception as exc:
                failed[name] = f"failed: {type(exc).__name__}: {exc}"
                traceback.print_exc()
                active.remove(name)
                continue
            seconds[name] += t.seconds
            done[name] += t.done
            if done[name] >= len(keys) or seconds[name] >= cap:
                active.remove(name)
    return {
        name: Timing(seconds[name], done[name], len(work[name][1])) for name in work if name not in failed
    }


def bench_one_process(
    names: Sequence[str],
    keys: Sequence[bytes],
    value: bytes,
    tmp: str,
    cap: float = 30.0,
    min_time: float = 1.0,
    reopens: int = 5,
    memory: bool = True,
    max_passes: int = 5,
) -> dict[str, SingleResult]:
    """Set / get / open / memory / delete for every store, each in a fresh directory under ``tmp``.

    All stores are open side by side and take turns (see :func:`_interleave`):
    set every key, get every key in random order (passes until ``min_time``
    seconds, keeping the fastest: the one least disturbed by other work),
    reopen (median of ``reopens``, index load and one get included), memory
    in a fresh interpreter, then delete every key in random order. A store
    that is missing or raises gets a ``skipped`` reason; the others go on.
    """
    results = {name: SingleResult(name, label=name) for name in names}
    failed: dict[str, str] = {}
    roots: dict[str, str] = {}
    handles: dict[str, Any] = {}
    n = len(keys)
    rng = random.Random(3)
    for name in names:
        why = STORES[name].missing()
        if why:
            failed[name] = why

    def live() -> list[str]:
        return [name for name in names if name not in failed]

    def each(step: Callable[[str, Store], None]) -> None:
        for name in live():
            try:
                step(name, STORES[name])
            except Exception as exc:
                failed[name] = f"failed: {type(exc).__name__}: {exc}"
                traceback.print_exc()
                h = handles.pop(name, None)
                if h is not None:
                    try:
                        STORES[name].close(h)
                    except Exception:
                        pass

    def path(name: str) -> str:
        return os.path.join(roots[name], "store")

    def open_store(name: str, store: Store) -> None:
        handles[name] = store.open(path(name), n)

    def close_store(name: str, store: Store) -> None:
        store.close(handles.pop(name))

    try:

        def create(name: str, store: Store) -> None:
            roots[name] = tempfile.mkdtemp(prefix=f"{name.replace('+', '_')}-", dir=tmp)
            open_store(name, store)

        each(create)
        gc.collect()
        sets = _interleave({k: (STORES[k].put(handles[k]), keys) for k in live()}, value, cap, failed)
        stored = {name: keys[: t.done] for name, t in sets.items()}
        orders = {name: rng.sample(ks, len(ks)) for name, ks in stored.items()}

        gets: dict[str, Timing] = {}
        spent: dict[str, float] = {}
        passes: dict[str, int] = {}
        pending = live()
        while pending:
            gc.collect()
            got = _interleave({k: (STORES[k].get(handles[k]), orders[k]) for k in pending}, None, cap, failed)
            for name, t in got.items():
                if name not in gets or t.us_per_op < gets[name].us_per_op:
                    gets[name] = t
                spent[name] = spent.get(name, 0.0) + t.seconds
                passes[name] = passes.get(name, 0) + 1
            pending = [
                k for k in got if not got[k].partial and spent[k] < min_time and passes[k] < max_passes
            ]

        def verify_and_close(name: str, store: Store) -> None:
            for k in (stored[name][0], stored[name][-1]):
                found = store.get(handles[name])(k)
                if found != value:
                    raise RuntimeError(f"{name} returned {found!r} for a key it was given: broken benchmark")
            close_store(name, store)
            if name == "dbm":
                results[name].label = f"dbm ({dbm_module(path(name))})"

        each(verify_and_close)

        times: dict[str, list[float]] = {name: [] for name in live()}

        def reopen(name: str, store: Store) -> None:
            if times[name] and sum(times[name]) >= cap:
                return
            gc.collect()
            t0 = time.perf_counter()
            h = store.open(path(name), n)
            store.get(h)(stored[name][0])
            times[name].append(time.perf_counter() - t0)
            store.close(h)

        for _ in range(reopens):
            each(reopen)

        def measure(name: str, store: Store) -> None:
            r, count, probe = results[name], len(stored[name]), stored[name][0]
            r.memory_keys = count
            r.heap_per_key = measure_memory(name, path(name), count, probe, "tracemalloc")
            r.rss_per_key = measure_memory(name, path(name), count, probe, "rss")

        if memory:
            each(measure)
        each(open_store)
        gc.collect()
        deletes = _interleave(
            {k: (STORES[k].delete(handles[k]), rng.sample(stored[k], len(stored[k]))) for k in live()},
            None,
            cap,
            failed,
        )
        each(close_store)
        for name in live():
            r = results[name]
            r.set, r.get, r.delete = sets[name], gets[name], deletes[name]
            r.open_ms = statistics.median(times[name]) * 1e3
            for op, t in (("set", r.set), ("get", r.get), ("delete", r.delete)):
                if t.partial:
                    r.notes.append(f"{op}: {t.done:,} of {t.total:,} keys")
    finally:
        for name, h in handles.items():
            try:
                STORES[name].close(h)
            except Exception:
                pass
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)
    for name, why in failed.items():
        results[name].skipped = why
    return results


def best_of(a: SingleResult, b: SingleResult) -> SingleResult:
    """Merge two rounds of one store: the fastest figure of each operation, memory from whichever has it."""
    if a.skipped or b.skipped:
        return a if not a.skipped else b

    def faster(x: Timing | None, y: Timing | None) -> Timing | None:
        if x is None or y is None:
            return x or y
        return x if x.us_per_op <= y.us_per_op else y

    out = SingleResult(a.name, label=a.label)
    out.set, out.get, out.delete = faster(a.set, b.set), faster(a.get, b.get), faster(a.delete, b.delete)
    out.open_ms = min(a.open_ms, b.open_ms)
    out.heap_per_key = a.heap_per_key if a.heap_per_key == a.heap_per_key else b.heap_per_key
    out.rss_per_key = a.rss_per_key if a.rss_per_key == a.rss_per_key else b.rss_per_key
    out.memory_keys = a.memory_keys or b.memory_keys
    out.notes = [
        f"{op}: {t.done:,} of {t.total:,} keys"
        for op, t in (("set", out.set), ("get", out.get), ("delete", out.delete))
        if t is not None and t.partial
    ]
    return out


# --------------------------------------------------------------------------- several processes


@dataclass
class MultiResult:
    """Figures of several processes sharing one store."""

    name: str
    skipped: str | None = None
    procs: int = 0
    ops: int = 0
    ops_per_s: float = float("nan")
    p50_us: float = float("nan")
    p99_us: float = float("nan")
    set_p99_us: float = float("nan")
    get_p99_us: float = float("nan")
    errors: list[str] = field(default_factory=list)


def _mp_worker(
    name: str,
    path: str,
    keys: Sequence[bytes],
    value: bytes,
    n_ops: int,
    seed: int,
    barrier: Any,
    conn: Any,
) -> None:
    """Run ``n_ops`` operations (half sets, half gets) and send back start, end and latencies."""
    try:
        store = STORES[name]
        h = store.open(path, len(keys))
        put = store.put(h)
        get = store.get(h)
        rng = random.Random(seed)
        plan = [(rng.random() < 0.5, keys[rng.randrange(len(keys))]) for _ in range(n_ops)]
        set_lat = array("q")
        get_lat = array("q")
        add_set = set_lat.append
        add_get = get_lat.append
        clock = time.perf_counter_ns
        barrier.wait(timeout=120)
        start = clock()
        for is_set, k in plan:
            if is_set:
                t0 = clock()
                put(k, value)
                add_set(clock() - t0)
            else:
                t0 = clock()
                get(k)
                add_get(clock() - t0)
        end = clock()
        store.close(h)
        conn.send_bytes(pickle.dumps(("ok", start, end, set_lat.tobytes(), get_lat.tobytes())))
    except BaseException:
        try:
            barrier.abort()
        except Exception:
            pass
        conn.send_bytes(pickle.dumps(("error", traceback.format_exc())))
    finally:
        conn.close()


def bench_multi(
    name: str, tmp: str, procs: int = 4, ops: int = 20_000, keyspace: int = 10_000, seed: int = 11
) -> MultiResult:
    """``procs`` processes, ``ops`` operations each (50% set / 50% get), on ONE store.

    The key space is written once beforehand so that every get finds its key.
    Throughput is all operations over the span from the first worker's start
    to the last worker's end (perf_counter_ns is one monotonic clock for the
    whole machine); percentiles are over every operation of every worker.
    """
    store = STORES[name]
    res = MultiResult(name, procs=procs, ops=ops)
    why = store.missing() or (None if store.multiprocess else "not safe for several processes")
    if why:
        res.skipped = why
        return res
    root = tempfile.mkdtemp(prefix=f"mp-{name}-", dir=tmp)
    path = os.path.join(root, "store")
    keys = make_keys(keyspace, seed=seed)
    value = make_value()
    try:
        h = store.open(path, keyspace)
        put = store.put(h)
        for k in keys:
            put(k, value)
        store.close(h)
        # forkserver: workers start from a clean interpreter, not from a copy of this
        # process (whose other state, e.g. open broker connections in a test run,
        # has after-fork hooks of its own).
        ctx = multiprocessing.get_context("forkserver")
        barrier = ctx.Barrier(procs + 1)
        workers = []
        for i in range(procs):
            parent, child = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=_mp_worker, args=(name, path, keys, value, ops, seed * 1000 + i, barrier, child)
            )
            p.start()
            child.close()
            workers.append((p, parent))
        try:
            barrier.wait(timeout=120)
        except Exception:
            pass  # a worker failed before starting: its error comes through its pipe
        starts, ends = [], []
        set_lat: list[int] = []
        get_lat: list[int] = []
        for p, conn in workers:
            try:
                msg = pickle.loads(conn.recv_bytes())
            except EOFError:
                msg = ("error", f"worker exited with code {p.exitcode} without reporting")
            p.join(60)
            if msg[0] != "ok":
                res.errors.append(msg[1])
                continue
            _, start, end, s_raw, g_raw = msg
            starts.append(start)
            ends.append(end)
            set_lat.extend(array("q", s_raw))
            get_lat.extend(array("q", g_raw))
        if res.errors:
            res.skipped = "failed: " + res.errors[0].strip().splitlines()[-1]
            return res
        total = len(set_lat) + len(get_lat)
        res.ops_per_s = total / ((max(ends) - min(starts)) / 1e9)
        both = sorted(set_lat + get_lat)
        set_lat.sort()
        get_lat.sort()
        res.p50_us = percentile(both, 50) / 1e3
        res.p99_us = percentile(both, 99) / 1e3
        res.set_p99_us = percentile(set_lat, 99) / 1e3
        res.get_p99_us = percentile(get_lat, 99) / 1e3
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return res


# --------------------------------------------------------------------------- report


def _fmt(x: float, digits: int = 2) -> str:
    if x != x:  # NaN
        return "n/a"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _us(t: Timing | None) -> str:
    if t is None:
        return "n/a"
    return _fmt(t.us_per_op) + ("*" if t.partial else "")


def _ratio(t: Timing | None, base: Timing | None) -> str:
    if t is None or base is None or not t.done or not base.done:
        return "n/a"
    return _x(t.us_per_op / base.us_per_op)


def _x(ratio: float) -> str:
    """A ratio with about three significant digits (1,234x, 20.1x, 0.46x, 0.0106x)."""
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


@dataclass
class Check:
    """One target: ``ok`` is None when it could not be evaluated (a peer is missing)."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        word = "SKIP" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return f"{word}  {self.name}: {self.detail}"


def checks(
    single: dict[str, SingleResult], multi: dict[str, MultiResult], memory: dict[str, float] | None
) -> list[Check]:
    """Evaluate the engine's targets against the measured figures."""
    out: list[Check] = []
    kvb = single.get(KVB)

    def us(name: str, op: str) -> float | None:
        r = single.get(name)
        t = getattr(r, op, None) if r is not None and not r.skipped else None
        return t.us_per_op if t is not None and t.done else None

    def ratio_check(title: str, op: str, peer: str, want: Callable[[float, float], bool], rule: str) -> None:
        mine, theirs = us(KVB, op), us(peer, op)
        if mine is None or theirs is None:
            out.append(Check(title, None, f"{peer if theirs is None else KVB} not measured"))
            return
        out.append(
            Check(
                title,
                want(mine, theirs),
                f"{KVB} {mine:.2f} us, {peer} {theirs:.2f} us, {peer}/kvb = {theirs / mine:.2f}x ({rule})",
            )
        )

    if kvb is None or kvb.skipped:
        return [Check("all targets", None, f"{KVB} not measured")]
    ratio_check(
        "set >= 10x faster than diskcache",
        "set",
        "diskcache",
        lambda m, t: t / m >= SET_VS_DISKCACHE,
        f"needs >= {SET_VS_DISKCACHE:g}x",
    )
    ratio_check("set no slower than lmdb", "set", "lmdb", lambda m, t: m <= t, "needs >= 1x")
    ratio_check(
        "get >= 3x faster than diskcache",
        "get",
        "diskcache",
        lambda m, t: t / m >= GET_VS_DISKCACHE,
        f"needs >= {GET_VS_DISKCACHE:g}x",
    )
    ratio_check(
        "get within 1.5x of lmdb",
        "get",
        "lmdb",
        lambda m, t: m <= GET_VS_LMDB * t,
        f"needs >= {1 / GET_VS_LMDB:.2f}x",
    )
    if memory and memory.get("heap_per_key") == memory.get("heap_per_key"):
        per_key = memory["heap_per_key"]
        out.append(
            Check(
                f"key directory <= {KEYDIR_BYTES_PER_KEY} bytes/key",
                per_key <= KEYDIR_BYTES_PER_KEY,
                f"{per_key:.1f} bytes of Python heap per 16-byte key at {memory['keys']:,} keys"
                + (
                    f" (indicative only: the target is set at {KEYDIR_TARGET_KEYS:,} keys, and a dict's "
                    "table is sized in powers of two, so other counts read differently)"
                    if memory["keys"] != KEYDIR_TARGET_KEYS
                    else ""
                ),
            )
        )
    else:
        out.append(Check(f"key directory <= {KEYDIR_BYTES_PER_KEY} bytes/key", None, "not measured"))
    mk, md = multi.get(KVB), multi.get("diskcache")
    title = "several processes: throughput and p99 next to diskcache"
    if mk is None or mk.skipped or md is None or md.skipped:
        why = "kv_backend" if mk is None or mk.skipped else "diskcache"
        out.append(Check(title, None, f"{why} not measured"))
    else:
        out.append(
            Check(
                title,
                mk.ops_per_s >= md.ops_per_s and mk.p99_us <= md.p99_us,
                f"{mk.procs} processes: {KVB} {mk.ops_per_s:,.0f} ops/s p99 {mk.p99_us:,.1f} us, "
                f"diskcache {md.ops_per_s:,.0f} ops/s p99 {md.p99_us:,.1f} us "
                f"(throughput kvb/diskcache = {mk.ops_per_s / md.ops_per_s:.1f}x, "
                f"p99 diskcache/kvb = {md.p99_us / mk.p99_us:.1f}x; passes when both are >= 1x)",
            )
        )
    return out


def single_table(single: dict[str, SingleResult]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the one-process table."""
    base = single.get(KVB)
    headers = [
        "store",
        "set us/op",
        "get us/op",
        "delete us/op",
        "open ms",
        "set vs kvb",
        "get vs kvb",
        "delete vs kvb",
    ]
    rows: list[list[object]] = []
    for r in single.values():
        if r.skipped:
            rows.append([r.label, f"skipped: {r.skipped}", "", "", "", "", "", ""])
            continue
        b = base if base is not None and not base.skipped else None
        rows.append(
            [
                r.label,
                _us(r.set),
                _us(r.get),
                _us(r.delete),
                _fmt(r.open_ms),
                _ratio(r.set, b and b.set),
                _ratio(r.get, b and b.get),
                _ratio(r.delete, b and b.delete),
            ]
        )
    return headers, rows


def memory_table(
    single: dict[str, SingleResult], memory: dict[str, float] | None
) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the memory table."""
    headers = ["store", "keys", "Python heap B/key", "RSS delta B/key", "what is held"]
    rows: list[list[object]] = []
    if memory:
        rows.append(
            [
                f"{KVB} (target)",
                f"{memory['keys']:,}",
                _fmt(memory["heap_per_key"], 1),
                _fmt(memory["rss_per_key"], 1),
                STORES[KVB].index,
            ]
        )
    for r in single.values():
        if r.skipped:
            rows.append([r.label, "", f"skipped: {r.skipped}", "", ""])
            continue
        held = STORES[r.name].index
        if r.name == "dbm":
            held = (
                "in-memory dict of offsets"
                if "dumb" in r.label
                else "on-disk hash file (page cache)"
                if "dbm" in r.label
                else held
            )
        count = f"{r.memory_keys:,}" if r.memory_keys else "n/a"
        rows.append([r.label, count, _fmt(r.heap_per_key, 1), _fmt(r.rss_per_key, 1), held])
    return headers, rows


def memory_line(memory: dict[str, float]) -> str:
    """One sentence on the large store built for the key-directory figure."""
    return (
        f"The {memory['keys']:,}-key kv_backend store was written in {memory['build_s']:.1f} s "
        f"(batches of 1,000) and opened, key directory rebuilt, in {memory['open_s']:.2f} s."
    )


def multi_table(multi: dict[str, MultiResult]) -> tuple[list[str], list[list[object]]]:
    """Headers and rows of the several-processes table."""
    base = multi.get(KVB)
    headers = [
        "store",
        "processes x ops",
        "aggregate ops/s",
        "p50 us",
        "p99 us",
        "set p99 us",
        "get p99 us",
        "kvb throughput / this",
    ]
    rows: list[list[object]] = []
    for r in multi.values():
        if r.skipped:
            rows.append([r.name, f"skipped: {r.skipped}", "", "", "", "", "", ""])
            continue
        rel = (
            _x(base.ops_per_s / r.ops_per_s)
            if base is not None and not base.skipped and r.ops_per_s
            else "n/a"
        )
        rows.append(
            [
                r.name,
                f"{r.procs} x {r.ops:,}",
                f"{r.ops_per_s:,.0f}",
                _fmt(r.p50_us),
                _fmt(r.p99_us),
                _fmt(r.set_p99_us),
                _fmt(r.get_p99_us),
                rel,
            ]
        )
    return headers, rows


def text_table(headers: list[str], rows: list[list[object]]) -> str:
    """A fixed-width table for the terminal."""
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells if i < len(r)) for i in range(len(headers))]
    lines = []
    for j, row in enumerate(cells):
        pairs = enumerate(zip(row, widths, strict=True))
        padded = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("  ".join(padded))
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio_lines(single: dict[str, SingleResult]) -> list[str]:
    """Lines such as ``set: diskcache/kvb = 8.1x`` for every peer and operation."""
    base = single.get(KVB)
    if base is None or base.skipped:
        return []
    out = []
    for op in ("set", "get", "delete"):
        parts = []
        for r in single.values():
            if r.name == KVB or r.skipped:
                continue
            t, b = getattr(r, op), getattr(base, op)
            if t and b and t.done and b.done:
                parts.append(f"{r.name}/kvb = {_x(t.us_per_op / b.us_per_op)}")
        out.append(f"{op}: " + ", ".join(parts))
    return out


def draw_chart(single: dict[str, SingleResult], multi: dict[str, MultiResult], out_path: str) -> None:
    """Bar charts: us/op per store and operation (log scale), and the several-processes run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = [r for r in single.values() if not r.skipped]
    ops = ["set", "get", "delete"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(1, len(ran))
    for i, r in enumerate(ran):
        vals = [getattr(r, op).us_per_op if getattr(r, op) else 0 for op in ops]
        xs = [j + (i - (len(ran) - 1) / 2) * width for j in range(len(ops))]
        bars = ax1.bar(xs, vals, width, label=r.label)
        for x, v in zip(xs, vals, strict=True):
            if v > 0:
                ax1.text(x, v * 1.08, _fmt(v), ha="center", va="bottom", fontsize=6, rotation=90)
        del bars
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(ops)))
    ax1.set_xticklabels(ops)
    ax1.set_ylabel("microseconds per operation (log scale, lower is better)")
    ax1.set_title("One process")
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(axis="y", which="both", alpha=0.25)
    ax1.set_ylim(top=ax1.get_ylim()[1] * 4)

    mran = [r for r in multi.values() if not r.skipped]
    if mran:
        names = [r.name for r in mran]
        tput = [r.ops_per_s / 1e3 for r in mran]
        bars = ax2.bar(names, tput, color=[f"C{i}" for i in range(len(mran))])
        for b, r in zip(bars, mran, strict=True):
            ax2.text(
                b.get_x() + b.get_width() / 2,
                b.get_height(),
                f"{r.ops_per_s / 1e3:.1f}k ops/s\np50 {r.p50_us:.0f} us\np99 {r.p99_us:.0f} us",
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax2.set_ylim(top=max(tput) * 1.35)
        ax2.set_ylabel("aggregate thousand ops/s (higher is better)")
        ax2.set_title(f"{mran[0].procs} processes, one store, 50% set / 50% get")
        ax2.grid(axis="y", alpha=0.25)
    else:
        ax2.set_axis_off()
    fig.suptitle("kv_backend storage engine vs embedded stores (16-byte keys, 100-byte values)")
    fig.tight_layout()
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)


def markdown(
    single: dict[str, SingleResult],
    multi: dict[str, MultiResult],
    memory: dict[str, float] | None,
    found: list[Check],
    params: dict[str, Any],
    note: str | None = None,
) -> str:
    """The ``engine`` section of docs/benchmarks.md."""
    parts = []
    if note:
        parts.append(f"**{note}**")
    parts.append(
        f"{params['keys']:,} random {KEY_SIZE}-byte keys, {VALUE_SIZE}-byte values, one process, "
        'each store in a fresh directory. kv_backend.DB with default options (`sync="never"`); '
        "diskcache.Cache defaults; py-lmdb with one transaction per operation and `sync=False`; "
        "sqlitedict with `autocommit=True`; stdlib `dbm` (whichever module it picks); "
        "a dict pickled to a file on close as the in-memory ceiling. "
        "Ratios are the store's time over kv_backend's (above 1x: kv_backend is faster). "
        "Open time is the median of several reopenings of the store holding all the keys, "
        "index load included; get is the fastest of several passes."
        + (
            f" Best of {params['rounds']} rounds (each in a fresh store)."
            if params.get("rounds", 1) > 1
            else ""
        )
        + (" `--quick` run." if params.get("quick") else "")
    )
    h, rows = single_table(single)
    parts.append(_report.table(h, rows))
    partial = [f"{r.label}: {'; '.join(r.notes)}" for r in single.values() if r.notes]
    if partial:
        dumb = any("dbm.dumb" in r.label and r.delete and r.delete.partial for r in single.values())
        parts.append(
            f"\\* a store spends at most {params.get('cap', 30):g} s on one pass; these figures are over the "
            "keys done by then: "
            + " / ".join(partial)
            + (" (dbm.dumb rewrites its whole index file on every delete)" if dumb else "")
            + "."
        )
    parts.append("![Storage engine, microseconds per operation](charts/engine.png)")
    parts.append(
        "### Memory held per key once open\n\n"
        "Measured in a fresh interpreter: Python heap allocated by opening the store and still held "
        "(memory traced by tracemalloc after the open minus before it), and the growth of the resident "
        "set. Stores whose index lives on disk hold almost nothing on the Python heap; their working set "
        "is the OS page cache."
    )
    h, rows = memory_table(single, memory)
    parts.append(_report.table(h, rows))
    if memory:
        parts.append(memory_line(memory))
    parts.append(
        f"### {params['procs']} processes on one store\n\n"
        f"Each process opens the store, then runs {params['mp_ops']:,} operations, 50% set / 50% get, on "
        f"a shared space of {params['keyspace']:,} keys written beforehand. Aggregate throughput is all "
        "operations over the span from the first start to the last end; latencies are per operation "
        "(time.perf_counter_ns), percentiles over all processes."
    )
    h, rows = multi_table(multi)
    parts.append(_report.table(h, rows))
    parts.append("### Targets\n\n" + "\n".join(f"- `{c.line()}`" for c in found))
    return "\n\n".join(parts)


# --------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> int:
    """Run the whole benchmark as configured by the command line."""
    quick = args.quick
    n = args.keys if args.keys is not None else (10_000 if quick else 100_000)
    m = args.memory_keys if args.memory_keys is not None else (200_000 if quick else 1_000_000)
    mp_ops = args.mp_ops if args.mp_ops is not None else (2_000 if quick else 20_000)
    keyspace = min(n, 2_000 if quick else 10_000)
    cap = args.max_seconds if args.max_seconds is not None else (2.0 if quick else 30.0)
    min_time = 0.3 if quick else 1.0
    reopens = 3 if quick else 5
    rounds = max(1, args.rounds)
    names = [s for s in STORES if not args.only or s in args.only]
    tmp = tempfile.mkdtemp(prefix="kvb-bench-engine-", dir=args.dir)
    print(f"machine: {_report.machine()}")
    print(
        f"keys: {n:,} x {KEY_SIZE} B, values {VALUE_SIZE} B; memory keys {m:,}; "
        f"{args.procs} processes x {mp_ops:,} ops; temp dir {tmp}"
    )
    t_start = time.perf_counter()

    def since() -> str:
        return f"{time.perf_counter() - t_start:.0f} s"

    keys = make_keys(n)
    value = make_value()
    single: dict[str, SingleResult] = {}
    multi: dict[str, MultiResult] = {}
    memory: dict[str, float] | None = None
    try:
        for rnd in range(rounds):
            order = names if rnd % 2 == 0 else names[::-1]
            print(
                f"-- one process, all stores taking turns, round {rnd + 1}/{rounds} ({since()}) ...",
                flush=True,
            )
            got = bench_one_process(
                order, keys, value, tmp, cap=cap, min_time=min_time, reopens=reopens, memory=rnd == 0
            )
            for name, r in got.items():
                if r.skipped:
                    print(f"   {r.label}: skipped: {r.skipped}")
                else:
                    print(
                        f"   {r.label}: set {_us(r.set)}  get {_us(r.get)}  delete {_us(r.delete)} us/op  "
                        f"open {_fmt(r.open_ms)} ms"
                    )
                single[name] = best_of(single[name], r) if name in single else r
        single = {name: single[name] for name in names}
        if KVB in names and m > 0 and not STORES[KVB].missing():
            print(f"-- {KVB}: key directory at {m:,} keys ({since()}) ...", flush=True)
            try:
                memory = keydir_memory(m, tmp)
                print(f"   {memory['heap_per_key']:.1f} B/key heap, {memory['rss_per_key']:.1f} B/key RSS")
            except Exception:
                traceback.print_exc()
        for name in names:
            if not STORES[name].multiprocess:
                continue
            print(f"-- {name}: {args.procs} processes ({since()}) ...", flush=True)
            try:
                mr = bench_multi(name, tmp, procs=args.procs, ops=mp_ops, keyspace=keyspace)
            except Exception as exc:
                traceback.print_exc()
                mr = MultiResult(name, skipped=f"failed: {type(exc).__name__}: {exc}")
            multi[name] = mr
            if mr.skipped:
                print(f"   skipped: {mr.skipped}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    found = checks(single, multi, memory)
    print()
    print("One process, microseconds per operation (ratio = store / kv_backend; * = partial, time cap)")
    print(text_table(*single_table(single)))
    print()
    for line in ratio_lines(single):
        print(line)
    print()
    print("Memory held per key once open")
    print(text_table(*memory_table(single, memory)))
    if memory:
        print(memory_line(memory))
    print()
    print(f"{args.procs} processes, one store, 50% set / 50% get")
    print(text_table(*multi_table(multi)))
    print()
    for c in found:
        print(c.line())
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    if not args.no_write:
        params = {
            "keys": n,
            "procs": args.procs,
            "mp_ops": mp_ops,
            "keyspace": keyspace,
            "quick": quick,
            "rounds": rounds,
            "cap": cap,
        }
        chart = os.path.join(_report.CHART_DIR, "engine.png")
        draw_chart(single, multi, chart)
        _report.write_section("engine", markdown(single, multi, memory, found, params, args.note))
        print(f"\nwrote the engine section of {_report.DOC} and {chart}")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (about 30 s): 10k keys, 200k for memory")
    p.add_argument("--keys", type=int, default=None, help="keys per store (default 100,000)")
    p.add_argument("--memory-keys", type=int, default=None, help="keys for the key-directory memory figure")
    p.add_argument(
        "--rounds", type=int, default=1, help="repeat the one-process part and keep each store's best"
    )
    p.add_argument("--procs", type=int, default=4, help="processes sharing one store (default 4)")
    p.add_argument("--mp-ops", type=int, default=None, help="operations per process (default 20,000)")
    p.add_argument("--max-seconds", type=float, default=None, help="time cap for one operation's pass")
    p.add_argument("--only", nargs="*", choices=list(STORES), help="run only these stores")
    p.add_argument("--dir", default=None, help="where to create the temporary stores (default: system temp)")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/ untouched")
    p.add_argument("--note", default=None, help="a line shown at the top of the docs section")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child-memory"]:
        name, path, n, probe, mode = argv[1:6]
        out = _memory_child(name, path, int(n), probe, mode)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        os._exit(0)  # the store stays open: nothing to flush, and closing is not what is measured
    return run(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
