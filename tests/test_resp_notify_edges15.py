"""Keyspace events of writes that end up changing nothing, compared with a real redis-server 7.0:
a BITFIELD whose every write ``OVERFLOW FAIL`` refused (the string still grows, with no event) and a
ZINCRBY that leaves the score as it was (an increment of 0, ``inf`` plus 1)."""

from __future__ import annotations

import test_resp_notify

clients = test_resp_notify.clients
events_of = test_resp_notify.events_of

# each sequence's events were compared with redis-server's (before the fix, kvb published the
# events marked here)
CASES = [
    "bitfield c overflow fail set u1 1 -9223372036854775808",  # kvb: setbit (the key was created)
    "set d a",
    "bitfield d overflow fail incrby u8 16 1000",  # kvb: setbit (the string grew)
    "bitfield d overflow fail incrby u8 0 1000 overflow wrap incrby u8 40 0",  # grew; a write done
    "bitfield d set u8 0 97",  # the same byte: no event in either
    "bitfield d set u8 0 98 overflow fail incrby u8 0 1000",  # one write done, one refused
    "bitfield_ro d get u8 0",
    "zadd z inf m 1 n",
    "zincrby z 1 m",  # kvb: zincr (inf + 1 is inf)
    "zincrby z 0 n",  # kvb: zincr
    "zincrby z 0 new",
    "zincrby z 1 n",
    "zadd z incr 0 n",
]


def test_writes_that_change_nothing_publish_what_redis_publishes(ports, clients):
    want, got = (events_of(p, CASES, "KEA") for p in ports)
    assert got == want
    assert "bitfield c overflow fail set u1 1 -9223372036854775808 -> " in got  # no event
    assert "zincrby z 0 n -> " in got
