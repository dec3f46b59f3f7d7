"""kv_backend.structures.Structures called the way redis-py's ``redis.Redis`` is: the argument forms
of redis-py's methods of the same name work in-process too (and mean the same), next to the
forms the in-process API always took."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from kv_backend.errors import InvalidArgumentError
from kv_backend.structures import CommandError, Structures, WrongTypeError


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


@pytest.mark.parametrize(
    ("call", "added", "expected"),
    [
        (lambda s: s.hset("h", "f", "v"), 1, {b"f": b"v"}),
        (lambda s: s.hset("h", key="f", value=1), 1, {b"f": b"1"}),
        (lambda s: s.hset("h", mapping={"a": 1, "b": "2"}), 2, {b"a": b"1", b"b": b"2"}),
        (lambda s: s.hset("h", items=["a", 1, "b", 2]), 2, {b"a": b"1", b"b": b"2"}),
        (
            lambda s: s.hset("h", "k", "v", mapping={"m": 1}, items=["i", 2]),
            3,
            {b"k": b"v", b"m": b"1", b"i": b"2"},
        ),
        # a field given twice keeps its last value, in redis-py's order: items, key, mapping
        (
            lambda s: s.hset("h", "f", "key", mapping={"f": "mapping"}, items=["f", "items"]),
            1,
            {b"f": b"mapping"},
        ),
        (lambda s: s.hset("h", "f", "key", items=["f", "items"]), 1, {b"f": b"key"}),
        # the in-process forms that were there before
        (lambda s: s.hset("h", {"a": 1}), 1, {b"a": b"1"}),
        (lambda s: s.hset("h", [("a", 1), ("b", 2)]), 2, {b"a": b"1", b"b": b"2"}),
        (lambda s: s.hset("h", {"a": 1}, c=3), 2, {b"a": b"1", b"c": b"3"}),
        (lambda s: s.hset("h", f=1), 1, {b"f": b"1"}),
    ],
)
def test_hset_takes_redis_pys_field_value_mapping_and_items_forms(s, call, added, expected):
    """hset("h", "f", "v") -- redis-py's commonest form -- raised TypeError (hset took only a
    mapping and keyword fields), and items= was unknown. Every redis-py form works, with its
    order for a field given twice; the mapping as second argument still does."""
    assert call(s) == added
    assert s.hgetall("h") == expected


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda s: s.hset("h", "f"), InvalidArgumentError),
        (lambda s: s.hset("h", value="v"), InvalidArgumentError),
        (lambda s: s.hset("h", items=["a", 1, "b"]), CommandError),
        (lambda s: s.hset("h", items="ab"), InvalidArgumentError),
        (lambda s: s.hset("h", items={"a": 1}), InvalidArgumentError),
        (lambda s: s.hset("h"), CommandError),
        (lambda s: s.hset("h", mapping={}), CommandError),
    ],
)
def test_hset_refuses_a_field_without_a_value(s, call, error):
    with pytest.raises(error):
        call(s)
    assert s.exists("h") == 0


def test_incr_and_decr_take_an_amount_and_the_float_increments_default_to_one(s):
    """redis-py's incr(name, amount=1) and decr(name, amount=1) raised TypeError with an amount;
    incrbyfloat(name) and hincrbyfloat(name, field) without one (redis-py adds 1.0)."""
    assert s.incr("n") == 1
    assert s.incr("n", 5) == 6
    assert s.incr("n", amount=-2) == 4
    assert s.decr("n") == 3
    assert s.decr("n", 2) == 1
    assert s.decr("n", amount="-10") == 11
    assert s.get("n") == b"11"
    assert s.incrbyfloat("f") == 1.0
    assert s.incrbyfloat_text("f") == b"2"
    assert s.hincrbyfloat("h", "x") == 1.0
    assert s.hincrbyfloat_text("h", "x") == b"2"
    assert s.hget("h", "x") == b"2"


@pytest.mark.parametrize(
    ("ttl", "call", "result", "after"),
    [
        # (the key's TTL before, the call, its result, the TTL after: None none, 0 key deleted)
        (None, lambda s: s.expire("k", 100, nx=True), True, 100),
        (50, lambda s: s.expire("k", 100, nx=True), False, 50),
        (None, lambda s: s.expire("k", 100, xx=True), False, None),
        (50, lambda s: s.expire("k", 100, xx=True), True, 100),
        (50, lambda s: s.expire("k", 10, gt=True), False, 50),
        (50, lambda s: s.expire("k", 100, gt=True), True, 100),
        (None, lambda s: s.expire("k", 100, gt=True), False, None),  # no expiry: the latest
        (50, lambda s: s.expire("k", 100, lt=True), False, 50),
        (50, lambda s: s.expire("k", 10, lt=True), True, 10),
        (None, lambda s: s.expire("k", 100, lt=True), True, 100),
        (50, lambda s: s.expire("k", 100, xx=True, gt=True), True, 100),
        (50, lambda s: s.expire("k", -1, gt=True), False, 50),
        (50, lambda s: s.expire("k", -1, lt=True), True, 0),  # a time past deletes the key
        (None, lambda s: s.expire("k", 0, nx=True), True, 0),
        (50, lambda s: s.expireat("k", time.time() + 100, gt=True), True, 100),
        (50, lambda s: s.expireat("k", time.time() + 100, lt=True), False, 50),
        (None, lambda s: s.expireat("k", 1, xx=True), False, None),
        (None, lambda s: s.expireat("k", 1, nx=True), True, 0),
        (None, lambda s: s.pexpire("k", 100_000), True, 100),
        (50, lambda s: s.pexpire("k", 100_000, nx=True), False, 50),
        (50, lambda s: s.pexpire("k", 10_000, lt=True), True, 10),
        (None, lambda s: s.pexpireat("k", (time.time() + 100) * 1000), True, 100),
        (50, lambda s: s.pexpireat("k", (time.time() + 10) * 1000, gt=True), False, 50),
        (50, lambda s: s.pexpireat("k", 1000), True, 0),
    ],
)
def test_expire_takes_redis_7s_nx_xx_gt_lt_and_the_millisecond_forms_exist(s, ttl, call, result, after):
    """expire(name, 10, nx=True) raised TypeError (no NX/XX/GT/LT in-process), and pexpire,
    pexpireat were missing. They answer as redis-server 7.0 does (no expiry counts as the
    latest for GT and LT; a time already past deletes the key when the options let it)."""
    s.set("k", "v", ex=ttl)
    assert call(s) is result
    if after == 0:
        assert s.exists("k") == 0
    elif after is None:
        assert s.ttl("k") is None
    else:
        assert after - 1 < s.ttl("k") <= after
    assert s.expire("missing", 10, xx=True) is False and s.pexpire("missing", 10, nx=True) is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"nx": True, "xx": True}, "NX and XX, GT or LT options at the same time are not compatible"),
        ({"nx": True, "gt": True}, "NX and XX, GT or LT options at the same time are not compatible"),
        ({"nx": True, "lt": True}, "NX and XX, GT or LT options at the same time are not compatible"),
        ({"gt": True, "lt": True}, "GT and LT options at the same time are not compatible"),
    ],
)
def test_expire_options_that_exclude_each_other_are_redis_7s_errors(s, options, message):
    s.set("k", "v", ex=50)
    for call in (s.expire, s.pexpire, s.expireat, s.pexpireat):
        with pytest.raises(CommandError, match=message):
            call("k", 10**13, **options)
        with pytest.raises(CommandError, match=message):  # (before the key is looked up, as Redis)
            call("missing", 10**13, **options)
    assert 49 < s.ttl("k") <= 50


def test_pttl_and_pexpiretime_answer_in_milliseconds(s):
    """pttl() and pexpiretime() were missing: as ttl() and expiretime() (None without expiry,
    KeyError for a missing key), in whole milliseconds."""
    s.set("k", "v")
    assert s.pttl("k") is None and s.pexpiretime("k") is None
    assert s.pexpireat("k", 4_102_444_800_123) is True
    assert s.pexpiretime("k") == 4_102_444_800_123
    assert s.expiretime("k") == pytest.approx(4_102_444_800.123)
    s.pexpire("k", 1500)
    assert 1400 < s.pttl("k") <= 1500 and isinstance(s.pttl("k"), int)
    with pytest.raises(KeyError):
        s.pttl("missing")
    with pytest.raises(KeyError):
        s.pexpiretime("missing")


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.pexpire("k", "10"),
        lambda s: s.pexpireat("k", None),
        lambda s: s.expire("k", None, nx=True),
        lambda s: s.expireat("k", "1", xx=True),
    ],
)
def test_a_millisecond_time_or_an_optioned_time_that_is_no_number_is_refused(s, call):
    s.set("k", "v")
    with pytest.raises(InvalidArgumentError):
        call(s)
    assert s.ttl("k") is None


@pytest.mark.parametrize(
    ("call", "result", "ttl_ms"),
    [
        (lambda s: s.set("k", "v", px=1500), True, 1500),
        (lambda s: s.set("k", "v", pxat=(time.time() + 100) * 1000), True, 100_000),
        (lambda s: s.set("k", "v", px=1500, get=True), b"old", 1500),
        (lambda s: s.set("k", "v", px=1500, nx=True), False, 50_000),
        (lambda s: s.getex("k", px=1500), b"old", 1500),
        (lambda s: s.getex("k", pxat=(time.time() + 100) * 1000), b"old", 100_000),
        (lambda s: s.psetex("k", 1500, "v"), True, 1500),
    ],
)
def test_set_and_getex_take_px_and_pxat_and_psetex_exists(s, call, result, ttl_ms):
    """set(..., px=) and set(..., pxat=), getex's px/pxat (redis-py's names for PX and PXAT) raised
    TypeError, and psetex was missing. They set the TTL in milliseconds."""
    s.set("k", "old", ex=50)
    assert call(s) == result
    assert ttl_ms - 1000 < s.pttl("k") <= ttl_ms


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.set("k", "v", px=0), CommandError, "invalid expire time in 'set' command"),
        (lambda s: s.set("k", "v", pxat=0), CommandError, "invalid expire time in 'set' command"),
        (lambda s: s.set("k", "v", ex=1, px=1000), CommandError, "syntax error"),
        (lambda s: s.set("k", "v", px=1000, pxat=10**13), CommandError, "syntax error"),
        (lambda s: s.set("k", "v", exat=10**10, pxat=10**13), CommandError, "syntax error"),
        (lambda s: s.set("k", "v", px=1000, keepttl=True), CommandError, "syntax error"),
        (lambda s: s.getex("k", px=0), CommandError, "invalid expire time in 'getex' command"),
        (lambda s: s.getex("k", px=1000, persist=True), CommandError, "syntax error"),
        (lambda s: s.getex("k", ex=1, pxat=10**13), CommandError, "syntax error"),
        (lambda s: s.psetex("k", 0, "v"), CommandError, "invalid expire time in 'psetex' command"),
        (lambda s: s.setex("k", -1, "v"), CommandError, "invalid expire time in 'setex' command"),
        (lambda s: s.set("k", "v", px="1000"), InvalidArgumentError, "px must be a number of milliseconds"),
        (lambda s: s.psetex("k", None, "v"), InvalidArgumentError, "number of milliseconds"),
    ],
)
def test_millisecond_expiry_options_are_checked_as_redis_does(s, call, error, message):
    s.set("k", "old", ex=50)
    with pytest.raises(error, match=message):
        call(s)
    assert s.get("k") == b"old" and 49 < s.ttl("k") <= 50


def test_set_pxat_in_the_past_stores_the_key_already_expired(s):
    """As SET ... PXAT (and set(exat=) here) does: True, and the key is gone."""
    assert s.set("k", "v", pxat=1000) is True
    assert s.exists("k") == 0 and s.get("k") is None


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda s: s.mget(["a", "b", "none"]), [b"1", b"2", None]),
        (lambda s: s.mget(("a",), "b"), [b"1", b"2"]),
        (lambda s: s.mget("a", "b"), [b"1", b"2"]),
        (lambda s: s.hmget("h", ["f", "g"]), [b"1", None]),
        (lambda s: s.hmget("h", ["g"], "f"), [None, b"1"]),
        (lambda s: s.hmget("nohash", ["f", "g"]), [None, None]),
        (lambda s: s.smismember("s", ["x", "y"]), [True, False]),
        (lambda s: s.smismember("s", ["y"], "x"), [False, True]),
        (lambda s: s.zmscore("z", ["m", "n"]), [1.0, None]),
        (lambda s: s.sinter(["s", "t"]), {b"x"}),
        (lambda s: s.sunion(["s", "t"]), {b"x", b"y"}),
        (lambda s: s.sdiff(["t"], "s"), {b"y"}),
        (lambda s: (s.sinterstore("d", ["s", "t"]), s.smembers("d")), (1, {b"x"})),
        (lambda s: (s.sunionstore("d", ["s", "t"]), s.smembers("d")), (2, {b"x", b"y"})),
        (lambda s: (s.sdiffstore("d", ["t", "s"]), s.smembers("d")), (1, {b"y"})),
    ],
)
def test_names_fields_and_members_may_come_as_a_list_as_redis_py_takes_them(s, call, expected):
    """mget(["a", "b"]) -- redis-py's mget(keys, *args) -- and hmget(name, [fields]),
    smismember(name, [members]), zmscore(name, [members]), sinter/sunion/sdiff([names]) and
    their *store forms raised InvalidArgumentError (a list is no name). A first argument that is
    a list stands for its items, followed by any others, as in redis-py."""
    s.mset({"a": 1, "b": 2})
    s.hset("h", "f", 1)
    s.sadd("s", "x")
    s.sadd("t", "x", "y")
    s.zadd("z", {"m": 1})
    assert call(s) == expected


def test_none_for_a_scan_or_xautoclaim_count_is_redis_default(s):
    """redis-py's scan(count=None), hscan/sscan/zscan(count=None), xautoclaim(count=None) send
    no COUNT; in-process None raised NotAnIntegerError. None is Redis's default count (10 for
    the scans, 100 for XAUTOCLAIM)."""
    s.mset({f"k{i:02}": i for i in range(15)})
    s.hset("h", mapping={f"f{i:02}": i for i in range(15)})
    s.sadd("s", *range(15))
    s.zadd("z", {f"m{i:02}": i for i in range(15)})
    cursor, names = s.scan(0, count=None)
    assert cursor != 0 and names == [b"h"] + [f"k{i:02}".encode() for i in range(9)]
    assert s.scan(0, count=None) == s.scan(0)
    for scan, name in ((s.hscan, "h"), (s.sscan, "s"), (s.zscan, "z")):
        step = scan(name, count=None)
        assert step == scan(name) and len(step[1]) >= 10
    s.xadd("x", {"f": "v"}, id="1-1")
    s.xgroup_create("x", "g", id="0")
    s.xreadgroup("g", "c", {"x": ">"})
    assert s.xautoclaim("x", "g", "c2", 0, count=None)[1] == [(b"1-1", [(b"f", b"v")])]


def test_scan_takes_redis_pys_type_option_name(s):
    """redis-py names SCAN's TYPE option _type (type is a builtin); scan(_type=...) raised TypeError."""
    s.set("a", "1")
    s.hset("h", "f", "v")
    assert s.scan(0, _type="hash") == (0, [b"h"])
    assert s.scan(0, type="string") == (0, [b"a"])
    with pytest.raises(InvalidArgumentError):
        s.scan(0, type="hash", _type="string")


