"""The public API of kv_backend.DB in one process: mapping behaviour, ordering, TTL, atomic helpers,
batches, stats, lifecycle, read-only stores and change notification."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import MutableMapping

import pytest
from helpers import patch_engine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kv_backend.db
import kv_backend.keydir
from kv_backend import DB, record
from kv_backend.errors import (
    ConfigurationError,
    DatabaseClosedError,
    InvalidValueError,
    KVError,
    NotAnIntegerError,
    ReadOnlyError,
)
from kv_backend.files import data_name, list_data_files


class FakeClock:
    """A wall clock the test moves by hand (starts at the real time, so expiry stamps look real)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    """Replace the engine's clock (writes and expiry checks) by a FakeClock."""
    c = FakeClock()
    patch_engine(monkeypatch, "_time", c)

    class _TimeModule:
        time = staticmethod(c)

    monkeypatch.setattr(kv_backend.keydir, "time", _TimeModule)
    return c


def _data_bytes(path: str) -> int:
    """Bytes of records in the store: closed files whole, the active one up to its last record."""
    total = 0
    for fid in list_data_files(path):
        with open(os.path.join(path, data_name(fid)), "rb") as f:
            buf = f.read()
        total += record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).end  # writers reserve zeros past it
    return total


def _all_records(path: str) -> list[tuple[int, bytes, int, int, float]]:
    """Every applied record of every data file, in log order (type, key, offset, size, expiry)."""
    out = []
    for fid in list_data_files(path):
        with open(os.path.join(path, data_name(fid)), "rb") as f:
            buf = f.read()
        out.extend(record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries)
    return out


# ------------------------------------------------------------------ mapping basics


def test_put_get_overwrite_and_default(db):
    assert db.get(b"missing") is None
    assert db.get(b"missing", b"dflt") == b"dflt"
    db.put(b"k", b"v1")
    assert db.get(b"k") == b"v1"
    db.put(b"k", b"v2")
    assert db.get(b"k") == b"v2"
    db.put(b"empty", b"")
    assert db.get(b"empty") == b""
    assert db.get(b"empty", b"dflt") == b""
    assert b"empty" in db
    binary = bytes(range(256)) * 3
    db.put(b"\x00\xff", binary)
    assert db.get(b"\x00\xff") == binary


def test_values_survive_reopen(store_path):
    with DB(store_path) as db:
        for i in range(50):
            db.put(b"key%02d" % i, b"value%d" % i)
        db.delete(b"key07")
        db.put(b"key08", b"new")
    with DB(store_path) as db:
        assert len(db) == 49
        assert b"key07" not in db
        assert db[b"key08"] == b"new"
        assert db[b"key49"] == b"value49"


def test_mutable_mapping_protocol(db):
    assert isinstance(db, MutableMapping)
    db[b"a"] = b"1"
    db[b"b"] = b"2"
    assert db[b"a"] == b"1"
    assert len(db) == 2
    assert list(db) == [b"a", b"b"]
    assert dict(db) == {b"a": b"1", b"b": b"2"}
    assert b"a" in db and b"zz" not in db
    with pytest.raises(KeyError):
        db[b"zz"]
    del db[b"a"]
    assert b"a" not in db
    with pytest.raises(KeyError):
        del db[b"a"]
    assert db.setdefault(b"c", b"3") == b"3"
    assert db.setdefault(b"c", b"other") == b"3"
    key, value = db.popitem()
    assert (key, value) == (b"b", b"2")
    assert b"b" not in db
    assert list(db.items()) == [(b"c", b"3")]
    assert list(db.values()) == [b"3"]
    # A store equals only itself: comparing with a dict must not read the whole store.
    assert db == db
    assert db != {b"c": b"3"}
    assert hash(db) == hash(db)


def test_delete_and_pop(db):
    db.put(b"k", b"v")
    assert db.delete(b"k") is True
    assert db.delete(b"k") is False
    assert b"k" not in db
    db.put(b"p", b"pv")
    assert db.pop(b"p") == b"pv"
    assert b"p" not in db
    assert db.pop(b"p", b"dflt") == b"dflt"
    assert db.pop(b"p", None) is None
    with pytest.raises(KeyError):
        db.pop(b"p")


