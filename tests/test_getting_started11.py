"""A newcomer's first hour: the README, docs/django.md and docs/celery.md followed as written,
and the example project (example_project/) used by hand rather than through run_demo.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, child_env


def _example_env(tmp_path, **extra: str) -> dict[str, str]:
    """Environment of a process of the example site (its settings, data under ``tmp_path``)."""
    return dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="mysite.settings",
        KVB_EXAMPLE_VAR=str(tmp_path / "var"),
        PYTHONPATH=os.pathsep.join(
            [os.path.join(ROOT, "example_project"), ROOT, os.path.join(ROOT, "integrations")]
        ),
        **extra,
    )


_TASK_WITHOUT_BROKER = """
import json, django
django.setup()
from django.test import Client
from mysite.celery import app
app.conf.task_publish_retry_policy = {"max_retries": 0}  # the same error, without the retries
response = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False).get("/task/")
print(json.dumps({"status": response.status_code, "body": response.content.decode()}))
"""


def test_example_task_view_without_a_broker_says_how_to_start_one(tmp_path):
    """docs/django.md's by-hand steps start only the site, whose home page links to /task/: with no
    broker listening that was a bare 'Server Error (500)', logged nowhere (DEBUG off)."""
    broker = f"redis+socket://{tmp_path}/no-broker.sock"  # nothing listens there, whatever else runs
    done = subprocess.run(
        [sys.executable, "-c", _TASK_WITHOUT_BROKER],
        env=_example_env(tmp_path, KVB_EXAMPLE_BROKER=broker),
        cwd=os.path.join(ROOT, "example_project"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reply = json.loads(done.stdout.splitlines()[-1])
    assert reply["status"] == 503, reply
    error = json.loads(reply["body"])["error"]
    assert broker in error and "kvb serve" in error and "KVB_EXAMPLE_BROKER" in error
    assert "celery -A mysite worker" in error


def test_readme_redis_and_http_on_one_directory_keep_their_own_keys(tmp_path):
    """The README runs kvb serve and kvb http on the quick look's directory: what each one sees of
    the other's keys, as the README and docs/redis.md now say (before, nothing said it, and
    ``redis-cli GET greeting`` answering nil after ``db.put(b"greeting", ...)`` looked like lost data)."""
    from starlette.testclient import TestClient

    from kv_backend import DB
    from kv_backend.http import create_app
    from kv_backend.structures import Structures

    with DB(str(tmp_path / "kv")) as db:
        db.put(b"greeting", b"hello", ttl=60)
        s = Structures(db)
        assert s.get("greeting") is None and s.dbsize() == 0
        s.set("k", "v")
        assert db.get(b"k") is None
        with TestClient(create_app(db)) as client:
            assert client.get("/v1/keys/greeting").content == b"hello"
            assert client.get("/v1/keys").json()["keys"] == ["%00mk", "greeting"]


_CHECK_A_LIST_LOCATION = """
import django
from django.conf import settings
KV = "kv_backend_django.cache.KVCache"
settings.configure(INSTALLED_APPS=["kv_backend_django"], CACHES={
    "default": {"BACKEND": KV, "LOCATION": LOCATION},
    "servers": {"BACKEND": KV, "LOCATION": [LOCATION + "-2"]},  # copied from a memcached alias
})
django.setup()
from django.core import management
from kv_backend_django import checks
ours = [checks.check_location_not_published, checks.check_location_is_absolute,
        checks.check_shared_location_options, checks.check_nested_locations]
print([message.id for check in ours for message in check(None)])
try:
    management.call_command("check")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_manage_py_check_reports_a_location_that_is_no_path_with_the_caches_message(tmp_path):
    """A KVCache LOCATION given as a list (a memcached alias's list of servers, switched to KVCache)
    made ``manage.py check``, and so ``runserver``, fail with a TypeError from kv_backend_django's
    E001 check (and W002 called the list's repr a relative path), not with the cache's own message."""
    code = f"LOCATION = {str(tmp_path / 'cache')!r}\n" + _CHECK_A_LIST_LOCATION
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ours, created = done.stdout.splitlines()
    assert ours == "[]"
    assert created.startswith("KVCacheConfigurationError kv_backend_django.cache.KVCache needs LOCATION")


