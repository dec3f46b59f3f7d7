"""The sorted-set operations added to kv_backend.structures for the pop, lex, random and set-algebra
commands: in-process results, errors, and several processes sharing one store."""

from __future__ import annotations

import json
import math
import subprocess
import time

import pytest
from helpers import spawn_python

from kv_backend.structures import CommandError, Structures, WrongTypeError
from kv_backend.structures.layout import ZIDX, ZMEM


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


def records(s: Structures, name: bytes) -> int:
    """How many member and index records the engine holds for a sorted set of this name."""
    lp = len(name).to_bytes(4, "big") + name
    return sum(1 for _ in s.db.keys(prefix=ZMEM + lp)) + sum(1 for _ in s.db.keys(prefix=ZIDX + lp))


# ------------------------------------------------------------------------ pops


def test_zpopmin_zpopmax(s):
    s.zadd("z", {"a": 1, "b": 2, "c": 3, "d": -math.inf})
    assert s.zpopmin("z") == [(b"d", -math.inf)]
    assert s.zpopmax("z", 2) == [(b"c", 3.0), (b"b", 2.0)]
    assert s.zpopmax("z", 0) == []
    assert s.zcard("z") == 1
    assert s.zpopmin("z", 10) == [(b"a", 1.0)]
    assert s.exists("z") == 0 and records(s, b"z") == 0  # emptied: the key and its records are gone
    assert s.zpopmin("nokey") == [] and s.zpopmax("nokey", 3) == []
    with pytest.raises(CommandError, match="must be positive"):
        s.zpopmin("z", -1)
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.zpopmin("str", 0)  # the type is checked whatever the count, as Redis


def test_zpop_keeps_the_ttl_and_changes_the_watch_token(s):
    s.zadd("z", {"a": 1, "b": 2})
    s.expire("z", 100)
    before = s.watch_token("z")
    assert s.zpopmin("z") == [(b"a", 1.0)]
    assert 99 < s.ttl("z") <= 100
    assert s.watch_token("z") != before


def test_zmpop(s):
    s.zadd("b", {"x": 1, "y": 2, "z": 3})
    assert s.zmpop(["a", "b"], "max", 2) == (b"b", [(b"z", 3.0), (b"y", 2.0)])
    assert s.zmpop(["a", "b"], "MIN") == (b"b", [(b"x", 1.0)])
    assert s.zmpop(["a", "b"]) is None
    s.set("str", "v")
    s.zadd("c", {"m": 1})
    with pytest.raises(WrongTypeError):
        s.zmpop(["a", "str", "c"])  # the first existing key is of the wrong type
    assert s.zmpop(["c", "str"]) == (b"c", [(b"m", 1.0)])
    with pytest.raises(CommandError, match="count should be greater than 0"):
        s.zmpop(["c"], "min", 0)
    with pytest.raises(CommandError, match="syntax error"):
        s.zmpop(["c"], "middle")


def test_bzpop_answers_at_once_or_times_out(s):
    s.zadd("q", {"a": 1, "b": 2})
    assert s.bzpopmax(["none", "q"], timeout=1) == (b"q", b"b", 2.0)
    assert s.bzpopmin("q", timeout=1) == (b"q", b"a", 1.0)
    t0 = time.monotonic()
    assert s.bzpopmin("q", timeout=0.1) is None
    assert s.bzmpop(["q", "r"], timeout=0.05, where="max", count=3) is None
    assert time.monotonic() - t0 >= 0.14
    with pytest.raises(CommandError, match="negative"):
        s.bzpopmin("q", timeout=-1)
    with pytest.raises(TypeError):
        s.bzpopmin("q", timeout="1")
    with pytest.raises(CommandError):
        s.bzmpop([], timeout=1)


