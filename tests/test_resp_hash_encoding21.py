"""OBJECT ENCODING answered `hashtable` for a hash of 129 to 512 fields, where redis-server (7.0 and
7.2, whose hash-max-listpack-entries is 512 by default, as in the redis.conf they ship) answers
`listpack`: kvb took the sorted sets' limit, 128, for hashes too. Checked side by side with a real
redis-server (the ``raw`` fixture) and in-process."""

from __future__ import annotations

import pytest

from kv_backend.structures import Structures


@pytest.mark.parametrize("fields", [128, 129, 512, 513])
def test_hash_encoding_by_its_number_of_fields_as_redis(raw, fields):
    replies = []
    for conn in raw:
        pairs = [w for i in range(fields) for w in (f"f{i}", "v")]
        assert conn.call("HSET", "h", *pairs) == b":%d\r\n" % fields
        replies.append(conn.call("OBJECT", "ENCODING", "h"))
    assert replies[1] == replies[0]
    assert replies[1] == (b"$8\r\nlistpack\r\n" if fields <= 512 else b"$9\r\nhashtable\r\n")


def test_a_long_field_or_value_still_makes_a_hashtable(raw):
    replies = []
    for conn in raw:
        conn.call("HSET", "h", *[w for i in range(300) for w in (f"f{i}", "v")])
        conn.call("HSET", "h", "long", "x" * 65)
        replies.append(conn.call("OBJECT", "ENCODING", "h"))
    assert replies[1] == replies[0] == b"$9\r\nhashtable\r\n"


def test_structures_object_encoding_of_a_hash(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        st.hset("h", {f"f{i}": "v" for i in range(512)})
        assert st.object_encoding("h") == "listpack"
        st.hset("h", {"one more": "v"})
        assert st.object_encoding("h") == "hashtable"
        st.zadd("z", {f"m{i}": i for i in range(129)})  # (sorted sets: 128, as in Redis)
        assert st.object_encoding("z") == "skiplist"
    finally:
        st.close()
