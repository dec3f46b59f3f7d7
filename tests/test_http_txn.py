"""POST /v1/txn: several operations as one atomic transaction over HTTP (#7)."""

from __future__ import annotations

import base64
import json
import random
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient
from test_http import TOKEN, Server
from zygote import KVB_COMMAND, Zygote

from kv_backend import DB
from kv_backend.http import create_app, encode_key
from kv_backend.http.app import MAX_TTL, MAX_TXN_OPS


@pytest.fixture
def client(db):
    with TestClient(create_app(db, token=TOKEN), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def txn(client, *ops, status: int = 200):
    r = client.post("/v1/txn", json={"ops": list(ops)})
    assert r.status_code == status, r.text
    return r.json()


def results(client, *ops):
    return txn(client, *ops)["results"]


# --------------------------------------------------------------- every op


def test_get_of_a_missing_and_of_a_present_key(client, db):
    db.put(b"a", b"\x00\xffbin", ttl=100)
    db.put(b"b", b"plain")
    ops = [{"op": "get", "key": "missing"}, {"op": "get", "key": "a"}, {"op": "get", "key": "b"}]
    got = results(client, *ops)
    assert got[0] == {"op": "get", "found": False, "value_base64": None, "ttl": None}
    assert got[1]["found"] is True and got[1]["value_base64"] == b64(b"\x00\xffbin")
    assert 99 < got[1]["ttl"] <= 100
    assert got[2] == {"op": "get", "found": True, "value_base64": b64(b"plain"), "ttl": None}


def test_put_text_and_base64_values_with_and_without_ttl(client, db):
    db.put(b"old", b"x", ttl=50)
    got = results(
        client,
        {"op": "put", "key": "t", "value": "héllo"},
        {"op": "put", "key_base64": b64(b"\xff/bin\n"), "value_base64": b64(b"\x00\x01")},
        {"op": "put", "key": "ttl", "value": "v", "ttl": 30.5},
        {"op": "put", "key": "old", "value": "y", "ttl": None},  # like a PUT without ttl: no expiry
        {"op": "put", "key": "empty", "value": ""},
    )
    assert got == [{"op": "put"}] * 5
    assert db.get(b"t") == "héllo".encode()
    assert db.get(b"\xff/bin\n") == b"\x00\x01"
    assert 30 < db.ttl(b"ttl") <= 30.5
    assert db.get(b"old") == b"y" and db.ttl(b"old") is None
    assert db.get(b"empty") == b""
    # the same bytes as the rest of the API: readable at the percent-encoded URL
    assert client.get("/v1/keys/" + encode_key(b"\xff/bin\n")).content == b"\x00\x01"


def test_delete_incr_expire(client, db):
    db.put(b"d", b"1")
    db.put(b"n", b"10", ttl=100)
    db.put(b"e", b"v")
    db.put(b"p", b"v", ttl=100)
    got = results(
        client,
        {"op": "delete", "key": "d"},
        {"op": "delete", "key": "nothing"},
        {"op": "incr", "key": "n"},
        {"op": "incr", "key": "n", "delta": -15},
        {"op": "incr", "key": "fresh", "delta": 10**30},
        {"op": "expire", "key": "e", "ttl": 60},
        {"op": "expire", "key": "p", "ttl": None},
        {"op": "expire", "key": "nothing", "ttl": 5},
    )
    assert got == [
        {"op": "delete", "found": True},
        {"op": "delete", "found": False},
        {"op": "incr", "value": 11},
        {"op": "incr", "value": -4},
        {"op": "incr", "value": 10**30},
        {"op": "expire", "found": True, "ttl": 60.0},
        {"op": "expire", "found": True, "ttl": None},
        {"op": "expire", "found": False, "ttl": None},
    ]
    assert b"d" not in db and b"nothing" not in db
    assert db.get(b"n") == b"-4" and 99 < db.ttl(b"n") <= 100  # incr keeps the expiry, as the endpoint
    assert db.get(b"fresh") == str(10**30).encode()
    assert 59 < db.ttl(b"e") <= 60 and db.ttl(b"p") is None


def test_checks_that_hold(client, db):
    db.put(b"k", b"\x00v")
    got = results(
        client,
        {"op": "check", "key": "k", "exists": True},
        {"op": "check", "key": "nope", "exists": False},
        {"op": "check", "key": "k", "value_base64": b64(b"\x00v")},
        {"op": "put", "key": "t", "value": "text"},
        {"op": "check", "key": "t", "value": "text"},
    )
    assert got == [{"op": "check"}] * 3 + [{"op": "put"}, {"op": "check"}]


def test_reads_and_checks_see_the_earlier_writes_of_the_transaction(client, db):
    db.put(b"a", b"1")
    got = results(
        client,
        {"op": "put", "key": "a", "value": "2"},
        {"op": "get", "key": "a"},
        {"op": "incr", "key": "a", "delta": 3},
        {"op": "check", "key": "a", "value": "5"},
        {"op": "delete", "key": "a"},
        {"op": "check", "key": "a", "exists": False},
        {"op": "get", "key": "a"},
        {"op": "incr", "key": "a"},  # counts from 0 again
        {"op": "expire", "key": "a", "ttl": 9},
        {"op": "get", "key": "a"},
    )
    assert got[1]["value_base64"] == b64(b"2")
    assert got[2] == {"op": "incr", "value": 5}
    assert got[6]["found"] is False
    assert got[7] == {"op": "incr", "value": 1}
    assert got[9]["value_base64"] == b64(b"1") and 8 < got[9]["ttl"] <= 9
    assert db.get(b"a") == b"1" and 8 < db.ttl(b"a") <= 9


def test_a_key_put_then_deleted_is_not_written_at_all(client, db):
    results(client, {"op": "put", "key": "tmp", "value": "v"}, {"op": "delete", "key": "tmp"})
    assert b"tmp" not in db


def test_empty_transaction(client):
    assert txn(client) == {"results": []}


# ------------------------------------------------------- all or nothing


@pytest.mark.parametrize(
    ("check", "why"),
    [
        ({"exists": False}, "key k exists"),
        ({"value": "other"}, "key k holds another value"),
        ({"value_base64": b64(b"other")}, "key k holds another value"),
    ],
)
def test_a_failed_check_applies_nothing(client, db, check, why):
    db.put(b"k", b"v")
    body = txn(
        client,
        {"op": "put", "key": "a", "value": "1"},
        {"op": "delete", "key": "k"},
        {"op": "put", "key": "k", "value": "v"},
        {"op": "incr", "key": "n"},
        {"op": "check", "key": "k", **check},
        {"op": "put", "key": "b", "value": "2"},
        status=409,
    )
    assert body["error"] == "check_failed" and body["index"] == 4
    assert why in body["message"] and "nothing was applied" in body["message"]
    assert set(db.keys()) == {b"k"} and db.get(b"k") == b"v"


@pytest.mark.parametrize(
    ("check", "why"),
    [({"exists": True}, "does not exist"), ({"value": ""}, "does not exist")],
)
def test_a_failed_check_of_a_missing_key(client, db, check, why):
    ops = [{"op": "put", "key": "a", "value": "1"}, {"op": "check", "key": "m", **check}]
    body = txn(client, *ops, status=409)
    assert body["index"] == 1 and why in body["message"]
    assert b"a" not in db


def test_a_failed_check_writes_nothing_to_the_files(client, db):
    """A failing check is found before anything is written: no records, no rebuilt key directory."""
    db.put(b"k", b"v")
    size = db.stats()["total_bytes"]
    reloads = []
    real = db._full_reload
    db._full_reload = lambda: (reloads.append(1), real())  # type: ignore[method-assign]
    try:
        txn(client, *[{"op": "put", "key": f"x{i}", "value": "v"} for i in range(50)],
            {"op": "check", "key": "k", "exists": False}, status=409)  # fmt: skip
    finally:
        del db._full_reload
    assert db.stats()["total_bytes"] == size and not reloads


def test_an_error_in_the_middle_applies_nothing(client, db):
    db.put(b"s", b"not a number")
    body = txn(
        client,
        {"op": "put", "key": "a", "value": "1"},
        {"op": "incr", "key": "s"},
        {"op": "put", "key": "b", "value": "2"},
        status=409,
    )
    assert body["error"] == "not_an_integer" and body["index"] == 1
    assert b"a" not in db and b"b" not in db
    # a bad operation further on is refused before the first one runs
    body = txn(
        client,
        {"op": "put", "key": "a", "value": "1"},
        {"op": "incr", "key": "n"},
        {"op": "put", "key": "k" * 70000, "value": "2"},
        status=400,
    )
    assert body["error"] == "invalid_key" and body["index"] == 2
    assert b"a" not in db and b"n" not in db


def test_a_failing_write_discards_the_whole_transaction(client, db, monkeypatch):
    """An engine error while writing (a full disk, say) leaves none of the transaction."""
    from kv_backend.errors import StorageError

    real_put = DB.put
    calls = []

    def put(self, key, value, ttl=None, **kw):
        calls.append(key)
        if len(calls) == 3:
            raise StorageError(28, "No space left on device")
        return real_put(self, key, value, ttl, **kw)

    monkeypatch.setattr(DB, "put", put)
    r = client.post("/v1/txn", json={"ops": [{"op": "put", "key": f"k{i}", "value": "v"} for i in range(5)]})
    monkeypatch.undo()
    assert r.status_code == 507, r.text
    assert not any(key.startswith(b"k") for key in db)
    assert results(client, {"op": "put", "key": "after", "value": "v"}) == [{"op": "put"}]
    assert db.get(b"after") == b"v"


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("body", "code", "index", "words"),
    [
        (b"", "invalid_request", None, "JSON object"),
        (b"{not json", "invalid_request", None, "JSON object"),
        (b"[]", "invalid_request", None, '"ops" list'),
        (b'{"ops": {}}', "invalid_request", None, '"ops" list'),
        (b'{"ops": [], "extra": 1}', "invalid_request", None, "unknown field"),
        (b'{"ops": [], "ops": []}', "invalid_request", None, "appears twice"),
        (b'{"ops": [{"op": "get", "key": "a", "key": "b"}]}', "invalid_request", None, "appears twice"),
        (b'{"ops": [{"op": "put", "key": "a", "value": "v", "ttl": NaN}]}', "invalid_request", None, "NaN"),
        (b'{"ops": [{"op": "get", "key": "\\ud800"}]}', "invalid_request", 0, "key_base64"),
        (b"\xff\xfe{", "invalid_request", None, "JSON object"),
    ],
)
def test_bad_bodies(client, db, body, code, index, words):
    r = client.post("/v1/txn", content=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == code and r.json().get("index") == index
    assert words in r.json()["message"]
    assert not list(db.keys())


@pytest.mark.parametrize(
    ("op", "code", "words"),
    [
        ("get", "invalid_request", "JSON object"),
        ({"key": "a"}, "invalid_request", '"op" must be one of'),
        ({"op": "GET", "key": "a"}, "invalid_request", '"op" must be one of'),
        ({"op": "set", "key": "a"}, "invalid_request", '"op" must be one of'),
        ({"op": "get"}, "invalid_request", '"key" (UTF-8 text) or "key_base64"'),
        ({"op": "get", "key": "a", "key_base64": "YQ=="}, "invalid_request", "not both"),
        ({"op": "get", "key": 1}, "invalid_request", '"key" must be a string'),
        ({"op": "get", "key": ""}, "invalid_key", "1 to 65536 bytes"),
        ({"op": "get", "key_base64": ""}, "invalid_key", "1 to 65536 bytes"),
        ({"op": "get", "key_base64": "YQ"}, "invalid_request", "not valid base64"),
        ({"op": "get", "key_base64": "a b="}, "invalid_request", "not valid base64"),
        ({"op": "get", "key_base64": ["YQ=="]}, "invalid_request", "string of base64"),
        ({"op": "get", "key": "a", "value": "v"}, "invalid_request", "get does not take 'value'"),
        ({"op": "delete", "key": "a", "ttl": 5}, "invalid_request", "delete does not take 'ttl'"),
        ({"op": "put", "key": "a"}, "invalid_request", '"value" (UTF-8 text) or "value_base64"'),
        ({"op": "put", "key": "a", "value": "v", "value_base64": "dg=="}, "invalid_request", "not both"),
        ({"op": "put", "key": "a", "value": 5}, "invalid_request", '"value" must be a string'),
        ({"op": "put", "key": "a", "value": "v", "TTL": 5}, "invalid_request", "put does not take 'TTL'"),
        ({"op": "put", "key": "a", "value": "v", "ttl": 0}, "invalid_ttl", "greater than 0"),
        ({"op": "put", "key": "a", "value": "v", "ttl": -1}, "invalid_ttl", "greater than 0"),
        ({"op": "put", "key": "a", "value": "v", "ttl": MAX_TTL + 1}, "invalid_ttl", "at most"),
        ({"op": "put", "key": "a", "value": "v", "ttl": 1e300}, "invalid_ttl", "at most"),
        ({"op": "put", "key": "a", "value": "v", "ttl": "60"}, "invalid_ttl", "number of seconds"),
        ({"op": "put", "key": "a", "value": "v", "ttl": True}, "invalid_ttl", "number of seconds"),
        ({"op": "incr", "key": "a", "delta": "1"}, "invalid_request", '"delta" must be an integer'),
        ({"op": "incr", "key": "a", "delta": 1.5}, "invalid_request", '"delta" must be an integer'),
        ({"op": "incr", "key": "a", "delta": 1e20}, "invalid_request", '"delta" must be an integer'),
        ({"op": "incr", "key": "a", "delta": True}, "invalid_request", '"delta" must be an integer'),
        ({"op": "incr", "key": "a", "delta": None}, "invalid_request", '"delta" must be an integer'),
        ({"op": "expire", "key": "a"}, "invalid_request", 'expire needs "ttl"'),
        ({"op": "expire", "key": "a", "ttl": 0}, "invalid_ttl", "greater than 0"),
        ({"op": "check", "key": "a"}, "invalid_request", "exactly one of"),
        ({"op": "check", "key": "a", "exists": True, "value": "v"}, "invalid_request", "exactly one of"),
        ({"op": "check", "key": "a", "value": "v", "value_base64": "dg=="}, "invalid_request", "not both"),
        ({"op": "check", "key": "a", "exists": 1}, "invalid_request", '"exists" must be true or false'),
        ({"op": "check", "key": "a", "exists": "false"}, "invalid_request", '"exists" must be true or false'),
        ({"op": "check", "key": "a", "exists": None}, "invalid_request", '"exists" must be true or false'),
        ({"op": "check", "key": "a", "value_base64": None}, "invalid_request", "string of base64"),
        ({"op": "check", "key": "a", "exists": False, "value": None}, "invalid_request", "must be a string"),
        ({"op": "put", "key": "a", "value": None}, "invalid_request", '"value" must be a string'),
        ({"op": "get", "key": None}, "invalid_request", '"key" must be a string'),
        ({"op": "get", "key": "a", "key_base64": None}, "invalid_request", "not both"),
    ],
)
def test_bad_operations_are_refused_with_their_index(client, db, op, code, words):
    ops = [{"op": "put", "key": "first", "value": "v"}, op]
    r = client.post("/v1/txn", json={"ops": ops})
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "message", "index"}
    assert body["error"] == code and body["index"] == 1
    assert words in body["message"] and "operation 1" in body["message"]
    assert b"first" not in db


