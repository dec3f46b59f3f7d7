"""Fixtures for the Celery result backend tests: a loopback redis-server broker and prefork workers.

The broker and workers are started by the first worker test (they take a few seconds), shared by
every worker test, and stopped once the tests of this directory are done; each test uses its own
task ids, so tests don't see each other's results.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import nest18_workers
import pytest
from helpers import child_env
from resp_helpers import start_redis_server
from worker_procs import SharedHere, start_worker, stop_shared, stop_workers, wait_or_kill

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_root_conftest():
    # Both conftest files are top-level modules named "conftest"; load the suite's one by path.
    path = os.path.join(os.path.dirname(HERE), "conftest.py")
    spec = importlib.util.spec_from_file_location("_kvb_suite_conftest", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


require_tool = _load_root_conftest().require_tool
#: A redis-server and workers, shared by the modules comparing nested results with redis://.
workers = nest18_workers.workers
WORKERS = 2  # two `worker -P prefork -c 2` processes: four pool children in all
CONCURRENCY = 2


@dataclass
class CeleryEnv:
    """What a worker test needs: the URLs, the app module and the workers' log files."""

    broker: str
    backend: str
    results_path: str
    side_path: str
    env: dict[str, str]
    app_module: object
    logs: list[str] = field(default_factory=list)

    @property
    def app(self):
        return self.app_module.app  # type: ignore[attr-defined]

    def worker_log(self) -> str:
        text = []
        for path in self.logs:
            with open(path, encoding="utf-8", errors="replace") as f:
                text.append(f.read())
        return "\n".join(text)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    wait_or_kill(proc, timeout)


@contextlib.contextmanager
def _celery_env(tmp_path_factory) -> Iterator[CeleryEnv]:
    require_tool("redis-server")
    base = tmp_path_factory.mktemp("celery")
    redis_proc, port = start_redis_server(str(base))
    workers: list[subprocess.Popen] = []
    module = None
    saved = {k: os.environ.get(k) for k in ("KVB_TEST_BROKER", "KVB_TEST_BACKEND", "KVB_TEST_SIDE")}
    try:
        broker = f"redis://127.0.0.1:{port}/0"
        results = str(base / "results")
        side = str(base / "side")
        backend = f"kvb://{results}"
        env = child_env()
        env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
        env.update(KVB_TEST_BROKER=broker, KVB_TEST_BACKEND=backend, KVB_TEST_SIDE=side)
        logs = []
        for i in range(WORKERS):
            log = str(base / f"worker{i}.log")
            logs.append(log)
            workers.append(start_worker(env, str(base), f"kvbtest{i}@%h", log, CONCURRENCY))
        os.environ.update(KVB_TEST_BROKER=broker, KVB_TEST_BACKEND=backend, KVB_TEST_SIDE=side)
        sys.modules.pop("kvb_celery_app", None)
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        module = importlib.import_module("kvb_celery_app")
        deadline = time.monotonic() + 60
        while True:
            for w in workers:
                if w.poll() is not None:
                    raise RuntimeError(f"a celery worker exited with code {w.returncode}; see {logs}")
            replies = module.app.control.ping(timeout=0.5, limit=WORKERS)
            if len(replies) >= WORKERS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"celery workers did not answer within 60 s; see {logs}")
        yield CeleryEnv(broker, backend, results, side, env, module, logs)
    finally:
        # Once idle (see worker_procs), all at once: a warm shutdown takes a few seconds each.
        stop_workers(workers, module.app if module is not None else None)
        _stop(redis_proc, timeout=5)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_CELERY_ENV = SharedHere(_celery_env)


@pytest.fixture(scope="module")  # (set up before a test's own fixtures, as when it lived for the session)
def celery_env(tmp_path_factory) -> CeleryEnv:
    """A redis-server broker on loopback and two prefork workers using the kvb:// result backend
    (started by the first test asking for them, see :class:`~worker_procs.SharedHere`)."""
    return _CELERY_ENV.get(tmp_path_factory)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """Once the tests of this directory are done (the next test to run lies elsewhere, or none is
    left), stop the workers they shared, after the last one's own teardown."""
    try:
        return (yield)
    finally:
        if nextitem is None or not str(nextitem.path).startswith(HERE + os.sep):
            stop_shared()


def pytest_sessionfinish(session):
    """A session stopped in the middle of these tests: stop the shared workers all the same."""
    stop_shared()


@pytest.fixture(autouse=True)
def _close_the_tests_result_stores():
    """Close the result stores a test opened once it is done.

    A backend's store stays open as long as its app lives, and a test's apps (make_app...) live on
    in reference cycles until the garbage collector runs: a pytest worker ended a run holding some
    forty stores of finished tests, four descriptors each. The stores opened during the test are
    closed after it, but for one an app made before it (a session's or a module's fixture) still
    uses: such an app's backend would reopen it at its next use, at a cost.
    """
    from celery import _state
    from kv_backend_celery import store

    apps_before = weakref.WeakSet(_state._apps)
    open_before = weakref.WeakSet(store._shared.values())
    yield
    kept = set()
    for app in apps_before:
        backend = app._backend  # (this thread's backend, if the app made one)
        if isinstance(backend, store.StoreBackend) and backend._db is not None:
            kept.add(id(backend._db))
    for db in list(store._shared.values()):
        if db not in open_before and id(db) not in kept:
            db.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failed worker test, attach the end of the workers' logs to the report."""
    outcome = yield
    report = outcome.get_result()
    env = item.funcargs.get("celery_env") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and isinstance(env, CeleryEnv):
        with contextlib.suppress(OSError):
            tail = env.worker_log().splitlines()[-150:]
            report.sections.append(("celery worker logs (last 150 lines)", "\n".join(tail)))
