"""kvb http --header-timeout / KVB_HTTP_HEADER_TIMEOUT: how long a client may take to send a request's
head (request line and headers), plain or over TLS (after the handshake).

A connection that sends nothing in that time is closed, one that sent part of a head is answered
``408 request_timeout`` and closed (as nginx's client_header_timeout does); a client that sends its
head slowly but within the time is served, and an idle keep-alive connection is left to --keep-alive.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
from helpers import free_port, read_until_closed, spawn_python, start_own_server
from resp_helpers import stop_process
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

import kv_backend.http
from kv_backend.errors import ConfigurationError

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")
pytest.importorskip("trustme", reason="trustme is not installed (it comes with the dev extra)")
if TYPE_CHECKING:
    from tls_helpers import Certs


#: The header timeout of the servers started here.
TIMEOUT = 0.8

HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

Connect = Callable[[], socket.socket]


@contextlib.contextmanager
def _http(store: str, certs: Certs, tls: bool) -> Iterator[tuple[subprocess.Popen, Connect, int]]:
    """A kvb http started with ``--header-timeout TIMEOUT``, plain or over TLS, once it answers (on a
    port of its own: where another process listens there first, it starts on another): the process, a
    function opening a connection to it (TLS: its handshake done), and its port."""
    options = ["--ssl-certfile", certs.both] if tls else []
    client = certs.client_context()

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        proc = spawn_python(
            "import sys; from kv_backend.cli import main; sys.exit(main(['http', *sys.argv[1:]]))",
            *("--dir", store, "--port", str(port), "--header-timeout", str(TIMEOUT), *options),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return proc, [port]

    def connection_to(port: int) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        return client.wrap_socket(sock, server_hostname="127.0.0.1") if tls else sock

    def ready(proc: subprocess.Popen, ports: list[int]) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"kvb http stopped (status {proc.returncode})"
            try:
                with connection_to(ports[0]) as sock:
                    sock.sendall(HEAD)
                    if sock.recv(4096).startswith(b"HTTP/1.1 200 "):
                        return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    proc, (port,) = start_own_server(launch, ready)
    try:
        yield proc, lambda: connection_to(port), port
    finally:
        stop_process(proc)


@pytest.fixture(scope="module", params=["plain", "tls"])
def server(request, certs, tmp_path_factory) -> Iterator[tuple[subprocess.Popen, Connect]]:
    """:func:`_http`, plain or over TLS, for the module's tests (each opens connections of its own):
    the process, and a function opening a connection to it."""
    store = tmp_path_factory.mktemp("store") / "store"
    with _http(str(store), certs, request.param == "tls") as (proc, connection, _):
        yield proc, connection


@pytest.fixture
def connect(server) -> Iterator[Connect]:
    """The function opening a connection to the module's :func:`server`, still running after the test."""
    proc, connection = server
    yield connection
    assert proc.poll() is None


def _answer(sock: socket.socket) -> bytes:
    """One answer to a request on ``sock`` (a JSON body, whose length its head gives)."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(4096)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_connection_that_sends_nothing_is_closed(connect):
    started = time.monotonic()  # (before the server's timer starts)
    with connect() as sock:
        assert read_until_closed(sock) == b""  # (kept for ever: the socket's 10 s timeout fails)
        assert TIMEOUT * 0.95 <= time.monotonic() - started < 5


def test_a_partial_head_is_answered_408(connect):
    started = time.monotonic()  # (before the server's timer starts)
    with connect() as sock:
        sock.sendall(b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Le")
        answer = read_until_closed(sock)
        assert TIMEOUT * 0.95 <= time.monotonic() - started < 5
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"connection: close" in head.lower()
    error = json.loads(body)
    assert error["error"] == "request_timeout"
    assert f"{TIMEOUT:g} s" in error["message"]


def test_a_slow_but_steady_client_is_served(connect):
    """A head sent in 5 parts over 0.2 s, within the 0.8 s: answered; then the next request on the
    same connection as well, after the connection was left idle longer than the header timeout (an
    idle keep-alive connection is closed after --keep-alive seconds, 5 here, not this timeout)."""
    with connect() as sock:
        step = len(HEAD) // 5 + 1
        for start in range(0, len(HEAD), step):
            sock.sendall(HEAD[start : start + step])
            time.sleep(0.04)  # (the pace of the client, not a wait for the server)
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.settimeout(TIMEOUT * 1.25)
        with pytest.raises(TimeoutError):  # idle, not closed
            sock.recv(1)
        sock.settimeout(10)
        sock.sendall(HEAD)
        assert _answer(sock).startswith(b"HTTP/1.1 200 ")
        # the head of the next request is timed from its first byte on
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
        assert TIMEOUT * 0.95 <= time.monotonic() - started < 5


def test_the_option_and_the_variable(tmp_path, capsys, monkeypatch):
    from kv_backend.http.server import DEFAULT_HEADER_TIMEOUT, _env_header_timeout

    got: dict[str, object] = {}
    monkeypatch.setattr(kv_backend.http, "serve", lambda path, **kwargs: got.update(kwargs))
    assert run(capsys, "http", "--dir", str(tmp_path / "s"), "--header-timeout", "30")[0] == 0
    assert got["header_timeout"] == 30.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        code, _, err = run(capsys, "http", "--dir", str(tmp_path / "s"), "--header-timeout", bad)
        assert code == 2 and "--header-timeout" in err and "greater than 0" in err
    monkeypatch.delenv("KVB_HTTP_HEADER_TIMEOUT", raising=False)
    assert _env_header_timeout() == DEFAULT_HEADER_TIMEOUT == 20.0
    monkeypatch.setenv("KVB_HTTP_HEADER_TIMEOUT", "7.5")
    assert _env_header_timeout() == 7.5
    monkeypatch.setenv("KVB_HTTP_HEADER_TIMEOUT", "0")
    with pytest.raises(ConfigurationError, match="KVB_HTTP_HEADER_TIMEOUT"):
        _env_header_timeout()


def test_serve_refuses_a_header_timeout_it_cannot_use(tmp_path):
    with pytest.raises(ConfigurationError, match="header_timeout must be a number of seconds > 0"):
        kv_backend.http.serve(str(tmp_path / "store"), port=27699, header_timeout=0)
    assert not (tmp_path / "store").exists()