def test_an_integral_delta_given_as_a_json_float_counts(client):
    """JSON Schema, and so the OpenAPI document, counts 2.0 as an integer."""
    assert results(client, {"op": "incr", "key": "n", "delta": 2.0}) == [{"op": "incr", "value": 2}]


def test_too_many_operations_is_refused_before_anything_runs(client, db):
    ops = [{"op": "put", "key": f"k{i}", "value": "v"} for i in range(MAX_TXN_OPS + 1)]
    r = client.post("/v1/txn", json={"ops": ops})
    assert r.status_code == 400 and r.json()["error"] == "too_many_operations"
    assert str(MAX_TXN_OPS) in r.json()["message"]
    assert not list(db.keys())
    assert len(results(client, *ops[:MAX_TXN_OPS])) == MAX_TXN_OPS  # the limit itself is fine
    assert len(db) == MAX_TXN_OPS


def test_the_body_limit_is_the_servers_value_limit(db):
    with TestClient(create_app(db, max_value_size=200)) as c:
        small = {"ops": [{"op": "put", "key": "a", "value": "v" * 100}]}
        assert c.post("/v1/txn", json=small).status_code == 200
        big = json.dumps({"ops": [{"op": "put", "key": "b", "value": "v" * 300}]}).encode()
        r = c.post("/v1/txn", content=big)
        assert r.status_code == 413 and r.json()["error"] == "value_too_large"
        # sent chunked, without a Content-Length: still refused
        r = c.post("/v1/txn", content=iter([big[:100], big[100:]]))
        assert r.status_code == 413 and r.json()["error"] == "value_too_large"
    assert b"b" not in db


