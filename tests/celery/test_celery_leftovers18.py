"""A ``read_only=1`` result backend URL where something must write: a worker, a chord's client.

A worker given such a URL started, and failed only at its first task: with the solo pool it
exited ("Unrecoverable error: ReadOnlyError"), with prefork each result was lost and its clients
waited for ever. It now refuses to start, naming the URL option, unless every task ignores its
results (then it starts with a warning). A chord sent from such a client raised the engine's
ReadOnlyError ("opened with read_only=True"), naming no URL option; it now names ``read_only=1``
and says that chords need a writable client.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from celery import chord, states
from celery_helpers import make_app
from helpers import child_env
from test_celery_quiet_worker10 import entry_points_dir  # noqa: F401  (a fixture)

from kv_backend.errors import ReadOnlyError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

APP = """
import os
from celery import Celery

app = Celery("ro18", broker="memory://", backend=os.environ["KVB_TEST_BACKEND"])
app.conf.update(task_ignore_result=True, worker_hijack_root_logger=False)


@app.task
def quiet():
    return 1


if os.environ.get("RO18_STORING"):
    @app.task(ignore_result=False)
    def storing():
        return 2
"""


@pytest.fixture
def app_env(tmp_path, store_path, entry_points_dir):  # noqa: F811  (the imported fixture)
    (tmp_path / "ro18_app.py").write_text(textwrap.dedent(APP))
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"], entry_points_dir])
    env["KVB_TEST_BACKEND"] = f"kvb://{store_path}?read_only=1"
    return env


def _worker(env: dict[str, str], pool: str) -> list[str]:
    return [
        *(sys.executable, "-m", "celery", "-A", "ro18_app", "worker", "-P", pool, "-c", "1", "-l", "info"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]


@pytest.mark.parametrize("pool", ["solo", "prefork"])
def test_worker_storing_results_refuses_a_read_only_url(app_env, pool):
    app_env["RO18_STORING"] = "1"
    done = subprocess.run(_worker(app_env, pool), env=app_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "refusing to start" in done.stderr
    assert "read_only=1" in done.stderr and "ro18_app.storing" in done.stderr
    assert "ro18_app.quiet" not in done.stderr  # it ignores its results
    assert "ready" not in done.stderr  # stopped before it took a task


@pytest.mark.parametrize("logfile", [False, True])
def test_worker_whose_tasks_ignore_results_starts_with_a_warning(app_env, tmp_path, logfile):
    out_path, log = tmp_path / "out.txt", tmp_path / "worker.log"
    command = _worker(app_env, "solo") + ([f"--logfile={log}"] if logfile else [])
    with open(out_path, "w") as out:
        worker = subprocess.Popen(
            command, env=app_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    watched = log if logfile else out_path
    try:
        deadline = time.monotonic() + 60
        while " ready." not in (watched.read_text() if watched.exists() else ""):
            assert worker.poll() is None, out_path.read_text()
            assert time.monotonic() < deadline, out_path.read_text()
            time.sleep(0.05)
        text = watched.read_text()
        assert "read_only=1" in text and "every task of this worker ignores its results" in text
        if logfile:
            assert "WARNING/MainProcess" in text
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_worker_init_handler_without_the_celery_program(store_path):
    # A worker started in a process that had loaded the backend, without the celery program
    # (which loads kv_backend_celery.cli): the backend's own worker_init handler refuses it.
    script = f"""if True:
        from celery import Celery, signals
        import kv_backend_celery.backend

        class Worker:
            def __init__(self, app):
                self.app = app
        url = "kvb://{store_path}?read_only=1"
        app = Celery("ro18", broker="memory://", backend=url, set_as_current=False)

        @app.task(name="t.stores")
        def stores():
            return 1
        signals.worker_init.send(sender=Worker(app))
        print("started")
    """
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True)
    assert done.returncode == 1 and "started" not in done.stdout
    assert "refusing to start" in done.stderr and "t.stores" in done.stderr


@pytest.mark.parametrize("exists", [True, False])
def test_chord_from_a_read_only_client_names_the_url_option(store_path, exists):
    url = f"kvb://{store_path}"
    if exists:
        make_app(url).backend.store_result("before", 1, states.SUCCESS)
    app = make_app(url + "?read_only=1")

    @app.task(shared=False)
    def add(x, y):  # pragma: no cover - never run, only sent
        return x + y

    @app.task(shared=False)
    def tsum(values):  # pragma: no cover - never run, only sent
        return sum(values)

    with pytest.raises(ReadOnlyError, match=r"chords need a writable client.*read_only=1") as info:
        chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()
    assert "?read_only=1" in str(info.value)  # the URL, as given
    if exists:
        assert set(make_app(url).backend.db.keys()) == {b"celery-task-meta-before"}  # nothing written


def test_storing_through_a_read_only_client_names_the_url_option(store_path):
    url = f"kvb://{store_path}"
    make_app(url).backend.store_result("before", 1, states.SUCCESS)
    backend = make_app(url + "?read_only=1").backend
    with pytest.raises(ReadOnlyError, match=r"result of task t1.*read_only=1"):
        backend.store_result("t1", 1, states.SUCCESS)


def test_forgetting_or_saving_a_group_through_a_read_only_client_names_the_url_option(store_path):
    # A web process that reads a result and then forgets it, or saves a group's result.
    url = f"kvb://{store_path}"
    make_app(url).backend.store_result("t1", 1, states.SUCCESS)
    reader = make_app(url + "?read_only=1")
    result = reader.AsyncResult("t1")
    assert result.get(timeout=5) == 1
    with pytest.raises(ReadOnlyError, match=r"cannot delete celery-task-meta-t1, .*read_only=1"):
        result.forget()
    with pytest.raises(ReadOnlyError, match=r"cannot store celery-taskset-meta-g1, .*read_only=1"):
        reader.GroupResult("g1", [result]).save()
    assert make_app(url).AsyncResult("t1").get(timeout=5) == 1  # still there


def test_worker_init_leaves_a_bad_url_to_the_worker_to_report():
    # The check builds the backend; a URL it cannot build is reported by the worker as before,
    # not also logged as a failed signal handler.
    script = """if True:
        from celery import Celery, signals
        import kv_backend_celery.cli

        class Worker:
            def __init__(self, app):
                self.app = app
        app = Celery("ro18", broker="memory://", backend="kvb://relative/x", set_as_current=False)
        print(signals.worker_init.send(sender=Worker(app)))
    """
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Signal handler" not in done.stderr and "None)]" in done.stdout


def test_a_detached_worker_says_why_in_its_log_file(app_env, tmp_path):
    # celery multi / --detach: no stderr, and the worker's logging is not set up yet at worker_init.
    app_env["RO18_STORING"] = "1"
    log, pidfile = tmp_path / "%n.log", tmp_path / "worker.pid"
    command = [*_worker(app_env, "solo"), "--detach", f"--logfile={log}", f"--pidfile={pidfile}"]
    done = subprocess.run(command, env=app_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the detaching parent
    written = tmp_path / "celery.log"  # %n: the node name's first part
    deadline = time.monotonic() + 30
    try:
        while "refusing to start" not in (written.read_text() if written.exists() else ""):
            assert time.monotonic() < deadline, "the detached worker wrote no refusal"
            time.sleep(0.05)
        text = written.read_text()
        assert "CRITICAL/MainProcess" in text and "read_only=1" in text and "ro18_app.storing" in text
        while pidfile.exists():  # the worker exited, removing its pid file
            assert time.monotonic() < deadline, "the detached worker is still running"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(OSError, ValueError):  # a worker that started after all
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)
