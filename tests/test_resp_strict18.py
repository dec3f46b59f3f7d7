"""Array and bulk string lengths read as strictly as Redis 7 reads them: ``*01``, ``$04``, ``*-0``,
``*+1`` are invalid lengths (the reply is the protocol error and the connection is closed), with
the Python parser and with hiredis reading whole commands."""

from __future__ import annotations

import socket

import pytest
from hiredis import Reader

from kv_backend.server import protocol
from kv_backend.server.protocol import Parser, ProtocolError
from kv_backend.structures import CommandError, Structures

PING = b"*1\r\n$4\r\nPING\r\n"
QUIT = b"*1\r\n$4\r\nQUIT\r\n"
MULTIBULK = "Protocol error: invalid multibulk length"
BULK = "Protocol error: invalid bulk length"

#: (bytes sent, the error Redis 7 answers): each is refused, never answered +PONG.
REFUSED = [
    (b"*01\r\n$4\r\nPING\r\n", MULTIBULK),
    (b"*00\r\n" + PING, MULTIBULK),
    (b"*-0\r\n" + PING, MULTIBULK),
    (b"*-01\r\n" + PING, MULTIBULK),
    (b"*+1\r\n$4\r\nPING\r\n", MULTIBULK),
    (b"* 1\r\n$4\r\nPING\r\n", MULTIBULK),
    (b"*-99999999999999999999\r\n" + PING, MULTIBULK),
    (b"*-9223372036854775809\r\n" + PING, MULTIBULK),
    (b"*1\r\n$04\r\nPING\r\n", BULK),
    (b"*1\r\n$0004\r\nPING\r\n", BULK),
    (b"*1\r\n$-0\r\n", BULK),
    (b"*1\r\n$-1\r\n", BULK),
    (b"*1\r\n$+4\r\nPING\r\n", BULK),
    (b"*1\r\n$4 \r\nPING\r\n", BULK),
    (b"*2\r\n$4\r\nECHO\r\n$01\r\nx\r\n", BULK),
]

#: Null, empty and negative arrays Redis skips: the PING after them is answered.
SKIPPED = [b"*0\r\n", b"*-1\r\n", b"*-5\r\n", b"*-9223372036854775808\r\n"]


@pytest.fixture(params=["hiredis", "python"])
def parser(request, monkeypatch):
    """A parser reading whole commands with hiredis, or the Python parser alone."""
    if request.param == "python":
        monkeypatch.setattr(protocol, "_HiredisReader", None)
    made = Parser()
    assert (made.reader is not None) == (request.param == "hiredis")
    return made


@pytest.mark.parametrize(("data", "error"), REFUSED)
def test_lengths_redis_refuses_are_protocol_errors(parser, data, error):
    with pytest.raises(ProtocolError, match=f"^{error}$"):
        parser.feed(data)


@pytest.mark.parametrize("data", SKIPPED)
def test_empty_null_and_negative_arrays_are_skipped(parser, data):
    assert parser.feed(data + PING) == [[b"PING"]]


def test_commands_before_an_invalid_length_are_kept(parser):
    with pytest.raises(ProtocolError, match=MULTIBULK) as caught:
        parser.feed(PING + b"*01\r\n$4\r\nPING\r\n")
    assert caught.value.commands == [[b"PING"]]


@pytest.mark.parametrize(("data", "error"), REFUSED)
def test_hiredis_does_not_read_a_length_redis_refuses(data, error):
    """hiredis refuses such a read itself (it reads lengths as Redis does), which then goes to the
    Python parser, whose error the client gets: a release of hiredis that took ``*01`` would fail here."""
    assert protocol._read_whole(Reader(), data) is None


def test_hiredis_still_reads_plain_pipelines():
    echoes = b"*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
    data = b"*0\r\n*-1\r\n" + PING + echoes
    assert protocol._read_whole(Reader(), data) == [[b"PING"], [b"ECHO", b"0123456789"], [b"ECHO", b""]]


