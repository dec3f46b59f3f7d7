"""kvb serve over TLS: a connection the server closes (QUIT, CLIENT KILL) sends all it was given,
then its close_notify, and is ended then, even when the client never answers with its own
close_notify: its descriptor is not held for the TLS layer's shutdown timeout."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from helpers import child_env, free_port, start_own_server, tcp_ends, wait_for
from resp_helpers import stop_process
from tls_helpers import Certs

pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
pytestmark = pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")

LOOPS = ["asyncio", "uvloop"]


@contextlib.contextmanager
def _server(store: str, certs: Certs, loop: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """``kvb serve`` on a TLS port only (no client certificates asked), once it listens there (on a port
    of its own: where another process listens there first, it starts on another): its port and process."""
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    env = child_env()
    env["KVB_EVENT_LOOP"] = loop
    cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", store, "--port", "0"]
    cmd += ["--tls-cert-file", certs.cert, "--tls-key-file", certs.key, "--tls-auth-clients", "no"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out = subprocess.DEVNULL
        return subprocess.Popen([*cmd, "--tls-port", str(port)], env=env, stdout=out, stderr=out), [port]

    proc, (port,) = start_own_server(launch)
    try:
        yield port, proc
    finally:
        stop_process(proc)


def _connect(port: int, certs: Certs) -> ssl.SSLSocket:
    """A TLS connection that answers PING (waiting for the server to listen)."""
    context = ssl.create_default_context(cafile=certs.ca_file)
    deadline = time.monotonic() + 20
    while True:
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        tls = context.wrap_socket(sock, server_hostname="127.0.0.1")
        tls.sendall(b"PING\r\n")
        assert _read(tls, 7) == b"+PONG\r\n"
        return tls


def _read(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"connection closed after {len(data)} of {size} bytes"
        data += chunk
    return data


def _read_to_end(sock: ssl.SSLSocket) -> bytes:
    """All the server sends until its close_notify (this client sends none back)."""
    chunks = []
    while chunk := sock.recv(1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _server_ends(port: int) -> int:
    """How many connections to ``port`` the server holds open: its ends of TCP connections that it has
    not closed (ESTABLISHED or CLOSE_WAIT)."""
    return tcp_ends(port, {1, 8})  # (ESTABLISHED, CLOSE_WAIT)


@pytest.mark.parametrize("loop", LOOPS)
def test_quit_over_tls_sends_a_large_reply_whole_then_ends_the_connection(tmp_path, certs, loop):
    big = os.urandom(3 << 20)
    with _server(str(tmp_path / "store"), certs, loop) as (port, _):
        sock = _connect(port, certs)
        with sock:
            sock.sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n" % (len(big), big))
            assert _read(sock, 5) == b"+OK\r\n"
            sock.sendall(b"GET big\r\nQUIT\r\n")
            expected = b"$%d\r\n%s\r\n+OK\r\n" % (len(big), big)
            assert _read_to_end(sock) == expected  # (whole, then the server's close_notify)
            started = time.monotonic()
            # The socket is left open, without a close_notify: the server ends its side all the same.
            wait_for(lambda: _server_ends(port) == 0, 3, "the server's end closed")
            assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("loop", LOOPS)
def test_client_kill_of_a_silent_tls_client_ends_its_connection_at_once(tmp_path, certs, loop):
    with _server(str(tmp_path / "store"), certs, loop) as (port, _):
        killer, silent = _connect(port, certs), _connect(port, certs)
        with killer, silent:
            silent.sendall(b"CLIENT ID\r\n")
            line = b""
            while not line.endswith(b"\r\n"):
                line += _read(silent, 1)
            victim = int(line[1:-2])
            assert _server_ends(port) == 2
            killer.sendall(b"CLIENT KILL ID %d\r\n" % victim)
            assert _read(killer, 4) == b":1\r\n"
            started = time.monotonic()
            wait_for(lambda: _server_ends(port) == 1, 3, "the killed client's end closed")
            assert time.monotonic() - started < 0.5
            assert _read_to_end(silent) == b""  # (its close_notify came, nothing else)
            killer.sendall(b"INFO clients\r\n")
            info = killer.recv(65536)
            assert b"connected_clients:1\r\n" in info
