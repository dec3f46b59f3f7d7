"""Member records of a hash, set or sorted set that another front end wrote (or removed) under the key's
prefix: a Store's key ``"\\x00h" + len + name + field`` is, to the layout, a field of hash ``name``.

Such a record has the form of a member, so it passed as one: HGETALL answered two fields of a hash
HLEN counted one, SMEMBERS (and SUNION, SPOP...) a member SCARD did not count, and DUMP, RENAME and
COPY carried it into the payload or the new key, where RESTORE made it a member counted as such. The
commands that read a key's members whole now check their number against its count and raise
ForeignRecordError (kvb serve answers its text) where they differ; those that read one member or a
range cannot tell and answer it (docs/redis.md, "Storage layout"); records under a name with no key are
ignored, and a key created there removes them.
"""

from __future__ import annotations

import threading

import pytest

from kv_backend import Store
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures
from kv_backend.structures.layout import HASH, SET, ZMEM, _lp, encode_score


def _message(name: str, prefix: bytes, counted: int, found: int) -> str:
    return (
        f"ERR key '{name}' has {found} records of members in the store where its metadata counts {counted}: "
        "another front end on its directory wrote or removed records under its engine keys (those starting "
        f"{prefix!r}); DEL the key to remove them"
    )


HASH_CALLS = [
    lambda s: s.hgetall("h"),
    lambda s: s.hkeys("h"),
    lambda s: s.hvals("h"),
    lambda s: s.hrandfield("h"),
    lambda s: s.dump("h"),
    lambda s: s.rename("h", "h2"),
    lambda s: s.copy("h", "h2"),
]
SET_CALLS = [
    lambda s: s.smembers("s"),
    lambda s: s.sunion("s", "other"),
    lambda s: s.sdiff("s", "other"),
    lambda s: s.spop("s"),
    lambda s: s.srandmember("s"),
    lambda s: s.sort("s", alpha=True),
    lambda s: s.dump("s"),
    lambda s: s.rename("s", "s2"),
    lambda s: s.copy("s", "s2"),
]
ZSET_CALLS = [lambda s: s.dump("z"), lambda s: s.rename("z", "z2"), lambda s: s.copy("z", "z2")]


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.hset("h", "f", "v")
        s.sadd("s", "a")
        s.zadd("z", {"m": 1})
        s.sadd("other", "b")
    with Store(path, key_type=bytes, serializer="raw") as store:  # another front end's records
        store[HASH + _lp(b"h") + b"stray"] = b"x"
        store[SET + _lp(b"s") + b"stray"] = b""
        store[ZMEM + _lp(b"z") + b"stray"] = encode_score(2.5)  # a score, with no order index record
    return path


def _refused(s, calls, name, prefix, counted, found):
    before = dict(s.db.items())
    for call in calls:
        with pytest.raises(ForeignRecordError) as info:
            call(s)
        assert str(info.value) == _message(name, prefix, counted, found)
        assert info.value.name == name.encode() and info.value.record == prefix
    assert dict(s.db.items()) == before  # nothing written


def test_whole_reads_refuse_a_stray_record(path):
    with Structures(path) as s:
        _refused(s, HASH_CALLS, "h", HASH + _lp(b"h"), 1, 2)
        _refused(s, SET_CALLS, "s", SET + _lp(b"s"), 1, 2)
        _refused(s, ZSET_CALLS, "z", ZMEM + _lp(b"z"), 1, 2)
        # What reads one member or the count cannot tell (documented).
        assert s.hget("h", "stray") == b"x" and s.hlen("h") == 1
        assert s.sismember("s", "stray") and s.scard("s") == 1
        assert s.zscore("z", "stray") == 2.5 and s.zrange("z", 0, -1) == [b"m"] and s.zcard("z") == 1
        assert s.delete("h", "s", "z") == 3  # DEL removes them with the key
        assert list(s.db.keys()) == [b"\x00m" + b"other", SET + _lp(b"other") + b"b"]


def test_a_record_removed_alone_is_reported_too(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.hset("h", mapping={"f": "1", "g": "2"})
    with Store(path, key_type=bytes, serializer="raw") as store:
        del store[HASH + _lp(b"h") + b"f"]
    with Structures(path) as s:
        _refused(s, HASH_CALLS, "h", HASH + _lp(b"h"), 2, 1)


def test_records_under_a_name_without_a_key_are_ignored(tmp_path):
    path = str(tmp_path / "kv")
    with Store(path, key_type=bytes, serializer="raw") as store:
        store[HASH + _lp(b"h") + b"stray"] = b"x"
        store[SET + _lp(b"h") + b"stray"] = b""
    with Structures(path) as s:
        assert s.hgetall("h") == {} and s.smembers("h") == set() and s.type("h") == "none"
        assert s.keys() == [] and s.dump("h") is None
        assert s.hset("h", "f", "v") == 1 and s.hgetall("h") == {b"f": b"v"}  # the stray hash field went
        assert s.copy("h", "h2") and s.hgetall("h2") == {b"f": b"v"}


def test_kvb_serve_answers_the_same(path):
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"HGETALL", b"h"]).message == _message("h", HASH + _lp(b"h"), 1, 2)
        assert conn.execute([b"SMEMBERS", b"s"]).message == _message("s", SET + _lp(b"s"), 1, 2)
        assert conn.execute([b"DUMP", b"z"]).message == _message("z", ZMEM + _lp(b"z"), 1, 2)
        assert conn.execute([b"DEL", b"h", b"s", b"z"]) == 3
    finally:
        server.db.close()


def test_writes_of_another_process_meanwhile_are_no_stray_records(tmp_path):
    path = str(tmp_path / "kv")
    stop = threading.Event()

    def write() -> None:
        with Structures(path) as other:  # its own handle: as another process
            i = 0
            while not stop.is_set():  # (the counts change, the sizes stay small)
                other.hset("h", f"f{i % 20}", "v")
                other.hdel("h", f"f{(i + 10) % 20}")
                other.sadd("s", i % 20)
                other.srem("s", (i + 10) % 20)
                i += 1

    with Structures(path) as s:
        s.hset("h", "f", "v")
        s.sadd("s", "a")
        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(100):
                assert len(s.hgetall("h")) >= 1 and len(s.smembers("s")) >= 1
        finally:
            stop.set()
            writer.join()
        assert len(s.hgetall("h")) == s.hlen("h") and len(s.smembers("s")) == s.scard("s")


def test_a_score_record_of_a_nan_is_refused(path):
    """8 zero bytes (a Store's value) decode to a NaN, which no score is: ZSCORE answered nan."""
    with Structures(path) as s:
        s.db.put(ZMEM + _lp(b"z") + b"m", bytes(8))
        with pytest.raises(ForeignRecordError) as info:
            s.zscore("z", "m")
        assert info.value.record == ZMEM + _lp(b"z") + b"m"
