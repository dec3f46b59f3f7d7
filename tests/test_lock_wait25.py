"""Waits of a call under a ``waiting_until`` deadline (``kvb http``'s ``--lock-timeout``) that ignored it.

A write of one thread that found another thread's transaction written (``DB.transaction()``, ``POST
/v1/txn``) waited for that transaction to end before it caught up, with no deadline: a ``PUT`` waited
as long as the transaction lasted instead of being answered ``503 lock_timeout``. And a
``waiting_until`` block nested in another one cleared the thread's deadline at its exit, so that the
outer block's later take of the lock waited without one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from kv_backend import locking
from kv_backend.db import DB
from kv_backend.errors import LockTimeoutError
from kv_backend.http import create_app
from kv_backend.locking import waiting_until

#: How long the other thread's transaction or hold lasts at most (the calls tested wait far less).
HOLD = 3.0
#: The deadline of the calls tested, in seconds from their start.
LIMIT = 0.3
#: A POST /v1/txn body that writes a key.
TXN = {"ops": [{"op": "put", "key": "t", "value": "v"}]}


class Other:
    """Another thread inside ``db.transaction()`` (having written a key) or ``db.locked()`` until
    :meth:`end`, or :data:`HOLD` seconds at most."""

    def __init__(self, db: DB, *, transaction: bool = True) -> None:
        self._inside = threading.Event()
        self._end = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(db, transaction), daemon=True)
        self._thread.start()
        assert self._inside.wait(10)

    def _run(self, db: DB, transaction: bool) -> None:
        with db.transaction() if transaction else db.locked():
            if transaction:
                db.put(b"txn", b"1")
            self._inside.set()
            self._end.wait(HOLD)

    def end(self) -> None:
        """End the block and wait for the thread."""
        self._end.set()
        self._thread.join(10)


@pytest.fixture
def db(tmp_path) -> Iterator[DB]:
    store = DB(str(tmp_path / "store"))
    try:
        yield store
    finally:
        store.close()


def _timed_out_at_deadline(fn) -> float:
    """Run ``fn`` under a deadline :data:`LIMIT` seconds away; it must raise LockTimeoutError: its seconds."""
    started = time.monotonic()
    with pytest.raises(LockTimeoutError), waiting_until(started + LIMIT):
        fn()
    return time.monotonic() - started


def test_a_write_waiting_for_another_threads_transaction_gives_up_at_its_deadline(db):
    db.put(b"a", b"0")
    other = Other(db)
    try:
        took = _timed_out_at_deadline(lambda: db.put(b"k", b"v"))
        assert LIMIT <= took < HOLD - 1
        _timed_out_at_deadline(lambda: db.delete(b"a"))
        _timed_out_at_deadline(lambda: db.incr(b"n"))
        _timed_out_at_deadline(lambda: db.locked().__enter__())
    finally:
        other.end()
    assert db.get(b"txn") == b"1"  # the transaction was made
    assert db.get(b"k") is None and db.get(b"a") == b"0" and db.get(b"n") is None  # nothing written
    with waiting_until(time.monotonic() + LIMIT):  # once it ended, the same write is made
        db.put(b"k", b"v")
    assert db.get(b"k") == b"v"


def test_without_a_deadline_a_write_still_waits_for_the_transaction(db):
    other = Other(db)
    ender = threading.Timer(0.5, other.end)
    ender.start()
    try:
        started = time.monotonic()
        db.put(b"k", b"v")
        assert time.monotonic() - started >= 0.4
        assert db.get(b"txn") == b"1" and db.get(b"k") == b"v"
    finally:
        ender.join()


def test_kvb_http_answers_lock_timeout_while_another_thread_writes_a_transaction(db):
    db.put(b"a", b"0")
    with TestClient(create_app(db, lock_timeout=LIMIT)) as client:
        other = Other(db)
        try:
            for method, url, body in (
                ("PUT", "/v1/keys/k", {"content": b"v"}),
                ("DELETE", "/v1/keys/a", {}),
                ("POST", "/v1/keys/n/incr", {}),
                ("POST", "/v1/txn", {"json": TXN}),
            ):
                started = time.monotonic()
                reply = client.request(method, url, **body)
                assert time.monotonic() - started < HOLD - 1, (method, url)
                assert reply.status_code == 503, (method, url, reply.text)
                assert reply.json()["error"] == "lock_timeout"
        finally:
            other.end()
        assert client.get("/v1/keys/k").status_code == 404  # nothing was written
        assert client.get("/v1/keys/t").status_code == 404
        assert client.get("/v1/keys/a").content == b"0"
        assert client.put("/v1/keys/k", content=b"v").status_code == 201  # free again


def test_a_nested_block_gives_the_outer_deadline_back_at_its_exit(db):
    other = Other(db, transaction=False)  # holds the lock: a take waits
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeoutError), waiting_until(started + LIMIT):
            with waiting_until(started + 60):
                pass  # (takes nothing)
            db.put(b"k", b"v")  # waits until the outer deadline, not for the hold's end
        assert time.monotonic() - started < HOLD - 1
        started = time.monotonic()
        with pytest.raises(LockTimeoutError), waiting_until(started + 60), waiting_until(started + LIMIT):
            db.put(b"k", b"v")  # the inner deadline holds inside the inner block
        assert time.monotonic() - started < HOLD - 1
    finally:
        other.end()
    assert not locking._limits_open  # every block's token is gone
    assert db.get(b"k") is None


def test_a_take_in_the_nested_block_ends_the_outer_deadline_too(db):
    other = None
    started = time.monotonic()
    with waiting_until(started + LIMIT):
        with waiting_until(started + LIMIT):
            db.put(b"a", b"1")  # taken: something may have been written in the outer block's call
        other = Other(db, transaction=False)
        threading.Timer(0.6, other.end).start()
        db.put(b"b", b"2")  # so a later take waits as usual, past the deadline
    assert time.monotonic() - started >= 0.5
    assert db.get(b"a") == b"1" and db.get(b"b") == b"2"
    assert not locking._limits_open


def test_a_transaction_waiting_for_readers_of_the_server_gives_up_at_the_lock_timeout(db, monkeypatch):
    inside, leave = threading.Event(), threading.Event()
    stats = db.stats

    def slow_stats() -> dict:
        inside.set()  # (a read inside the server's gate, which a transaction being written waits for)
        leave.wait(HOLD)
        return stats()

    monkeypatch.setattr(db, "stats", slow_stats)
    with TestClient(create_app(db, lock_timeout=LIMIT)) as client:
        reader = threading.Thread(target=client.get, args=("/v1/stats",))
        reader.start()
        try:
            assert inside.wait(10)
            started = time.monotonic()
            reply = client.post("/v1/txn", json=TXN)
            took = time.monotonic() - started
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"] == "lock_timeout"
            assert took < HOLD - 1
        finally:
            leave.set()
            reader.join(10)
        assert client.get("/v1/keys/t").status_code == 404  # nothing was written
        assert client.post("/v1/txn", json=TXN).status_code == 200  # made once the reader is out
        assert client.get("/v1/keys/t").content == b"v"


def test_a_conditional_put_gives_up_at_the_lock_timeout_in_its_early_check_too(db):
    with TestClient(create_app(db, lock_timeout=LIMIT)) as client:
        other = Other(db)
        try:
            for headers in ({"If-None-Match": "*"}, {"If-Match": "*"}):
                started = time.monotonic()
                reply = client.put("/v1/keys/k", content=b"v", headers=headers)
                assert time.monotonic() - started < HOLD - 1, headers
                assert reply.status_code == 503, (headers, reply.text)
                assert reply.json()["error"] == "lock_timeout"
        finally:
            other.end()
        assert client.get("/v1/keys/k").status_code == 404  # nothing was written
        assert client.put("/v1/keys/k", content=b"v", headers={"If-None-Match": "*"}).status_code == 201


def test_a_write_that_first_catches_up_with_a_merge_still_gives_up_at_its_deadline(db, monkeypatch):
    for i in range(50):
        db.put(b"k%d" % i, b"v")
    with DB(db.path) as merger:  # another DB object of the store (another process's, as far as db goes)
        for i in range(50):
            merger.put(b"k%d" % i, b"w")
        merger.merge(wait=True)  # the file set changed: db's next catch-up reloads it, under the lock
        reload = db._full_reload
        others: list[Other] = []

        def reload_then_held() -> None:
            reload()
            if not others:  # the lock is taken by another as soon as the reload let it go
                others.append(Other(merger, transaction=False))

        monkeypatch.setattr(db, "_full_reload", reload_then_held)
        try:
            took = _timed_out_at_deadline(lambda: db.put(b"new", b"v"))
            assert took < HOLD - 1
            assert others  # (the write did reload)
        finally:
            for other in others:
                other.end()
    assert db.get(b"new") is None and db.get(b"k0") == b"w"
