"""GET of a key with a Range header: one byte range of the value, as object stores and file servers
answer it (206, 416), and the whole value where RFC 9110 lets a server ignore the header."""

from __future__ import annotations

import pytest

from kv_backend.http.ranges import RangeNotSatisfiable, byte_range

VALUE = bytes(range(256)) * 4  # 1024 bytes


@pytest.fixture
def client(app_client):
    assert app_client.put("/v1/keys/big", content=VALUE).status_code == 201
    return app_client


@pytest.mark.parametrize(
    "spec, first, last",
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-19", 10, 19),
        ("bytes=1000-", 1000, 1023),
        ("bytes=1000-5000", 1000, 1023),  # a last byte past the end is cut to the end
        ("bytes=-24", 1000, 1023),
        ("bytes=-5000", 0, 1023),  # a suffix longer than the value is all of it
        ("BYTES = 3-4 ", 3, 4),
    ],
)
def test_one_range_is_answered_206_with_those_bytes(client, spec, first, last):
    """A Range was ignored: curl -r, a resumed download (curl -C -) or a reader of the head of a
    large value got the whole value with 200, and a resuming client appended it all to its partial copy."""
    r = client.get("/v1/keys/big", headers={"Range": spec})
    assert r.status_code == 206
    assert r.content == VALUE[first : last + 1]
    assert r.headers["content-range"] == f"bytes {first}-{last}/1024"
    assert r.headers["content-length"] == str(last - first + 1)
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("spec", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_is_416_with_the_size(client, spec):
    r = client.get("/v1/keys/big", headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["content-range"] == "bytes */1024"
    assert r.json()["error"] == "range_not_satisfiable"
    assert "1024 bytes long" in r.json()["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=0-1,5-6"},  # several ranges: no multipart answers
        {"Range": "items=0-1"},  # another unit
        {"Range": "bytes=5-2"},  # last before first: invalid
        {"Range": "bytes=x-"},
        {"Range": "bytes=-"},
        {"Range": "bytes=0-1", "If-Range": '"abc"'},  # no validator to match it with
        {"Range": "bytes=0-1", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"},
    ],
)
def test_a_range_the_server_may_ignore_gets_the_whole_value(client, headers):
    r = client.get("/v1/keys/big", headers=headers)
    assert r.status_code == 200
    assert r.content == VALUE
    assert "content-range" not in r.headers


def test_json_format_head_and_missing_keys_ignore_range(client):
    r = client.get("/v1/keys/big?format=json", headers={"Range": "bytes=0-1"})
    assert r.status_code == 200 and "accept-ranges" not in r.headers
    r = client.head("/v1/keys/big", headers={"Range": "bytes=0-1"})
    assert r.status_code == 200
    assert r.headers["content-length"] == "1024" and r.headers["accept-ranges"] == "bytes"
    assert client.get("/v1/keys/nope", headers={"Range": "bytes=0-1"}).status_code == 404
    r = client.get("/v1/keys/big", headers={"Range": "bytes=0-1", "If-None-Match": "*"})
    assert r.status_code == 304


def test_an_empty_value_is_served_whole(client):
    client.put("/v1/keys/empty", content=b"")
    r = client.get("/v1/keys/empty", headers={"Range": "bytes=0-"})
    assert r.status_code == 200 and r.content == b""


def test_a_range_keeps_the_ttl_header(client):
    client.put("/v1/keys/t?ttl=100", content=b"abcdef")
    r = client.get("/v1/keys/t", headers={"Range": "bytes=-2"})
    assert r.status_code == 206 and r.content == b"ef"
    assert 99 < float(r.headers["x-kv-ttl"]) <= 100


def test_byte_range_rules():
    assert byte_range([], False, 10) is None
    assert byte_range(["bytes=0-1", "bytes=2-3"], False, 10) is None  # two header lines
    assert byte_range(["bytes=0-1"], True, 10) is None
    assert byte_range(["bytes=0-1"], False, 0) is None
    assert byte_range(["bytes=9-"], False, 10) == (9, 9)
    with pytest.raises(RangeNotSatisfiable):
        byte_range(["bytes=10-"], False, 10)
