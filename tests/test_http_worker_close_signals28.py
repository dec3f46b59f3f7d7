"""``kvb http --workers N``: a second SIGTERM or SIGINT that reached a worker while it was closing its
store (the main process forcing its workers at a second stop signal, a second Ctrl-C in a terminal, a
SIGTERM sent to the worker again) interrupted that close: the worker exited at once, quietly, its store
neither fsynced nor closed. A worker closing its store now finishes the close, ignoring SIGTERM and SIGINT
from the end of its server's shutdown on (the main process still kills a worker that outlives its stop's
deadline), and says so once the close is done. Real processes; the close slowed by a hook in the server's
process that marks its start and its end with a file per worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from test_http_workers25 import Server, _kill
from test_http_workers26 import _wait_for

#: Seconds a worker's close of its store waits at most for ``marks``/release.
_CLOSE = 10.0

#: Seconds given to a signal sent to be handled in the workers before their close goes on.
_HANDLED = 0.3


def _slow_close(marks: Path) -> tuple[str, ...]:
    """``python`` arguments running kvb's command line where each worker's close of its store waits
    (_CLOSE seconds at most) until ``marks``/release exists, making ``marks``/PID.closing at its start
    and ``marks``/PID.closed at its end; the graceful period is short and the forced stop's margin long
    (the worker is never killed here)."""
    code = f"""
import os, sys, time
import kv_backend.http.loading as loading
import kv_backend.http.server as s
import kv_backend.http.workers as w
s.SHUTDOWN_GRACE, s.FIRST_REQUEST_GRACE, w.FORCE_MARGIN = 0.5, 0.25, 30.0
close_synced = loading.close_synced

def slow(db, warn):
    mark = os.path.join({str(marks)!r}, str(os.getpid()))
    open(mark + ".closing", "w").close()
    deadline = time.monotonic() + {_CLOSE!r}
    while not os.path.exists({str(marks / "release")!r}) and time.monotonic() < deadline:
        time.sleep(0.01)
    close_synced(db, warn)
    open(mark + ".closed", "w").close()

loading.close_synced = slow
from kv_backend.cli import main
sys.exit(main())
"""
    return ("-c", code)


def _server(tmp_path: Path) -> tuple[Server, Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    return Server(tmp_path, python=_slow_close(marks)), marks


def _closing(server: Server, marks: Path, pids: set[int]) -> None:
    """Wait until each of ``pids`` is in its close."""
    deadline = time.monotonic() + 20
    while not all((marks / f"{pid}.closing").exists() for pid in pids):
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.005)


def _release(marks: Path) -> None:
    """Let the workers' closes go on, once the signal just sent had the time to be handled in them."""
    time.sleep(_HANDLED)
    (marks / "release").touch()


def _closed(marks: Path, pid: int) -> bool:
    return (marks / f"{pid}.closed").exists()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_to_the_main_process_lets_the_workers_finish_their_close(tmp_path, second):
    server, marks = _server(tmp_path)
    try:
        pids = server.wait_serving()
        server.proc.send_signal(signal.SIGTERM)
        _closing(server, marks, pids)
        server.proc.send_signal(second)  # (forces the workers: SIGINT to each, in its close)
        _release(marks)
        assert server.proc.wait(20) == 0, server.stderr()
        err = server.stderr()
        for pid in pids:
            assert _closed(marks, pid), err
            assert (
                f"worker process [{pid}]: SIGINT during the store's close: ignored, the close finished" in err
            )
        assert "Traceback" not in err, err
        assert "killing it" not in err, err
    finally:
        server.close()


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_sent_a_stop_signal_again_during_its_close_finishes_it(tmp_path, second):
    server, marks = _server(tmp_path)
    try:
        pids = server.wait_serving()
        worker = min(pids)
        _kill(worker, signal.SIGTERM)
        _closing(server, marks, {worker})
        _kill(worker, second)
        _release(marks)
        _wait_for(server, f"worker process [{worker}] stopped (status 0): starting another at once")
        err = server.stderr()
        assert _closed(marks, worker), err
        name = signal.Signals(second).name
        assert (
            f"worker process [{worker}]: {name} during the store's close: ignored, the close finished" in err
        )
        assert "Traceback" not in err, err
        assert server.stop() == 0
    finally:
        server.close()
