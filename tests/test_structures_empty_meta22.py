"""A metadata record of a hash, set, sorted set or list that counts no member.

The layout deletes a collection's metadata record with its last member (and RESTORE refuses an empty
collection, as Redis does), so one of the right size that counts none (a value of 17 bytes of
another front end: a tag and zero bytes) is no key of it. It was read as an existing, empty
collection: HLEN answered 0, HGETALL {}, RENAME and COPY moved it, DUMP made a payload Redis refuses.
Now every command that reads the count refuses it as another front end's (a stream may be empty:
XDEL of its last entry leaves it).
"""

from __future__ import annotations

import pytest

from kv_backend.structures import ForeignRecordError, Structures

RECORDS = {
    "hash": (
        b"h" + bytes(16),
        [lambda s: s.hlen("bar"), lambda s: s.hgetall("bar"), lambda s: s.hset("bar", "f", "v")],
    ),
    "set": (
        b"t" + bytes(16),
        [lambda s: s.scard("bar"), lambda s: s.smembers("bar"), lambda s: s.sadd("bar", "m")],
    ),
    "zset": (b"z" + bytes(16), [lambda s: s.zcard("bar"), lambda s: s.zadd("bar", {"m": 1})]),
    "list": (
        b"l" + bytes(8) + bytes(8) + bytes(8),
        [lambda s: s.llen("bar"), lambda s: s.lrange("bar", 0, -1)],
    ),
}
WHOLE = [lambda s: s.rename("bar", "new"), lambda s: s.copy("bar", "new"), lambda s: s.dump("bar")]


@pytest.mark.parametrize("kind", RECORDS)
def test_a_collection_that_counts_no_member_is_refused(tmp_path, kind):
    value, calls = RECORDS[kind]
    with Structures(str(tmp_path / "kv")) as s:
        s.db.put(b"\x00mbar", value)
        for call in calls + WHOLE:
            with pytest.raises(ForeignRecordError):
                call(s)
        assert s.db.get(b"\x00mbar") == value and s.exists("new") == 0
        assert s.delete("bar") == 1


def test_an_empty_stream_is_the_layouts(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.xadd("x", {"a": "b"}, id="1-1")
        assert s.xdel("x", "1-1") == 1
        assert s.xlen("x") == 0 and s.type("x") == "stream" and s.dump("x") is not None
        assert s.rename("x", "y") and s.xlen("y") == 0
