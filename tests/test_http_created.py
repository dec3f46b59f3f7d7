"""PUT answers 201 Created when it creates a key and 204 when it replaces one, as RFC 9110 asks (#7)."""

from __future__ import annotations

import threading
import time

from starlette.testclient import TestClient

from kv_backend.http import create_app, encode_key


def url(key: bytes) -> str:
    return "/v1/keys/" + encode_key(key)


def test_created_then_replaced_then_created_again(db):
    with TestClient(create_app(db)) as c:
        assert c.put(url(b"k"), content=b"1").status_code == 201
        assert c.put(url(b"k"), content=b"2").status_code == 204
        assert c.delete(url(b"k")).status_code == 204
        assert c.put(url(b"k"), content=b"3").status_code == 201
        assert db.get(b"k") == b"3"


def test_a_key_past_its_ttl_is_created_anew(db):
    db.put(b"gone", b"old", ttl=0.05)
    db.put(b"live", b"old", ttl=60)
    time.sleep(0.1)
    with TestClient(create_app(db)) as c:
        assert c.put(url(b"gone"), content=b"new").status_code == 201
        assert c.put(url(b"live"), content=b"new").status_code == 204
    assert db.get(b"gone") == db.get(b"live") == b"new"


def _put_at_once(app, key: bytes, start: threading.Barrier, statuses: list[int], i: int) -> None:
    with TestClient(app) as c:
        start.wait()
        statuses.append(c.put(url(key), content=b"%d" % i).status_code)


def test_of_clients_creating_one_key_at_once_exactly_one_is_told_it_created_it(db):
    app = create_app(db)
    for round_ in range(20):
        key = b"race/%d" % round_
        statuses: list[int] = []
        start = threading.Barrier(4)
        threads = [
            threading.Thread(target=_put_at_once, args=(app, key, start, statuses, i)) for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(statuses) == [201, 204, 204, 204], statuses
