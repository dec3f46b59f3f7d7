"""Real Redis users pointed at ``kvb serve``: Django's RedisCache and Celery's redis:// result backend."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import child_env, require_tool, run_python
from resp_helpers import RunningServer, start_redis_server, stop_process, tree_kill


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


def test_celery_result_backend_group_and_chord(kvb, tmp_path):
    require_tool("redis-server")
    broker, broker_port = start_redis_server(str(tmp_path))
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "kvbapp.py").write_text(CELERY_APP)
    env = child_env()
    env["PYTHONPATH"] = str(appdir) + os.pathsep + env["PYTHONPATH"]
    env["KVB_BROKER"] = f"redis://127.0.0.1:{broker_port}/0"
    env["KVB_BACKEND"] = kvb.url()
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "kvbapp",
            "worker",
            "-P",
            "prefork",
            "-c",
            "2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=str(appdir),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        client = textwrap.dedent("""
            from celery import chord, group
            from kvbapp import add, total

            assert add.delay(2, 3).get(timeout=60) == 5
            g = group(add.s(i, i) for i in range(6))().get(timeout=60)
            assert g == [0, 2, 4, 6, 8, 10], g
            c = chord(add.s(i, 1) for i in range(5))(total.s()).get(timeout=60)
            assert c == 15, c
            print("celery ok")
        """)
        proc = subprocess.run(
            [sys.executable, "-c", client],
            cwd=str(appdir),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if "celery ok" not in proc.stdout:
            tree_kill(worker)
            log = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
            raise AssertionError(f"client failed:\n{proc.stdout}\n{proc.stderr}\nworker log:\n{log[-4000:]}")
        # The results really live in the kv_backend store.
        from kv_backend.structures import Structures

        with Structures(kvb.path) as st:
            assert st.keys("celery-task-meta-*")
    finally:
        tree_kill(worker)
        if worker.stdout:
            worker.stdout.close()
        stop_process(broker)