def test_lmove_defaults_to_left_right_and_blmove_brpoplpush_exist(s):
    """redis-py's lmove(src, dst) moves from the head of src to the tail of dst (its defaults);
    in-process both ends were required (TypeError). blmove and brpoplpush were missing."""
    s.rpush("a", "1", "2", "3")
    assert s.lmove("a", "b") == b"1"
    assert s.lmove("a", "b", "RIGHT") == b"3"
    assert s.lrange("b", 0, -1) == [b"1", b"3"]
    assert s.blmove("a", "b", 0.01) == b"2"
    assert s.lrange("b", 0, -1) == [b"1", b"3", b"2"]
    assert s.blmove("b", "a", timeout=0.01, wherefrom="RIGHT", whereto="LEFT") == b"2"
    assert s.brpoplpush("b", "a", 0.01) == b"3"
    assert s.lrange("a", 0, -1) == [b"3", b"2"] and s.lrange("b", 0, -1) == [b"1"]
    started = time.monotonic()
    assert s.blmove("empty", "a", 0.05) is None and s.brpoplpush("empty", "a", 0.05) is None
    assert time.monotonic() - started >= 0.09
    assert s.exists("empty") == 0 and s.llen("a") == 2


def test_blmove_waits_for_a_push_and_checks_its_arguments_first(s, store_path):
    import threading

    def push_later():
        time.sleep(0.05)
        with Structures(store_path) as other:
            other.rpush("src", "x")

    pusher = threading.Thread(target=push_later)
    pusher.start()
    try:
        assert s.blmove("src", "dst", 5, "LEFT", "LEFT") == b"x"
    finally:
        pusher.join()
    assert s.lrange("dst", 0, -1) == [b"x"] and s.exists("src") == 0
    with pytest.raises(CommandError, match="syntax error"):
        s.blmove("src", "dst", 0, "UP")  # (at once: never a wait for ever)
    s.rpush("src", "y")
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.blmove("src", "str", 0)
    assert s.lrange("src", 0, -1) == [b"y"]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        # (results from redis-server 7.0 through redis-py for the same calls)
        (lambda s: s.zrange("z", 2, 3, byscore=True), [b"b", b"c"]),
        (
            lambda s: s.zrange("z", 2, "+inf", byscore=True, withscores=True),
            [(b"b", 2.0), (b"c", 3.0), (b"d", 4.0)],
        ),
        (lambda s: s.zrange("z", 3, 2, byscore=True, desc=True), [b"c", b"b"]),
        (lambda s: s.zrange("z", "-inf", "+inf", byscore=True, offset=1, num=2), [b"b", b"c"]),
        (lambda s: s.zrange("z", "+inf", "-inf", byscore=True, desc=True, offset=1, num=2), [b"c", b"b"]),
        (lambda s: s.zrange("z", "-inf", "+inf", byscore=True, offset=1, num=-1), [b"b", b"c", b"d"]),
        (lambda s: s.zrange("l", "[b", "+", bylex=True), [b"b", b"c", b"d"]),
        (lambda s: s.zrange("l", "+", "[b", bylex=True, desc=True, offset=0, num=2), [b"d", b"c"]),
        (lambda s: s.zrange("z", 0, -1, offset=1, num=-1), [b"a", b"b", b"c", b"d"]),
        (lambda s: s.zrange("z", 0, 1), [b"a", b"b"]),
        (
            lambda s: (s.zrangestore("d", "z", 1, 2), s.zrange("d", 0, -1, withscores=True)),
            (2, [(b"b", 2.0), (b"c", 3.0)]),
        ),
        (
            lambda s: (
                s.zrangestore("d", "z", 3, 1, byscore=True, desc=True, offset=0, num=2),
                s.zrange("d", 0, -1, withscores=True),
            ),
            (2, [(b"b", 2.0), (b"c", 3.0)]),
        ),
        (
            lambda s: (
                s.zrangestore("d", "l", "[b", "[c", bylex=True),
                s.zrange("d", 0, -1, withscores=True),
            ),
            (2, [(b"b", 0.0), (b"c", 0.0)]),
        ),
        (lambda s: (s.zrangestore("d", "z", 10, 20), s.exists("d")), (0, 0)),
        (
            lambda s: (s.zrangestore("d", "z", 0, 1, desc=True), s.zrange("d", 0, -1, withscores=True)),
            (2, [(b"c", 3.0), (b"d", 4.0)]),
        ),
        # the in-process form: the items to store
        (
            lambda s: (s.zrangestore("d", [("x", 5)]), s.zrange("d", 0, -1, withscores=True)),
            (1, [(b"x", 5.0)]),
        ),
    ],
)
def test_zrange_takes_byscore_bylex_offset_num_and_zrangestore_redis_pys_arguments(s, call, expected):
    """zrange(..., byscore=True) / bylex= / offset= / num= (ZRANGE's BYSCORE, BYLEX, LIMIT, in
    redis-py) raised TypeError, and redis-py's zrangestore(dest, name, start, end, ...) too (ours
    took only the items to store). They answer as redis-server does."""
    s.zadd("z", {"a": 1, "b": 2, "c": 3, "d": 4})
    s.zadd("l", {"a": 0, "b": 0, "c": 0, "d": 0})
    s.set("d", "old")
    assert call(s) == expected


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda s: s.zrange("l", "-", "+", bylex=True, withscores=True),
            CommandError,
            "WITHSCORES not supported",
        ),
        (lambda s: s.zrange("z", 0, -1, offset=0, num=1), CommandError, "LIMIT is only supported"),
        (lambda s: s.zrange("z", 0, -1, byscore=True, bylex=True), CommandError, "syntax error"),
        (lambda s: s.zrange("z", 0, -1, byscore=True, offset=1), InvalidArgumentError, "offset and num"),
        (lambda s: s.zrangestore("d", "z", 0, -1, offset=0, num=1), CommandError, "LIMIT is only supported"),
        (lambda s: s.zrangestore("d", "z", 0), InvalidArgumentError, "start and end"),
    ],
)
def test_zrange_options_are_checked_as_redis_does(s, call, error, message):
    s.zadd("z", {"a": 1})
    s.zadd("l", {"a": 0})
    with pytest.raises(error, match=message):
        call(s)
    assert s.exists("d") == 0


