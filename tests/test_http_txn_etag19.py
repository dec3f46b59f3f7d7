"""A transaction's check of a key's entity tag (the ETag a GET answered)."""

from __future__ import annotations

import pytest


def txn(client, *ops):
    return client.post("/v1/txn", json={"ops": list(ops)})


def test_a_check_of_the_etag_holds_only_for_the_stored_record(app_client, db):
    db.put(b"a", b"1")
    db.put(b"b", b"2")
    tag_a = app_client.get("/v1/keys/a").headers["etag"]
    tag_b = app_client.head("/v1/keys/b").headers["etag"]
    r = txn(
        app_client,
        {"op": "check", "key": "a", "etag": tag_a},
        {"op": "check", "key": "b", "etag": tag_b},
        {"op": "put", "key": "a", "value": "3"},
        {"op": "delete", "key": "b"},
    )
    assert r.status_code == 200 and r.json()["results"][0] == {"op": "check"}
    assert db.get(b"a") == b"3" and db.get(b"b") is None
    for ops in (
        [{"op": "check", "key": "a", "etag": tag_a}],  # a was written since
        [{"op": "check", "key": "b", "etag": tag_b}],  # b was deleted
        [{"op": "put", "key": "c", "value": "x"}, {"op": "check", "key": "c", "etag": tag_a}],
    ):
        r = txn(app_client, *ops, {"op": "put", "key": "z", "value": "no"})
        assert r.status_code == 409 and r.json()["error"] == "check_failed", ops
    assert db.get(b"z") is None and db.get(b"c") is None


@pytest.mark.parametrize(
    "check",
    [
        {"etag": "0000001a8c3e07f2"},  # without its quotes
        {"etag": 'W/"0000001a8c3e07f2"'},  # weak
        {"etag": '"a", "b"'},
        {"etag": "*"},
        {"etag": 7},
        {"etag": '"a"', "exists": True},
    ],
)
def test_a_malformed_etag_check_is_400(app_client, db, check):
    r = txn(app_client, {"op": "check", "key": "a", **check}, {"op": "put", "key": "z", "value": "no"})
    assert r.status_code == 400 and r.json()["index"] == 0
    assert db.get(b"z") is None
