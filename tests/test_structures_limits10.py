"""kv_backend.structures and kvb serve given names, fields, members and arguments at and past the
limits: reads answer as for a missing key, failures are project errors that say what to do, and a
refused write leaves nothing half-written."""

from __future__ import annotations

import pytest
import redis
from resp_helpers import RunningServer

from kv_backend.errors import InvalidArgumentError, KeyTooLargeError, KVError, NotAnIntegerError
from kv_backend.structures import CommandError, NotAFloatError, Structures
from kv_backend.structures.errors import KeyNameTooLongError, StructureError

LONG = b"k" * 70_000  # longer than any engine key: such a name, field or member is never stored


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        st_.set("str", "v")
        st_.hset("h", {"f": "v"})
        st_.sadd("s", "m")
        st_.zadd("z", {"m": 1})
        st_.geoadd("g", [1, 2, "m"])
        st_.rpush("l", "x")
        st_.xadd("x", {"f": "v"}, id="1-1")
        st_.xgroup_create("x", "grp", id="0")
        yield st_


def test_reads_of_a_name_too_long_to_be_stored_answer_as_for_a_missing_key(s):
    """Redis answers nil/0/empty for a name it does not hold; these raised the engine's
    'keys must be 1 to 65536 bytes long' (kv_backend.Store treats such keys as absent too)."""
    assert s.get(LONG) is None
    assert s.mget("str", LONG) == [b"v", None]
    assert s.exists(LONG) == 0 and s.exists("str", LONG, "h") == 2
    assert s.touch(LONG) == 0
    assert s.type(LONG) == "none"
    assert s.strlen(LONG) == 0 and s.getrange(LONG, 0, 1) == b""
    assert s.object_encoding(LONG) is None and s.object_refcount(LONG) is None
    with pytest.raises(KeyError):
        s.ttl(LONG)
    with pytest.raises(KeyError):
        s.expiretime(LONG)
    assert s.expire(LONG, 10) is False and s.expireat(LONG, 2**40) is False
    assert s.delete(LONG) == 0 and s.unlink("str", LONG) == 1
    assert s.getdel(LONG) is None and s.getex(LONG, ex=5) is None


def test_fields_and_members_too_long_to_be_stored_are_missing(s):
    assert s.hget("h", LONG) is None and s.hmget("h", "f", LONG) == [b"v", None]
    assert s.hexists("h", LONG) is False and s.hstrlen("h", LONG) == 0
    assert s.hdel("h", LONG) == 0 and s.hlen("h") == 1
    assert s.sismember("s", LONG) is False and s.smismember("s", "m", LONG) == [True, False]
    assert s.srem("s", LONG) == 0 and s.smove("s", "s2", LONG) is False
    assert s.zscore("z", LONG) is None and s.zmscore("z", "m", LONG) == [1.0, None]
    assert s.zrank("z", LONG) is None and s.zrevrank("z", LONG) is None
    assert s.zrem("z", LONG) == 0 and s.zcard("z") == 1
    assert s.geopos("g", "m", LONG)[1] is None and s.geodist("g", "m", LONG) is None
    assert s.geohash("g", LONG) == [None]
    assert s.xgroup_delconsumer("x", "grp", LONG) == 0
    assert s.xgroup_destroy("x", LONG) == 0
    with pytest.raises(StructureError, match=r"^NOGROUP"):
        s.xinfo_consumers("x", LONG)


def test_a_member_of_one_key_too_long_for_another_keys_records_is_not_in_it(s):
    """SINTER/ZINTER look each member of the first key up in the others, whose longer names can
    make the engine key too long: such a member is not there."""
    member = b"m" * 65_529  # fits with the name "a", not with "bb"
    s.sadd("a", member, "x")
    s.sadd("bb", "x")
    assert s.sinter("a", "bb") == {b"x"} and s.sintercard("a", "bb") == 1
    assert s.zinter(["a", "bb"]) == [b"x"]


