"""kvb http over TLS against clients that behave badly or merely idly: keep-alive connections left
idle at a shutdown, clients too slow to send a request's head, neither answering the server's
close_notify (the server ends their connections all the same, as soon as all it sent is sent)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import free_port, read_http_response, spawn_python, start_own_server, tcp_ends, wait_for
from resp_helpers import stop_process
from tls_helpers import HTTP_ON_LOOP, Certs

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")
pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")

LOOPS = ["uvloop", "asyncio"]


def _client_context(certs: Certs) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certs.ca_file)


def _tls_connect(port: int, context: ssl.SSLContext, wait: float = 20) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:``port`` once a server listens there (within ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        return context.wrap_socket(sock, server_hostname="127.0.0.1")


@contextlib.contextmanager
def _https(store: str, certs: Certs, loop: str, *options: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """kvb http over TLS on uvloop's loop (which uvicorn takes where it is installed) or asyncio's."""
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop is not installed")

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        proc = spawn_python(
            HTTP_ON_LOOP,
            loop,
            *("--dir", store, "--port", str(port), "--ssl-certfile", certs.cert, "--ssl-keyfile", certs.key),
            *options,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        return proc, [port]

    # (listening on a port of its own: where another process listens there first, it starts on another)
    proc, (port,) = start_own_server(launch)
    try:
        yield port, proc
    finally:
        stop_process(proc)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_http_stops_at_once_with_idle_tls_keep_alive_clients(tmp_path, certs, loop):
    """Idle keep-alive clients (a pool) never answer the close_notify the shutdown sends them: the
    server stops as soon as their connections' last bytes are sent, as it does for plain ones, not
    after the whole grace period, and each client sees its connection closed."""
    with _https(str(tmp_path / "store"), certs, loop) as (port, proc):
        context = _client_context(certs)
        idle = []
        for _ in range(3):
            sock = _tls_connect(port, context)
            sock.settimeout(5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_http_response(sock, whole=True)[0].startswith(b"HTTP/1.1 200 ")
            idle.append(sock)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            status = proc.wait(4)
        except subprocess.TimeoutExpired:
            pytest.fail("kvb http still stopping 4 s after SIGTERM, its idle TLS clients kept")
        took = time.monotonic() - started
        err = proc.stderr.read()
        assert status == 0, err
        assert took < 3, f"the shutdown took {took:.1f} s"
        assert "graceful shutdown exceeded" not in err
        for sock in idle:
            with sock:
                try:
                    assert sock.recv(100) == b""  # (the server's close_notify, or the connection's end)
                except (ConnectionError, ssl.SSLError):
                    pass


@pytest.mark.parametrize("loop", LOOPS)
def test_http_shutdown_sends_a_large_tls_response_whole(tmp_path, certs, loop):
    """A response of several MiB that a client has not read yet when the shutdown starts (most of it
    waiting in the server's buffers) still reaches it whole before its connection is ended."""
    value = bytes(range(256)) * (6 * 4096)  # 6 MiB
    with _https(str(tmp_path / "store"), certs, loop) as (port, proc):
        sock = _tls_connect(port, _client_context(certs))
        sock.settimeout(5)
        with sock:
            head = f"PUT /v1/keys/big HTTP/1.1\r\nHost: x\r\nContent-Length: {len(value)}\r\n\r\n"
            sock.sendall(head.encode() + value)
            assert read_http_response(sock, whole=True)[0].startswith(b"HTTP/1.1 201 ")
            sock.sendall(b"GET /v1/keys/big HTTP/1.1\r\nHost: x\r\n\r\n")
            first = sock.recv(65536)  # (the response has begun: the rest waits, unread)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)  # (a client that reads slowly: the shutdown has begun meanwhile)
            received = bytearray(first)
            while chunk := sock.recv(1 << 20):
                received += chunk
        assert received.endswith(b"\r\n\r\n" + value)
        assert proc.wait(5) == 0


def _server_ends(port: int) -> int:
    """How many connections to ``port`` the server holds open: its ends of TCP connections that it has
    not closed (ESTABLISHED or CLOSE_WAIT)."""
    return tcp_ends(port, {1, 8})  # (ESTABLISHED, CLOSE_WAIT)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
@pytest.mark.parametrize("loop", LOOPS)
def test_http_header_timeout_ends_tls_connections_whose_clients_stay_silent(tmp_path, certs, loop):
    """--header-timeout closes a TLS connection that sent nothing after its handshake, or part of a
    head (answered 408 first): its descriptor and its place are given back then, as for a plain one,
    not once the client answers the server's close_notify (a silent client never does) or the TLS
    layer gives up waiting for it (30 s later)."""
    with _https(str(tmp_path / "store"), certs, loop, "--header-timeout", "0.5") as (port, _):
        context = _client_context(certs)
        first = _tls_connect(port, context)
        first.close()
        wait_for(lambda: _server_ends(port) == 0, 10, "the first connection closed")
        silent = _tls_connect(port, context)
        partial = _tls_connect(port, context)
        with silent, partial:
            silent.settimeout(5)
            partial.settimeout(5)
            partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert partial.recv(65536).startswith(b"HTTP/1.1 408 ")
            wait_for(lambda: _server_ends(port) == 0, 3, "both connections ended by the server")
            assert time.monotonic() - started < 2.5


class _FakeTransport:
    """A transport that only records: its write buffer's size is set by the test."""

    def __init__(self) -> None:
        self.buffered = 0
        self.closed = self.aborted = False
        self.reading = True
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def test_http_tls_close_waits_for_the_response_to_be_sent_before_the_tls_close():
    """The TLS layers force a connection closed 30 s after its TLS close began, sent or not: a large
    response to a slow client (Connection: close, a shutdown) was cut there (a 60 MiB one read at
    1 MiB/s arrived 33.7 MiB long). The TLS close now begins once the response is with the kernel;
    meanwhile the connection says it is closing, reads nothing more and writes nothing more."""
    import asyncio

    from kv_backend.server.tlsclose import EndingTLS

    async def scenario() -> None:
        tls, tcp = _FakeTransport(), _FakeTransport()
        ending = EndingTLS(tls, tcp)
        tls.buffered = 1 << 20  # (the response, not sent yet)
        ending.close()
        assert ending.is_closing() and not tls.closed and not tls.reading
        ending.write(b"more")
        ending.resume_reading()  # (uvicorn's flow control, as the buffer drains)
        assert tls.written == [] and not tls.reading
        await asyncio.sleep(0.1)
        assert not tls.closed and not tcp.aborted  # (still sending)
        tls.buffered, tcp.buffered = 0, 4096
        await asyncio.sleep(0.3)
        assert not tls.closed  # (the TCP transport still holds some)
        tcp.buffered = 0
        for _ in range(100):
            await asyncio.sleep(0.01)
            if tcp.aborted:
                break
        assert tls.closed and tcp.aborted  # (TLS close sent, then the connection ended)

    asyncio.run(scenario())