def test_request_refusals(client):
    r = client.post("/v1/txn?atomic=1", json={"ops": []})
    assert r.status_code == 400 and r.json()["error"] == "invalid_parameter"
    r = client.post("/v1/txn", json={"ops": []}, headers={"If-Match": "*"})
    assert r.status_code == 400 and "does not support If-Match" in r.json()["message"]
    r = client.post("/v1/txn", content=b'{"ops": []}', headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415 and r.headers["accept-encoding"] == "identity"
    for method in ("GET", "PUT", "DELETE"):
        r = client.request(method, "/v1/txn")
        assert r.status_code == 405 and r.headers["allow"] == "POST, OPTIONS"


def test_auth(db):
    with TestClient(create_app(db, token=TOKEN)) as c:
        ops = {"ops": [{"op": "put", "key": "a", "value": "v"}]}
        r = c.post("/v1/txn", json=ops)
        assert r.status_code == 401 and r.headers["www-authenticate"] == 'Bearer realm="kv_backend"'
        r = c.post("/v1/txn", json=ops, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
        assert b"a" not in db
        r = c.post("/v1/txn", json=ops, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200 and db.get(b"a") == b"v"


def test_read_only_store(db, store_path):
    db.put(b"a", b"1")
    with DB(store_path, read_only=True) as ro, TestClient(create_app(ro)) as c:
        reads = [{"op": "get", "key": "a"}, {"op": "check", "key": "a", "value": "1"}]
        r = c.post("/v1/txn", json={"ops": reads})
        assert r.status_code == 200 and r.json()["results"][0]["value_base64"] == b64(b"1")
        r = c.post("/v1/txn", json={"ops": [{"op": "get", "key": "a"}, {"op": "delete", "key": "a"}]})
        assert r.status_code == 403 and r.json()["error"] == "read_only"
    assert db.get(b"a") == b"1"


# ------------------------------------------------------------ isolation


def test_requests_of_the_same_process_never_see_part_of_a_transaction(db):
    """Threads of one server process share the DB object; a GET must still see all of a transaction or none.

    Each transaction sets keys k0000..k1999 to its generation, in that order. A reader that gets k0000 and
    then k1999 must never find k1999 older than k0000 (which a half-written transaction would show).
    """
    n = 2000
    with db.batch() as b:
        for i in range(n):
            b.put(f"k{i:04}".encode(), b"0")
    app = create_app(db)
    stop = threading.Event()
    torn: list[tuple[int, int]] = []

    def read() -> None:
        with TestClient(app) as c:
            while not stop.is_set():
                first = int(c.get("/v1/keys/k0000").content)
                last = int(c.get(f"/v1/keys/k{n - 1:04}").content)
                page = c.get("/v1/keys?values=true&limit=10000").json()["values_base64"]
                gens = {base64.b64decode(v) for v in page}
                if last < first or len(gens) != 1:
                    torn.append((first, last))

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        with TestClient(app) as c:
            for gen in range(1, 6):
                ops = [{"op": "put", "key": f"k{i:04}", "value": str(gen)} for i in range(n)]
                assert c.post("/v1/txn", json={"ops": ops}).status_code == 200
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not torn, torn[:5]
    assert db.get(b"k0000") == db.get(f"k{n - 1:04}".encode()) == b"5"


# ------------------------------------------------------- several workers


def test_transfers_between_counters_across_several_worker_processes(tmp_path):
    """Transfers between counters from many clients and two uvicorn workers: the total never changes.

    Half the transfers are two incrs, half a compare-and-swap (read both balances, then put both new
    ones under checks of the old, retried on 409). Atomic snapshots (a transaction of gets) must always
    add up, and at the end every balance is exactly what the successful transfers made of it.
    """
    path = str(tmp_path / "store")
    env = {"KVB_HTTP_DIR": path, "KVB_HTTP_TOKEN": TOKEN}
    command = ["-m", "uvicorn", "--factory", "kv_backend.http:app_from_env", "--workers", "2"]
    command += ["--host", "127.0.0.1", "--log-level", "warning"]
    accounts = [f"acct:{i}" for i in range(5)]
    initial = 1000
    with DB(path) as db:
        for a in accounts:
            db.put(a.encode(), str(initial).encode())
    srv = Server(path, str(tmp_path / "server.log"), TOKEN, env, command)
    moved = {a: 0 for a in accounts}
    lock = threading.Lock()
    errors: list[BaseException] = []
    conflicts = [0]
    snapshots = [0]
    stop = threading.Event()
    # a new connection per request (Connection: close), so that both workers serve each client
    close = {"Connection": "close"}

    def transfer(seed: int, count: int) -> None:
        rnd = random.Random(seed)
        try:
            with srv.client() as c:
                for i in range(count):
                    src, dst = rnd.sample(accounts, 2)
                    amount = rnd.randint(1, 50)
                    if i % 2:
                        ops = [
                            {"op": "incr", "key": src, "delta": -amount},
                            {"op": "incr", "key": dst, "delta": amount},
                        ]
                        assert c.post("/v1/txn", json={"ops": ops}, headers=close).status_code == 200
                    else:
                        while True:
                            got = c.post(
                                "/v1/txn",
                                json={"ops": [{"op": "get", "key": src}, {"op": "get", "key": dst}]},
                                headers=close,
                            ).json()["results"]
                            a, b = (int(base64.b64decode(r["value_base64"])) for r in got)
                            ops = [
                                {"op": "check", "key": src, "value": str(a)},
                                {"op": "check", "key": dst, "value": str(b)},
                                {"op": "put", "key": src, "value": str(a - amount)},
                                {"op": "put", "key": dst, "value": str(b + amount)},
                            ]
                            r = c.post("/v1/txn", json={"ops": ops}, headers=close)
                            if r.status_code == 200:
                                break
                            assert r.status_code == 409 and r.json()["error"] == "check_failed", r.text
                            with lock:
                                conflicts[0] += 1
                    with lock:
                        moved[src] -= amount
                        moved[dst] += amount
        except BaseException as exc:
            errors.append(exc)

    def audit() -> None:
        try:
            with srv.client() as c:
                while not stop.is_set():
                    ops = [{"op": "get", "key": a} for a in accounts]
                    got = c.post("/v1/txn", json={"ops": ops}, headers=close).json()["results"]
                    total = sum(int(base64.b64decode(r["value_base64"])) for r in got)
                    assert total == initial * len(accounts)
                    snapshots[0] += 1
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=transfer, args=(seed, 40)) for seed in range(4)]
        auditor = threading.Thread(target=audit)
        auditor.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        auditor.join()
        assert not errors, errors
        assert snapshots[0] > 0
        with srv.client() as c:
            for a in accounts:
                assert int(c.get("/v1/keys/" + encode_key(a.encode())).content) == initial + moved[a]
    finally:
        srv.stop()
    with DB(path) as db:
        assert sum(int(db.get(a.encode())) for a in accounts) == initial * len(accounts)


# ---------------------------------------------------------------- crashes


_END = (1 << 40) - 1  # the offset part of the engine's tail and intent words (the file is above it)


def _written_since(watcher: DB, start: int) -> int:
    """Bytes the writer has appended to the store since its intent word was ``start`` (published or not)."""
    intent = watcher._intentw.value
    if intent >> 40 != start >> 40:  # the writer started a new file
        return intent & _END
    return (intent & _END) - (start & _END)


def test_a_server_killed_during_a_large_transaction_keeps_all_of_it_or_none(tmp_path):
    """SIGKILL the server while it writes a 3,000-put transaction: after a restart, every key holds the
    same generation (the new one whenever the client got its 200).

    Most rounds kill the server once a random part of the transaction's records is on file (watched
    through the store's shared intent word); the others at a random moment of the request.
    """
    path = str(tmp_path / "store")
    log = str(tmp_path / "server.log")
    n = 3000
    keys = [f"big:{i:05}" for i in range(n)]
    rnd = random.Random(7)
    # The server is started 9 times: forked from an interpreter that has imported it.
    zygote = Zygote(KVB_COMMAND, preload=("kv_backend.cli", "kv_backend.http", "uvicorn"))
    srv = Server(path, log, TOKEN, zygote=zygote)
    outcomes = {"all": 0, "none": 0}
    watcher = DB(path, read_only=True)
    try:
        with srv.client() as c:
            ops = [{"op": "put", "key": k, "value": "0"} for k in keys]
            assert c.post("/v1/txn", json={"ops": ops}).status_code == 200
            before = watcher._tailw.value
            started = time.monotonic()
            ops = [{"op": "put", "key": k, "value": "1"} for k in keys]
            assert c.post("/v1/txn", json={"ops": ops}).status_code == 200
            duration = time.monotonic() - started
            size = (watcher._tailw.value & _END) - (before & _END)
        gen = 1
        for rnd_round in range(8):
            gen += 1
            ops = [{"op": "put", "key": k, "value": str(gen)} for k in keys]
            answer: list[int] = []

            def send(ops=ops, answer=answer, srv=srv) -> None:
                try:
                    with srv.client() as c:
                        answer.append(c.post("/v1/txn", json={"ops": ops}).status_code)
                except httpx.TransportError:
                    pass

            start = watcher._intentw.value
            sender = threading.Thread(target=send)
            sender.start()
            if rnd_round % 4 == 3:
                time.sleep(rnd.uniform(0.2, 1.2) * duration)
            else:
                target = rnd.uniform(0.02, 0.95) * size
                deadline = time.monotonic() + 30
                while _written_since(watcher, start) < target and sender.is_alive():
                    assert time.monotonic() < deadline, "the transaction was never written"
            srv.kill()
            sender.join()
            srv = Server(path, log, TOKEN, zygote=zygote)  # restart on the same store
            with srv.client() as c:
                page = c.get("/v1/keys?prefix=big%3A&values=true&limit=10000").json()
            assert page["keys"] == [encode_key(k.encode()) for k in keys]
            values = {base64.b64decode(v) for v in page["values_base64"]}
            assert len(values) == 1, f"round {rnd_round}: a torn transaction: {sorted(values)[:5]}"
            (value,) = values
            if answer == [200]:
                assert value == str(gen).encode()
            assert value in (str(gen).encode(), str(gen - 1).encode())
            if value != str(gen).encode():
                gen -= 1  # the next round starts from what is stored
                outcomes["none"] += 1
            else:
                outcomes["all"] += 1
    finally:
        watcher.close()
        srv.stop()
        zygote.close()
    assert outcomes["none"] >= 3, outcomes  # the kills did land in the middle of transactions


def test_a_read_only_server_answers_busy_rather_than_a_mixed_snapshot(db, store_path, monkeypatch):
    db.put(b"a", b"1")
    with DB(store_path, read_only=True) as ro, TestClient(create_app(ro)) as c:
        ticks = iter(range(10**6))
        monkeypatch.setattr(ro, "change_token", lambda: next(ticks))  # a write lands during every read
        r = c.post("/v1/txn", json={"ops": [{"op": "get", "key": "a"}]})
        assert r.status_code == 503 and r.json()["error"] == "busy" and r.headers["retry-after"] == "1"
        monkeypatch.undo()
        r = c.post("/v1/txn", json={"ops": [{"op": "get", "key": "a"}]})
        assert r.status_code == 200