def test_clear_is_one_atomic_batch(store_path):
    with DB(store_path) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"v")
        db.delete(b"k3")
        before = len(_all_records(store_path))
        db.clear()
        assert len(db) == 0
        assert list(db.keys()) == []
        db.clear()  # clearing an empty store writes nothing
    # The 19 deletes are one batch: all records flagged and closed by one COMMIT of 19.
    path = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
    with open(path, "rb") as f:
        buf = f.read()
    records = []
    pos = record.FILE_HEADER_SIZE
    while pos < len(buf) and buf[pos : pos + record.HEADER_SIZE].strip(b"\0"):  # zeros: reserved space
        _crc, rtype, flags, klen, vlen, _exp = record.HEADER.unpack_from(buf, pos)
        records.append(
            (rtype, flags, buf[pos + record.HEADER_SIZE + klen : pos + record.HEADER_SIZE + klen + vlen])
        )
        pos += record.HEADER_SIZE + klen + vlen
    tail = records[-20:]
    assert [r[0] for r in tail[:19]] == [record.DELETE] * 19
    assert all(r[1] & record.FLAG_BATCH for r in tail[:19])
    assert tail[19][0] == record.COMMIT and record.COUNT.unpack(tail[19][2])[0] == 19
    assert len(_all_records(store_path)) == before + 19
    with DB(store_path) as db:
        assert len(db) == 0


# ------------------------------------------------------------------ ordering


def _model_keys(keys, prefix, start, reverse):
    ordered = sorted(keys, reverse=reverse)
    out = [k for k in ordered if k.startswith(prefix)]
    if start is not None:
        out = [k for k in out if (k <= start if reverse else k >= start)]
    return out


def _bytes_from(alphabet: list[int], min_size: int, max_size: int):
    return st.lists(st.sampled_from(alphabet), min_size=min_size, max_size=max_size).map(bytes)


_key_bytes = _bytes_from([0, 1, 0x61, 0x62, 0x7F, 0xFE, 0xFF], 1, 4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.sets(_key_bytes, max_size=25),
    prefix=st.one_of(st.just(b""), _key_bytes.map(lambda b: b[:2])),
    start=st.one_of(st.none(), _bytes_from([0, 0x61, 0x62, 0xFF], 1, 4)),
    reverse=st.booleans(),
)
def test_keys_order_prefix_start_reverse(db, keys, prefix, start, reverse):
    db.clear()
    for k in keys:
        db.put(k, b"v:" + k)
    expected = _model_keys(keys, prefix, start, reverse)
    assert list(db.keys(prefix=prefix, start=start, reverse=reverse)) == expected
    assert list(db.items(prefix=prefix, start=start, reverse=reverse)) == [(k, b"v:" + k) for k in expected]
    assert list(db) == sorted(keys)
    assert list(db.values()) == [b"v:" + k for k in sorted(keys)]


def test_keys_across_many_chunks(db):
    keys = [b"%05d" % i for i in range(0, 3000, 2)]
    for k in reversed(keys):
        db.put(k, k)
    assert list(db.keys()) == keys
    assert list(db.keys(reverse=True)) == keys[::-1]
    assert list(db.keys(start=b"01001")) == [k for k in keys if k >= b"01001"]
    assert list(db.keys(start=b"01000", reverse=True)) == [k for k in keys if k <= b"01000"][::-1]
    assert list(db.keys(prefix=b"01")) == [k for k in keys if k.startswith(b"01")]
    assert list(db.keys(prefix=b"01", reverse=True)) == [k for k in keys if k.startswith(b"01")][::-1]
    assert list(db.keys(prefix=b"\xff")) == []
    db.put(b"\xff\xff", b"x")
    db.put(b"\xff", b"y")
    assert list(db.keys(prefix=b"\xff", reverse=True)) == [b"\xff\xff", b"\xff"]


