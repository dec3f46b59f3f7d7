"""The reads of a set's, sorted set's or hash's members that looked only at the tag and size of the
key's metadata record, under a record of that size whose counts no such key has (#7).

A record of a set's, sorted set's or hash's 17 bytes counting 0 members (the last member's removal
deletes the key's record, so the layout never writes one), or numbers past any a collection reaches,
is refused as another front end's (ForeignRecordError; kvb serve's error) by every command that reads
the count (SCARD, ZCARD, HLEN, SMEMBERS, ZRANGE...). SISMEMBER, SMISMEMBER, ZSCORE, ZMSCORE, ZRANK,
the score and lex range reads, the geo reads, a scan past its first step, HSCAN, SMOVE and SORT's
``->field`` lookups answered the members stored under it instead. They now refuse it the same way.
"""

from __future__ import annotations

import struct

import pytest
import redis
from resp_helpers import RunningServer

from kv_backend import DB
from kv_backend.structures import ForeignRecordError, Structures, WrongTypeError
from kv_backend.structures.layout import HASH, SET, ZIDX, ZMEM, _lp, encode_score

_COUNTS = struct.Struct(">QQ")
BAD_COUNTS = {
    "zero count": (0, 0),
    "zero count, version 7": (0, 7),
    "count past the bound": (1 << 48, 1),
    "version past the bound": (1, 1 << 48),
}
TOP = (1 << 48) - 1
META = b"\x00mbar"
SCORE = encode_score(1.0)
#: The member records each type's key bar holds under the record (member m, field m).
MEMBERS = {
    b"t": {SET + _lp(b"bar") + b"m": b""},
    b"z": {ZMEM + _lp(b"bar") + b"m": SCORE, ZIDX + _lp(b"bar") + SCORE + b"m": b""},
    b"h": {HASH + _lp(b"bar") + b"m": b"1"},
}
LONG = b"x" * 65  # a member no set or sorted set Redis packs whole has (its scan walks from cursor 0)


def _cursor(s: Structures, scan: str) -> int:
    """A cursor past the first step of a scan (the key ok's first member)."""
    if scan == "hscan":
        s.hset("ok", mapping={"a": "1", "b": "2"})
    elif scan == "sscan":
        s.sadd("ok", "a", "b")
    else:
        s.zadd("ok", {"a": 1, LONG: 2})
    cursor = getattr(s, scan)("ok", 0, count=1)[0]
    assert cursor != 0
    return cursor


