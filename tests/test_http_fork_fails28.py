"""``kvb http --workers N``: a fork that fails while the server serves (EAGAIN: the limit of the user's
processes or of the service's tasks reached for a moment; ENOMEM) raised out of the supervisor, which
killed every worker and stopped the server, for a reload (SIGHUP) or a worker's replacement. A reload
whose new worker cannot be forked is now refused as one whose worker fails (the workers serving go on),
and a replacement that cannot be forked is put off as in a crash loop, then tried again. The supervisor
runs in the test's process, its workers forked from it; os.fork fails on cue."""

from __future__ import annotations

import errno
import os
import signal
import threading

from test_http_reload_one_read28 import _Lines, _serve, _sighup, _supervised, _until

from kv_backend.http import workers


class _Forks:
    """os.fork, failing (EAGAIN) the next ``fail`` times once armed."""

    def __init__(self) -> None:
        self.fork = os.fork
        self.fail = 0
        self.failed = 0
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            if self.fail:
                self.fail -= 1
                self.failed += 1
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        return self.fork()


def test_a_reload_whose_new_worker_cannot_be_forked_is_refused_and_the_workers_serve_on(monkeypatch):
    forks = _Forks()
    monkeypatch.setattr(os, "fork", forks)

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        before = set(supervisor.workers)
        forks.fail = 1
        _sighup(lines, "SIGHUP: cannot reload, the workers serving go on: cannot start a new worker process")
        assert forks.failed == 1
        # (the new one started, if any, stopped; the reload dropped just after the log line said so)
        _until(lambda: set(supervisor.workers) == before and supervisor.reloading is None, lines)
        _sighup(lines, "reloaded: worker processes")  # (the next SIGHUP tries again)
        _until(lambda: len(supervisor.workers) == 2 and not set(supervisor.workers) & before, lines)

    lines = _supervised(lambda: _serve, 300.0, script)
    assert "Resource temporarily unavailable" in lines.text()


def test_a_worker_that_cannot_be_forked_in_place_of_a_dead_one_is_started_later(monkeypatch):
    forks = _Forks()
    monkeypatch.setattr(os, "fork", forks)

    def script(supervisor: workers._Supervisor, lines: _Lines) -> None:
        victim = min(supervisor.workers)
        forks.fail = 2
        os.kill(victim, signal.SIGKILL)
        _until(lambda: lines.count(f"cannot start a worker process in place of [{victim}]") == 1, lines)
        _until(lambda: forks.failed == 2 and len(supervisor.workers) == 2, lines)
        assert victim not in supervisor.workers
        _until(lambda: all(w.ready for w in supervisor.workers.values()), lines)

    lines = _supervised(lambda: _serve, 300.0, script)
    assert "starting one in " in lines.text(), lines.text()
