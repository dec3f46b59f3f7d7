"""Differences from redis-server 7.0 found by a hunt with redis-py and redis-cli side by side, each
checked against a real redis-server where it runs (the ``ports`` fixture) and in-process."""

from __future__ import annotations

import math

import pytest
from resp_helpers import Raw, wait_blocked

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


def _command(*args: str) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)


def _pipeline_beside_a_waiter(port: int, blocking: tuple[str, ...], pipeline: list[tuple[str, ...]]):
    """Run ``pipeline`` (sent in one write) while another client waits in ``blocking``: the
    pipeline's replies, the waiter's reply and the lists ``a`` and ``b`` after."""
    conn, waiter = Raw(port, 2), Raw(port, 2)
    try:
        conn.call("FLUSHALL")
        waiter.sock.sendall(_command(*blocking))
        wait_blocked(conn)
        conn.sock.sendall(b"".join(_command(*c) for c in pipeline))
        replies = [conn._read() for _ in pipeline]
        lists = [conn.call("LRANGE", key, "0", "-1") for key in ("a", "b")]
        return replies, waiter._read(), lists
    finally:
        conn.close()
        waiter.close()


@pytest.mark.parametrize(
    ("blocking", "pipeline"),
    [
        (("BLPOP", "a", "5"), [("RPUSH", "a", "x"), ("LPOP", "a")]),
        (("BLPOP", "a", "5"), [("RPUSH", "a", "x", "y"), ("LPOP", "a"), ("LLEN", "a")]),
        (("BLMOVE", "a", "b", "LEFT", "RIGHT", "5"), [("RPUSH", "a", "x"), ("LPOP", "a"), ("LPOP", "b")]),
        (("BZPOPMIN", "a", "5"), [("ZADD", "a", "1", "m"), ("ZPOPMIN", "a")]),
        (
            ("BLPOP", "a", "5"),  # a transaction is one command: its own pop takes first
            [("MULTI",), ("RPUSH", "a", "x"), ("LPOP", "a"), ("EXEC",), ("RPUSH", "a", "y")],
        ),
    ],
)
def test_a_waiter_is_served_right_after_the_command_that_fed_it(ports, blocking, pipeline):
    """A client blocked on a key gets what a command adds to it before the next command runs, as
    in Redis: kvb served waiters only after the whole pipeline (of every client read in the same
    turn), so a pipelined RPUSH then LPOP took the element from under the waiting BLPOP."""
    real, ours = (_pipeline_beside_a_waiter(port, blocking, pipeline) for port in ports)
    assert ours == real
