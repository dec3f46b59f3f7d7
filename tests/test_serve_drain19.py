"""At SIGTERM (or SHUTDOWN) ``kvb serve`` closed every connection at once: a client whose reply
was still in the server's output buffer (a large reply to a client reading slowly) got a closed
connection, though its command had been done, so it could not know. The server now runs no more
commands, sends the replies it has given, waiting a bounded time for slow readers, and then
closes (redis-server drops such replies)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import pytest
from helpers import child_env, free_port, start_own_server
from resp_helpers import Raw, RunningServer

SIZE = 6_000_000


def _slow_reader(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET big\r\n" * 3)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    out = bytearray()
    while chunk := sock.recv(1 << 20):
        out += chunk
    return bytes(out)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_replies_given_before_sigterm_reach_a_slow_reader(tmp_path, loop, monkeypatch):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("KVB_EVENT_LOOP", loop)
    server = RunningServer(str(tmp_path / "store")).start()
    try:
        assert Raw(server.port, 2).call("SET", "big", b"x" * SIZE) == b"+OK\r\n"
        sock = _slow_reader(server.port)
        time.sleep(0.5)  # the replies are made: most of them wait in the server's buffer
        server.proc.send_signal(signal.SIGTERM)
        reply = b"$%d\r\n%b\r\n" % (SIZE, b"x" * SIZE)
        assert _read_all(sock) == reply * 3
        assert server.proc.wait(15) == 0
    finally:
        server.stop()


def test_a_client_that_never_reads_holds_the_stop_for_a_bounded_time(tmp_path):
    code = (
        "import sys; from kv_backend.server import resp; resp.DRAIN_SECONDS = 0.5; "
        "from kv_backend.cli import main; sys.exit(main())"
    )
    cmd = [sys.executable, "-c", code, "serve", "--dir", str(tmp_path / "store"), "--port"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen([*cmd, str(port)], env=child_env(), stdout=out, stderr=err), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        assert Raw(port, 2).call("SET", "big", b"x" * SIZE) == b"+OK\r\n"
        sock = _slow_reader(port)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 5
        assert "closed before its replies were all sent" in proc.stderr.read().decode()
        sock.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
