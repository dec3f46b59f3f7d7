"""A ``celery -q worker`` starts the stuck-chord recovery at startup, with every pool.

The recovery thread started with a worker process only if the worker had
loaded this backend before: it does when it prints its banner, not with
``celery -q worker``. There a prefork pool child started it at its first
task, and the solo and threads pools at their first chord part, unless the
app's module imported ``kv_backend_celery.backend``: a chord left stuck while
no worker ran waited for the next task. The ``celery`` program now loads
``kv_backend_celery.cli`` (a ``celery.commands`` entry point), which loads
the backend and its worker signal handlers.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import celery_helpers
import pytest
from celery_helpers import finish_part, make_chord
from helpers import ROOT, child_env
from kv_backend_celery.backend import KVBackend

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def entry_points_dir(tmp_path_factory) -> str:
    """A directory that registers pyproject.toml's ``celery.commands`` entry points (as installing does)."""
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()  # no tomllib before Python 3.11: the table's `name = "module:object"` lines
    table = text.split('[project.entry-points."celery.commands"]\n', 1)[1].split("\n[", 1)[0]
    commands = dict(
        (name.strip(), target.strip().strip('"'))
        for name, _, target in (line.partition("=") for line in table.splitlines())
        if target and not name.lstrip().startswith("#")
    )
    assert commands == {"kvb-recover-chords": "kv_backend_celery.cli:recover_chords"}
    base = tmp_path_factory.mktemp("entry-points")
    info = base / "kvb_test_entry_points-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kvb-test-entry-points\nVersion: 0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in commands.items())
    (info / "entry_points.txt").write_text(f"[celery.commands]\n{lines}")
    return str(base)


def _env(entry_points_dir: str, store_path: str) -> dict[str, str]:
    env = child_env()
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"], entry_points_dir])
    # kvb_celery_app imports celery and kv_backend, not kv_backend_celery.
    env.update(KVB_TEST_BROKER="memory://", KVB_TEST_BACKEND=f"kvb://{store_path}")
    env["KVB_TEST_SIDE"] = f"{store_path}-side"
    return env


def _stuck_chord(store_path: str, monkeypatch) -> tuple[KVBackend, str]:
    """A chord whose sender died after its callback finished and whose claim lapsed: to be cleared."""
    backend = celery_helpers.make_app(f"kvb://{store_path}", "kvb-quiet10").backend
    gid, ids, body, _ = make_chord(backend, monkeypatch)
    for i in ids[:-1]:
        finish_part(backend, gid, i, body)
    backend.mark_as_done(ids[-1], 1)
    key = backend.get_key_for_chord(gid)
    assert backend._count_part(key, gid, ids[-1], 60, b"lost", dict(body)) == 0
    backend.db.delete(backend._claim_key(gid))  # the dead sender's claim lapsed
    backend.mark_as_done(body.id, 3)
    assert gid in backend._firing(backend.db)
    return backend, gid


@pytest.mark.parametrize("pool", ["solo", "threads", "prefork"])
def test_quiet_worker_recovers_chords_at_startup(store_path, monkeypatch, entry_points_dir, pool):
    backend, gid = _stuck_chord(store_path, monkeypatch)
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "kvb_celery_app", "-q", "worker"),
            *("-P", pool, "-c", "2", "-l", "warning"),
            *("--without-gossip", "--without-mingle", "--without-heartbeat"),
        ],
        env=_env(entry_points_dir, store_path),
        cwd=os.path.dirname(store_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        # No task is ever sent: only a recovery thread started with a worker process clears it.
        deadline = time.monotonic() + 30
        while gid in backend._firing(backend.db):
            assert worker.poll() is None, "the worker exited"
            assert time.monotonic() < deadline, "the worker did not clear the stuck chord"
            time.sleep(0.05)
        assert backend.db.get(backend.get_key_for_chord(gid)) is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


def test_recover_chords_command(store_path, monkeypatch, entry_points_dir):
    backend, gid = _stuck_chord(store_path, monkeypatch)
    command = [sys.executable, "-m", "celery", "-A", "kvb_celery_app", "kvb-recover-chords"]
    env = _env(entry_points_dir, store_path)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 chord(s) taken over"
    assert gid not in backend._firing(backend.db)
    env["KVB_TEST_BACKEND"] = "cache+memory://"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "not kvb://" in done.stderr
    env["KVB_TEST_BACKEND"] = f"kvb://{store_path}?read_only=1"  # it could not take a chord over
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "read-only" in done.stderr


def test_recover_chords_command_says_what_is_wrong_and_creates_no_store(tmp_path, entry_points_dir):
    # A URL the backend refuses, a path that is a file or a directory of other files: each was a
    # traceback. A path that holds no store (a typo in the URL) got an empty store made there and
    # "0 chord(s) taken over", as if the workers' store had been looked at.
    command = [sys.executable, "-m", "celery", "-A", "kvb_celery_app", "kvb-recover-chords"]
    missing = tmp_path / "no-store-here"
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    cases = [
        ("kvb://results", 2, "three slashes: kvb:///results"),
        (f"kvb://{a_file}", 1, f"{a_file} is a file, not a kv_backend store"),
        (f"kvb://{other}", 1, f"{other} is not a kv_backend store"),
        (f"kvb://{missing}", 1, f"no kv_backend store at {missing}"),
    ]
    for url, status, text in cases:
        env = _env(entry_points_dir, str(tmp_path / "unused"))
        env["KVB_TEST_BACKEND"] = url
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert (done.returncode, "Traceback" in done.stderr) == (status, False), done.stderr
        assert text in done.stderr
        assert done.stdout == ""
    assert not missing.exists()
    assert sorted(os.listdir(other)) == ["notes.txt"]


def test_worker_init_loads_the_backend_only_for_kvb_apps():
    # The celery program loads kv_backend_celery.cli for every app and command: only a
    # worker whose results go to kvb:// loads the backend (and its signal handlers).
    script = """if True:
        import sys
        from celery import Celery, signals

        class Worker:  # the sender of worker_init: the worker, with its app
            def __init__(self, app):
                self.app = app
        import kv_backend_celery.cli
        assert "kv_backend_celery.backend" not in sys.modules
        other = Celery("other", backend="redis://127.0.0.1:1/0", set_as_current=False)
        signals.worker_init.send(sender=Worker(other))
        assert "kv_backend_celery.backend" not in sys.modules and "kv_backend" not in sys.modules
        app = Celery("kvb", backend="KVB:///tmp/unused", set_as_current=False)
        signals.worker_init.send(sender=Worker(app))
        assert "kv_backend_celery.backend" in sys.modules
    """
    done = subprocess.run([sys.executable, "-c", script], env=child_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
