"""kv_backend.structures: Redis data types on the engine, used in-process and by several processes."""

from __future__ import annotations

import math
import os
import random
import struct
import subprocess
import time

import pytest
from helpers import spawn_python
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from zygote import Zygote

from kv_backend import DB
from kv_backend.errors import DatabaseClosedError, KeyTooLargeError, KVError, NotAnIntegerError
from kv_backend.structures import (
    CommandError,
    NotAFloatError,
    Structures,
    WrongTypeError,
    decode_score,
    encode_score,
    format_float,
    glob_match,
    parse_cursor,
    parse_int,
)
from kv_backend.structures.layout import HASH, LIST, META, ZIDX
from kv_backend.structures.parsing import CursorTable


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


# -------------------------------------------------------------- encodings


@given(st.lists(st.floats(allow_nan=False), min_size=2, max_size=30))
def test_score_encoding_sorts_like_numbers(scores):
    encoded = sorted(encode_score(x) for x in scores)
    assert [decode_score(e) for e in encoded] == sorted(0.0 if x == 0 else x for x in scores)
    for x in scores:
        assert decode_score(encode_score(x)) == x


def test_format_float_matches_redis_spelling():
    assert format_float(3.0) == b"3"
    assert format_float(-0.5) == b"-0.5"
    assert format_float(math.inf) == b"inf" and format_float(-math.inf) == b"-inf"
    assert format_float(math.nan) == b"nan"  # a reply holding one is encodable (was a ValueError)
    assert format_float(0.1 + 0.2) == b"0.30000000000000004"
    assert format_float(1e-20) == b"1e-20"


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        (b"*", b"anything", True),
        (b"h?llo", b"hello", True),
        (b"h?llo", b"hllo", False),
        (b"h*llo", b"heeeello", True),
        (b"h[ae]llo", b"hallo", True),
        (b"h[ae]llo", b"hillo", False),
        (b"h[^e]llo", b"hallo", True),
        (b"h[^e]llo", b"hello", False),
        (b"h[a-b]llo", b"hbllo", True),
        (b"h\\*llo", b"h*llo", True),
        (b"h\\*llo", b"hello", False),
        (b"a.b", b"axb", False),
        (b"user:*:name", b"user:42:name", True),
    ],
)
def test_glob_match(pattern, name, expected):
    assert glob_match(pattern, name) is expected


# -------------------------------------------------------------- each type


def test_writes_that_keep_a_ttl_keep_it_exactly(s):
    """A key written many times under one TTL (a rate-limit counter, a queue) expires when it was told to."""
    db = s.db
    s.set("c", 0, ex=100)
    s.rpush("l", "a")
    s.hset("h", mapping={"f": 1})
    s.sadd("set", "a")
    s.zadd("z", {"a": 1})
    s.set("str", "x")
    s.set("fl", "1.5")
    for name in ("l", "h", "set", "z", "str", "fl"):
        assert s.expire(name, 100)
    names = ("c", "l", "h", "set", "z", "str", "fl")
    before = {name: db.get_with_expiry(META + name.encode())[1] for name in names}
    for i in range(300):
        s.incr("c")
        s.rpush("l", i)
        s.lpush("l", i)
        s.hset("h", mapping={f"f{i}": i})
        s.sadd("set", i)
        s.zadd("z", {f"m{i}": i})
        s.append("str", "y")
        s.incrbyfloat("fl", 0.5)
        s.set("str", "x" * (i + 2), keepttl=True)
    after = {name: db.get_with_expiry(META + name.encode())[1] for name in before}
    assert after == before
    s.rename("c", "c2")
    assert db.get_with_expiry(META + b"c2")[1] == before["c"]


def test_incrbyfloat_adds_as_redis_does(s):
    """Long-double arithmetic stored with at most 17 decimals: the texts Redis itself stores."""
    assert s.incrbyfloat("f", "0.1") == 0.1 and s.incrbyfloat("f", 0.2) == 0.3 and s.get("f") == b"0.3"
    assert s.incrbyfloat_text("tiny", "5e-20") == b"0"
    s.set("big", 9223372036854775807)
    assert s.incrbyfloat_text("big", 1) == b"9223372036854775808"
    assert s.incrbyfloat_text("huge", "1e500").startswith(b"99999999999999999997532712669662876")
    assert s.hincrbyfloat_text("h", "x", "1.1") == b"1.1" and s.hincrbyfloat_text("h", "x", -1) == b"0.1"
    with pytest.raises(NotAFloatError):
        s.incrbyfloat("f", " 1")
    with pytest.raises(CommandError, match="NaN or Infinity"):
        s.incrbyfloat("f", "inf")
    with pytest.raises(CommandError, match="NaN or Infinity"):
        s.hincrbyfloat("h", "x", "-inf")
    s.hset("h", mapping={"n": "abc"})
    with pytest.raises(NotAFloatError, match="hash value is not a float"):
        s.hincrbyfloat("h", "n", 1)
    with pytest.raises(NotAnIntegerError, match="hash value is not an integer"):
        s.hincrby("h", "n", 1)
    assert s.get("f") == b"0.3" and s.hget("h", "n") == b"abc"


