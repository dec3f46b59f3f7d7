"""A boolean query parameter the API cannot read is refused with the spellings it takes.

``?reverse=Y`` was answered "reverse must be true or false, got 'y'": the value lower-cased (not
what was sent) and no word of the 1/0, yes/no and on/off the API also takes.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from kv_backend.http import create_app


def test_a_bad_boolean_names_every_accepted_spelling_and_the_value_sent(db):
    db.update({b"a": b"1", b"b": b"2"})
    with TestClient(create_app(db)) as client:
        r = client.get("/v1/keys?reverse=Y")
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_parameter"
        assert r.json()["message"] == (
            "reverse must be true or false (or 1/0, yes/no, on/off), without spaces, got 'Y'"
        )
        assert client.get("/v1/keys?reverse=ON").json()["keys"] == ["b", "a"]
        assert client.get("/v1/keys?values=No").json()["keys"] == ["a", "b"]
