"""Differences from redis-server 7.0 found by a hunt with redis-py and redis-cli side by side, each
checked against a real redis-server where it runs (the ``ports`` fixture) and in-process."""

from __future__ import annotations

import math

import pytest
from resp_helpers import Raw

from kv_backend import longdouble
from kv_backend.structures import CommandError, Structures

# A number beyond a double's range (2e308), which a long double holds (INCRBYFLOAT 1e308 on 1e308
# stores one close to it).
_BEYOND_DOUBLE = b"2" + b"0" * 308


@pytest.mark.parametrize("increment", ["inf", "-inf", "+inf", "Infinity"])
def test_incrbyfloat_of_an_infinity_on_a_value_beyond_a_double_is_redis_error(ports, increment):
    """INCRBYFLOAT of an infinity on a stored number a double cannot hold (a long double can, up to
    ~1.19e4932) answered a Python message (`ERR integer division result too large for a float`)."""
    replies = []
    for port in ports:
        conn = Raw(port, 2)
        try:
            assert conn.call("SET", "f", _BEYOND_DOUBLE) == b"+OK\r\n"
            assert conn.call("INCRBYFLOAT", "f", "0").startswith(b"$309\r\n")  # readable: a long double
            replies.append((conn.call("INCRBYFLOAT", "f", increment), conn.call("GET", "f")))
        finally:
            conn.close()
    assert replies[1] == replies[0]
    assert replies[1][0] == b"-ERR increment would produce NaN or Infinity\r\n"


def test_long_double_arithmetic_with_an_infinity_and_a_number_beyond_a_double():
    huge = longdouble.parse(b"1e4000")
    assert longdouble.add(huge, math.inf) == math.inf
    assert longdouble.add(-math.inf, huge) == -math.inf
    assert longdouble.add(-huge, math.inf) == math.inf
    assert longdouble.multiply(huge, -math.inf) == -math.inf
    assert longdouble.multiply(-huge, -math.inf) == math.inf
    with pytest.raises(ValueError):
        longdouble.multiply(longdouble.parse(b"0"), math.inf)


def test_structures_incrbyfloat_of_an_infinity_on_a_huge_value(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        st.set(b"f", _BEYOND_DOUBLE)
        with pytest.raises(CommandError, match=r"^ERR increment would produce NaN or Infinity$"):
            st.incrbyfloat(b"f", math.inf)
        with pytest.raises(CommandError, match=r"^ERR increment would produce NaN or Infinity$"):
            st.incrbyfloat(b"f", b"-inf")
        assert st.get(b"f") == _BEYOND_DOUBLE
    finally:
        st.close()


@pytest.mark.parametrize(
    "call",
    [
        ("BITPOS", "missing", "1", "a", "b", "c", "d"),
        ("BITPOS", "missing", "0", "0", "1", "BIT", "x"),
        ("BITPOS", "missing", "2", "0", "1", "BIT", "x"),
        ("BITPOS", "s", "1", "0", "1", "BIT", "x"),
        ("BITPOS", "s", "x", "0", "1", "BIT", "x"),
        ("BITPOS", "l", "1", "0", "1", "BIT", "x"),
        ("BITPOS", "l", "3", "0", "1", "BIT", "x"),
    ],
)
def test_bitpos_with_too_many_arguments_answers_as_redis(ports, call):
    """BITPOS of a missing key answers -1 (0 for a 0 bit) however many arguments follow, since
    Redis looks the key up before it counts them; kvb answered ERR syntax error."""
    replies = []
    for port in ports:
        conn = Raw(port, 2)
        try:
            conn.call("FLUSHALL")
            conn.call("SET", "s", "\xff")
            conn.call("RPUSH", "l", "a")
            replies.append(conn.call(*call))
        finally:
            conn.close()
    assert replies[1] == replies[0]
