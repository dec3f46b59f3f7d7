"""KVCache shared by real processes: atomic incr/add/get_or_set, SIGKILL, fork and gunicorn --preload."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest
from helpers import child_env, free_port, run_python, spawn_python, start_own_server
from kv_backend_django.cache import KVCache

SETUP = """
import os, sys, json
import django
from django.conf import settings
settings.configure(CACHES={{"default": {{
    "BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": {location!r},
    "OPTIONS": {{"MAX_ENTRIES": 1_000_000}}}}}})
django.setup()
from django.core.cache import cache
"""


def child_code(location: str, body: str) -> str:
    return SETUP.format(location=location) + textwrap.dedent(body)


WORKER = """
start = float(sys.argv[1])
import time
while time.time() < start:
    time.sleep(0.001)
me = os.getpid()
cache.add("counter", 0, None)
won = []
seen = {}
for i in range(150):
    cache.incr("counter")
    cache.decr("down", 1) if cache.add("down", 0, None) is False else cache.decr("down")
    if i % 3 == 0 and cache.add(f"claim:{i}", me, None):
        won.append(i)
    if i % 5 == 0:
        seen[i] = cache.get_or_set(f"gos:{i}", lambda: me, None)
print(json.dumps({"won": won, "seen": seen}))
"""


def test_four_processes_incr_add_get_or_set_exact(tmp_path):
    location = str(tmp_path / "shared")
    start = time.time() + 1.0
    procs = [
        spawn_python(child_code(location, WORKER), str(start), stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        results.append(json.loads(out))
    c = KVCache(location, {"OPTIONS": {"MAX_ENTRIES": 1_000_000}})
    assert c.get("counter") == 4 * 150
    assert c.get("down") == -4 * 150
    winners = [i for r in results for i in r["won"]]
    assert sorted(winners) == list(range(0, 150, 3))  # every add had exactly one winner
    for i in range(0, 150, 5):
        values = {r["seen"][str(i)] for r in results}
        assert len(values) == 1 and values == {c.get(f"gos:{i}")}  # all saw the one stored value


KILLED = """
i = 0
cache.add("n", 0, None)
while True:
    cache.set(f"k{i}", {"i": i, "pad": "x" * (i % 2000)}, None)
    n = cache.incr("n")
    print(i, n, flush=True)
    i += 1
"""


@pytest.mark.parametrize("run", range(3))
def test_sigkill_mid_write_loses_nothing_acknowledged(tmp_path, run):
    location = str(tmp_path / "killed")
    proc = spawn_python(child_code(location, KILLED), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the child is up and writing
    time.sleep(random.uniform(0.01, 0.3))
    os.kill(proc.pid, signal.SIGKILL)
    out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
    proc.wait(timeout=30)
    lines = [line.split() for line in (first + out).splitlines() if len(line.split()) == 2]
    assert lines, "the child did not get to write anything"
    last_i, last_n = (int(x) for x in lines[-1])
    c = KVCache(location, {})
    for i in range(last_i + 1):
        assert c.get(f"k{i}") == {"i": i, "pad": "x" * (i % 2000)}
    assert c.get("n") in (last_n, last_n + 1)  # the unacknowledged last incr may or may not be there
    c.set("after", 1)  # the store stays writable after the crash
    assert c.get("after") == 1


BATCHES = """
n = 0
while True:
    n += 1
    cache.set_many({f"part{j}": (n, "y" * (n % 3000)) for j in range(8)}, None)
    if n % 7 == 0:
        cache.delete_many([f"part{j}" for j in range(8)])
    print(n, flush=True)
"""


@pytest.mark.parametrize("run", range(2))
def test_sigkill_during_set_many_leaves_whole_batches(tmp_path, run):
    location = str(tmp_path / "batches")
    proc = spawn_python(child_code(location, BATCHES), stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    time.sleep(random.uniform(0.01, 0.3))
    os.kill(proc.pid, signal.SIGKILL)
    out = proc.stdout.read()  # not communicate(): it would skip what readline() buffered
    proc.wait(timeout=30)
    acked = int((first + out).split()[-1])
    c = KVCache(location, {})
    parts = c.get_many([f"part{j}" for j in range(8)])
    if parts:
        assert len(parts) == 8 and len(set(parts.values())) == 1  # one whole batch, never a mix
        n = next(iter(parts.values()))[0]
        assert n in (acked, acked + 1)
        assert n % 7 != 0 or n == acked + 1  # a deleted batch reappears only if killed before the delete
    else:
        assert acked % 7 == 0 or (acked + 1) % 7 == 0  # the last step was (or was about to be) a delete


FORKER = """
cache.set("before_fork", "parent", None)
cache.add("n", 0, None)
pids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        try:
            assert cache.get("before_fork") == "parent"
            for _ in range(100):
                cache.incr("n")
            cache.set(f"child:{os.getpid()}", 1, None)
        finally:
            os._exit(0)
    pids.append(pid)
for _ in range(100):
    cache.incr("n")
for pid in pids:
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
assert cache.get("n") == 400, cache.get("n")
assert all(cache.get(f"child:{p}") == 1 for p in pids)
print("ok")
"""


def test_fork_after_use_shares_the_store(tmp_path):
    proc = run_python(child_code(str(tmp_path / "forked"), FORKER))
    assert proc.stdout.strip() == "ok"


WSGI_APP = """
import os
import django
from django.conf import settings

settings.configure(
    DEBUG=False, SECRET_KEY="x", ALLOWED_HOSTS=["127.0.0.1"], ROOT_URLCONF=__name__, DATABASES={{}},
    CACHES={{"default": {{"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": {location!r}}}}},
)
django.setup()
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

cache.set("preloaded_by", os.getpid(), None)  # used in the master before the fork (--preload)
cache.add("hits", 0, None)


def hit(request):
    reply = {{"hits": cache.incr("hits"), "pid": os.getpid(), "master": cache.get("preloaded_by")}}
    return JsonResponse(reply)


urlpatterns = [path("hit/", hit)]
application = get_wsgi_application()
"""


def test_gunicorn_preload_workers_count_exactly(tmp_path):
    pytest.importorskip("gunicorn")
    (tmp_path / "kvb_wsgi_app.py").write_text(WSGI_APP.format(location=str(tmp_path / "gunicorn_cache")))
    env = child_env()
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env["PYTHONPATH"]

    def launch() -> tuple[subprocess.Popen, list[int]]:
        port = free_port()
        gunicorn = [sys.executable, "-m", "gunicorn", "--preload", "-w", "3"]
        argv = [*gunicorn, "-b", f"127.0.0.1:{port}", "kvb_wsgi_app"]
        out, err = subprocess.DEVNULL, subprocess.PIPE
        return subprocess.Popen(argv, env=env, stdout=out, stderr=err, text=True), [port]

    # (its master listening on a port of its own: see start_own_server)
    server, (port,) = start_own_server(launch)
    try:
        url = f"http://127.0.0.1:{port}/hit/"
        deadline = time.time() + 30
        while True:
            try:
                first = json.load(urllib.request.urlopen(url, timeout=5))
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        replies = [first]
        lock = threading.Lock()

        def client():
            for _ in range(40):
                reply = json.load(urllib.request.urlopen(url, timeout=10))
                with lock:
                    replies.append(reply)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r["hits"] for r in replies) == list(range(1, 162))  # every incr unique and counted
        assert {r["master"] for r in replies} == {first["master"]}
        assert first["master"] not in {r["pid"] for r in replies}  # served by forked workers
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
