"""A SIGHUP reload of ``kvb http --workers N`` whose new workers never all had their store open (a worker
stuck, a store that would take far too long to open) stayed under way for ever, and every later SIGHUP was
ignored until the server restarted. The reload now gives up after ``RELOAD_TIMEOUT`` seconds (as where a
new worker fails: the workers serving go on), and a SIGHUP during a reload starts it over. The workers that
served before serve throughout (real processes; a new worker made stuck with SIGSTOP)."""

from __future__ import annotations

import http.client
import signal
import time

from test_http_workers25 import Server, _alive, _kill
from test_http_workers26 import _healthy, _new_child, _wait_for

from kv_backend.http import workers


def _with_reload_timeout(seconds: float) -> tuple[str, ...]:
    """``python`` arguments running kvb's command line with ``workers.RELOAD_TIMEOUT`` set to ``seconds``."""
    code = (
        "import sys\nimport kv_backend.http.workers as w\n"
        f"w.RELOAD_TIMEOUT = {seconds!r}\n"
        "from kv_backend.cli import main\nsys.exit(main())\n"
    )
    return ("-c", code)


def _stuck_new_worker(server: Server, before: set[int]) -> int:
    """Send SIGHUP, and stop (SIGSTOP) one of the new workers it starts: it never gets ready."""
    server.proc.send_signal(signal.SIGHUP)
    stuck, _ = _new_child(server, before, time.monotonic() + 30)
    _kill(stuck, signal.SIGSTOP)
    return stuck


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _until_gone(server: Server, pids: set[int]) -> None:
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) or server.children() & pids:
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.02)


def test_the_default_bound_is_long_enough_for_a_store_to_open():
    assert workers.RELOAD_TIMEOUT == 300


def test_a_reload_whose_new_worker_never_gets_ready_gives_up_and_the_old_ones_serve_on(tmp_path):
    timeout = 2.0
    server = Server(tmp_path, python=_with_reload_timeout(timeout))
    stuck = None
    try:
        before = server.wait_serving()
        started = time.monotonic()
        stuck = _stuck_new_worker(server, before)
        gave_up = "did not have the store open within 2 s; stopping them"
        while gave_up not in server.stderr():
            assert server.proc.poll() is None, server.stderr()
            assert time.monotonic() - started < timeout + 30, server.stderr()
            assert _healthy(server.port)  # the old workers serve throughout
            assert server.children() >= before
            time.sleep(0.05)
        assert time.monotonic() - started >= timeout
        err = server.stderr()
        assert f"SIGHUP: cannot reload, the workers serving go on: new worker processes [{stuck}]" in err, err
        assert "reloaded: worker processes" not in err
        _until_gone(server, {stuck})
        deadline = time.monotonic() + 30
        while server.children() != before:  # the reload's other new worker is stopped too
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        assert _healthy(server.port)
        server.proc.send_signal(signal.SIGHUP)  # the next SIGHUP reloads
        _wait_for(server, "reloaded: worker processes")
        _until_gone(server, before)
        assert len(server.children()) == 2
        assert server.stop() == 0
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()


def test_a_sighup_during_a_stuck_reload_starts_it_over(tmp_path):
    server = Server(tmp_path)  # (RELOAD_TIMEOUT as shipped: the second SIGHUP comes long before)
    stuck = None
    try:
        before = server.wait_serving()
        assert _request(server.port, "PUT", "/v1/keys/k", b"v") == (201, b"")
        stuck = _stuck_new_worker(server, before)
        _wait_for(server, "SIGHUP: starting 2 new worker processes")
        assert _healthy(server.port)
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(server, "reloaded: worker processes")
        err = server.stderr()
        assert "SIGHUP during a reload: starting it over (" in err, err
        line = err.split("SIGHUP during a reload: starting it over", 1)[1].splitlines()[0]
        assert "not all ready); stopping its new worker processes" in line and f"[{stuck}]" in line, line
        assert err.count("SIGHUP: starting 2 new worker processes") == 2
        assert "ignored" not in err
        _until_gone(server, before | {stuck})
        serving = server.children()
        assert len(serving) == 2 and not serving & (before | {stuck})
        assert _healthy(server.port)
        for _ in range(4):  # (the store as it was, whichever new worker answers)
            assert _request(server.port, "GET", "/v1/keys/k") == (200, b"v")
        assert server.stop() == 0
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()
