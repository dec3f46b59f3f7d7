"""HGET, HEXISTS, HSTRLEN and HMGET under a hash-sized metadata record whose counts no hash has (#7).

They looked only at the tag and size of the key's metadata record, so a record of a hash's 17 bytes
counting 0 members (the last member's removal deletes a hash's record, so the layout never writes one),
or numbers past any a hash reaches, answered the field stored under it, where every other hash command
(HLEN, HGETALL, HSET...) refuses the key as another front end's (ForeignRecordError; kvb serve's
error). They now refuse it the same way.
"""

from __future__ import annotations

import struct

import pytest
from test_structures_hset_foreign_size22 import FIELD
from test_structures_hset_zero_count23 import RECORDS

from kv_backend import DB
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures, WrongTypeError

_COUNTS = struct.Struct(">QQ")
CALLS = {
    "HGET": lambda s: s.hget("bar", "f"),
    "HEXISTS": lambda s: s.hexists("bar", "f"),
    "HSTRLEN": lambda s: s.hstrlen("bar", "f"),
    "HMGET": lambda s: s.hmget("bar", "f", "g"),
    "HLEN": lambda s: s.hlen("bar"),  # (refused before: the others now answer as it does)
}


@pytest.fixture(params=list(RECORDS.values()), ids=list(RECORDS))
def path(tmp_path, request):
    """A store whose key bar has the metadata record under test and a field f (``old``)."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", request.param)
        db.put(FIELD, b"old")
    return path, request.param


@pytest.mark.parametrize("call", list(CALLS.values()), ids=list(CALLS))
def test_single_field_reads_refuse_the_record_as_the_count_reading_commands_do(path, call):
    path, record = path
    with Structures(path) as s:
        with pytest.raises(ForeignRecordError) as info:
            call(s)
        assert info.value.name == b"bar"
        assert s.db.get(FIELD) == b"old" and s.db.get(b"\x00mbar") == record  # nothing written


def test_kvb_serve_answers_the_foreign_record_error(path):
    path, _ = path
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        for args in (
            [b"HGET", b"bar", b"f"],
            [b"HEXISTS", b"bar", b"f"],
            [b"HSTRLEN", b"bar", b"f"],
            [b"HMGET", b"bar", b"f"],
        ):
            reply = conn.execute(args)
            assert "not written by kvb serve but by another front end" in reply.message, args
    finally:
        server.db.close()


@pytest.mark.parametrize(
    "record",
    [b"h" + _COUNTS.pack(1, 1)[:8], b"h" + _COUNTS.pack(1, 1)[:15], b"h" + _COUNTS.pack(1, 1) + b"\x00"],
    ids=["9 bytes", "16 bytes", "18 bytes"],
)
def test_a_record_of_a_hashs_tag_and_another_size_is_refused(tmp_path, record):
    """HGET reads the record without the layout's check of its form where it looks like a hash's:
    one whose first bytes are a hash's tag and a count in bounds, of another size, is still refused."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"\x00mbar", record)
        db.put(FIELD, b"old")
    with Structures(path) as s:
        for call in CALLS.values():
            with pytest.raises(ForeignRecordError):
                call(s)


def test_hget_of_a_key_of_another_type_is_wrongtype_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.set("str", "v")
        s.sadd("set", "m")
        for name in ("str", "set"):
            with pytest.raises(WrongTypeError):
                s.hget(name, "f")
            with pytest.raises(WrongTypeError):
                s.hexists(name, "f")


def test_a_hash_at_the_largest_counts_the_layout_accepts_is_read(tmp_path):
    """Only what the layout's check of a count refuses is refused: one below each bound is a hash."""
    path = str(tmp_path / "kv")
    top = (1 << 48) - 1
    with DB(path) as db:
        db.put(b"\x00mbar", b"h" + _COUNTS.pack(top, top))
        db.put(FIELD, b"old")
    with Structures(path) as s:
        assert s.hget("bar", "f") == b"old" and s.hget("bar", "g") is None
        assert s.hexists("bar", "f") and not s.hexists("bar", "g")
        assert s.hstrlen("bar", "f") == 3
        assert s.hmget("bar", "f", "g") == [b"old", None]


def test_a_hash_of_the_layout_and_a_missing_key_read_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        assert s.hset("bar", mapping={"f": "one", "g": "two"}) == 2
        assert s.hget("bar", "f") == b"one" and s.hget("bar", "h") is None
        assert s.hexists("bar", "g") and s.hstrlen("bar", "g") == 3
        assert s.hmget("bar", "f", "h") == [b"one", None]
        assert s.hget("nokey", "f") is None and not s.hexists("nokey", "f")
        assert s.hmget("nokey", "f") == [None]
