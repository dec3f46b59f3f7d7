"""SHUTDOWN, the way ops tooling stops a Redis server (``redis-cli shutdown``, redis-py's
``shutdown()``, init scripts), was an unknown command to ``kvb serve``; and a clean stop (SIGTERM,
SHUTDOWN) left the store unsynced, where redis-server fsyncs its append-only file when it stops."""

from __future__ import annotations

import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from resp_helpers import Raw, RunningServer

from kv_backend.db import DB
from kv_backend.server import resp
from kv_backend.structures import Structures


def _stored(store: str, key: bytes) -> bytes | None:
    db = DB(store)
    try:
        return Structures(db).get(key)
    finally:
        db.close()


def test_shutdown_stops_the_server_after_what_came_before_it(tmp_path):
    store = str(tmp_path / "store")
    server = RunningServer(store).start()
    try:
        conn = Raw(server.port, 2)
        # one read: the SET before SHUTDOWN runs and is answered; SHUTDOWN gets no reply (the
        # connection closes, as Redis's), and what came after it does not run
        conn.sock.sendall(b"SET before 1\r\nSHUTDOWN\r\nSET after 1\r\n")
        assert conn.file.read() == b"+OK\r\n"
        conn.close()
        assert server.proc.wait(15) == 0
        err = server.proc.stderr.read().decode()
        assert "SHUTDOWN from 127.0.0.1:" in err and err.endswith("kvb serve: stopped\n")
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
    finally:
        server.stop()
    assert _stored(store, b"before") == b"1"
    assert _stored(store, b"after") is None


def test_redis_py_shutdown_returns_as_against_redis_server(tmp_path):
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        # (without retries: redis-py 6+ would try the stopped server again, with back-off, for 4-5 s)
        client = redis.Redis(port=server.port, retry=Retry(NoBackoff(), 0))
        client.set("k", "v")
        assert client.shutdown() is None  # it takes the closed connection for success
        assert server.proc.wait(15) == 0
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        ([b"SHUTDOWN", b"ABORT"], b"-ERR No shutdown in progress.\r\n"),
        ([b"shutdown", b"abort", b"ABORT"], b"-ERR No shutdown in progress.\r\n"),
        ([b"SHUTDOWN", b"ABORT", b"NOW"], b"-ERR syntax error\r\n"),
        ([b"SHUTDOWN", b"SAVE", b"NOSAVE"], b"-ERR syntax error\r\n"),
        ([b"SHUTDOWN", b"LATER"], b"-ERR syntax error\r\n"),
    ],
)
def test_shutdown_errors_are_redis_errors_and_stop_nothing(tmp_path, args, reply):
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        assert conn._reply(args) == reply
        assert not conn.close_after_reply
    finally:
        server.close()


@pytest.mark.parametrize("name", [b"SHUTDOWN", b"SAVE"])
def test_shutdown_and_save_are_refused_inside_multi_as_in_redis(tmp_path, name):
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        assert conn._reply([b"MULTI"]) == b"+OK\r\n"
        assert conn._reply([name]) == b"-ERR Command not allowed inside a transaction\r\n"
        assert conn._reply([b"EXEC"]) == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        assert not conn.close_after_reply
    finally:
        server.close()


def test_scripts_may_not_call_shutdown(tmp_path):
    pytest.importorskip("lupa")
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        reply = conn._reply([b"EVAL", b"return redis.call('shutdown')", b"0"])
        assert reply.startswith(b"-ERR This Redis command is not allowed from script")
    finally:
        server.close()


def test_a_clean_stop_fsyncs_the_store(tmp_path, monkeypatch):
    server = resp.Server(str(tmp_path / "store"))
    synced = []
    real = server.db.sync
    monkeypatch.setattr(server.db, "sync", lambda: synced.append(real()))
    resp.Connection(server).execute([b"SET", b"k", b"v"])
    server.close()
    assert synced == [None]