@pytest.mark.parametrize(
    ("write", "limit"),
    [
        (lambda s: s.set(b"k" * 65_535, "v"), "a string's name may be up to 65534 bytes"),
        (lambda s: s.incr(LONG), "a string's name may be up to 65534 bytes"),
        (lambda s: s.setbit(LONG, 7, 1), "a string's name may be up to 65534 bytes"),
        (lambda s: s.pfadd(LONG, "a"), "a string's name may be up to 65534 bytes"),
        (lambda s: s.hset("h", {b"f" * 65_530: "v"}), "a hash's name and one field may be up to 65530 bytes"),
        (lambda s: s.hincrby("h", LONG, 1), "a hash's name and one field may be up to 65530 bytes"),
        (lambda s: s.sadd("s", b"m" * 65_530), "a set's name and one member may be up to 65530 bytes"),
        (lambda s: s.zadd("z", {b"m" * 65_522: 1}), "a sorted set's .* up to 65522 bytes"),
        (lambda s: s.geoadd("g", [1, 2, LONG]), "a sorted set's .* up to 65522 bytes"),
        (lambda s: s.rpush(b"l" * 65_523, "x"), "a list's name may be up to 65522 bytes"),
        (lambda s: s.lmove("l", LONG, "LEFT", "RIGHT"), "a list's name may be up to 65522 bytes"),
        (lambda s: s.xadd(b"x" * 65_515, {"f": "v"}), "a stream's name may be up to 65514 bytes"),
        (lambda s: s.rename("str", LONG), "a string's name .*; a stream's name"),
    ],
)
def test_writes_of_names_too_long_raise_an_error_naming_the_limit(s, write, limit):
    """The engine's own message counted its key (prefix, name and field): 'keys must be 1 to
    65536 bytes long, got 65537 bytes' for a string's name of 65535 bytes."""
    with pytest.raises(KeyNameTooLongError, match=rf"^ERR key name too long: {limit}") as info:
        write(s)
    assert isinstance(info.value, KeyTooLargeError) and isinstance(info.value, KVError)
    assert "use a shorter name" in str(info.value)
    assert s.lrange("l", 0, -1) == [b"x"] and s.get("str") == b"v"


def test_the_longest_names_of_each_type_are_stored(s):
    s.set(b"k" * 65_534, "v")
    s.hset(b"h" * 65_529, {"f": "v"})
    s.zadd(b"z" * 65_521, {"m": 1})
    s.rpush(b"l" * 65_522, "x")
    s.xadd(b"x" * 65_514, {"f": "v"})
    assert s.exists(b"k" * 65_534, b"h" * 65_529, b"z" * 65_521, b"l" * 65_522, b"x" * 65_514) == 5


def test_a_refused_multi_element_write_writes_nothing(s):
    for write in (
        lambda: s.hset("h", {"a": "1", LONG: "2"}),
        lambda: s.hset("h2", {"a": "1", LONG: "2"}),
        lambda: s.sadd("s", "a", LONG),
        lambda: s.zadd("z", {"a": 1, LONG: 2}),
        lambda: s.mset({"a": "1", LONG: "2"}),
        lambda: s.geoadd("g", [1, 2, "a", 1, 2, LONG]),
    ):
        with pytest.raises(KeyNameTooLongError):
            write()
    assert s.hgetall("h") == {b"f": b"v"} and s.hlen("h") == 1 and s.exists("h2", "a") == 0
    assert s.smembers("s") == {b"m"} and s.scard("s") == 1
    assert s.zrange("z", 0, -1) == [b"m"] and s.zcard("z") == 1 and s.zcard("g") == 1


def test_a_group_name_too_long_for_its_pending_entries_is_refused(s):
    """Its record fit but no pending entry could be stored: XREADGROUP failed on it, and XINFO
    GROUPS of the stream raised the engine's KeyTooLargeError for as long as it existed."""
    group = b"g" * 65_510  # with the name "x": 65,511 bytes, one more than a group's pending entries take
    with pytest.raises(KeyNameTooLongError, match="consumer group's up to 65510 together"):
        s.xgroup_create("x", group, id="0")
    assert [g["name"] for g in s.xinfo_groups("x")] == [b"grp"]
    assert s.xgroup_create("x", group[:-1], id="0") is True
    assert s.xreadgroup(group[:-1], "c", {"x": ">"}) == [(b"x", [(b"1-1", [(b"f", b"v")])])]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("limits") / "store")).start()
    yield srv
    assert srv.stop() == 0


