"""`ttl` in JSON answers is the seconds left to the millisecond, as the X-KV-TTL header gives them
(it had every digit of a float: 99.96228861808777)."""

from __future__ import annotations

import base64


def _decimals(number: float) -> int:
    return len(repr(number).partition(".")[2])


def test_json_ttl_of_get_and_transactions_is_to_the_millisecond(app_client) -> None:
    assert app_client.put("/v1/keys/k?ttl=100", content=b"v").status_code == 201
    got = app_client.get("/v1/keys/k?format=json").json()
    assert 99 < got["ttl"] <= 100
    assert _decimals(got["ttl"]) <= 3
    assert app_client.head("/v1/keys/k?format=json").status_code == 200
    reply = app_client.post("/v1/txn", json={"ops": [{"op": "get", "key": "k"}]})
    result = reply.json()["results"][0]
    assert result["found"]
    assert base64.b64decode(result["value_base64"]) == b"v"
    assert 99 < result["ttl"] <= 100
    assert _decimals(result["ttl"]) <= 3
    assert app_client.put("/v1/keys/p", content=b"v").status_code == 201
    assert app_client.get("/v1/keys/p?format=json").json()["ttl"] is None
