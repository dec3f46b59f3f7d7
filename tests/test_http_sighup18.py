"""A closed terminal (SIGHUP) killed ``kvb http`` (the signal's default action: status 129), without
closing, nor fsyncing, its store; ``kvb serve`` and redis-server ignore it. Now ``kvb http`` does too,
and says so; SIGTERM still stops it cleanly."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time

from helpers import child_env, free_port, start_own_server


def _health(port: int) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        return conn.getresponse().status
    except OSError:
        return None


def test_kvb_http_ignores_sighup(tmp_path):
    cmd = [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "store"), "--port"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen([*cmd, str(port)], env=child_env(), stdout=out, stderr=err, text=True), [port]

    proc, (port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)
    try:
        deadline = time.monotonic() + 30
        while _health(port) != 200:
            assert proc.poll() is None and time.monotonic() < deadline, "kvb http did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        assert proc.poll() is None
        assert _health(port) == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert "kvb http: SIGHUP ignored: stop kvb http with SIGTERM or SIGINT" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()