_KV_BACKUP_TO_MEMORY = """
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["kv_backend_django"],
                   CACHES={"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": LOCATION}})
django.setup()
from django.core.cache import cache
from django.core.management import CommandError, call_command
cache.set("page", "<html>")
for url in ("memory://backups", "simplecache::memory://backups", "MEMORY://backups"):
    try:
        call_command("kv_backup", url, verbosity=0)
        print("backed up to", url)
    except CommandError as exc:
        print("refused:", exc)
"""


def test_kv_backup_refuses_a_memory_url_as_kvb_backup_does(tmp_path):
    """``manage.py kv_backup memory://x`` said 'Backup finished' for a backup held in the command's
    own memory, gone when it exits (``kvb backup`` refuses such a URL; docs/django.md gives kv_backup
    its rules)."""
    code = f"LOCATION = {str(tmp_path / 'cache')!r}\n" + _KV_BACKUP_TO_MEMORY
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused: ") for line in lines), lines
    assert "gone when it exits" in lines[0] and "file:///" in lines[0]


def test_http_backup_refuses_a_memory_url(tmp_path):
    """``POST /v1/backup {"url": "memory://x"}`` answered 200 with a backup report for a backup kept in the
    server's own memory: out of reach of ``kvb restore`` and gone when the server exits."""
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with TestClient(create_app(str(tmp_path / "kv"))) as client:
        client.put("/v1/keys/greeting", content=b"hello")
        for url in ("memory://backups", "simplecache::memory://backups"):
            reply = client.post("/v1/backup", json={"url": url})
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"] == "invalid_backup_target" and "gone when it exits" in reply.text
        assert client.post("/v1/backup", json={"url": (tmp_path / "b").as_uri()}).status_code == 200


_CACHE_ON_CELERY_RESULTS = """
import django
from django.conf import settings
KV = "kv_backend_django.cache.KVCache"
settings.configure(
    INSTALLED_APPS=["kv_backend_django"],
    CACHES={
        "default": {"BACKEND": KV, "LOCATION": ROOT + "/kv"},  # the results' directory itself
        "inner": {"BACKEND": KV, "LOCATION": ROOT + "/kv/cache"},
        "apart": {"BACKEND": KV, "LOCATION": ROOT + "/cache"},
    },
    CELERY_RESULT_BACKEND="kvb://" + ROOT + "/kv?sync=always",
)
django.setup()
from celery import Celery
from django.core.cache import caches
from kv_backend_django.checks import check_location_not_celery_results
print(sorted((m.obj, m.id) for m in check_location_not_celery_results(None)))
app = Celery("proj", backend=settings.CELERY_RESULT_BACKEND)
for i in range(8):
    app.backend.store_result(f"t{i}", i, "SUCCESS")
caches["default"].clear()
print(app.AsyncResult("t0").state)
"""


def test_check_warns_of_a_cache_on_the_store_of_the_celery_results(tmp_path):
    """A cache and ``CELERY_RESULT_BACKEND = "kvb://..."`` on one directory: the cache's clear() (and
    its culling) removed the task results, and nothing in the docs or ``manage.py check`` said so."""
    code = f"ROOT = {str(tmp_path)!r}\n" + _CACHE_ON_CELERY_RESULTS
    done = subprocess.run(
        [sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found, state = done.stdout.splitlines()
    w004 = "kv_backend_django.W004"
    assert found == str([("CACHES['default']", w004), ("CACHES['inner']", w004)])
    assert state == "PENDING"  # what W004 warns of: the cleared cache took the result with it


def test_make_clean_removes_what_make_demo_made():
    """``make demo`` keeps its data in example_project/var/ (the site's cache, the broker's queues, the
    results, its backups); ``make clean`` removed .venv and demo-data/, a directory no demo makes any
    more, and left that."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make on this machine")
    done = subprocess.run([make, "-n", "clean"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "example_project/var" in done.stdout.split()
