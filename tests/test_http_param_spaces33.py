"""kvb http's boolean and enum query parameters (reverse, values, wait, format) stripped surrounding
whitespace, so ``?reverse= true`` listed in reverse, while the numeric ones refuse it, as Redis does. They
refuse it too now, with a 400 saying what is accepted, as the numeric parameters' messages do."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from kv_backend.http import create_app

BOOL = "{name} must be true or false (or 1/0, yes/no, on/off), without spaces, got {got}"
FORMAT = "format must be 'raw' or 'json', without spaces, got {got}"

#: As sent in the query string, and as the server gets it (a '+' stands for a space).
SPACED = [("%20true", "' true'"), ("true%20", "'true '"), ("%09true", "'\\ttrue'"), ("+true", "' true'")]


@pytest.mark.parametrize(("sent", "got"), SPACED)
def test_booleans_refuse_surrounding_whitespace(db, sent, got):
    db.update({b"a": b"1", b"b": b"2"})
    with TestClient(create_app(db)) as client:
        for name in ("reverse", "values"):
            r = client.get(f"/v1/keys?{name}={sent}")
            assert r.status_code == 400 and r.json()["error"] == "invalid_parameter"
            assert r.json()["message"] == BOOL.format(name=name, got=got)
        r = client.post(f"/v1/merge?wait={sent}")
        assert r.status_code == 400 and r.json()["message"] == BOOL.format(name="wait", got=got)
        assert client.get("/v1/keys?reverse=true").json()["keys"] == ["b", "a"]
        assert client.get("/v1/keys?reverse=TRUE&values=0").json()["keys"] == ["b", "a"]


@pytest.mark.parametrize(
    ("sent", "got"), [("%20json", "' json'"), ("json%20", "'json '"), ("+raw", "' raw'")]
)
def test_format_refuses_surrounding_whitespace(db, sent, got):
    db[b"k"] = b"v"
    with TestClient(create_app(db)) as client:
        for method in ("GET", "HEAD"):
            r = client.request(method, f"/v1/keys/k?format={sent}")
            assert r.status_code == 400
            if method == "GET":
                assert r.json() == {"error": "invalid_parameter", "message": FORMAT.format(got=got)}
        assert client.get("/v1/keys/k?format=json").json()["value_base64"] == "dg=="


def test_text_that_is_no_ascii_is_refused_with_the_same_message(db):
    with TestClient(create_app(db)) as client:
        r = client.get("/v1/keys?reverse=%C3%A9")
        assert r.status_code == 400 and r.json()["message"] == BOOL.format(name="reverse", got="'é'")
        r = client.get("/v1/keys/k?format=%FF")
        assert r.status_code == 400 and r.json()["message"] == FORMAT.format(got="'\\\\xff'")
