"""A restore of a backup that a prune removes while it downloads.

Prune may remove any backup but the newest N at any time (a nightly ``kvb backups --keep 7``); a
restore of one of the others then failed with only "cannot read .../files/...: not found", which
reads as a damaged backup set. It now says the backup was pruned meanwhile, and what to restore.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore


def test_a_backup_pruned_while_it_is_restored_says_so(tmp_path):
    url = str(tmp_path / "backups")
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        for i in range(200):
            db.put(b"key-%04d" % i, b"value-%04d-" % i * 8)
        old = db.backup(url, name="old")
        db.merge()  # (every file of the store is new: "new" shares no object with "old")
        db.put(b"after", b"merge")
        db.backup(url, name="new")
    assert old.files >= 3
    pruned = []

    def prune_midway(done, total):
        if done and not pruned:
            pruned.append(prune_backups(url, keep=1))

    dest = tmp_path / "restored"
    with pytest.raises(BackupError) as info:
        restore(url, dest, name="old", progress=prune_midway)
    assert pruned == [["old"]]
    msg = str(info.value)
    assert "not found" in msg and "backup old was pruned while it was restored" in msg, msg
    assert "kvb backups lists them" in msg
    assert not dest.exists() and sorted(os.listdir(tmp_path)) == ["backups", "store"]
    assert [b.name for b in list_backups(url)] == ["new"]
    assert restore(url, dest).name == "new"


def test_an_object_missing_from_a_backup_that_is_kept_is_no_prune(tmp_path):
    url = str(tmp_path / "backups")
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        for i in range(200):
            db.put(b"key-%04d" % i, b"value-%04d-" % i * 8)
        db.backup(url, name="only")
    victim = sorted(os.listdir(os.path.join(url, "files")))[-1]
    os.unlink(os.path.join(url, "files", victim))
    with pytest.raises(BackupError) as info:
        restore(url, tmp_path / "restored")
    assert "not found" in str(info.value) and "pruned" not in str(info.value)
