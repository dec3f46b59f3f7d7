"""``kvb serve`` starting on a directory where another front end wrote keys that begin with a NUL byte.

The server deletes, as it opens the store, the member records that expired or deleted Redis keys
left (``Structures.vacuum``). It took every key under a member prefix (a NUL byte and a letter) for
such a record: a key of 2 to 5 bytes another front end wrote there (a Store's ``"\\x00side"``, a
``kvb http`` PUT of ``%00side``) made it fail with a raw ``struct.error`` and the server exit at
start, and a longer one whose bytes 3 to 6 make no length it has (``"\\x00hello"``) was deleted as
a leftover. Keys that cannot be member records are now left alone.
"""

from __future__ import annotations

import redis
from resp_helpers import RunningServer

from kv_backend import DB
from kv_backend.structures import Structures

FOREIGN = {b"\x00side": b"1", b"\x00hello": b"2", b"\x00h": b"3", b"\x00zset of mine": b"4"}


def _mixed(path: str) -> None:
    with Structures(path) as s:
        s.hset("gone", mapping={"a": "1", "b": "2"})
        s.hset("kept", "f", "v")
        s.db.delete(b"\x00mgone")  # its field records are left over, as after an expiry
    with DB(path) as db:
        for key, value in FOREIGN.items():
            db.put(key, value)


def test_vacuum_leaves_keys_that_are_no_records_of_redis_keys(tmp_path):
    path = str(tmp_path / "kv")
    _mixed(path)
    with Structures(path) as s:
        assert s.vacuum() == 2  # the two fields of "gone"
        assert {k: s.db.get(k) for k in FOREIGN} == FOREIGN
        assert s.hgetall("kept") == {b"f": b"v"} and s.exists("gone") == 0


def test_the_server_starts_on_such_a_directory(tmp_path):
    path = str(tmp_path / "kv")
    _mixed(path)
    server = RunningServer(path).start()
    try:
        client = redis.Redis(port=server.port)
        assert client.ping() is True and client.hgetall("kept") == {b"f": b"v"}
    finally:
        assert server.stop() == 0
    with DB(path) as db:
        assert {k: db.get(k) for k in FOREIGN} == FOREIGN
        assert b"\x00h\x00\x00\x00\x04gonea" not in db