def test_zrank_and_zrevrank_take_withscore(s):
    """redis-py's zrank(name, value, withscore=True) (Redis 7.2's WITHSCORE, which kvb serve
    answers) raised TypeError in-process. It returns [rank, score] as redis-py does, or None."""
    s.zadd("z", {"a": 1, "b": 2.5})
    assert s.zrank("z", "b", withscore=True) == [1, 2.5]
    assert s.zrevrank("z", "b", withscore=True) == [0, 2.5]
    assert s.zrank("z", "a", desc=True, withscore=True) == [1, 1.0]
    assert s.zrank("z", "b") == 1 and s.zrevrank("z", "b") == 0
    assert s.zrank("z", "none", withscore=True) is None and s.zrevrank("nokey", "a", withscore=True) is None


@pytest.mark.parametrize(
    ("call", "ttl"),
    [
        (lambda s: s.expire("k", timedelta(seconds=100)), 100),
        (lambda s: s.expire("k", timedelta(minutes=2), gt=True), 120),
        (lambda s: s.pexpire("k", timedelta(seconds=100)), 100),
        (lambda s: s.expireat("k", datetime.now() + timedelta(seconds=100)), 100),
        (lambda s: s.expireat("k", datetime.now(timezone.utc) + timedelta(seconds=100)), 100),
        (lambda s: s.pexpireat("k", datetime.now() + timedelta(seconds=100)), 100),
        (lambda s: s.set("k", "v", ex=timedelta(seconds=100)), 100),
        (lambda s: s.set("k", "v", px=timedelta(seconds=100)), 100),
        (lambda s: s.set("k", "v", exat=datetime.now() + timedelta(seconds=100)), 100),
        (lambda s: s.set("k", "v", pxat=datetime.now() + timedelta(seconds=100)), 100),
        (lambda s: s.setex("k", timedelta(seconds=100), "v"), 100),
        (lambda s: s.psetex("k", timedelta(seconds=100), "v"), 100),
        (lambda s: s.getex("k", ex=timedelta(seconds=100)), 100),
        (lambda s: s.getex("k", px=timedelta(seconds=100)), 100),
        (lambda s: s.getex("k", exat=datetime.now() + timedelta(seconds=100)), 100),
        (lambda s: s.getex("k", pxat=datetime.now() + timedelta(seconds=100)), 100),
    ],
)
def test_expiry_arguments_take_timedelta_and_datetime_as_redis_py_does(s, call, ttl):
    """redis-py takes a timedelta for a time to live (expire, pexpire, set's ex/px, setex, psetex,
    getex) and a datetime for a Unix time (expireat, pexpireat, exat, pxat); in-process they
    raised InvalidArgumentError ("must be a number of seconds")."""
    s.set("k", "v", ex=50)
    assert call(s)
    assert ttl - 1 < s.ttl("k") <= ttl


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.expire("k", datetime.now()),  # (a Unix time where a time to live goes)
        lambda s: s.expireat("k", timedelta(seconds=10)),
        lambda s: s.set("k", "v", ex=datetime.now()),
        lambda s: s.set("k", "v", pxat=timedelta(seconds=10)),
    ],
)
def test_a_datetime_for_a_time_to_live_or_a_timedelta_for_a_unix_time_is_refused(s, call):
    s.set("k", "v", ex=50)
    with pytest.raises(InvalidArgumentError):
        call(s)
    assert 49 < s.ttl("k") <= 50


