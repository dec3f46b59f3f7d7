"""The lazily maintained sorted index of ordered scans (``KeyDir.sorted``).

Once an ordered scan built the index, inserts and deletes only note their key in
``sorted_add`` / ``sorted_del`` and the next ``ensure_sorted`` applies them (or
the index is dropped when too much is pending). These tests interleave new keys,
deletes, re-puts, expiries, merges, reopens and writes by a second instance or
another process with ordered scans, and compare every scan with a sorted model.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time

from helpers import ENGINE_MODULES, run_python
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import kv_backend.db
import kv_backend.keydir
from kv_backend import DB
from kv_backend.keydir import KeyDir
from kv_backend.record import DELETE, PUT

# Three prefixes of 40 keys each: enough keys that one batch leaves more than the
# 32 changes ensure_sorted applies one by one, and prefixes for prefix scans.
KEY_LIST = [b"%s:%02d" % (p, i) for p in (b"a", b"b", b"c") for i in range(40)]
KEYS = st.sampled_from(KEY_LIST)
# Single-key rules mostly pick from a few keys, so that deletes and re-puts of one key meet.
HOT_KEYS = st.one_of(st.sampled_from([b"a:00", b"a:01", b"b:10", b"c:39"]), KEYS)
# A slice of KEY_LIST, many keys or a few: one rule changes many keys.
SLICES = st.tuples(
    st.sampled_from([(0, 120), (0, 40), (40, 80), (80, 120), (20, 100), (0, 5), (60, 62)]), st.integers(1, 3)
).map(lambda t: KEY_LIST[t[0][0] : t[0][1] : t[1]])
PREFIXES = st.sampled_from([b"", b"a", b"a:1", b"b:", b"c:3", b"d", b"\xff"])
STARTS = st.one_of(st.none(), KEYS, st.sampled_from([b"", b"a:", b"b:5", b"z"]))
# Floors of the pending changes allowed before the index is dropped: tiny ones drop
# and re-raise the cap all the time, the real one never does here.
FLOORS = st.sampled_from([kv_backend.keydir.PENDING_FLOOR, 0, 1, 8, kv_backend.keydir.PENDING_FLOOR, 20])


def check_pending_sets(ix: KeyDir) -> None:
    """The invariant between kd, the sorted index and the pending sets."""
    if ix.sorted is None:
        assert not ix.sorted_add and not ix.sorted_del
        return
    listed = list(ix.sorted)
    indexed = set(listed)
    assert len(indexed) == len(listed), "a key is in the sorted index twice"
    assert ix.sorted_del <= indexed
    assert not ix.sorted_add & indexed
    assert (indexed - ix.sorted_del) | ix.sorted_add == set(ix.kd)
    assert len(ix.sorted_add) <= ix.sorted_cap and len(ix.sorted_del) <= ix.sorted_cap


# ---------------------------------------------------------------- KeyDir alone


class KeyDirIndex(RuleBasedStateMachine):
    """KeyDir.apply / note_* / apply_hints against a set of keys, with scans in between."""

    def __init__(self) -> None:
        super().__init__()
        self.saved_floor = kv_backend.keydir.PENDING_FLOOR
        self.ix: KeyDir = KeyDir()
        self.model: set[bytes] = set()
        self.offset = 0

    def teardown(self) -> None:
        kv_backend.keydir.PENDING_FLOOR = self.saved_floor

    @initialize(floor=FLOORS, keys=st.lists(KEYS, max_size=60), scan=st.booleans())
    def start(self, floor, keys, scan):
        kv_backend.keydir.PENDING_FLOOR = floor
        self.ix = KeyDir()
        self._apply([(PUT, k, 0.0) for k in keys])
        if scan:
            self.scan()

    def _apply(self, ops: list[tuple[int, bytes, float]]) -> None:
        entries = []
        for rtype, key, expiry in ops:
            entries.append((rtype, key, self.offset, 10, expiry))
            self.offset += 10
            if rtype == PUT and not (expiry and expiry <= time.time()):
                self.model.add(key)
            else:
                self.model.discard(key)
        self.ix.apply(0, 0, entries)

    @rule(
        ops=st.lists(
            st.tuples(
                st.sampled_from(["put", "put", "delete", "expired put", "expiring put"]),
                KEYS,
            ),
            max_size=70,
        )
    )
    def replay(self, ops):
        """One batch of replayed records: puts, deletes, puts already expired, puts that expire later."""
        out = []
        for op, key in ops:
            if op == "put":
                out.append((PUT, key, 0.0))
            elif op == "delete":
                out.append((DELETE, key, 0.0))
            elif op == "expired put":
                out.append((PUT, key, time.time() - 10))
            else:
                out.append((PUT, key, time.time() + 3600))
        self._apply(out)

    @rule(key=KEYS)
    def insert_like_write_put(self, key):
        """What the hottest path of DB.put does for a key: set kd, note a new key."""
        ix = self.ix
        new = key not in ix.kd
        ix.kd[key] = 1 << 32 | 10
        if new and ix.sorted is not None:
            ix.note_insert(key)
        self.model.add(key)

    @rule(key=KEYS)
    def remove_like_purge(self, key):
        """What DB.purge_expired does for a key: pop it from kd, note the delete."""
        ix = self.ix
        if ix.kd.pop(key, None) is not None and ix.sorted is not None:
            ix.note_delete(key)
        self.model.discard(key)

    @rule(keys=st.lists(KEYS, max_size=50, unique=True))
    def hints(self, keys):
        """A hint file's entries (as at open and after a merge) rebuild an existing index."""
        from array import array

        from kv_backend.hint import Hints

        locs = array("Q", [(i * 16) << 32 | 16 for i in range(len(keys))])
        hints = Hints(list(keys), locs, array("d", [0.0] * len(keys)), array("I", [16] * len(keys)))
        self.ix.apply_hints(1, hints)
        self.model.update(keys)

    @rule()
    def scan(self):
        assert list(self.ix.ensure_sorted()) == sorted(self.model)
        assert not self.ix.sorted_add and not self.ix.sorted_del

    @rule()
    def drop(self):
        self.ix.drop_sorted()

    @invariant()
    def consistent(self):
        assert set(self.ix.kd) == self.model
        check_pending_sets(self.ix)


