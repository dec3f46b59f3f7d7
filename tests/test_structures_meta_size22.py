"""A key's metadata record that starts with a collection's type tag but has not that collection's size.

A JSON ``true`` a Store with the json serializer wrote under ``"\\x00mbar"`` is 4 bytes that start
with a set's tag: TYPE answered ``set``, SCAN ... TYPE set listed it, SISMEMBER and SMEMBERS answered
as for an empty set and HGET answered WRONGTYPE, though this layout never writes a set's record of
4 bytes (only SADD, SCARD... refused it, reading its count). A record of a collection's tag and
another size (a hash's 17 bytes, a list's 25, a stream's 33 or 57) is now taken for another front
end's by every command, TYPE included, as one with no type tag is: ForeignRecordError in-process,
the same text from kvb serve, and SCAN ... TYPE passes over it. A record of the right size is read
as before (its numbers are checked where its count is read).
"""

from __future__ import annotations

import pytest

from kv_backend import DB, Store
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures, WrongTypeError
from kv_backend.structures.layout import STREAM, _lp
from kv_backend.structures.streams import _XID, _XMETA_V1

MESSAGE = (
    "ERR the store's record of key 'bar' was not written by kvb serve but by another front end on "
    "its directory (as the engine key b'\\x00mbar'); DEL the key to remove it"
)

#: Calls that read a set's members (or its tag) without its count, and calls of other types.
CALLS = [
    lambda s: s.type("bar"),
    lambda s: s.sismember("bar", "m"),
    lambda s: s.smismember("bar", ["m"]),
    lambda s: s.smembers("bar"),
    lambda s: s.sscan("bar"),
    lambda s: s.srandmember("bar"),
    lambda s: s.sunion("real set", "bar"),
    lambda s: s.sinter("bar", "real set"),
    lambda s: s.sadd("bar", "m"),
    lambda s: s.scard("bar"),
    lambda s: s.hget("bar", "f"),
    lambda s: s.get("bar"),
    lambda s: s.mget("bar"),
    lambda s: s.lrange("bar", 0, -1),
    lambda s: s.zscore("bar", "m"),
    lambda s: s.expiretime("bar"),
]


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.sadd("real set", "m")
    return path


def test_a_json_true_of_a_store_is_no_set(path):
    with Store(path, serializer="json") as store:
        store["\x00mbar"] = True
    with Structures(path) as s:
        assert s.db.get(b"\x00mbar") == b"true"
        for call in CALLS:
            with pytest.raises(ForeignRecordError) as info:
                call(s)
            assert str(info.value) == MESSAGE and info.value.name == b"bar"
        assert s.scan(0, _type="set") == (0, [b"real set"])
        assert list(s.iter_keys(type="set")) == [b"real set"]
        assert s.keys() == [b"bar", b"real set"] and s.exists("bar") == 1  # (it is there)
        assert s.db.get(b"\x00mbar") == b"true"  # nothing written over it
        assert s.delete("bar") == 1
        assert s.sadd("bar", "m") == 1 and s.type("bar") == "set"


def test_kvb_serve_answers_the_same(path):
    with Store(path, serializer="json") as store:
        store["\x00mbar"] = True
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        for args in (
            [b"TYPE", b"bar"],
            [b"SISMEMBER", b"bar", b"m"],
            [b"SMEMBERS", b"bar"],
            [b"HGET", b"bar", b"f"],
        ):
            assert conn.execute(args).message == MESSAGE, args
        assert conn.execute([b"SCAN", b"0", b"TYPE", b"set"]) == [b"0", [b"real set"]]
        assert conn.execute([b"DEL", b"bar"]) == 1
    finally:
        server.db.close()


@pytest.mark.parametrize(
    "value, read",
    [
        (b"h" + bytes(17), lambda s: s.hget("bar", "f")),  # a hash's tag, 18 bytes
        (b"l" + bytes(16), lambda s: s.lindex("bar", 0)),  # a list's tag, a hash's size
        (b"z" + bytes(24), lambda s: s.zscore("bar", "m")),  # a sorted set's tag, a list's size
        (b"x" + bytes(40), lambda s: s.xrange("bar")),  # a stream's tag, neither of its sizes
    ],
)
def test_a_collections_tag_of_another_size_is_refused_by_its_reads_and_type(path, value, read):
    with DB(path) as db:
        db.put(b"\x00mbar", value)
    with Structures(path) as s:
        for call in (read, lambda s: s.type("bar"), lambda s: s.get("bar")):
            with pytest.raises(ForeignRecordError):
                call(s)
        assert s.db.get(b"\x00mbar") == value


def test_records_of_the_layout_are_read_as_before(path):
    with Structures(path) as s:
        s.hset("h", "f", "v")
        s.rpush("l", "a")
        s.zadd("z", {"m": 1})
        s.xadd("x", {"a": "b"}, id="1-1")
        assert [s.type(n) for n in ("h", "l", "z", "x", "real set")] == [
            "hash",
            "list",
            "zset",
            "stream",
            "set",
        ]
        assert s.hget("h", "f") == b"v" and s.lindex("l", 0) == b"a" and s.zscore("z", "m") == 1.0
        with pytest.raises(WrongTypeError):
            s.hget("l", "f")  # another type of the layout: WRONGTYPE as before
        # A stream's metadata of the size written before consumer groups existed (33 bytes).
        s.db.put(b"\x00mold", b"x" + _XMETA_V1.pack(1, 1, 5, 0))
        s.db.put(STREAM + _lp(b"old") + _XID.pack(5, 0), b"\x00\x00\x00\x01a\x00\x00\x00\x01b")
        assert s.type("old") == "stream" and s.xlen("old") == 1
        assert s.xrange("old") == [(b"5-0", [(b"a", b"b")])]
        assert s.scan(0, _type="stream") == (0, [b"old", b"x"])