def test_incrbyfloat_never_builds_huge_numbers(s):
    """An exponent far out of a long double's range is an infinity or a zero at once (no 10**1e9)."""
    start = time.monotonic()
    for out_of_range in ("1e999999999", "-1e5000", "1e-999999999999", "1e-4960"):
        with pytest.raises(NotAFloatError):  # strtold's ERANGE, refused by Redis too
            s.incrbyfloat("f", out_of_range)
    assert s.incrbyfloat_text("f", "0e999999999") == b"0" and s.incrbyfloat_text("f", "3.6e-4951") == b"0"
    assert s.incrbyfloat_text("g", "1e4500").startswith(b"99999999999999999999559")  # just under 10**4500
    assert len(s.get("g")) == 4500
    assert s.incrbyfloat_text("h", "1" * 4500).startswith(b"111111111111111111110")
    assert time.monotonic() - start < 5


def test_absolute_expiry_and_getrange_edges(s):
    at = time.time() + 1000.25
    s.set("k", "value", exat=at)
    assert s.expiretime("k") == at
    assert s.expireat("k", at + 5) and s.expiretime("k") == at + 5
    assert s.expireat("k", time.time() - 1) and s.exists("k") == 0  # a past time deletes
    with pytest.raises(KeyError):
        s.expiretime("k")
    s.set("v", "v")
    assert s.expiretime("v") is None
    assert s.getrange("v", 0, -100) == b"v" and s.getrange("v", -1, -5) == b""
    assert s.zadd("z", [("m", 0), ("m", 1)], ch=True) == 2 and s.zscore("z", "m") == 1.0
    with pytest.raises(NotAFloatError):
        s.zadd("z", {"m": "1e500"})


def test_strings_and_ttl(s):
    assert s.set("k", "v") is True and s.get("k") == b"v" and s.get(b"k") == b"v"
    assert s.set("k", "w", nx=True) is False and s.set("k", "w", xx=True, get=True) == b"v"
    assert s.set("n", 5) and s.incr("n") == 6 and s.decrby("n", 10) == -4 and s.get("n") == b"-4"
    assert s.incrbyfloat("f", "2.5") == 2.5 and s.get("f") == b"2.5"
    assert s.set("t", "x", ex=100) and 99 < s.ttl("t") <= 100
    assert s.incr("t2") == 1 and s.expire("t2", 100) and s.incr("t2") == 2 and s.ttl("t2") > 99
    assert s.append("t", "y") == 2 and s.ttl("t") > 99  # APPEND keeps the TTL
    assert s.set("t", "z", keepttl=True) and s.ttl("t") > 99
    assert s.set("t", "z") and s.ttl("t") is None
    s.set("gone", "x", ex=0.05)
    time.sleep(0.1)
    assert s.get("gone") is None and s.exists("gone") == 0
    with pytest.raises(KeyError):
        s.ttl("gone")
    with pytest.raises(NotAnIntegerError):
        s.incr("k")
    with pytest.raises(NotAFloatError):
        s.incrbyfloat("k", 1)
    s.set("big", str(2**63 - 1))
    with pytest.raises(CommandError, match="overflow"):
        s.incr("big")
    assert s.mset({"a": 1, "b": 2}) and s.mget("a", "b", "c") == [b"1", b"2", None]
    assert s.msetnx({"a": 3, "z": 4}) is False and s.get("z") is None
    assert s.getdel("a") == b"1" and s.get("a") is None
    assert s.getrange("k", 0, -1) == b"w" and s.strlen("k") == 1


def test_hash(s):
    assert s.hset("h", {"a": 1, "b": 2}) == 2 and s.hset("h", {"a": 3, "c": 4}) == 1
    assert s.hgetall("h") == {b"a": b"3", b"b": b"2", b"c": b"4"} and s.hlen("h") == 3
    assert s.hmget("h", "a", "zz") == [b"3", None]
    assert s.hdel("h", "a", "zz") == 1 and s.hlen("h") == 2
    assert s.hincrby("h", "n", 7) == 7 and s.hincrbyfloat("h", "x", 0.25) == 0.25
    assert s.hsetnx("h", "n", 1) is False and s.hget("h", "n") == b"7"
    assert s.hdel("h", "b", "c", "n", "x") == 4 and s.exists("h") == 0
    assert list(s.db.keys(prefix=HASH)) == []


