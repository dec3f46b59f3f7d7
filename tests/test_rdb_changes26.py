"""INFO persistence's rdb_changes_since_last_save was always 0 in kvb serve. redis-server counts there the
changes (its ``dirty`` count) its write commands made since the last SAVE or BGSAVE that succeeded, and
monitoring reads it as the writes not yet saved: kvb counts them as redis-server 7 does, compared here
command by command with a real redis-server (skipped without one), and a BGSAVE subtracts what was
counted when it began, once it succeeds (a failed one subtracts nothing), as redis-server's does."""

from __future__ import annotations

import pytest
from resp_helpers import Raw
from test_bgsave26 import STARTED, Gated, bgsave_ended, persistence

#: Commands run one by one on both servers (a list of commands: sent together, as one step).
STEPS: list[list[tuple[str, ...]]] = [
    [("SET", "a", "1")],
    [("SET", "a", "1")],  # (the same value: a change all the same)
    [("MSET", "k1", "1", "k2", "2", "k3", "3")],
    [("DEL", "k1", "k2", "absent")],
    [("DEL", "absent")],  # (a write that changed nothing)
    [("INCR", "n")],
    [("LPUSH", "l", "a", "b", "c")],
    [("HSET", "h", "f1", "1", "f2", "2")],
    [("HSET", "h", "f1", "1", "f2", "2")],  # (the same values: Redis counts each field)
    [("EXPIRE", "a", "100")],
    [("EXPIRE", "absent", "100")],
    [("SET", "a", "2", "NX")],
    [("SADD", "s", "a", "b", "c")],
    [("SADD", "s", "a", "d")],
    [("SREM", "s", "a", "zz")],
    [("ZADD", "z", "1", "a", "2", "b")],
    [("ZREM", "z", "a", "b")],
    [("RPUSH", "r", "a", "b", "c", "d")],
    [("LPOP", "r", "2")],
    [("LMPOP", "1", "r", "RIGHT", "COUNT", "2")],
    [("LPUSHX", "absent", "a")],
    [("HDEL", "h", "f1", "absent")],
    [("SMOVE", "s", "s2", "b")],
    [("APPEND", "a", "x")],
    [("GETDEL", "a")],
    [("MSETNX", "m1", "1", "m2", "2")],
    [("MSETNX", "m1", "1", "m3", "2")],
    [("SETEX", "e", "100", "v")],
    [("INCRBY", "n", "5")],
    [("DECR", "n")],
    [("GETSET", "n", "1")],
    [("RENAME", "n", "n2")],
    [("PERSIST", "e")],
    [("HINCRBY", "h", "f2", "1")],
    [("ZADD", "z", "1", "c")],
    [("ZADD", "z", "5", "c")],  # (a score changed: 0 added, 1 change)
    [("ZINCRBY", "z", "1", "c")],
    [("RPUSH", "q", "a", "b", "c", "d")],
    [("RPOP", "q")],
    [("LTRIM", "q", "0", "0")],
    [("LSET", "q", "0", "z")],
    [("SPOP", "s", "2")],
    [("XADD", "x", "1-1", "f", "v")],
    [("XDEL", "x", "1-1", "9-9")],
    [("XADD", "x", "2-1", "f", "v"), ("XADD", "x", "3-1", "f", "v")],
    [("XGROUP", "CREATE", "x", "g", "0")],
    [("XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", ">")],  # (its consumer made: counted too)
    [("XACK", "x", "g", "2-1", "3-1", "9-9")],
    [("ZADD", "zr", "1", "a", "2", "b", "3", "c")],
    [("ZREMRANGEBYSCORE", "zr", "2", "3")],
    [("ZREMRANGEBYRANK", "zr", "0", "5")],
    [("SETRANGE", "e", "0", "w")],
    [("SINTERSTORE", "dst", "absent", "s")],
    [("EXPIRE", "e", "-1")],
    [("ZADD", "z", "1", "a", "2", "b")],
    [("ZPOPMIN", "z", "2")],
    # (PFADD is left out: Redis counts the HyperLogLog's registers it changed, kvb 1; docs/redis.md)
    [
        ("MULTI",),
        ("SET", "t", "1"),
        ("MSET", "t1", "1", "t2", "2"),
        ("DEL", "absent"),
        ("INCR", "t"),
        ("EXEC",),
    ],
    [("MULTI",), ("GET", "t"), ("EXEC",)],
    [("EVAL", "redis.call('set', 'x', '1'); redis.call('lpush', 'y', 'a', 'b'); return 1", "0")],
    [("EVAL", "return redis.call('get', 'x')", "0")],
    [("FLUSHALL",)],
    [("FLUSHALL",)],  # (nothing to delete)
    [("SET", "a", "1"), ("SET", "b", "1"), ("SAVE",)],  # a save: none since
    [("SET", "a", "2")],
]