def test_bzpopmin_wakes_on_another_process_zadd(s, store_path):
    code = """
        import sys, time
        from kv_backend.structures import Structures
        time.sleep(0.3)
        with Structures(sys.argv[1]) as st:
            st.zadd(b"jobs", {b"late": 2, b"early": 1})
    """
    proc = spawn_python(code, store_path)
    try:
        t0 = time.monotonic()
        assert s.bzpopmin("jobs", timeout=0) == (b"jobs", b"early", 1.0)
        assert 0.2 < time.monotonic() - t0 < 10
        assert s.bzmpop("jobs", timeout=5, where="max") == (b"jobs", [(b"late", 2.0)])
    finally:
        assert proc.wait(30) == 0


def test_zpop_consumers_in_several_processes_get_each_member_once(s, store_path):
    code = """
        import json, sys
        from kv_backend.structures import Structures
        got = []
        with Structures(sys.argv[1]) as st:
            while (item := st.bzpopmin("work", timeout=0.3)) is not None:
                got.append(item[1].decode())
                got += [m.decode() for m, _ in st.zpopmin("work", 2)]
        print(json.dumps(got))
    """
    consumers = [spawn_python(code, store_path, stdout=subprocess.PIPE) for _ in range(3)]
    try:
        for i in range(0, 300, 3):
            s.zadd("work", {f"job-{j}": j for j in range(i, i + 3)})
    finally:
        outs = [json.loads(p.communicate(timeout=60)[0]) for p in consumers]
    got = [x for out in outs for x in out]
    assert sorted(got) == sorted(f"job-{i}" for i in range(300))
    assert records(s, b"work") == 0


# ------------------------------------------------------------------ lex ranges


def test_lex_ranges(s):
    s.zadd("z", {m: 0 for m in ["a", "b", "c", "d", "e"]})
    assert s.zrangebylex("z", "-", "+") == [b"a", b"b", b"c", b"d", b"e"]
    assert s.zrangebylex("z", "[b", "(d") == [b"b", b"c"]
    assert s.zrangebylex("z", "(b", "+", 1, 2) == [b"d", b"e"]
    assert s.zrangebylex("z", "-", "+", 3, -1) == [b"d", b"e"]
    assert s.zrangebylex("z", "-", "+", -1, 2) == []
    assert s.zrevrangebylex("z", "[d", "(a") == [b"d", b"c", b"b"]
    assert s.zrevrangebylex("z", "+", "-", 0, 2) == [b"e", b"d"]
    assert s.zlexcount("z", "[b", "[bz") == 1
    assert s.zlexcount("z", "(c", "[b") == 0
    assert s.zlexcount("z", "-", "-") == 0
    assert s.zlexcount("nokey", "-", "+") == 0
    assert s.zremrangebylex("z", "(a", "[c") == 2
    assert s.zrangebylex("z", "-", "+") == [b"a", b"d", b"e"]
    assert s.zremrangebylex("z", "-", "+") == 3
    assert s.exists("z") == 0 and records(s, b"z") == 0
    for bad in ("b", "", "--", "+x"):
        with pytest.raises(CommandError, match="not valid string range item"):
            s.zlexcount("nokey", bad, "+")  # the bounds are checked before the key
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.zrangebylex("str", "-", "+")


def test_lex_range_of_a_set_with_several_scores_walks_in_score_order(s):
    """As Redis walks a small sorted set: from the first member in range, while members stay in it."""
    s.zadd("m", {"a": 3, "b": 1, "c": 2, "d": 1, "e": 0})  # score order: e b d c a
    assert s.zrangebylex("m", "[a", "[e") == [b"e", b"b", b"d", b"c", b"a"]
    assert s.zrangebylex("m", "[b", "[d") == []  # the last member, a, is below the minimum
    s.zadd("n", {"a": 1, "b": 1, "c": 1, "a0": 2, "b0": 2})  # a b c a0 b0
    assert s.zrangebylex("n", "[b", "+") == [b"b", b"c", b"a0", b"b0"]
    assert s.zrevrangebylex("n", "+", "(a") == [b"b0", b"a0", b"c", b"b"]


# ----------------------------------------------------------------- ZRANDMEMBER


