"""``kvb http`` without ``--workers``: at its stop, a close of the store that never returns (an fsync on a
disk that no longer answers, a wait for a call stuck inside the engine) kept the process there for ever,
where the main process of ``--workers`` kills such a worker. The close now gets ``workers.STOP_MARGIN``
seconds, as a worker's does; then the process says what was stuck and exits with status 3, every write
it acknowledged in the store. Real processes; the close made to hang by a hook in the server's process."""

from __future__ import annotations

import http.client
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers import child_env, free_port

from kv_backend import DB
from kv_backend.http import server as http_server

#: workers.STOP_MARGIN of the servers below (SHUTDOWN_GRACE and FIRST_REQUEST_GRACE short too).
_MARGIN = 0.5


def _kvb_http(
    tmp_path: Path, hang: str, env: dict[str, str] | None = None, margin: float = _MARGIN
) -> tuple[subprocess.Popen, int]:
    """One ``kvb http`` process (no --workers) whose store's close at the stop runs ``hang`` (Python
    source, ``db`` the store) before it closes the store; stderr in tmp_path/stderr.txt."""
    port = free_port()
    code = f"""
import sys, threading, time
import kv_backend.http.loading as loading
import kv_backend.http.server as s
import kv_backend.http.workers as w
s.SHUTDOWN_GRACE, s.FIRST_REQUEST_GRACE, w.STOP_MARGIN = 0.5, 0.25, {margin!r}
close_synced = loading.close_synced

def stuck(db, warn):
    {hang}
    close_synced(db, warn)

loading.close_synced = stuck
from kv_backend.cli import main
sys.exit(main())
"""
    cmd = [sys.executable, "-c", code, "http", "--dir", str(tmp_path / "store"), "--port", str(port)]
    cmd.append("--no-access-log")
    with (tmp_path / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            cmd, env={**child_env(), **(env or {})}, stdout=subprocess.DEVNULL, stderr=err
        )
    return proc, port


def _put_when_open(proc: subprocess.Popen, port: int, key: str, value: bytes, tmp_path: Path) -> None:
    deadline = time.monotonic() + 20
    while True:
        assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
        assert time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("PUT", f"/v1/keys/{key}", body=value)
            response = conn.getresponse()
            response.read()
            if response.status == 201:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.02)


def _stopped_with(proc: subprocess.Popen, tmp_path: Path, seconds: float) -> int:
    """SIGTERM ``proc``; its exit status, waited for at most ``seconds``."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running {seconds} s after SIGTERM:\n{(tmp_path / 'stderr.txt').read_text()}")


def _killed(proc: subprocess.Popen) -> None:
    """Kill ``proc`` where it still runs (its test failed before it stopped), and reap it."""
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@contextmanager
def _acked_write_kept(proc: subprocess.Popen, port: int, tmp_path: Path) -> Iterator[None]:
    """PUT ``acked`` once ``proc`` serves, run the block (``proc`` killed at its end where it still
    runs), then check the store holds that acknowledged write."""
    try:
        _put_when_open(proc, port, "acked", b"value", tmp_path)
        yield
    finally:
        _killed(proc)
    with DB(str(tmp_path / "store")) as db:
        assert db.get(b"acked") == b"value"


def _says_status_3(tmp_path: Path, start: str) -> None:
    """The last line kvb http wrote to stderr begins with ``start`` and says it exits with status 3; no
    traceback came before it."""
    err = (tmp_path / "stderr.txt").read_text()
    line = err.splitlines()[-1]
    assert line.startswith(start), err
    assert "exiting with status 3 without it" in line, line
    assert "Traceback" not in err, err


def test_the_status_as_documented():
    assert http_server.CLOSE_NOT_FINISHED_STATUS == 3


@pytest.mark.parametrize("sync", ["never", "always"])
def test_a_close_that_never_returns_ends_in_status_3_and_loses_no_acknowledged_write(tmp_path, sync):
    proc, port = _kvb_http(tmp_path, "threading.Event().wait()", {"KVB_HTTP_SYNC": sync})
    with _acked_write_kept(proc, port, tmp_path):
        started = time.monotonic()
        assert _stopped_with(proc, tmp_path, _MARGIN + 10) == 3
        took = time.monotonic() - started
        assert took >= _MARGIN - 0.1, took
        _says_status_3(tmp_path, f"kvb: the store's close did not finish within {_MARGIN:g} s (stuck in ")


def test_a_slow_close_that_finishes_within_the_bound_is_a_clean_stop(tmp_path):
    proc, port = _kvb_http(tmp_path, "time.sleep(0.2)")
    try:
        _put_when_open(proc, port, "k", b"v", tmp_path)
        assert _stopped_with(proc, tmp_path, 10) == 0
        assert "did not finish" not in (tmp_path / "stderr.txt").read_text()
    finally:
        _killed(proc)


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_signal_ends_the_wait_for_a_stuck_close_at_once(tmp_path, second):
    closing = tmp_path / "closing"
    proc, port = _kvb_http(
        tmp_path, f"open({str(closing)!r}, 'w').close(); threading.Event().wait()", margin=60
    )
    with _acked_write_kept(proc, port, tmp_path):
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while not closing.exists():  # (the close under way, waited for)
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr.txt").read_text()
            time.sleep(0.01)
        proc.send_signal(second)
        assert proc.wait(10) == 3
        _says_status_3(
            tmp_path, "kvb: the store's close did not finish at a second SIGTERM or SIGINT (stuck in "
        )
