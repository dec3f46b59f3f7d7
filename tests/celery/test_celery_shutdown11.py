"""A prefork worker using kvb:// stops when its whole process group gets SIGTERM.

systemd, with its default KillMode=control-group, sends the stop signal to
every process of the worker's unit, its pool children too. The chord recovery thread that runs in every
pool child took a SIGTERM sent to the child whenever the child's main thread
blocked it (billiard blocks it while a child writes to the result pipe): the
handler then never ran, the child, back waiting for a job in a read with no
timeout, never exited, and the worker hung in its shutdown. The thread now
blocks the signals sent to a process, which wait for the main thread.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import celery_helpers
import pytest
from celery import Celery, states
from helpers import child_env, require_tool
from kv_backend_celery.backend import start_chord_recovery
from resp_helpers import start_redis_server, stop_process

from kv_backend import DB
from kv_backend.check import check

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]

HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_sigterm_the_main_thread_blocks_waits_for_it_not_for_the_recovery_thread(store_path):
    # A pool child's main thread blocks SIGTERM while it writes a result; one sent to the
    # child then must stay pending for that thread, not be taken by the recovery thread.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child: its daemon thread must not outlive the test
        code = 1
        try:
            handled: list[int] = []
            signal.signal(signal.SIGTERM, lambda signum, frame: handled.append(signum))
            app = celery_helpers.make_app(f"kvb://{store_path}", "kvb-shutdown11")
            assert start_chord_recovery(app)
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the main thread is elsewhere (a read, a lock): any other thread may take it
            pending = signal.sigpending()
            code = 0 if signal.SIGTERM in pending and not handled else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the SIGTERM went to the recovery thread"


@pytest.fixture
def redis_broker(tmp_path):
    """A throw-away redis-server: a broker whose transport Celery drives from its event loop."""
    require_tool("redis-server")
    proc, port = start_redis_server(str(tmp_path))
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_process(proc)


def test_sigterm_to_the_worker_process_group_stops_it_with_its_results_intact(tmp_path, redis_broker):
    # (With a transport that has no event-loop support, filesystem:// for one, Celery's blocking
    # pool can hang at exit after such a signal with any result backend: see docs/celery.md.)
    broker, results = redis_broker, str(tmp_path / "results")
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    env.update(KVB_TEST_BROKER=broker, KVB_TEST_BACKEND=f"kvb://{results}")
    env["KVB_TEST_SIDE"] = str(tmp_path / "side")
    log = str(tmp_path / "worker.log")
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "kvb_celery_app", "worker"),
            *("-P", "prefork", "-c", "2", "-l", "info", "--logfile", log),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group, as a systemd unit's control group
    )
    app = Celery("kvb-shutdown11-client", broker=broker, backend=f"kvb://{results}", set_as_current=False)
    app.conf.update(broker_connection_retry_on_startup=True)
    try:
        done = [app.send_task("kvb_celery_app.add", args=(i, i)) for i in range(8)]
        assert [r.get(timeout=30) for r in done] == [2 * i for i in range(8)]
        running = app.send_task("kvb_celery_app.wait_flag", args=(f"never-{uuid.uuid4()}",))
        db = app.backend.db
        deadline = time.monotonic() + 30
        while running.state != states.STARTED:
            assert time.monotonic() < deadline, "the task never started"
            db.wait_for_change(db.change_token(), 0.05)
        # STARTED is stored by the pool process; the worker's main process learns that its pool
        # process took the task a moment later (billiard's ACK). Only from then on does the worker
        # count the task as lost with that process (WorkerLostError, FAILURE): a task the main
        # process never saw accepted is put back in the queue at shutdown and stays STARTED.
        inspect = app.control.inspect(timeout=1.0, limit=1)
        while running.id not in {task["id"] for tasks in (inspect.active() or {}).values() for task in tasks}:
            assert time.monotonic() < deadline, "the worker never took the task as started"

        os.killpg(worker.pid, signal.SIGTERM)
        started = time.monotonic()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            with open(log, encoding="utf-8", errors="replace") as f:
                pytest.fail(f"the worker ignored SIGTERM to its group for 20 s:\n{f.read()[-3000:]}")
        assert time.monotonic() - started < 10
        assert worker.returncode == 0
        deadline = time.monotonic() + 5
        while True:  # the pool children are gone too
            try:
                os.killpg(worker.pid, 0)
            except ProcessLookupError:
                break
            assert time.monotonic() < deadline, "pool processes outlived the worker"
            time.sleep(0.05)

        # Every stored result reads back, from a store that was not damaged.
        assert [app.AsyncResult(r.id).get(timeout=1) for r in done] == [2 * i for i in range(8)]
        # The interrupted task is recorded as lost, as with Celery's own backends.
        if running.state != states.FAILURE:  # failed once in a loaded full run: keep the evidence
            with open(log, encoding="utf-8", errors="replace") as f:
                tail = f.read()[-4000:]
            pytest.fail(f"the interrupted task is {running.state}, not FAILURE; worker log:\n{tail}")
        assert "WorkerLostError" in repr(running.result)
        report = check(results)
        assert report.ok, report.problems
        with DB(results, read_only=True) as reopened:
            assert reopened.get(b"celery-task-meta-" + done[0].id.encode()) is not None
    finally:
        if worker.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(5)
