"""kvb serve's client-query-buffer-limit, as redis-server 7's (1 GB per client, CONFIG GET/SET).

kvb serve had no such limit: one client could make it hold requests as large as it liked, a bulk
string up to 512 MiB or a multibulk of any count. Now a client whose requests still arriving hold
more than client-query-buffer-limit bytes is closed without a reply, as redis-server closes it, and
the rest of the server goes on. CONFIG SET takes Redis's values and errors (a memory value of at least
1 MiB). Checked side by side with redis-server on the smallest limit, 1 MiB.
"""

from __future__ import annotations

import socket
import time

import pytest
from resp_helpers import Raw

MIB = 1 << 20


def _outcome(port: int, chunks: list[bytes]) -> bytes:
    """What the server answers to ``chunks`` sent in turn: its bytes, then ``<closed>`` if it closed
    the connection, or ``<open>`` if it kept it open without answering more."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    try:
        for chunk in chunks:
            sock.sendall(chunk)
            time.sleep(0.05)
        sock.settimeout(1.0)
        while True:
            data = sock.recv(65536)
            if not data:
                return got + b"<closed>"
            got += data
    except TimeoutError:
        return got + b"<open>"
    except OSError:  # (reset: the server closed with input unread)
        return got + b"<closed>"
    finally:
        sock.close()


@pytest.fixture
def limited(ports):
    """Both servers with client-query-buffer-limit 1mb (their default again afterwards)."""
    controls = [Raw(port, 2) for port in ports]
    for control in controls:
        assert control.call("CONFIG", "SET", "client-query-buffer-limit", "1mb") == b"+OK\r\n"
    yield ports
    for control in controls:
        assert control.call("CONFIG", "SET", "client-query-buffer-limit", "1gb") == b"+OK\r\n"
        control.close()


def test_config_get_and_set_answer_as_redis(ports):
    redis, ours = (Raw(port, 2) for port in ports)
    try:
        for args in (
            ("CONFIG", "GET", "client-query-buffer-limit"),
            ("CONFIG", "SET", "client-query-buffer-limit", "1000"),
            ("CONFIG", "SET", "client-query-buffer-limit", "0"),
            ("CONFIG", "SET", "client-query-buffer-limit", "abc"),
            ("CONFIG", "SET", "client-query-buffer-limit", "2mb"),
            ("CONFIG", "GET", "client-query-buffer-limit"),
            ("CONFIG", "SET", "client-query-buffer-limit", "1073741824"),
            ("CONFIG", "GET", "client-query-buffer-limit"),
        ):
            assert ours.call(*args) == redis.call(*args), args
        assert ours.call("CONFIG", "GET", "client-query-buffer-limit").endswith(b"$10\r\n1073741824\r\n")
    finally:
        redis.close()
        ours.close()


def test_a_bulk_string_past_the_limit_closes_the_client_as_redis_does(limited):
    big = b"x" * MIB
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n"
    redis, ours = (_outcome(port, [head, big, big[: MIB // 2]]) for port in limited)
    assert ours == redis == b"<closed>"
    # below the limit, a whole command is served; so are pipelines larger than it, command by command
    # (QUIT after it: the connection still served answers it and closes, no wait to see it stay open)
    whole = [b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$900000\r\n" + b"y" * 900000 + b"\r\n", b"*1\r\n$4\r\nQUIT\r\n"]
    assert [_outcome(port, whole) for port in limited] == [b"+OK\r\n+OK\r\n<closed>"] * 2
    for port in limited:
        control = Raw(port, 2)
        assert control.call("STRLEN", "k") == b":900000\r\n"  # (the other clients were served all along)
        control.close()


def test_the_arguments_of_a_command_still_arriving_count_too(limited):
    """A multibulk of a huge count, its arguments sent small: redis-server 7.0 counts only its query
    buffer (what it has not parsed yet), so it holds them all; kvb serve counts them and closes it."""
    many = b"*100000\r\n$4\r\nECHO\r\n" + b"".join(b"$1000\r\n" + b"w" * 1000 + b"\r\n" for _ in range(1100))
    assert _outcome(limited[1], [many]) == b"<closed>"
    under = b"*100000\r\n$4\r\nECHO\r\n" + b"".join(b"$1000\r\n" + b"w" * 1000 + b"\r\n" for _ in range(900))
    assert _outcome(limited[1], [under]) == b"<open>"


def test_commands_sent_behind_a_blocked_one_count_too(limited):
    """redis-server parses nothing of a blocked client's input: what it sends meanwhile (a pipeline
    behind BLPOP) stays in its query buffer, against the limit. kvb serve parses it at once and holds
    the commands: they count the same, and the client is closed the same."""
    blpop = b"*3\r\n$5\r\nBLPOP\r\n$7\r\nqbuf:22\r\n$1\r\n0\r\n"
    pings = b"*2\r\n$4\r\nECHO\r\n$100\r\n" + b"p" * 100 + b"\r\n"
    for port in limited:
        assert _outcome(port, [blpop, pings * 5000]) == b"<open>", port  # about 0.6 MB: held
        assert _outcome(port, [blpop] + [pings * 5000] * 3) == b"<closed>", port  # about 1.6 MB
        control = Raw(port, 2)
        assert control.call("LPUSH", "qbuf:22", "v") == b":1\r\n"  # nobody waits now: it stays
        assert control.call("LPOP", "qbuf:22") == b"$1\r\nv\r\n"
        control.close()


def _info_clients(port: int) -> dict[str, int]:
    control = Raw(port, 2)
    text = control.call("INFO", "clients").decode()
    control.close()
    return {k: int(v) for k, _, v in (line.partition(":") for line in text.split("\r\n")[1:]) if v.isdigit()}


def test_info_shows_the_largest_input_a_client_holds(ports):
    """INFO clients has Redis 7.0's client_recent_max_input_buffer (redis_exporter charts it), which
    shows a client holding a large request still arriving, and its other fields in Redis's order."""
    redis_fields, our_fields = (list(_info_clients(port)) for port in ports)
    assert [f for f in redis_fields if f in our_fields] == our_fields  # (Redis has one more: timeouts)
    holders = []
    for port in ports:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$800000\r\n" + b"x" * 500000)
        holders.append(sock)
    try:
        for port in ports:  # (redis-server takes it from its cron, within a second)
            deadline = time.monotonic() + 5
            while _info_clients(port)["client_recent_max_input_buffer"] < 500000:
                assert time.monotonic() < deadline, _info_clients(port)
                time.sleep(0.1)
    finally:
        for sock in holders:
            sock.close()
    deadline = time.monotonic() + 5
    while _info_clients(ports[1])["client_recent_max_input_buffer"] != 0:  # kvb: what clients hold now
        assert time.monotonic() < deadline
        time.sleep(0.05)
