"""End-to-end soak of a Django site and Celery workers on kv_backend, under load and SIGKILLs.

It writes a small Django project into a work directory (cache and sessions on a
KVCache, Celery results in a kvb:// store, broker ``kvb serve``, or a redis-server
with ``--broker redis``), starts it under ``gunicorn -w 4`` (``--preload``
optional) and ``celery worker -P prefork -c 2`` (acks_late, reject_on_worker_lost),
and drives it with threads of HTTP clients for ``--seconds``: cache
get/set/add/incr/get_or_set/delete_many, session logins and reads, tasks, groups
and chords. Meanwhile it SIGKILLs random gunicorn workers, random Celery pool
processes and now and then the Celery main process (and starts it again), and
runs ``manage.py kv_merge``, ``manage.py kv_backup``, ``kvb merge`` of the result
store and ``kvb check`` of the live stores in loops, as cron would.

At the end it checks that no view answered 500, that every acknowledged
increment was counted (acknowledged <= counter <= attempted), that every
acknowledged session still reads back, that every task and group read as SUCCESS
still reads the same, that tasks whose worker was killed finish when delivered
again, that every chord fired exactly once with the right result, that ``kvb
check`` passes on every store and on a restore of the newest backup, that no cron
job failed and that the logs hold no traceback the kills do not explain; it prints
throughput and p50/p99 latencies per view. kombu's Redis transport loses a
message sent just before the Celery main process was SIGKILLed, about two per
five kills (as often with redis-server: --broker redis): work sent about then
that never finished is counted (tasks, groups, chords) and shown with how long
from its sending the kills came, not failed. Exit status 1 if any check failed.
The work directory (stores and logs) is kept.

    python benchmarks/soak_django.py run --seconds 300 [--preload] [--seed 7]
    python benchmarks/soak_django.py run --quick
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _services import ROOT, free_port, stop, wait_for_port

BIN = Path(sys.executable).parent

SETTINGS = """
import os
from pathlib import Path

VAR = Path(os.environ["SOAK_VAR"])
SECRET_KEY = "soak-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions",
                  "kv_backend_django", "soaksite"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware"]
ROOT_URLCONF = "soaksite.urls"
DATABASES = {}
CACHES = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(VAR / "cache"),
                      "TIMEOUT": 3600, "OPTIONS": {"MAX_ENTRIES": 1_000_000, "sync": "never",
                                                   "auto_merge": 0.5, "max_file_size": 1 << 20}}}
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "handlers": {"console": {"class": "logging.StreamHandler"}},
           "loggers": {"django": {"handlers": ["console"], "level": "ERROR"}}}
