"""Real Redis users pointed at ``kvb serve``: Django's RedisCache, Celery's redis:// broker and results."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import child_env, require_tool, run_python
from resp_helpers import RunningServer, start_redis_server, stop_process, tree_kill

from kv_backend.structures import Structures


@pytest.fixture
def kvb(tmp_path):
    srv = RunningServer(str(tmp_path / "store")).start()
    yield srv
    srv.stop()


def test_django_redis_cache(kvb):
    code = f"""
        import time
        import django
        from django.conf import settings

        settings.configure(
            CACHES={{
                "default": {{
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": "{kvb.url()}",
                    "KEY_PREFIX": "site",
                }}
            }}
        )
        django.setup()
        from django.core.cache import cache

        cache.clear()
        cache.set("obj", {{"a": [1, 2, 3]}}, 300)
        assert cache.get("obj") == {{"a": [1, 2, 3]}}
        assert cache.get("missing", "dflt") == "dflt"
        assert cache.add("obj", "other") is False and cache.add("new", 1) is True
        cache.set_many({{"m1": 1, "m2": "two", "m3": b"three"}}, timeout=None)
        assert cache.get_many(["m1", "m2", "m3", "nope"]) == {{"m1": 1, "m2": "two", "m3": b"three"}}
        assert cache.incr("m1") == 2 and cache.decr("m1", 5) == -3
        assert cache.has_key("m2") and not cache.has_key("nope")
        assert cache.touch("m2", 100) is True and cache.touch("nope", 10) is False
        assert cache.get_or_set("gos", lambda: "computed") == "computed"
        cache.delete_many(["m1", "m2"])
        assert cache.get("m1") is None and cache.get("m3") == b"three"
        cache.set("short", 1, 1)
        time.sleep(1.2)
        assert cache.get("short") is None
        assert cache.touch("m3", 0) is True and cache.get("m3") is None
        assert cache.delete("obj") is True and cache.delete("obj") is False
        cache.clear()
        assert cache.get("new") is None
        print("django ok")
    """
    out = run_python(code, timeout=60)
    assert "django ok" in out.stdout


CELERY_APP = """
import os
from celery import Celery

app = Celery("kvbapp", broker=os.environ["KVB_BROKER"], backend=os.environ["KVB_BACKEND"])
app.conf.update(
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_acks_late=False,
)


@app.task
def add(x, y):
    return x + y


@app.task
def total(values):
    return sum(values)
"""


def _celery_env(tmp_path, broker: str, backend: str) -> tuple[str, dict[str, str]]:
    """A directory holding the test app, and the environment its worker and clients run with."""
    appdir = tmp_path / "app"
    appdir.mkdir(exist_ok=True)
    (appdir / "kvbapp.py").write_text(CELERY_APP)
    env = child_env()
    env["PYTHONPATH"] = str(appdir) + os.pathsep + env["PYTHONPATH"]
    env["KVB_BROKER"] = broker
    env["KVB_BACKEND"] = backend
    return str(appdir), env


def _start_worker(appdir: str, env: dict[str, str], *extra: str) -> subprocess.Popen:
    celery = [sys.executable, "-m", "celery", "-A", "kvbapp"]
    return subprocess.Popen(
        [*celery, "worker", "-P", "prefork", "-c", "2", "--loglevel=WARNING", *extra],
        cwd=appdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run_client(appdir: str, env: dict[str, str], code: str, worker: subprocess.Popen | None) -> None:
    """Run client code that prints "celery ok"; on failure show the worker's log."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=appdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "celery ok" not in proc.stdout:
        log = ""
        if worker is not None:
            tree_kill(worker)
            log = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
        raise AssertionError(f"client failed:\n{proc.stdout}\n{proc.stderr}\nworker log:\n{log[-4000:]}")


def _stop_worker(worker: subprocess.Popen) -> None:
    tree_kill(worker)
    if worker.stdout:
        worker.stdout.close()


