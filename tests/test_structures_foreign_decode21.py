"""A Redis key's metadata record written by another front end, checked where it is read.

Structures wrapped about 189 public methods at import in generated functions that turned a raw
IndexError or struct.error into ForeignRecordError. Such a record of exactly the size of a
collection's metadata (a Store's text value ``"hello, world 123!"`` under ``"\\x00mbar"`` has a hash's
17 bytes) was taken for one: HLEN answered its bytes as a count (7,308,335,520,052,967,279), and a
zset's (``"z" + 16 x "\\xff"``) made ZADD, RENAME and COPY fail with a raw struct.error; a pickle, JSON
or dbm value there answered TYPE ``none`` and WRONGTYPE elsewhere; and ``vacuum()`` (which kvb serve
runs as it opens the store) raised IndexError where an empty one stood over a hash with fields.

Now the functions that read a key's metadata (``_record``, ``_meta``, ``_count``, ``_list``,
``_stream``...) check it: no type tag of this layout (empty, a pickle, JSON, other bytes) or, where a
command reads a collection's count, the wrong size or numbers no collection reaches, raise the same
ForeignRecordError; DEL removes the record, and nothing is wrapped at import.
"""

from __future__ import annotations

import json
import pickle

import pytest

from kv_backend import DB
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures
from kv_backend.structures.layout import foreign_meta
from kv_backend.structures.lists import Lists

#: Values another front end may write under ``"\x00mbar"`` that start with a collection's tag (most
#: of them of its size).
SIZED = {
    "hash": b"hello, world 123!",
    "set": b"this is my value!",
    "zset": b"zebra crossing #1",
    "zset of 0xff": b"z" + b"\xff" * 16,
    "list": b"l" + b"o" * 24,
    "stream": b"x" * 33,
}

#: Values with no type tag of the layout, or a collection's tag and another size.
UNTAGGED = {
    "pickle": pickle.dumps({"a": 1}),
    "json": json.dumps({"a": 1}).encode(),
    "dbm bytes": b"\x01\x02",
    "a JSON true": b"true",  # a set's tag, 4 bytes
}

#: Calls that read the count of a collection of each type, and ones that copy the whole key.
BY_TYPE = {
    "hash": [lambda s: s.hlen("bar"), lambda s: s.hset("bar", "f", "v"), lambda s: s.hdel("bar", "f")],
    "set": [lambda s: s.scard("bar"), lambda s: s.sadd("bar", "m"), lambda s: s.srem("bar", "m")],
    "zset": [lambda s: s.zcard("bar"), lambda s: s.zadd("bar", {"m": 1}), lambda s: s.zrange("bar", 0, -1)],
    "list": [lambda s: s.llen("bar"), lambda s: s.lpush("bar", "x"), lambda s: s.lrange("bar", 0, -1)],
    "stream": [lambda s: s.xlen("bar"), lambda s: s.xadd("bar", {"a": "b"})],
}
WHOLE = [
    lambda s: s.rename("bar", "new"),
    lambda s: s.copy("bar", "new"),
    lambda s: s.dump("bar"),
    lambda s: s.object_encoding("bar"),
    lambda s: s.memory_usage("bar"),
    lambda s: s.sort("bar"),
]
ANY_TYPE = [
    lambda s: s.get("bar"),
    lambda s: s.type("bar"),
    lambda s: s.hget("bar", "f"),
    lambda s: s.lpush("bar", "x"),
    lambda s: s.sadd("bar", "m"),
    lambda s: s.mget("real", "bar"),
    lambda s: s.set("bar", "v", get=True),
    lambda s: s.set("bar", "v", keepttl=True),
    lambda s: s.incr("bar"),
    lambda s: s.append("bar", "x"),
    lambda s: s.expiretime("bar"),
    lambda s: s.sunionstore("bar", "real set"),
    lambda s: s.rename("real", "bar"),
    *WHOLE,
]


@pytest.fixture
def s(tmp_path):
    with Structures(str(tmp_path / "kv")) as st:
        st.set("real", "r")
        st.sadd("real set", "m")
        yield st


def _refused(s, call, value):
    with pytest.raises(ForeignRecordError) as info:
        call(s)
    assert info.value.name == b"bar"
    assert str(info.value) == (
        "ERR the store's record of key 'bar' was not written by kvb serve but by another front end on "
        "its directory (as the engine key b'\\x00mbar'); DEL the key to remove it"
    )
    assert s.db.get(b"\x00mbar") == value  # left as it was


