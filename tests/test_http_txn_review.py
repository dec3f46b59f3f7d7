"""Review of POST /v1/txn (#7): the read gate against the engine's own locking, and the overlay
evaluation against the single-key endpoints."""

from __future__ import annotations

import base64
import random
import threading

import pytest
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.http import app as http_app
from kv_backend.http import create_app, encode_key


@pytest.fixture
def db(store_path):
    with DB(store_path) as d:
        yield d


def _api(app):
    """The object whose methods serve the app's endpoints."""
    return next(r.endpoint.endpoint.__self__ for r in app.routes if getattr(r, "path", "") == "/v1/txn")


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
    reader = threading.Thread(target=lambda: out.setdefault("read", api._read(b"k1")), daemon=True)
    reader.start()
    assert reader_reloads.wait(2)
    ops = http_app.parse_txn(b'{"ops": [{"op": "put", "key": "x", "value": "1"}]}')
    writer = threading.Thread(target=lambda: out.setdefault("txn", api._run_txn(ops, True)), daemon=True)
    writer.start()
    writer.join(10)
    reader.join(2)
    assert not writer.is_alive() and not reader.is_alive(), "deadlock"
    assert out["read"][:2] == (b"new", None) and out["txn"] == [{"op": "put"}]
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


# ------------------------------------------- the overlay against single calls

_KEYS = [b"a", b"\x00\xff", b"n"]
_VALUES = [b"", b"0", b"7", b"-3", b"x", b"\xff\x00"]
_TTLS = [None, 50, 500, 1e-9]  # 1e-9: expired at once, in both


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _random_op(rng: random.Random) -> dict:
    kind = rng.choice(["get", "put", "delete", "incr", "expire", "check"])
    op: dict = {"op": kind, "key_base64": _b64(rng.choice(_KEYS))}
    if kind == "put":
        op["value_base64"] = _b64(rng.choice(_VALUES))
        if rng.random() < 0.7:
            op["ttl"] = rng.choice(_TTLS)
    elif kind == "incr" and rng.random() < 0.7:
        op["delta"] = rng.randint(-5, 5)
    elif kind == "expire":
        op["ttl"] = rng.choice(_TTLS)
    elif kind == "check":
        if rng.random() < 0.5:
            op["exists"] = rng.random() < 0.5
        else:
            op["value_base64"] = _b64(rng.choice(_VALUES))
    return op


def _single(c: TestClient, op: dict) -> dict | tuple[int, str]:
    """Run one operation through the single-key endpoints; its txn result, or (status, error)."""
    url = "/v1/keys/" + encode_key(base64.b64decode(op["key_base64"]))
    ttl = "" if op.get("ttl") is None else f"?ttl={op['ttl']!r}"
    kind = op["op"]
    if kind == "get":
        r = c.get(url, params={"format": "json"})
        if r.status_code == 404:
            return {"op": "get", "found": False, "value_base64": None, "ttl": None}
        return {"op": "get", "found": True, "value_base64": r.json()["value_base64"], "ttl": r.json()["ttl"]}
    if kind == "put":
        assert c.put(url + ttl, content=base64.b64decode(op["value_base64"])).status_code in (201, 204)
        return {"op": "put"}
    if kind == "delete":
        return {"op": "delete", "found": c.delete(url).status_code == 204}
    if kind == "incr":
        r = c.post(url + "/incr" + (f"?delta={op['delta']}" if "delta" in op else ""))
        if r.status_code != 200:
            return (r.status_code, r.json()["error"])
        return {"op": "incr", "value": r.json()["value"]}
    if kind == "expire":
        r = c.post(url + "/expire" + ttl)
        return {"op": "expire", "found": r.status_code == 200, "ttl": r.json().get("ttl")}
    r = c.get(url)
    if "exists" in op:
        held = (r.status_code == 200) == op["exists"]
    else:
        held = r.status_code == 200 and r.content == base64.b64decode(op["value_base64"])
    return {"op": "check"} if held else (409, "check_failed")


def _state(db: DB) -> dict:
    return {k: db.get_with_expiry(k) for k in _KEYS}


def _same(got, expected) -> bool:
    """Equal, but for TTLs and expiry times, which may differ by the time between the two runs."""
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    if isinstance(got, (tuple, list)) and isinstance(expected, (tuple, list)):
        return len(got) == len(expected) and all(map(_same, got, expected))
    if isinstance(got, float) and isinstance(expected, float):
        return abs(got - expected) < 1
    return got == expected


def test_random_transactions_match_the_same_single_calls(tmp_path):
    """Each random list of operations, run as one transaction on one store and as single-key calls
    on another, gives the same results, the same error (at the same index) and the same state,
    expiries included; a failed transaction leaves its store as it was."""
    rng = random.Random(7)
    with (
        DB(str(tmp_path / "t")) as t_db,
        DB(str(tmp_path / "s")) as s_db,
        TestClient(create_app(t_db)) as tc,
        TestClient(create_app(s_db)) as sc,
    ):
        for _ in range(150):
            ops = [_random_op(rng) for _ in range(rng.randint(1, 6))]
            before = _state(t_db)
            r = tc.post("/v1/txn", json={"ops": ops})
            expected = []
            for index, op in enumerate(ops):
                result = _single(sc, op)
                if isinstance(result, tuple):
                    assert (r.status_code, r.json()["error"], r.json()["index"]) == (*result, index)
                    assert _state(t_db) == before, ops
                    for key, found in before.items():  # undo the single calls' writes
                        if found is None:
                            s_db.delete(key)
                        else:
                            s_db.put(key, found[0], expires_at=found[1] or 0.0)
                    break
                expected.append(result)
            else:
                assert r.status_code == 200, (ops, r.text)
                assert _same(r.json()["results"], expected), (ops, r.json(), expected)
            assert _same(_state(t_db), _state(s_db)), ops
