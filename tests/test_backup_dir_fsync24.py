"""A backup to a local directory whose directory fsyncs fail says so.

The backup fsynced the directories it wrote in (those it created, pending/ after a journal, files/
before the manifest, backups/ after it), ignoring a failure: it reported a backup complete whose
manifest, or an object it names, a crash or a power failure could take away again. As the engine,
which fails an operation whose directory fsync fails, and as a restore, a failed fsync before the
manifest is written now fails the backup (no manifest is written), and one of the manifest's own
directory raises ``BackupNotDurableError``: the backup is there and complete, but the error says it
is not durable yet, and what to do. Other targets (memory://, object stores) have no directories to
fsync, as before.
"""

from __future__ import annotations

import errno
import json
import os
import time

import pytest
from helpers import fail_fsync_of

from kv_backend import DB, BackupError
from kv_backend.backup import (
    BackupNotDurableError,
    BackupTargetFullError,
    backup,
    backup_store,
    list_backups,
    restore,
)
from kv_backend.cli import main

EIO = os.strerror(errno.EIO)


@pytest.fixture
def store(tmp_path) -> str:
    """A closed store (``tmp_path/store``) of ``k``: ``v``."""
    path = str(tmp_path / "store")
    with DB(path) as db:
        db.put(b"k", b"v")
    return path


def _restores(url: str, dest) -> bytes | None:
    restore(url, str(dest))
    with DB(str(dest), read_only=True) as db:
        return db.get(b"k")


def _names(directory) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def test_a_failed_fsync_of_files_writes_no_manifest(store, tmp_path, monkeypatch):
    root = tmp_path / "bk"
    failed = fail_fsync_of(monkeypatch, root / "files")
    with pytest.raises(BackupError) as info:
        backup_store(store, str(root), name="b1")
    assert failed == [os.path.realpath(root / "files")]
    assert not isinstance(info.value, BackupNotDurableError)
    message = str(info.value)
    assert message.startswith(
        f"cannot back up {store} to {root}: cannot fsync the directory {root / 'files'}: {EIO}; "
    ), message
    assert "nothing was backed up" in message and "check the disk" in message, message
    assert message.endswith("then back up again"), message
    assert "[Errno" not in message
    monkeypatch.undo()
    assert _names(root / "backups") == [] and _names(root / "pending") == []  # (journal removed)
    assert list_backups(str(root)) == []
    backup_store(store, str(root), name="b1")  # (the name is free)
    assert _restores(str(root), tmp_path / "r") == b"v"


def test_a_full_disk_says_so(store, tmp_path, monkeypatch):
    root = tmp_path / "bk"
    fail_fsync_of(monkeypatch, root / "files", code=errno.ENOSPC)
    with pytest.raises(BackupTargetFullError) as info:
        backup_store(store, str(root), name="b1")
    message = str(info.value)
    assert message.startswith(
        f"cannot back up {store} to {root}: cannot fsync the directory {root / 'files'}: "
        f"{os.strerror(errno.ENOSPC)}; the backup target is full: free space there"
    ), message
    assert "check the disk" not in message, message


def test_a_failed_fsync_after_the_journal_fails_the_backup(store, tmp_path, monkeypatch):
    root = tmp_path / "bk"
    failed = fail_fsync_of(monkeypatch, root / "pending")
    with pytest.raises(BackupError) as info:
        backup_store(store, str(root), name="b1")
    assert failed  # (the journal's first write)
    message = str(info.value)
    assert message.startswith(
        f"cannot back up {store} to {root}: cannot fsync the directory {root / 'pending'}: {EIO}; "
    ), message
    monkeypatch.undo()
    # The journal it wrote is gone: left, it kept prune from collecting anything while this process lived.
    assert _names(root / "pending") == [] and _names(root / "backups") == []


def test_a_failed_fsync_of_new_directories_fails_and_the_next_backup_syncs_them(store, tmp_path, monkeypatch):
    root = tmp_path / "new" / "bk"  # (new, bk and files made by the backup)
    failed = fail_fsync_of(monkeypatch, tmp_path / "new")
    with pytest.raises(BackupError) as info:
        backup_store(store, str(root), name="b1")
    assert failed == [os.path.realpath(tmp_path / "new")]
    message = str(info.value)
    assert f"cannot fsync the directory {tmp_path / 'new'}: {EIO}; nothing was backed up" in message, message
    monkeypatch.undo()
    # Left (another backup may be using them: tests/test_backup_dir_race25.py); the next backup fsyncs
    # their entries, though it finds them there.
    assert _names(root) == ["backups", "files", "pending"] and _names(root / "files") == []
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    backup_store(store, str(root), name="b1")
    assert {os.path.realpath(p) for p in (tmp_path, tmp_path / "new", root)} <= set(synced)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC], ids=["EIO", "ENOSPC"])
