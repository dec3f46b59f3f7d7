"""kvb http over TLS counts a connection against its connection limit from the moment it is accepted,
not once its handshake is done: connections that never complete a handshake cannot take the file
descriptors kept for the store, and one past the limit is closed at once."""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import free_port, read_until_closed, spawn_python, start_own_server, tcp_ends, wait_for
from resp_helpers import stop_process
from tls_helpers import HTTP_ON_LOOP, wait_for_https

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")
pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
httpx = pytest.importorskip("httpx", reason="httpx is not installed (it comes with the dev extra)")

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")


#: With the limit of open files at 60, kvb http keeps 28 connections (60 less the 32 it keeps).
OPEN_FILES = 60
KEPT = 28


def _server_ends(port: int) -> int:
    """How many connections to ``port`` the server holds open: its ends of TCP connections that it has
    not closed (ESTABLISHED or CLOSE_WAIT; those it closed linger in FIN_WAIT2 or TIME_WAIT)."""
    return tcp_ends(port, {1, 8})  # (ESTABLISHED, CLOSE_WAIT)


@contextlib.contextmanager
def _https(
    store: str, certfile: str, client: ssl.SSLContext, loop: str
) -> Iterator[tuple[int, subprocess.Popen]]:
    """kvb http over TLS (handshake timeout 10 s) at OPEN_FILES open files, once it answers ``client``;
    on uvloop's loop (which uvicorn takes where it is installed) or asyncio's."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        args = (loop, "--dir", store, "--port", str(port), "--ssl-certfile", certfile)
        out = subprocess.DEVNULL
        return spawn_python(HTTP_ON_LOOP, *args, stdout=out, stderr=out, preexec_fn=limit), [port]

    # (on a port of its own: where another process listens there first, it starts on another)
    proc, (port,) = start_own_server(launch, lambda proc, ports: wait_for_https(proc, ports[0], client))
    try:
        wait_for(lambda: _server_ends(port) == 0, 10, "the first client's connection closed")
        yield port, proc
    finally:
        stop_process(proc)


def _closed_by_the_server(socks: list[socket.socket], count: int, within: float) -> list[socket.socket]:
    """Wait until ``count`` of ``socks`` are closed by the server (end of file), in ``within`` seconds."""
    closed: list[socket.socket] = []
    deadline = time.monotonic() + within
    while len(closed) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
        for sock in readable:
            assert read_until_closed(sock) == b""  # (nothing written: no 503 in clear text over a TLS port)
            sock.close()
            closed.append(sock)
    return closed


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_connections_in_their_handshake_count_against_the_limit(certs, tmp_path, loop):
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    client = certs.client_context()
    with _https(str(tmp_path / "store"), certs.both, client, loop) as (port, _):
        silent: list[socket.socket] = []
        try:
            # KEPT connections that never send their ClientHello take all places...
            for _ in range(KEPT):
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            # ... and 30 more, which would take the server past its limit of open files, are
            # closed at once: not at the end of the 10 s handshake timeout
            silent.extend(socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(30))
            started = time.monotonic()
            closed = _closed_by_the_server(silent, 30, within=5)
            assert len(closed) == 30, f"{len(closed)} of the connections past the limit closed"
            assert time.monotonic() - started < 5
            held = [s for s in silent if s not in closed]
            assert not select.select(held, [], [], 0.1)[0]  # the first ones are still in their handshake
            held.pop().close()  # a place freed
            wait_for(lambda: _server_ends(port) == KEPT - 1, 10, "the server closed its end")
            # the last place serves a TLS client: the store works (no 500 for want of a descriptor)
            with httpx.Client(verify=client, timeout=10) as c:
                base = f"https://127.0.0.1:{port}/v1/keys"
                assert c.put(f"{base}/k", content=b"v" * 1000).status_code in (200, 201, 204)
                assert c.get(f"{base}/k").content == b"v" * 1000
                assert c.post(f"https://127.0.0.1:{port}/v1/merge").status_code == 200
                assert c.get(f"{base}/k").content == b"v" * 1000
                # with that place taken too, one more TLS client is closed before its handshake
                raw = socket.create_connection(("127.0.0.1", port), timeout=5)
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    client.wrap_socket(raw, server_hostname="127.0.0.1")
                raw.close()
        finally:
            for sock in silent:
                sock.close()
        wait_for(lambda: _server_ends(port) == 0, 10, "the connections closed")
        # the places are free again: TLS clients are served, KEPT of them at once
        kept: list[ssl.SSLSocket] = []
        try:
            for _ in range(KEPT):
                sock = client.wrap_socket(
                    socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="127.0.0.1"
                )
                kept.append(sock)
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        finally:
            for sock in kept:
                sock.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_shutdown_closes_the_connections_in_their_handshake(certs, tmp_path, loop):
    """SIGTERM while connections are in their handshake: kvb http closes them and exits at once,
    without waiting for their handshake timeout (10 s)."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    with _https(str(tmp_path / "store"), certs.both, certs.client_context(), loop) as (port, proc):
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
        try:
            wait_for(lambda: _server_ends(port) == 3, 10, "the connections accepted")
            started = time.monotonic()
            proc.terminate()
            assert proc.wait(5) == 0
            for sock in silent:
                assert read_until_closed(sock) == b""
            assert time.monotonic() - started < 5
        finally:
            for sock in silent:
                sock.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_request_sent_with_the_end_of_the_handshake_is_served(certs, tmp_path, loop):
    """The client's last handshake message and its request in one write: the request arrives with the
    handshake's end, before the HTTP protocol has the connection, and is answered all the same."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")
    client = certs.client_context()
    with _https(str(tmp_path / "store"), certs.both, client, loop) as (port, _):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    raw.sendall(outgoing.read())
                    data = raw.recv(65536)
                    assert data, "the server closed the connection in the handshake"
                    incoming.write(data)
            tls.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw.sendall(outgoing.read())  # the client's Finished and the request, at once
            answer = b""
            while data := raw.recv(65536):
                incoming.write(data)
                with contextlib.suppress(ssl.SSLWantReadError):
                    while chunk := tls.read(65536):
                        answer += chunk
                if answer.endswith(b"}"):
                    break
        assert answer.startswith(b"HTTP/1.1 200 "), answer
