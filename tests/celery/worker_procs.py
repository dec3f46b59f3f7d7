"""Start prefork workers of ``kvb_celery_app`` for the tests, and stop them without waiting on Celery.

Before Celery 5.7, a prefork worker told to stop (``SIGTERM`` to its main process) while a pool
process is finishing a task, after the task's result was stored and before the worker's main
process has read the pool process's report that the task is done, often takes 20-30 s to exit,
whatever the result backend (``redis://`` too): the pool process waits, in billiard's
``_ensure_messages_consumed``, up to 30 s for the main process to read that report, and the main
process waits for the pool process (``Pool.join``). A test that ends as soon as it reads a result
stops the workers in just that window, so :func:`stop_workers` first waits until no worker has a
task in progress, as an operator's ``celery inspect active`` would show (see docs/celery.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from subprocess import Popen
from typing import Any


def start_worker(env: dict[str, str], cwd: str, name: str, log: str, concurrency: int = 2) -> Popen:
    """A ``celery worker -P prefork`` of ``kvb_celery_app`` named ``name``, in its own process group."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "kvb_celery_app", "worker"),
            *("-P", "prefork", "-c", str(concurrency), "-n", name, "-l", "info"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat", "--logfile", log),
        ],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_idle(app: Any, workers: int, timeout: float = 5) -> bool:
    """Wait until ``workers`` workers answer and none has a task in progress; False on ``timeout``.

    A worker lists a task as active until its main process has read the pool process's report
    that the task is done, so an idle worker has no such report left to read. Each look ends as
    soon as ``workers`` workers have answered (``limit``), not at the end of its 0.5 s.
    """
    inspect = app.control.inspect(timeout=0.5, limit=workers)
    deadline = time.monotonic() + timeout
    while True:
        active = inspect.active() or {}
        if len(active) >= workers and not any(active.values()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def wait_or_kill(proc: subprocess.Popen, timeout: float) -> None:
    """Wait up to ``timeout`` s for a signalled worker, then kill its whole process group."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def stop_workers(workers: list[subprocess.Popen], app: Any = None, timeout: float = 15) -> None:
    """Stop ``workers`` (warm shutdown, all at once), once idle if ``app`` (their app) is given;
    kill a worker's process group if it has not exited ``timeout`` s after its ``SIGTERM``."""
    running = [w for w in workers if w.poll() is None]
    if app is not None and running:
        with contextlib.suppress(Exception):  # a broker that is gone: stop them as they are
            wait_idle(app, len(running))
    for w in running:
        with contextlib.suppress(ProcessLookupError):
            w.send_signal(signal.SIGTERM)
    for w in running:
        with contextlib.suppress(Exception):
            wait_or_kill(w, timeout)


class SharedHere:
    """Workers (and their broker) that the tests of this directory share: started when a test first
    asks for them (``get``), stopped by :func:`stop_shared` once the tests of this directory are done
    (conftest.py's ``pytest_runtest_teardown``), not when the session ends.

    That is pytest's ``package`` scope, which this directory cannot have: an ``__init__.py`` here would
    make its modules ``celery.*``, hiding Celery. Stopped at the session's end, the workers' warm
    shutdown (a few seconds) came after the last test of the pytest worker that ran these tests, and
    so at the end of the whole run.
    """

    _started: list[SharedHere] = []

    def __init__(self, start: Callable[[Any], AbstractContextManager[Any]]) -> None:
        self._start = start
        self._stack: ExitStack | None = None
        self._value: Any = None

    def get(self, tmp_path_factory: Any) -> Any:
        """The running workers' handle, started now if they are not running."""
        if self._stack is None:
            with ExitStack() as stack:
                self._value = stack.enter_context(self._start(tmp_path_factory))
                self._stack = stack.pop_all()
            SharedHere._started.append(self)
        return self._value

    def stop(self) -> None:
        stack, self._stack, self._value = self._stack, None, None
        if stack is not None:
            stack.close()


def stop_shared() -> None:
    """Stop every :class:`SharedHere` started, each in a thread of its own: their warm shutdowns
    (a few seconds each, mostly Celery's pool) overlap instead of adding up."""
    started, SharedHere._started[:] = list(SharedHere._started), []
    if started:
        with ThreadPoolExecutor(len(started)) as pool:
            for future in [pool.submit(shared.stop) for shared in started]:
                future.result()
