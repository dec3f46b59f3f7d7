"""GET /v1/keys/ (the listing URL of etcd's v2 keys API and Consul's KV, with a slash) is the empty key."""

from __future__ import annotations


def test_get_of_keys_with_a_slash_says_how_to_list(app_client):
    """The answer was only "keys must be 1 to 65536 bytes long, got 0 bytes", leaving a user who meant
    a listing guessing; it now names the listing URL."""
    app_client.put("/v1/keys/a", content=b"1")
    r = app_client.get("/v1/keys/")
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_key",
        "message": "keys must be 1 to 65536 bytes long, got 0 bytes; to list keys, GET /v1/keys, "
        "without a '/' after it",
    }
    assert app_client.get("/v1/keys?prefix=").json() == {"keys": ["a"], "next": None}
    assert app_client.put("/v1/keys/", content=b"v").json()["message"].endswith("got 0 bytes")
