"""A restore of a backup one of whose objects something other than kv_backend deleted (the manifest
still there) failed with "cannot read .../files/...: not found (...)", not saying what that means or
what to do. It now says that the backup is incomplete and cannot be restored, and to restore another
one; nothing is left behind, as before."""

from __future__ import annotations

import os

import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import backup_store, restore


def test_a_backup_missing_an_object_says_to_restore_another(tmp_path):
    store, url = str(tmp_path / "store"), str(tmp_path / "bk")
    with DB(store) as db:
        db.put(b"k", b"v")
    backup_store(store, url, name="one")
    files = os.path.join(url, "files")
    os.unlink(os.path.join(files, sorted(os.listdir(files))[0]))
    with pytest.raises(BackupError) as info:
        restore(url, str(tmp_path / "r"), name="one")
    message = str(info.value)
    assert "not found" in message and "backup one is incomplete" in message
    assert "restore another backup" in message and "pruned" not in message
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]  # nothing left behind


def test_a_missing_backup_name_is_said_as_before(tmp_path):
    store, url = str(tmp_path / "store"), str(tmp_path / "bk")
    with DB(store) as db:
        db.put(b"k", b"v")
    backup_store(store, url, name="one")
    with pytest.raises(BackupError, match="no backup named 'two'") as info:
        restore(url, str(tmp_path / "r"), name="two")
    assert "incomplete" not in str(info.value)
