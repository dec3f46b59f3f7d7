"""``kvb http --workers N``: a worker asked to stop that never exits (stopped, stuck in a call that never
returns) no longer keeps the server's stop, nor a reload's retiring of the old workers, waiting for ever:
it is killed (SIGKILL) once the graceful period its requests get, plus STOP_MARGIN, has passed, and the
log names it. A second SIGTERM or SIGINT forces the workers (SIGINT) and kills those still there
FORCE_MARGIN seconds later. ``--reload-timeout`` / ``KVB_HTTP_RELOAD_TIMEOUT`` set how long a reload waits
for its new workers. Real processes; a worker made stuck with SIGSTOP."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from helpers import child_env, run_kvb
from test_http_reload26 import _stuck_new_worker, _until_gone
from test_http_workers25 import Server, _alive, _kill
from test_http_workers26 import _healthy, _wait_for

from kv_backend.errors import ConfigurationError
from kv_backend.http import serve, workers

#: The graceful period (server.SHUTDOWN_GRACE + server.FIRST_REQUEST_GRACE) and STOP_MARGIN of the
#: servers below: a stuck worker is killed 1 + 0.5 + 1 = 2.5 s after its SIGTERM.
_GRACE, _FIRST, _MARGIN = 1.0, 0.5, 1.0
_KILL_AFTER = _GRACE + _FIRST + _MARGIN


def _with_short_stop(*options: str) -> tuple[str, ...]:
    """``python`` arguments running kvb's command line with a short graceful period and STOP_MARGIN."""
    code = (
        "import sys\nimport kv_backend.http.server as s\nimport kv_backend.http.workers as w\n"
        f"s.SHUTDOWN_GRACE = {_GRACE!r}\ns.FIRST_REQUEST_GRACE = {_FIRST!r}\nw.STOP_MARGIN = {_MARGIN!r}\n"
        "from kv_backend.cli import main\nsys.exit(main())\n"
    )
    return ("-c", code, *options)


def _killed_line(pid: int) -> str:
    return f"worker process [{pid}] did not stop within {_KILL_AFTER:g} s of SIGTERM (stuck): killing it"


def test_the_margins_as_shipped():
    assert workers.STOP_MARGIN == 5
    assert workers.FORCE_MARGIN == 1


def test_a_stuck_worker_is_killed_at_the_stop_and_the_server_exits_with_status_0(tmp_path):
    server = Server(tmp_path, python=_with_short_stop())
    stuck = None
    try:
        before = server.wait_serving()
        stuck = min(before)
        _kill(stuck, signal.SIGSTOP)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(30) == 0, server.stderr()
        took = time.monotonic() - started
        assert _KILL_AFTER - 0.1 <= took < _KILL_AFTER + 5, took
        err = server.stderr()
        assert _killed_line(stuck) in err, err
        assert err.count("killing it (SIGKILL)") == 1, err  # (the other worker stopped by itself)
        assert "Traceback" not in err
        for pid in before:
            assert not _alive(pid)
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()


def test_a_stuck_old_worker_is_killed_after_a_reload_and_the_new_ones_serve(tmp_path):
    server = Server(tmp_path, python=_with_short_stop())
    stuck = None
    try:
        before = server.wait_serving()
        stuck = min(before)
        _kill(stuck, signal.SIGSTOP)
        server.proc.send_signal(signal.SIGHUP)
        _wait_for(server, "reloaded: worker processes")
        reloaded = time.monotonic()
        _wait_for(server, _killed_line(stuck))
        assert time.monotonic() - reloaded < _KILL_AFTER + 5
        _wait_for(server, f"worker process [{stuck}] stopped (killed (SIGKILL))")
        _until_gone(server, before)
        serving = server.children()
        assert len(serving) == 2 and not serving & before
        assert _healthy(server.port)
        err = server.stderr()
        assert "starting another" not in err, err  # (a retired worker killed is not replaced)
        assert server.stop() == 0
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_kills_a_stuck_worker_at_once(tmp_path, second):
    server = Server(tmp_path)  # (the graceful period as shipped: 16.5 s before a stuck worker is killed)
    stuck = None
    try:
        before = server.wait_serving()
        stuck = min(before)
        _kill(stuck, signal.SIGSTOP)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while before - {stuck} & server.children():  # the other worker stops by itself
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.02)
        assert server.proc.poll() is None  # (waiting for the stuck one)
        started = time.monotonic()
        server.proc.send_signal(second)
        assert server.proc.wait(30) == 0, server.stderr()
        assert time.monotonic() - started < workers.FORCE_MARGIN + 3
        err = server.stderr()
        assert f"worker process [{stuck}] was forced to stop and is still running: killing it" in err
        assert not _alive(stuck)
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()


def _gives_up_after(server: Server, seconds: float) -> None:
    stuck = None
    try:
        before = server.wait_serving()
        started = time.monotonic()
        stuck = _stuck_new_worker(server, before)
        _wait_for(server, f"did not have the store open within {seconds:g} s; stopping them")
        took = time.monotonic() - started
        assert seconds - 0.1 <= took < seconds + 5, took
        err = server.stderr()
        assert f"SIGHUP: cannot reload, the workers serving go on: new worker processes [{stuck}]" in err, err
        _until_gone(server, {stuck})
        assert _healthy(server.port)
        assert server.stop() == 0
    finally:
        if stuck is not None:
            _kill(stuck)
        server.close()


def test_reload_timeout_option_bounds_a_reload(tmp_path):
    _gives_up_after(Server(tmp_path, options=("--reload-timeout", "1")), 1)


def test_reload_timeout_variable_bounds_a_reload(tmp_path):
    _gives_up_after(Server(tmp_path, env={"KVB_HTTP_RELOAD_TIMEOUT": "1.5"}), 1.5)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf"])
def test_a_bad_reload_timeout_option_is_a_usage_error(tmp_path, value):
    done = run_kvb(
        "http", "--dir", str(tmp_path / "s"), "--workers", "2", f"--reload-timeout={value}", timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "usage:" in done.stderr
    why = f"must be a number of seconds greater than 0, not {value!r}"
    assert f"argument --reload-timeout: {why}" in done.stderr


@pytest.mark.parametrize("value", ["0", "soon"])
def test_a_bad_reload_timeout_variable_is_refused_in_one_line(tmp_path, value):
    done = subprocess.run(
        [sys.executable, "-m", "kv_backend", "http", "--dir", str(tmp_path / "s"), "--workers", "2"],
        env={**child_env(), "KVB_HTTP_RELOAD_TIMEOUT": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert f"KVB_HTTP_RELOAD_TIMEOUT must be a number of seconds > 0, not {value!r}" in done.stderr
    assert "Traceback" not in done.stderr and "usage:" not in done.stderr
    assert not (tmp_path / "s").exists()  # (refused before anything started)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf")])
def test_serve_refuses_a_bad_reload_timeout(tmp_path, value):
    with pytest.raises(ConfigurationError, match="reload_timeout must be a number of seconds > 0"):
        serve(tmp_path / "s", port=0, workers=2, reload_timeout=value)