def test_changes_during_iteration_never_break_it(db):
    for i in range(1500):
        db.put(b"k%05d" % i, b"v")
    seen = []
    for i, key in enumerate(db.keys()):
        seen.append(key)
        db.delete(key)
        if i % 3 == 0:
            db.put(b"z%05d" % i, b"late")  # keys after the cursor may or may not be seen
    assert seen == sorted(set(seen))  # strictly increasing, no repeats
    assert seen[:1500] == [b"k%05d" % i for i in range(1500)]
    assert all(k.startswith(b"z") for k in seen[1500:])


def test_keys_bad_arguments(db):
    db.put(b"a", b"1")
    with pytest.raises(TypeError):
        list(db.keys(prefix="a"))
    with pytest.raises(TypeError):
        list(db.keys(start="a"))


# ------------------------------------------------------------------ TTL


def test_ttl_le_zero_deletes(db):
    for ttl in (0, -1, -0.5):
        db.put(b"k", b"v")
        assert db.put(b"k", b"new", ttl=ttl) is None
        assert b"k" not in db
        assert db.get(b"k") is None
    db.put(b"never", b"v", ttl=0)
    assert b"never" not in db


def test_expired_keys_are_invisible(db, clock):
    db.put(b"a", b"1", ttl=10)
    db.put(b"b", b"2")
    db.put(b"c", b"3", ttl=100)
    left = db.ttl(b"a")
    assert 0 < left <= 10
    assert db.ttl(b"b") is None
    clock.advance(11)
    assert db.get(b"a") is None
    assert db.get(b"a", b"dflt") == b"dflt"
    assert b"a" not in db
    with pytest.raises(KeyError):
        db[b"a"]
    with pytest.raises(KeyError):
        db.ttl(b"a")
    assert len(db) == 2
    assert list(db.keys()) == [b"b", b"c"]
    assert list(db.keys(reverse=True)) == [b"c", b"b"]
    assert dict(db.items()) == {b"b": b"2", b"c": b"3"}
    stats = db.stats()
    assert stats["keys"] == 2
    assert stats["expired_keys"] == 1
    assert db.delete(b"a") is False
    with pytest.raises(KeyError):
        db.pop(b"a")
    assert db.expire(b"a", 100) is False
    assert db.persist(b"a") is False
    clock.advance(100)
    assert list(db.keys()) == [b"b"]
    assert len(db) == 1


def test_expire_persist_ttl(db, clock):
    with pytest.raises(KeyError):
        db.ttl(b"k")
    assert db.expire(b"k", 10) is False
    db.put(b"k", b"v")
    assert db.expire(b"k", 50) is True
    assert db.ttl(b"k") == pytest.approx(50)
    assert db.get(b"k") == b"v"
    clock.advance(20)
    assert db.ttl(b"k") == pytest.approx(30)
    assert db.persist(b"k") is True
    assert db.ttl(b"k") is None
    clock.advance(1000)
    assert db.get(b"k") == b"v"
    assert db.expire(b"k", 5) is True
    assert db.expire(b"k", None) is True  # None = never expire, like persist
    assert db.ttl(b"k") is None
    assert db.expire(b"k", 0) is True  # a TTL <= 0 deletes, like Redis's EXPIRE
    assert b"k" not in db
    db.put(b"k", b"v", ttl=5)
    assert db.expire(b"k", -3) is True
    assert b"k" not in db


def test_put_replaces_expiry(db, clock):
    db.put(b"k", b"v", ttl=5)
    db.put(b"k", b"v2")
    clock.advance(10)
    assert db.get(b"k") == b"v2"
    assert db.ttl(b"k") is None
    db.put(b"k", b"v3", ttl=30)
    assert db.ttl(b"k") == pytest.approx(30)


