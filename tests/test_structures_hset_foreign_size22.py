"""HSET of one existing field under another front end's record that starts with a hash's tag.

HSET's fast path (one field, already there) read only the first byte of the key's metadata record:
a value another front end wrote as the engine key ``"\\x00mbar"`` (a dbm's b"hello", 18 bytes of a
hash's tag) passed for a hash, and the field's record was overwritten, where every other hash command
refuses the key (ForeignRecordError; kvb serve's error). HSET now refuses it too, writing nothing.
"""

from __future__ import annotations

import pytest

from kv_backend import DB
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures
from kv_backend.structures.layout import HASH, _lp

FIELD = HASH + _lp(b"bar") + b"f"

CALLS = [
    lambda s: s.hset("bar", "f", "new"),
    lambda s: s.hset("bar", mapping={"f": "new"}),
    lambda s: s.hset_pairs("bar", [("f", "new")]),
    lambda s: s.hmset("bar", {"f": "new"}),
    lambda s: s.hsetnx("bar", "f", "new"),
    lambda s: s.hget("bar", "f"),
]


@pytest.fixture(
    params=[b"hello", b"h" + bytes(17), b"h" + bytes(15)], ids=["dbm text", "18 bytes", "16 bytes"]
)
def path(tmp_path, request):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", request.param)
        db.put(FIELD, b"old")
    return path, request.param


def assert_refused(path: str, value: bytes, calls) -> None:
    """Each of ``calls`` on the store at ``path`` (whose key bar's metadata record is ``value``) raises
    ForeignRecordError naming bar, and writes nothing."""
    with Structures(path) as s:
        for call in calls:
            with pytest.raises(ForeignRecordError) as info:
                call(s)
            assert info.value.name == b"bar"
        assert s.db.get(FIELD) == b"old" and s.db.get(b"\x00mbar") == value  # nothing written


def assert_serve_refuses(path: str, value: bytes) -> None:
    """kvb serve answers HSET and HMSET of bar's field f with the foreign-record error, writing nothing."""
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        for args in ([b"HSET", b"bar", b"f", b"new"], [b"HMSET", b"bar", b"f", b"new"]):
            reply = conn.execute(args)
            assert "not written by kvb serve but by another front end" in reply.message, args
        assert server.db.get(FIELD) == b"old" and server.db.get(b"\x00mbar") == value
    finally:
        server.db.close()


def test_hset_of_an_existing_field_is_refused(path):
    assert_refused(*path, CALLS)


def test_kvb_serve_answers_an_error(path):
    assert_serve_refuses(*path)


def test_a_hash_of_the_layout_is_set_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        assert s.hset("bar", "f", "one") == 1
        assert s.hset("bar", "f", "two") == 0  # the one-field overwrite
        assert s.hgetall("bar") == {b"f": b"two"} and s.hlen("bar") == 1
        s.expire("bar", 100)
        assert s.hset("bar", "f", "three") == 0 and s.hget("bar", "f") == b"three"
        assert 0 < s.ttl("bar") <= 100
