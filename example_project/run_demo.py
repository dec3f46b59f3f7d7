#!/usr/bin/env python
"""Run the example site end to end and show what kv_backend cached.

Runs ``migrate``, starts ``kvb serve`` as the Celery broker (Celery's own
``redis://`` transport, queues in a kv_backend store) and the site on
127.0.0.1 (free ports) with ``runserver`` or ``gunicorn``, requests its
pages, starts a Celery worker and a task through ``/task/`` (its result
stored by the ``kvb://`` result backend), prints the cache's contents, runs ``kv_stats``,
``kv_merge`` and ``kv_backup file://...``, restores that backup with ``kvb restore``, serves the
copy with ``kvb http``, talks to the broker with redis-py, runs the engine demo
(``python -m kv_backend.demo``) and writes a Store and a shelf, stops the servers and exits 0
on success. ``make demo`` calls it; run it by hand with
``python example_project/run_demo.py [--server gunicorn] [--keep]``.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def child_env(var_dir: Path) -> dict[str, str]:
    """Environment of the site's processes: importable project, settings, data directory."""
    env = dict(os.environ)
    paths = [str(HERE), str(ROOT), str(ROOT / "integrations")]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["DJANGO_SETTINGS_MODULE"] = "mysite.settings"
    env["KVB_EXAMPLE_VAR"] = str(var_dir)
    # the cache too lives in the data directory, which a run empties (not where a run by hand put it)
    env.pop("KVB_EXAMPLE_CACHE", None)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def manage(env: dict[str, str], *args: str) -> str:
    """Run ``manage.py`` with ``args``, echo its output and return it (raise on failure)."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "manage.py"), *args],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = proc.stdout + proc.stderr
    print("$ manage.py " + " ".join(args))
    print(output.rstrip() or "(done)")
    if proc.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed with exit code {proc.returncode}")
    return proc.stdout


def start_server(kind: str, env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    if kind == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", f"127.0.0.1:{port}"]
        cmd.append("mysite.wsgi")
    else:
        cmd = [sys.executable, str(HERE / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"]
    print("$ " + " ".join(["python", *cmd[1:]] if kind == "gunicorn" else ["manage.py", *cmd[2:]]))
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=HERE, stdout=out, stderr=subprocess.STDOUT)


def wait_until_up(base: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(base + "/health/", timeout=2).read()
            return
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                print(log.read_text(errors="replace"))
                raise SystemExit("the site did not start; its log is above") from None
            time.sleep(0.2)


#: The processes told to stop: told once (a second SIGTERM would cut a Celery worker's warm shutdown short).
_TOLD: set[int] = set()


def tell_to_stop(server: subprocess.Popen) -> None:
    """Ask ``server`` to stop (SIGTERM; SIGINT where there is none), once, without waiting for it."""
    if server.poll() is None and server.pid not in _TOLD:
        _TOLD.add(server.pid)
        server.send_signal(signal.SIGTERM if os.name == "posix" else signal.SIGINT)


def wait_stopped(server: subprocess.Popen) -> None:
    """Wait for ``server``, told to stop, to exit; kill it if it has not within 20 s."""
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def stop_server(server: subprocess.Popen) -> None:
    tell_to_stop(server)
    wait_stopped(server)


def request_pages(base: str) -> None:
    """Visit every page the way a browser would (one cookie jar for the session)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(path: str) -> str:
        with opener.open(base + path, timeout=10) as r:
            return r.read().decode()

    first, second = get("/"), get("/")
    print("GET / twice:", "same cached page" if first == second else "two renders (not cached?)")
    print("  ", next(line for line in first.splitlines() if "rendered at" in line).strip())
    hits = []
    for _ in range(3):
        reply = get("/counter/")
        hits.append(json.loads(reply)["hits"])
        print("GET /counter/ ->", reply)
    for _ in range(3):
        print("GET /session/ ->", get("/session/"))
    renders = [re.findall(r"<p>(\w+) rendered at ([\d:]+\.\d+)", get("/fragment/")) for _ in range(2)]
    for (_, page), (_, sidebar) in renders:
        print(f"GET /fragment/ -> page rendered at {page}, its sidebar fragment at {sidebar}")
    ((_, page1), (_, sidebar1)), ((_, page2), (_, sidebar2)) = renders
    if page1 == page2 or sidebar1 != sidebar2:
        raise SystemExit("the template fragment was not served from the 'fragments' cache")
    print("   the page is rendered anew each time; the sidebar comes from the 'fragments' cache")
    if first != second:
        raise SystemExit("the cached view was rendered twice: the per-view cache does not work")
    if hits != list(range(hits[0], hits[0] + 3)) or json.loads(get("/session/"))["visits"] != 4:
        raise SystemExit("the counter or the session did not keep its value")