def test_put_with_an_absolute_expiry(db, clock):
    """expires_at stores that exact time, so a read-modify-write can keep a key's expiry unchanged."""
    at = clock() + 50.125
    db.put(b"k", b"v", expires_at=at)
    assert db.get_with_expiry(b"k") == (b"v", at)
    db.put(b"k", b"w", expires_at=db.get_with_expiry(b"k")[1])
    assert db.get_with_expiry(b"k") == (b"w", at)
    db.put(b"k", b"x", expires_at=0)  # 0: never expires
    assert db.get_with_expiry(b"k") == (b"x", None)
    db.put(b"k", b"y", expires_at=clock() - 1)  # already past: the key goes, as with ttl <= 0
    assert b"k" not in db
    with pytest.raises(TypeError):
        db.put(b"k", b"v", ttl=5, expires_at=at)
    with db.batch() as b:
        b.put(b"k", b"z", expires_at=0.0)
    assert db.get_with_expiry(b"k") == (b"z", None)
    bad_times = [("soon", TypeError), (True, TypeError), (False, TypeError), (math.nan, ConfigurationError)]
    bad_times.append((-1, ConfigurationError))
    for bad, exc in bad_times:
        with pytest.raises(exc):
            db.put(b"k", b"v", expires_at=bad)
        with pytest.raises(exc), db.batch() as b:
            b.put(b"k", b"v", expires_at=bad)
    assert db.get_with_expiry(b"k") == (b"z", None)  # no bad put took effect


def test_expired_record_not_resurrected_by_replay(store_path, clock):
    with DB(store_path) as db:
        db.put(b"k", b"old")
        db.put(b"k", b"new", ttl=10)
        db.put(b"keep", b"x", ttl=1000)
    clock.advance(11)
    with DB(store_path) as db:
        assert db.get(b"k") is None
        assert b"k" not in db
        assert list(db.keys()) == [b"keep"]
        assert db.ttl(b"keep") == pytest.approx(989)
    with DB(store_path, read_only=True) as db:
        assert db.get(b"k") is None


def test_ttl_survives_reopen_and_other_instances(store_path, clock):
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"v", ttl=60)
        assert other.ttl(b"k") == pytest.approx(60)
        clock.advance(61)
        assert other.get(b"k") is None
    with DB(store_path) as db:
        assert b"k" not in db


def test_ttl_must_be_a_number(db):
    with pytest.raises(TypeError):
        db.put(b"k", b"v", ttl="10")
    db.put(b"k", b"v")
    with pytest.raises(TypeError):
        db.expire(b"k", "10")
    with pytest.raises(TypeError):
        db.put_if_absent(b"k2", b"v", ttl=[1])
    assert db.get(b"k") == b"v"
    assert b"k2" not in db


# ------------------------------------------------------------------ incr / put_if_absent / update


def test_incr(db):
    assert db.incr(b"n") == 1
    assert db.get(b"n") == b"1"
    assert db.incr(b"n", 41) == 42
    assert db.incr(b"n", -50) == -8
    assert db.get(b"n") == b"-8"
    assert db.incr(b"n", 0) == -8
    db.put(b"s", b"100")
    assert db.incr(b"s") == 101
    db.put(b"neg", b"-5")
    assert db.incr(b"neg", 2) == -3
    big = 10**30
    assert db.incr(b"big", big) == big
    assert db.get(b"big") == str(big).encode()


@pytest.mark.parametrize(
    "raw",
    [b"abc", b"1.5", b"", b" 1", b"1 ", b"0x10", b"--1", b"1-", b"\xd9\xa3", b"1e3", b"+5", b"007", b"-"],
)
def test_incr_non_integer(db, raw):
    db.put(b"k", raw)
    with pytest.raises(NotAnIntegerError) as info:
        db.incr(b"k")
    assert isinstance(info.value, ValueError)
    assert db.get(b"k") == raw


def test_incr_bad_delta(db):
    for delta in (1.5, "1", True, None):
        with pytest.raises(TypeError):
            db.incr(b"k", delta)
    assert b"k" not in db


def test_incr_keeps_expiry(db, clock):
    db.put(b"n", b"5", ttl=100)
    assert db.incr(b"n") == 6
    assert db.ttl(b"n") == pytest.approx(100)
    clock.advance(101)
    assert db.get(b"n") is None
    # An expired counter starts again at 0 and without an expiry.
    assert db.incr(b"n", 3) == 3
    assert db.ttl(b"n") is None


