"""In-process ``Structures`` methods behind SMOVE, S*STORE, SINTERCARD, SETRANGE, COPY, TOUCH,
OBJECT, LPOS, LMPOP/BLMPOP and HRANDFIELD."""

from __future__ import annotations

import time

import pytest
from helpers import spawn_python

from kv_backend.structures import CommandError, Structures, WrongTypeError


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st:
        yield st


def test_smove(s):
    s.sadd("a", "x", "y")
    s.set("str", "v")
    assert s.smove("missing", "str", "x") is False
    with pytest.raises(WrongTypeError):
        s.smove("a", "str", "x")
    assert s.smove("a", "b", "x") is True
    assert s.smembers("a") == {b"y"} and s.smembers("b") == {b"x"}
    assert s.smove("a", "a", "y") is True and s.smove("a", "a", "z") is False
    s.expire("b", 100)
    assert s.smove("a", "b", "y") is True
    assert s.type("a") == "none" and s.scard("b") == 2 and s.ttl("b") > 99


def test_smove_to_a_name_an_expired_set_left_members_under(s):
    s.sadd("d", "old1", "old2")
    s.db.expire(b"\x00md", 0.01)  # expire the set's metadata: its member records stay behind
    time.sleep(0.02)
    s.sadd("src", "m")
    assert s.smove("src", "d", "m")
    assert s.smembers("d") == {b"m"} and s.scard("d") == 1


def test_store_commands(s):
    s.sadd("a", 1, 2, 3)
    s.sadd("b", 2, 3, 4)
    s.set("dst", "v", ex=100)
    assert s.sinterstore("dst", "a", "b") == 2
    assert s.type("dst") == "set" and s.ttl("dst") is None and s.smembers("dst") == {b"2", b"3"}
    assert s.sunionstore("dst", "a", "b") == 4 and s.scard("dst") == 4
    assert s.sdiffstore("dst", "a", "b") == 1 and s.smembers("dst") == {b"1"}
    assert s.sinterstore("dst", "a", "missing") == 0 and s.type("dst") == "none"
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.sunionstore("dst", "missing", "str")
    assert s.sunionstore("a", "a", "b") == 4 and s.scard("a") == 4


def test_a_replaced_set_gets_a_new_watch_token(s):
    """Storing the same members again is a write: other processes' WATCH must see it."""
    s.sadd("a", "m")
    s.sunionstore("d", "a")
    token = s.watch_token("d")
    s.sunionstore("d", "a")
    assert s.watch_token("d") != token


def test_sintercard(s):
    s.sadd("a", *range(100))
    s.sadd("b", *range(50, 200))
    assert s.sintercard("a", "b") == 50
    assert s.sintercard("a", "b", limit=7) == 7
    assert s.sintercard("a", "missing") == 0
    with pytest.raises(CommandError, match="LIMIT can't be negative"):
        s.sintercard("a", limit=-1)


def test_setrange(s):
    assert s.setrange("k", 0, b"") == 0 and s.type("k") == "none"
    assert s.setrange("k", 3, "ab") == 5 and s.get("k") == b"\x00\x00\x00ab"
    s.expire("k", 100)
    assert s.setrange("k", 1, "XYZW") == 5 and s.get("k") == b"\x00XYZW" and s.ttl("k") > 99
    assert s.setrange("k", 512 * 1024 * 1024, b"") == 5
    with pytest.raises(CommandError, match="proto-max-bulk-len"):
        s.setrange("k", 512 * 1024 * 1024, b"x")
    with pytest.raises(CommandError, match="offset is out of range"):
        s.setrange("k", -1, b"x")
    s.rpush("l", "a")
    with pytest.raises(WrongTypeError):
        s.setrange("l", 0, b"")


def test_copy_every_type_with_its_ttl(s):
    s.set("str", "v", ex=100)
    s.rpush("list", "a", "b")
    s.hset("hash", {"f": "v"})
    s.sadd("set", "m")
    s.zadd("zset", {"m": 1.5})
    s.xadd("stream", {"f": "v"}, id="1-1")
    for name in ["str", "list", "hash", "set", "zset", "stream"]:
        assert s.copy(name, name + "2")
        assert s.type(name + "2") == s.type(name)
    assert 99 < s.ttl("str2") <= 100 and s.ttl("list2") is None
    assert s.lrange("list2", 0, -1) == [b"a", b"b"] and s.hgetall("hash2") == {b"f": b"v"}
    assert s.smembers("set2") == {b"m"} and s.zrange("zset2", 0, -1, withscores=True) == [(b"m", 1.5)]
    assert s.xrange("stream2") == [(b"1-1", [(b"f", b"v")])]
    assert s.copy("missing", "x") is False
    assert s.copy("set", "list") is False and s.type("list") == "list"
    assert s.copy("set", "list", replace=True) and s.smembers("list") == {b"m"}
    with pytest.raises(CommandError, match="source and destination objects are the same"):
        s.copy("set", "set")
    s.rpush("list2", "c")  # the copy is independent
    assert s.llen("list2") == 3 and s.smembers("list") == {b"m"}


def test_copy_of_a_stream_takes_its_groups_and_pending_entries(s):
    s.xadd("x", {"f": "v"}, id="1-1")
    s.xadd("x", {"f": "w"}, id="2-1")
    s.xgroup_create("x", "g", id="0")
    s.xreadgroup("g", "alice", {"x": ">"}, count=1)
    assert s.copy("x", "y")
    assert s.xpending("y", "g")[:3] == (1, b"1-1", b"1-1")
    assert s.xreadgroup("g", "bob", {"y": ">"}) == [(b"y", [(b"2-1", [(b"f", b"w")])])]
    assert s.xack("y", "g", "1-1") == 1
    assert s.xpending("x", "g")[0] == 1  # the source's group is its own
    assert s.xinfo_groups("x")[0]["last-delivered-id"] == b"1-1"