# HOLD_RESULTS: the clients below keep every AsyncResult they wait on until they exit.
# With Celery before 5.7 and its redis:// result backend (make test-oldest: Celery 5.3,
# redis-py 5.3), a fulfilled AsyncResult freed by the garbage collector while the client
# is in the middle of SUBSCRIBE/UNSUBSCRIBE for the next one deadlocks the client: its
# __del__ unsubscribes, re-entering redis-py's non-reentrant PubSub lock that same thread
# holds (celery/celery#10477, fixed in Celery 5.7). get(timeout=60) then never returns.
ROUND_TRIPS = """
    from celery import chord, group
    from kvbapp import add, total

    single = add.delay(2, 3)
    assert single.get(timeout=60) == 5
    grouped = group(add.s(i, i) for i in range(6))()
    g = grouped.get(timeout=60)
    assert g == [0, 2, 4, 6, 8, 10], g
    chorded = chord(add.s(i, 1) for i in range(5))(total.s())
    c = chorded.get(timeout=60)
    assert c == 15, c
    print("celery ok")
"""


def test_celery_result_backend_group_and_chord(kvb, tmp_path):
    require_tool("redis-server")
    broker, broker_port = start_redis_server(str(tmp_path))
    appdir, env = _celery_env(tmp_path, f"redis://127.0.0.1:{broker_port}/0", kvb.url())
    worker = _start_worker(appdir, env, "--without-gossip", "--without-mingle", "--without-heartbeat")
    try:
        _run_client(appdir, env, ROUND_TRIPS, worker)
        # The results really live in the kv_backend store.
        from kv_backend.structures import Structures

        with Structures(kvb.path) as st:
            assert st.keys("celery-task-meta-*")
    finally:
        _stop_worker(worker)
        stop_process(broker)


def test_celery_broker_and_backend_on_kvb_serve(kvb, tmp_path):
    """kvb serve as Celery's broker (BRPOP, pub/sub for remote control) and its result backend."""
    appdir, env = _celery_env(tmp_path, kvb.url(), kvb.url())
    worker = _start_worker(appdir, env)  # gossip, mingle and heartbeats on: they use pub/sub
    try:
        _run_client(appdir, env, ROUND_TRIPS, worker)
        ping = """
            from kvbapp import app
            replies = app.control.inspect(timeout=5, limit=1).ping()  # one worker: its answer ends the wait
            assert replies and all(r == {"ok": "pong"} for r in replies.values()), replies
            print("celery ok")
        """
        _run_client(appdir, env, ping, worker)
    finally:
        _stop_worker(worker)


def test_celery_tasks_queued_in_kvb_serve_survive_a_server_kill(tmp_path):
    """Tasks sent while no worker runs wait in the store: a SIGKILLed server loses none of them."""
    srv = RunningServer(str(tmp_path / "store")).start()
    appdir, env = _celery_env(tmp_path, srv.url(), srv.url())
    try:
        send = """
            import json
            from kvbapp import add
            ids = [add.delay(i, 100).id for i in range(8)]
            open("ids.json", "w").write(json.dumps(ids))
            print("celery ok")
        """
        _run_client(appdir, env, send, None)
        srv.kill()
        with Structures(srv.path) as st:  # the queue the worker will read: what the kill must not lose
            assert st.llen("celery") == 8, st.keys("*")
        srv.start()  # same directory, same port
        # INFO: should this fail, the log shows which tasks the worker received and ran.
        worker = _start_worker(
            appdir, env, "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO"
        )
        try:
            collect = """
                import json
                from kvbapp import app
                ids = json.load(open("ids.json"))
                # Every AsyncResult is held until the end (see HOLD_RESULTS).
                results = [app.AsyncResult(i) for i in ids]
                got = [r.get(timeout=60) for r in results]
                assert got == [i + 100 for i in range(8)], got
                print("celery ok")
            """
            _run_client(appdir, env, collect, worker)
        finally:
            _stop_worker(worker)
    finally:
        srv.stop()


REDELIVERY_APP = """
import os, time
from celery import Celery

app = Celery("kvbapp", broker=os.environ["KVB_BROKER"], backend=os.environ["KVB_BACKEND"])
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    broker_transport_options={"visibility_timeout": 1},
)


@app.task
def once_slow(x):
    # The first run marks that it started, then hangs until its worker is killed.
    if os.path.exists("started"):
        return x * 10
    open("started", "w").close()
    time.sleep(120)
    return x
"""


