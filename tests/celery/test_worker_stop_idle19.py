"""The test workers stop in seconds after a test that ends as soon as it reads a failed chord.

``chord([chord([add, fail], tsum), add], tsum)``: the pool process that runs ``fail`` stores the
failure of both chords before it reports the task done to the worker's main process. A test that
reads the enclosing chord's ``FAILURE`` and ends stopped the workers in that window, and with
Celery before 5.7 the worker often took the fixture's full 15 s (then was killed): its pool
process waited for the main process to read its report, which the main process, stopping, did
not (the same with ``redis://`` as the result backend; see docs/celery.md). The fixture now waits
until the workers have no task in progress before it stops them.
"""

from __future__ import annotations

import os
import time

import pytest
from celery import Celery, chord, states
from helpers import child_env, require_tool
from resp_helpers import start_redis_server, stop_process
from worker_procs import start_worker, stop_workers

HERE = os.path.dirname(os.path.abspath(__file__))

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(90)]


@pytest.mark.parametrize("round_", [1, 2])  # each stop falls in that window about 2 times in 3
def test_workers_stop_quickly_right_after_a_nested_chord_failed(tmp_path, round_):
    require_tool("redis-server")
    redis_proc, port = start_redis_server(str(tmp_path))
    broker, backend = f"redis://127.0.0.1:{port}/0", f"kvb://{tmp_path / 'results'}"
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    env.update(KVB_TEST_BROKER=broker, KVB_TEST_BACKEND=backend, KVB_TEST_SIDE=str(tmp_path / "side"))
    log = str(tmp_path / "worker.log")
    worker = start_worker(env, str(tmp_path), f"kvbstop19-{round_}@%h", log)
    app = Celery("kvb-stop19-client", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5, limit=1):
            assert worker.poll() is None and time.monotonic() < deadline, "the worker never answered"
        sig = app.signature
        inner = chord(
            [sig("kvb_celery_app.add", (1, 1)), sig("kvb_celery_app.fail", ("inner broke",))],
            sig("kvb_celery_app.tsum"),
            app=app,
        )
        outer = chord([inner, sig("kvb_celery_app.add", (5, 5))], sig("kvb_celery_app.tsum"), app=app)
        result = outer.apply_async()
        deadline = time.monotonic() + 30
        while result.state != states.FAILURE:  # as a test that ends once it read the failure
            assert time.monotonic() < deadline, "the enclosing chord never failed"
            time.sleep(0.01)
        started = time.monotonic()
        stop_workers([worker], app)
        took = time.monotonic() - started
        assert worker.returncode == 0, f"the worker was killed after {took:.1f} s"
        assert took < 5, f"the worker took {took:.1f} s to stop"
    finally:
        stop_workers([worker], timeout=1)
        stop_process(redis_proc)
