"""A call that asks for its result, run by a worker started on a ``read_only=1`` URL.

Such a worker starts (with a warning) only if every task ignores its results. A call that asks
for its result after all (``apply_async(..., ignore_result=False)``), or a chord part run there,
raised ReadOnlyError from the worker's own handling of the task: a solo worker exited
("Unrecoverable error") at the first such call, and a prefork one logged two tracebacks ("Exception
raised outside body", "Pool callback raised exception") instead of the task's outcome, the chord
part's with the engine's message, which names no URL option. As with no result backend (and as
a ``redis://`` replica refusing writes, minus the crash), the task runs, its state is not stored
(its clients see it ``PENDING``), and the worker logs one error per dropped write naming
``read_only=1``; the worker goes on with its next task.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from celery import chord, states
from celery.app import task as celery_task_module
from celery_helpers import make_app
from helpers import child_env
from kv_backend_celery.worker_check import check_worker
from test_celery_quiet_worker10 import entry_points_dir  # noqa: F401  (a fixture)
from test_celery_shutdown11 import redis_broker  # noqa: F401  (a fixture)

from kv_backend.errors import ReadOnlyError

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),  # tasks of other tests
]

APP = """
import os
from celery import Celery

app = Celery("rocalls18", broker=os.environ["KVB_TEST_BROKER"], backend=os.environ["KVB_TEST_BACKEND"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task
def echo(x):
    return x


@app.task
def boom():
    raise ValueError("boom")
"""


def _wait_for(path, text: str, worker: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        written = path.read_text() if path.exists() else ""
        if text in written:
            return written
        assert worker.poll() is None, f"the worker exited ({worker.returncode}):\n{written[-3000:]}"
        assert time.monotonic() < deadline, f"no {text!r} in the worker's log:\n{written[-3000:]}"
        time.sleep(0.05)


# Celery releases without get_actual_ignore_result (5.3) take a task's ignore_result over the call's
# (apply_async(ignore_result=False) stores nothing there): a worker then has no write to drop for it.
_CALL_OVERRIDES_IGNORE_RESULT = hasattr(celery_task_module, "get_actual_ignore_result")


@pytest.mark.skipif(
    not _CALL_OVERRIDES_IGNORE_RESULT,
    reason="this Celery release takes the task's ignore_result over apply_async(ignore_result=False): "
    "the call stores nothing, so a read_only=1 worker has nothing to drop",
)
@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_a_call_asking_for_its_result_runs_and_its_state_is_dropped_with_one_error(
    tmp_path,
    store_path,
    redis_broker,  # noqa: F811  (the imported fixture)
    entry_points_dir,  # noqa: F811  (the imported fixture)
    pool,
):
    url = f"kvb://{store_path}"
    make_app(url).backend.store_result("before", 1, states.SUCCESS)  # the store exists
    (tmp_path / "rocalls18.py").write_text(textwrap.dedent(APP))
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"], entry_points_dir])
    env.update(KVB_TEST_BROKER=redis_broker, KVB_TEST_BACKEND=url + "?read_only=1")
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "rocalls18", "worker", "-P", pool, "-c", "1"),
            *("-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat"),
            f"--logfile={log}",
        ],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for(log, " ready.", worker)
        client = make_app(url)  # the client's URL is writable: a chord needs it
        client.conf.broker_url = redis_broker

        @client.task(name="rocalls18.echo", shared=False, ignore_result=True)
        def echo(x):  # pragma: no cover - run by the worker
            return x

        @client.task(name="rocalls18.boom", shared=False, ignore_result=True)
        def boom():  # pragma: no cover - run by the worker
            raise ValueError("boom")

        wanted = echo.apply_async((5,), ignore_result=False)
        failed = boom.apply_async(ignore_result=False)
        header = chord([echo.s(1), echo.s(2)], echo.s()).apply_async()
        parts = [r.id for r in header.parent.results]
        after = echo.delay(7)  # the worker goes on
        text = _wait_for(log, f"rocalls18.echo[{after.id}] succeeded", worker)
        assert worker.poll() is None
        assert f"rocalls18.echo[{wanted.id}] succeeded" in text  # the task ran
        assert f"rocalls18.boom[{failed.id}] raised unexpected: ValueError('boom')" in text
        for part in parts:
            assert f"rocalls18.echo[{part}] succeeded" in text
        errors = [line for line in text.splitlines() if "ERROR/" in line and "read_only=1" in line]
        wanted_errors = [line for line in errors if wanted.id in line]  # one, naming the task
        assert len(wanted_errors) == 1
        assert f"cannot store the SUCCESS state of rocalls18.echo[{wanted.id}]" in wanted_errors[0]
        failed_errors = [line for line in errors if failed.id in line]
        assert len(failed_errors) == 1
        assert f"cannot store the FAILURE state of rocalls18.boom[{failed.id}]" in failed_errors[0]
        for part in parts:
            part_errors = [line for line in errors if part in line]
            assert len(part_errors) == 1 and f"as a part of chord {header.parent.id}" in part_errors[0]
        for noise in ("Unrecoverable error", "Pool callback raised", "outside body", "opened with read_only"):
            assert noise not in text
        assert client.AsyncResult(wanted.id).state == states.PENDING
        assert client.AsyncResult(failed.id).state == states.PENDING
        assert header.state == states.PENDING
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_only_the_warned_worker_drops_writes(store_path, caplog):
    # The same read_only=1 URL in a client (no worker started on it) still raises at once.
    url = f"kvb://{store_path}"
    make_app(url).backend.store_result("before", 1, states.SUCCESS)
    # (task_ignore_result: tasks shared by every app, those of kvb_celery_app, ignore their results too)
    worker_app = make_app(url + "?read_only=1", task_ignore_result=True)
    client_app = make_app(url + "?read_only=1", task_ignore_result=True)
    with caplog.at_level(logging.WARNING, logger="kv_backend_celery.backend"):
        check_worker(worker_app)  # no task stores results: it starts, with the warning
    assert "every task of this worker ignores its results" in caplog.text
    with pytest.raises(ReadOnlyError, match="read_only=1"):
        client_app.backend.store_result("t1", 1, states.SUCCESS)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="kv_backend_celery.backend"):
        worker_app.backend.store_result("t1", 1, states.SUCCESS)
    assert "cannot store the SUCCESS state of task[t1]" in caplog.text and "read_only=1" in caplog.text
    assert make_app(url).AsyncResult("t1").state == states.PENDING