def test_zrandmember(s):
    assert s.zrandmember("nokey") is None
    assert s.zrandmember("nokey", 3) == [] and s.zrandmember("nokey", -3, withscores=True) == []
    s.zadd("z", {"a": 1, "b": 2, "c": 3})
    assert {s.zrandmember("z") for _ in range(60)} == {b"a", b"b", b"c"}
    assert s.zrandmember("z", 10, withscores=True) == [(b"c", 3.0), (b"b", 2.0), (b"a", 1.0)]
    two = s.zrandmember("z", 2)
    assert len(set(two)) == 2 and set(two) <= {b"a", b"b", b"c"}
    many = s.zrandmember("z", -20, withscores=True)
    assert len(many) == 20 and set(many) <= {(b"a", 1.0), (b"b", 2.0), (b"c", 3.0)}
    assert s.zrandmember("z", 0) == []
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.zrandmember("str", 0)


# ------------------------------------------------------- ZUNION, ZINTER, ZDIFF


def test_set_algebra(s):
    s.zadd("a", {"x": 1, "y": 2, "z": 3})
    s.zadd("b", {"y": 10, "z": 20, "w": math.inf})
    s.sadd("s", "y", "q")
    assert s.zunion(["a", "b"], withscores=True) == [
        (b"x", 1.0),
        (b"y", 12.0),
        (b"z", 23.0),
        (b"w", math.inf),
    ]
    assert s.zunion({"a": 2, "b": 0.5}, aggregate="MAX") == [b"x", b"y", b"z", b"w"]
    assert s.zinter(["a", "s"], withscores=True) == [(b"y", 3.0)]  # a set's members score 1
    assert s.zinter(["a", "b"], aggregate="min", withscores=True) == [(b"y", 2.0), (b"z", 3.0)]
    assert s.zdiff(["a", "b", "s"], withscores=True) == [(b"x", 1.0)]
    assert s.zintercard(["a", "b"]) == 2 and s.zintercard(["a", "b"], limit=1) == 1
    assert s.zinter(["a", "nokey"]) == [] and s.zintercard(["a", "nokey"]) == 0
    assert dict(s.zunion(["b"], weights=[0], withscores=True))[b"w"] == 0.0  # 0 * inf is 0, as Redis
    s.zadd("n", {"w": -math.inf})
    assert dict(s.zunion(["b", "n"], withscores=True))[b"w"] == 0.0  # inf + -inf is 0, as Redis
    s.set("dst", "v")
    s.expire("dst", 100)
    assert s.zunionstore("dst", ["a", "b"], aggregate="min") == 4
    assert s.type("dst") == "zset" and s.ttl("dst") is None
    assert s.zrange("dst", 0, -1, withscores=True) == [
        (b"x", 1.0),
        (b"y", 2.0),
        (b"z", 3.0),
        (b"w", math.inf),
    ]
    assert s.zinterstore("dst", ["a", "nokey"]) == 0 and s.exists("dst") == 0
    assert records(s, b"dst") == 0
    assert s.zdiffstore("a", ["a", "s"]) == 2 and s.zrange("a", 0, -1) == [b"x", b"z"]
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.zunion(["nokey", "str"])
    with pytest.raises(CommandError, match="syntax error"):
        s.zunion(["a"], aggregate="avg")
    with pytest.raises(CommandError, match="LIMIT can't be negative"):
        s.zintercard(["a"], limit=-1)


def test_zunionstore_with_another_process_writing(s, store_path):
    """Many processes storing unions into one destination and adding to the inputs: every store is
    atomic, so the destination is always a whole union of some state of the inputs."""
    code = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as st:
            for i in range(40):
                st.zadd("in", {f"m{sys.argv[2]}-{i}": i})
                st.zunionstore("out", ["in", "base"])
    """
    s.zadd("base", {"b": 0})
    procs = [spawn_python(code, store_path, str(p)) for p in range(2)]
    for _ in range(40):
        out = s.zrange("out", 0, -1)
        assert not out or b"b" in out
    for p in procs:
        assert p.wait(60) == 0
    s.zunionstore("out", ["in", "base"])
    assert s.zcard("out") == 81