def test_list(s):
    assert s.rpush("l", "b", "c") == 2 and s.lpush("l", "a", "z") == 4
    assert s.lrange("l", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert s.lrange("l", -2, 100) == [b"b", b"c"] and s.lrange("l", 3, 1) == []
    assert s.lindex("l", 0) == b"z" and s.lindex("l", -4) == b"z" and s.lindex("l", 4) is None
    assert s.linsert("l", "BEFORE", "b", "x") == 5 and s.lrange("l", 0, -1) == [b"z", b"a", b"x", b"b", b"c"]
    assert s.linsert("l", "AFTER", "nope", "x") == -1
    assert s.lpop("l") == b"z" and s.rpop("l", 2) == [b"c", b"b"]
    assert s.rpoplpush("l", "l2") == b"x" and s.lrange("l2", 0, -1) == [b"x"]
    assert s.ltrim("l", 5, 10) and s.exists("l") == 0
    assert list(s.db.keys(prefix=LIST + struct.pack(">I", 1) + b"l")) == []
    with pytest.raises(CommandError):
        s.lset("l2", 3, "x")


def test_ltrim_past_the_end_deletes_only_the_elements(s):
    # a start far past the end must not write a delete for every index up to it
    s.rpush("l", "a", "b", "c")
    before = s.db.stats()["active_end"]
    assert s.ltrim("l", 1_000_000, 1_000_001) and s.exists("l") == 0
    assert s.db.stats()["active_end"] - before < 1000
    s.rpush("l", "a", "b", "c")
    assert s.ltrim("l", 2**63 - 1, -(2**63)) and s.exists("l") == 0
    s.rpush("l", "a", "b", "c")
    assert s.ltrim("l", 1, 2**63 - 1) and s.lrange("l", 0, -1) == [b"b", b"c"]
    assert len(list(s.db.keys(prefix=LIST))) == 2


def test_set_and_zset(s):
    assert s.sadd("s", 1, 2, 2, 3) == 3 and s.smembers("s") == {b"1", b"2", b"3"}
    assert s.spop("s") in {b"1", b"2", b"3"} and s.scard("s") == 2
    assert s.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert s.zadd("z", {"a": 5}, incr=True) == 6.0 and s.zadd("z", {"a": 1}, lt=True, ch=True) == 1
    assert s.zadd("z", {"q": 1}, xx=True) == 0 and s.zadd("z", {"a": 9}, nx=True) == 0
    assert s.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.0), (b"c", 3.0)]
    assert s.zrangebyscore("z", "(1", 3, start=1, num=1) == [b"c"]
    assert s.zrevrangebyscore("z", "+inf", "-inf", withscores=True)[0] == (b"c", 3.0)
    assert s.zremrangebyrank("z", 0, 0) == 1 and s.zcard("z") == 2
    assert s.zrem("z", "b", "c") == 2 and s.exists("z") == 0
    assert list(s.db.keys(prefix=ZIDX)) == []
    with pytest.raises(CommandError):
        s.zadd("z", {"a": 1}, nx=True, xx=True)


def test_wrongtype_for_every_type(s):
    s.set("str", "x")
    s.hset("hash", {"f": 1})
    s.rpush("list", 1)
    s.sadd("set", 1)
    s.zadd("zset", {"m": 1})
    calls = {
        "str": lambda n: s.hget(n, "f"),
        "hash": lambda n: s.get(n),
        "list": lambda n: s.sadd(n, 1),
        "set": lambda n: s.zadd(n, {"x": 1}),
        "zset": lambda n: s.lpush(n, 1),
    }
    for name, call in calls.items():
        with pytest.raises(WrongTypeError, match="WRONGTYPE"):
            call(name)
    assert [s.type(n) for n in calls] == ["string", "hash", "list", "set", "zset"]


def test_expired_collections_leave_no_trace(s):
    s.hset("h", {"old1": 1, "old2": 2})
    s.zadd("z", {"old": 1})
    s.rpush("l", "old")
    for name in ("h", "z", "l"):
        assert s.expire(name, 0.05)
    time.sleep(0.1)
    assert s.hgetall("h") == {} and s.zrange("z", 0, -1) == [] and s.llen("l") == 0
    # a new key of the same name starts empty
    s.hset("h", {"new": 1})
    assert s.hgetall("h") == {b"new": b"1"} and s.hlen("h") == 1
    # the orphans of the others are removed by vacuum
    assert s.vacuum() == 3
    assert s.dbsize() == 1


def test_set_over_a_collection_replaces_it(s):
    s.hset("k", {"a": 1})
    s.set("k", "plain")
    assert s.get("k") == b"plain" and list(s.db.keys(prefix=HASH)) == []
    s.delete("k")
    s.hset("k", {"b": 2})
    assert s.hgetall("k") == {b"b": b"2"}


