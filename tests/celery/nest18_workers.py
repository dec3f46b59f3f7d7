"""The ``workers`` fixture of the tests comparing nested results with ``redis://`` (test_nested_order18,
test_generator_group_deleted19, test_group_delete_running18): a redis-server, the broker of both
workers and the reference result backend, and a prefork worker with each backend, running the
``nest18`` tasks. Loaded by conftest.py: the same workers serve the three modules (started and
stopped for each, they took some 10 s each time), see :class:`~worker_procs.SharedHere`.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import child_env, require_tool
from resp_helpers import start_redis_server, stop_process
from worker_procs import SharedHere

APP = """
import os
import time

from celery import Celery


def build(broker, backend):
    app = Celery("nest18", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        worker_hijack_root_logger=False,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        result_extended=True,
    )
    if backend.startswith("redis://"):
        # An AsyncResult of the redis backend left for the garbage collector reconnects from its
        # __del__ (Celery 5.3: with retries, for a minute each) if the server is gone by then, stalling
        # whatever test the collection runs in: retry once, at once.
        app.conf.result_backend_transport_options = {
            "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1}
        }

    @app.task(name="nest18.slow", shared=False)
    def slow(x, delay=0.0):
        time.sleep(delay)
        return x

    @app.task(name="nest18.mul", shared=False)
    def mul(x, y):
        return x * y

    @app.task(name="nest18.collect", shared=False)
    def collect(values):
        return values

    return app


if os.environ.get("NEST18_BACKEND"):
    app = build(os.environ["NEST18_BROKER"], os.environ["NEST18_BACKEND"])
"""


@contextlib.contextmanager
def _workers(tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    require_tool("redis-server")
    base = tmp_path_factory.mktemp("nest18")
    (base / "nest18_app.py").write_text(textwrap.dedent(APP))
    redis_proc, port = start_redis_server(str(base))
    backends = {"kvb": f"kvb://{base / 'results'}", "redis": f"redis://127.0.0.1:{port}/3"}
    brokers = {"kvb": f"redis://127.0.0.1:{port}/1", "redis": f"redis://127.0.0.1:{port}/2"}
    procs: list[subprocess.Popen] = []
    apps: dict = {}
    sys.path.insert(0, str(base))
    try:
        import nest18_app

        for name, backend in backends.items():
            env = child_env()
            env["PYTHONPATH"] = os.pathsep.join([str(base), env["PYTHONPATH"]])
            env.update(NEST18_BROKER=brokers[name], NEST18_BACKEND=backend)
            procs.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "celery", "-A", "nest18_app", "worker", "-P", "prefork"),
                        *("-c", "3", "-n", f"nest18-{name}@%h", "-l", "warning", "--without-gossip"),
                        *("--without-mingle", "--without-heartbeat", f"--logfile={base / name}.log"),
                    ],
                    env=env,
                    cwd=str(base),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        apps.update((name, nest18_app.build(brokers[name], backend)) for name, backend in backends.items())
        deadline = time.monotonic() + 60
        for name in apps:
            while not apps[name].control.ping(timeout=0.5, limit=1):
                assert all(p.poll() is None for p in procs), f"a worker exited; see {base}/*.log"
                assert time.monotonic() < deadline, f"the {name} worker did not answer; see {base}/{name}.log"
        yield apps
    finally:
        # The apps and the results their redis backend holds let go while the server runs: a result's
        # __del__ unsubscribes from its channel, reconnecting to a server stopped by then (an unraisable
        # RuntimeError warned of in whichever later test the garbage collector ran in). The test holds
        # this dict too, and the collection ran with the apps still in it.
        apps.clear()
        gc.collect()
        sys.path.remove(str(base))
        sys.modules.pop("nest18_app", None)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        stop_process(redis_proc)


_WORKERS = SharedHere(_workers)


@pytest.fixture(scope="module")
def workers(tmp_path_factory):
    """A redis-server (the broker, and the reference result backend) and one prefork worker per backend,
    by name ("kvb", "redis"): the Celery app of each."""
    return _WORKERS.get(tmp_path_factory)
