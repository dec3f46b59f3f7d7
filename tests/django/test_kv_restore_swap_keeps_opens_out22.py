"""``kv_restore --replace`` and a process that opens the cache's store while the restored one is swapped in.

It checked that no process had the store open, then swapped: a worker that opened the store between the
check and the swap wrote to the old store, which kv_restore then deleted, and every write it acknowledged
was lost. It now keeps the old store's page locked from the check through the swap: such an open waits,
then opens the restored store. Killed (SIGKILL) at any point of the swap, it leaves a whole store at
LOCATION, the old one or the restored one, and holds nothing that keeps an open waiting.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from helpers import run_python

from kv_backend import DB
from kv_backend.files import exchange_paths

pytest.importorskip("kv_backend.backup")


def _old_store_and_backup(tmp_path):
    from kv_backend.backup import backup_store

    location = str(tmp_path / "cache")
    with DB(location) as db:
        for i in range(50):
            db.put(b"restored-%02d" % i, b"r" * 20)
    backup_store(location, str(tmp_path / "bk"), name="one")
    with DB(location) as db:
        db.clear()
        db.put(b"old", b"o")
    return location


def test_a_store_opened_during_the_swap_is_the_restored_one(tmp_path, monkeypatch):
    from kv_backend_django.cache import close_all

    location = _old_store_and_backup(tmp_path)
    opened = []

    def worker():  # a worker that starts just after kv_restore found the store unused
        db = DB(location)
        db.put(b"worker", b"w")
        opened.append(db)

    def exchange(a, b):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(0.3)
        swapped = exchange_paths(a, b)
        if not swapped:
            pytest.skip("this file system cannot exchange two directories in one step")
        return swapped

    monkeypatch.setattr("kv_backend_django.management.commands.kv_restore.exchange_paths", exchange)
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
    with override_settings(CACHES=conf):
        call_command("kv_restore", str(tmp_path / "bk"), "--cache", "c", "--replace", stdout=StringIO())
        close_all()
    for _ in range(300):
        if opened:
            break
        time.sleep(0.1)
    (db,) = opened
    db.close()
    with DB(location, read_only=True) as db:
        assert db.get(b"worker") == b"w"  # its acknowledged write is in the store at LOCATION
        assert b"old" not in db and len(db) == 51
    assert sorted(os.listdir(tmp_path)) == ["bk", "cache"]  # the old store dropped


KILLED = """
import os, sys
import django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["kv_backend_django"],
    CACHES={"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": sys.argv[1]}},
)
django.setup()
from django.core.management import call_command
from kv_backend_django.management.commands import kv_restore

exchange, when = kv_restore.exchange_paths, sys.argv[3]

def killed_around(a, b):
    if when == "before":
        os.kill(os.getpid(), 9)
    done = exchange(a, b)
    if not done:
        sys.exit(3)  # (cannot exchange here)
    os.kill(os.getpid(), 9)

kv_restore.exchange_paths = killed_around
call_command("kv_restore", sys.argv[2], "--cache", "c", "--replace")
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_killed_during_the_swap_leaves_a_whole_store(tmp_path, when):
    location = _old_store_and_backup(tmp_path)
    proc = run_python(KILLED, location, str(tmp_path / "bk"), when, check=False)
    if proc.returncode == 3:
        pytest.skip("this file system cannot exchange two directories in one step")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with DB(location) as db:  # (opens at once: the killed process held nothing)
        if when == "before":
            assert db.get(b"old") == b"o" and len(db) == 1
        else:
            assert db.get(b"old") is None and len(db) == 50
            assert all(db.get(b"restored-%02d" % i) == b"r" * 20 for i in range(50))
