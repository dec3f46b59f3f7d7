"""``kvb serve`` checked byte for byte against a real redis-server 7.0: error messages that quote
a client's bytes which are not UTF-8, and what else the review found."""

from __future__ import annotations

import math
import random
import socket
from decimal import Decimal
from fractions import Fraction

import pytest
import test_resp_differential
from resp_helpers import Raw

from kv_backend import longdouble
from kv_backend.structures import Structures

# the differential test's fixtures: a kvb serve and a redis-server, clients over RESP2 and RESP3
servers = test_resp_differential.servers
protocol = test_resp_differential.protocol
pair = test_resp_differential.pair


def _port(client) -> int:
    return client.connection_pool.connection_kwargs["port"]


def _assert_same_bytes(pair, protocol: int, commands: list[list[bytes]]) -> None:
    """Each command run on both servers over a bare connection speaking ``protocol``: kvb's reply
    must be redis-server's, byte for byte."""
    conns = [Raw(_port(c), protocol) for c in pair]
    try:
        for words in commands:
            want, got = (conn.call(*words) for conn in conns)
            assert got == want, (words, want, got)
    finally:
        for conn in conns:
            conn.close()


def _words(line: str) -> list[bytes]:
    """A command written with spaces between its words, ``\\xNN`` for a byte (and ``\\n``)."""
    return [w.encode("latin-1").decode("unicode_escape").encode("latin-1") for w in line.split(" ")]


# Commands whose error quotes an argument that is not UTF-8: Redis echoes the bytes
_QUOTING_ERRORS = [
    r"FOO\xff\xfe x\xff",
    r"CLIENT \xffzz",
    r"OBJECT \xff",
    r"CONFIG \xff",
    r"XINFO \xff",
    r"SCRIPT \xff",
    r"MEMORY \xff",
    r"PUBSUB \xff",
    r"SLOWLOG \xff",
    r"SET s 1",
    r"EXPIRE s 10 \xff",
    r"XADD st 1-0 a 1",
    r"XGROUP CREATE st g 0",
    r"XCLAIM st g c 0 1-0 \xff",
    r"XREADGROUP GROUP g\xff c STREAMS st >",
    r"XREADGROUP GROUP g c STREAMS st\xff >",
    r"XINFO CONSUMERS st g\xff",
    r"XGROUP CREATECONSUMER st g\xff c",
    r"XPENDING st g\xff",
    r"XAUTOCLAIM st g\xff c 0 0",
    r"XGROUP SETID st g\xff 0",
    r"HELLO 3 \xff",
    r"CLIENT KILL TYPE \xff",
    r"CLIENT KILL USER \xff",
    r"CLIENT LIST TYPE \xff",
    r"CONFIG SET \xff 1",
    r"FUNCTION LIST \xff",
    r"FUNCTION LOAD #!\xff\nreturn 1",
    r"FUNCTION LOAD #!lua name=x \xff=1\nreturn 1",
    r"FUNCTION LOAD #!lua name=x\nreturn 1 \xff",
    r"EVAL return 1 \xff 0",
    r"SCRIPT LOAD \xff",
    r"EVAL #!\xff\nreturn 1 0",
    r"EVAL #!lua \xff\nreturn 1 0",
    r"EVAL #!lua flags=\xff\nreturn 1 0",
    r"EVAL return redis.pcall('xreadgroup','group','g\xff','c','streams','s','>') 0",
    r"EVAL return redis.call('xreadgroup','group','g\xff','c','streams','s','>') 0",
    r"LATENCY GRAPH \xff",
    r"CLIENT TRACKING on BCAST PREFIX a\xff PREFIX a",
    r"CLIENT TRACKING on BCAST PREFIX \xff PREFIX \xff\xfe",
]


def _eval_words(line: str) -> list[bytes]:
    """EVAL/SCRIPT LOAD/FUNCTION LOAD lines: the script is everything between the command and its
    numkeys (none for the LOADs), with its spaces."""
    words = _words(line)
    if words[0] == b"EVAL":
        return [b"EVAL", b" ".join(words[1:-1]), words[-1]]
    if words[:2] in ([b"SCRIPT", b"LOAD"], [b"FUNCTION", b"LOAD"]):
        return [*words[:2], b" ".join(words[2:])]
    return words