def test_put_if_absent(db, clock):
    assert db.put_if_absent(b"k", b"first") is True
    assert db.put_if_absent(b"k", b"second") is False
    assert db.get(b"k") == b"first"
    db.delete(b"k")
    assert db.put_if_absent(b"k", b"third", ttl=10) is True
    assert db.ttl(b"k") == pytest.approx(10)
    assert db.put_if_absent(b"k", b"fourth") is False
    clock.advance(11)
    assert db.put_if_absent(b"k", b"fifth") is True  # an expired key counts as absent
    assert db.get(b"k") == b"fifth"
    assert db.ttl(b"k") is None


def test_update(db, clock):
    seen = []

    def append_x(old):
        seen.append(old)
        return (old or b"") + b"x"

    assert db.update(b"k", append_x) == b"x"
    assert db.update(b"k", append_x) == b"xx"
    assert seen == [None, b"x"]
    assert db.get(b"k") == b"xx"
    # The key keeps its expiry.
    db.expire(b"k", 50)
    db.update(b"k", append_x)
    assert db.ttl(b"k") == pytest.approx(50)
    # Returning None deletes.
    assert db.update(b"k", lambda old: None) is None
    assert b"k" not in db
    # ...and on a missing key writes nothing.
    size = _data_bytes(db.path)
    assert db.update(b"k", lambda old: None) is None
    assert _data_bytes(db.path) == size


def test_update_fn_raising_writes_nothing(db):
    db.put(b"k", b"v")
    size = _data_bytes(db.path)
    token = db.change_token()

    def boom(old):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        db.update(b"k", boom)
    with pytest.raises(InvalidValueError):
        db.update(b"k", lambda old: "not bytes")
    assert db.get(b"k") == b"v"
    assert _data_bytes(db.path) == size
    assert db.change_token() == token
    # The write lock was released: another instance can still write.
    with DB(db.path) as other:
        other.put(b"k2", b"v2")
    assert db.get(b"k2") == b"v2"


# ------------------------------------------------------------------ batches


def test_batch_applies_everything(db, clock):
    db.put(b"old", b"1")
    db.put(b"gone", b"1")
    with db.batch() as b:
        b.put(b"a", b"A")
        b.put(b"t", b"T", ttl=20)
        b.put(b"old", b"x", ttl=0)  # ttl <= 0 inside a batch deletes too
        b.delete(b"gone")
        b.put(b"twice", b"1")
        b.put(b"twice", b"2")
        b.put(b"del-then-put", b"1")
        b.delete(b"del-then-put")
        b.put(b"del-then-put", b"3")
        assert len(b) == 9
        assert b"a" not in db  # nothing is visible before the block ends
    assert dict(db.items()) == {b"a": b"A", b"t": b"T", b"twice": b"2", b"del-then-put": b"3"}
    assert db.ttl(b"t") == pytest.approx(20)
    clock.advance(21)
    assert b"t" not in db


def test_batch_exception_applies_nothing(db):
    db.put(b"a", b"1")
    size = _data_bytes(db.path)
    with pytest.raises(RuntimeError), db.batch() as b:
        b.put(b"a", b"2")
        b.put(b"b", b"2")
        b.delete(b"a")
        raise RuntimeError("abort")
    assert dict(db.items()) == {b"a": b"1"}
    assert _data_bytes(db.path) == size
    # A bad key inside the block raises there and discards the batch.
    with pytest.raises(TypeError), db.batch() as b:
        b.put(b"c", b"3")
        b.put("str-key", b"3")
    with pytest.raises(InvalidValueError), db.batch() as b:
        b.put(b"c", b"3")
        b.put(b"d", 4)
    assert b"c" not in db
    with db.batch():
        pass  # an empty batch writes nothing
    assert _data_bytes(db.path) == size


def test_batch_seen_by_other_instance_only_when_done(store_path):
    with DB(store_path) as db, DB(store_path, read_only=True) as reader:
        with db.batch() as b:
            for i in range(10):
                b.put(b"k%d" % i, b"v")
            assert reader.get(b"k0") is None
        assert [reader.get(b"k%d" % i) for i in range(10)] == [b"v"] * 10


