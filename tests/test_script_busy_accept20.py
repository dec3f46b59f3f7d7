"""A client that connected just as a script started to run long waited for the script's end, where
redis-server 7 answers it BUSY: the event loop had accepted its connection in the turn the script's
EVAL was read in, and set it up (its protocol, reading from it) only in a later one, which the script
held up, so that the script's pump did not know it. Now the server accepts each connection and makes
it at once in the loop's own callback, then hands the socket over to the event loop."""

from __future__ import annotations

import asyncio
import signal
import socket
import time

import pytest
from resp_helpers import Raw, RunningServer
from test_script_busy19 import BUSY

from kv_backend.server import resp
from kv_backend.server.listen import AcceptedTransport


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return request.param


def test_a_client_connecting_as_the_script_starts_is_answered_busy(tmp_path, loop, monkeypatch):
    monkeypatch.setenv("KVB_EVENT_LOOP", loop)
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        caller = Raw(server.port, 2)
        assert caller.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        # Stopped, the server finds the script's EVAL and the new connection in one turn of its loop.
        server.proc.send_signal(signal.SIGSTOP)
        try:
            caller.sock.sendall(b'EVAL "while true do end" 0\r\n')
            late = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            late.sendall(b"PING\r\n")
            time.sleep(0.2)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        started = time.monotonic()
        assert late.recv(200) == BUSY  # (it waited for the script's end, and then got PONG)
        assert time.monotonic() - started < 5
        late.sendall(b"SCRIPT KILL\r\n")
        assert late.recv(200) == b"+OK\r\n"
        assert caller._read().startswith(b"-ERR Script killed")
        late.sendall(b"CLIENT LIST\r\n")  # the event loop serves it from now on
        time.sleep(0.1)
        assert late.recv(4096).count(b"id=") == 2
        late.close()
    finally:
        assert server.stop() == 0


def test_a_connection_closed_while_the_event_loop_takes_it_over_is_closed(tmp_path):
    server = resp.Server(str(tmp_path / "store"))
    ours, theirs = socket.socketpair()

    async def main() -> None:
        ours.setblocking(False)
        conn = resp.Connection(server, "unix")
        transport = AcceptedTransport(ours, conn)
        conn.connection_made(transport)
        assert server.clients == {conn.id: conn}
        task = asyncio.ensure_future(transport.hand_over())
        await asyncio.sleep(0)  # the event loop has the socket; its transport is not set up yet
        assert transport.handed and conn.transport is transport
        transport.close()  # (CLIENT KILL, the server stopping...)
        assert server.clients == {} and conn.transport is None
        await task
        for _ in range(10):
            await asyncio.sleep(0)
        assert conn.transport is None and server.clients == {}

    try:
        asyncio.run(main())
        theirs.settimeout(5)
        assert theirs.recv(10) == b""  # closed, not left open by the event loop's transport
    finally:
        theirs.close()
        server.close()


def test_what_was_written_before_the_event_loop_took_over_goes_first(tmp_path):
    server = resp.Server(str(tmp_path / "store"))
    ours, theirs = socket.socketpair()

    async def main() -> None:
        ours.setblocking(False)
        conn = resp.Connection(server, "unix")
        transport = AcceptedTransport(ours, conn)
        conn.connection_made(transport)
        transport.unsent += b"+first\r\n"  # (what the socket did not take)
        await transport.hand_over()
        for _ in range(10):
            await asyncio.sleep(0)
        assert conn.transport is not transport and conn.accepted is None
        conn.data_received(b"PING\r\n")
        for _ in range(10):
            await asyncio.sleep(0)
        conn.transport.close()
        await asyncio.sleep(0.01)

    try:
        asyncio.run(main())
        theirs.settimeout(5)
        got = b""
        while chunk := theirs.recv(100):
            got += chunk
        assert got == b"+first\r\n+PONG\r\n"
    finally:
        theirs.close()
        server.close()
