"""DB.count(prefix=...): the live keys under a prefix, counted without walking them (kvb serve's
DBSIZE and INFO keyspace walked every key name on the event loop: 0.24 s at 500,000 keys) (#2, #7)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kv_backend import DB
from kv_backend.errors import DatabaseClosedError, InvalidKeyError


def _walked(db: DB, prefix: bytes) -> int:
    return sum(1 for _ in db.keys(prefix=prefix))


@settings(max_examples=80, deadline=None)
@given(
    ops=st.lists(
        st.tuples(st.sampled_from(["put", "del", "ttl"]), st.binary(min_size=1, max_size=3)), max_size=60
    ),
    prefixes=st.lists(st.binary(max_size=2), min_size=1, max_size=5),
)
def test_count_agrees_with_a_walk_of_the_keys(tmp_path_factory, ops, prefixes):
    with DB(str(tmp_path_factory.mktemp("count") / "s")) as db:
        for op, key in ops:
            if op == "put":
                db.put(key, b"v")
            elif op == "del":
                db.delete(key)
            else:
                db.put(key, b"v", ttl=3600)
        for prefix in [*prefixes, b"\xff", b"\xff\xff"]:
            assert db.count(prefix=prefix) == _walked(db, prefix)
        assert db.count() == len(db) == _walked(db, b"")


def test_expired_keys_are_not_counted(store_path):
    with DB(store_path) as db:
        db.put(b"a:1", b"v", ttl=0.05)
        db.put(b"a:2", b"v")
        db.put(b"b:1", b"v", ttl=0.05)
        assert db.count(prefix=b"a:") == 2
        time.sleep(0.1)
        assert db.count(prefix=b"a:") == 1 and db.count(prefix=b"b:") == 0 and db.count() == 1


def test_another_process_writes_are_counted(store_path):
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"p:0", b"v")
        assert db.count(prefix=b"p:") == 1
        for i in range(1, 50):
            other.put(b"p:%d" % i, b"v")
        other.delete(b"p:0")
        assert db.count(prefix=b"p:") == 49


def test_an_open_transaction_of_another_thread_is_not_seen(store_path):
    with DB(store_path) as db:
        db.put(b"t:0", b"v")
        db.count(prefix=b"t:")  # (the sorted index exists)
        inside, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def writer() -> None:
            with db.transaction():
                db.put(b"t:1", b"v")
                inside.set()
                release.wait(5)

        t = threading.Thread(target=writer)
        t.start()
        assert inside.wait(5)
        reader = threading.Thread(target=lambda: seen.append(db.count(prefix=b"t:")))
        reader.start()
        time.sleep(0.1)
        release.set()
        t.join(5)
        reader.join(5)
        assert seen == [2]  # waited for the block's end, then counted its write


def test_bad_prefixes_and_a_closed_store(store_path):
    db = DB(store_path)
    with pytest.raises(InvalidKeyError):
        db.count(prefix="a")  # type: ignore[arg-type]
    assert db.count(prefix=bytearray(b"x")) == 0
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.count(prefix=b"a")
