"""What popular Redis client libraries (walrus, dramatiq, huey, arq, limits, django-redis, pottery,
flask-caching, aiocache...) rely on, found by running them against ``kvb serve`` and redis-server
side by side (docs/redis.md, "Tested with"). Each test sends the minimal command sequence to both
servers, raw or through redis-py, so the suite needs none of those libraries.
"""

from __future__ import annotations

import pytest


def both(raw, *args: str | bytes) -> bytes:
    """Send one command to redis-server and to kvb serve; assert the replies are the same bytes."""
    theirs, ours = (c.call(*args) for c in raw)
    assert ours == theirs, (args, theirs, ours)
    return ours


@pytest.mark.parametrize("count", ["1", "10", "1000"])
def test_zscan_of_a_small_sorted_set_is_whole_and_in_score_order(raw, count):
    """walrus's ZSet iterates (and its full-text search ranks its results) with ZSCAN: Redis
    answers a sorted set kept as a listpack (up to 128 members of up to 64 bytes) in one reply,
    in score order, whatever COUNT says; kvb answered in member byte order, a page at a time."""
    for c in raw:
        c.call("ZADD", "z", "9", "i9", "-2", "i2", "0", "i0", "1.5", "b", "1.5", "a", "-inf", "x")
    both(raw, "ZSCAN", "z", "0", "COUNT", count)
    both(raw, "ZSCAN", "z", "0", "MATCH", "i*", "COUNT", count)
    both(raw, "ZSCAN", "z", "0", "MATCH", "nothing*")
    members = [a for i in range(128) for a in (str(128 - i), f"m{i:03}")]
    for c in raw:
        c.call("ZADD", "big", *members)
    reply = both(raw, "ZSCAN", "big", "0", "COUNT", count)
    assert reply.startswith(b"*2\r\n$1\r\n0\r\n*256\r\n$4\r\nm127\r\n$1\r\n1\r\n")


def test_zscan_of_a_larger_sorted_set_still_pages(raw):
    """Past Redis's listpack limits (129 members, or one member over 64 bytes) the set is walked a
    page at a time, as before (Redis's order is then its hash table's: only the paging is
    compared), and every member comes back once."""
    kvb = raw[1]
    kvb.call("ZADD", "z", *[a for i in range(129) for a in (str(i), f"m{i:03}")])
    kvb.call("ZADD", "long", "1", "a", "2", "b" * 65)
    for key, total in (("z", 129), ("long", 2)):
        seen, cursor = 0, b"0"
        while True:
            reply = kvb.call("ZSCAN", key, cursor, "COUNT", "1")
            cursor = reply.split(b"\r\n")[2]
            seen += int(reply.split(b"\r\n")[3][1:]) // 2
            if cursor == b"0":
                break
            assert seen <= total
        assert seen == total


def test_sscan_of_an_intset_is_whole_and_in_numeric_order(raw):
    """Redis keeps a set of up to 512 integers as an intset and SSCAN answers it at once in
    numeric order; kvb answered in byte order (``10`` before ``2``), a page at a time."""
    for c in raw:
        c.call("SADD", "s", "10", "2", "-5", "30", "0", "-9223372036854775808", "9223372036854775807")
    both(raw, "SSCAN", "s", "0", "COUNT", "1")
    both(raw, "SSCAN", "s", "0", "MATCH", "*0")
    for c in raw:
        c.call("SADD", "many", *[str(i) for i in range(512, 0, -1)])
    both(raw, "SSCAN", "many", "0", "COUNT", "5")


def test_info_has_the_fields_clients_read(ports):
    """redis-py's own test suite stopped at start-up against kvb (KeyError 'arch_bits', then
    'cluster_enabled'), and monitoring code reads run_id, uptime_in_days, used_memory_human,
    maxmemory_policy...: INFO now gives these Redis fields, of the same types as redis-server's."""
    import redis

    fields = {
        "server": [
            "redis_version",
            "redis_git_sha1",
            "redis_git_dirty",
            "redis_build_id",
            "redis_mode",
            "os",
            "arch_bits",
            "process_id",
            "process_supervised",
            "run_id",
            "tcp_port",
            "server_time_usec",
            "uptime_in_seconds",
            "uptime_in_days",
            "hz",
            "configured_hz",
            "lru_clock",
            "executable",
            "config_file",
            "io_threads_active",
        ],
        "clients": ["connected_clients", "maxclients", "blocked_clients"],
        "memory": ["used_memory", "used_memory_human", "maxmemory", "maxmemory_human", "maxmemory_policy"],
        "cluster": ["cluster_enabled"],
    }
    infos = []
    for port in ports:
        with redis.Redis(port=port) as r:
            whole = r.info()
            for section, names in fields.items():
                part = r.info(section)
                assert set(names) <= set(part), (port, section, set(names) - set(part))
            infos.append(whole)
    theirs, ours = infos
    for name in [n for names in fields.values() for n in names]:
        assert type(ours[name]) is type(theirs[name]), name
    for name in ("arch_bits", "cluster_enabled", "maxmemory_human", "maxmemory_policy", "redis_mode"):
        assert ours[name] == theirs[name], name
    assert len(ours["run_id"]) == 40 and int(ours["run_id"], 16) >= 0


