"""``kvb http`` keeps the file descriptors its store needs from its connections.

uvicorn accepted connections until the process had no descriptor left: with the limit of open files
at 60, 70 idle connections made the next PUT fail with a 500 ("Too many open files", a module the
request imported, a data file), and with ``ulimit -n`` 1024 a thousand idle keep-alive connections
did the same. Now the server raises its soft limit of open files to fit 10000 connections and 32
descriptors of its own, or keeps fewer connections open (said on stderr); one past that is answered
``503 too_many_connections`` and closed, and the store goes on reading and writing new data files.
"""

from __future__ import annotations

import http.client
import os
import resource
import socket
import subprocess
import sys
import time

import pytest
from helpers import child_env, free_port, start_own_server, wait_for
from test_resp_tcp_keepalive22 import server_end_timer

pytest.importorskip("uvicorn", reason="uvicorn is not installed (it comes with the server extra)")


def _start(path: str, soft: int, hard: int) -> tuple[subprocess.Popen, int]:

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kv_backend", "http", "--dir", path, "--port", str(port)],
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit,
        )
        return proc, [port]

    # (on a port of its own: see start_own_server; a start that fails is the test's to check)
    proc, (port,) = start_own_server(launch, lambda *_: None)
    return proc, port


def _request(conn: http.client.HTTPConnection, method: str, url: str, body: bytes | None = None):
    conn.request(method, url, body=body)
    response = conn.getresponse()
    return response.status, response.read(), response


def _wait_healthy(proc: subprocess.Popen, port: int) -> http.client.HTTPConnection:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "kvb http did not start"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            if _request(conn, "GET", "/healthz")[0] == 200:
                return conn
        except OSError:
            pass
        conn.close()
        time.sleep(0.05)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    err = proc.stderr.read()
    proc.stderr.close()
    return err


def test_connections_past_the_limit_are_refused_and_the_store_keeps_working(tmp_path):
    store = str(tmp_path / "store")
    proc, port = _start(store, 60, 60)
    idle: list[socket.socket] = []
    try:
        conn = _wait_healthy(proc, port)  # (kept open: it is one of the connections)
        for _ in range(70):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)  # (the server has accepted what it keeps)
        other = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        status, body, response = _request(other, "GET", "/healthz")
        assert status == 503 and b'"error":"too_many_connections"' in body
        assert response.getheader("retry-after") == "1" and response.getheader("connection") == "close"
        other.close()
        # another process writes into many new data files; the server reads them and writes
        code = (
            "import sys\nfrom kv_backend import DB\n"
            "with DB(sys.argv[1], max_file_size=4096) as db:\n"
            "    for i in range(200):\n"
            "        db.put(b'k%d' % i, b'x' * 200)\n"
        )
        subprocess.run([sys.executable, "-c", code, store], env=child_env(), check=True)
        status, body, _ = _request(conn, "GET", "/v1/keys/k199")
        assert (status, body) == (200, b"x" * 200)
        assert _request(conn, "PUT", "/v1/keys/after", b"1")[0] == 201
        for sock in idle:
            sock.close()
        idle.clear()
        time.sleep(0.5)
        fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        assert _request(fresh, "GET", "/v1/keys/after")[:2] == (200, b"1")
        fresh.close()
        conn.close()
    finally:
        for sock in idle:
            sock.close()
        err = _stop(proc)
    assert proc.returncode == 0, err
    assert "the limit of open files (ulimit -n) is 60" in err and "at most 28 connections" in err, err
    # (the first refusal is warned of at once, alone: "1 connection", as later ones are counted together)
    assert "1 connection refused: 28 are open" in err, err


def test_the_soft_limit_is_raised_towards_the_hard_one(tmp_path):
    proc, port = _start(str(tmp_path / "store"), 100, 400)
    try:
        _wait_healthy(proc, port).close()
        with open(f"/proc/{proc.pid}/limits") as f:
            line = next(line for line in f if line.startswith("Max open files"))
        assert int(line.split()[3]) == 400
    finally:
        err = _stop(proc)
    assert "at most 368 connections" in err, err


def test_a_limit_leaving_no_connection_stops_kvb_http(tmp_path):
    proc, _ = _start(str(tmp_path / "store"), 32, 32)
    try:
        assert proc.wait(30) == 2
    finally:
        err = _stop(proc)
    assert "the limit of open files (ulimit -n) is 32" in err and "raise the limit (to 10032" in err, err


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net/tcp")
def test_connections_are_kept_alive(tmp_path):
    """A client whose host died kept its connection (and its place among the connections kept) for
    good when it had sent no request: the connections now get TCP keepalive probes after 300 s."""
    proc, port = _start(str(tmp_path / "store"), 1024, 1024)
    try:
        _wait_healthy(proc, port).close()
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200 ")  # (accepted and set up by now)
            wait_for(lambda: server_end_timer(port, client) is not None, 10, "the server's end")
            found = server_end_timer(port, client)
            assert found is not None
            kind, left = found
            assert kind == 2 and 250 < left <= 300, found
        finally:
            client.close()
    finally:
        _stop(proc)