def test_set_reads_the_type_tag_of_what_it_replaces(s, store_path):
    """SET peeks at the old value's type tag without reading it whole; every case still comes out right."""
    db = s.db
    assert db._peek_value(META + b"nothing") is None
    s.set("str", "x" * 5000)
    assert db._peek_value(META + b"str") == b"s"
    s.set("str", "y")
    assert s.get("str") == b"y"
    s.rpush("lst", "a", "b")
    s.set("lst", "now a string")
    assert s.get("lst") == b"now a string" and list(db.keys(prefix=LIST)) == []
    s.set("short", "v", ex=0.05)
    time.sleep(0.1)
    assert db._peek_value(META + b"short") is None  # expired: treated as absent
    s.set("short", "again")
    assert s.get("short") == b"again" and s.ttl("short") is None
    db.put(b"empty", b"")
    assert db._peek_value(b"empty") is None
    # Another handle on the same store sees the type change at once.
    with Structures(store_path) as other:
        assert other.get("lst") == b"now a string"
        with pytest.raises(WrongTypeError):
            other.hget("str", "f")


def test_rename_moves_members_and_ttl(s):
    s.zadd("src", {"a": 1, "b": 2})
    s.expire("src", 100)
    s.hset("dst", {"x": 1})
    assert s.rename("src", "dst")
    assert s.type("dst") == "zset" and s.zrange("dst", 0, -1) == [b"a", b"b"] and s.ttl("dst") > 99
    assert s.exists("src") == 0 and list(s.db.keys(prefix=HASH)) == []
    s.set("other", 1)
    assert s.rename("dst", "other", nx=True) is False
    with pytest.raises(KeyError):
        s.rename("missing", "x")


def test_scan_cursors_with_long_names(s):
    names = {f"n{i}".encode() * (i * 50 + 1) for i in range(30)}
    for n in names:
        s.set(n, 1)
    seen = set()
    cursor = 0
    while True:
        cursor, batch = s.scan(cursor, count=4)
        seen.update(batch)
        if cursor == 0:
            break
    assert seen == names
    with pytest.raises(CommandError):
        s.scan("not-a-cursor")


def _scan_all(step, count: int) -> tuple[list, list[int]]:
    """Run a scan to its end: ``(everything returned, every cursor handed out)``."""
    cursor, seen, cursors = 0, [], []
    while True:
        cursor, batch = step(cursor, count)
        seen += batch
        if cursor == 0:
            return seen, cursors
        cursors.append(cursor)


INVALID_CURSOR = r"^ERR invalid cursor$"
LONG_NAMES = [b"", b"a", b"abcdef", b"abcdefg", b"x" * 100, b"\xff" * 1025, b"\x00" * 60_000, b"n" * 65_000]


def test_scan_cursors_fit_in_53_bits_for_every_scan_command(s):
    """Cursors stay below 2**53, which a JavaScript number (node-redis), a Java long and go-redis's
    uint64 all hold: kvb handed out cursors of up to ~2,500 digits (the name itself) for names of up
    to 1,024 bytes, which go-redis refused ("value out of range") and node-redis rounded."""
    for n in LONG_NAMES:
        s.set(n, 1)
    s.hset("h", {n: 1 for n in LONG_NAMES})
    s.sadd("st", *LONG_NAMES)
    s.zadd("z", {n: i for i, n in enumerate(LONG_NAMES)})
    steps = [
        (lambda c, k: s.scan(c, count=k), {*LONG_NAMES, b"h", b"st", b"z"}),
        (lambda c, k: (lambda r: (r[0], list(r[1])))(s.hscan("h", c, count=k)), set(LONG_NAMES)),
        (lambda c, k: s.sscan("st", c, count=k), set(LONG_NAMES)),
        (lambda c, k: (lambda r: (r[0], [m for m, _ in r[1]]))(s.zscan("z", c, count=k)), set(LONG_NAMES)),
    ]
    for step, want in steps:
        for count in (1, 2, 3):
            seen, cursors = _scan_all(step, count)
            assert set(seen) == want and len(seen) == len(want)
            assert cursors and all(0 < c < 2**53 for c in cursors), cursors
    assert len(s._cursors) > 0 and s._cursors.nbytes > 60_000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.sets(st.sampled_from(range(40)), max_size=25),
    changes=st.lists(st.tuples(st.booleans(), st.sampled_from(range(40))), max_size=30),
    count=st.integers(1, 4),
)
def test_scan_returns_everything_present_throughout_despite_changes(s, initial, changes, count):
    """Redis's SCAN guarantee with long names (token cursors) and short ones (direct cursors): names
    added or deleted between steps may or may not be seen, every name present for the whole scan is."""
    s.flushdb()

    def name(i: int) -> bytes:
        return b"k%02d" % i if i % 2 else b"key:%02d:" % i + b"-" * (i * 40)

    for i in initial:
        s.set(name(i), 1)
        s.hset("h", {name(i): 1})
    present = {name(i) for i in initial}  # names present from the start and never deleted
    cursor = hcursor = 0
    seen, hseen = set(), set()
    done = hdone = False
    while not (done and hdone):
        if not done:
            cursor, batch = s.scan(cursor, count=count)
            seen.update(batch)
            done = cursor == 0
        if not hdone:
            hcursor, items = s.hscan("h", hcursor, count=count)
            hseen.update(items)
            hdone = hcursor == 0
        if changes:
            add, i = changes.pop()
            if add:
                s.set(name(i), 1)
                s.hset("h", {name(i): 1})
            else:
                s.delete(name(i))
                s.hdel("h", name(i))
                present.discard(name(i))
        assert cursor < 2**53 and hcursor < 2**53
    assert present <= seen and present <= hseen


