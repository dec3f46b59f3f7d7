"""The in-process Structures API: arguments of the wrong type raise the project's errors."""

from __future__ import annotations

import pytest

from kv_backend.errors import InvalidArgumentError, KVError, NotAnIntegerError
from kv_backend.structures import Structures


@pytest.fixture
def s(tmp_path):
    with Structures(str(tmp_path / "db")) as st:
        yield st


def test_zincrby_of_a_member_of_the_wrong_type_is_an_invalid_argument(s):
    """zincrby built a dict of the member: a list or dict member raised ``unhashable type``."""
    for member in ([1], {}, None):
        with pytest.raises(InvalidArgumentError):
            s.zincrby("z", 1, member)
    assert s.zincrby("z", 2, "m") == 2.0 and s.zincrby("z", 1.5, "m") == 3.5


def test_weights_that_are_not_a_sequence_are_an_invalid_argument(s):
    """``weights=2`` raised ``'int' object is not iterable`` from zunion, zinter and their stores."""
    s.zadd("a", {"m": 1})
    calls = [
        lambda w: s.zunion(["a"], weights=w),
        lambda w: s.zinter(["a"], weights=w),
        lambda w: s.zunionstore("d", ["a"], weights=w),
        lambda w: s.zinterstore("d", ["a"], weights=w),
    ]
    for call in calls:
        for weights in (2, 1.5, True, object()):
            with pytest.raises(InvalidArgumentError, match="weights"):
                call(weights)
    assert s.zunion(["a"], weights=[3], withscores=True) == [(b"m", 3.0)]


def test_xinfo_stream_count_of_the_wrong_type_is_refused_with_a_kv_error(s):
    """``count={}`` raised TypeError comparing it with 0; it is read as the other counts are."""
    s.xadd("x", {"f": "v"}, id="1-1")
    for count in ({}, 1.5, "x"):
        with pytest.raises(NotAnIntegerError):
            s.xinfo_stream("x", full=True, count=count)
    assert len(s.xinfo_stream("x", full=True, count="1")["entries"]) == 1
    assert issubclass(NotAnIntegerError, KVError)


def test_a_group_behind_a_trimmed_stream_reads_its_counter_anew(s):
    """A group whose last entry was trimmed away reported the remaining entries as its lag (as
    Redis does since redis/redis#13473), but its next read only added 1 to its counter: having
    read the last entry, its lag was 3 where nothing was left (Redis's fix #13958 estimates it)."""
    for i in range(1, 6):
        s.xadd("x", {"data": i}, id=f"{i}-0")
    s.xgroup_create("x", "g1", "0")
    s.xreadgroup("g1", "c", {"x": ">"}, count=1)
    s.xtrim("x", maxlen=1)
    [info] = s.xinfo_groups("x")
    assert (info["entries-read"], info["lag"]) == (1, 1)
    assert [xid for xid, _ in s.xreadgroup("g1", "c", {"x": ">"}, count=1)[0][1]] == [b"5-0"]
    [info] = s.xinfo_groups("x")
    assert (info["last-delivered-id"], info["entries-read"], info["lag"]) == (b"5-0", 5, 0)
    s.xadd("x", {"data": 6}, id="6-0")  # and it counts on from there
    s.xreadgroup("g1", "c", {"x": ">"})
    [info] = s.xinfo_groups("x")
    assert (info["entries-read"], info["lag"]) == (6, 0)


def test_a_field_or_member_of_the_wrong_type_is_refused_whether_or_not_the_key_exists(s):
    """hget, hmget, hexists, hstrlen, sismember, smismember, zscore, zmscore, geopos, geohash and
    geodist answered a missing key (None, False, 0) before looking at a list or None field or
    member, which raised InvalidArgumentError only once the key existed."""
    calls = [
        lambda k, bad: s.hget(k, bad),
        lambda k, bad: s.hmget(k, "f", bad),
        lambda k, bad: s.hexists(k, bad),
        lambda k, bad: s.hstrlen(k, bad),
        lambda k, bad: s.sismember(k, bad),
        lambda k, bad: s.smismember(k, "m", bad),
        lambda k, bad: s.zscore(k, bad),
        lambda k, bad: s.zmscore(k, "m", bad),
        lambda k, bad: s.geopos(k, "m", bad),
        lambda k, bad: s.geohash(k, bad),
        lambda k, bad: s.geodist(k, "m", bad),
    ]
    s.hset("h", {"f": "v"})
    s.sadd("s", "m")
    s.geoadd("z", [13.0, 38.0, "m"])
    for call, key in zip(calls, ["h"] * 4 + ["s"] * 2 + ["z"] * 5, strict=True):
        for name in (key, "missing"):
            for bad in ([1], None, {"a": 1}):
                with pytest.raises(InvalidArgumentError):
                    call(name, bad)
    assert s.hmget("missing", "f") == [None] and s.geopos("missing", "m") == [None]


def test_range_indexes_are_checked_whether_or_not_the_key_exists(s):
    """lrange, ltrim, zrange and zremrangebyrank answered a missing key ([], True, 0) whatever its
    indexes; Redis (and these methods once the key exists) refuse one that is not an integer."""
    s.rpush("l", "a")
    s.zadd("z", {"m": 1})
    calls = [
        lambda k, i: s.lrange(k, i, 1),
        lambda k, i: s.lrange(k, 0, i),
        lambda k, i: s.ltrim(k, i, 1),
        lambda k, i: s.zrange(k, i, 1),
        lambda k, i: s.zremrangebyrank(k, 0, i),
    ]
    for call, key in zip(calls, ["l", "l", "l", "z", "z"], strict=True):
        for name in (key, "missing"):
            for bad in ("x", 1.5, None):
                with pytest.raises(NotAnIntegerError):
                    call(name, bad)
    assert s.lrange("missing", "0", "-1") == [] and s.zrange("missing", 0, -1) == []