def test_batch_larger_than_a_file(store_path):
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"first", b"x" * 3000)
        with db.batch() as b:
            for i in range(20):
                b.put(b"k%02d" % i, bytes([i]) * 500)
    with DB(store_path, max_file_size=4096) as db:
        assert [db[b"k%02d" % i] for i in range(20)] == [bytes([i]) * 500 for i in range(20)]
        assert db[b"first"] == b"x" * 3000
        assert db.stats()["files"] >= 2


# ------------------------------------------------------------------ stats


def test_stats_fields(store_path):
    with DB(store_path, max_file_size=4096) as db:
        s = db.stats()
        assert s["keys"] == 0 and s["live_bytes"] == 0 and s["dead_bytes"] == 0
        assert s["files"] == 1
        assert s["read_only"] is False and s["sync"] == "never"
        db.put(b"a", b"12345")
        db.put(b"bb", b"x" * 100)
        rec_a = record.HEADER_SIZE + 1 + 5
        rec_b = record.HEADER_SIZE + 2 + 100
        s = db.stats()
        assert s["keys"] == 2
        assert s["live_bytes"] == rec_a + rec_b
        assert s["dead_bytes"] == 0
        assert s["total_bytes"] == _data_bytes(store_path)
        db.put(b"a", b"123")  # the old record of a is now dead
        s = db.stats()
        assert s["live_bytes"] == rec_a - 2 + rec_b
        assert s["dead_bytes"] == rec_a
        db.delete(b"bb")
        s = db.stats()
        assert s["keys"] == 1
        assert s["live_bytes"] == rec_a - 2
        assert s["dead_bytes"] == s["total_bytes"] - record.FILE_HEADER_SIZE * s["files"] - s["live_bytes"]
        for i in range(40):
            db.put(b"f%d" % i, b"y" * 200)
        s = db.stats()
        assert s["files"] == len(list_data_files(store_path)) >= 3
        assert s["total_bytes"] == _data_bytes(store_path)
        assert s["corrupt_records"] == 0
        assert s["active_file"] == data_name(list_data_files(store_path)[-1])
    with DB(store_path, read_only=True, sync="always") as db:
        s = db.stats()
        assert s["keys"] == 41 and s["read_only"] is True and s["sync"] == "always"


# ------------------------------------------------------------------ lifecycle


