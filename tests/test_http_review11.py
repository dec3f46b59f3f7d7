"""HTTP interface review 11: repeated query parameters and what HTTP clients and proxies expect (#7)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from kv_backend.http import create_app, encode_key
from kv_backend.http.keys import RepeatedParameterError, parse_query


@pytest.fixture
def app_client(db):
    with TestClient(create_app(db)) as c:
        yield c


def url(key: bytes, suffix: str = "") -> str:
    return "/v1/keys/" + encode_key(key) + suffix


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