CELERY_BROKER_URL = os.environ["SOAK_BROKER"]
CELERY_RESULT_BACKEND = "kvb://" + str(VAR / "results")
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# a message the killed main process held comes back after 15 s (kombu looks every 2 s)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": 15, "unacked_restore_interval": 2, "unacked_restore_throttle": 1
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
"""

CELERY_APP = """
import os
from celery import Celery
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soaksite.settings")
app = Celery("soaksite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["soaksite"])
"""

INIT = "from .celery_app import app as celery_app\n"

WSGI = """
import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soaksite.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
from django.core.cache import cache
cache.get("soak:warm")  # with --preload the master opens the store before forking
"""

TASKS = '''
from celery import shared_task
from django.core.cache import cache


@shared_task
def add(a, b):
    return a + b


@shared_task(bind=True)
def chord_done(self, results, token):
    """The chord callback: note which task ran it; a second, different task is a double fire."""
    if not cache.add("cf:" + token, self.request.id, timeout=None):
        if cache.get("cf:" + token) != self.request.id:
            cache.add("cfdup:" + token, 0, timeout=None)
            cache.incr("cfdup:" + token)
    return sum(results)
'''

VIEWS = """
import os
from celery import chord, group
from celery.exceptions import TimeoutError
from django.core.cache import cache
from django.http import JsonResponse
from soaksite.tasks import add, chord_done


def incr(request, name):
    cache.add("ctr:" + name, 0, timeout=None)
    return JsonResponse({"v": cache.incr("ctr:" + name)})


def kv(request):
    op, k, v = request.GET["op"], "kv:" + request.GET["k"], request.GET.get("v", "")
    if op == "set":
        cache.set(k, v)
        got = cache.get(k)  # another request may have overwritten it meanwhile: only None is wrong
        return JsonResponse({"ok": got is not None, "got": got})
    if op == "get":
        return JsonResponse({"got": cache.get(k)})
    if op == "add":
        return JsonResponse({"added": cache.add(k, v)})
    if op == "gos":
        got = cache.get_or_set(k, v)
        return JsonResponse({"ok": got is not None, "got": got})
    if op == "delmany":
        keys = [k + ":" + str(i) for i in range(5)]
        cache.set_many({key: v for key in keys})
        cache.delete_many(keys)
        return JsonResponse({"ok": True, "left": list(cache.get_many(keys))})
    return JsonResponse({"error": op}, status=400)


def login(request):
    request.session["user"] = request.GET["user"]
    request.session.save()
    return JsonResponse({"key": request.session.session_key})


def whoami(request):
    return JsonResponse({"user": request.session.get("user")})


def task(request):
    a, b = int(request.GET["a"]), int(request.GET["b"])
    r = add.delay(a, b)
    try:
        return JsonResponse({"id": r.id, "result": r.get(timeout=float(request.GET.get("t", "15")))})
    except TimeoutError:  # its worker was killed: redelivered after the visibility timeout
        return JsonResponse({"id": r.id, "pending": True}, status=504)


def grp(request):
    n = int(request.GET["n"])
    res = group(add.s(i, i) for i in range(n)).apply_async()
    res.save()
    try:
        return JsonResponse({"id": res.id, "result": res.get(timeout=float(request.GET.get("t", "15")))})
    except TimeoutError:
        return JsonResponse({"id": res.id, "pending": True}, status=504)


def chrd(request):
    n, token = int(request.GET["n"]), request.GET["token"]
    r = chord(add.s(i, 1) for i in range(n))(chord_done.s(token))
    reply = {"id": r.id, "group": r.parent.id if r.parent is not None else None, "result": None}
    if request.GET.get("wait") == "1":
        try:
            reply["result"] = r.get(timeout=float(request.GET.get("t", "15")))
        except TimeoutError:  # a part or the callback was with a killed worker: checked at the end
            pass
    return JsonResponse(reply)
"""

URLS = """
from django.urls import path
from soaksite import views
urlpatterns = [
    path("incr/<str:name>/", views.incr), path("kv/", views.kv), path("login/", views.login),
    path("whoami/", views.whoami), path("task/", views.task), path("group/", views.grp),
    path("chord/", views.chrd),
]
"""

MANAGE = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soaksite.settings")
from django.core.management import execute_from_command_line
execute_from_command_line(sys.argv)
"""


def write_project(site: Path) -> None:
    """Write the soak's Django project into ``site``."""
    pkg = site / "soaksite"
    pkg.mkdir(parents=True, exist_ok=True)
    for name, text in {
        "__init__.py": INIT,
        "settings.py": SETTINGS,
        "celery_app.py": CELERY_APP,
        "wsgi.py": WSGI,
        "tasks.py": TASKS,
        "views.py": VIEWS,
        "urls.py": URLS,
    }.items():
        (pkg / name).write_text(textwrap.dedent(text))
    (site / "manage.py").write_text(MANAGE)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (Linux /proc)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


class Stats:
    """Latencies, statuses and the acknowledgements the checks need, shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.status: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.attempted: dict[str, int] = defaultdict(int)
        self.acked: dict[str, int] = defaultdict(int)
        self.sessions: dict[str, str] = {}
        self.tasks: dict[str, object] = {}
        self.groups: dict[str, object] = {}
        self.tasks_late: dict[str, str] = {}
        self.groups_late: dict[str, str] = {}
        self.chords: dict[str, tuple[str, str]] = {}
        self.chord_sums: dict[str, tuple[int, int | None]] = {}  # expected, and what the view read
        self.sent: dict[str, float] = {}  # when the late tasks and the chords were sent (monotonic)
        self.bad: list[str] = []
        self.errors: list[str] = []


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.work = Path(args.workdir or tempfile.mkdtemp(prefix="soak_django_"))
        self.site = self.work / "site"
        self.var = self.work / "var"
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.var.mkdir(parents=True, exist_ok=True)
        self.stats = Stats()
        self.stop_load = threading.Event()
        self.stop_chaos = threading.Event()
        self.procs: list[subprocess.Popen] = []
        self.celery: subprocess.Popen | None = None
        self.kills: dict[str, int] = defaultdict(int)
        self.main_kills: list[float] = []
        self.lost: list[str] = []
        self.lost_kinds: dict[str, int] = {"task": 0, "group": 0, "chord": 0}
        self.cron: dict[str, list[int]] = defaultdict(list)
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(self.site), ROOT, os.path.join(ROOT, "integrations")])
        self.env["SOAK_VAR"] = str(self.var)
        self.env["DJANGO_SETTINGS_MODULE"] = "soaksite.settings"

    # --- services ------------------------------------------------------------
    def start(self) -> None:
        write_project(self.site)
        bport = self.args.broker_port or free_port()
        self.env["SOAK_BROKER"] = f"redis://127.0.0.1:{bport}/0"
        if self.args.broker == "redis":  # to tell kvb serve's part from kombu's and Celery's
            exe = shutil.which("redis-server") or "/usr/bin/redis-server"
            cmd = [exe, "--port", str(bport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        else:
            cmd = [sys.executable, "-m", "kv_backend", "serve", "--dir", str(self.var / "broker")]
            cmd += ["--port", str(bport)]
        self.broker = self.spawn("broker", cmd)
        wait_for_port(bport, self.broker)
        self.port = self.args.port or free_port()
        cmd = [
            str(BIN / "gunicorn"),
            "-w",
            "4",
            "-b",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "60",
            "--graceful-timeout",
            "5",
            "soaksite.wsgi",
        ]
        if self.args.preload:
            cmd.insert(1, "--preload")
        self.gunicorn = self.spawn("gunicorn", cmd)
        wait_for_port(self.port, self.gunicorn)
        self.start_celery()

    def spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        """Start ``cmd`` in the site directory, in a session of its own, appending to logs/<name>.log."""
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(
                cmd, cwd=self.site, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append(proc)
        return proc

    def start_celery(self) -> None:
        self.celery = self.spawn(
            "celery",
            [
                str(BIN / "celery"),
                "-A",
                "soaksite",
                "worker",
                "-P",
                "prefork",
                "-c",
                "2",
                "-l",
                "warning",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"soak{len(self.procs)}@%h",
            ],
        )

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # orphaned pool processes of a killed celery
            except (ProcessLookupError, PermissionError):
                pass

    # --- load ----------------------------------------------------------------
    def client(self, n: int) -> None:
        import httpx

        rng = random.Random(self.args.seed * 1000 + n)
        base = f"http://127.0.0.1:{self.port}"
        http = httpx.Client(base_url=base, timeout=90)
        st = self.stats
        mine: list[tuple[str, str]] = []
        while not self.stop_load.is_set():
            r = rng.random()
            if r < 0.35:
                view, name = "incr", f"c{rng.randrange(4)}"
                url = f"/incr/{name}/"
            elif r < 0.60:
                op = rng.choice(["set", "get", "add", "gos", "delmany"])
                view, url = "kv:" + op, f"/kv/?op={op}&k=k{rng.randrange(200)}&v=v{rng.randrange(10**6)}"
            elif r < 0.70:
                user = f"u{n}-{rng.randrange(10**9)}"
                view, url = "login", f"/login/?user={user}"
            elif r < 0.82 and mine:
                key, user = rng.choice(mine)
                view, url = "whoami", "/whoami/"
            elif r < 0.92:
                view, url = "task", f"/task/?a={rng.randrange(1000)}&b={rng.randrange(1000)}"
            elif r < 0.96:
                view, url = "group", f"/group/?n={rng.randrange(2, 6)}"
            else:
                token = f"t{n}-{rng.randrange(10**9)}"
                parts = rng.randrange(2, 5)
                view, url = "chord", f"/chord/?n={parts}&token={token}&wait={rng.randrange(2)}"
            if view == "incr":
                with st.lock:
                    st.attempted[name] += 1
            cookies = {"sessionid": key} if view == "whoami" else None
            sent = time.monotonic()
            t0 = time.perf_counter()
            try:
                resp = http.get(url, cookies=cookies)
            except httpx.HTTPError as exc:
                with st.lock:
                    st.status[view][type(exc).__name__] += 1
                http.close()
                http = httpx.Client(base_url=base, timeout=90)
                continue
            finally:
                http.cookies.clear()
            dt = time.perf_counter() - t0
            with st.lock:
                st.lat[view].append(dt)
                st.status[view][str(resp.status_code)] += 1
            if resp.status_code == 504:
                with st.lock:
                    (st.tasks_late if view == "task" else st.groups_late)[resp.json()["id"]] = url
                    st.sent[resp.json()["id"]] = sent
                continue
            if resp.status_code != 200:
                with st.lock:
                    st.errors.append(f"{view} {url} -> {resp.status_code} {resp.text[:300]!r}")
                continue
            body = resp.json()
            with st.lock:
                if view == "incr":
                    st.acked[name] += 1
                elif view.startswith("kv:") and body.get("ok") is False:
                    st.bad.append(f"{url}: {body}")
                elif view == "kv:delmany" and body["left"]:
                    st.bad.append(f"delete_many left {body['left']}")
                elif view == "login":
                    st.sessions[body["key"]] = user
                    mine.append((body["key"], user))
                elif view == "whoami" and body["user"] != user:
                    st.bad.append(f"session {key} of {user} reads {body['user']}")
                elif view == "task":
                    st.tasks[body["id"]] = body["result"]
                elif view == "group":
                    st.groups[body["id"]] = body["result"]
                elif view == "chord":
                    st.chords[token] = (body["id"], body["group"])
                    st.chord_sums[token] = (parts * (parts + 1) // 2, body["result"])
                    st.sent[token] = sent
        http.close()

    # --- chaos ---------------------------------------------------------------
    def chaos(self) -> None:
        rng = self.rng
        while not self.stop_chaos.wait(rng.uniform(1.0, 4.0)):
            r = rng.random()
            if r < 0.45:
                workers = children(self.gunicorn.pid)
                if workers:
                    self.kill(rng.choice(workers), "gunicorn worker")
            elif r < 0.85:
                pool = children(self.celery.pid) if self.celery else []
                if pool:
                    self.kill(rng.choice(pool), "celery pool process")
            elif self.celery is not None:
                self.main_kills.append(time.monotonic())
                self.kill(self.celery.pid, "celery main")
                self.celery.wait()
                time.sleep(rng.uniform(0.2, 2))
                self.start_celery()

    def kill(self, pid: int, what: str) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
            self.kills[what] += 1
        except ProcessLookupError:
            pass

    def cron_loop(self, name: str, cmd: list[str], every: float) -> None:
        while not self.stop_chaos.wait(every):
            proc = subprocess.run(cmd, cwd=self.site, env=self.env, capture_output=True, text=True)
            self.cron[name].append(proc.returncode)
            if proc.returncode != 0:
                with self.stats.lock:
                    self.stats.errors.append(f"{name} exit {proc.returncode}: {proc.stderr[-800:]}")

    # --- checks --------------------------------------------------------------
    def verify(self) -> list[str]:
        import httpx

        problems: list[str] = []
        st = self.stats
        sys.path[:0] = [str(self.site), os.path.join(ROOT, "integrations"), ROOT]
        os.environ.update({k: self.env[k] for k in ("SOAK_VAR", "SOAK_BROKER", "DJANGO_SETTINGS_MODULE")})
        import django

        django.setup()
        from celery.result import AsyncResult, GroupResult
        from django.core.cache import cache
        from soaksite.celery_app import app

        for name, attempted in sorted(st.attempted.items()):
            value = cache.get("ctr:" + name) or 0
            if not st.acked[name] <= value <= attempted:
                problems.append(
                    f"counter {name}: {value} not within acked {st.acked[name]}..attempted {attempted}"
                )
        http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        lost = [
            k
            for k, user in st.sessions.items()
            if http.get("/whoami/", cookies={"sessionid": k}).json()["user"] != user
        ]
        http.close()
        if lost:
            problems.append(f"{len(lost)} of {len(st.sessions)} acknowledged sessions lost, e.g. {lost[:3]}")
        changed = [t for t, v in st.tasks.items() if AsyncResult(t, app=app).get(timeout=10) != v]
        if changed:
            problems.append(f"{len(changed)} task results changed, e.g. {changed[:3]}")
        for gid, value in st.groups.items():
            restored = GroupResult.restore(gid, app=app)
            if restored is None or restored.get(timeout=10) != value:
                problems.append(f"group {gid} no longer reads {value}")
        deadline = time.monotonic() + self.args.settle
        lost: list[str] = []  # work a SIGKILLed Celery main process took with it
        kinds = self.lost_kinds
        late = [("task", t, AsyncResult(t, app=app)) for t in st.tasks_late]
        late += [("group", g, GroupResult.restore(g, app=app)) for g in st.groups_late]
        for kind, t, res in late:  # answered 504 as its worker was killed: delivered again, it must finish
            try:
                res.get(timeout=max(0.1, deadline - time.monotonic()))
            except Exception as exc:
                note = f"{kind} {t} never finished: {exc!r}"
                if self.near_main_kill(st.sent[t]):
                    kinds[kind] += 1
                    lost.append(f"{note}; {self.since_main_kill(st.sent[t])}")
                else:
                    problems.append(note)
        while time.monotonic() < deadline and any(cache.get("cf:" + t) is None for t in st.chords):
            time.sleep(0.5)
        for t, (cid, gid) in st.chords.items():
            if cache.get("cf:" + t) is not None:
                expected, seen = st.chord_sums[t]
                value = AsyncResult(cid, app=app).get(timeout=10)
                if value != expected or seen not in (None, expected):
                    problems.append(f"chord {t}: result {value}, the view read {seen}, expected {expected}")
                continue
            saved = GroupResult.restore(gid, app=app)
            parts = [(r.id, r.state) for r in saved.results] if saved is not None else None
            note = f"chord {t} never fired: callback {cid} {AsyncResult(cid, app=app).state}, parts {parts}"
            if self.near_main_kill(st.sent[t]):
                kinds["chord"] += 1
                lost.append(f"{note}; {self.since_main_kill(st.sent[t])}")
            else:
                problems.append(note)
        dup = {t: cache.get("cfdup:" + t) for t in st.chords if cache.get("cfdup:" + t)}
        if dup:
            problems.append(f"{len(dup)} chords fired more than once: {dict(list(dup.items())[:3])}")
        self.lost = lost
        self.check_stores(problems)
        return problems

    def near_main_kill(self, sent: float) -> bool:
        """Whether the Celery main process was SIGKILLed while work sent at ``sent`` may have been queued.

        kombu's Redis transport loses a message sent about then, about two per five kills (as often
        with redis-server as the broker: run with --broker redis), so such a loss is reported, not failed.
        """
        return any(sent - 1 <= k <= sent + 30 for k in self.main_kills)

    def since_main_kill(self, sent: float) -> str:
        """The SIGKILLs of the Celery main process :meth:`near_main_kill` finds for work sent at
        ``sent``, as times from it: "main process killed 0.04 s after, 3.10 s after it was sent"."""
        near = [k - sent for k in self.main_kills if sent - 1 <= k <= sent + 30]
        return (
            "main process killed "
            + ", ".join(f"{abs(d):.2f} s {'after' if d >= 0 else 'before'}" for d in near)
            + " it was sent"
        )

    def check_stores(self, problems: list[str]) -> None:
        for name in ("cache", "results", "broker"):
            path = self.var / name
            if not path.exists():  # no broker store with --broker redis
                continue
            proc = subprocess.run(
                [sys.executable, "-m", "kv_backend", "check", str(path)],
                env=self.env,
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                problems.append(
                    f"kvb check {name}: exit {proc.returncode}: {proc.stdout[-500:]}{proc.stderr[-500:]}"
                )
        restored = self.work / "restored"
        if (self.work / "backups").exists():  # the newest backup kv_backup made under load restores whole
            kvb = [sys.executable, "-m", "kv_backend"]
            for cmd in (
                [*kvb, "restore", f"file://{self.work}/backups", str(restored)],
                [*kvb, "check", str(restored)],
            ):
                proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True)
                if proc.returncode != 0:
                    problems.append(f"{' '.join(cmd[2:4])}: exit {proc.returncode}: {proc.stderr[-500:]}")
                    break

    def log_tracebacks(self) -> tuple[int, list[str]]:
        """Count the tracebacks in the logs: those the kills explain, and list the others."""
        expected, others = 0, []
        for log in sorted(self.logs.glob("*.log")):
            text = log.read_text(errors="replace")
            for chunk in text.split("Traceback (most recent call last)")[1:]:
                lines = [line for line in chunk.splitlines() if line.strip() and line.strip() != '"""']
                head = "\n".join(lines[:40])
                # WorkerLostError: the main process saw a pool process killed; BrokenPipeError in
                # billiard: a pool process found its main process killed
                if "WorkerLostError" in head or ("BrokenPipeError" in head and "billiard" in head):
                    expected += 1
                    continue
                last = next((line for line in lines[1:] if not line.startswith(" ")), "?")
                others.append(f"{log.name}: {last}")
        return expected, others

    # --- driver --------------------------------------------------------------
    def run(self) -> int:
        print(f"work directory {self.work}", flush=True)
        self.start()
        threads = [
            threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.args.clients)
        ]
        manage = [sys.executable, "manage.py"]
        chaos = [
            threading.Thread(target=self.chaos, daemon=True),
            threading.Thread(
                target=self.cron_loop,
                args=("kv_merge", [*manage, "kv_merge", "--wait", "-v", "0"], 7),
                daemon=True,
            ),
            threading.Thread(
                target=self.cron_loop,
                args=("kv_backup", [*manage, "kv_backup", f"file://{self.work}/backups", "-v", "0"], 11),
                daemon=True,
            ),
            threading.Thread(
                target=self.cron_loop,
                args=(
                    "kvb merge results",
                    [sys.executable, "-m", "kv_backend", "merge", str(self.var / "results")],
                    9,
                ),
                daemon=True,
            ),
            *(  # a monitoring job checking the live stores: damage it reports is a problem
                threading.Thread(
                    target=self.cron_loop,
                    args=(
                        f"kvb check {name}",
                        [sys.executable, "-m", "kv_backend", "check", str(self.var / name)],
                        13,
                    ),
                    daemon=True,
                )
                for name in ("cache", "results")
            ),
        ]
        started = time.monotonic()
        try:
            for t in threads + chaos:
                t.start()
            time.sleep(self.args.seconds)
            self.stop_chaos.set()
            for t in chaos:
                t.join()
            if self.celery is None or self.celery.poll() is not None:
                self.start_celery()
            time.sleep(2)  # let the load run a little on calm waters
            self.stop_load.set()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            problems = self.verify()
        finally:
            self.stop_all()
        problems += [f"bad answer: {e}" for e in self.stats.bad]
        fivehundreds = [e for e in self.stats.errors if " -> 500" in e]
        problems += [f"HTTP error: {e}" for e in self.stats.errors[:20]]
        self.expected_tracebacks, others = self.log_tracebacks()
        problems += [f"traceback in {e}" for e in others[:20]]
        self.report(elapsed, problems, fivehundreds)
        return 1 if problems else 0

    def report(self, elapsed: float, problems: list[str], fivehundreds: list[str]) -> None:
        st = self.stats
        total = sum(len(v) for v in st.lat.values())
        print(
            f"\n{total} answered requests in {elapsed:.0f} s ({total / elapsed:.0f}/s), "
            f"preload={self.args.preload}, clients={self.args.clients}"
        )
        print(f"{'view':14} {'n':>7} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for view in sorted(st.status):
            lat = sorted(st.lat[view]) or [0.0]
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(
                f"{view:14} {len(st.lat[view]):7} {statistics.median(lat) * 1000:8.1f} {p99 * 1000:8.1f}  "
                f"{dict(st.status[view])}"
            )
        print(f"kills: {dict(self.kills)}")
        print(f"cron runs: { {k: len(v) for k, v in self.cron.items()} }")
        print(
            f"acknowledged: {dict(st.acked)} attempted: {dict(st.attempted)}; sessions {len(st.sessions)}, "
            f"tasks {len(st.tasks)}, groups {len(st.groups)}, chords {len(st.chords)}; late (504, "
            f"worker killed): tasks {len(st.tasks_late)}, groups {len(st.groups_late)}"
        )
        print(f"500 answers: {len(fivehundreds)}")
        kinds = self.lost_kinds
        main_kills = self.kills["celery main"]
        print(
            f"lost with a SIGKILLed Celery main process (kombu's Redis transport, with either broker): "
            f"{len(self.lost)} in {main_kills} kills of the main process: tasks {kinds['task']} (of "
            f"{len(st.tasks_late)} late), groups {kinds['group']} (of {len(st.groups_late)} late), "
            f"chords {kinds['chord']} (of {len(st.chords)})"
        )
        for line in self.lost[:10]:
            print("   ", line)
        print(f"tracebacks in the logs that the kills explain: {self.expected_tracebacks}")
        print("PROBLEMS:" if problems else "all checks passed")
        for p in problems:
            print("   ", p)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the soak and check what it left")
    run.add_argument("--seconds", type=float, default=300, help="how long the load runs (default: 300)")
    run.add_argument("--clients", type=int, default=8, help="threads of HTTP clients (default: 8)")
    run.add_argument(
        "--seed", type=int, default=7, help="seed of the clients' requests and of the kills (default: 7)"
    )
    run.add_argument("--preload", action="store_true", help="start gunicorn with --preload")
    run.add_argument(
        "--broker", choices=["kvb", "redis"], default="kvb", help="kvb serve (default) or a redis-server"
    )
    run.add_argument("--port", type=int, default=0, help="port of the site (default: a free one)")
    run.add_argument("--broker-port", type=int, default=0, help="port of the broker (default: a free one)")
    run.add_argument(
        "--settle", type=float, default=90, help="seconds to wait for late tasks and chords after the load"
    )
    run.add_argument("--workdir", help="keep the stores and logs here (default: a new temporary directory)")
    run.add_argument("--quick", action="store_true", help="a 30 s run")
    args = parser.parse_args()
    if args.quick:
        args.seconds = 30
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