TestKeyDirIndex = KeyDirIndex.TestCase
TestKeyDirIndex.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_many_pending_changes_take_the_bulk_paths():
    """Deletes past a tenth of the index rebuild it; many adds re-sort it; too many drop it."""
    ix = KeyDir()
    keys = [b"k%05d" % i for i in range(5000)]
    ix.apply(0, 0, [(PUT, k, i * 10, 10, 0.0) for i, k in enumerate(keys)])
    first = ix.ensure_sorted()
    assert ix.sorted_cap == 2500
    # 1000 deletes (a fifth of the index): one pass over the sorted keys, not 1000 bisects.
    ix.apply(0, 0, [(DELETE, k, 0, 10, 0.0) for k in keys[::5]])
    assert len(ix.sorted_del) == 1000
    check_pending_sets(ix)
    srt = ix.ensure_sorted()
    assert srt is not first and list(srt) == sorted(set(keys) - set(keys[::5]))
    # 80 deletes (20 of these keys are gone already) and 20 re-puts of keys deleted above:
    # more than 32 changes, but few deletes, so applied one by one to the same list.
    ix.apply(0, 0, [(DELETE, k, 0, 10, 0.0) for k in keys[1:200:2]])
    ix.apply(0, 0, [(PUT, k, 0, 10, 0.0) for k in keys[:100:5]])
    assert (len(ix.sorted_del), len(ix.sorted_add)) == (80, 20)
    assert ix.ensure_sorted() is srt
    assert list(srt) == sorted(ix.kd)
    # More new keys than half the index: dropped, rebuilt by the next scan.
    ix.apply(0, 0, [(PUT, b"n%05d" % i, 0, 10, 0.0) for i in range(ix.sorted_cap + 1)])
    assert ix.sorted is None and not ix.sorted_add
    assert list(ix.ensure_sorted()) == sorted(ix.kd)


def test_cap_follows_an_index_grown_by_small_updates():
    """An index that grew through many small updates is not dropped by a cap set when it was small."""
    ix = KeyDir()
    ix.ensure_sorted()
    assert ix.sorted_cap == kv_backend.keydir.PENDING_FLOOR
    n = 0
    for _ in range(200):  # 200 small updates of 20 keys, a scan after each
        ix.apply(0, 0, [(PUT, b"k%06d" % (n + i), 0, 10, 0.0) for i in range(20)])
        n += 20
        ix.ensure_sorted()
    assert ix.sorted_cap == kv_backend.keydir.PENDING_FLOOR  # not refreshed by small updates
    ix.apply(0, 0, [(PUT, b"m%06d" % i, 0, 10, 0.0) for i in range(ix.sorted_cap + 1)])
    assert ix.sorted is not None  # 1025 pending of a 4000-key index: the cap was raised instead
    assert ix.sorted_cap == 2000
    check_pending_sets(ix)
    assert list(ix.ensure_sorted()) == sorted(ix.kd)


# ------------------------------------------------------- DB, two instances, clock


class FakeClock:
    """The engine's clock; ahead of the real one, which a merge uses to drop expired records."""

    def __init__(self) -> None:
        self.now = time.time() + 1e6

    def __call__(self) -> float:
        return self.now


class _TimeModule:
    def __init__(self, clock: FakeClock) -> None:
        self.time = clock