def test_kvb_serve_answers_reads_of_too_long_names_as_redis_does(server):
    r = redis.Redis(port=server.port, socket_timeout=10)
    r.flushdb()
    r.hset("h", "f", "v")
    r.sadd("s", "m")
    assert r.get(LONG) is None and r.exists(LONG) == 0 and r.delete(LONG) == 0
    assert r.ttl(LONG) == -2 and r.pttl(LONG) == -2 and r.expiretime(LONG) == -2
    assert r.type(LONG) == b"none" and r.strlen(LONG) == 0 and r.object("encoding", LONG) is None
    assert r.hget("h", LONG) is None and r.hmget("h", "f", LONG) == [b"v", None]
    assert r.sismember("s", LONG) == 0 and r.smismember("s", ["m", LONG]) == [1, 0]
    assert r.expire(LONG, 10) is False and r.getdel(LONG) is None
    with pytest.raises(redis.ResponseError, match=r"^key name too long: kvb holds a string's name of up to"):
        r.set(LONG, "v")
    r.xadd("x", {"f": "v"})
    with pytest.raises(redis.ResponseError, match=r"consumer groups. names, 65510\)$"):
        r.xgroup_create("x", b"g" * 65_510, id="0")
    assert r.xinfo_groups("x") == []
    r.close()