def test_the_scan_iterators_renamenx_hmset_and_substr_exist(s):
    """redis-py's scan_iter, hscan_iter, sscan_iter, zscan_iter, renamenx, hmset and substr
    were missing in-process (AttributeError); kvb serve has RENAMENX, HMSET and SUBSTR."""
    s.mset({f"k{i:02}": i for i in range(25)})
    s.hset("h", mapping={f"f{i:02}": i for i in range(25)})
    s.sadd("s", *(f"m{i:02}" for i in range(25)))
    s.zadd("z", {f"m{i:03}": i for i in range(200)})
    keys = [f"k{i:02}".encode() for i in range(25)]
    assert sorted(s.scan_iter()) == sorted([*keys, b"h", b"s", b"z"])
    assert list(s.scan_iter(match="k1*", count=3)) == keys[10:20]
    assert list(s.scan_iter(_type="hash")) == [b"h"]
    assert dict(s.hscan_iter("h", count=4)) == {f"f{i:02}".encode(): str(i).encode() for i in range(25)}
    assert list(s.hscan_iter("h", match="f2*")) == [(f"f2{i}".encode(), f"2{i}".encode()) for i in range(5)]
    assert sorted(s.sscan_iter("s", count=4)) == [f"m{i:02}".encode() for i in range(25)]
    assert sorted(s.zscan_iter("z", count=7)) == [(f"m{i:03}".encode(), float(i)) for i in range(200)]
    assert list(s.zscan_iter("missing")) == [] and list(s.hscan_iter("missing")) == []
    assert s.renamenx("k00", "k01") is False and s.get("k00") == b"0"
    assert s.renamenx("k00", "new") is True and s.get("new") == b"0" and s.exists("k00") == 0
    assert s.hmset("h2", {"a": 1, "b": 2}) is True and s.hgetall("h2") == {b"a": b"1", b"b": b"2"}
    s.set("str", "Hello World")
    assert s.substr("str", 6) == b"World" and s.substr("str", 0, 4) == b"Hello"


