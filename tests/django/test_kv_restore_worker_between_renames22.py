"""``kv_restore --replace`` where the stores cannot be exchanged in one step (not Linux, or a file
system without ``RENAME_EXCHANGE``): it moves the old store aside, then the restored one into place.
A worker that started between the two renames made a new store at LOCATION; the second rename failed,
and so did putting the old store back: a raw OSError (a traceback from manage.py), the old store left
at ``LOCATION.replaced-...`` with nothing saying so. It now fails with a CommandError that says what
happened, where the old store is, and what to do; the old store is untouched.
"""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from kv_backend import DB


def test_a_worker_starting_between_the_two_renames(tmp_path, monkeypatch):
    pytest.importorskip("kv_backend.backup")
    from kv_backend_django.cache import close_all

    location = tmp_path / "cache"
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["c"].set("k", "old", None)
        call_command("kv_backup", str(tmp_path / "bk"), "--cache", "c", stdout=StringIO())
        caches["c"].set("k", "newer", None)
        close_all()
        real_rename = os.rename

        def rename(src, dst):
            if os.fspath(dst) == str(location) and ".restoring-" in os.fspath(src):  # the second rename
                with DB(str(location)):  # a worker starts now, and creates a store
                    pass
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(
            "kv_backend_django.management.commands.kv_restore.exchange_paths", lambda a, b: False
        )
        with pytest.raises(CommandError) as info:
            call_command("kv_restore", str(tmp_path / "bk"), "--cache", "c", "--replace", stdout=StringIO())
        monkeypatch.undo()
    (old,) = [p for p in tmp_path.iterdir() if p.name.startswith("cache.replaced-")]
    msg = str(info.value)
    assert f"made a new, empty store at {location}: the old store is at {old}, untouched" in msg, msg
    assert f"then move {old} back there, or run kv_restore again" in msg, msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "cache", old.name]  # no staging left
    with DB(str(old), read_only=True) as db:
        assert len(db) == 1  # the old store, whole
    with DB(str(location), read_only=True) as db:
        assert len(db) == 0  # the worker's
