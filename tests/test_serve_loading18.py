"""``kvb serve`` and ``kvb http`` listen while their store opens, answering LOADING (as redis-server
does while it loads) or ``503 loading``.

They opened the store (replaying the log of every data file without a hint file: 30 s for a large
store) before they listened: clients and health checks got "connection refused" all that time. Here
the open is held at a gate the test controls (the engine's log replay waits for a file to appear),
so the server is "loading" for exactly as long as the test needs.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import pytest
from helpers import connect_when_listening, free_port, spawn_python, start_own_server
from resp_helpers import Raw

from kv_backend.db import DB
from kv_backend.http.loading import OpenWhileListening
from kv_backend.server.resp import LOADING_ERROR, Connection, Server, _answered_while_loading, open_store
from kv_backend.structures import Structures

#: ``kvb serve`` whose store open waits, in the log replay, until the file GATE exists: then it
#: goes on ("open" in it) or fails as a damaged store would ("fail").
GATED_SERVE = """
import os, sys, time
from kv_backend import db_open
from kv_backend.errors import StorageError
replay = db_open._Opening._full_reload
def gated(self, *args, **kwargs):
    while not os.path.exists(os.environ["GATE"]):
        time.sleep(0.01)
    with open(os.environ["GATE"]) as f:
        if f.read() == "fail":
            raise StorageError(5, "the store's first data file cannot be read")
    replay(self, *args, **kwargs)
