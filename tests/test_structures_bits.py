"""kv_backend.structures: bitmaps (SETBIT, BITCOUNT, BITFIELD...) and SETRANGE, in one process and several."""

from __future__ import annotations

import pytest
from helpers import spawn_python

from kv_backend.errors import NotAnIntegerError
from kv_backend.structures import CommandError, Structures, WrongTypeError
from kv_backend.structures.layout import HASH


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


def test_setbit_getbit_pad_the_string_and_keep_its_ttl(s):
    assert s.setbit("k", 9, 1) == 0
    assert s.get("k") == b"\x00\x40"
    assert s.getbit("k", 9) == 1 and s.getbit("k", 8) == 0 and s.getbit("k", 10_000) == 0
    s.expire("k", 100)
    assert s.setbit("k", 9, 0) == 1 and s.setbit("k", 23, 1) == 0
    assert s.get("k") == b"\x00\x00\x01" and s.ttl("k") > 90
    assert s.getbit("missing", 3) == 0
    s.rpush("l", "x")
    with pytest.raises(WrongTypeError):
        s.setbit("l", 0, 1)
    with pytest.raises(CommandError, match="bit offset is not an integer or out of range"):
        s.setbit("k", 2**32, 1)
    with pytest.raises(CommandError, match="bit offset"):
        s.getbit("k", -1)
    with pytest.raises(CommandError, match="bit is not an integer or out of range"):
        s.setbit("k", 0, 2)


def test_setbit_that_changes_nothing_writes_nothing(s):
    s.setbit("k", 3, 1)
    token = s.watch_token("k")
    count = s.db.change_token()
    assert s.setbit("k", 3, 1) == 1 and s.setbit("k", 4, 0) == 0
    assert s.watch_token("k") == token and s.db.change_token() == count


def test_bitcount_and_bitpos(s):
    s.set("k", b"\x00\xff\xf0")
    assert s.bitcount("k") == 12
    assert s.bitcount("k", 1, 1) == 8 and s.bitcount("k", -1, -1) == 4
    assert s.bitcount("k", 5, 12, "BIT") == 5 and s.bitcount("k", 5, 12, "bit") == 5
    assert s.bitcount("k", -1, -2) == 0  # both from the end, the wrong way round
    assert s.bitcount("missing", 0, 1) == 0
    assert s.bitpos("k", 1) == 8 and s.bitpos("k", 0) == 0
    assert s.bitpos("k", 0, 1) == 20 and s.bitpos("k", 1, 2) == 16
    assert s.bitpos("k", 0, 1, 1) == -1  # the range given has no 0
    assert s.bitpos("k", 1, 7, 15, "BIT") == 8 and s.bitpos("k", 0, 8, 19, "BIT") == -1
    s.set("ones", b"\xff\xff")
    assert s.bitpos("ones", 0) == 16  # no end given: the string reads as padded with zeros
    assert s.bitpos("missing", 0) == 0 and s.bitpos("missing", 1) == -1
    with pytest.raises(CommandError, match=r"The bit argument must be 1 or 0\."):
        s.bitpos("k", 2)
    with pytest.raises(CommandError, match="syntax error"):
        s.bitcount("k", 0, 1, "WORD")
    with pytest.raises(NotAnIntegerError):
        s.bitcount("k", "x", 1)


def test_bitop_replaces_or_deletes_the_destination(s):
    s.set("a", b"\x0f\xf0")
    s.set("b", b"\xff")
    s.hset("dest", {"f": "v"})
    assert s.bitop("AND", "dest", "a", "b") == 2
    assert s.get("dest") == b"\x0f\x00" and s.type("dest") == "string"
    assert not list(s.db.keys(prefix=HASH))  # the hash's field records went with it
    assert s.bitop("or", "dest", "a", "b", "missing") == 2 and s.get("dest") == b"\xff\xf0"
    assert s.bitop("XOR", "dest", "a", "b") == 2 and s.get("dest") == b"\xf0\xf0"
    s.expire("dest", 100)
    assert s.bitop("NOT", "dest", "b") == 1 and s.get("dest") == b"\x00"
    assert s.ttl("dest") is None  # replaced: no TTL, as Redis's SET
    assert s.bitop("AND", "dest", "missing", "other") == 0 and not s.exists("dest")
    with pytest.raises(CommandError, match=r"BITOP NOT must be called with a single source key\."):
        s.bitop("NOT", "dest", "a", "b")
    s.rpush("l", "x")
    with pytest.raises(WrongTypeError):
        s.bitop("OR", "dest", "a", "l")


