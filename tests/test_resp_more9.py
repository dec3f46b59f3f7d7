"""More of ``kvb serve``'s Redis compatibility, each checked byte for byte against a real
redis-server 7.0: XREAD naming a stream twice, ..."""

from __future__ import annotations

import shlex

import test_resp_differential
from resp_helpers import Raw

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair


def _raw_replies(pair, protocol: int, lines: list[str]) -> list[tuple[str, bytes, bytes]]:
    """Each command of ``lines`` run on both servers over a bare connection speaking ``protocol``:
    (the command, redis-server's reply, kvb's reply), the replies as the bytes sent."""
    conns = [Raw(c.connection_pool.connection_kwargs["port"], protocol) for c in pair]
    try:
        out = []
        for line in lines:
            words = shlex.split(line)
            want, got = (conn.call(*words) for conn in conns)
            out.append((line, want, got))
        return out
    finally:
        for conn in conns:
            conn.close()


def _assert_same_bytes(pair, protocol: int, lines: list[str]) -> None:
    for line, want, got in _raw_replies(pair, protocol, lines):
        assert got == want, (line, want, got)


def test_xread_of_a_stream_named_twice_answers_it_twice(pair, protocol):
    """XREAD/XREADGROUP naming one stream twice answer it twice, as Redis does: over RESP3 the
    reply is a map with a repeated key, which kvb built as a dict, losing one of them. A script that
    asked for RESP3 gets the last one, as Redis's conversion to a Lua table keeps it."""
    script = "redis.setresp(3); return cjson.encode(redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0'))"
    _assert_same_bytes(
        pair,
        protocol,
        [
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2",
            "XREAD STREAMS s s 0 0",
            "XREAD COUNT 1 STREAMS s t s 0 0 1-0",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g c STREAMS s s > >",
            "XREADGROUP GROUP g c STREAMS s s 0 1-0",
            "XREADGROUP GROUP g c BLOCK 10 STREAMS s s 0 0",
            f'EVAL "{script}" 0',
            "EVAL \"redis.setresp(3); return redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0')\" 0",
            "EVAL \"return redis.call('XREAD', 'STREAMS', 's', 's', '0', '1-0')\" 0",
        ],
    )