def start_broker(var_dir: Path) -> tuple[subprocess.Popen, str]:
    """Start ``kvb serve`` on loopback as the Celery broker: Celery talks Redis to it, its queues persist."""
    port = free_port()
    store = var_dir / "broker"
    proc = subprocess.Popen(
        [sys.executable, "-m", "kv_backend", "serve", "--dir", str(store), "--port", str(port)],
        env=child_env(var_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_server(proc)
            raise SystemExit("kvb serve did not start")
        time.sleep(0.05)
    print(f"$ kvb serve --dir {store} --port {port}   (the Celery broker, over the Redis protocol)")
    return proc, f"redis://127.0.0.1:{port}/0"


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``celery -A mysite worker -P prefork -c 2`` (:func:`wait_for_worker` waits until it answers)."""
    cmd = [sys.executable, "-m", "celery", "-A", "mysite", "worker", "-P", "prefork", "-c", "2"]
    cmd += ["-l", "info", "-n", "demo@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    print("$ celery " + " ".join(cmd[3:]))  # the command run, flags and all
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=HERE, stdout=out, stderr=subprocess.STDOUT)


def wait_for_worker(worker: subprocess.Popen, env: dict[str, str], log: Path) -> None:
    """Wait until the worker :func:`start_worker` started answers a ping."""
    # One client pings for up to 10 s: it answers as soon as the worker does (limit=1), and a
    # worker still starting costs a retry, not a new interpreter setting Django up.
    ping = (
        "import sys, time, django; django.setup()\n"
        "from mysite.celery import app\n"
        "deadline = time.monotonic() + 10\n"
        "while not app.control.ping(timeout=1.0, limit=1):\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit(1)\n"
    )
    deadline = time.time() + 60
    while subprocess.run([sys.executable, "-c", ping], env=env, cwd=HERE, timeout=60).returncode != 0:
        if worker.poll() is not None or time.time() > deadline:
            print(log.read_text(errors="replace"))
            raise SystemExit("the Celery worker did not start; its log is above")


def celery_part(base: str, env: dict[str, str], var_dir: Path, worker: subprocess.Popen) -> None:
    """Wait for the worker (started with the broker), have the site start a task through /task/ and
    show its result, and tell the worker to stop: its warm shutdown takes it a few seconds, which the
    next steps need not wait for (the end of the demo waits for it)."""
    wait_for_worker(worker, env, var_dir / "worker.log")
    try:
        with urllib.request.urlopen(base + "/task/?text=to+be+or+not+to+be", timeout=30) as r:
            started = json.loads(r.read())
        print("GET /task/?text=to+be+or+not+to+be ->", json.dumps(started))
        with urllib.request.urlopen(base + started["status_url"], timeout=30) as r:
            status = json.loads(r.read())
        print(f"GET {started['status_url']} ->", json.dumps(status))
        if started.get("state") != "SUCCESS" or started["result"]["words"] != 6:
            raise SystemExit("the Celery task did not return its result through the kvb:// backend")
        if status.get("result") != started["result"]:
            raise SystemExit("another process did not read the same result from the kvb:// store")
        print(f"The worker stored the result in {var_dir / 'celery-results'}; the site read it back.")
    finally:
        tell_to_stop(worker)


def show_cache(env: dict[str, str]) -> None:
    """Print every cached entry: key, size, time left (read from the store like any other process)."""
    code = (
        "import django, time; django.setup()\n"
        "from django.core.cache import caches\n"
        "db = caches['default'].db\n"
        "for k, v in db.items():\n"
        "    try:\n"
        "        ttl = db.ttl(k)\n"
        "    except KeyError:\n"
        "        continue\n"
        "    left = 'never expires' if ttl is None else f'expires in {ttl:.0f}s'\n"
        "    print(f'  {k.decode(errors=\"replace\")[:90]:<90} {len(v):>6} B  {left}')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=HERE, check=True, timeout=120)


def kvb(env: dict[str, str], *args: str) -> str:
    """Run the ``kvb`` command line with ``args``, echo its output and return it (raise on failure)."""
    proc = subprocess.run(
        [sys.executable, "-m", "kv_backend", *args], env=env, capture_output=True, text=True, timeout=120
    )
    print("$ kvb " + " ".join(args))
    print((proc.stdout + proc.stderr).rstrip() or "(done)")
    if proc.returncode != 0:
        raise SystemExit(f"kvb {' '.join(args)} failed with exit code {proc.returncode}")
    return proc.stdout


def http_part(env: dict[str, str], store: Path, log: Path) -> None:
    """Serve ``store`` with ``kvb http`` on loopback, write and read a key and list the keys, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "kv_backend", "http", "--dir", str(store), "--port", str(port)]
    print(f"$ kvb http --dir {store} --port {port}")
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    print(log.read_text(errors="replace"))
                    raise SystemExit("kvb http did not start; its log is above") from None
                time.sleep(0.1)
        put = urllib.request.Request(base + "/v1/keys/greeting?ttl=60", data=b"hello", method="PUT")
        with urllib.request.urlopen(put, timeout=10) as r:
            print("PUT /v1/keys/greeting?ttl=60 (hello) ->", r.status)
        with urllib.request.urlopen(base + "/v1/keys/greeting", timeout=10) as r:
            value = r.read()
            print("GET /v1/keys/greeting ->", value.decode())
        with urllib.request.urlopen(base + "/v1/keys", timeout=10) as r:
            print("GET /v1/keys ->", r.read().decode())
        if value != b"hello":
            raise SystemExit("kvb http did not return the value it stored")
    finally:
        stop_server(server)


def redis_part(broker_url: str) -> None:
    """Talk to the broker, ``kvb serve``, with redis-py: a string with a TTL, and the keys Celery made."""
    import redis

    r = redis.Redis.from_url(broker_url)
    try:
        print("redis-py", broker_url)
        print("  PING ->", r.ping())
        print("  SET greeting hello EX 60 ->", r.set("greeting", "hello", ex=60))
        print("  GET greeting ->", r.get("greeting"), " TTL greeting ->", r.ttl("greeting"))
        print("  KEYS * ->", sorted(k.decode(errors="replace") for k in r.keys("*")))
        if r.get("greeting") != b"hello":
            raise SystemExit("kvb serve did not return the value it stored")
    finally:
        r.close()


_STORE_CODE = """
import sys
from kv_backend import Store, shelve

where, write = sys.argv[1], sys.argv[2] == "write"
with Store(where + "/store", serializer="json") as s, shelve.open(where + "/shelf") as shelf:
    if write:
        s["user:1"] = {"name": "Ada", "visits": 3}
        s.set("token:abc", {"user": 1}, ttl=60)
        shelf["cart"] = ["apple", "pear"]
    else:
        print("  Store:", s["user:1"], " token:abc expires in", round(s.ttl("token:abc")), "s")
        print("  shelve:", shelf["cart"])
"""


def store_part(env: dict[str, str], var_dir: Path) -> None:
    """Write a Store (JSON values, a TTL) and a shelf in one process, read them back in another."""
    print(f"one process writes a Store and a shelf in {var_dir}, another reads them:", flush=True)
    for mode in ("write", "read"):
        code = [sys.executable, "-c", _STORE_CODE, str(var_dir), mode]
        subprocess.run(code, env=env, check=True, timeout=60)


#: Marks a data directory as one this script made, and so may empty for the next run.
DEMO_MARK = ".kvb-demo-data"


def prepare_var_dir(var_dir: Path, keep: bool) -> None:
    """Make ``var_dir`` the data directory of a run: emptied first unless ``keep``.

    Only what an earlier demo made is deleted: the default ``var/`` here, or a directory holding
    this script's mark. Any other directory with files in it (``--var ~`` by mistake) is refused
    with ValueError, nothing deleted.
    """
    if not keep and var_dir.is_dir() and any(var_dir.iterdir()):
        if var_dir != HERE / "var" and not (var_dir / DEMO_MARK).exists():
            raise ValueError(
                f"{var_dir} holds files this demo did not make, and a run starts by deleting its data "
                "directory: give --var a new or empty directory (or --keep to run on what is there)"
            )
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / DEMO_MARK).touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", choices=["runserver", "gunicorn"], default="runserver", help="web server of the site"
    )
    parser.add_argument(
        "--var",
        default=str(HERE / "var"),
        help="data directory (default: var/ here), emptied first unless --keep; refused if it holds files "
        "an earlier run did not make",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data of earlier runs")
    args = parser.parse_args(argv)

    var_dir = Path(args.var).resolve()
    try:
        prepare_var_dir(var_dir, args.keep)
    except ValueError as exc:
        print(f"run_demo.py: {exc}", file=sys.stderr)
        return 2
    env = child_env(var_dir)

    step("migrate")
    manage(env, "migrate", "--noinput", "-v", "0")

    step("start the Celery broker and a worker")
    broker_proc, env["KVB_EXAMPLE_BROKER"] = start_broker(var_dir)
    worker = start_worker(env, var_dir / "worker.log")  # (it starts while the site does)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = var_dir / "server.log"
    step(f"start the site on {base} ({args.server})")
    server = start_server(args.server, env, port, log)
    try:
        wait_until_up(base, server, log)
        step("request pages")
        request_pages(base)
        step("Celery: a task started by a view, its result stored in kvb://")
        celery_part(base, env, var_dir, worker)
        step("what the cache holds")
        show_cache(env)
        step("kv_stats")
        manage(env, "kv_stats")
        step("kv_merge")
        manage(env, "kv_merge")
        step("kv_backup")
        manage(env, "kv_backup", (var_dir / "backups").as_uri())
        step("kvb restore: the cache's backup, verified, into a new directory")
        shutil.rmtree(var_dir / "restored", ignore_errors=True)  # the copy of an earlier run (--keep)
        kvb(env, "restore", (var_dir / "backups").as_uri(), str(var_dir / "restored"))
        kvb(env, "keys", str(var_dir / "restored"))
        step("kvb http: the restored store over HTTP")
        http_part(env, var_dir / "restored", var_dir / "http.log")
        step("kvb serve: the broker's store, with a Redis client")
        redis_part(env["KVB_EXAMPLE_BROKER"])
        step("the engine: four processes on one store")
        print("$ python -m kv_backend.demo", flush=True)
        engine_demo = [sys.executable, "-m", "kv_backend.demo"]
        subprocess.run(engine_demo, env=env, cwd=var_dir, check=True, timeout=120)
        step("Store and shelve: persistent dicts")
        store_part(env, var_dir)
    finally:
        step("stop the site")
        stop_server(server)
        stop_server(worker)  # (before its broker)
        stop_server(broker_proc)
    print(
        "\nDemo finished: the site ran on kv_backend for its cache and its sessions, and Celery on it "
        "for its broker (kvb serve) and its results (kvb://); the cache's backup was restored and served "
        "over HTTP (kvb http), and the engine, a Store and a shelf were used directly."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
