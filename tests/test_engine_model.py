"""A hypothesis state machine: DB against a dict model, with reopening, file rotation, merges, batches,
transactions (committed, rolled back, or left by a writer gone mid-way), dead writers' torn tails and TTLs.

Two instances are open on the store at every step (one writes, the other must stay coherent), the
files are small so that the log rotates, and TTLs are either long (never reached during a run) or
<= 0 (an immediate delete), so that nothing depends on the wall clock.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kv_backend import DB, record
from kv_backend.check import check
from kv_backend.errors import DatabaseClosedError, NotAnIntegerError
from kv_backend.files import STATE_FILE, data_name
from kv_backend.state import SharedState, pack_tail, unpack_tail

KEYS = st.sampled_from([b"a", b"ab", b"b", b"\x00", b"\xff", b"key-%d" % 7, b"n", b"m"])
VALUES = st.one_of(
    st.binary(max_size=40),
    st.integers(-1000, 1000).map(lambda i: str(i).encode()),
    st.integers(300, 1500).map(lambda n: b"L" * n),
)
TTLS = st.sampled_from([None, None, 3600.0, 86400, 0, -1])
LONG = 1e6  # model: keys with a TTL carry (value, True)


class DBModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvb-model-")
        self.path = self.dir + "/store"
        self.db = DB(self.path, max_file_size=4096)
        self.other = DB(self.path, max_file_size=4096)
        self.model: dict[bytes, tuple[bytes, bool]] = {}

    def teardown(self) -> None:
        try:
            self.db.close()
            self.other.close()
            expected = {k: v for k, (v, _) in self.model.items()}
            with DB(self.path, read_only=True) as ro:
                assert dict(ro.items()) == expected
            DB(self.path).close()  # a writer's open cuts what a dead writer left past the tail
            with DB(self.path, read_only=True) as ro:
                assert dict(ro.items()) == expected
            report = check(self.path)
            assert report.ok, report.problems
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _set(self, key: bytes, value: bytes, ttl) -> None:
        if ttl is not None and ttl <= 0:
            self.model.pop(key, None)
        else:
            self.model[key] = (value, ttl is not None)

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def put(self, key, value, ttl):
        self.db.put(key, value, ttl=ttl)
        self._set(key, value, ttl)

    @rule(key=KEYS, value=VALUES, ttl=TTLS, other_key=KEYS, other_value=VALUES)
    def put_while_other_writes(self, key, value, ttl, other_key, other_value):
        """The other handle writes after this one caught up, before it takes the lock.

        That is the moment another process's write lands in production; the
        put then appends without indexing first (the unindexed append).
        """
        lock = self.db._lock
        acquire = lock.acquire

        def other_writes_first() -> None:
            lock.acquire = acquire  # type: ignore[method-assign]
            self.other.put(other_key, other_value)
            acquire()

        lock.acquire = other_writes_first  # type: ignore[method-assign]
        try:
            self.db.put(key, value, ttl=ttl)
        finally:
            lock.acquire = acquire  # type: ignore[method-assign]
        self._set(other_key, other_value, None)
        self._set(key, value, ttl)

    @initialize(size=st.integers(2500, 3900))
    def fill_first_file(self, size):
        # Start near the end of the first 4 KiB file, so that rotation happens early in every run.
        self.db.put(b"filler", b"F" * size)
        self.model[b"filler"] = (b"F" * size, False)

    @rule(key=KEYS, size=st.integers(2000, 4000))
    def put_big(self, key, size):
        value = key * (size // len(key))
        self.other.put(key, value)
        self.model[key] = (value, False)

    @rule(key=KEYS, value=VALUES)
    def setitem_other(self, key, value):
        self.other[key] = value
        self._set(key, value, None)

    @rule(key=KEYS)
    def get(self, key):
        expected = self.model.get(key)
        assert self.db.get(key) == (expected[0] if expected else None)
        assert (key in self.other) == (expected is not None)

    @rule(key=KEYS)
    def delete(self, key):
        assert self.db.delete(key) == (key in self.model)
        self.model.pop(key, None)

    @rule(key=KEYS, default=st.none() | st.just(b"dflt"))
    def pop(self, key, default):
        expected = self.model.pop(key, None)
        assert self.other.pop(key, default) == (expected[0] if expected else default)

    @rule(key=KEYS, delta=st.integers(-5, 5))
    def incr(self, key, delta):
        current = self.model.get(key)
        raw = current[0] if current else b"0"
        valid = re.fullmatch(rb"-?(0|[1-9][0-9]*)", raw) is not None  # as Redis: no "+", no leading 0
        if not valid:
            try:
                self.db.incr(key, delta)
            except NotAnIntegerError:
                return
            raise AssertionError(f"incr accepted {raw!r}")
        number = int(raw)
        assert self.db.incr(key, delta) == number + delta
        self.model[key] = (str(number + delta).encode(), current[1] if current else False)

    @rule(key=KEYS, value=VALUES, ttl=st.sampled_from([None, 3600.0]))
    def put_if_absent(self, key, value, ttl):
        won = self.other.put_if_absent(key, value, ttl=ttl)
        assert won == (key not in self.model)
        if won:
            self.model[key] = (value, ttl is not None)

    @rule(key=KEYS, suffix=st.binary(max_size=3), drop=st.booleans())
    def update(self, key, suffix, drop):
        current = self.model.get(key)
        seen = []

        def fn(old):
            seen.append(old)
            return None if drop else (old or b"") + suffix

        result = self.db.update(key, fn)
        assert seen == [current[0] if current else None]
        if drop:
            assert result is None
            self.model.pop(key, None)
        else:
            assert result == (current[0] if current else b"") + suffix
            self.model[key] = (result, current[1] if current else False)

    @rule(key=KEYS, ttl=st.sampled_from([None, 3600.0, 0, -5]))
    def expire(self, key, ttl):
        exists = key in self.model
        assert self.db.expire(key, ttl) == exists
        if exists:
            if ttl is not None and ttl <= 0:
                del self.model[key]
            else:
                self.model[key] = (self.model[key][0], ttl is not None)

    @rule(key=KEYS)
    def ttl(self, key):
        expected = self.model.get(key)
        if expected is None:
            try:
                self.other.ttl(key)
            except KeyError:
                return
            raise AssertionError("ttl() of a missing key did not raise KeyError")
        left = self.other.ttl(key)
        if expected[1]:
            assert left is not None and 0 < left <= 86400
        else:
            assert left is None

    @rule(
        ops=st.lists(
            st.tuples(st.sampled_from(["put", "delete"]), KEYS, VALUES, TTLS), min_size=0, max_size=8
        ),
        fail=st.booleans(),
    )
    def batch(self, ops, fail):
        try:
            with self.db.batch() as b:
                for op, key, value, ttl in ops:
                    if op == "put":
                        b.put(key, value, ttl=ttl)
                    else:
                        b.delete(key)
                if fail:
                    raise RuntimeError("rolled back")
        except RuntimeError:
            assert fail
            return
        for op, key, value, ttl in ops:
            if op == "put":
                self._set(key, value, ttl)
            else:
                self.model.pop(key, None)

    @rule(
        ops=st.lists(
            st.tuples(st.sampled_from(["put", "delete", "incr", "get", "batch"]), KEYS, VALUES, TTLS),
            min_size=0,
            max_size=8,
        ),
        end=st.sampled_from(["commit", "commit", "raise", "close"]),
    )
    def transaction(self, ops, end):
        """A transaction: its reads see its writes, the other handle sees none of them until it ends,
        and an exception or a close (a writer gone mid-transaction) leaves none of them."""
        before = {k: v for k, (v, _) in self.model.items()}
        saved = dict(self.model)
        try:
            with self.db.transaction():
                for op, key, value, ttl in ops:
                    current = self.model.get(key)
                    if op == "put":
                        self.db.put(key, value, ttl=ttl)
                        self._set(key, value, ttl)
                    elif op == "delete":
                        assert self.db.delete(key) == (current is not None)
                        self.model.pop(key, None)
                    elif op == "incr":
                        raw = current[0] if current else b"0"
                        if re.fullmatch(rb"-?(0|[1-9][0-9]*)", raw) is None:
                            continue
                        assert self.db.incr(key) == int(raw) + 1
                        self.model[key] = (str(int(raw) + 1).encode(), current[1] if current else False)
                    elif op == "get":
                        assert self.db.get(key) == (current[0] if current else None)
                    else:
                        with self.db.batch() as b:
                            b.put(key, value)
                            b.delete(b"n")
                        self.model[key] = (value, False)
                        self.model.pop(b"n", None)  # applied in order: a put of b"n" is deleted
                    assert self.other.get(key) == before.get(key)
                assert dict(self.db.items()) == {k: v for k, (v, _) in self.model.items()}
                assert dict(self.other.items()) == before
                if end == "raise":
                    raise RuntimeError("rolled back")
                if end == "close":
                    self.db.close()
        except RuntimeError:
            assert end == "raise"
            self.model = saved
        except DatabaseClosedError:
            assert end == "close"
            self.model = saved
            self.db = DB(self.path, max_file_size=4096)
        else:
            assert end == "commit"
        assert dict(self.other.items()) == {k: v for k, (v, _) in self.model.items()}

    @rule(
        garbage=st.one_of(
            st.binary(min_size=1, max_size=300),
            # A torn record: its last byte is not zero, so the zeros reserved past the tail cannot
            # complete it (a record whose missing bytes are all zeros would be whole, and kept).
            st.tuples(KEYS, VALUES, st.integers(1, 10_000)).map(
                lambda t: record.encode(record.PUT, t[0], t[1] + b"\x01")[: -(t[2] % 20 + 1)]
            ),
        )
    )
    def dead_writer_tail(self, garbage):
        # A writer announced a write, appended part of it and was killed: nothing changes for readers.
        DB(self.path).close()  # as in real life, the previous dead writer's bytes were cut by a writer
        page = SharedState(os.path.join(self.path, STATE_FILE), writable=True)
        try:
            major, end = unpack_tail(page.tail.value)
            page.intent.value = pack_tail(major, end + len(garbage) + 50)
        finally:
            page.close()
        with open(os.path.join(self.path, data_name((major, 0))), "r+b") as f:
            f.seek(end)  # right at the tail, over the zeros writers reserve past it
            f.write(garbage)

    @rule(which=st.sampled_from(["db", "other"]))
    def merge(self, which):
        # Compaction interleaved with everything else: only the newest live version of each key survives.
        getattr(self, which).merge()

    @rule()
    def clear(self):
        self.other.clear()
        self.model.clear()

    @rule(which=st.sampled_from(["db", "other", "both"]))
    def reopen(self, which):
        if which in ("db", "both"):
            self.db.close()
            self.db = DB(self.path, max_file_size=4096)
        if which in ("other", "both"):
            self.other.close()
            self.other = DB(self.path, max_file_size=4096)

    @precondition(lambda self: len(self.model) > 0)
    @rule()
    def read_only_view(self):
        with DB(self.path, read_only=True) as ro:
            assert dict(ro.items()) == {k: v for k, (v, _) in self.model.items()}

    @rule(prefix=st.sampled_from([b"", b"a", b"k", b"f", b"\xff"]), reverse=st.booleans())
    def ordered_keys(self, prefix, reverse):
        expected = sorted((k for k in self.model if k.startswith(prefix)), reverse=reverse)
        assert list(self.other.keys(prefix=prefix, reverse=reverse)) == expected

    @invariant()
    def same_size_everywhere(self):
        assert len(self.db) == len(self.model)
        assert len(self.other) == len(self.model)

    @invariant()
    def same_contents(self):
        expected = {k: v for k, (v, _) in self.model.items()}
        assert dict(self.db.items()) == expected


DBModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=35,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_db_against_dict_model = DBModel.TestCase
