"""A systemd unit of ``Type=notify`` (the type of the usual redis-server unit, which runs it with
``supervised systemd``) waits for ``READY=1`` on ``$NOTIFY_SOCKET``: ``kvb serve`` and ``kvb http``
never sent it, so such a unit timed out starting them and systemd killed them. They now send
``READY=1`` once their store is open (they listen before it is), ``STATUS=`` while it opens and
``STOPPING=1`` when they stop."""

from __future__ import annotations

import socket
import subprocess

import pytest
from helpers import connect_when_listening, free_port, spawn_python, start_own_server
from resp_helpers import Raw
from test_serve_loading18 import GATED_SERVE, LOADING


@pytest.fixture
def manager(tmp_path, monkeypatch):
    """A stand-in for systemd's notification socket, named to the servers by $NOTIFY_SOCKET."""
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(20)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("GATE", str(tmp_path / "gate"))
    yield sock
    sock.close()


def _messages(sock: socket.socket, until: str) -> list[str]:
    """The notifications received up to the one holding ``until``."""
    got = []
    while not got or until not in got[-1]:
        got.append(sock.recv(4096).decode())
    return got


def _start(tmp_path, command: str) -> tuple[subprocess.Popen, int]:

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        args = [command, "--dir", str(tmp_path / "store"), "--port", str(port)]
        return spawn_python(GATED_SERVE, *args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    connect_when_listening(port).close()
    return proc, port


def _open_gate(tmp_path) -> None:
    (tmp_path / "gate.tmp").write_text("open")
    (tmp_path / "gate.tmp").rename(tmp_path / "gate")


@pytest.mark.parametrize("command", ["serve", "http"])
def test_ready_once_the_store_is_open_and_stopping_at_the_stop(tmp_path, manager, command):
    proc, port = _start(tmp_path, command)
    try:
        if command == "serve":
            conn = Raw(port, 2)
            assert conn.call("PING") == LOADING  # listening, the store still opening
            assert "STATUS=opening" in _messages(manager, "STATUS=opening")[-1]
        manager.settimeout(0.5)
        with pytest.raises(TimeoutError):  # not ready while the store opens
            manager.recv(4096)
        manager.settimeout(20)
        _open_gate(tmp_path)
        ready = _messages(manager, "READY=1")[-1]
        assert ready.startswith("READY=1\nSTATUS=serving ")
        if command == "serve":
            assert conn.call("PING") == b"+PONG\r\n"
            assert b"\r\nprocess_supervised:systemd\r\n" in conn.call("INFO", "server")
            conn.close()
        proc.terminate()
        assert "STOPPING=1" in _messages(manager, "STOPPING=1")[-1]
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()


def test_without_a_service_manager_nothing_is_sent_and_nothing_fails(monkeypatch):
    from kv_backend.server import systemd

    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not systemd.supervised()
    systemd.notify("READY=1")  # no socket to send to: nothing happens
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify")
    assert systemd.supervised()
    systemd.notify("READY=1")  # an unreachable manager is not the server's failure