def changes(raw: Raw) -> int:
    return int(persistence(raw)["rdb_changes_since_last_save"])


def deltas(port: int, protocol: int = 2) -> list[int]:
    """What each step adds to rdb_changes_since_last_save on the server at ``port`` (SAVE first)."""
    raw = Raw(port, protocol)
    try:
        assert raw.call("FLUSHALL") == b"+OK\r\n" and raw.call("SAVE") == b"+OK\r\n"
        assert changes(raw) == 0
        out = []
        for step in STEPS:
            before = changes(raw)
            replies = raw.pipeline(step)
            assert not any(reply.startswith(b"-") for reply in replies), (step, replies)
            out.append(changes(raw) - before)
        return out
    finally:
        raw.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_each_write_counts_what_redis_server_counts(ports, protocol):
    redis, kvb = ports
    theirs, ours = deltas(redis, protocol), deltas(kvb, protocol)
    differ = [(step, t, o) for step, t, o in zip(STEPS, theirs, ours, strict=True) if t != o]
    assert not differ, f"(step, redis-server's, kvb's): {differ}"
    assert theirs[-2] < 0 and theirs[-1] == 1  # (the SAVE step went back to 0: a check of the check)


def test_a_bgsave_ends_and_the_count_goes_to_the_changes_since_it_began(ports):
    for port in ports:
        raw = Raw(port, 2)
        try:
            assert raw.call("SET", "bg", "1") == b"+OK\r\n"
            assert changes(raw) > 0
            assert raw.call("BGSAVE").startswith(b"+Background saving started")
            bgsave_ended(raw)
            assert persistence(raw)["rdb_last_bgsave_status"] == "ok"
            assert changes(raw) == 0
        finally:
            raw.close()


@pytest.fixture
def gated(tmp_path):
    server = Gated(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_changes_made_while_a_bgsave_runs_stay_counted_and_a_failed_one_resets_nothing(gated):
    raw = gated.client()
    for value in "123":
        assert raw.call("SET", "a", value) == b"+OK\r\n"
    assert changes(raw) == 3
    assert raw.call("BGSAVE") == STARTED
    assert gated.said() == b"T"  # (its fsync waits at the gate)
    assert raw.call("MSET", "b", "1", "c", "2") == b"+OK\r\n"
    assert changes(raw) == 5  # (nothing subtracted before it ends)
    gated.open_gate()
    bgsave_ended(raw)
    assert changes(raw) == 2  # the 3 counted when it began are saved; the MSET's 2 are not
    assert raw.call("BGSAVE") == STARTED
    assert gated.said() == b"T"
    gated.open_gate(b"f")  # this one fails
    bgsave_ended(raw)
    assert persistence(raw)["rdb_last_bgsave_status"] == "err"
    assert changes(raw) == 2
    assert raw.call("SAVE") == b"+OK\r\n"
    assert changes(raw) == 0
    assert raw.call("CONFIG", "RESETSTAT") == b"+OK\r\n" and raw.call("INCR", "n") == b":1\r\n"
    assert changes(raw) == 1  # (RESETSTAT does not zero it, as in Redis)