def test_scan_cursor_can_be_sent_again(s):
    """A client may resend a cursor (say after a timeout): the step is answered again."""
    names = [b"name:%03d" % i for i in range(10)]
    for n in names:
        s.set(n, 1)
    cursor, _ = s.scan(0, count=3)
    again = s.scan(cursor, count=3)
    assert again == (again[0], names[3:6]) and s.scan(cursor, count=3)[1] == names[3:6]
    assert s.scan(str(cursor).encode(), count=100) == (0, names[3:])


def test_scan_cursor_table_evicts_by_entries_and_bytes(s):
    """The token table is bounded in tokens and in bytes of names; an evicted or unknown cursor is
    ERR invalid cursor (starting over would return names again without end), a direct one
    (names of up to 6 bytes) never expires."""
    table = s._cursors = CursorTable(max_entries=20, max_bytes=10_000)
    for i in range(30):
        s.set(b"long-name-%02d" % i, 1)
    s.set(b"short", 1)
    s.hset("zhash", {"f": 1})
    tokens = [s.scan(0, count=1)[0]] + [s.scan(0, count=n)[0] for n in range(2, 30)]
    assert len(table) == 20 and all(2**49 <= t < 2**53 for t in tokens)
    for t in tokens[:9]:  # the oldest went
        with pytest.raises(CommandError, match=INVALID_CURSOR):
            s.scan(t)
    assert s.scan(tokens[9], count=1)[1] == [b"long-name-10"]
    for unknown in (2**50, 2**53 - 1, 2**53, 2, 255, 2**63, 2**64 - 1):
        with pytest.raises(CommandError, match=INVALID_CURSOR):
            s.scan(unknown)
        with pytest.raises(CommandError, match=INVALID_CURSOR):
            s.hscan("zhash", unknown)
        assert s.hscan("no-such-hash", unknown) == (0, {})  # as Redis: a missing key's scan is empty
    assert s.scan(int.from_bytes(b"\x01short", "big")) == (0, [b"zhash"])  # direct: needs no entry
    # By bytes: three 4,000-byte names fill the 10,000 bytes; a fourth pushes the oldest out.
    table = s._cursors = CursorTable(max_entries=20, max_bytes=10_000)
    s.flushdb()
    for i in range(5):
        s.set(b"%d" % i * 4000, 1)
    big = [s.scan(0, count=n)[0] for n in range(1, 5)]
    assert len(table) == 2 and table.nbytes == 8000
    for t in big[:2]:
        with pytest.raises(CommandError, match=INVALID_CURSOR):
            s.scan(t)
    assert s.scan(big[2], count=10) == (0, [b"3" * 4000, b"4" * 4000])


def test_scan_cursor_table_evicts_used_tokens_first():
    """A long scan's spent tokens go before a token another client has not used yet, while the
    spent ones hold more than a tenth of the table (the rest stay for a resent cursor)."""
    table = CursorTable(max_entries=20, max_bytes=1 << 20)
    waiting = table.add(b"slow client's position")
    token = spent = table.add(b"scanner-0")
    for i in range(1, 100):
        assert table.get(token) == b"scanner-%d" % (i - 1)
        spent, token = token, table.add(b"scanner-%d" % i)
    assert table.get(waiting) == b"slow client's position" and len(table) <= 20
    fresh = [table.add(b"abandoned-%d" % i) for i in range(40)]  # unused tokens only
    assert table.get(fresh[-1]) == b"abandoned-39" and table.get(fresh[0]) is None
    assert table.get(spent) == b"scanner-98"  # the latest spent ones are kept for retries


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"0", 0),
        (b"", 0),
        (b"-0", 0),
        (b"+0", 0),
        (b"000", 0),
        (b"+12", 12),
        (b"0012", 12),
        (b"18446744073709551615", 2**64 - 1),
        (b"-1", 2**64 - 1),
        (b"-18446744073709551615", 1),
        (b"7\x00junk", 7),
        (b"\x00", 0),
        ("42", 42),
        (42, 42),
    ],
)
def test_parse_cursor_reads_what_redis_reads(text, value):
    assert parse_cursor(text) == value


