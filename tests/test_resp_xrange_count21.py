"""XRANGE and XREVRANGE read their COUNT options as redis-server 7.0 does: COUNT may be given more
than once (the last one counts) and each value is read where it stands, so a bad count followed by a
stray word or another COUNT is `value is not an integer or out of range`, where kvb answered
`syntax error` (and refused a repeated COUNT that Redis takes). Checked side by side with a real
redis-server (the ``raw`` fixture: RESP2 and RESP3)."""

from __future__ import annotations

import pytest

_NOT_INT = b"-ERR value is not an integer or out of range\r\n"
_SYNTAX = b"-ERR syntax error\r\n"

# (the words after the range, the reply for the stream s of two entries: an error, or how many
# entries it holds)
_SHAPES = [
    (["COUNT", "1", "COUNT", "2"], 2),
    (["COUNT", "2", "count", "1"], 1),
    (["COUNT", "-1", "COUNT", "1"], 1),
    (["COUNT", "1.5", "x"], _NOT_INT),
    (["COUNT", "1", "COUNT", "x"], _NOT_INT),
    (["COUNT", "x", "COUNT", "1"], _NOT_INT),
    (["COUNT", "99999999999999999999", "COUNT"], _NOT_INT),
    (["COUNT", "1", "COUNT"], _SYNTAX),
    (["COUNT", "1", "x"], _SYNTAX),
    (["x", "COUNT", "1"], _SYNTAX),
    (["COUNT", "+"], _NOT_INT),
]


@pytest.mark.parametrize(("words", "expected"), _SHAPES, ids=[" ".join(w) for w, _ in _SHAPES])
@pytest.mark.parametrize("command", ["XRANGE", "XREVRANGE"])
def test_count_options_as_redis(raw, command, words, expected):
    replies = []
    for conn in raw:
        assert conn.call("XADD", "s", "1-1", "a", "1") == b"$3\r\n1-1\r\n"
        assert conn.call("XADD", "s", "2-1", "a", "2") == b"$3\r\n2-1\r\n"
        ends = ["-", "+"] if command == "XRANGE" else ["+", "-"]
        replies.append([conn.call(command, key, *ends, *words) for key in ("s", "missing")])
    assert replies[1] == replies[0]
    if isinstance(expected, bytes):
        assert replies[1] == [expected, expected]
    else:  # the last COUNT counts
        assert replies[1] == [b"*%d\r\n" % expected + replies[1][0][4:], b"*0\r\n"]


def test_a_repeated_count_of_zero_after_a_positive_one_reads_nothing(raw):
    replies = []
    for conn in raw:
        conn.call("XADD", "s", "1-1", "a", "1")
        conn.call("SET", "str", "x")
        replies.append(
            [
                conn.call("XRANGE", "s", "-", "+", "COUNT", "5", "COUNT", "0"),
                conn.call("XRANGE", "missing", "-", "+", "COUNT", "5", "COUNT", "-3"),
                conn.call("XRANGE", "str", "-", "+", "COUNT", "5", "COUNT", "0"),
            ]
        )
    assert replies[1] == replies[0]
    assert replies[1][2].startswith(b"-WRONGTYPE")
