"""kv_merge, kv_backup and kv_restore killed (SIGKILL) at random steps while web workers use the cache.

Two worker processes (as gunicorn's) keep writing and reading the cache. Meanwhile kv_merge and
kv_backup run again and again in processes of their own, each killed at a random system call
(a write, an fsync, a rename, an unlink...) or left to finish. Afterwards every write a worker had
acknowledged reads back, no worker ever read a wrong value, the store checks clean, and a
kv_merge and a kv_backup run to the end. Then kv_restore of that backup into a second alias is
killed at random steps the same way: each time, a kv_restore run again (with --replace once
LOCATION holds a store) restores the whole backup, and no staging copy is left behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from helpers import exit_code, fork_child, kill_at_call, spawn_python
from kv_backend_django.cache import close_all

from kv_backend import DB
from kv_backend.check import check

pytest.importorskip("kv_backend.backup")

KV = "kv_backend_django.cache.KVCache"
#: small data files, so that a merge has closed files to rewrite and a backup several to copy
OPTIONS = {"max_file_size": 32 * 1024, "MAX_ENTRIES": 1_000_000}
SLOTS = 200  # keys per worker, overwritten again and again: dead records for the merges
#: the system calls a command is killed at (the n-th of one of them, n random)
CALLS = ("open", "pwrite", "fsync", "fdatasync", "replace", "unlink", "mkdir", "link", "ftruncate")

WORKER = """
import json, os, random, sys, time
import django
from django.conf import settings
settings.configure(CACHES={"default": {
    "BACKEND": "kv_backend_django.cache.KVCache",
    "LOCATION": sys.argv[1],
    "OPTIONS": json.loads(sys.argv[2]),
}})
django.setup()
from django.core.cache import cache
name, stop, slots = sys.argv[3], sys.argv[4], int(sys.argv[5])
rnd = random.Random(name)
acked, wrong, i = {}, [], 0
while not os.path.exists(stop) or i < 2 * slots:
    slot = i % slots
    value = f"{name}:{i}:" + "v" * rnd.randrange(50, 400)
    cache.set(f"{name}:{slot}", value, None)
    acked[slot] = value
    cache.incr("hits") if cache.add("hits", 1, None) is False else None
    if i == slots:
        print("written", flush=True)  # (every slot once: the commands may start)
    other = rnd.choice(list(acked))
    got = cache.get(f"{name}:{other}")
    if got != acked[other]:
        wrong.append([other, got, acked[other]])
    i += 1
    time.sleep(0.002)  # (a site's pace, not a loop that takes the machine's cores from the commands)
print(json.dumps({"acked": acked, "wrong": wrong, "writes": i}), flush=True)
"""


def _command(
    caches: dict,
    args: tuple[str, ...],
    rnd: random.Random | None = None,
    prepare: Callable[[], object] = lambda: None,
) -> int:
    """Run ``manage.py ARGS`` in a forked process; with ``rnd``, killed (SIGKILL) at a random one of the
    system calls of :data:`CALLS` that the command makes (counted in a run before, which finishes,
    each run after ``prepare()``). Return its exit code (-SIGKILL if killed)."""
    if rnd is None:
        return _forked(caches, args, None)
    prepare()
    counts = {name: n for name, n in _calls(caches, args).items() if n}
    call = rnd.choice(sorted(counts))  # (drawn here: a child's draws would not advance rnd)
    prepare()
    return _forked(caches, args, (call, rnd.randrange(1, counts[call] + 1)))


def _forked(caches: dict, args: tuple[str, ...], kill: tuple[str, int] | None) -> int:
    def run() -> None:
        if kill is not None:
            kill_at_call(*kill)
        with override_settings(CACHES=caches):
            call_command(*args, "-v", "0", stdout=StringIO())

    return exit_code(fork_child(run))


def _calls(caches: dict, args: tuple[str, ...]) -> dict[str, int]:
    """How many of each of :data:`CALLS` ``manage.py ARGS`` makes, run to the end in a forked process."""
    read, write = os.pipe()

    def run() -> None:
        os.close(read)
        counts = dict.fromkeys(CALLS, 0)
        for name in CALLS:
            real = getattr(os, name)

            def counted(*a, _real=real, _name=name, **k):
                counts[_name] += 1
                return _real(*a, **k)

            setattr(os, name, counted)
        with override_settings(CACHES=caches):
            call_command(*args, "-v", "0", stdout=StringIO())
        with open(write, "w") as out:
            json.dump(counts, out)

    pid = fork_child(run)
    os.close(write)
    with open(read) as f:
        counts = json.loads(f.read() or "{}")
    assert exit_code(pid) == 0, args
    return counts


def _caches(tmp_path) -> dict:
    return {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "cache"), "OPTIONS": OPTIONS},
        "copy": {"BACKEND": KV, "LOCATION": str(tmp_path / "copy"), "OPTIONS": OPTIONS},
    }


def test_commands_killed_at_random_steps_lose_nothing_the_workers_wrote(tmp_path):
    rnd = random.Random(23)
    caches = _caches(tmp_path)
    location, stop = str(tmp_path / "cache"), str(tmp_path / "stop")
    url = f"file://{tmp_path}/bk"
    DB(location, max_file_size=OPTIONS["max_file_size"]).close()
    workers = [
        spawn_python(
            WORKER,
            location,
            json.dumps(OPTIONS),
            f"w{n}",
            stop,
            str(SLOTS),
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        for w in workers:
            assert w.stdout.readline() == "written\n"
        outcomes = []
        for _ in range(10):
            outcomes.append(_command(caches, ("kv_merge", "--wait"), rnd))
            outcomes.append(_command(caches, ("kv_backup", url), rnd))
        assert set(outcomes) <= {0, -signal.SIGKILL}, outcomes
        assert -signal.SIGKILL in outcomes
        # To the end, the workers still writing: both succeed after the kills.
        assert _command(caches, ("kv_merge", "--wait")) == 0
        assert _command(caches, ("kv_backup", url, "--name", "last")) == 0
    finally:
        open(stop, "w").close()
        reports = [json.loads(w.communicate(timeout=120)[0].splitlines()[-1]) for w in workers]
    assert all(w.returncode == 0 for w in workers)
    assert all(r["wrong"] == [] for r in reports), [r["wrong"][:3] for r in reports]
    assert check(location).ok
    with override_settings(CACHES=caches):
        from django.core.cache import caches as handler

        try:
            for n, report in enumerate(reports):
                for slot, value in report["acked"].items():
                    assert handler["default"].get(f"w{n}:{slot}") == value
            assert handler["default"].get("hits") == sum(r["writes"] for r in reports)
        finally:
            close_all()  # (the forked commands below start with no store open)

    # kv_restore of the last backup into the second alias, killed at random steps, into a missing
    # LOCATION or (--replace) over the store there; then run again.
    copy = tmp_path / "copy"
    restore = ("kv_restore", url, "--cache", "copy", "--name", "last")
    for n in range(8):
        if n % 2:
            code = _command(caches, (*restore, "--replace"), rnd)
        else:
            code = _command(caches, restore, rnd, prepare=lambda: shutil.rmtree(copy, ignore_errors=True))
        assert code in (0, -signal.SIGKILL), code
        replace = ("--replace",) if copy.is_dir() and os.listdir(copy) else ()
        assert _command(caches, (*restore, *replace)) == 0
        with DB(str(copy), read_only=True) as db:
            assert len(db) == 2 * SLOTS + 1
        assert check(str(copy)).ok
        assert sorted(os.listdir(tmp_path)) == ["bk", "cache", "copy", "stop"]