class DBOrderedScans(RuleBasedStateMachine):
    """Two DB instances on one store write and scan in key order; a sorted dict is the model.

    Each instance catches up with the other's writes by replaying them through
    ``KeyDir.apply`` while it may hold a sorted index with pending changes. The
    engine's clock is a fake one that only the ``advance`` rule moves, so keys
    expire at chosen steps (and are purged, or dropped by replay, or skipped by scans).
    """

    def __init__(self) -> None:
        super().__init__()
        engine = [importlib.import_module(m) for m in ENGINE_MODULES]
        self.saved_time = {m: m._time for m in engine if hasattr(m, "_time")}
        self.saved = (kv_backend.keydir.time, kv_backend.keydir.PENDING_FLOOR)
        self.clock = FakeClock()
        for m in self.saved_time:
            m._time = self.clock
        kv_backend.keydir.time = _TimeModule(self.clock)  # type: ignore[assignment]
        self.dir = tempfile.mkdtemp(prefix="kvb-sorted-")
        self.path = os.path.join(self.dir, "store")
        self.dbs: dict[str, DB] = {}
        # key -> (value, absolute expiry or None)
        self.model: dict[bytes, tuple[bytes, float | None]] = {}

    def teardown(self) -> None:
        try:
            for db in self.dbs.values():
                db.close()
        finally:
            for m, t in self.saved_time.items():
                m._time = t
            kv_backend.keydir.time, kv_backend.keydir.PENDING_FLOOR = self.saved
            shutil.rmtree(self.dir, ignore_errors=True)

    def _open(self) -> DB:
        return DB(self.path, max_file_size=4096)

    @initialize(floor=FLOORS, keys=SLICES, scan=st.sampled_from(["a", "b", "both", "none"]))
    def start(self, floor, keys, scan):
        kv_backend.keydir.PENDING_FLOOR = floor
        self.dbs = {"a": self._open(), "b": self._open()}
        with self.dbs["a"].batch() as b:
            for k in keys:
                b.put(k, b"v0")
                self.model[k] = (b"v0", None)
        for name in ("a", "b"):
            if scan in (name, "both"):
                assert list(self.dbs[name].keys()) == self._expected(b"", None, False)

    def _live(self) -> dict[bytes, bytes]:
        now = self.clock.now
        return {k: v for k, (v, e) in self.model.items() if e is None or e > now}

    def _expected(self, prefix: bytes, start: bytes | None, reverse: bool) -> list[bytes]:
        keys = sorted(k for k in self._live() if k.startswith(prefix))
        if start is not None:
            keys = [k for k in keys if (k <= start if reverse else k >= start)]
        return keys[::-1] if reverse else keys

    def _set(self, key: bytes, value: bytes, ttl: float | None) -> None:
        if ttl is not None and ttl <= 0:
            self.model.pop(key, None)
        else:
            self.model[key] = (value, None if ttl is None else self.clock.now + ttl)

    WHICH = st.sampled_from(["a", "b"])
    TTLS = st.sampled_from([None, None, None, 1.0, 5.0, 0, -1])

    @rule(which=WHICH, key=HOT_KEYS, value=st.binary(max_size=8), ttl=TTLS)
    def put(self, which, key, value, ttl):
        self.dbs[which].put(key, value, ttl=ttl)
        self._set(key, value, ttl)

    @rule(which=WHICH, key=HOT_KEYS)
    def delete(self, which, key):
        assert self.dbs[which].delete(key) == (key in self._live())
        self.model.pop(key, None)

    @rule(which=WHICH, keys=SLICES, op=st.sampled_from(["put", "delete", "both"]), ttl=TTLS)
    def batch(self, which, keys, op, ttl):
        """Many changes at once: more than ensure_sorted applies one by one, past the tiny caps."""
        with self.dbs[which].batch() as b:
            for i, key in enumerate(keys):
                if op == "put" or (op == "both" and i % 2):
                    b.put(key, b"b", ttl=ttl)
                    self._set(key, b"b", ttl)
                else:
                    b.delete(key)
                    self.model.pop(key, None)

    @rule(which=WHICH, keys=SLICES, ttl=TTLS)
    def puts(self, which, keys, ttl):
        """Many single puts (the hottest path of DB.put: new keys without a TTL)."""
        db = self.dbs[which]
        for key in keys:
            db.put(key, b"p", ttl=ttl)
            self._set(key, b"p", ttl)

    @rule(which=WHICH, prefix=st.sampled_from([b"a", b"b:1", b"c"]))
    def delete_by_prefix(self, which, prefix):
        """Delete while iterating in key order (the iteration then continues over pending deletes)."""
        db = self.dbs[which]
        seen = []
        for key in db.keys(prefix=prefix):
            seen.append(key)
            db.delete(key)
        assert seen == self._expected(prefix, None, False)
        for key in seen:
            self.model.pop(key, None)

    @rule(seconds=st.sampled_from([0.5, 2.0, 10.0]))
    def advance(self, seconds):
        self.clock.now += seconds

    @rule(which=WHICH)
    def purge_expired(self, which):
        self.dbs[which].purge_expired()

    @rule(which=WHICH)
    def merge(self, which):
        self.dbs[which].merge()

    @rule(which=WHICH)
    def reopen(self, which):
        self.dbs[which].close()
        self.dbs[which] = self._open()

    @rule(which=WHICH, prefix=PREFIXES, start=STARTS, reverse=st.booleans())
    def scan(self, which, prefix, start, reverse):
        got = list(self.dbs[which].keys(prefix=prefix, start=start, reverse=reverse))
        assert got == self._expected(prefix, start, reverse)

    @rule(which=WHICH, prefix=PREFIXES)
    def items(self, which, prefix):
        live = self._live()
        expected = [(k, live[k]) for k in self._expected(prefix, None, False)]
        assert list(self.dbs[which].items(prefix=prefix)) == expected

    @invariant()
    def pending_sets_consistent(self):
        for db in self.dbs.values():
            check_pending_sets(db._ix)


