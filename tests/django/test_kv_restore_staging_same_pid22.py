"""``kv_restore --replace`` deletes a staging directory of its own process id left by a killed one.

A container's processes get the same ids on every start: a kv_restore --replace killed there left
``LOCATION.restoring-PID``, which the next one, given the same id, took for its own and skipped, then
failed to make ("File exists"), every time until someone deleted it by hand. A process's id in the name
is now taken for another's of the past unless another kv_restore of this very process runs. And one
it found there when it failed to make its own is no longer deleted with the failure (it may be that
other kv_restore's, at work).
"""

from __future__ import annotations

import os
from io import StringIO

import kv_backend_django.management.commands.kv_restore as kv_restore
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from kv_backend import DB
from kv_backend.backup import backup

KV = "kv_backend_django.cache.KVCache"


@pytest.fixture
def setup(tmp_path):
    with DB(str(tmp_path / "src")) as db:
        db.put(b"k", b"new")
        backup(db, str(tmp_path / "bk"), name="b1")
    location = tmp_path / "cache"
    with DB(str(location)) as db:
        db.put(b"k", b"old")
    staging = tmp_path / f"cache.restoring-{os.getpid()}"
    staging.mkdir()
    (staging / "0000000001-000.data").write_bytes(b"left by a killed kv_restore")
    caches = {"default": {"BACKEND": KV, "LOCATION": str(location)}}
    return str(tmp_path / "bk"), location, staging, caches


def test_a_staging_directory_of_this_process_id_left_by_another_is_removed(setup):
    url, location, staging, caches = setup
    with override_settings(CACHES=caches):
        call_command("kv_restore", url, "--replace", "-v", "0", stdout=StringIO())
    assert not staging.exists()
    with DB(str(location), read_only=True) as db:
        assert db.get(b"k") == b"new"


def test_one_of_another_kv_restore_of_this_process_is_left_alone(setup, monkeypatch):
    url, location, staging, caches = setup
    real = kv_restore._remove_abandoned_staging

    def while_another_runs(where):  # (as when another thread's call_command is inside handle())
        with kv_restore._restores_lock:
            kv_restore._restores_here += 1
        try:
            real(where)
        finally:
            with kv_restore._restores_lock:
                kv_restore._restores_here -= 1

    monkeypatch.setattr(kv_restore, "_remove_abandoned_staging", while_another_runs)
    with override_settings(CACHES=caches), pytest.raises(CommandError, match=f"{staging}: File exists"):
        call_command("kv_restore", url, "--replace", "-v", "0", stdout=StringIO())
    assert (staging / "0000000001-000.data").read_bytes() == b"left by a killed kv_restore"
    assert kv_restore._restores_here == 0
    with DB(str(location), read_only=True) as db:
        assert db.get(b"k") == b"old"