def _exchange(port: int, data: bytes) -> tuple[bytes, bool]:
    """Send ``data``; return what came back and whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        sock.settimeout(0.5)
        got = b""
        try:
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    return got, True
                got += chunk
        except TimeoutError:
            return got, False


def test_server_answers_invalid_lengths_as_redis_does(ports):
    for data, error in REFUSED[:3] + REFUSED[8:11]:
        replies = [_exchange(port, PING + data + PING) for port in ports]
        assert replies[1] == replies[0] == (b"+PONG\r\n-ERR %s\r\n" % error.encode(), True), data
    for data in SKIPPED:
        # QUIT closes the connection at once if it is still served: no wait for a close that never comes
        replies = [_exchange(port, data + PING + QUIT) for port in ports]
        assert replies[1] == replies[0] == (b"+PONG\r\n+OK\r\n", True), data


# ---------------------------------------------------------------- XADD ms-* past the last sequence

_LAST_SEQ = "5-18446744073709551615"


@pytest.mark.parametrize("trim", [(), ("MAXLEN", "0"), ("NOMKSTREAM",)])
def test_xadd_ms_star_after_the_last_sequence_of_that_ms_answers_as_redis(raw, trim):
    """``XADD s 5-*`` when ``5-18446744073709551615`` is the stream's last ID: Redis 7.0 answers
    'Elements are too large to be stored' (kvb said 'equal or smaller than the target stream top
    item', which Redis answers for a millisecond below the last one)."""
    replies = []
    for conn in raw:
        replies.append(
            [
                conn.call("XADD", "s", _LAST_SEQ, "a", "1"),
                conn.call("XADD", "s", *trim, "5-*", "a", "2"),
                conn.call("XADD", "s", *trim, "4-*", "a", "3"),
                conn.call("XADD", "s", *trim, "6-*", "a", "4"),
                conn.call("XLEN", "s"),
            ]
        )
    assert replies[1] == replies[0]
    assert replies[1][1] == b"-ERR Elements are too large to be stored\r\n"
    assert replies[1][2].endswith(b"is equal or smaller than the target stream top item\r\n")
    assert replies[1][3] == b"$3\r\n6-0\r\n"


def test_structures_xadd_ms_star_after_the_last_sequence(tmp_path):
    st = Structures(str(tmp_path / "db"))
    try:
        st.xadd(b"s", {b"a": b"1"}, id=_LAST_SEQ.encode())
        with pytest.raises(CommandError, match=r"^ERR Elements are too large to be stored$"):
            st.xadd(b"s", {b"a": b"2"}, id=b"5-*")
        assert st.xlen(b"s") == 1
    finally:
        st.close()


# ---------------------------------------------------------------- CONFIG SET hz


def test_config_set_hz_is_taken_as_redis_takes_it(raw):
    """Clients and tools set hz; kvb answered 'Unknown option or number of arguments for CONFIG SET'."""
    steps = [
        ("CONFIG", "SET", "hz", "1000"),
        ("CONFIG", "GET", "hz"),
        ("CONFIG", "SET", "HZ", "0"),
        ("CONFIG", "GET", "hz"),
        ("CONFIG", "SET", "hz", "-1"),
        ("CONFIG", "SET", "hz", "05"),
        ("CONFIG", "SET", "hz", "abc"),
        ("CONFIG", "SET", "hz", "2147483648"),
        ("CONFIG", "SET", "hz", "20", "hz", "30"),
        ("CONFIG", "SET", "hz", "100"),
        ("CONFIG", "GET", "hz"),
    ]
    replies = []
    try:
        for conn in raw:
            replies.append([conn.call(*args) for args in steps])
            info = conn.call("INFO", "server")
            replies[-1].append([line for line in info.split(b"\r\n") if line.startswith(b"configured_hz:")])
    finally:
        for conn in raw:
            conn.call("CONFIG", "SET", "hz", "10")
    assert replies[1] == replies[0]
    ours = replies[1]
    assert ours[0] == b"+OK\r\n"
    assert b"500" in ours[1] and b"$1\r\n1\r\n" in ours[3]
    assert ours[4] == (
        b"-ERR CONFIG SET failed (possibly related to argument 'hz') - argument must be "
        b"between 0 and 2147483647 inclusive\r\n"
    )
    assert ours[5].endswith(b"argument couldn't be parsed into an integer\r\n")
    assert ours[8].endswith(b"duplicate parameter\r\n")
    assert b"100" in ours[10] and ours[11] == [b"configured_hz:100"]


# ---------------------------------------------------------------- a CR or LF quoted in a protocol error


@pytest.mark.parametrize("data", [b"*1\r\n\r\n", b"*1\r\n\nPING\r\n", b"*2\r\n$4\r\nECHO\r\n\r\nx\r\n"])
def test_a_line_end_quoted_by_a_protocol_error_is_a_space(ports, data):
    """'expected '$', got ...' quoted a CR or LF as it came, so the error line ended early (a client
    splitting lines at LF read half an error and then a stray line); Redis sends a space."""
    replies = [_exchange(port, data) for port in ports]
    assert replies[1] == replies[0] == (b"-ERR Protocol error: expected '$', got ' '\r\n", True)
