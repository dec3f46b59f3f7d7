"""HTTP interface review 11: repeated query parameters and what HTTP clients and proxies expect (#7)."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

import pytest
from helpers import key_url as url
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient

from kv_backend import DB
from kv_backend.http import create_app
from kv_backend.http.keys import RepeatedParameterError, parse_query

# ------------------------------------------------------- repeated parameters


def test_parse_query_refuses_a_parameter_given_twice():
    for query in (b"ttl=5&ttl=100", b"ttl=5&%74tl=5", b"prefix=a&limit=1&prefix=a", b"flag&flag"):
        with pytest.raises(RepeatedParameterError, match="more than once"):
            parse_query(query)
    assert parse_query(b"%FF=1&%FE=2") == {"\ufffd": b"2"}  # two names (unknown ones, refused later)


@pytest.mark.parametrize(
    ("method", "path", "query"),
    [
        ("PUT", "k", "ttl=5&ttl=100"),
        ("PUT", "k", "ttl=5&%74tl=100"),
        ("GET", "k", "format=json&format=raw"),
        ("HEAD", "k", "format=raw&format=raw"),
        ("DELETE", "k", "x=1&x=1"),
        ("POST", "k/incr", "delta=1&delta=100"),
        ("POST", "k/expire", "ttl=5&ttl=100"),
        ("GET", "", "limit=1&limit=2"),
        ("GET", "", "prefix=a&prefix=b"),
        ("POST", "/v1/merge", "wait=false&wait=true"),
    ],
)
def test_a_repeated_query_parameter_is_refused_not_guessed(app_client, db, method, path, query):
    db.put(b"k", b"1")
    target = path if path.startswith("/") else "/v1/keys" + ("/" + path if path else "")
    r = app_client.request(method, f"{target}?{query}", content=b"new" if method == "PUT" else None)
    assert r.status_code == 400, r.text
    if method != "HEAD":
        assert r.json()["error"] == "invalid_parameter"
        assert "more than once" in r.json()["message"]
    assert db.get(b"k") == b"1" and db.ttl(b"k") is None  # nothing changed


# ------------------------------------------------------- shutdown mid-upload


def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"kv"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
    }


def _stalled_upload(app, path: str, cancel: bool) -> tuple[asyncio.Task, int, list, dict]:
    """Send all but the last byte of a PUT (or transaction) body, then nothing more; with ``cancel``,
    cancel the request as a server's shutdown does. Return the task, status, headers and JSON answer."""
    method = "PUT" if path.startswith("/v1/keys/") else "POST"
    body = b"abc" if method == "PUT" else b'{"ops": [{"op": "put", "key": "k", "value": "v"}]}'
    sent: list[dict] = []

    async def main() -> asyncio.Task:
        first = [{"type": "http.request", "body": body[:-1], "more_body": True}]

        async def receive() -> dict:
            if first:
                return first.pop()
            await asyncio.Event().wait()  # the rest never comes
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"content-length", str(len(body)).encode())]
        task = asyncio.ensure_future(app(_scope(method, path, headers), receive, send))
        if cancel:
            while first:
                await asyncio.sleep(0.001)
            await asyncio.sleep(0.01)
            task.cancel()  # what uvicorn does to requests unfinished at the end of the grace
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 5)
        return task

    task = asyncio.run(main())
    return task, sent[0]["status"], sent[0]["headers"], json.loads(sent[1]["body"])


@pytest.mark.parametrize("path", ["/v1/keys/k", "/v1/txn"])
def test_a_shutdown_cancelling_a_stalled_upload_answers_503_json_and_stores_nothing(db, path):
    """The server's shutdown cancels a request whose client stalled mid-body (SHUTDOWN_GRACE): uvicorn
    answered that with a plain-text 500, as for a bug, leaving the client to guess whether it was stored."""
    task, status, headers, payload = _stalled_upload(create_app(db), path, cancel=True)
    assert not task.cancelled()  # ended normally, with an answer
    assert status == 503 and (b"connection", b"close") in headers
    assert payload["error"] == "store_closed" and "nothing was stored" in payload["message"]
    assert db.get(b"k") is None


