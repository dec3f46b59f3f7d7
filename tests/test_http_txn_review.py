"""Review of POST /v1/txn (#7): the read gate against the engine's own locking, and the overlay
evaluation against the single-key endpoints."""

from __future__ import annotations

import threading

import pytest
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.http import app as http_app
from kv_backend.http import create_app


@pytest.fixture
def db(store_path):
    with DB(store_path) as d:
        yield d


def _api(app):
    """The object whose methods serve the app's endpoints."""
    return next(r.endpoint.__self__ for r in app.routes if getattr(r, "path", "") == "/v1/txn")


# ------------------------------------------------------------- the read gate


def test_a_read_catching_up_with_another_process_merge_does_not_deadlock_a_transaction(
    store_path, monkeypatch
):
    """A GET that finds another process merged the store rebuilds its view under the write lock,
    from inside the read gate. A transaction that took the write lock first then waited for that
    reader to leave the gate, and the reader for the lock: both (and then every request) hung."""
    db = DB(store_path)  # not closed on failure: its threads may be stuck
    for i in range(20):
        db.put(b"k%d" % i, b"old")
    with DB(store_path) as other:  # another process: rewrites every key, then merges
        for i in range(20):
            other.put(b"k%d" % i, b"new")
        other.merge(wait=True)
    api = _api(create_app(db))
    reader_reloads, txn_locked = threading.Event(), threading.Event()
    full_reload = DB._full_reload

    def reload_after_the_txn_locked(self):
        if self is db and not self._lock.held and not reader_reloads.is_set():
            reader_reloads.set()  # the reader, inside the gate, is about to take the write lock
            txn_locked.wait(2)
        return full_reload(self)

    run = http_app._TxnPlan.run

    def run_and_tell(self, ops):
        txn_locked.set()  # the transaction holds the write lock
        return run(self, ops)

    monkeypatch.setattr(DB, "_full_reload", reload_after_the_txn_locked)
    monkeypatch.setattr(http_app._TxnPlan, "run", run_and_tell)
    out: dict = {}
    reader = threading.Thread(target=lambda: out.setdefault("read", api._read_once(b"k1")), daemon=True)
    reader.start()
    assert reader_reloads.wait(2)
    ops = http_app.parse_txn(b'{"ops": [{"op": "put", "key": "x", "value": "1"}]}')
    writer = threading.Thread(target=lambda: out.setdefault("txn", api._run_txn(ops, True)), daemon=True)
    writer.start()
    writer.join(10)
    reader.join(2)
    assert not writer.is_alive() and not reader.is_alive(), "deadlock"
    assert out == {"read": (b"new", None), "txn": [{"op": "put"}]}
    assert db.get(b"x") == b"1"
    db.close()


def test_a_transaction_waits_for_a_slow_reader_and_still_applies(db):
    """The writer's bounded wait for readers starts the transaction again; it is never lost."""
    app = create_app(db)
    api = _api(app)
    inside, leave = threading.Event(), threading.Event()

    def slow_reader():
        with api.gate.reading():
            inside.set()
            leave.wait(5)

    reader = threading.Thread(target=slow_reader)
    reader.start()
    assert inside.wait(2)
    threading.Timer(0.3, leave.set).start()  # longer than the first waits of the writer
    with TestClient(app) as c:
        r = c.post("/v1/txn", json={"ops": [{"op": "incr", "key": "n"}, {"op": "incr", "key": "n"}]})
    reader.join()
    assert r.status_code == 200 and r.json()["results"][1] == {"op": "incr", "value": 2}
    assert db.get(b"n") == b"2"


def test_stats_never_count_part_of_a_transaction(db):
    """GET /v1/stats while a transaction of this process is being written counted the keys written
    so far (and a transaction that then failed would have been counted too)."""
    db.put(b"old", b"1")
    app = create_app(db)
    seen: list[int] = []
    put = db.put

    def put_then_ask_for_stats(key, value, *args, **kwargs):
        put(key, value, *args, **kwargs)
        if key == b"a":  # the first of the transaction's two writes

            def stats():
                with TestClient(app) as c:
                    seen.append(c.get("/v1/stats").json()["keys"])

            asker = threading.Thread(target=stats)
            asker.start()
            asker.join(0.3)  # answered meanwhile only if stats do not wait for the transaction
            waiters.append(asker)

    waiters: list[threading.Thread] = []
    db.put = put_then_ask_for_stats
    try:
        with TestClient(app) as c:
            ops = [{"op": "put", "key": "a", "value": "1"}, {"op": "put", "key": "b", "value": "2"}]
            assert c.post("/v1/txn", json={"ops": ops}).status_code == 200
    finally:
        del db.put
    for t in waiters:
        t.join()
    assert seen == [3]
