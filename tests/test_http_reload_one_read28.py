"""``kvb http --workers N``: each SIGHUP whose read of the TLS files never returned (a file on a network
mount that stopped answering) left one more thread waiting for ever, so that a config manager retrying
its reload piled up threads without bound. At most one read is now in flight: a SIGHUP while one is
still running (given up on or not) starts no other, says what is being read and since when, and is
deferred: once that read returns, the files are read again and the reload goes on (SIGHUPs meanwhile
count as one). The supervisor runs here in the test's process (its main thread), its workers forked from
it; a reload callable that blocks on an Event stands in for the dead mount."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import pytest

from kv_backend.http import workers

_THREAD = "kvb-http-reload"


def _serve(ready: Callable[[], None]) -> None:
    """A worker: ready at once, then waits for its stop (SIGTERM raises in it)."""
    ready()
    while True:
        signal.pause()


def _reads() -> int:
    """The reloads' reads running now (threads named as _Reading names them)."""
    return sum(t.name == _THREAD and t.is_alive() for t in threading.enumerate())


class _Lines(logging.Handler):
    """The supervisor's log lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def text(self) -> str:
        return "\n".join(self.lines)


def _until(check: Callable[[], bool], lines: _Lines, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, lines.text()
        time.sleep(0.005)


def _supervised(
    reload: workers.Reload, reload_timeout: float, script: Callable[[workers._Supervisor, _Lines], None]
) -> _Lines:
    """Run a supervisor of 2 workers in this process's main thread (it handles signals) while ``script``
    runs in another thread once both workers are ready; SIGTERM stops the supervisor at the script's end,
    and an error of the script is raised here. The supervisor's log lines are returned."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the supervisor handles signals: it runs in the main thread only")
    supervisor = workers._Supervisor(2, _serve, "store", reload, graceful=1.0, reload_timeout=reload_timeout)
    lines = _Lines()
    log = logging.getLogger("uvicorn.error")
    level = log.level
    log.addHandler(lines)
    log.setLevel(logging.INFO)
    failed: list[BaseException] = []

    def drive() -> None:
        try:
            _until(
                lambda: len(supervisor.workers) == 2 and all(w.ready for w in supervisor.workers.values()),
                lines,
            )
            script(supervisor, lines)
        except BaseException as exc:
            failed.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    driver = threading.Thread(target=drive, daemon=True)
    # (the supervisor puts this handler back when it returns: a SIGTERM the driver sends after that,
    # the supervisor having failed, does not end the test's process)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        driver.start()
        supervisor.run()
    finally:
        driver.join(30)
        signal.signal(signal.SIGTERM, previous)
        log.removeHandler(lines)
        log.setLevel(level)
    if failed:
        raise failed[0]
    return lines


def _sighup(lines: _Lines, text: str) -> None:
    """Send SIGHUP to this process (the supervisor) and wait for its log line holding ``text``."""
    seen = lines.count(text)
    os.kill(os.getpid(), signal.SIGHUP)
    _until(lambda: lines.count(text) > seen, lines)


class _DeadMount:
    """A reload whose first read waits until ``answer()``: a file on a mount that stopped answering."""

    def __init__(self) -> None:
        self.calls = 0
        self.answers = threading.Event()
        self.waiting = threading.Event()

    def __call__(self) -> workers.RunWorker:
        self.calls += 1
        if self.calls == 1:
            self.waiting.set()
            self.answers.wait(30)
        return _serve


DEFERRED = "no second read is started: this reload follows once it returns"


def test_sighups_while_a_read_is_stuck_start_no_other_read_and_the_reload_follows_its_return():
    mount = _DeadMount()

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        before = set(supervisor.workers)
        os.kill(os.getpid(), signal.SIGHUP)
        assert mount.waiting.wait(10), lines.text()
        for _ in range(5):  # (a config manager retrying its reload)
            _sighup(lines, DEFERRED)
            assert _reads() == 1, lines.text()
        assert mount.calls == 1
        assert set(supervisor.workers) == before  # (nothing started meanwhile)
        line = next(line for line in lines.lines if DEFERRED in line)
        assert "SIGHUP while the TLS files of the reload asked at " in line, line
        assert "are still being read (for " in line, line
        mount.answers.set()  # the mount answers again: the files are read again, then the reload goes on
        _until(lambda: lines.count("reloaded: worker processes") == 1, lines)
        assert mount.calls == 2, lines.text()  # (once more: the first read may predate the SIGHUPs)
        assert lines.count("SIGHUP: starting 2 new worker processes") == 1, lines.text()
        _until(lambda: not set(supervisor.workers) & before and len(supervisor.workers) == 2, lines)
        assert _reads() == 0

    _supervised(mount, 300.0, script)


def test_a_read_given_up_on_still_holds_the_next_sighup_until_it_returns():
    mount = _DeadMount()

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        before = set(supervisor.workers)
        os.kill(os.getpid(), signal.SIGHUP)
        assert mount.waiting.wait(10), lines.text()
        _until(lambda: lines.count("the TLS files were not read within 0.2 s") == 1, lines)
        for _ in range(3):
            _sighup(lines, DEFERRED)
        assert _reads() == 1, lines.text()
        assert mount.calls == 1
        assert set(supervisor.workers) == before
        mount.answers.set()
        _until(lambda: lines.count("reloaded: worker processes") == 1, lines)
        assert mount.calls == 2, lines.text()
        assert _reads() == 0

    _supervised(mount, 0.2, script)


def test_a_read_given_up_on_that_returns_with_no_sighup_since_is_not_used():
    mount = _DeadMount()

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        before = set(supervisor.workers)
        os.kill(os.getpid(), signal.SIGHUP)
        assert mount.waiting.wait(10), lines.text()
        _until(lambda: lines.count("the TLS files were not read within 0.2 s") == 1, lines)
        mount.answers.set()
        _until(lambda: lines.count("returned after ") == 1, lines)
        assert _reads() == 0
        assert set(supervisor.workers) == before, lines.text()  # (refused: the workers serving go on)
        assert "starting 2 new worker processes" not in lines.text()
        _sighup(lines, "reloaded: worker processes")  # (the next SIGHUP reads them again at once)
        assert mount.calls == 2

    _supervised(mount, 0.2, script)


def test_a_read_whose_thread_cannot_start_refuses_the_reload_and_the_workers_serve_on(monkeypatch):
    start = threading.Thread.start
    refused = threading.Event()

    def limited(thread: threading.Thread) -> None:
        if thread.name == _THREAD and not refused.is_set():  # (the process's limit of tasks, reached once)
            refused.set()
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", limited)
    calls: list[int] = []

    def reload() -> workers.RunWorker:
        calls.append(1)
        return _serve

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        before = set(supervisor.workers)
        _sighup(lines, "SIGHUP: cannot reload, the workers serving go on: no thread could be started")
        assert refused.is_set() and not calls
        assert set(supervisor.workers) == before
        _sighup(lines, "reloaded: worker processes")  # (the next SIGHUP tries again)
        assert calls == [1]

    lines = _supervised(reload, 300.0, script)
    line = next(line for line in lines.lines if "no thread could be started" in line)
    assert "can't start new thread" in line and "the next SIGHUP tries again" in line, line
