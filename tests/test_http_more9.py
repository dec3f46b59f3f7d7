"""More HTTP interface tests: Expect: 100-continue, TTL limits, malformed requests (#7)."""

from __future__ import annotations

import json
import socket

import pytest
from helpers import key_url as url
from helpers import read_http_response as _read_response
from starlette.testclient import TestClient
from test_http import TOKEN, Server

from kv_backend.http import create_app
from kv_backend.http.app import MAX_TTL
from kv_backend.http.openapi import openapi_document

MAX_VALUE = 1000  # the module server's KVB_HTTP_MAX_VALUE_SIZE


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("http9")
    srv = Server(
        str(base / "store"), str(base / "server.log"), TOKEN, {"KVB_HTTP_MAX_VALUE_SIZE": str(MAX_VALUE)}
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


def _expect_continue(server, method: str, path: str, size: int, token: str | None = TOKEN, **headers):
    """Send a request head with ``Expect: 100-continue`` and a ``size``-byte Content-Length, not the
    body, and return the first response's (head, body) and the open socket."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Length: {size}"]
    lines.append("Expect: 100-continue")
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("ascii"))
    return _read_response(sock), sock


def _status(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


# --------------------------------------------------------- Expect: 100-continue


@pytest.mark.parametrize(
    ("key", "headers", "status", "token"),
    [
        (b"exp/exists", {"If_None_Match": "*"}, 412, TOKEN),  # the key exists
        (b"exp/missing", {"If_Match": "*"}, 412, TOKEN),  # the key does not
        (b"exp/any", {}, 401, None),
        (b"exp/any", {}, 401, "wrong"),
        (b"", {}, 400, TOKEN),  # an invalid key
        (b"exp/any", {"Content_Encoding": "gzip"}, 415, TOKEN),
    ],
)
def test_a_failing_put_is_answered_before_its_body_is_sent(client, server, key, headers, status, token):
    assert client.put(url(b"exp/exists"), content=b"old").status_code in (201, 204)  # new, or kept
    (head, body), sock = _expect_continue(server, "PUT", url(key), 500, token, **headers)
    with sock:
        assert _status(head) == status, head  # not "100 Continue": the body was never asked for
        assert json.loads(body)["error"]
    assert client.get(url(b"exp/exists")).content == b"old"
    assert client.get(url(b"exp/missing")).status_code == 404


def test_a_value_over_the_limit_is_refused_before_the_body_is_sent(client, server):
    for headers in ({}, {"If_None_Match": "*"}, {"If_Match": "*"}, {"If_Match": "*", "If_None_Match": "*"}):
        # 413 even when a precondition also fails: the size is checked first, as RFC 9110 says
        assert client.put(url(b"exp/big"), content=b"old").status_code in (201, 204)  # new, or kept
        (head, body), sock = _expect_continue(server, "PUT", url(b"exp/big"), MAX_VALUE + 1, **headers)
        with sock:
            assert _status(head) == 413, head
            assert json.loads(body)["error"] == "value_too_large"


@pytest.mark.parametrize(("headers", "status"), [({"If_None_Match": "*"}, 201), ({"If_Match": "*"}, 204)])
def test_a_conditional_put_that_holds_still_gets_its_100_continue(client, server, headers, status):
    key = b"exp/cont" + str(status).encode()
    if status == 204:
        assert client.put(url(key), content=b"old").status_code == 201
    else:
        client.delete(url(key))
    (head, _), sock = _expect_continue(server, "PUT", url(key), 3, **headers)
    with sock:
        assert _status(head) == 100, head
        sock.sendall(b"new")
        head, _ = _read_response(sock)
        assert _status(head) == status, head
    assert client.get(url(key)).content == b"new"


def test_a_connection_stays_usable_after_a_412_answered_before_its_body(client, server):
    """A client that sends the body anyway (no Expect) gets the 412, and its next request on the
    same connection is read as a request, not as the rest of the unread body."""
    assert client.put(url(b"exp/keep"), content=b"old").status_code in (201, 204)  # new, or kept
    body = b"x" * 500
    put = (
        f"PUT {url(b'exp/keep')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"If-None-Match: *\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    get = f"GET {url(b'exp/keep')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(put)
        head, _ = _read_response(sock)
        assert _status(head) == 412, head
        sock.sendall(body + get)
        head, value = _read_response(sock)
        assert _status(head) == 200, head
        assert value == b"old"


# ------------------------------------------------------------------ TTL limits


@pytest.mark.parametrize("ttl", ["1e300", "9000000000000001", "1e16", "99999999999999999999999"])
def test_an_absurd_ttl_is_refused_not_stored(app_client, db, ttl):
    db.put(b"k", b"old", ttl=60)
    for response in (
        app_client.put(url(b"k") + "?ttl=" + ttl, content=b"new"),
        app_client.put(url(b"k") + "?ttl=" + ttl, content=b"new", headers={"If-Match": "*"}),
        app_client.post(url(b"k", "/expire") + "?ttl=" + ttl),
    ):
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["error"] == "invalid_ttl"
        assert str(MAX_TTL) in error["message"]
    assert db.get(b"k") == b"old"
    assert 0 < db.ttl(b"k") <= 60


def test_the_largest_ttl_is_accepted_and_documented(app_client, db):
    assert app_client.put(url(b"k") + f"?ttl={MAX_TTL}", content=b"v").status_code == 201
    assert float(app_client.get(url(b"k")).headers["x-kv-ttl"]) > MAX_TTL - 60
    assert app_client.post(url(b"k", "/expire") + "?ttl=9e15").json() == {"ttl": MAX_TTL}
    # every TTL the API accepts is one Redis's EXPIRE accepts: its expiry in ms fits 64 bits
    assert (db.ttl(b"k") + 4_000_000_000) * 1000 < (1 << 63) - 1  # counted from the year 2096
    document = openapi_document()
    for path, operation in (("/v1/keys/{key}", "put"), ("/v1/keys/{key}/expire", "post")):
        (param,) = [p for p in document["paths"][path][operation]["parameters"] if p["name"] == "ttl"]
        assert param["schema"]["maximum"] == MAX_TTL


# ------------------------------------------------- requests that are not valid HTTP


def _exchange(server, data: bytes) -> bytes:
    """Send ``data`` on a new connection and return everything received until the server closes it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):  # a hang fails here with a timeout
            received += chunk
    return received