TestDBOrderedScans = DBOrderedScans.TestCase
# (60 runs of 40 steps: still the most of the suite's stateful tests of real stores, the others 25-60
# runs of 20-35 steps; 150 runs took 12 s of a full run's worker, the suite's slowest test)
TestDBOrderedScans.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ------------------------------------------------------------ another process


def _other_process(store_path: str, code: str) -> None:
    run_python("import sys\nfrom kv_backend import DB\nwith DB(sys.argv[1]) as db:\n" + code, store_path)


def test_other_process_writes_while_this_one_has_a_sorted_index(store_path):
    with DB(store_path) as db:
        for i in range(0, 3000, 2):
            db.put(b"k%05d" % i, b"v")
        assert next(db.keys()) == b"k00000"  # builds the sorted index
        ix = db._ix
        assert ix.sorted is not None and ix.sorted_cap == 1024
        expected = {b"k%05d" % i for i in range(0, 3000, 2)}

        # 1. Hundreds of changes: new keys, deletes, re-puts of deleted keys, the ends of the range.
        _other_process(
            store_path,
            """
    for i in range(1, 1200, 2):
        db.put(b"k%05d" % i, b"w")
    for i in range(0, 3000, 8):
        db.delete(b"k%05d" % i)
    for i in range(0, 3000, 80):
        db.put(b"k%05d" % i, b"again")
    with db.batch() as b:
        for i in range(300):
            b.put(b"p%03d" % i, b"x")
    db.delete(b"k02998")
    db.delete(b"k00001")
""",
        )
        expected |= {b"k%05d" % i for i in range(1, 1200, 2)}
        expected -= {b"k%05d" % i for i in range(0, 3000, 8)}
        expected |= {b"k%05d" % i for i in range(0, 3000, 80)}
        expected |= {b"p%03d" % i for i in range(300)}
        expected -= {b"k02998", b"k00001"}
        assert db.get(b"p299") == b"x"  # the catch-up replays it all into the pending sets
        assert ix.sorted is not None
        assert len(ix.sorted_add) == 599 + 300 and len(ix.sorted_del) == 375 - 38 + 1
        check_pending_sets(ix)
        assert list(db.keys(prefix=b"k0299", reverse=True)) == sorted(
            (k for k in expected if k.startswith(b"k0299")), reverse=True
        )
        assert not ix.sorted_add and not ix.sorted_del
        assert list(db.keys()) == sorted(expected)
        assert list(db.keys(start=b"p25")) == sorted(k for k in expected if k >= b"p25")

        # 2. A small change stays pending until the next scan.
        _other_process(store_path, '    db.put(b"a-new", b"1")\n    db.delete(b"p000")\n')
        assert db.get(b"a-new") == b"1"
        assert ix.sorted_add == {b"a-new"} and ix.sorted_del == {b"p000"}
        expected = (expected | {b"a-new"}) - {b"p000"}
        assert list(db.keys()) == sorted(expected)
        assert not ix.sorted_add and not ix.sorted_del

        # 3. More new keys than half the index: the index is dropped, the next scan rebuilds it.
        _other_process(
            store_path,
            """
    with db.batch() as b:
        for i in range(3000):
            b.put(b"q%05d" % i, b"y")
""",
        )
        expected |= {b"q%05d" % i for i in range(3000)}
        assert db.get(b"q00000") == b"y"
        assert ix.sorted is None and not ix.sorted_add
        assert list(db.keys(prefix=b"q", reverse=True)) == sorted(
            (k for k in expected if k[:1] == b"q"), reverse=True
        )
        assert list(db.keys()) == sorted(expected)
        assert ix.sorted is not None and ix.sorted_cap == len(expected) // 2