def test_a_failed_fsync_of_the_manifests_directory_says_the_backup_is_not_durable(
    store, tmp_path, monkeypatch, code
):
    root = tmp_path / "bk"
    failed = fail_fsync_of(monkeypatch, root / "backups", code=code)
    with pytest.raises(BackupNotDurableError) as info:
        backup_store(store, str(root), name="b1")
    assert failed == [os.path.realpath(root / "backups")]
    error = info.value
    assert isinstance(error, BackupError) and not isinstance(error, BackupTargetFullError)
    reason = os.strerror(code)
    message = str(error)
    assert message.startswith(
        f"backup b1 of {store} was written to {root}, but cannot make it durable: cannot fsync the directory "
        f"{root / 'backups'}: {reason}. "
    ), message
    assert f"run `sync {root / 'backups'}`" in message and "check the disk" in message, message
    assert "[Errno" not in message
    assert (error.directory, error.reason) == (str(root / "backups"), reason)
    report = error.report
    assert report is not None and (report.name, report.files_copied) == ("b1", 1)
    monkeypatch.undo()
    # It is in place and complete: listed, restorable; its journal is removed as after any backup.
    assert [i.name for i in list_backups(str(root))] == ["b1"]
    assert _names(root / "pending") == []
    assert _restores(str(root), tmp_path / "r") == b"v"


def test_db_backup_raises_it_too(store, tmp_path, monkeypatch):
    root = tmp_path / "bk"
    fail_fsync_of(monkeypatch, root / "backups")
    with DB(store) as db, pytest.raises(BackupNotDurableError) as info:
        backup(db, str(root), name="b1")
    assert str(info.value).startswith(f"backup b1 of {store} was written to {root}, but cannot make it")


def test_a_memory_target_fsyncs_no_directory(store, monkeypatch):
    # (Of the target's directories: the store's own is fsynced once, before its id is recorded.)
    failed = fail_fsync_of(monkeypatch, lambda path: path != os.path.realpath(store))
    url = "memory://kvb-backup-dir-fsync24"
    try:
        report = backup_store(store, url, name="b1")
        assert report.name == "b1" and failed == []
        assert [i.name for i in list_backups(url)] == ["b1"]
    finally:
        import fsspec

        fsspec.filesystem("memory").rm("/kvb-backup-dir-fsync24", recursive=True)


def test_kvb_backup_prints_it_and_fails(store, tmp_path, monkeypatch, capsys):
    root = tmp_path / "bk"
    fail_fsync_of(monkeypatch, root / "backups")
    assert main(["backup", store, str(root), "--name", "b1"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kvb: backup b1 of {store} was written to {root}, but cannot make it")
    assert f"sync {root / 'backups'}" in captured.err
    assert "complete" not in captured.out  # (no report of a backup done)
    monkeypatch.undo()
    root = tmp_path / "bk2"
    fail_fsync_of(monkeypatch, root / "files")
    assert main(["backup", store, str(root), "--name", "b2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kvb: cannot back up {store} to {root}: cannot fsync the directory")
    assert "complete" not in captured.out


def test_a_backup_that_copies_nothing_fsyncs_files_too(store, tmp_path, monkeypatch):
    # Its objects may be another backup's, still running or killed (vouched for by its journal), that
    # has not fsynced files/ yet: the manifest must not name objects whose entries a crash can take.
    root = tmp_path / "bk"
    backup_store(store, str(root), name="b1")
    manifest = root / "backups" / "b1.json"
    entries = json.loads(manifest.read_text())["files"]
    now = time.time()
    journal = {"name": "running", "started": now, "updated": now, "files": entries, "process": None}
    (root / "pending" / "0123456789ab.json").write_text(json.dumps(journal))
    manifest.unlink()  # (vouched for by the journal alone)
    failed = fail_fsync_of(monkeypatch, root / "files")
    with pytest.raises(BackupError) as info:
        backup_store(store, str(root), name="b2")
    assert failed and "nothing was backed up" in str(info.value)
    monkeypatch.undo()
    assert list_backups(str(root)) == []
    report = backup_store(store, str(root), name="b2")
    assert (report.files_copied, report.files_skipped) == (0, 1)
