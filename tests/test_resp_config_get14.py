"""CONFIG GET names its parameters as redis-server 7 does: a name without a glob character is
answered as the client spelled it (``CONFIG GET MAXMEMORY`` answers ``MAXMEMORY``), a pattern by
the parameters' own names, each parameter once; kvb answered every one by its lower-case name."""

from __future__ import annotations

import test_resp_differential
import test_resp_review13

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair

_assert_same_bytes = test_resp_review13._assert_same_bytes

# (each answers at most one parameter kvb has too, so the order of a reply is no question)
_NAMES = [
    [b"MAXMEMORY"],
    [b"MaxMemory", b"maxmemory"],
    [b"maxmemory", b"MAXMEMORY"],
    [b"MAXMEMORY-POL*"],
    [b"maxmemory-policy", b"MAXMEMORY-POL*"],
    [b"Slowlog-Max-Len", b"nosuch"],
    [b"NOTIFY-KEYSPACE-EVENTS"],
    [b"SAVE", b"save", b"S?VE"],
]


def test_config_get_answers_names_as_given(pair, protocol):
    _assert_same_bytes(pair, protocol, [[b"CONFIG", b"GET", *names] for names in _NAMES])