@pytest.mark.parametrize("record", SIZED)
def test_a_record_of_a_collections_size_is_not_read_as_one(s, record):
    value = SIZED[record]
    s.db.put(b"\x00mbar", value)
    assert foreign_meta(value)
    for call in BY_TYPE[record.split()[0]] + WHOLE:
        _refused(s, call, value)
    assert s.type("bar") == record.split()[0]  # (only its tag and size read)
    assert s.delete("bar") == 1 and s.exists("bar") == 0


@pytest.mark.parametrize("record", UNTAGGED)
def test_a_record_with_no_type_tag_is_refused_by_every_command(s, record):
    value = UNTAGGED[record]
    s.db.put(b"\x00mbar", value)
    assert foreign_meta(value)
    for call in ANY_TYPE:
        _refused(s, call, value)
    assert s.exists("bar") == 1 and s.delete("bar") == 1
    assert s.rpush("bar", "a") == 1 and s.lrange("bar", 0, -1) == [b"a"]


def test_what_the_layout_writes_after_many_writes_is_its_own(s):
    for i in range(300):
        s.hset("h", f"f{i}", "v")
        s.lpush("l", i)
        s.zadd("z", {f"m{i}": i})
    s.xadd("x", {"a": "b"}, id="18446744073709551615-18446744073709551615")  # the largest ID
    s.copy("h", "h2")
    s.rename("h2", "h")  # the write counter moved past the old one's
    for name in ("h", "l", "z", "x"):
        assert not foreign_meta(s.db.get(b"\x00m" + name.encode()))
    assert s.hlen("h") == 300 and s.llen("l") == 300 and s.zcard("z") == 300 and s.xlen("x") == 1


def test_nothing_is_wrapped_at_import():
    assert [n for n in vars(Structures) if not n.startswith("_")] == []
    assert Structures.lrange is Lists.lrange and Structures.llen is Lists.llen


def test_vacuum_passes_over_an_empty_record_over_a_hash(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.hset("h", "f", "v")
        s.db.put(b"\x00mh", b"")  # a Store's empty value written over the hash's metadata
        assert s.vacuum() == 1  # its field, no record of a live hash now (it raised IndexError)
        assert s.db.get(b"\x00mh") == b"" and s.delete("h") == 1


def test_kvb_serve_answers_the_same_error(tmp_path):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", SIZED["hash"])
        db.put(b"\x00mqux", UNTAGGED["pickle"])
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        for args in ([b"HLEN", b"bar"], [b"HSET", b"bar", b"f", b"v"], [b"GET", b"qux"], [b"TYPE", b"qux"]):
            reply = conn.execute(args)
            name, engine_key = args[1].decode(), b"\x00m" + args[1]
            assert reply.message == (
                f"ERR the store's record of key '{name}' was not written by kvb serve but by another front "
                f"end on its directory (as the engine key {engine_key!r}); DEL the key to remove it"
            ), args
        assert conn.execute([b"DEL", b"bar", b"qux"]) == 2
        assert conn.execute([b"HSET", b"bar", b"f", b"v"]) == 1
    finally:
        server.db.close()


def test_what_only_asks_whether_the_key_exists_counts_it(tmp_path):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", UNTAGGED["pickle"])
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"EXISTS", b"bar"]) == 1 and conn.execute([b"TOUCH", b"bar"]) == 1
        assert conn.execute([b"OBJECT", b"IDLETIME", b"bar"]) == 0
        assert conn.execute([b"KEYS", b"*"]) == [b"bar"] and conn.execute([b"DBSIZE"]) == 1
        refused = ([b"EXPIRE", b"bar", b"9"], [b"TTL", b"bar"], [b"PERSIST", b"bar"], [b"SET", b"bar", b"v"])
        for args in refused:
            assert "was not written by kvb serve" in conn.execute(args).message, args
    finally:
        server.db.close()
    with Structures(path) as s:  # in-process as through kvb serve (tests/test_structures_foreign_expiry22.py)
        for call in (lambda: s.expire("bar", 100), lambda: s.ttl("bar"), lambda: s.persist("bar")):
            with pytest.raises(ForeignRecordError):
                call()
        assert s.db.get(b"\x00mbar") == UNTAGGED["pickle"] and s.db.ttl(b"\x00mbar") is None
