"""``manage.py kv_restore`` where the directory above LOCATION cannot be fsynced.

The restore it runs now fails where it cannot make its move into place durable (see
tests/test_restore_dir_fsync24.py): with ``--replace``, into a staging directory, which the command
removes, so nothing was replaced and it says so. Its own swap fsynced the directory above LOCATION
ignoring a failure, then deleted the old store: a crash could bring the old store's name back with
its files gone. The old store is now kept, and the error says what to do.
"""

from __future__ import annotations

import errno
import os
from io import StringIO

import kv_backend_django.management.commands.kv_restore as kv_restore
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from helpers import fail_fsync_of

from kv_backend import DB

KV = "kv_backend_django.cache.KVCache"
EIO = os.strerror(errno.EIO)


def _restore(location, url: str, *args: str) -> None:
    with override_settings(CACHES={"default": {"BACKEND": KV, "LOCATION": str(location)}}):
        call_command("kv_restore", url, *args, "-v", "0", stdout=StringIO())


def _value(path) -> bytes | None:
    with DB(str(path), read_only=True) as db:
        return db.get(b"k")


@pytest.fixture
def old_store(tmp_path):
    """LOCATION (``tmp_path/cache``), holding a store of ``k``: ``old``."""
    with DB(str(tmp_path / "cache")) as db:
        db.put(b"k", b"old")
    return tmp_path / "cache"


def test_replace_replaces_nothing_and_says_so(one_backup_url, old_store, tmp_path, monkeypatch):
    fail_fsync_of(monkeypatch, tmp_path)
    with pytest.raises(CommandError) as info:
        _restore(old_store, one_backup_url, "--replace")
    message = str(info.value)
    assert f"cannot fsync the directory {tmp_path}: {EIO}, which the swap into {old_store}" in message
    assert "nothing was replaced (the restored copy is removed)" in message, message
    monkeypatch.undo()
    assert _value(old_store) == b"old"
    assert sorted(os.listdir(tmp_path)) == ["bk", "cache", "src"]  # (no staging left)


def test_a_new_location_keeps_the_restored_store_and_says_so(one_backup_url, tmp_path, monkeypatch):
    location = tmp_path / "cache"
    fail_fsync_of(monkeypatch, tmp_path)
    with pytest.raises(CommandError) as info:
        _restore(location, one_backup_url)
    message = str(info.value)
    assert message.startswith(f"restore of {location} from {one_backup_url} failed: restored backup b1 into")
    assert f"cannot fsync the directory {tmp_path}: {EIO}" in message and f"sync {tmp_path}" in message
    monkeypatch.undo()
    assert _value(location) == b"v"


def test_a_swap_it_cannot_make_durable_keeps_the_old_store(one_backup_url, old_store, tmp_path, monkeypatch):
    real_exchange, real_fsync_dir = kv_restore.exchange_paths, kv_restore.fsync_dir
    swapped = []

    def exchange(a, b):
        swapped.append(real_exchange(a, b))
        return swapped[-1]

    def fsync_dir(path):
        if swapped:  # (the restore's own fsyncs came before: they succeed)
            raise OSError(errno.EIO, EIO)
        real_fsync_dir(path)

    monkeypatch.setattr(kv_restore, "exchange_paths", exchange)
    monkeypatch.setattr(kv_restore, "fsync_dir", fsync_dir)
    with pytest.raises(CommandError) as info:
        _restore(old_store, one_backup_url, "--replace")
    message = str(info.value)
    assert message.startswith(f"the restored store is in place at {old_store}, but cannot make the swap")
    assert f"cannot fsync the directory {tmp_path}: {EIO}" in message, message
    (kept,) = [n for n in os.listdir(tmp_path) if n.startswith(("cache.restoring-", "cache.replaced-"))]
    assert f"so it is left at {tmp_path / kept}" in message and message.endswith(f"delete {tmp_path / kept}")
    assert _value(old_store) == b"v"
    assert _value(tmp_path / kept) == b"old"  # (not deleted)
