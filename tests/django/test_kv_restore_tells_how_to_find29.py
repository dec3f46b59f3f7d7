"""kv_restore --replace refusing a store another process has open: docs/django.md said it says which
process, but it said "another process (a web or Celery worker, a shell...)". It names no process id
(a flock's holder is not known reliably: a forked child holds its parent's lock, and another PID
namespace's processes are not listed), and tells how to list them: every process that has the store
open holds its STATE page open, which ``lsof`` and ``fuser`` show, forked children included."""

from __future__ import annotations

import os
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from helpers import spawn_python
from kv_backend_django.cache import close_all

KV = "kv_backend_django.cache.KVCache"


def test_kv_restore_replace_says_how_to_list_the_processes_that_have_the_store_open(tmp_path):
    pytest.importorskip("kv_backend.backup")
    url = (tmp_path / "backups").as_uri()
    location = str(tmp_path / "c")
    state = os.path.join(location, "STATE")
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": location}}):
        caches["c"].set("k", 1)
        call_command("kv_backup", url, "--cache", "c", stdout=StringIO())
        worker = spawn_python(
            """
            import os, sys
            from kv_backend import DB
            db = DB(sys.argv[1])
            if os.fork() == 0:  # a forked child keeps the store open after its parent exits
                sys.stdin.readline()
                os._exit(0)
            print("open", flush=True)
            """,
            location,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert worker.stdout.readline().strip() == "open"
            worker.wait(timeout=30)  # the parent is gone, its child holds the store
            with pytest.raises(CommandError, match=r"is open in another process") as info:
                call_command("kv_restore", url, "--cache", "c", "--replace", stdout=StringIO())
            message = str(info.value)
            assert f"`lsof {state}` or `fuser -v {state}` lists them" in message
            lsof = shutil.which("lsof")
            if lsof:  # (what the message tells to run finds the child, which no pid of the lock would)
                listed = subprocess.run([lsof, "-t", state], capture_output=True, text=True, timeout=60)
                assert listed.stdout.split(), listed
                if os.path.isdir("/proc"):
                    assert all(os.path.exists(f"/proc/{pid}") for pid in listed.stdout.split())
        finally:
            worker.stdin.write("go\n")
            worker.stdin.close()
        close_all()
