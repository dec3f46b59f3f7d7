"""TCP keepalive on kvb serve's client connections, as redis-server's ``tcp-keepalive`` (300 s).

kvb serve set no keepalive: the connection of a client whose host died, or that a network cut off,
stayed open for good. It kept counting in connected_clients (and against maxclients), and a dead
client that had been waiting in BLPOP stayed first in its list's queue, so the next element pushed
went to it and was lost. Redis probes a silent connection after ``tcp-keepalive`` seconds and closes
it when the probes go unanswered. kvb serve now does the same, and ``CONFIG GET``/``CONFIG SET
tcp-keepalive`` work as in Redis (0: off; a new value applies to the connections made after it).
The kernel's keepalive timer of the server's end of a connection is read from /proc/net/tcp.
"""

from __future__ import annotations

import os
import socket

import pytest
from helpers import wait_for
from resp_helpers import Raw, RunningServer

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")


def server_end_timer(server_port: int, client: socket.socket) -> tuple[int, float] | None:
    """The timer of the server's end of ``client``'s connection: (kind, seconds left), kind 2 being
    keepalive; None while the server has not accepted it."""
    client_port = client.getsockname()[1]
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote, timer = fields[1], fields[2], fields[5]
            if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                kind, when = timer.split(":")
                return int(kind, 16), int(when, 16) / 100  # (clock ticks: USER_HZ is 100)
    return None


def _timer_of_new_connection(port: int) -> tuple[int, float]:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        client.sendall(b"PING\r\n")
        assert client.recv(100) == b"+PONG\r\n"  # (accepted and set up by now)
        wait_for(lambda: server_end_timer(port, client) is not None, 10, "the server's end in /proc/net/tcp")
        found = server_end_timer(port, client)
        assert found is not None
        return found
    finally:
        client.close()


def test_client_connections_are_kept_alive_as_redis_keeps_them(tmp_path):
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        control = Raw(server.port, 2)
        shown = control.call("CONFIG", "GET", "tcp-keepalive")
        assert shown == b"*2\r\n$13\r\ntcp-keepalive\r\n$3\r\n300\r\n"
        kind, left = _timer_of_new_connection(server.port)
        assert kind == 2 and 250 < left <= 300, (kind, left)
        assert control.call("CONFIG", "SET", "tcp-keepalive", "7") == b"+OK\r\n"
        kind, left = _timer_of_new_connection(server.port)
        assert kind == 2 and 0 < left <= 7, (kind, left)
        assert control.call("CONFIG", "SET", "tcp-keepalive", "0") == b"+OK\r\n"
        kind, _ = _timer_of_new_connection(server.port)
        assert kind == 0  # off: no timer on an idle connection
        for bad, why in (("-1", b"must be between 0 and 2147483647"), ("x", b"couldn't be parsed")):
            reply = control.call("CONFIG", "SET", "tcp-keepalive", bad)
            assert reply.startswith(b"-ERR CONFIG SET failed (possibly related to argument 'tcp-keepalive')")
            assert why in reply
        assert control.call("CONFIG", "GET", "tcp-keepalive") == b"*2\r\n$13\r\ntcp-keepalive\r\n$1\r\n0\r\n"
        control.close()
    finally:
        assert server.stop() == 0