db_open._Opening._full_reload = gated
from kv_backend.cli import main
sys.exit(main(sys.argv[1:]))
"""

LOADING = b"-" + LOADING_ERROR.encode() + b"\r\n"


class GatedServer:
    def __init__(self, tmp_path, command: str, *options: str) -> None:
        self.store = str(tmp_path / "store")
        self.gate = str(tmp_path / "gate")

        def launch() -> tuple[subprocess.Popen, list[int]]:
            self.port = free_port()
            cmd = [command, "--dir", self.store, "--port", str(self.port), *options]
            self.proc = spawn_python(GATED_SERVE, *cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            return self.proc, [self.port]

        start_own_server(launch)  # (on a port of its own: see start_own_server)
        connect_when_listening(self.port).close()

    def release(self, outcome: str = "open") -> None:
        with open(self.gate + ".tmp", "w") as f:
            f.write(outcome)
        os.rename(self.gate + ".tmp", self.gate)

    def stop(self, signal_it: bool = True) -> tuple[int, str]:
        """SIGTERM the server (unless not ``signal_it``: it exits by itself) and return its exit
        status and standard error."""
        if signal_it and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise
        err = self.proc.stderr.read().decode()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code, err


@pytest.fixture
def gated(tmp_path, monkeypatch):
    monkeypatch.setenv("GATE", str(tmp_path / "gate"))  # (the server's environment: child_env)
    servers: list[GatedServer] = []

    def start(*options: str, command: str = "serve") -> GatedServer:
        server = GatedServer(tmp_path, command, *options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(10)


def _fill(store: str) -> None:
    db = DB(store)
    try:
        Structures(db).set(b"kept", b"written before the restart")
    finally:
        db.close()


def test_the_port_answers_loading_while_the_store_opens_then_serves_it(gated, tmp_path):
    _fill(str(tmp_path / "store"))
    server = gated()
    conn = Raw(server.port, 2)
    try:
        assert conn.call("PING") == LOADING
        assert conn.call("GET", "kept") == LOADING
        assert conn.call("SET", "k", "v") == LOADING
        assert conn.call("WATCH", "kept") == LOADING  # (Redis's WATCH needs no store; kvb's does)
        # what Redis answers while loading: INFO (which says so), ECHO, CLIENT, CONFIG, pub/sub
        info = conn.call("INFO", "persistence")
        assert b"\r\nloading:1\r\n" in info and b"loading_start_time:" in info
        assert conn.call("ECHO", "hi") == b"$2\r\nhi\r\n"
        assert conn.call("CLIENT", "SETNAME", "probe") == b"+OK\r\n"
        assert conn.call("PUBLISH", "ch", "m") == b":0\r\n"
        # as Redis: a refused command inside MULTI discards the transaction
        assert conn.call("MULTI") == b"+OK\r\n"
        assert conn.call("GET", "kept") == LOADING
        assert conn.call("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        assert conn.call("MULTI") == b"+OK\r\n"
        assert conn.call("ECHO", "queued") == b"+QUEUED\r\n"
        assert conn.call("EXEC") == b"-EXECABORT Transaction discarded because of: " + LOADING[1:]
        server.release()
        deadline = time.monotonic() + 20
        while conn.call("PING") == LOADING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert conn.call("PING") == b"+PONG\r\n"
        # the connection made while loading is served like any other, the store's data all there
        assert conn.call("GET", "kept") == b"$26\r\nwritten before the restart\r\n"
        assert conn.call("SET", "k", "v") == b"+OK\r\n"
        assert b"\r\nloading:0\r\n" in conn.call("INFO", "persistence")
        assert conn.call("CLIENT", "GETNAME") == b"$5\r\nprobe\r\n"
    finally:
        conn.close()
    code, err = server.stop()
    assert code == 0, err
    assert "commands that need the store are answered LOADING" in err and "serving" in err
    db = DB(str(tmp_path / "store"))
    try:
        assert Structures(db).get(b"k") == b"v"
    finally:
        db.close()


def test_authentication_comes_before_loading(gated):
    server = gated("--requirepass", "secret")
    conn = Raw(server.port, 2)
    try:
        assert conn.call("PING").startswith(b"-NOAUTH")  # as Redis: NOAUTH first
        assert conn.call("AUTH", "secret") == b"+OK\r\n"
        assert conn.call("PING") == LOADING
        assert conn.call("HELLO", "3").startswith(b"%")
        assert conn.call("PING") == LOADING
    finally:
        conn.close()
    server.release()
    server.stop()


def test_a_store_that_fails_to_open_stops_the_server_with_its_message(gated):
    server = gated()
    conn = Raw(server.port, 2)
    assert conn.call("PING") == LOADING
    server.release("fail")
    code, err = server.stop(signal_it=False)
    assert code == 2, err
    assert err.endswith("kvb: the store's first data file cannot be read\n")
    assert conn.file.read() == b""  # the connection was closed, not left answering LOADING
    conn.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()


def test_sigterm_while_the_store_opens_stops_at_once(gated):
    server = gated()
    conn = Raw(server.port, 2)
    assert conn.call("PING") == LOADING
    start = time.monotonic()
    code, err = server.stop()  # the gate is never opened: the open never ends
    assert code == 0, err
    assert time.monotonic() - start < 10
    assert "stopping before" in err and "is open" in err and err.endswith("kvb serve: stopped\n")
    conn.close()


def test_what_is_answered_while_loading_is_redis_loading_commands_that_need_no_store():
    answered = _answered_while_loading()
    assert {b"info", b"auth", b"hello", b"echo", b"client|list", b"config|get", b"subscribe"} <= answered
    assert not {b"ping", b"get", b"dbsize", b"watch", b"client|tracking"} & answered


def test_a_server_opened_at_once_is_not_loading(tmp_path):
    server = Server(str(tmp_path / "store"))
    try:
        assert not server.loading
        assert b"\r\nloading:0\r\n" in server.info([b"persistence"])
    finally:
        server.close()


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body)
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def test_http_answers_503_loading_while_the_store_opens_then_serves_it(gated, tmp_path):
    db = DB(str(tmp_path / "store"))
    db.put(b"kept", b"written before the restart")
    db.close()
    server = gated(command="http")
    for method, path, body in [
        ("GET", "/healthz", None),
        ("PUT", "/v1/keys/new", b"v"),
        ("GET", "/v1/keys/kept", None),
    ]:
        status, headers, data = _request(server.port, method, path, body)
        assert status == 503 and headers["retry-after"] == "1", (method, path, data)
        assert json.loads(data)["error"] == "loading"
    server.release()
    deadline = time.monotonic() + 20
    while _request(server.port, "GET", "/healthz")[0] == 503 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _request(server.port, "GET", "/healthz")[0] == 200
    assert _request(server.port, "GET", "/v1/keys/kept")[2] == b"written before the restart"
    assert _request(server.port, "GET", "/v1/keys/new")[0] == 404  # the PUT answered 503 stored nothing
    assert _request(server.port, "PUT", "/v1/keys/new", b"v")[0] in (200, 201)
    code, err = server.stop()
    assert code == 0, err
    db = DB(str(tmp_path / "store"))
    try:
        assert db.get(b"new") == b"v"
    finally:
        db.close()


def test_http_stops_with_the_message_of_a_store_that_fails_to_open(gated):
    server = gated(command="http")
    assert _request(server.port, "GET", "/healthz")[0] == 503
    server.release("fail")
    code, err = server.stop(signal_it=False)
    assert code == 2, err
    assert err.endswith("kvb: the store's first data file cannot be read\n")


def test_http_sigterm_while_the_store_opens_stops_at_once(gated):
    server = gated(command="http")
    assert _request(server.port, "GET", "/healthz")[0] == 503
    start = time.monotonic()
    code, err = server.stop()
    assert code == 0, err
    assert time.monotonic() - start < 10


class _Transport:
    """What Connection.connection_made asks of a transport."""

    def get_extra_info(self, name: str) -> object:
        return ("127.0.0.1", 1)


def test_a_connection_accepted_while_loading_and_made_after_the_open_is_served(tmp_path):
    """asyncio makes the protocol of an accepted connection, then calls its connection_made in a
    later callback: the store's open could end in between, and the connection, not yet among the
    server's clients when the open was handed out, had no store (BLPOP: internal error,
    AttributeError)."""
    store = str(tmp_path / "store")
    server = Server(store, loading=True)
    conn = Connection(server)  # accepted
    server.loaded(*open_store(store))  # the open ends
    conn.connection_made(_Transport())  # then the connection is made
    try:
        assert conn.execute([b"SET", b"k", b"v"]) == "OK"
        assert conn.execute([b"GET", b"k"]) == b"v"
    finally:
        server.close()


def test_commands_sent_with_a_half_close_while_the_store_opens_are_answered(gated):
    """A client that sends its commands and shuts down its side (``redis-cli`` reading a file, a
    health check with ``nc -N``) while the store opens got nothing: the commands waited for the
    store, and the end of its input closed the connection meanwhile. They are answered first."""
    server = gated()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"PING\r\nECHO hi\r\n")
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.05)  # (the server reads the end of the input while it holds the commands)
        server.release()
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    # +PONG, or LOADING if the store took longer than the first half second to open here
    assert out in (b"+PONG\r\n$2\r\nhi\r\n", LOADING + b"$2\r\nhi\r\n"), out
    server.stop()


def test_http_an_app_that_cannot_be_built_on_the_open_store_stops_the_server(tmp_path):
    """The app is built once the store is open: a failure there (a defect) stops the server with
    its error, as a failed open does, not left answering 503 loading for ever."""
    failed: list[bool] = []

    def build(db: DB) -> object:
        raise RuntimeError("no app")

    app = OpenWhileListening(lambda: DB(str(tmp_path / "store")), build, lambda: failed.append(True))

    async def start() -> None:
        messages = [{"type": "lifespan.startup"}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # (no shutdown: the task is cancelled)
            return {}

        async def send(message: dict) -> None:
            pass

        lifespan = asyncio.ensure_future(app({"type": "lifespan"}, receive, send))
        deadline = time.monotonic() + 20
        while not failed and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        lifespan.cancel()

    asyncio.run(start())
    assert failed == [True]
    assert isinstance(app.error, RuntimeError)
    assert app.db is not None
    app.close()
    assert app.db.closed
