"""More HTTP interface tests: Expect: 100-continue, TTL limits, malformed requests (#7)."""

from __future__ import annotations

import json
import socket

import pytest
from starlette.testclient import TestClient
from test_http import TOKEN, Server

from kv_backend import DB
from kv_backend.http import create_app, encode_key
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


def url(key: bytes, suffix: str = "") -> str:
    return "/v1/keys/" + encode_key(key) + suffix


@pytest.fixture
def db(store_path):
    with DB(store_path) as d:
        yield d


@pytest.fixture
def app_client(db):
    with TestClient(create_app(db)) as c:
        yield c


def _read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read one response (status line and headers, then a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head, body


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
    assert client.put(url(b"exp/exists"), content=b"old").status_code == 204
    (head, body), sock = _expect_continue(server, "PUT", url(key), 500, token, **headers)
    with sock:
        assert _status(head) == status, head  # not "100 Continue": the body was never asked for
        assert json.loads(body)["error"]
    assert client.get(url(b"exp/exists")).content == b"old"
    assert client.get(url(b"exp/missing")).status_code == 404


def test_a_value_over_the_limit_is_refused_before_the_body_is_sent(client, server):
    for headers in ({}, {"If_None_Match": "*"}, {"If_Match": "*"}):
        # 413 even when a precondition also fails: the size is checked first, as RFC 9110 says
        assert client.put(url(b"exp/big"), content=b"old").status_code == 204
        (head, body), sock = _expect_continue(server, "PUT", url(b"exp/big"), MAX_VALUE + 1, **headers)
        with sock:
            assert _status(head) == 413, head
            assert json.loads(body)["error"] == "value_too_large"


@pytest.mark.parametrize(("headers", "status"), [({"If_None_Match": "*"}, 201), ({"If_Match": "*"}, 204)])
def test_a_conditional_put_that_holds_still_gets_its_100_continue(client, server, headers, status):
    key = b"exp/cont" + str(status).encode()
    if status == 204:
        assert client.put(url(key), content=b"old").status_code == 204
    else:
        client.delete(url(key))
    (head, _), sock = _expect_continue(server, "PUT", url(key), 3, **headers)
    with sock:
        assert _status(head) == 100, head
        sock.sendall(b"new")
        head, _ = _read_response(sock)
        assert _status(head) == status, head
    assert client.get(url(key)).content == b"new"


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
    assert app_client.put(url(b"k") + f"?ttl={MAX_TTL}", content=b"v").status_code == 204
    assert float(app_client.get(url(b"k")).headers["x-kv-ttl"]) > MAX_TTL - 60
    assert app_client.post(url(b"k", "/expire") + "?ttl=9e15").json() == {"ttl": MAX_TTL}
    # every TTL the API accepts is one Redis's EXPIRE accepts: its expiry in ms fits 64 bits
    assert (db.ttl(b"k") + 4_000_000_000) * 1000 < (1 << 63) - 1  # counted from the year 2096
    document = openapi_document()
    for path, operation in (("/v1/keys/{key}", "put"), ("/v1/keys/{key}/expire", "post")):
        (param,) = [p for p in document["paths"][path][operation]["parameters"] if p["name"] == "ttl"]
        assert param["schema"]["maximum"] == MAX_TTL
