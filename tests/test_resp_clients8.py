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