BAD_CURSORS = [b"x", b" 1", b"1 ", b"\t1", b"1\n", b"+", b"-", b"+-1", b"1_0", b"1.5", b"0x10", b"1e3"]
BAD_CURSORS += [b"18446744073709551616", b"-18446744073709551616", b"9" * 5000, "\u0661", -1, 2**64]


@pytest.mark.parametrize("text", BAD_CURSORS)
def test_parse_cursor_refuses_what_redis_refuses(text):
    with pytest.raises(CommandError, match=INVALID_CURSOR):
        parse_cursor(text)


def test_flushdb_leaves_other_engine_keys(s):
    s.db.put(b"plain-engine-key", b"x")
    s.set("a", 1)
    s.sadd("b", 1)
    s.flushdb()
    assert s.dbsize() == 0 and list(s.db.keys()) == [b"plain-engine-key"]


# -------------------------------------------------------------- bad input


def test_bad_input(store_path, tmp_path):
    with Structures(store_path) as s:
        with pytest.raises(TypeError):
            s.set(None, "x")  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            s.hset("h", {True: 1})  # type: ignore[dict-item]
        with pytest.raises(KeyTooLargeError):
            s.set(b"k" * 70000, "x")
        with pytest.raises(NotAFloatError):
            s.zadd("z", {"m": float("nan")})
        with pytest.raises(CommandError):
            s.hset("h", {})
        with pytest.raises(CommandError):
            s.lpop("l", -1)
        assert isinstance(WrongTypeError(), KVError)
    db = DB(str(tmp_path / "other"))
    with pytest.raises(TypeError):
        Structures(db, sync="always")
    st2 = Structures(db)
    db.close()
    with pytest.raises(DatabaseClosedError):
        st2.set("k", "v")


# -------------------------------------------------------- model-based test


class StructuresModel(RuleBasedStateMachine):
    """Random operations on all types against plain Python containers."""

    def __init__(self):
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.s = Structures(os.path.join(self.dir, "db"))
        self.model: dict[bytes, object] = {}

    names = st.sampled_from([b"a", b"b", b"c"])
    vals = st.binary(max_size=5)

    def _kind(self, name, kind):
        value = self.model.get(name)
        return value is None or isinstance(value, kind)

    @rule(name=names, value=vals)
    def set_(self, name, value):
        self.s.set(name, value)
        self.model[name] = value

    @rule(name=names, field=vals, value=vals)
    def hset(self, name, field, value):
        if self._kind(name, dict):
            assert self.s.hset(name, {field: value}) == int(field not in self.model.get(name, {}))
            self.model.setdefault(name, {})[field] = value
        else:
            with pytest.raises(WrongTypeError):
                self.s.hset(name, {field: value})

    @rule(name=names, field=vals)
    def hdel(self, name, field):
        if self._kind(name, dict):
            h = self.model.get(name, {})
            assert self.s.hdel(name, field) == int(field in h)
            h.pop(field, None)
            if not h:
                self.model.pop(name, None)

    @rule(name=names, value=vals, left=st.booleans())
    def push(self, name, value, left):
        if self._kind(name, list):
            lst = self.model.setdefault(name, [])
            if left:
                self.s.lpush(name, value)
                lst.insert(0, value)
            else:
                self.s.rpush(name, value)
                lst.append(value)

    @rule(name=names, left=st.booleans())
    def pop(self, name, left):
        if self._kind(name, list):
            lst = self.model.get(name, [])
            got = self.s.lpop(name) if left else self.s.rpop(name)
            assert got == ((lst.pop(0) if left else lst.pop()) if lst else None)
            if not lst:
                self.model.pop(name, None)

    @rule(name=names, member=vals)
    def sadd(self, name, member):
        if self._kind(name, set):
            self.s.sadd(name, member)
            self.model.setdefault(name, set()).add(member)

    @rule(name=names, member=vals, score=st.floats(allow_nan=False, min_value=-1e6, max_value=1e6))
    def zadd(self, name, member, score):
        if self._kind(name, tuple):
            z = dict(self.model.get(name, ()))
            z[member] = score
            self.s.zadd(name, {member: score})
            self.model[name] = tuple(z.items())

    @rule(name=names)
    def delete(self, name):
        assert self.s.delete(name) == int(name in self.model)
        self.model.pop(name, None)

    @invariant()
    def matches(self):
        s = self.s
        for name in (b"a", b"b", b"c"):
            value = self.model.get(name)
            if value is None:
                assert s.type(name) == "none"
            elif isinstance(value, bytes):
                assert s.get(name) == value
            elif isinstance(value, dict):
                assert s.hgetall(name) == value and s.hlen(name) == len(value)
            elif isinstance(value, list):
                assert s.lrange(name, 0, -1) == value and s.llen(name) == len(value)
            elif isinstance(value, set):
                assert s.smembers(name) == value and s.scard(name) == len(value)
            else:
                expected = sorted(((sc, m) for m, sc in value), key=lambda t: (t[0], t[1]))
                got = s.zrange(name, 0, -1, withscores=True)
                assert [(sc, m) for m, sc in got] == [(0.0 if sc == 0 else sc, m) for sc, m in expected]
        assert sorted(s.keys()) == sorted(self.model)

    def teardown(self):
        import shutil

        self.s.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestStructuresModel = StructuresModel.TestCase
