"""XREAD read its options otherwise than redis-server 7.0: STREAMS as the last word, or no STREAMS at
all (``XREAD COUNT 1 BLOCK 1``), was answered `Unbalanced XREAD list of streams` where Redis says
`syntax error`, and GROUP or NOACK (XREADGROUP's options) were a bare `syntax error` where Redis says
they are XREADGROUP's. XREAD and XREADGROUP now read their options with one parser, as Redis does;
checked side by side with a real redis-server (the ``raw`` fixture: RESP2 and RESP3)."""

from __future__ import annotations

import pytest

_CALLS = [
    ["XREAD", "COUNT", "1", "STREAMS"],
    ["XREAD", "COUNT", "1", "BLOCK", "1"],
    ["XREAD", "COUNT", "1", "BLOCK", "1", "COUNT", "2"],
    ["XREAD", "STREAMS", "STREAMS", "x", "0"],
    ["XREAD", "GROUP", "g", "c", "STREAMS", "x", "0"],
    ["XREAD", "GROUP", "g", "STREAMS"],
    ["XREAD", "NOACK", "STREAMS", "x", "0"],
    ["XREAD", "COUNT", "x", "NOACK", "STREAMS", "x", "0"],
    ["XREAD", "COUNT", "1", "COUNT", "2", "STREAMS", "x", "0"],
    ["XREAD", "STREAMS", "x", "y", "0"],
    ["XREAD", "COUNT", "1", "STREAMS", "x", "0"],
    ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS"],
    ["XREADGROUP", "COUNT", "1", "NOACK", "STREAMS", "x", ">"],
    ["XREADGROUP", "COUNT", "1", "NOACK", "STREAMS", "x", ">", "y"],
    ["XREADGROUP", "GROUP", "g", "c", "NOACK", "NOACK", "STREAMS", "x", ">"],
    ["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "BLOCK", "x", "STREAMS", "x", ">"],
    ["XREADGROUP", "GROUP", "g", "c", "FOO", "STREAMS", "x", ">"],
    ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "x", "x", ">", ">"],
]


@pytest.mark.parametrize("call", _CALLS, ids=[" ".join(c) for c in _CALLS])
def test_xread_options_as_redis(raw, call):
    replies = []
    for conn in raw:
        assert conn.call("XADD", "x", "1-1", "f", "v") == b"$3\r\n1-1\r\n"
        assert conn.call("XGROUP", "CREATE", "x", "g", "0") == b"+OK\r\n"
        replies.append(conn.call(*call))
    assert replies[1] == replies[0]


def test_the_errors_say_what_redis_says(raw):
    kvb = raw[1]
    assert kvb.call("XREAD", "COUNT", "1", "STREAMS") == b"-ERR syntax error\r\n"
    assert kvb.call("XREAD", "NOACK", "STREAMS", "x", "0") == (
        b"-ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.\r\n"
    )
    assert kvb.call("XREAD", "GROUP", "g", "c", "STREAMS", "x", "0") == (
        b"-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.\r\n"
    )