SET_CALLS = {
    "SISMEMBER": lambda s: s.sismember("bar", "m"),
    "SISMEMBER of a missing member": lambda s: s.sismember("bar", "n"),
    "SMISMEMBER": lambda s: s.smismember("bar", ["m", "n"]),
    "SSCAN from cursor 0": lambda s: s.sscan("bar", 0),
    "SSCAN past the first step": lambda s: s.sscan("bar", _cursor(s, "sscan")),
    "SMOVE of a missing member": lambda s: s.smove("bar", "other", "n"),
    "SMOVE to itself": lambda s: s.smove("bar", "bar", "m"),
    "SMOVE to it of a member it has": lambda s: s.sadd("src", "m") and s.smove("src", "bar", "m"),
    "SCARD": lambda s: s.scard("bar"),  # (refused before: the others now answer as it does)
}
ZSET_CALLS = {
    "ZSCORE": lambda s: s.zscore("bar", "m"),
    "ZSCORE of a missing member": lambda s: s.zscore("bar", "n"),
    "ZMSCORE": lambda s: s.zmscore("bar", ["m", "n"]),
    "ZRANK": lambda s: s.zrank("bar", "m"),
    "ZRANK of a missing member": lambda s: s.zrank("bar", "n"),
    "ZREVRANK of a missing member": lambda s: s.zrevrank("bar", "n"),
    "ZCOUNT": lambda s: s.zcount("bar", "-inf", "+inf"),
    "ZLEXCOUNT": lambda s: s.zlexcount("bar", "-", "+"),
    "ZRANGEBYSCORE": lambda s: s.zrangebyscore("bar", "-inf", "+inf"),
    "ZREVRANGEBYSCORE": lambda s: s.zrevrangebyscore("bar", "+inf", "-inf"),
    "ZRANGE BYSCORE": lambda s: s.zrange("bar", "-inf", "+inf", byscore=True),
    "ZRANGEBYLEX": lambda s: s.zrangebylex("bar", "-", "+"),
    "ZREVRANGEBYLEX": lambda s: s.zrevrangebylex("bar", "+", "-"),
    "ZREMRANGEBYSCORE of no member": lambda s: s.zremrangebyscore("bar", 5, 6),
    "ZREMRANGEBYLEX of no member": lambda s: s.zremrangebylex("bar", "[x", "[y"),
    "ZSCAN past the first step": lambda s: s.zscan("bar", _cursor(s, "zscan")),
    "ZRANDMEMBER with a count": lambda s: s.zrandmember("bar", 1),
    "ZPOPMIN of no member": lambda s: s.zpopmin("bar", 0),
    "GEOPOS": lambda s: s.geopos("bar", "m", "n"),
    "GEODIST": lambda s: s.geodist("bar", "m", "n"),
    "GEOHASH": lambda s: s.geohash("bar", "m"),
    "GEOSEARCH": lambda s: s.geosearch("bar", longitude=0, latitude=0, radius=1, unit="km"),
    "GEORADIUS": lambda s: s.georadius("bar", 0, 0, 1, unit="km"),
    "ZCARD": lambda s: s.zcard("bar"),  # (refused before)
}
HASH_CALLS = {
    "HSCAN": lambda s: s.hscan("bar", 0),
    "HSCAN past the first step": lambda s: s.hscan("bar", _cursor(s, "hscan")),
    "SORT GET of its field": lambda s: s.rpush("l", "r") and s.sort("l", get="ba*->m", alpha=True),
    "SORT BY its field": lambda s: s.rpush("l", "r", "r") and s.sort("l", by="ba*->m"),
}
CALLS = {b"t": SET_CALLS, b"z": ZSET_CALLS, b"h": HASH_CALLS}
CASES = [(tag, name) for tag, calls in CALLS.items() for name in calls]


def _store(path: str, meta: bytes) -> None:
    with DB(path) as db:
        db.put(META, meta)
        for key, value in MEMBERS[meta[:1]].items():
            db.put(key, value)


def _records(path: str) -> dict[bytes, bytes | None]:
    """The records of the key bar: its metadata and its members'."""
    with DB(path) as db:
        return {key: db.get(key) for key in db.keys(prefix=b"\x00") if b"bar" in key}


@pytest.mark.parametrize("counts", list(BAD_COUNTS.values()), ids=list(BAD_COUNTS))
@pytest.mark.parametrize(("tag", "call"), CASES, ids=[f"{tag.decode()}-{name}" for tag, name in CASES])
def test_member_reads_refuse_a_record_whose_counts_no_key_has(tmp_path, tag, call, counts):
    path = str(tmp_path / "kv")
    meta = tag + _COUNTS.pack(*counts)
    _store(path, meta)
    with Structures(path) as s:
        before = _records(path)
        with pytest.raises(ForeignRecordError) as info:
            CALLS[tag][call](s)
        assert info.value.name == b"bar"
        assert _records(path) == before  # nothing written


@pytest.mark.parametrize(("tag", "call"), CASES, ids=[f"{tag.decode()}-{name}" for tag, name in CASES])
def test_a_key_at_the_largest_counts_the_layout_accepts_is_read(tmp_path, tag, call):
    """Only what the layout's check of a count refuses is refused: one below each bound is a key."""
    path = str(tmp_path / "kv")
    _store(path, tag + _COUNTS.pack(TOP, TOP))
    with Structures(path) as s:
        CALLS[tag][call](s)  # no error