def test_sort_takes_redis_pys_start_num_and_groups_and_sort_ro_exists(s):
    """redis-py's sort(name, start=, num=, groups=) (LIMIT by its names, GET values grouped per
    element) raised TypeError in-process, and sort_ro was missing."""
    s.rpush("l", 3, 1, 2)
    s.mset({"w_1": "a", "w_2": "b", "w_3": "c"})
    assert s.sort("l", start=1, num=2) == [b"2", b"3"]
    assert s.sort("l", get=["#", "w_*"], groups=True) == [(b"1", b"a"), (b"2", b"b"), (b"3", b"c")]
    assert s.sort("l", get=["#", "w_*"], groups=True, start=0, num=1, desc=True) == [(b"3", b"c")]
    assert s.sort("l", get=["#", "w_*"], groups=True, store="d") == 6 and s.lrange("d", 0, -1) == [
        b"1",
        b"a",
        b"2",
        b"b",
        b"3",
        b"c",
    ]
    assert s.sort_ro("l") == [b"1", b"2", b"3"]
    assert s.sort_ro("l", 0, 2, desc=True) == [b"3", b"2"]
    assert s.sort_ro("l", by="nosort", get="w_*") == [b"c", b"a", b"b"]
    for call in (
        lambda: s.sort("l", start=1),
        lambda: s.sort("l", num=1),
        lambda: s.sort("l", start=0, num=1, count=2),
        lambda: s.sort("l", get="#", groups=True),
        lambda: s.sort("l", get=["#"], groups=True),
        lambda: s.sort("l", groups=True),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


def test_redis_pys_keyword_names_srandmember_number_xpending_range_consumername_and_more(s):
    """Keywords a redis-py user writes raised TypeError: srandmember(name, number=2),
    xpending_range(..., consumername="c"), xautoclaim(..., start_id="0-0") and
    flushdb(asynchronous=True). Each means what redis-py means by it."""
    s.sadd("s", "a", "b", "c")
    assert sorted(s.srandmember("s", number=3)) == [b"a", b"b", b"c"]
    assert len(s.srandmember("s", number=-5)) == 5
    s.xadd("x", {"f": "v"}, id="1-1")
    s.xadd("x", {"f": "w"}, id="2-1")
    s.xgroup_create("x", "g", id="0")
    s.xreadgroup("g", "c1", {"x": ">"}, count=1)
    s.xreadgroup("g", "c2", {"x": ">"}, count=1)
    assert [e[:2] for e in s.xpending_range("x", "g", "-", "+", 10, consumername="c2")] == [(b"2-1", b"c2")]
    assert s.xautoclaim("x", "g", "c3", 0, start_id="2-0", justid=True)[1] == [b"2-1"]
    s.flushdb(asynchronous=True)
    assert s.dbsize() == 0
    for call in (
        lambda: s.srandmember("s", 1, number=2),
        lambda: s.xpending_range("x", "g", "-", "+", 10, "c1", consumername="c2"),
        lambda: s.xautoclaim("x", "g", "c3", 0, "1-0", start_id="2-0"),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


def test_decrementing_by_the_lowest_64_bit_integer_is_redis_overflow_error(s):
    """decrby(name, -2**63) (and decr with that amount) raised NotAnIntegerError ("value is not
    an integer or out of range"), where Redis (and kvb serve) answer "decrement would overflow"."""
    for call in (
        lambda: s.decrby("d", -(2**63)),
        lambda: s.decr("d", -(2**63)),
        lambda: s.decr("d", b"-9223372036854775808"),
    ):
        with pytest.raises(CommandError, match=r"^ERR decrement would overflow$"):
            call()
    assert s.exists("d") == 0
    assert s.decrby("d", -(2**63) + 1) == 2**63 - 1


def test_xadd_and_xclaim_options_may_be_given_in_redis_pys_positional_order(s):
    """xadd's maxlen/approximate/nomkstream/minid/limit and xclaim's idle/time/retrycount/force/
    justid were keyword-only: redis-py's xadd(name, fields, "*", 1000) raised TypeError. They
    may come positionally, in redis-py's order."""
    for i in range(1, 5):
        s.xadd("x", {"f": i}, f"{i}-0")
    assert s.xadd("x", {"f": 5}, "5-0", 2) == b"5-0"  # maxlen 2 (exactly, approximate or not)
    assert [e[0] for e in s.xrange("x")] == [b"4-0", b"5-0"]
    assert s.xadd("nostream", {"f": 1}, "*", None, True, True) is None and s.exists("nostream") == 0
    assert s.xadd("x", {"f": 6}, "6-0", None, False, False, "5-0") == b"6-0"  # minid 5-0
    assert [e[0] for e in s.xrange("x")] == [b"5-0", b"6-0"]
    s.xgroup_create("x", "g", id="0")
    s.xreadgroup("g", "c1", {"x": ">"})
    # idle=0, time=None, retrycount=7, force=False, justid=True
    assert s.xclaim("x", "g", "c2", 0, ["5-0"], 0, None, 7, False, True) == [b"5-0"]
    assert s.xpending_range("x", "g", "5-0", "5-0", 1)[0][1::2] == (b"c2", 7)


@pytest.mark.parametrize("command", ["lpush", "rpush", "lpushx", "rpushx"])
def test_a_push_of_no_values_names_its_command_in_redis_error(s, command):
    """lpush("l") raised "wrong number of arguments for 'push' command"; Redis names the command."""
    with pytest.raises(CommandError, match=f"^ERR wrong number of arguments for '{command}' command$"):
        getattr(s, command)("l")
    assert s.exists("l") == 0


def test_bitfield_ro_takes_redis_pys_encoding_offset_items_form(s):
    """redis-py's bitfield_ro(key, encoding, offset, items=[(encoding, offset)]) raised a syntax
    error ("u8" is no subcommand) or TypeError (items); it GETs each field as redis-server
    answers it. The form with BITFIELD's words still works."""
    s.set("k", b"\xff\x0f")
    assert s.bitfield_ro("k", "u8", 0) == [255]
    assert s.bitfield_ro("k", "u8", 0, items=[("u4", 8), ("i4", 12)]) == [255, 0, -1]
    assert s.bitfield_ro("k", "GET", "u8", 0, "GET", "i4", 12) == [255, -1]
    with pytest.raises(InvalidArgumentError):
        s.bitfield_ro("k", "GET", "u8", 0, items=[("u4", 8)])
    with pytest.raises(InvalidArgumentError):
        s.bitfield_ro("k", "u8", 0, items=["u4"])


def test_restore_takes_idletime_and_frequency_checked_as_redis_does(s):
    """redis-py's restore(..., idletime=, frequency=) raised TypeError in-process; kvb serve's
    RESTORE takes IDLETIME/FREQ (checked, then ignored: no access times are kept)."""
    s.set("k", "v")
    payload = s.dump("k")
    assert s.restore("a", 0, payload, idletime=10) is True and s.get("a") == b"v"
    assert s.restore("b", 0, payload, frequency=255) is True and s.get("b") == b"v"
    for kwargs, message in (
        ({"idletime": -1}, "Invalid IDLETIME value"),
        ({"frequency": 256}, "Invalid FREQ value"),
        ({"idletime": 1, "frequency": 1}, "syntax error"),
    ):
        with pytest.raises(CommandError, match=message):
            s.restore("k", 0, payload, **kwargs)  # (before BUSYKEY, as in Redis)
    assert s.exists("c") == 0


def test_copy_takes_redis_pys_destination_db_which_can_only_be_0(s):
    """copy(..., destination_db=0) raised TypeError; kvb serve's COPY takes DB 0 (its only one)
    and answers another "DB index is out of range", as Redis run with one database."""
    s.set("a", "1")
    assert s.copy("a", "b", destination_db=0) is True and s.get("b") == b"1"
    assert s.copy("a", "b", replace=True, destination_db="0") is True
    with pytest.raises(CommandError, match="DB index is out of range"):
        s.copy("a", "c", destination_db=1)
    assert s.exists("c") == 0


def test_xreadgroup_takes_block_fifth_as_redis_py_does(tmp_path):
    """redis-py's xreadgroup(group, consumer, streams, count, block, noack): a fifth positional
    argument is ``block``. It was ``noack`` here, so a redis-py call with a block time read with
    NOACK, silently: its entries were never pending, so never redelivered after a crash."""
    with Structures(str(tmp_path / "kv5")) as s:
        s.xadd("x", {"f": "v"}, id="1-1")
        s.xgroup_create("x", "g", id="0")
        got = s.xreadgroup("g", "c", {"x": ">"}, 10, 100)  # count 10, block 100 ms
        assert got == [(b"x", [(b"1-1", [(b"f", b"v")])])]
        assert s.xpending("x", "g")[0] == 1  # delivered, and pending: no NOACK
        with pytest.raises(InvalidArgumentError):  # an old positional noack: refused, not a block time
            s.xreadgroup("g", "c", {"x": ">"}, None, True)