def test_touch(s):
    s.set("a", 1)
    assert s.touch("a", "a", "missing") == 2


def test_object_encoding_and_refcount(s):
    assert s.object_encoding("missing") is None and s.object_refcount("missing") is None
    s.set("i", 42)
    s.set("e", "x" * 44)
    s.set("r", "x" * 45)
    s.set("big", 10000)
    assert [s.object_encoding(k) for k in ["i", "e", "r"]] == ["int", "embstr", "raw"]
    assert s.object_refcount("i") == 2147483647 and s.object_refcount("big") == 1
    s.rpush("l", *range(1000))  # 1000 small integers: 2 bytes each, under 8 KiB
    assert s.object_encoding("l") == "listpack"
    s.rpush("l", *range(100000, 103000))  # 4 bytes each: over
    assert s.object_encoding("l") == "quicklist"
    s.rpush("huge", *["x"] * 5000)  # too many entries to fit, whatever they hold: not read
    assert s.object_encoding("huge") == "quicklist"
    s.sadd("st", 1, 2)
    assert s.object_encoding("st") == "intset"
    s.sadd("st", "a")
    assert s.object_encoding("st") == "listpack"
    s.hset("h", {"f": "v"})
    assert s.object_encoding("h") == "listpack"
    s.hset("h", {"f": "v" * 65})
    assert s.object_encoding("h") == "hashtable"
    s.zadd("z", {"m": 1})
    assert s.object_encoding("z") == "listpack"
    s.xadd("x", {"f": "v"})
    assert s.object_encoding("x") == "stream"


def test_lpos(s):
    s.rpush("l", "a", "b", "c", "a", "b", "c", "a")
    assert s.lpos("l", "a") == 0
    assert s.lpos("l", "a", rank=-1) == 6
    assert s.lpos("l", "a", rank=2, count=0) == [3, 6]
    assert s.lpos("l", "c", maxlen=2) is None
    assert s.lpos("l", "c", rank=-1, maxlen=2) == 5
    assert s.lpos("missing", "a") is None and s.lpos("missing", "a", count=1) == []
    with pytest.raises(CommandError, match="RANK can't be zero"):
        s.lpos("l", "a", rank=0)
    with pytest.raises(CommandError, match="COUNT can't be negative"):
        s.lpos("l", "a", count=-1)


def test_lmpop_and_blmpop(s):
    s.rpush("b", 1, 2, 3)
    s.set("str", "v")
    assert s.lmpop(["a", "b", "str"], left=False, count=2) == (b"b", [b"3", b"2"])
    with pytest.raises(WrongTypeError):
        s.lmpop(["a", "str", "b"])
    assert s.lmpop(["b"], count=5) == (b"b", [b"1"]) and s.type("b") == "none"
    assert s.lmpop(["a", "b"]) is None
    with pytest.raises(CommandError, match="count should be greater than 0"):
        s.lmpop(["a"], count=0)
    t0 = time.monotonic()
    assert s.blmpop(["a"], timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.05


def test_blmpop_is_woken_by_another_process(s, store_path):
    proc = spawn_python(
        """
        import sys, time
        from kv_backend.structures import Structures
        time.sleep(0.1)
        with Structures(sys.argv[1]) as st:
            st.rpush("q", "x", "y")
        """,
        store_path,
    )
    try:
        assert s.blmpop(["p", "q"], timeout=10, count=5) == (b"q", [b"x", b"y"])
    finally:
        assert proc.wait(30) == 0


def test_smove_from_several_processes_loses_and_duplicates_nothing(s, store_path):
    """SMOVE reads then writes: processes moving members back and forth between two sets keep
    every member in exactly one of them, with the counts right."""
    s.sadd("a", *range(50))
    code = """
        import random, sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as st:
            for i in range(200):
                src, dst = random.sample(["a", "b"], 2)
                st.smove(src, dst, random.randrange(50))
    """
    procs = [spawn_python(code, store_path) for _ in range(3)]
    for p in procs:
        assert p.wait(60) == 0
    a, b = s.smembers("a"), s.smembers("b")
    assert not a & b and a | b == {str(i).encode() for i in range(50)}
    assert s.scard("a") == len(a) and s.scard("b") == len(b)


def test_hrandfield(s):
    assert s.hrandfield("missing") is None and s.hrandfield("missing", 3) == []
    s.hset("h", {"a": 1, "b": 2})
    assert s.hrandfield("h") in (b"a", b"b")
    assert sorted(s.hrandfield("h", 5)) == [b"a", b"b"]
    assert len(s.hrandfield("h", -5)) == 5
    assert sorted(s.hrandfield("h", 2, withvalues=True)) == [(b"a", b"1"), (b"b", b"2")]
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.hrandfield("str", 1)


@pytest.mark.parametrize("raw", [b"--5", b"---", b"-+5"])
def test_an_integer_argument_with_two_signs_is_not_an_integer(s, raw):
    """parse_int let "--5" through its check and failed in int() with a bare ValueError, which the
    server answered as 'ERR invalid literal for int() ...' (Redis: 'value is not an integer')."""
    from kv_backend.errors import NotAnIntegerError

    with pytest.raises(NotAnIntegerError):
        s.incrby("k", raw)