def test_bitfield(s):
    assert s.bitfield("k", "SET", "u8", 0, 200, "GET", "u8", 0, "INCRBY", "u8", 0, 100) == [0, 200, 44]
    ops = ("OVERFLOW", "SAT", "INCRBY", "u8", 0, 1000, "OVERFLOW", "FAIL", "INCRBY", "u8", 0, 1)
    assert s.bitfield("k", *ops) == [255, None]
    assert s.bitfield("k", "SET", "i4", "#1", -3, "GET", "i4", "#1", "GET", "u4", 4) == [-1, -3, 13]
    assert s.bitfield("k", "SET", "i64", 8, -1, "GET", "u63", 8) == [0, 2**63 - 1]
    assert s.strlen("k") == 9
    assert s.bitfield_ro("k", "GET", "u8", 0) == [0xFD]
    assert s.bitfield("new", "OVERFLOW", "FAIL", "SET", "u8", 16, 999) == [None]
    assert s.get("new") == b"\x00\x00\x00"  # grown first, as Redis does
    assert s.bitfield("none") == [] and not s.exists("none")
    with pytest.raises(CommandError, match="BITFIELD_RO only supports the GET subcommand"):
        s.bitfield_ro("k", "SET", "u8", 0, 1)
    with pytest.raises(CommandError, match="Invalid bitfield type"):
        s.bitfield("k", "GET", "u64", 0)
    with pytest.raises(CommandError, match="Invalid OVERFLOW type specified"):
        s.bitfield("k", "OVERFLOW", "MAYBE")
    with pytest.raises(CommandError, match="syntax error"):
        s.bitfield("k", "GET", "u8")


def test_setrange_and_append_limits(s):
    assert s.setrange("k", 3, "abc") == 6 and s.get("k") == b"\x00\x00\x00abc"
    assert s.setrange("k", 1, "Z") == 6 and s.get("k") == b"\x00Z\x00abc"
    assert s.setrange("none", 5, "") == 0 and not s.exists("none")
    with pytest.raises(CommandError, match="offset is out of range"):
        s.setrange("k", -1, "x")
    with pytest.raises(CommandError, match=r"string exceeds maximum allowed size \(proto-max-bulk-len\)"):
        s.setrange("k", 512 * 1024 * 1024, "x")
    s.set("big", "x")
    with pytest.raises(CommandError, match="string exceeds maximum allowed size"):
        s.append("big", b"y" * (512 * 1024 * 1024))


def test_setbit_from_several_processes_loses_no_bit(store_path):
    Structures(store_path).close()
    code = """
        import sys
        from kv_backend.structures import Structures
        path, me = sys.argv[1], int(sys.argv[2])
        with Structures(path) as s:
            for i in range(50):
                s.setbit("bits", i * 4 + me, 1)
                s.bitfield("counters", "INCRBY", "u16", "#0", 1)
    """
    procs = [spawn_python(code, store_path, str(p)) for p in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    with Structures(store_path) as s:
        assert s.bitcount("bits") == 200 and s.get("bits") == b"\xff" * 25
        assert s.bitfield("counters", "GET", "u16", 0) == [200]


# ------------------------------------------------------------------ HyperLogLog


def test_hyperloglog_in_process(s):
    assert s.pfadd("h", *[f"e{i}" for i in range(1000)]) == 1
    assert s.pfcount("h") == 1008  # what redis-server answers for e0..e999
    assert s.pfadd("h", "e1") == 0 and s.get("h")[:5] == b"HYLL\x01"  # still sparse
    assert s.pfadd("big", *[f"x{i}" for i in range(5000)]) == 1
    assert s.pfcount("big") == 4970 and s.get("big")[:5] == b"HYLL\x00" and len(s.get("big")) == 12304
    union = s.pfcount("h", "big", "missing")
    assert s.pfmerge("u", "h", "big") is True and s.pfcount("u") == union
    assert s.get("h")[:5] == b"HYLL\x01" and s.pfcount("h") == 1008  # the sources are left alone
    assert s.pfcount("missing") == 0 and s.pfadd("empty") == 1 and s.pfcount("empty") == 0
    s.set("text", "not an hll")
    with pytest.raises(WrongTypeError, match="Key is not a valid HyperLogLog string value"):
        s.pfcount("text")
    s.rpush("l", "x")
    with pytest.raises(WrongTypeError, match="Operation against a key holding the wrong kind of value"):
        s.pfadd("l", "x")
    s.set("damaged", b"HYLL\x01\x00\x00\x00" + bytes(7) + b"\x80\x7f\xfe")
    with pytest.raises(CommandError, match="INVALIDOBJ Corrupted HLL object detected"):
        s.pfcount("damaged")


def test_murmurhash64a_and_registers():
    from kv_backend.structures.hyperloglog import murmurhash64a, register_of

    assert murmurhash64a(b"") == murmurhash64a(b"", 0xADC83B19)
    assert murmurhash64a(b"abcdefgh") != murmurhash64a(b"abcdefgi")
    index, count = register_of(b"hello")
    assert 0 <= index < 16384 and 1 <= count <= 51


def test_pfadd_from_several_processes_counts_every_element(store_path):
    Structures(store_path).close()
    code = """
        import sys
        from kv_backend.structures import Structures
        path, me = sys.argv[1], int(sys.argv[2])
        with Structures(path) as s:
            for i in range(250):
                s.pfadd("visitors", f"e{i * 4 + me}")
    """
    procs = [spawn_python(code, store_path, str(p)) for p in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    with Structures(store_path) as s:
        s.pfadd("all", *[f"e{i}" for i in range(1000)])
        assert s.pfcount("visitors") == s.pfcount("all") == 1008


def test_a_doubled_minus_sign_is_not_an_integer(s):
    """parse_int let "--5" through to int(), whose ValueError reached clients as "ERR invalid literal"."""
    for bad in (b"--5", b"--0", b"-", b"--"):
        with pytest.raises(NotAnIntegerError):
            s.incrby("n", bad)
        with pytest.raises(NotAnIntegerError):
            s.setrange("k", bad, "x")
