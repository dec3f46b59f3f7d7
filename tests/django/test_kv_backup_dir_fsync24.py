"""``manage.py kv_backup`` to a local directory whose directory fsyncs fail.

The backup it runs now fails where a directory fsync before its manifest fails, and raises
``BackupNotDurableError`` where the fsync of the manifest's directory fails (see
tests/test_backup_dir_fsync24.py): the command says "Backup finished." for neither, and fails with
the backup's message, which says what to do.
"""

from __future__ import annotations

import errno
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from helpers import fail_fsync_of

from kv_backend import DB
from kv_backend.backup import list_backups

KV = "kv_backend_django.cache.KVCache"
EIO = os.strerror(errno.EIO)


@pytest.fixture
def location(tmp_path):
    """LOCATION (``tmp_path/cache``), holding a store of ``k``: ``v``."""
    with DB(str(tmp_path / "cache")) as db:
        db.put(b"k", b"v")
    return tmp_path / "cache"


def _backup(location, url: str) -> StringIO:
    out = StringIO()
    with override_settings(CACHES={"default": {"BACKEND": KV, "LOCATION": str(location)}}):
        call_command("kv_backup", url, "--name", "b1", stdout=out)
    return out


def test_a_manifest_not_made_durable_is_not_reported_finished(location, tmp_path, monkeypatch):
    url = str(tmp_path / "bk")
    out = StringIO()
    fail_fsync_of(monkeypatch, tmp_path / "bk" / "backups")
    with (
        pytest.raises(CommandError) as info,
        override_settings(CACHES={"default": {"BACKEND": KV, "LOCATION": str(location)}}),
    ):
        call_command("kv_backup", url, "--name", "b1", stdout=out)
    message = str(info.value)
    assert message.startswith(
        f"backup of {location} to {url} failed: backup b1 of {location} was written to {url}, but cannot "
        f"make it durable: cannot fsync the directory {tmp_path / 'bk' / 'backups'}: {EIO}. "
    ), message
    assert f"run `sync {tmp_path / 'bk' / 'backups'}`" in message, message
    assert "Backup finished" not in out.getvalue()
    monkeypatch.undo()
    assert [i.name for i in list_backups(url)] == ["b1"]  # (in place: once synced, durable)


def test_a_failed_fsync_before_the_manifest_fails_it(location, tmp_path, monkeypatch):
    url = str(tmp_path / "bk")
    fail_fsync_of(monkeypatch, tmp_path / "bk" / "files")
    with pytest.raises(CommandError) as info:
        _backup(location, url)
    message = str(info.value)
    assert message.startswith(
        f"backup of {location} to {url} failed: cannot back up {location} to {url}: cannot fsync the "
        f"directory {tmp_path / 'bk' / 'files'}: {EIO}; nothing was backed up"
    ), message
    monkeypatch.undo()
    assert list_backups(url) == []
    assert "Backup finished." in _backup(location, url).getvalue()
