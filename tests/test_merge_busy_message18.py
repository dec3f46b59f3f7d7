"""MergeInProgressError says who merges: a merge of this process's own (another thread, auto_merge)
was reported as another process's, sending users to look for a process that does not exist (#2)."""

from __future__ import annotations

import subprocess
import threading

import pytest
from helpers import spawn_python

import kv_backend.merge as merge_module
from kv_backend import DB
from kv_backend.errors import MergeInProgressError


def test_a_merge_of_another_thread_is_named_as_this_process(store_path, monkeypatch):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(300):
            db.put(b"k%d" % (i % 30), b"v" * 100)
        inside, release = threading.Event(), threading.Event()
        real = merge_module._merge_locked

        def held_open(*args, **kwargs):
            inside.set()
            release.wait(10)
            return real(*args, **kwargs)

        monkeypatch.setattr(merge_module, "_merge_locked", held_open)
        t = threading.Thread(target=db.merge)
        t.start()
        try:
            assert inside.wait(10)
            with pytest.raises(MergeInProgressError, match="this process"):
                db.merge()
        finally:
            release.set()
            t.join(10)
        assert db.get(b"k7") == b"v" * 100


def test_a_merge_of_another_process_is_named_as_such(store_path):
    DB(store_path).close()
    child = spawn_python(
        """
        import os, sys, time
        from kv_backend.merge import MERGE_LOCK_FILE, MergeLock
        lock = MergeLock(os.path.join(sys.argv[1], MERGE_LOCK_FILE))
        assert lock.try_acquire()
        print("held", flush=True)
        sys.stdin.read()
        """,
        store_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "held"
        with DB(store_path) as db, pytest.raises(MergeInProgressError, match="another process"):
            db.merge()
    finally:
        child.communicate("", timeout=10)
