"""In-process Structures meeting a key's metadata record another front end wrote (a Store's key
``"\\x00mbar"`` with a value this layout never writes: empty, or a type tag without its count).

Every command on the name raised a raw IndexError or struct.error (kvb serve alone turned them into a
clear error). Now each raises ForeignRecordError, a StructureError naming the record and saying to
delete the key, the hottest commands (which check in their own bodies) as the rest; delete removes
it, and errors of other causes are raised as they were.
"""

from __future__ import annotations

import inspect

import pytest

from kv_backend import DB, KVError
from kv_backend.structures import ForeignRecordError, StructureError, Structures

RECORDS = {"empty": b"", "short list": b"l12", "short zset": b"z", "short hash": b"h1234"}

CALLS = {  # (each fails on every record: none has the size of its type's record, so none is the layout's)
    "get": lambda s: s.get("bar"),
    "set get": lambda s: s.set("bar", "v", get=True),
    "set keepttl": lambda s: s.set("bar", "v", keepttl=True),
    "hget": lambda s: s.hget("bar", "f"),
    "incr": lambda s: s.incr("bar"),
    "hset": lambda s: s.hset("bar", "f", "v"),
    "sadd": lambda s: s.sadd("bar", "m"),
    "lpush": lambda s: s.lpush("bar", "x"),
    "rpush": lambda s: s.rpush("bar", "x"),
    "zadd": lambda s: s.zadd("bar", {"m": 1}),
    "type": lambda s: s.type("bar"),
    "lrange": lambda s: s.lrange("bar", 0, -1),
    "zcard": lambda s: s.zcard("bar"),
    "hgetall": lambda s: s.hgetall("bar"),
    "rename": lambda s: s.rename("bar", "set"),
    "mget as a list": lambda s: s.mget(["real", "bar"]),
    "sunion, second": lambda s: s.sunion("set", "bar"),
    "xadd": lambda s: s.xadd("bar", {"a": "b"}),
}


@pytest.fixture
def s(tmp_path):
    with Structures(str(tmp_path / "kv")) as st:
        st.set("real", "r")
        st.sadd("set", "m")
        yield st


@pytest.mark.parametrize("record", RECORDS)
@pytest.mark.parametrize("call", CALLS)
def test_a_command_on_the_name_says_what_the_record_is(s, call, record):
    s.db.put(b"\x00mbar", RECORDS[record])
    run = CALLS[call]
    with pytest.raises(ForeignRecordError) as info:
        run(s)
    assert isinstance(info.value, StructureError) and isinstance(info.value, KVError)
    assert info.value.name == b"bar"
    assert str(info.value) == (
        "ERR the store's record of key 'bar' was not written by kvb serve but by another front end on "
        "its directory (as the engine key b'\\x00mbar'); DEL the key to remove it"
    )
    assert s.db.get(b"\x00mbar") == RECORDS[record]  # nothing written


def test_delete_removes_it_and_the_name_is_usable_again(tmp_path):
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", b"")
    with Structures(path) as s:
        assert s.exists("bar") == 1
        assert s.delete("bar") == 1
        assert s.rpush("bar", "a") == 1 and s.lrange("bar", 0, -1) == [b"a"]


def test_other_errors_are_raised_as_they_were(s):
    s.db.put(b"\x00mbar", b"")
    with pytest.raises(TypeError):
        s.lrange("real")  # missing arguments: no record is to blame, even with one named
    with pytest.raises(TypeError):
        s.lrange()
    with pytest.raises(StructureError, match="WRONGTYPE"):
        s.lrange("real", 0, -1)
    assert list(inspect.signature(Structures.lrange).parameters) == ["self", "name", "start", "stop"]
    assert Structures.lrange.__doc__ and Structures.lrange.__name__ == "lrange"


def test_the_guarded_methods_take_their_arguments_as_before(s):
    s.zadd("z", {"a": 1, "b": 2})
    assert s.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.0)]
    assert s.zrange("z", 0, -1, True) == [b"b", b"a"]  # desc, given by position
    s.sadd("set2", "m", "n")
    assert s.sintercard("set", "set2", limit=0) == 1 and s.sintercard(["set", "set2"]) == 1  # *names, kw-only
    assert s.srandmember("set", number=1) == [b"m"]  # keyword-only alias
    assert s.copy("z", "z2", True, destination_db=None) and s.zcard("z2") == 2
    s.geoadd("g", (13.36, 38.11, "p"))
    assert s.georadius("g", 13.36, 38.11, 10, "km", withdist=True)[0][0] == b"p"  # **options
    with pytest.raises(TypeError):
        s.zrange("z", 0, -1, nosuch=True)
    with pytest.raises(TypeError):
        s.copy("z", "z3", True, None)  # destination_db only by keyword
