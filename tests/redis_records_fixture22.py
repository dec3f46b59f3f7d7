"""A directory holding Redis keys, a function library and a cached script of ``kvb serve`` beside keys
of other front ends: what the tests of ``clear()`` and ``popitem()`` on a shared directory start from."""

from __future__ import annotations

from kv_backend.server import resp
from kv_backend.structures import Structures

LIBRARY = b"#!lua name=lib\nredis.register_function('one', function() return 1 end)"
SCRIPT = b"return 7"


def add_redis_keys(path: str) -> bytes:
    """Write Redis keys, a function library and a cached script to ``path``; the script's SHA1."""
    with Structures(path) as s:
        s.hset("h", mapping={"a": "1", "b": "2"})
        s.rpush("l", "x", "y")
        s.set("greeting", "hello")
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"FUNCTION", b"LOAD", LIBRARY]) == b"lib"
        sha: bytes = conn.execute([b"SCRIPT", b"LOAD", SCRIPT])
    finally:
        server.db.close()
    return sha


def assert_redis_keys_whole(path: str, sha: bytes) -> None:
    """The Redis keys, the function and the script :func:`add_redis_keys` wrote are all there."""
    with Structures(path) as s:
        assert s.hgetall("h") == {b"a": b"1", b"b": b"2"} and s.hlen("h") == 2
        assert s.lrange("l", 0, -1) == [b"x", b"y"] and s.get("greeting") == b"hello"
        assert s.dbsize() == 3 and s.vacuum() == 0
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"FCALL", b"one", b"0"]) == 1  # FUNCTION LIST is not empty
        assert conn.execute([b"SCRIPT", b"EXISTS", sha]) == [1]
        assert conn.execute([b"EVALSHA", sha, b"0"]) == 7
    finally:
        server.db.close()
