"""``kvb http --workers N``: the main process reads its workers' reports (ready, an error) without ever
waiting on a worker's pipe. It read each with ``Connection.recv()``, which waits for the whole message:
a worker frozen after writing part of one (stopped, stuck mid-write) left the main process there for
ever, heeding no SIGTERM, replacing no worker and killing none. Real processes; the worker's half
report is written by a hook in place of ``workers._ready``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import child_env
from test_http_workers25 import Server, _alive, _kill
from test_http_workers26 import _healthy

#: The graceful period (server.SHUTDOWN_GRACE + server.FIRST_REQUEST_GRACE) and workers.STOP_MARGIN of
#: the servers below: a worker stuck at the stop is killed 0.5 + 0.25 + 0.5 = 1.25 s after its SIGTERM.
_GRACE, _FIRST, _MARGIN = 0.5, 0.25, 0.5
_KILL_AFTER = _GRACE + _FIRST + _MARGIN


def _first_worker_freezes_mid_report(flag: Path) -> tuple[str, ...]:
    """``python`` arguments running kvb's command line with short stop bounds, where the first worker
    to have its store open writes half of its ready report (a length saying 64 bytes, then 8 of them)
    and stops itself (SIGSTOP); the others report as usual."""
    code = f"""
import os, signal, struct, sys
import kv_backend.http.server as s
import kv_backend.http.workers as w
s.SHUTDOWN_GRACE, s.FIRST_REQUEST_GRACE, w.STOP_MARGIN = {_GRACE!r}, {_FIRST!r}, {_MARGIN!r}
ready = w._ready

def half(report):
    try:
        os.close(os.open({str(flag)!r}, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return ready(report)
    os.write(report, struct.pack("!I", 64) + b"x" * 8)
    os.kill(os.getpid(), signal.SIGSTOP)

w._ready = half
from kv_backend.cli import main
sys.exit(main())
"""
    return ("-c", code)


def _stopped(pid: int) -> bool:
    """Whether ``pid`` is stopped (SIGSTOP: state T)."""
    try:
        return "\nState:\tT" in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _until(server: Server, done, what: str, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert server.proc.poll() is None, server.stderr()
        assert time.monotonic() < deadline, f"{what}\n{server.stderr()}"
        time.sleep(0.01)


def test_a_worker_frozen_mid_report_keeps_nothing_waiting(tmp_path):
    server = Server(tmp_path, python=_first_worker_freezes_mid_report(tmp_path / "froze"))
    frozen = None
    try:
        _until(server, lambda: any(_stopped(pid) for pid in server.children()), "no worker froze")
        frozen = next(pid for pid in server.children() if _stopped(pid))
        (other,) = server.children() - {frozen}
        # The main process still replaces a worker killed meanwhile...
        _kill(other)
        replaced = f"worker process [{other}] was killed (SIGKILL): starting another at once"
        _until(server, lambda: replaced in server.stderr(), "the killed worker was not replaced")
        _until(server, lambda: len(server.children()) == 2, "no worker in its place")
        _until(server, lambda: _healthy(server.port), "the new worker does not serve")
        # ...and stops at SIGTERM, killing the frozen worker once its bound has passed: status 0.
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(_KILL_AFTER + 10) == 0, server.stderr()
        assert time.monotonic() - started >= _KILL_AFTER - 0.1
        err = server.stderr()
        assert f"worker process [{frozen}] did not stop within {_KILL_AFTER:g} s of SIGTERM (stuck)" in err
        assert err.count("killing it (SIGKILL)") == 1, err
        assert "Traceback" not in err, err
        assert not _alive(frozen)
    finally:
        if frozen is not None:
            _kill(frozen)
        server.close()


def _supervise(run_worker: str) -> subprocess.CompletedProcess[str]:
    """``workers.supervise(2, run_worker)`` in a child process (it forks: none of pytest's threads);
    ``run_worker`` is its source. What the ConfigurationError raised says is written to stdout."""
    code = f"""
import os, sys, time
from kv_backend.http import workers
from kv_backend.errors import ConfigurationError
{run_worker}
try:
    workers.supervise(2, run_worker, "test", graceful=0.5)
except ConfigurationError as exc:
    sys.stdout.write(str(exc))
    sys.exit(2)
"""
    return subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=30
    )


def test_an_error_longer_than_a_pipe_holds_is_reported_whole():
    # 300 KB, far more than a pipe holds (64 KiB): the report arrives over many reads of the main process.
    done = _supervise("def run_worker(ready):\n    raise ConfigurationError('y' * 300_000 + 'end')\n")
    assert done.returncode == 2, done.stderr
    assert done.stdout == "y" * 300_000 + "end"


def test_an_error_written_in_pieces_is_reported_whole():
    # A worker pausing in the middle of its report (descheduled, say): the main process puts it together
    # across its reads, waiting for none of them.
    run_worker = """
def run_worker(ready):
    def in_pieces(fd, data):
        for i in range(len(data)):
            os.write(fd, data[i : i + 1])
            time.sleep(0.001)

    workers._write_report = in_pieces
    raise ConfigurationError("the store cannot be opened: fix it")
"""
    done = _supervise(run_worker)
    assert done.returncode == 2, done.stderr
    assert done.stdout == "the store cannot be opened: fix it"