def test_zrank_withscore_of_redis_7_2(raw):
    """kvb reports redis_version 7.2.0, so clients that go by the version (redis-py's
    ``zrank(..., withscore=True)``, its test suite) send Redis 7.2's ZRANK/ZREVRANK ... WITHSCORE,
    which kvb refused as a wrong number of arguments. It now answers ``[rank, score]`` (the score a
    bulk string in RESP2, a double in RESP3) and a null array for a missing key or member, as
    Redis 7.2 does; built here from redis-server 7.0's ZRANK and ZSCORE replies."""
    theirs, ours = raw
    for c in raw:
        c.call("ZADD", "z", "1.5", "a", "-2", "b", "7", "c")
        c.call("SET", "s", "x")
    nil = b"_\r\n" if ours.call("HELLO").startswith(b"%") else b"*-1\r\n"
    for cmd in ("ZRANK", "ZREVRANK"):
        for member in ("a", "b", "c"):
            want = b"*2\r\n" + theirs.call(cmd, "z", member) + theirs.call("ZSCORE", "z", member)
            assert ours.call(cmd, "z", member, "withscore") == want
            assert ours.call(cmd, "z", member) == theirs.call(cmd, "z", member)
        assert ours.call(cmd, "z", "nope", "WITHSCORE") == nil
        assert ours.call(cmd, "missing", "a", "WITHSCORE") == nil
        assert ours.call(cmd, "s", "a", "WITHSCORE").startswith(b"-WRONGTYPE")
        assert ours.call(cmd, "z", "a", "WITHSCORES") == b"-ERR syntax error\r\n"
        arity = f"-ERR wrong number of arguments for '{cmd.lower()}' command\r\n".encode()
        assert ours.call(cmd, "z", "a", "WITHSCORE", "x") == arity
        assert ours.call(cmd, "z") == arity


def test_info_keyspace_and_stats_report_what_is_there(ports):
    """INFO's keyspace line said expires=0,avg_ttl=0 whatever the keys' TTLs, and there was no stats
    section (monitoring reads total_commands_processed): both now report real figures, with the
    fields and types redis-server gives, and CONFIG RESETSTAT zeroes the counters."""
    import redis

    infos = []
    for port in ports:
        with redis.Redis(port=port) as r:
            r.flushall()
            r.set("a", 1)
            r.set("b", 2, ex=100)
            r.set("c", 3, px=50_000)
            r.set("d", 4, ex=1)
            r.delete("d")  # gone: not counted
            keyspace, stats = r.info("keyspace"), r.info("stats")
            r.config_resetstat()
            after = r.info("stats")
            infos.append((keyspace, stats, after))
    (k_theirs, s_theirs, a_theirs), (k_ours, s_ours, a_ours) = infos
    assert k_ours["db0"]["keys"] == k_theirs["db0"]["keys"] == 3
    assert k_ours["db0"]["expires"] == k_theirs["db0"]["expires"] == 2
    assert 60_000 <= k_ours["db0"]["avg_ttl"] <= 75_000  # (100 s + 50 s) / 2, less the time taken
    fields = [
        "total_connections_received",
        "total_commands_processed",
        "rejected_connections",
        "pubsub_channels",
        "pubsub_patterns",
        "pubsubshard_channels",
    ]
    for name in fields:
        assert type(s_ours[name]) is type(s_theirs[name]) is int, name
    assert s_ours["total_commands_processed"] >= 7 and s_ours["total_connections_received"] >= 1
    assert a_ours["total_commands_processed"] == a_theirs["total_commands_processed"] == 1  # INFO itself
    assert a_ours["total_connections_received"] == a_theirs["total_connections_received"] == 0