HEAD_LIMIT = 256 << 10  # kv_backend.http.server.MAX_REQUEST_HEAD

MALFORMED = {
    "space in the path": b"GET /v1/keys/a b HTTP/1.1\r\nHost: x\r\n\r\n",
    "raw non-ASCII byte in the path": b"GET /v1/keys/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    "control byte in the path": b"GET /v1/keys/a\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    "header line without a colon": b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n",
    "space in a header name": b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX Y: 1\r\n\r\n",
    "space before the colon": b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Y : 1\r\n\r\n",
    "no Host in HTTP/1.1": b"GET /v1/stats HTTP/1.1\r\n\r\n",
    "Content-Length not a number": b"PUT /v1/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
    "negative Content-Length": b"PUT /v1/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "conflicting Content-Lengths": (
        b"PUT /v1/keys/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    ),
    "Transfer-Encoding gzip": b"PUT /v1/keys/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "malformed chunk size": (
        b"PUT /v1/keys/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"
    ),
    "not HTTP at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    "head over 256 KiB": b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * HEAD_LIMIT,
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_request_gets_the_servers_plain_400_never_a_500_or_a_hang(client, server, request_bytes):
    # As docs/http.md says: uvicorn answers these before the API sees them, in plain text
    response = _exchange(server, request_bytes)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), response
    assert b"connection: close" in head.lower()
    assert b"text/plain" in head
    assert b"Invalid HTTP request" in body
    assert client.get("/healthz").json() == {"status": "ok"}
    assert '" 500 ' not in server.log()


def test_bytes_outside_ascii_in_headers_reach_the_api_and_get_its_json_errors(client, server):
    # obs-text in a header value is valid HTTP: the API answers it, in its own JSON shape
    request = b"GET /v1/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\r\n\r\n"
    head, _, body = _exchange(server, request).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert json.loads(body)["error"] == "unauthorized"
    request = (
        f"PUT {url(b'k')} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Length: 0\r\n"
    ).encode() + b"If-None-Match: \xe9\r\n\r\n"
    head, _, body = _exchange(server, request).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"] == "invalid_request"


