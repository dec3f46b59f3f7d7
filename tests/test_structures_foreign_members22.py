"""A Redis key's member records written by another front end, checked where they are decoded.

A sorted set's score record (``\\x00z`` + name + member) whose value is not 8 bytes, an index record
(``\\x00Z``...) too short to hold a score, a stream entry whose key holds no 16-byte ID or whose value's
lengths do not add up, a consumer group's, consumer's or pending entry's record of the wrong size: a
Store (or ``kvb http``, or ``kv_backend.dbm``) that writes such a key on a directory ``kvb serve`` uses
made ZSCORE, ZRANGE, XRANGE, XREADGROUP, XPENDING, DUMP... raise a raw struct.error in-process and
answer "ERR internal error" through kvb serve, with a bug line in its log. Each now raises
ForeignRecordError naming the record and saying to DEL the key, and kvb serve answers that text.
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures
from kv_backend.structures.layout import CONSUMER, GROUP, LIST, PENDING, STREAM, ZIDX, ZMEM, _lp
from kv_backend.structures.streams import _XID

ID = _XID.pack(1, 1)

#: ``(the record another front end writes, its value, calls that decode it)``.
CASES = {
    "score": (
        ZMEM + _lp(b"z") + b"m",
        b"abc",
        [
            lambda s: s.zscore("z", "m"),
            lambda s: s.zmscore("z", ["n", "m"]),
            lambda s: s.zadd("z", {"m": 1}, incr=True),
            lambda s: s.zadd("z", {"m": 5}),
            lambda s: s.zrank("z", "m"),
            lambda s: s.geopos("z", "m"),
            lambda s: s.geohash("z", "m"),
            lambda s: s.geodist("z", "m", "n"),
            lambda s: s.dump("z"),
        ],
    ),
    "score index": (
        ZIDX + _lp(b"z") + b"ab",
        b"",
        [
            lambda s: s.zrange("z", 0, -1),
            lambda s: s.zrangebyscore("z", "-inf", "+inf"),
            lambda s: s.zrangebylex("z", "-", "+"),
            lambda s: s.zpopmin("z"),
            lambda s: s.zscan("z"),
            lambda s: s.zunionstore("dest", ["z"]),
        ],
    ),
    "entry value": (
        STREAM + _lp(b"x") + ID,
        b"hello",
        [
            lambda s: s.xrange("x"),
            lambda s: s.xrevrange("x"),
            lambda s: s.xread({"x": "0"}),
            lambda s: s.xreadgroup("g", "c", {"x": "0"}),
            lambda s: s.xclaim("x", "g", "c2", 0, ["1-1"]),
            lambda s: s.xinfo_stream("x", full=True),
            lambda s: s.dump("x"),
        ],
    ),
    "entry key": (
        STREAM + _lp(b"x") + b"short",
        b"\x00\x00\x00\x01a\x00\x00\x00\x01b",
        [
            lambda s: s.xrange("x"),
            lambda s: s.xread({"x": "0"}),
            lambda s: s.xsetid("x", "5-5"),
            lambda s: s.xinfo_stream("x", full=True),
            lambda s: s.dump("x"),
        ],
    ),
    "group": (
        GROUP + _lp(b"x") + b"g",
        b"zz",
        [
            lambda s: s.xinfo_groups("x"),
            lambda s: s.xreadgroup("g", "c", {"x": ">"}),
            lambda s: s.xpending("x", "g"),
            lambda s: s.xack("x", "g", "1-1"),
            lambda s: s.dump("x"),
        ],
    ),
    "consumer": (
        CONSUMER + _lp(b"x") + _lp(b"g") + b"c",
        b"zz",
        [
            lambda s: s.xinfo_consumers("x", "g"),
            lambda s: s.xreadgroup("g", "c", {"x": ">"}),
            lambda s: s.xinfo_stream("x", full=True),
            lambda s: s.dump("x"),
        ],
    ),
    "pending value": (
        PENDING + _lp(b"x") + _lp(b"g") + ID,
        b"zz",
        [
            lambda s: s.xpending("x", "g"),
            lambda s: s.xpending_range("x", "g", "-", "+", 10),
            lambda s: s.xclaim("x", "g", "c2", 0, ["1-1"]),
            lambda s: s.xautoclaim("x", "g", "c2", 0),
            lambda s: s.xreadgroup("g", "c", {"x": "0"}),
            lambda s: s.dump("x"),
        ],
    ),
    "pending key": (
        PENDING + _lp(b"x") + _lp(b"g") + b"short",
        b"\x00" * 16 + b"c",
        [
            lambda s: s.xpending("x", "g"),
            lambda s: s.xpending_range("x", "g", "-", "+", 10),
            lambda s: s.xautoclaim("x", "g", "c2", 0),
            lambda s: s.dump("x"),
        ],
    ),
}


def _fill(path: str) -> None:
    with Structures(path) as s:
        s.zadd("z", {"m": 1.0, "n": 2.0})
        s.xadd("x", {"a": "b"}, id="1-1")
        s.xgroup_create("x", "g", id="0")
        s.xreadgroup("g", "c", {"x": ">"})


def _message(name: bytes, record: bytes) -> str:
    return (
        f"ERR a record of the members of key '{name.decode()}' in the store was not written by kvb serve but "
        f"by another front end on its directory (as the engine key {record!r}); DEL the key to remove it"
    )


@pytest.mark.parametrize("case", CASES)
def test_each_read_names_the_record(tmp_path, case):
    path = str(tmp_path / "kv")
    _fill(path)
    record, value, calls = CASES[case]
    with Store(path, key_type=bytes, serializer="raw") as store:  # another front end writes the record
        store[record] = value
    with Structures(path) as s:
        for i, call in enumerate(calls):
            with pytest.raises(ForeignRecordError) as info:
                call(s)
            assert info.value.record == record, (case, i)
            assert str(info.value) == _message(info.value.name, record), (case, i)
        name = b"z" if record[:2] in (ZMEM, ZIDX) else b"x"
        assert info.value.name == name
        assert s.delete(name) == 1  # DEL removes it with the key's other records
        assert s.db.get(record) is None


def test_kvb_serve_answers_the_error_and_logs_no_bug(tmp_path):
    path = str(tmp_path / "kv")
    _fill(path)
    with Store(path, key_type=bytes, serializer="raw") as store:
        store[ZMEM + _lp(b"z") + b"m"] = b"abc"
        store[STREAM + _lp(b"x") + ID] = b"hello"
    server = resp.Server(path)
    logged: list[str] = []
    server.log = logged.append  # type: ignore[method-assign]
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"ZSCORE", b"z", b"m"]).message == _message(b"z", ZMEM + _lp(b"z") + b"m")
        assert conn.execute([b"XRANGE", b"x", b"-", b"+"]).message == _message(b"x", STREAM + _lp(b"x") + ID)
        assert conn.execute([b"ZSCORE", b"z", b"n"]) == b"2"  # the other members still answer
        assert logged == []
        assert conn.execute([b"DEL", b"z", b"x"]) == 2
        assert conn.execute([b"ZADD", b"z", b"1", b"m"]) == 1
    finally:
        server.db.close()


def test_dump_of_a_list_holds_the_elements_lrange_reads(tmp_path):
    # DUMP read every record under the list's prefix: one another front end wrote there (not at an
    # index of the list) came back as an element LRANGE never answered, and RESTORE made it one.
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.rpush("l", "a", "b")
    with Store(path, key_type=bytes, serializer="raw") as store:
        store[LIST + _lp(b"l") + b"stray"] = b"not an element"
    with Structures(path) as s:
        assert s.lrange("l", 0, -1) == [b"a", b"b"]
        s.restore("copy", 0, s.dump("l"))
        assert s.lrange("copy", 0, -1) == [b"a", b"b"]


@pytest.mark.parametrize("trim", [{"maxlen": 2}, {"minid": "9999999999999-0"}])
def test_trimming_refuses_a_record_it_would_take_for_an_entry(tmp_path, trim):
    # XTRIM (and XADD's trimming) deleted the first records under the stream's prefix as entries: one
    # another front end wrote there went as one, and XLEN then said 2 of the 3 entries left.
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        for i in range(3):
            s.xadd("x", {"f": str(i)}, id=f"{i + 1}-0")
    stray = STREAM + _lp(b"x") + b"\x00"
    with Store(path, key_type=bytes, serializer="raw") as store:
        store[stray] = b"stray"
    with Structures(path) as s:
        with pytest.raises(ForeignRecordError) as info:
            s.xtrim("x", **trim)
        assert info.value.record == stray
        assert s.xlen("x") == len(s.xrange("x")) == 3
