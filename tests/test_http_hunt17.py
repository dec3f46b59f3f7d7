"""The HTTP interface driven as a client would drive it, side by side with its documentation."""

from __future__ import annotations

import pytest

BODY_ERROR = 'the body must be a JSON object like {"ops": [{"op": "put", "key": "k", "value": "v"}]}: '


def _txn(client, body: bytes):
    return client.post("/v1/txn", content=body, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("digits", [4001, 4301, 5000])
def test_a_txn_number_of_too_many_digits_is_refused_as_a_query_parameter_is(app_client, digits):
    """A JSON integer of more than 4300 digits got Python's message ("use
    sys.set_int_max_str_digits() to increase the limit"), and a delta of 4001 to 4300 digits was
    taken, which /incr refuses: both are refused now, as /incr's delta, and nothing is stored."""
    r = _txn(app_client, b'{"ops": [{"op": "incr", "key": "n", "delta": 1%s}]}' % (b"0" * (digits - 1)))
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "message": BODY_ERROR + f"a number has {digits} digits; at most 4000 are accepted",
    }
    r = _txn(app_client, b'{"ops": [{"op": "incr", "key": "n", "delta": -1%s}]}' % (b"0" * (digits - 1)))
    assert r.json()["message"].endswith(f"a number has {digits} digits; at most 4000 are accepted")
    assert app_client.get("/v1/keys/n").status_code == 404


def test_a_txn_delta_of_4000_digits_is_taken(app_client):
    delta = "9" * 4000
    r = _txn(app_client, b'{"ops": [{"op": "incr", "key": "n", "delta": -%s}]}' % delta.encode())
    assert r.status_code == 200
    assert r.json()["results"] == [{"op": "incr", "value": -int(delta)}]
    assert app_client.post(f"/v1/keys/n/incr?delta={delta}").json() == {"value": 0}


def test_a_txn_body_nested_too_deeply_says_so(app_client):
    """A body nesting arrays beyond the parser's depth got Python's message ("maximum recursion
    depth exceeded while decoding a JSON array from a unicode string")."""
    r = _txn(app_client, b'{"ops": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}")
    assert r.status_code == 400
    assert r.json()["message"] == BODY_ERROR + "its arrays and objects are nested too deeply"


def test_a_backup_body_with_a_number_of_too_many_digits_is_refused_clearly(app_client):
    body = b'{"url": "/tmp/x", "storage_options": {"n": %s}}' % (b"1" * 4500)
    r = app_client.post("/v1/backup", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_request",
        "message": "the body must be a JSON object: a number has 4500 digits; at most 4000 are accepted",
    }
