"""A whole set Redis keeps as an intset (at most 512 members, all integers as Redis writes them) is
answered in numeric order, as redis-server 7 iterates an intset: SMEMBERS, SINTER, SUNION, SDIFF,
and SRANDMEMBER and SPOP with a count of at least the set's size; kvb answered byte order (``-5 10
2 300``) or a random one."""

from __future__ import annotations

import test_resp_differential
import test_resp_review13

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_assert_same_bytes = test_resp_review13._assert_same_bytes


def _words(line: str) -> list[bytes]:
    return [w.encode() for w in line.split()]


_COMMANDS = [
    "SADD s 10 2 -5 300 9223372036854775807 -9223372036854775808",
    "SADD t 2 300 7",
    "SMEMBERS s",
    "SINTER s",
    "SINTER s t",
    "SUNION s t",
    "SDIFF s t",
    "SRANDMEMBER s 6",
    "SRANDMEMBER s 100",
    "SMEMBERS nokey",
    "SPOP t 3",
    "EXISTS t",
    "SPOP s 100",
    "EXISTS s",
]


def test_whole_intsets_come_in_numeric_order(pair, protocol):
    commands = [_words(line) for line in _COMMANDS]
    big = [b"SADD", b"b", *(str(n).encode() for n in range(1000, 1512))]  # 512 members: an intset
    commands += [big, [b"SMEMBERS", b"b"], [b"SUNION", b"b", b"nokey"], [b"SPOP", b"b", b"512"]]
    _assert_same_bytes(pair, protocol, commands)


def test_whole_hash_comes_in_hgetall_order(pair, protocol):
    """HRANDFIELD with a count of at least the hash's size answers the whole hash in HGETALL's
    order, as Redis does (kvb shuffled it); fields added in byte order, which is the order both
    keep them in."""
    commands = [_words("HSET h a 1 b 2 c 3"), _words("HRANDFIELD h 3"), _words("HRANDFIELD h 100 WITHVALUES")]
    commands += [_words("HGETALL h"), _words("HRANDFIELD h 0"), _words("HRANDFIELD nokey 5")]
    _assert_same_bytes(pair, protocol, commands)
