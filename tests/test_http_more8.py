"""More HTTP interface tests: client disconnects, tokens, preconditions on every key operation (#7)."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from kv_backend.errors import ConfigurationError
from kv_backend.http import app_from_env, create_app


@pytest.fixture
def client(db):
    with TestClient(create_app(db)) as c:
        yield c


def _asgi_put_then_disconnect(app, key: bytes) -> tuple[list[dict], BaseException | None]:
    """PUT ``key`` declaring 10 bytes, send 3, then disconnect; return what the app sent and raised."""
    messages = [{"type": "http.request", "body": b"abc", "more_body": True}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "PUT",
        "scheme": "http",
        "path": "/v1/keys/" + key.decode(),
        "raw_path": b"/v1/keys/" + key,
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"content-length", b"10")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    try:
        asyncio.run(app(scope, receive, send))
    except BaseException as exc:  # what uvicorn would log as "Exception in ASGI application"
        return sent, exc
    return sent, None


def test_client_disconnecting_mid_upload_is_not_a_server_error(db):
    sent, raised = _asgi_put_then_disconnect(create_app(db), b"aborted")
    assert raised is None  # no traceback in the server log for a client's aborted upload
    assert sent[0]["status"] == 400
    assert b'"invalid_request"' in sent[1]["body"] and b"nothing was stored" in sent[1]["body"]
    assert db.get(b"aborted") is None


@pytest.mark.parametrize("token", ["s3cret\n", " s3cret", "s3cret\t", "s3\ncret", "s3\x01cret", "s3\x7fcret"])
def test_a_token_no_client_can_send_is_refused_at_startup(db, store_path, monkeypatch, token):
    with pytest.raises(ConfigurationError, match="newline read from a file"):
        create_app(db, token=token)
    monkeypatch.setenv("KVB_HTTP_DIR", store_path)
    monkeypatch.setenv("KVB_HTTP_TOKEN", token)
    with pytest.raises(ConfigurationError, match="Authorization header"):
        app_from_env()


def test_a_token_with_inner_spaces_still_works(db):
    with TestClient(create_app(db, token="two words")) as c:
        assert c.get("/v1/stats", headers={"Authorization": "Bearer two words"}).status_code == 200
        assert c.get("/v1/stats", headers={"Authorization": "Bearer two"}).status_code == 401


# ----------------------------------------------------------- preconditions


def test_delete_with_an_entity_tag_is_evaluated_not_done_unconditionally(client, db):
    db.put(b"k", b"v1")
    for header in ({"If-Match": '"v0-etag"'}, {"If-Match": 'W/"x"'}, {"If-None-Match": "x"}):
        r = client.delete("/v1/keys/k", headers=header)
        assert r.status_code == (400 if "If-None-Match" in header else 412), header  # 400: no quotes
        assert db.get(b"k") == b"v1"  # was deleted although the client asked for a condition


def test_delete_evaluates_star_preconditions(client, db):
    db.put(b"k", b"v")
    r = client.delete("/v1/keys/k", headers={"If-None-Match": "*"})  # "only if it does not exist"
    assert r.status_code == 412 and r.json()["error"] == "precondition_failed"
    assert db.get(b"k") == b"v"
    both = {"If-Match": "*", "If-None-Match": "*"}
    assert client.delete("/v1/keys/k", headers=both).status_code == 412
    assert client.delete("/v1/keys/k", headers={"If-Match": "*"}).status_code == 204
    assert db.get(b"k") is None
    for header in ({"If-Match": "*"}, {"If-None-Match": "*"}, both):
        assert client.delete("/v1/keys/k", headers=header).status_code == 404  # as without it


def test_get_and_head_evaluate_if_none_match_star(client, db):
    db.put(b"k", b"value", ttl=100)
    for method in ("GET", "HEAD"):
        r = client.request(method, "/v1/keys/k", headers={"If-None-Match": "*"})
        assert r.status_code == 304, method  # was 200 with the value
        assert r.content == b""
        assert 99 < float(r.headers["x-kv-ttl"]) <= 100
        r = client.request(method, "/v1/keys/missing", headers={"If-None-Match": "*"})
        assert r.status_code == 404
        assert client.request(method, "/v1/keys/k", headers={"If-Match": "*"}).status_code == 200
        assert client.request(method, "/v1/keys/missing", headers={"If-Match": "*"}).status_code == 404
    r = client.get("/v1/keys/k", headers={"If-Match": '"etag"'})
    assert r.status_code == 412 and r.json()["error"] == "precondition_failed"


@pytest.mark.parametrize("header", [{"If-Match": 'W/"x"'}, {"If-None-Match": "*"}, {"If-Match": '"x"'}])
def test_incr_and_expire_evaluate_preconditions_rather_than_ignore_them(client, db, header):
    db.put(b"n", b"5")
    r = client.post("/v1/keys/n/incr", headers=header)
    assert r.status_code == 412 and r.json()["error"] == "precondition_failed"
    r = client.post("/v1/keys/n/expire?ttl=5", headers=header)
    assert r.status_code == 412 and r.json()["error"] == "precondition_failed"
    assert db.get(b"n") == b"5" and db.ttl(b"n") is None


# ------------------------------------------------------- query parameters


def test_a_misspelt_query_parameter_is_refused_not_ignored(client, db):
    db.put(b"k", b"v", ttl=100)
    r = client.post("/v1/keys/k/expire?tll=5")  # was 200 {"ttl": null}: the expiry was removed
    assert r.status_code == 400 and r.json()["error"] == "invalid_parameter"
    assert "'tll'" in r.json()["message"] and "ttl" in r.json()["message"]
    assert 99 < db.ttl(b"k") <= 100
    r = client.put("/v1/keys/k?TTL=60", content=b"new")  # was 204 and the key stored forever
    assert r.status_code == 400 and r.json()["error"] == "invalid_parameter"
    assert db.get(b"k") == b"v"
    for method, url in [
        ("GET", "/v1/keys/k?formt=json"),
        ("HEAD", "/v1/keys/k?x=1"),
        ("DELETE", "/v1/keys/k?ttl=5"),
        ("POST", "/v1/keys/k/incr?by=5"),
        ("GET", "/v1/keys?prefx=a"),
        ("POST", "/v1/merge?wiat=1"),
    ]:
        assert client.request(method, url).status_code == 400, url
    assert db.get(b"k") == b"v"
    # the documented parameters, and an empty query, still work
    assert client.get("/v1/keys/k?format=json&").json()["key"] == "k"
    assert client.get("/v1/keys?prefix=k&start=k&limit=5&reverse=false&values=true").status_code == 200
    assert client.put("/v1/keys/k?ttl=60", content=b"w").status_code == 204
    assert client.post("/v1/keys/n/incr?delta=2").json() == {"value": 2}
    assert client.post("/v1/keys/k/expire?ttl=5").status_code == 200
    assert client.delete("/v1/keys/k?").status_code == 204


@pytest.mark.parametrize("path", ["/v1/stats/", "/healthz/", "/openapi.json/", "/v1/keys/"])
def test_a_trailing_slash_is_a_json_404_not_a_redirect_to_plain_http(client, path):
    """Starlette redirected /v1/stats/ to an absolute http:// URL built from Host (wrong behind a
    TLS proxy); such paths are answered like any unknown path."""
    r = client.get(path, follow_redirects=False)
    assert r.status_code in (400, 404) and "location" not in r.headers
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["error"] in ("not_found", "invalid_key")


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_a_compressed_upload_is_refused_not_stored_compressed(client, encoding):
    """A PUT with Content-Encoding: gzip was stored compressed and later served as the plain value;
    it is now refused with 415, and nothing is stored. ``identity`` is the plain body."""
    r = client.put("/v1/keys/z", content=b"\x1f\x8b...", headers={"Content-Encoding": encoding})
    assert r.status_code == 415 and r.json()["error"] == "unsupported_encoding", r.text
    assert client.get("/v1/keys/z").status_code == 404
    r = client.put("/v1/keys/z", content=b"plain", headers={"Content-Encoding": "identity"})
    assert r.status_code == 201 and client.get("/v1/keys/z").content == b"plain"
    r = client.post("/v1/backup", content=b"{}", headers={"Content-Encoding": encoding})
    assert r.status_code == 415
