"""kv_restore --replace and what a killed kv_restore left behind (review 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command


def test_kv_restore_replace_removes_the_staging_of_a_killed_kv_restore_only(tmp_path):
    """A kv_restore --replace killed before its swap left LOCATION.restoring-PID (and the restore's
    hidden temporary directory beside it) for ever: copies of a backup nothing removed. The next
    kv_restore --replace now deletes those of processes that are gone; not a running one's, and never
    LOCATION.replaced-..., which may hold the only copy of the old store."""
    pytest.importorskip("kv_backend.backup")
    url = (tmp_path / "backups").as_uri()
    cache.set("a", 1)
    call_command("kv_backup", url, stdout=StringIO(), stderr=StringIO())
    location = os.path.realpath(cache.location)
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    gone = int(child.stdout)  # a process that has exited
    dead = f"{location}.restoring-{gone}"
    os.mkdir(dead)
    parent, base = os.path.split(location)
    dead_tmp = os.path.join(parent, f".{base}.restoring-{gone}.restore-0123456789ab")
    os.mkdir(dead_tmp)
    with open(os.path.join(dead_tmp, "0000000001-000.data"), "wb") as f:
        f.write(b"x" * 100)
    alive = f"{location}.restoring-{os.getppid()}"
    os.mkdir(alive)
    replaced = f"{location}.replaced-20261206T000000-{gone}"
    os.mkdir(replaced)
    try:
        call_command("kv_restore", url, "--replace", stdout=StringIO(), stderr=StringIO())
        assert not os.path.exists(dead) and not os.path.exists(dead_tmp)
        assert os.path.isdir(alive) and os.path.isdir(replaced)
        assert cache.get("a") == 1
    finally:
        os.rmdir(alive)
        os.rmdir(replaced)


def test_kv_restore_replace_gives_a_group_location_group_writable_files(tmp_path):
    """A LOCATION shared by a group's workers (2770, docs/engine.md) came back from kv_restore
    --replace with 0640 files under root's umask 022: the other workers could not open the store."""
    pytest.importorskip("kv_backend.backup")
    url = (tmp_path / "backups").as_uri()
    cache.set("a", 1)
    call_command("kv_backup", url, stdout=StringIO(), stderr=StringIO())
    location = os.path.realpath(cache.location)
    before = os.stat(location).st_mode & 0o7777
    os.chmod(location, 0o2770)
    old = os.umask(0o022)
    try:
        call_command("kv_restore", url, "--replace", stdout=StringIO(), stderr=StringIO())
        assert os.stat(location).st_mode & 0o7777 == 0o2770
        modes = {name: os.stat(os.path.join(location, name)).st_mode & 0o777 for name in os.listdir(location)}
        assert set(modes.values()) == {0o660}, modes
    finally:
        os.umask(old)
        os.chmod(location, before)
    assert cache.get("a") == 1