def test_close_is_idempotent_and_final(store_path):
    db = DB(store_path)
    db.put(b"k", b"v")
    assert not db.closed
    db.close()
    db.close()
    assert db.closed
    assert "closed" in repr(db)
    calls = [
        lambda: db.get(b"k"),
        lambda: db[b"k"],
        lambda: db.put(b"k", b"v"),
        lambda: db.__setitem__(b"k", b"v"),
        lambda: db.delete(b"k"),
        lambda: db.pop(b"k", None),
        lambda: b"k" in db,
        lambda: len(db),
        lambda: list(db.keys()),
        lambda: list(db.items()),
        lambda: db.incr(b"n"),
        lambda: db.put_if_absent(b"k", b"v"),
        lambda: db.update(b"k", lambda old: b"x"),
        lambda: db.expire(b"k", 5),
        lambda: db.ttl(b"k"),
        lambda: db.clear(),
        lambda: db.stats(),
        lambda: db.sync(),
        lambda: db.change_token(),
        lambda: db.wait_for_change(0, timeout=0),
        lambda: db.batch().__enter__(),
        lambda: db.locked().__enter__(),
    ]
    for call in calls:
        with pytest.raises(DatabaseClosedError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert store_path in str(info.value)
    with DB(store_path) as again:
        assert again[b"k"] == b"v"


def test_context_manager_closes_even_on_error(store_path):
    with pytest.raises(RuntimeError), DB(store_path) as db:
        db.put(b"k", b"v")
        raise RuntimeError
    assert db.closed
    with DB(store_path) as db2:
        assert db2[b"k"] == b"v"
    assert db2.closed


def test_pathlike_and_several_instances_in_one_process(tmp_path):
    path = tmp_path / "store"
    with DB(path) as a, DB(str(path)) as b:
        a.put(b"k", b"from a")
        assert b.get(b"k") == b"from a"
        b.put(b"k", b"from b")
        assert a.get(b"k") == b"from b"
        assert a.incr(b"n") == 1 and b.incr(b"n") == 2 and a.incr(b"n") == 3
        b.delete(b"k")
        assert b"k" not in a
        assert list(a.keys()) == [b"n"]


# ------------------------------------------------------------------ read-only


def test_read_only_rejects_writes_and_sees_others(store_path):
    with DB(store_path) as writer:
        writer.put(b"k", b"v")
        files_before = sorted(os.listdir(store_path))
        with DB(store_path, read_only=True) as ro:
            assert ro.read_only
            writes = [
                lambda: ro.put(b"k", b"x"),
                lambda: ro.__setitem__(b"k", b"x"),
                lambda: ro.put(b"k", b"x", ttl=0),
                lambda: ro.delete(b"k"),
                lambda: ro.__delitem__(b"k"),
                lambda: ro.pop(b"k"),
                lambda: ro.incr(b"n"),
                lambda: ro.put_if_absent(b"new", b"x"),
                lambda: ro.update(b"k", lambda old: b"x"),
                lambda: ro.expire(b"k", 10),
                lambda: ro.persist(b"k"),
                lambda: ro.clear(),
                lambda: ro.batch().__enter__(),
                lambda: ro.locked().__enter__(),
            ]
            for write in writes:
                with pytest.raises(ReadOnlyError) as info:
                    write()
                assert isinstance(info.value, KVError)
            assert ro.get(b"k") == b"v"
            assert b"n" not in ro
            # It follows other writers without reopening.
            writer.put(b"k", b"v2")
            writer.put(b"k2", b"w")
            assert ro.get(b"k") == b"v2"
            assert list(ro.keys()) == [b"k", b"k2"]
            with writer.batch() as b:
                b.delete(b"k")
            assert list(ro.keys()) == [b"k2"]
        assert sorted(os.listdir(store_path)) == files_before


# ------------------------------------------------------------------ locked()


def test_locked_is_reentrant_and_excludes_other_writers(store_path):
    done = threading.Event()
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"0")

        def write_from_other():
            other.put(b"k", b"from-other")
            done.set()

        with db.locked():
            with db.locked():
                value = int(db[b"k"])
                t = threading.Thread(target=write_from_other)
                t.start()
                assert not done.wait(0.3)  # the other writer waits for the lock
                db.put(b"k", str(value + 1).encode())
                db.incr(b"n")
                with db.batch() as b:
                    b.put(b"b", b"1")
            assert not done.is_set()
            assert db[b"k"] == b"1"
        t.join(10)
        assert done.is_set()
        assert db[b"k"] == b"from-other"


def test_locked_reads_see_every_published_write(store_path):
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"1")
        other.put(b"k", b"2")
        with db.locked():
            assert db[b"k"] == b"2"


# ------------------------------------------------------------------ change notification


def test_change_token_and_wait_for_change(store_path):
    with DB(store_path) as db, DB(store_path, read_only=True) as watcher:
        token = watcher.change_token()
        assert isinstance(token, int)
        assert watcher.wait_for_change(token, timeout=0.05) is False
        assert watcher.change_token() == token
        db.put(b"k", b"v")
        assert watcher.change_token() != token
        assert watcher.wait_for_change(token, timeout=0) is True

        token = watcher.change_token()

        def later():
            time.sleep(0.1)
            db.put(b"k2", b"v")

        t = threading.Thread(target=later)
        t.start()
        assert watcher.wait_for_change(token, timeout=30) is True
        assert watcher.get(b"k2") == b"v"
        t.join()
        # Reads alone change nothing.
        token = db.change_token()
        db.get(b"k")
        list(db.keys())
        assert db.change_token() == token
