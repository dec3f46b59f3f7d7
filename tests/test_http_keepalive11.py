"""kvb http --keep-alive / KVB_HTTP_KEEP_ALIVE: how long an idle connection stays open."""

from __future__ import annotations

import socket
import time

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)
from test_http import Server

import kv_backend.http
from kv_backend.errors import ConfigurationError
from kv_backend.http.server import DEFAULT_KEEP_ALIVE, _env_keep_alive


def _idle_lifetime(port: int, limit: float) -> float:
    """Seconds until the server closes a connection left idle after one request (``limit`` if not)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            answer += sock.recv(4096)
        start = time.monotonic()
        sock.settimeout(limit)
        try:
            assert sock.recv(1) == b""
        except TimeoutError:
            return limit
        return time.monotonic() - start


def test_an_idle_connection_is_closed_after_keep_alive_seconds(tmp_path):
    server = Server(
        str(tmp_path / "s"),
        str(tmp_path / "log"),
        command=["-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--keep-alive", "0.3"],
    )
    try:
        assert 0.2 < _idle_lifetime(server.port, 5) < 2
    finally:
        server.stop()


def test_the_option_and_the_variable(tmp_path, capsys, monkeypatch):
    got: dict[str, object] = {}
    monkeypatch.setattr(kv_backend.http, "serve", lambda path, **kwargs: got.update(kwargs))
    assert run(capsys, "http", "--dir", str(tmp_path / "s"), "--keep-alive", "65")[0] == 0
    assert got["keep_alive"] == 65.0
    for bad in ("0", "-1", "nan", "inf", "soon"):
        code, _, err = run(capsys, "http", "--dir", str(tmp_path / "s"), "--keep-alive", bad)
        assert code == 2 and "greater than 0" in err
    monkeypatch.delenv("KVB_HTTP_KEEP_ALIVE", raising=False)
    assert _env_keep_alive() == DEFAULT_KEEP_ALIVE == 5.0
    monkeypatch.setenv("KVB_HTTP_KEEP_ALIVE", "75")
    assert _env_keep_alive() == 75.0
    monkeypatch.setenv("KVB_HTTP_KEEP_ALIVE", "0")
    with pytest.raises(ConfigurationError, match="KVB_HTTP_KEEP_ALIVE"):
        _env_keep_alive()