TestStructuresModel.settings = settings(
    max_examples=25, stateful_step_count=30, deadline=None, suppress_health_check=list(HealthCheck)
)


# ------------------------------------------------------ several processes


def test_many_processes_update_the_same_structures(store_path):
    Structures(store_path).close()
    code = """
        import sys
        from kv_backend.structures import Structures
        path, me = sys.argv[1], sys.argv[2]
        with Structures(path) as s:
            for i in range(60):
                s.hincrby("h", "count", 1)
                s.rpush("l", f"{me}:{i}")
                s.sadd("s", f"{me}:{i % 10}")
                s.zincrby("z", 1, "shared")
                s.incr("n")
    """
    procs = [spawn_python(code, store_path, str(p)) for p in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    with Structures(store_path) as s:
        assert s.hget("h", "count") == b"240"
        items = s.lrange("l", 0, -1)
        assert len(items) == 240 == s.llen("l")
        for p in range(4):  # each process's pushes appear in its own order
            mine = [x for x in items if x.startswith(f"{p}:".encode())]
            assert mine == [f"{p}:{i}".encode() for i in range(60)]
        assert s.scard("s") == 40
        assert s.zscore("z", "shared") == 240.0 and s.get("n") == b"240"


def test_sigkill_mid_operation_never_leaves_half_a_structure(store_path):
    Structures(store_path).close()
    code = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            print("ready", flush=True)
            i = 0
            while True:
                s.hset("h", {f"f{i}": i, f"g{i}": i})
                s.rpush("l", i, i)
                s.zadd("z", {f"m{i}": i, f"n{i}": -i})
                s.sadd("s", i, -i - 1)
                if i % 7 == 0:
                    s.hdel("h", f"f{i // 2}")
                    s.lpop("l")
                    s.zrem("z", f"m{i // 2}")
                i += 1
    """
    rng = random.Random(7)
    with Zygote(code) as writers, Zygote(CHECK_CONSISTENT) as checkers:
        for _ in range(4):
            writers.kill_when_ready(store_path, delay=rng.uniform(0.05, 0.4))
            checkers.run(store_path)


#: Every collection's metadata agrees with its member records.
CHECK_CONSISTENT = """
import sys
from kv_backend.structures import Structures
from kv_backend.structures.layout import ZIDX, ZMEM, _lp
with Structures(sys.argv[1]) as s:
    h = s.hgetall("h")
    assert s.hlen("h") == len(h), (s.hlen("h"), len(h))
    items = s.lrange("l", 0, -1)
    assert s.llen("l") == len(items) and all(x is not None for x in items)
    z = s.zrange("z", 0, -1, withscores=True)
    members = list(s.db.keys(prefix=ZMEM + _lp(b"z")))
    index = list(s.db.keys(prefix=ZIDX + _lp(b"z")))
    assert s.zcard("z") == len(z) == len(members) == len(index)
    assert s.scard("s") == len(s.smembers("s"))
    assert s.scard("s") % 2 == 0
"""


def test_in_process_users_see_each_others_writes(store_path):
    with Structures(store_path) as a, Structures(store_path) as b:
        a.hset("h", {"f": 1})
        assert b.hget("h", "f") == b"1"
        b.zadd("z", {"m": 1})
        assert a.zscore("z", "m") == 1.0
        b.delete("h")
        assert a.hgetall("h") == {}
    with DB(store_path) as db:
        assert db.get(META + b"z") is not None


def test_vacuum_in_small_chunks_keeps_live_keys(s):
    for i in range(30):
        s.sadd(f"gone{i}", *range(5))
        s.expire(f"gone{i}", 0.05)
    s.sadd("kept", *range(7))
    time.sleep(0.1)
    assert s.vacuum(chunk=7) == 150
    assert s.smembers("kept") == {str(i).encode() for i in range(7)}
    assert s.vacuum() == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"0", 0),
        (b"7", 7),
        (b"123456789012345678", 123456789012345678),
        (b"9223372036854775807", 2**63 - 1),
        (b"-9223372036854775808", -(2**63)),
        (b"-12", -12),
        (12, 12),
    ],
)
def test_parse_int_accepts_64_bit_decimals(raw, expected):
    assert parse_int(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [b"", b"00", b"01", b"-0", b"+1", b" 1", b"1 ", b"1_000", b"9223372036854775808", b"\xd9\xa1", b"1.0"],
)
def test_parse_int_refuses_what_redis_refuses(raw):
    with pytest.raises(NotAnIntegerError):
        parse_int(raw)


def test_hset_pairs_later_pairs_win_and_new_fields_are_counted(s):
    assert s.hset_pairs(b"h", [(b"a", b"1"), (b"b", b"2"), (b"a", b"3")]) == 2
    assert s.hgetall(b"h") == {b"a": b"3", b"b": b"2"}
    assert s.hset_pairs("h", [("b", "4"), ("c", 5)]) == 1
    assert s.hgetall(b"h") == {b"a": b"3", b"b": b"4", b"c": b"5"}
    with pytest.raises(CommandError):
        s.hset_pairs(b"h", [])
    s.set(b"str", b"x")
    with pytest.raises(WrongTypeError):
        s.hset_pairs(b"str", [(b"a", b"1")])


def test_nested_locked_blocks_keep_one_hold(store_path):
    """Structure operations inside a caller's locked() block reuse its hold, and release it exactly."""
    db = DB(store_path)
    other = DB(store_path)
    try:
        st_ = Structures(db)
        with db.locked():
            st_.incr(b"n")
            st_.hset(b"h", {b"f": b"v"})
            assert db._lock._depth == 1
            assert not other._lock.try_acquire()  # still held across the nested blocks
        assert db._lock._depth == 0
        assert other._lock.try_acquire()
        other._lock.release()
        assert Structures(other).get(b"n") == b"1"
    finally:
        other.close()
        db.close()


def test_hset_of_one_field_keeps_count_ttl_and_type_rules(s):
    """Overwriting one existing field reads only the hash's type tag; every other case reads it whole."""
    assert s.hset("h", {"a": 1, "b": 2}) == 2
    s.expire("h", 100)
    assert s.hset("h", {"a": 9}) == 0  # an existing field: one record
    assert s.hgetall("h") == {b"a": b"9", b"b": b"2"} and s.hlen("h") == 2 and s.ttl("h") > 99
    assert s.hset("h", {"c": 3}) == 1 and s.hlen("h") == 3
    s.set("str", "x")
    with pytest.raises(WrongTypeError):
        s.hset("str", {"a": 1})
    s.hset("short", {"a": 1})
    s.expire("short", 0.05)
    time.sleep(0.1)
    assert s.hset("short", {"a": 2}) == 1  # the hash expired: a new one, with a new field
    assert s.hgetall("short") == {b"a": b"2"} and s.ttl("short") is None


def test_blocking_pops_in_process(s):
    s.rpush("b", "b1", "b2")
    assert s.blpop(["a", "b"], timeout=1) == (b"b", b"b1")  # the first non-empty list, in order
    assert s.brpop("b", timeout=1) == (b"b", b"b2")
    t0 = time.monotonic()
    assert s.blpop(["a", "b"], timeout=0.2) is None
    assert time.monotonic() - t0 >= 0.2
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.blpop(["str", "b"], timeout=1)
    with pytest.raises(CommandError, match="negative"):
        s.blpop("b", timeout=-1)
    for bad in ("1", None, math.nan, True):
        with pytest.raises(TypeError):
            s.blpop("b", timeout=bad)
    with pytest.raises(CommandError):
        s.blpop([], timeout=1)


def test_blocking_pop_wakes_on_another_process_push(s, store_path):
    code = """
        import sys, time
        from kv_backend.structures import Structures
        time.sleep(0.3)
        with Structures(sys.argv[1]) as st:
            st.rpush(b"jobs", b"from another process")
    """
    proc = spawn_python(code, store_path)
    try:
        t0 = time.monotonic()
        assert s.blpop("jobs", timeout=0) == (b"jobs", b"from another process")
        assert 0.2 < time.monotonic() - t0 < 10
    finally:
        assert proc.wait(30) == 0
    assert s.llen("jobs") == 0


def test_blocking_pop_consumers_in_several_processes_get_each_element_once(s, store_path):
    code = """
        import json, sys
        from kv_backend.structures import Structures
        got = []
        with Structures(sys.argv[1]) as st:
            while (item := st.blpop("work", timeout=1.0)) is not None:
                got.append(item[1].decode())
        print(json.dumps(got))
    """
    import json

    consumers = [spawn_python(code, store_path, stdout=subprocess.PIPE) for _ in range(3)]
    try:
        for i in range(300):
            s.rpush("work", f"job-{i}")
    finally:
        outs = [json.loads(p.communicate(timeout=60)[0]) for p in consumers]
    got = [x for out in outs for x in out]
    assert sorted(got) == sorted(f"job-{i}" for i in range(300))