@pytest.mark.parametrize("path", [url(b"k"), "/v1/backup"])
def test_an_unsupported_content_encoding_says_which_one_is_accepted(app_client, db, path):
    method = app_client.put if path.startswith("/v1/keys") else app_client.post
    r = method(path, content=b"\x1f\x8b...", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 415
    assert r.headers["accept-encoding"] == "identity"  # RFC 9110 15.5.16
    assert b"k" not in db


# ------------------------------------------------------------- preconditions


@pytest.mark.parametrize("name", ["If-Match", "If-None-Match"])
@pytest.mark.parametrize("second", ['"v1"', 'W/"v1"', '"v1", "v2"'])
def test_a_second_precondition_header_line_is_not_ignored(app_client, db, name, second):
    """Two header lines mean their values joined by a comma (RFC 9110 5.3); "*, <tag>" is not "*", so
    the request is refused like any entity tag, rather than evaluated as "*" with the tag dropped."""
    db.put(b"k", b"old")
    headers = [(name, "*"), (name, second)]
    for response in (
        app_client.put(url(b"k"), content=b"new", headers=headers),
        app_client.delete(url(b"k"), headers=headers),
        app_client.get(url(b"k"), headers=headers),
    ):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
    assert db.get(b"k") == b"old"


def test_a_repeated_star_precondition_is_still_star(app_client, db):
    db.put(b"k", b"old")
    stars = [("If-Match", "*"), ("If-Match", "*")]
    assert app_client.put(url(b"k"), content=b"new", headers=stars).status_code == 204
    stars = [("If-None-Match", "*"), ("If-None-Match", "*")]
    assert app_client.put(url(b"k"), content=b"x", headers=stars).status_code == 412
    assert app_client.get(url(b"k"), headers=stars).status_code == 304
    assert db.get(b"k") == b"new"


def test_a_content_encoding_on_a_second_header_line_is_not_ignored(app_client, db):
    headers = [("Content-Encoding", "identity"), ("Content-Encoding", "gzip")]
    r = app_client.put(url(b"k"), content=b"\x1f\x8b...", headers=headers)
    assert r.status_code == 415, r.text
    assert b"k" not in db
    headers = [("Content-Encoding", "identity"), ("Content-Encoding", "identity")]
    assert app_client.put(url(b"k"), content=b"plain", headers=headers).status_code == 201
    assert db.get(b"k") == b"plain"


@pytest.mark.parametrize("option", ["name", "url", "progress", "self", "db", "fn"])
def test_a_storage_option_named_like_a_backup_argument_is_refused_clearly(app_client, db, option, tmp_path):
    db.put(b"k", b"v")
    path = tmp_path / f"kvb-http9-{option}"  # a local directory: /v1/backup refuses memory://
    r = app_client.post("/v1/backup", json={"url": path.as_uri(), "storage_options": {option: "x"}})
    if option == "fn":  # the name of no backup argument: an option like any, which the local filesystem
        # does not take (refused as such, not "_Api.call() got multiple values for argument 'fn'")
        assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.text
        assert "fn= would be ignored" in r.json()["message"], r.text
        return
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert f"'{option}'" in r.json()["message"] and "storage_options" in r.json()["message"]
    assert not path.exists()


# ---------------------------------------------------------------------- HEAD


@pytest.mark.parametrize("path", ["/healthz", "/openapi.json", "/v1/keys", "/v1/stats", url(b"h"), "/nope"])
def test_head_answers_like_get_without_the_body_on_every_route(db, path):
    db.put(b"h", b"value")
    with TestClient(create_app(db, token="t")) as anonymous:
        authorized = {"Authorization": "Bearer t"}
        for headers in (authorized, {}):  # /healthz needs no token, the others answer 401 alike
            get, head = anonymous.get(path, headers=headers), anonymous.head(path, headers=headers)
            assert head.status_code == get.status_code
            assert head.content == b""
            assert head.headers.get("content-length") == str(len(get.content))
            assert head.headers.get("content-type") == get.headers.get("content-type")
            assert head.headers.get("www-authenticate") == get.headers.get("www-authenticate")
