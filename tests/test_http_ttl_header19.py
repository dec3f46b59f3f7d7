"""X-KV-TTL is the header a GET answers with; sent with a write, it was ignored without a word."""

from __future__ import annotations

import pytest
from test_http_expect11 import CLOSE, EXPECT, _call

from kv_backend.http.app import create_app


def test_a_put_with_x_kv_ttl_is_refused_and_stores_nothing(app_client):
    """A PUT copying the X-KV-TTL of a GET stored the key forever while the client thought it expired."""
    r = app_client.put("/v1/keys/k", content=b"v", headers={"X-KV-TTL": "60"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "message": "X-KV-TTL is only a response header: give the time to live in the query string, "
        "?ttl=SECONDS; nothing was stored",
    }
    assert app_client.get("/v1/keys/k").status_code == 404
    assert app_client.put("/v1/keys/k?ttl=60", content=b"v").status_code == 201
    assert 59 < float(app_client.get("/v1/keys/k").headers["x-kv-ttl"]) <= 60


@pytest.mark.parametrize("sub", ["expire", "incr"])
def test_expire_and_incr_with_x_kv_ttl_are_refused_and_change_nothing(app_client, sub):
    """POST /expire with X-KV-TTL: 300 (and no ?ttl) removed the key's expiry instead of setting one."""
    app_client.put("/v1/keys/n?ttl=100", content=b"5")
    r = app_client.post(f"/v1/keys/n/{sub}", headers={"X-KV-TTL": "300"})
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert r.json()["message"].endswith("?ttl=SECONDS; nothing was done")
    got = app_client.get("/v1/keys/n")
    assert got.content == b"5"
    assert float(got.headers["x-kv-ttl"]) <= 100


def test_a_put_with_x_kv_ttl_and_expect_100_continue_is_answered_before_the_body(tmp_path):
    """The refusal comes from the headers alone: a client that sent Expect: 100-continue is never
    asked for the body, and the connection is closed rather than left waiting for it."""
    headers = [EXPECT, (b"content-length", b"1000000"), (b"x-kv-ttl", b"5")]
    status, sent_headers = _call(create_app(str(tmp_path / "s")), "PUT", "/v1/keys/e", headers)
    assert status == 400 and CLOSE in sent_headers