@pytest.mark.parametrize("path", ["/v1/keys/k", "/v1/txn"])
def test_an_upload_stalled_for_body_timeout_is_answered_408(db, path, monkeypatch):
    """It waited for the rest of the body for as long as the client kept the connection open, holding
    what had arrived in memory (nginx answers 408 after its client_body_timeout, 60 s)."""
    import kv_backend.http.app as http_app

    monkeypatch.setattr(http_app, "BODY_TIMEOUT", 0.05)
    _, status, headers, payload = _stalled_upload(create_app(db), path, cancel=False)
    assert status == 408 and (b"connection", b"close") in headers
    assert payload["error"] == "request_timeout" and "nothing was stored" in payload["message"]
    assert db.get(b"k") is None


# ------------------------------------------------------- mounted under a prefix


@pytest.mark.parametrize("mount", ["/my kv", "/clés", "/a/b c/"])
def test_keys_work_under_a_mount_path_that_is_percent_encoded_on_the_wire(db, mount):
    """root_path is decoded text, the raw path is as sent: every key request was a 404."""
    outer = Starlette(routes=[Mount(mount.rstrip("/"), app=create_app(db))])
    base = quote(mount.rstrip("/"))
    with TestClient(outer) as c:
        assert c.put(base + url(b"a/b\xff"), content=b"v").status_code == 201
        assert c.get(base + url(b"a/b\xff")).content == b"v"
        assert c.post(base + url(b"n", "/incr")).json() == {"value": 1}
        assert c.get(base + "/v1/keys").json()["keys"] == ["a%2Fb%FF", "n"]
    assert db.get(b"a/b\xff") == b"v"


# ------------------------------------------------------- unknown parameters


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/stats"), ("HEAD", "/v1/stats"), ("GET", "/openapi.json"), ("POST", "/v1/backup")],
)
def test_stats_openapi_and_backup_refuse_a_query_parameter(app_client, tmp_path, method, path):
    """As docs/http.md promises: POST /v1/backup?name=nightly made a backup named by its timestamp."""
    body = json.dumps({"url": str(tmp_path / "backups")}) if method == "POST" else None
    r = app_client.request(method, path + "?name=nightly", content=body)
    assert r.status_code == 400, r.text
    if method != "HEAD":
        assert r.json()["error"] == "invalid_parameter" and "'name'" in r.json()["message"]
    assert not (tmp_path / "backups").exists()  # no backup was made
    assert app_client.get("/healthz?probe=1").status_code == 200  # any probe URL works