def test_the_reads_answer_a_key_of_the_layout_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.sadd("s", "a", "b")
        s.zadd("z", {"a": 1.0, "b": 2.0})
        assert s.sismember("s", "a") and not s.sismember("s", "c") and not s.sismember("nokey", "a")
        assert s.smismember("s", ["a", "c"]) == [True, False]
        assert s.zscore("z", "b") == 2.0 and s.zscore("z", "c") is None and s.zscore("nokey", "a") is None
        assert s.zmscore("z", ["a", "c"]) == [1.0, None]
        assert s.zrank("z", "b") == 1 and s.zrank("z", "c") is None
        assert s.zcount("z", 0, 5) == 2 and s.zrangebyscore("z", 2, 5) == [b"b"]
        assert s.smove("s", "s", "a") and not s.smove("s", "t", "c")


@pytest.mark.parametrize(
    "meta",
    [b"t" + _COUNTS.pack(1, 1)[:8], b"t" + _COUNTS.pack(1, 1) + b"\x00", b"z" + _COUNTS.pack(1, 1)[:15]],
    ids=["set tag, 9 bytes", "set tag, 18 bytes", "sorted set tag, 16 bytes"],
)
def test_a_record_of_the_tag_and_another_size_is_refused(tmp_path, meta):
    """SISMEMBER and ZSCORE read the record without the layout's check of its form where it looks like
    a set's or sorted set's: one of the tag and a count in bounds, of another size, is still refused."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(META, meta)
    with Structures(path) as s, pytest.raises(ForeignRecordError):
        s.sismember("bar", "m") if meta[:1] == b"t" else s.zscore("bar", "m")


def test_other_types_are_wrongtype_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.set("str", "v")
        s.hset("hash", "f", "v")
        s.zadd("zset", {"m": 1})
        s.sadd("set", "m")
        for name in ("str", "hash", "zset"):
            with pytest.raises(WrongTypeError):
                s.sismember(name, "m")
        for name in ("str", "hash", "set"):
            with pytest.raises(WrongTypeError):
                s.zscore(name, "m")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """kvb serve on a store whose keys zbar, tbar and hbar hold records counting 0 members (and one
    member each), and whose keys z, t and h are of the layout."""
    path = str(tmp_path_factory.mktemp("zero") / "kv")
    with DB(path) as db:
        for tag in (b"t", b"z", b"h"):
            db.put(b"\x00m" + tag + b"bar", tag + _COUNTS.pack(0, 0))
        db.put(SET + _lp(b"tbar") + b"m", b"")
        db.put(ZMEM + _lp(b"zbar") + b"m", SCORE)
        db.put(ZIDX + _lp(b"zbar") + SCORE + b"m", b"")
        db.put(HASH + _lp(b"hbar") + b"m", b"1")
    server = RunningServer(path).start()
    try:
        client = redis.Redis(port=server.port, socket_timeout=30)
        client.sadd("t", "m")
        client.zadd("z", {"m": 1})
        client.hset("h", "m", "1")
        yield client
        client.close()
    finally:
        server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ("SISMEMBER", "tbar", "m"),
        ("SMISMEMBER", "tbar", "m", "n"),
        ("ZSCORE", "zbar", "m"),
        ("ZMSCORE", "zbar", "m"),
        ("ZRANK", "zbar", "n"),
        ("ZCOUNT", "zbar", "-inf", "+inf"),
        ("GEOPOS", "zbar", "m"),
        ("HSCAN", "hbar", "0"),
    ],
    ids=lambda args: args[0],
)
def test_kvb_serve_answers_the_foreign_record_error(served, args):
    with pytest.raises(redis.ResponseError, match="not written by kvb serve but by another front end"):
        served.execute_command(*args)
    served.execute_command(args[0], args[1][:1], *args[2:])  # the key of the layout answers