def test_celery_task_of_a_killed_worker_is_redelivered_through_kvb_serve(kvb, tmp_path):
    """acks_late: a worker SIGKILLed mid-task leaves it in kombu's unacked set in the store; the next
    worker restores and runs it (kombu's visibility timeout: ZADD/ZREVRANGEBYSCORE, WATCH/MULTI).

    kombu restores, when a worker starts, the unacked messages older than the visibility timeout
    (as it does with redis-server), so the second worker starts after that much time.
    """
    appdir, env = _celery_env(tmp_path, kvb.url(), kvb.url())
    (tmp_path / "app" / "kvbapp.py").write_text(REDELIVERY_APP)
    quiet = ("--without-gossip", "--without-mingle", "--without-heartbeat")
    first = _start_worker(appdir, env, *quiet)
    try:
        send = """
            import os, time
            from kvbapp import once_slow
            r = once_slow.delay(7)
            open("task-id", "w").write(r.id)
            deadline = time.time() + 60
            while not os.path.exists("started"):
                assert time.time() < deadline, "the first worker never started the task"
                time.sleep(0.05)
            print("celery ok")
        """
        _run_client(appdir, env, send, first)
    finally:
        _stop_worker(first)  # SIGKILL, mid-task: never acknowledged
    time.sleep(1.5)  # past the visibility timeout
    second = _start_worker(appdir, env, *quiet)
    try:
        collect = """
            from kvbapp import app
            result = app.AsyncResult(open("task-id").read()).get(timeout=60)
            assert result == 70, result
            print("celery ok")
        """
        _run_client(appdir, env, collect, second)
    finally:
        _stop_worker(second)


RQ_JOBS = """
def add(x, y):
    return x + y


def boom():
    raise ValueError("boom")
"""


# rq's worker listens on its command channel in a redis-py PubSub thread that waits up to
# 60 s for a message. When that thread reads the reply to the worker's UNSUBSCRIBE before
# the worker asks it to stop (a loaded machine), the exiting worker waits out those 60 s:
# measured with redis-server (5 runs in 41) as with kvb serve, never with a short wait (0 in
# 150). The test's worker runs rq's own command line with that wait shortened.
RQ_WORKER = """
import sys
from redis.client import PubSub
from rq.cli import main

_run_in_thread = PubSub.run_in_thread


def run_in_thread(self, sleep_time=0.0, *args, **kwargs):
    return _run_in_thread(self, min(sleep_time, 0.5), *args, **kwargs)


PubSub.run_in_thread = run_in_thread
sys.argv[0] = "rq"
sys.exit(main())
"""


def test_rq_jobs_through_kvb_serve(kvb, tmp_path):
    """RQ (python-rq) queues, a burst worker, results in Redis streams, the failed-job registry."""
    pytest.importorskip("rq", reason="python-rq is not installed (it comes with the dev extra)")
    jobs = tmp_path / "rqjobs"
    jobs.mkdir()
    (jobs / "rqjobs.py").write_text(RQ_JOBS)
    env = child_env()
    env["PYTHONPATH"] = str(jobs) + os.pathsep + env["PYTHONPATH"]
    code = f"""
        import subprocess, sys
        from redis import Redis
        from rq import Queue
        import rqjobs

        q = Queue(connection=Redis.from_url("{kvb.url()}"))
        ok, bad = q.enqueue(rqjobs.add, 2, 3), q.enqueue(rqjobs.boom)
        worker = subprocess.run(
            [sys.executable, "-c", {RQ_WORKER!r}, "worker", "--burst", "--url", "{kvb.url()}"],
            capture_output=True, text=True, timeout=120,
        )
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert ok.get_status() == "finished" and ok.return_value() == 5, ok.get_status()
        assert bad.get_status() == "failed", bad.get_status()
        assert "ValueError: boom" in bad.latest_result().exc_string
        assert q.failed_job_registry.count == 1 and q.finished_job_registry.count == 1
        print("rq ok")
    """
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=180
    )
    assert "rq ok" in proc.stdout, proc.stdout + proc.stderr[-4000:]