@pytest.mark.parametrize("header", ["If-None-Match", "If-Match"])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/keys"),
        ("GET", "/v1/stats"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/merge"),
        ("POST", "/v1/backup"),
    ],
)
def test_endpoints_without_conditions_refuse_them_rather_than_act_unconditionally(
    app_client, tmp_path, monkeypatch, method, path, header
):
    """RFC 9110: If-None-Match: * on an existing resource must stop the method (a merge, a backup),
    never be ignored; as for incr, expire and transactions, such a request is 400."""
    ran: list[str] = []
    monkeypatch.setattr(DB, "merge", lambda *a, **k: ran.append("merge"))
    monkeypatch.setattr(DB, "backup", lambda *a, **k: ran.append("backup"))
    body = json.dumps({"url": str(tmp_path / "backups")}) if path == "/v1/backup" else None
    r = app_client.request(method, path, content=body, headers={header: "*"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request" and header in r.json()["message"]
    assert ran == []


# ------------------------------------------------------- absolute-form targets


def _call(app, method: str, raw_path: bytes, headers=(), root_path: str = "") -> tuple[int, bytes]:
    """Send one request straight to the ASGI app, with the scope uvicorn builds for ``raw_path``."""
    from urllib.parse import unquote

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = _scope(method, "/", list(headers))
    scope.update(raw_path=raw_path, path=unquote(raw_path.decode("ascii")), root_path=root_path)
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_an_absolute_form_request_target_is_routed_by_its_path(db):
    """RFC 9112 3.2.2: a server MUST accept GET http://host/path; it was 404 'no endpoint /http://...'."""
    db.put(b"a/b", b"v")
    app = create_app(db, token="t")
    auth = [(b"authorization", b"Bearer t")]
    assert _call(app, "GET", b"http://kv.example:8380/v1/keys/a%2Fb", auth) == (200, b"v")
    assert _call(app, "GET", b"HTTPS://kv.example/v1/keys", auth)[1].startswith(b'{"keys":["a%2Fb"]')
    assert _call(app, "GET", b"http://kv.example/healthz") == (200, b'{"status":"ok"}')  # still open
    assert _call(app, "GET", b"http://kv.example/v1/keys/a%2Fb")[0] == 401  # and the rest still closed
    assert _call(app, "GET", b"http://kv.example", auth)[0] == 404  # the path "/"
    assert _call(app, "GET", b"/apihttp://kv.example/v1/keys/a%2Fb", auth, "/api") == (200, b"v")


# ------------------------------------------------------- listings of values


def test_a_page_of_values_stays_within_the_servers_size_limit(db):
    """limit=10000&values=true of large values built the whole page in memory, however large."""
    for i in range(7):
        db.put(b"k%d" % i, b"v" * 4)
    db.put(b"k7", b"v" * 25)  # larger than the limit alone: still listed, one to a page
    db.put(b"k8", b"v")
    with TestClient(create_app(db, max_value_size=10)) as c:
        pages, start = [], ""
        while True:
            page = c.get("/v1/keys?values=true&limit=10000" + start).json()
            pages.append(page["keys"])
            if page["next"] is None:
                break
            start = "&start=" + page["next"]
        assert pages == [["k0", "k1"], ["k2", "k3"], ["k4", "k5"], ["k6"], ["k7"], ["k8"]]
        assert len(c.get("/v1/keys?limit=10000").json()["keys"]) == 9  # keys alone: no such cap


# ------------------------------------------------------- incr's delta


def test_a_delta_with_too_many_digits_is_named_as_such(app_client, db):
    """docs/http.md said 'any size'; a 4001-digit delta was refused as 'must be a decimal integer'."""
    assert app_client.post(url(b"n", "/incr"), params={"delta": "9" * 4000}).json() == {"value": 10**4000 - 1}
    r = app_client.post(url(b"n", "/incr"), params={"delta": "-" + "9" * 4001})
    assert r.status_code == 400 and r.json()["error"] == "invalid_parameter"
    assert "4001 digits" in r.json()["message"] and "4000" in r.json()["message"]
    assert db.get(b"n") == b"9" * 4000


# ------------------------------------------------------- ambiguous framing


def _answer_headers(app, headers: list[tuple[bytes, bytes]]) -> tuple[int, list]:
    """PUT a three-byte body straight to the ASGI app with ``headers``; return the status and headers."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"abc", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(_scope("PUT", "/v1/keys/k", headers), receive, send))
    return sent[0]["status"], sent[0]["headers"]


def test_a_request_with_content_length_and_transfer_encoding_closes_the_connection(db):
    """RFC 9112 6.1: the server MUST close the connection after answering it (a proxy in front may have
    framed the body by Content-Length and would send the rest as a request of its own); it stayed open."""
    both = [(b"content-length", b"40"), (b"transfer-encoding", b"chunked")]
    status, headers = _answer_headers(create_app(db), both)
    assert status == 201 and (b"connection", b"close") in headers and db.get(b"k") == b"abc"
    status, headers = _answer_headers(create_app(db, token="t"), both)  # refused: closed all the same
    assert status == 401 and (b"connection", b"close") in headers
    status, headers = _answer_headers(create_app(db), [(b"content-length", b"3")])
    assert status == 204 and not any(name == b"connection" for name, _ in headers)  # kept alive


def test_a_request_cancelled_while_waiting_for_the_store_is_logged_as_one_line():
    """What the stalled-upload test of test_cli_review10 checked before such uploads answered 503."""
    import logging

    from kv_backend.http.server import _cancelled_at_shutdown

    try:
        raise asyncio.CancelledError
    except asyncio.CancelledError as exc:
        info = (type(exc), exc, None)
        record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "Exception", (), info)
    assert _cancelled_at_shutdown(record) and record.exc_info is None
    assert record.getMessage() == (
        "a request still unfinished 10 s into the shutdown was cancelled (uvicorn answers it 500)"
    )