def test_errors_quote_bytes_that_are_not_utf8_as_sent(pair, protocol):
    """An error quoting a command name, subcommand, option, key, group, prefix, shebang or a
    script's compile error put U+FFFD where the client's bytes were not UTF-8; Redis echoes the
    bytes, and so does kvb now (in scripts' errors too)."""
    _assert_same_bytes(pair, protocol, [_eval_words(line) for line in _QUOTING_ERRORS])


def test_a_protocol_error_quotes_the_byte_as_sent(servers):
    """``expected '$', got '\\xff'``: the byte came back UTF-8 encoded (``\\xc3\\xbf``)."""
    ports = [_port(c) for c in servers[2]]
    for data in (b"*1\r\n\xff3\r\nfoo\r\n", b"*1\r\n\x803\r\nfoo\r\n"):
        replies = []
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(data)
                reply = b""
                while not reply.endswith(b"\r\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
                replies.append(reply)
        want, got = replies
        assert got == want == b"-ERR Protocol error: expected '$', got '%b'\r\n" % data[4:5]


def _lua_numbers() -> list[str]:
    """Lua number expressions: the edges of %.17g's notation and of 64 bits, and random doubles."""
    exprs = ["123456789012345678.0", "1e17", "99999999999999999.0", "-1e17", "2^53", "2^62", "-2^62"]
    exprs += ["2^63", "-2^63", "2^63-1024", "2^64", "1e16", "12345678901234567.0", "0.0"]
    exprs += ["0/0", "-(0/0)", "1/0", "-1/0", "0.1", "1e-5", "0.0001", "1e300", "5e-324", "1.5", "123.0"]
    rng = random.Random(13)
    for _ in range(60):
        exponent = rng.choice([rng.randint(-30, 30), rng.randint(15, 19)])
        exprs.append(repr(rng.uniform(1, 10) * 10.0**exponent * rng.choice([1, -1])))
    exprs += [f"{float(rng.randint(-(2**63), 2**63))!r}" for _ in range(20)]
    return exprs


def test_lua_numbers_given_to_redis_call_are_written_as_redis_writes_them(pair):
    """A number a script gives ``redis.call`` is written in ``%.17g``'s notation, as Redis 7.0
    writes it: integers from 1e17 to 2^63 went as their digits (``123456789012345680`` for
    ``1.2345678901234568e+17``). The digits are the shortest that read back (docs/redis.md),
    where Redis 7.0 writes 17; a negative zero reaches kvb as an integer 0 (lupa's conversion)."""
    script = "redis.call('set', KEYS[1], {}); return redis.call('get', KEYS[1])"
    for expr in _lua_numbers():
        want, got = (c.execute_command("EVAL", script.format(expr), "1", "n") for c in pair)
        if want in (b"nan", b"-nan"):
            assert got == want, expr
            continue
        number = float(want)
        assert float(got) == number and math.copysign(1, float(got)) == math.copysign(1, number), expr
        assert (b"e" in got) == (b"e" in want), (expr, want, got)  # the same notation
        assert len(got) <= len(want), (expr, want, got)
        if number == 0 or math.isinf(number):
            assert got == want, expr
        else:
            assert got in (repr(number).encode(), str(int(number)).encode()), expr


# INCRBYFLOAT's operands and results: kvb rounded every long double whose numerator and
# denominator have bit lengths that put it just below a power of two (0.001, 341.958701...) to
# 63 bits in place of 64, and so stored other text than Redis 1 time in 15.
_INCRBYFLOAT_CASES = [
    ("341.958701", "0"),
    ("0.1", "-15965187.107385"),
    ("917592", "64055343.8"),
    ("0.1", "6885.741501"),
    ("1000.1", "6540.635252"),
    ("1434715.15304", "0"),
    ("131.927", "0.001"),
    ("0.984", "104.987367"),
    ("0.0959", "-11678.257345"),
    ("871.52990", "0.001"),
]


def test_incrbyfloat_rounds_to_long_doubles_as_redis(pair):
    for start, by in _INCRBYFLOAT_CASES:
        replies = []
        for client in pair:
            client.execute_command("SET", "f", start)
            client.execute_command("HSET", "h", "f", start)
            replies.append(
                (
                    client.execute_command("INCRBYFLOAT", "f", by),
                    client.execute_command("HINCRBYFLOAT", "h", "f", by),
                )
            )
        assert replies[1] == replies[0], (start, by)


def test_long_double_parse_rounds_to_the_nearest():
    """strtold's long double is the nearest to the decimal: for 0.001 (just below 2**-9) kvb kept
    only 63 bits, and took a neighbour two half-steps away."""
    for text in (b"0.001", b"341.958701", b"0.1", b"3", b"1000.1", b"1e-300", b"123456789.123456789"):
        exact = Fraction(Decimal(text.decode()))
        got = longdouble.parse(text)
        assert isinstance(got, Fraction)
        exponent = math.floor(math.log2(exact))
        step = Fraction(2) ** (exponent - 63)  # a long double's spacing there (64-bit significand)
        assert abs(got - exact) <= step / 2, text
        assert got.denominator & (got.denominator - 1) == 0  # a binary fraction


def test_structures_incrbyfloat_stores_what_redis_stores(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        st.set(b"f", b"341.958701")
        st.incrbyfloat(b"f", 0)
        assert st.get(b"f") == b"341.958701"
        st.hset(b"h", {b"f": b"131.927"})
        assert st.hincrbyfloat_text(b"h", b"f", b"0.001") == b"131.92800000000000001"
    finally:
        st.close()


# Timeouts above -1 ms, which Redis rounds up to 0 (for ever), and their neighbours it refuses
_TINY_NEGATIVE = ["-0.0001", "-1e-20", "-0", "-0.0", "-0.001", "-.001", "-0.00100000000000000000001"]
_TINY_NEGATIVE += ["-0.0009", "-0.0010000000001", "-0.0015", "-1", "-1e-300"]


def test_blocking_timeouts_above_minus_one_ms_are_zero_as_in_redis(pair, protocol):
    """BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX and BZMPOP refused a timeout
    of -0.0001 (or -1e-20, -0.001) as negative; Redis rounds the milliseconds up, which makes it 0,
    so they answer at once here (the keys have something) and wait for ever on empty keys."""
    commands = []
    for t in _TINY_NEGATIVE:  # each pop finds one element (a refused one leaves it: DEL)
        for pop in (["BLPOP", "l", t], ["BRPOP", "l", t], ["BLMPOP", t, "1", "l", "LEFT"]):
            commands += [["RPUSH", "l", "a"], pop, ["DEL", "l"]]
        for move in (["BLMOVE", "l", "l", "LEFT", "LEFT", t], ["BRPOPLPUSH", "l", "l", t]):
            commands += [["RPUSH", "l", "a"], move, ["DEL", "l"]]
        for pop in (["BZPOPMIN", "z", t], ["BZPOPMAX", "z", t], ["BZMPOP", t, "1", "z", "MIN"]):
            commands += [["ZADD", "z", "1", "m"], pop, ["DEL", "z"]]
    _assert_same_bytes(pair, protocol, [[w.encode() for w in words] for words in commands])


def test_a_tiny_negative_timeout_waits_for_ever(servers):
    """``BLPOP k -0.0001`` on an empty list waits until something is pushed, as timeout 0 does."""
    port = _port(servers[2][1])
    waiter, pusher = Raw(port, 2), Raw(port, 2)
    try:
        waiter.sock.sendall(b"*3\r\n$5\r\nBLPOP\r\n$5\r\nempty\r\n$7\r\n-0.0001\r\n")
        waiter.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            waiter.sock.recv(1)  # still waiting (it answered "timeout is negative")
        waiter.sock.settimeout(10)
        assert pusher.call("RPUSH", "empty", "x") == b":1\r\n"
        assert waiter._read() == b"*2\r\n$5\r\nempty\r\n$1\r\nx\r\n"
    finally:
        waiter.close()
        pusher.close()


def test_a_subscribed_resp2_client_is_refused_a_subcommand_by_its_full_name(servers):
    """Redis names the refused command by its full name (``client|kill``); kvb named the
    container (``client``)."""
    words = ["CLIENT LIST", "CONFIG GET x", "COMMAND", "COMMAND COUNT", "OBJECT HELP", "XINFO STREAM s"]
    words += ["SCRIPT FLUSH", "PUBSUB CHANNELS", "FUNCTION LIST", "CLIENT Kill x", "GET a"]
    commands = [[b"SUBSCRIBE", b"ch"]] + [w.encode().split() for w in words]
    _assert_same_bytes(servers[2], 2, commands)