def test_arguments_of_the_wrong_type_raise_project_errors(s, store_path):
    """None, bools, lists... as a name or value, and a str as an expire time, raised Python's own
    TypeError ("'<=' not supported between instances of 'str' and 'int'"), not a KVError."""
    for call in (
        lambda: s.set(None, "v"),
        lambda: s.set("a", None),
        lambda: s.get(None),
        lambda: s.hset("h", {"f": [1]}),
        lambda: s.sadd("s", True),
        lambda: s.set("a", "v", ex="5"),
        lambda: s.expire("str", "10"),
        lambda: s.expireat("str", "x"),
        lambda: s.getex("str", ex="1"),
        lambda: s.blpop(["nope"], float("nan")),
        lambda: s.xread({"x": "$"}, block="1"),
        lambda: Structures(s.db, sync="always"),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert isinstance(info.value, TypeError)
    assert s.exists("a") == 0 and s.ttl("str") is None


def test_getex_refuses_an_expire_time_that_is_not_positive_as_set_does(s):
    """getex(ex=0) deleted the key (and answered its value); Redis's GETEX EX 0 and in-process
    set(ex=0) refuse it."""
    for ex in (0, -1, -0.5):
        with pytest.raises(CommandError, match=r"^ERR invalid expire time in 'getex' command$"):
            s.getex("str", ex=ex)
    assert s.get("str") == b"v" and s.ttl("str") is None
    assert s.getex("str", ex=0.5) == b"v" and 0 < s.ttl("str") <= 0.5


def test_indexes_and_counts_that_are_not_integers_raise_not_an_integer(s):
    """A float or None as an index, count or TTL raised Python's TypeError, ValueError,
    OverflowError or struct.error (lindex); RESTORE with a NaN TTL stored the key already expired.
    They are NotAnIntegerError now (Redis's "value is not an integer or out of range"); integers
    written as str are read as Redis reads its arguments."""
    s.rpush("l", "y", "z")
    nan = float("nan")
    for call in (
        lambda: s.lrange("l", 0.5, 2),
        lambda: s.lrange("l", None, 1),
        lambda: s.ltrim("l", 0, 1.5),
        lambda: s.lindex("l", 1.0),
        lambda: s.lset("l", 0.0, "v"),
        lambda: s.lrem("l", 1.5, "x"),
        lambda: s.lpop("l", 1.5),
        lambda: s.getrange("str", 0.5, 1),
        lambda: s.zrange("z", 0, 1.5),
        lambda: s.zrandmember("z", 1.5),
        lambda: s.hrandfield("h", 1.5),
        lambda: s.xadd("x", {"f": "v"}, maxlen=1.5),
        lambda: s.xtrim("x", maxlen=nan),
        lambda: s.xrange("x", count=1.5),
        lambda: s.scan(0, count=nan),
        lambda: s.scan(0, count=float("inf")),
        lambda: s.hscan("h", 0, count="x"),
        lambda: s.memory_usage("str", samples="x"),
        lambda: s.restore("new", nan, s.dump("str")),
    ):
        with pytest.raises(NotAnIntegerError, match=r"^ERR value is not an integer or out of range$"):
            call()
    assert s.lrange("l", 0, -1) == [b"x", b"y", b"z"] and s.xlen("x") == 1 and s.exists("new") == 0
    assert s.lrange("l", "0", "-2") == [b"x", b"y"] and s.lindex("l", "-1") == b"z"
    assert s.lrange("l", -(10**30), 10**30) == [b"x", b"y", b"z"]


def test_nan_and_out_of_range_numbers_as_scores_and_bounds_raise_not_a_float(s):
    """A NaN bound matched nothing (zcount answered 0, Redis refuses "nan"), and a Python int
    beyond a double raised OverflowError; bounds that large read as infinities, as their text
    does (Redis reads "1e400" as inf there), and as scores they are not a valid float."""
    nan, huge = float("nan"), 10**400
    for call in (
        lambda: s.zcount("z", nan, 1),
        lambda: s.zrangebyscore("z", 0, nan),
        lambda: s.zremrangebyscore("z", nan, nan),
    ):
        with pytest.raises(NotAFloatError, match=r"^ERR min or max is not a float$"):
            call()
    for call in (
        lambda: s.zadd("z", {"a": 1, "b": huge}),
        lambda: s.zincrby("z", -huge, "m"),
        lambda: s.geoadd("g", [huge, 1, "a"]),
    ):
        with pytest.raises(NotAFloatError, match=r"^ERR value is not a valid float$"):
            call()
    assert s.zrange("z", 0, -1, withscores=True) == [(b"m", 1.0)] and s.zcard("g") == 1
    assert s.zrangebyscore("z", -huge, huge) == [b"m"] and s.zcount("z", huge, "+inf") == 0


def test_weights_that_are_not_numbers_raise_not_a_float(s):
    """zunionstore/zinterstore/zunion weights went through float(): "x" raised ValueError, None
    TypeError and an int beyond a double OverflowError; b"2" and "inf" are read as Redis reads them."""
    for weights in (["x"], [10**400], [float("nan")]):
        with pytest.raises(NotAFloatError, match=r"^ERR weight value is not a float$"):
            s.zunionstore("d", ["z"], weights=weights)
    with pytest.raises(InvalidArgumentError):
        s.zunionstore("d", ["z"], weights=[None])
    with pytest.raises(NotAFloatError):
        s.zinter({"z": "two"})
    assert s.exists("d") == 0
    assert s.zunion(["z"], weights=[b"2"], withscores=True) == [(b"m", 2.0)]
    assert s.zunion({"z": "inf"}, withscores=True) == [(b"m", float("inf"))]


def test_more_counts_limits_and_times_that_are_not_integers_raise_not_an_integer(s):
    """Options of sorted-set, list, geo, SORT and stream-group methods compared or sliced a float
    or str as it was: slice and islice errors (ValueError, TypeError) and struct.error from
    xclaim/xsetid/xgroup_create, or a wrong answer (lpos(rank=1.5) found nothing, xclaim with a
    NaN min idle time claimed everything)."""
    s.xreadgroup("grp", "c", {"x": ">"})
    s.rpush("l", "1")
    for call in (
        lambda: s.sort("l", offset=0, count=1.5),
        lambda: s.sort("l", offset="x", count=1),
        lambda: s.lpos("l", "1", rank=1.5),
        lambda: s.lpos("l", "1", maxlen=None),
        lambda: s.geosearch("g", longitude=1, latitude=2, radius=1000, count=1.5),
        lambda: s.zpopmin("z", 1.5),
        lambda: s.zmpop(["z"], count=1.5),
        lambda: s.zrangebyscore("z", "-inf", "+inf", 1.5, 1),
        lambda: s.zrangebylex("z", "-", "+", 0, 0.5),
        lambda: s.sintercard("s", limit=1.5),
        lambda: s.zintercard(["z"], limit=1.5),
        lambda: s.xclaim("x", "grp", "c2", "x", ["1-1"]),
        lambda: s.xclaim("x", "grp", "c2", float("nan"), ["1-1"]),
        lambda: s.xclaim("x", "grp", "c2", 0, ["1-1"], retrycount=1.5),
        lambda: s.xautoclaim("x", "grp", "c2", 0, count=1.5),
        lambda: s.xpending_range("x", "grp", "-", "+", 1.5),
        lambda: s.xreadgroup("grp", "c", {"x": "0"}, count=1.5),
        lambda: s.xsetid("x", "5-0", entries_added=1.5),
        lambda: s.xgroup_create("x", "g2", id="0", entries_read=1.5),
        lambda: s.lcs("str", "str", idx=True, minmatchlen=1.5),
    ):
        with pytest.raises(NotAnIntegerError, match=r"^ERR value is not an integer or out of range$"):
            call()
    assert s.zcard("z") == 1 and s.xpending("x", "grp")[3] == [(b"c", 1)]
    assert s.lpos("l", "1", rank="-1") == 1 and s.sort("l", offset="0", count="1", alpha=True) == [b"1"]


def test_one_name_given_where_several_may_be_is_that_name(s):
    """lmpop/zmpop/pop_first iterated a str: lmpop("lst") popped from a key named "l", zmpop("zs")
    from "z", instead of reading "lst" and "zs" (blpop and bzmpop took one name already)."""
    s.rpush("lst", "a")
    s.zadd("zs", {"q": 5})
    assert s.lmpop("l") == (b"l", [b"x"])  # the fixture's list
    s.rpush("l", "x")
    assert s.lmpop("lst") == (b"lst", [b"a"]) and s.lrange("l", 0, -1) == [b"x"]
    assert s.zmpop("zs") == (b"zs", [(b"q", 5.0)]) and s.zcard("z") == 1
    assert s.pop_first("lx") is None and s.llen("l") == 1
    s.rpush("lst", "b")
    assert s.blmpop("lst", 0.01, count="2") == (b"lst", [b"b"]) and s.llen("l") == 1


def test_one_get_pattern_or_claimed_id_given_as_a_str_is_that_one(s):
    """sort(get="w_*") read the str a character at a time (patterns "w", "_" and "*": every
    value None, no error); xclaim(..., "1-1") refused the ID '1'. redis-py takes either."""
    s.rpush("nums", "1", "2")
    s.set("w_1", "x")
    s.set("w_2", "y")
    assert s.sort("nums", get="w_*") == [b"x", b"y"] == s.sort("nums", get=["w_*"])
    s.xreadgroup("grp", "c", {"x": ">"})
    assert s.xclaim("x", "grp", "c2", 0, "1-1", justid=True) == [b"1-1"]


def test_a_stream_is_not_renamed_copied_or_restored_where_its_groups_would_not_fit(s):
    """A group of 65,509 bytes fits a stream named "x"; renamed to "xx" its pending entries no
    longer could: rename succeeded, then XINFO GROUPS, XPENDING and XINFO STREAM FULL raised the
    engine's KeyTooLargeError and XREADGROUP refused the group, for as long as it existed."""
    group = b"g" * 65_509
    s.xgroup_create("x", group, id="0")
    payload = s.dump("x")
    for call in (
        lambda: s.rename("x", "xx"),
        lambda: s.copy("x", "xx"),
        lambda: s.restore("xx", 0, payload),
    ):
        with pytest.raises(KeyNameTooLongError, match="a consumer group's up to 65510 together"):
            call()
    assert s.exists("xx") == 0 and len(s.xinfo_groups("x")) == 2
    s.xgroup_destroy("x", group)
    assert s.rename("x", "xx") is True and s.xpending("xx", "grp")[0] == 0
