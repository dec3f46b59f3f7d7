"""A restore whose directory fsyncs fail says so.

The restore fsynced its copy's directory before moving it into place, and the directory above after,
ignoring a failure of either: it reported a restore that a crash or a power failure could undo (the
path empty again, the copy's files missing from it) as done. As the engine, which fails an operation
whose directory fsync fails, a restore now fails if it cannot fsync its copy's directory (nothing is
restored), and raises ``RestoreNotDurableError`` if it cannot fsync the directories above the store
once it is in place: the store stays there (checked, and perhaps opened already), and the error says
what to do.
"""

from __future__ import annotations

import errno
import fcntl
import os

import pytest
from helpers import fail_fsync_of

from kv_backend import DB, BackupError
from kv_backend.backup import RestoreNotDurableError, restore
from kv_backend.cli import main


def _value(path) -> bytes | None:
    with DB(str(path), read_only=True) as db:
        return db.get(b"k")


@pytest.mark.parametrize("exists", [False, True], ids=["new path", "empty directory"])
def test_a_failed_fsync_of_the_directory_above_leaves_the_store_and_says_so(
    one_backup_url, tmp_path, monkeypatch, exists
):
    parent = tmp_path / "restored"
    parent.mkdir()
    dest = parent / "new"
    if exists:
        dest.mkdir()
    failed = fail_fsync_of(monkeypatch, parent)
    with pytest.raises(RestoreNotDurableError) as info:
        restore(one_backup_url, str(dest))
    assert failed == [str(parent)]
    assert isinstance(info.value, BackupError)
    message = str(info.value)
    assert message.startswith(f"restored backup b1 into {dest}, but cannot make that durable: "), message
    assert f"cannot fsync the directory {parent}: {os.strerror(errno.EIO)}" in message, message
    assert f"sync {parent}" in message, message  # (what to do)
    assert "[Errno" not in message
    report = info.value.report
    assert report is not None and (report.name, report.path, report.files) == ("b1", str(dest), 1)
    monkeypatch.undo()
    assert sorted(os.listdir(parent)) == ["new"]  # (in place, no temporary copy left)
    assert _value(dest) == b"v"


def test_the_directories_the_restore_made_above_the_store_count_too(one_backup_url, tmp_path, monkeypatch):
    dest = tmp_path / "made" / "deeper" / "new"  # (made and deeper: created by the restore)
    failed = fail_fsync_of(monkeypatch, tmp_path)
    with pytest.raises(RestoreNotDurableError) as info:
        restore(one_backup_url, str(dest))
    assert failed == [str(tmp_path)]
    assert f"cannot fsync the directory {tmp_path}: " in str(info.value)
    monkeypatch.undo()
    assert _value(dest) == b"v"


def test_the_store_stays_claimed_until_its_fsyncs_are_done(one_backup_url, tmp_path, monkeypatch):
    # (an open of a restored store without a page waits for the claim: see docs/protocol.md, "Opening")
    dest = tmp_path / "new"
    real = os.fsync
    claimed = []

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == str(tmp_path):  # (after the rename)
            probe = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
                claimed.append(False)
            except BlockingIOError:
                claimed.append(True)
            finally:
                os.close(probe)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(RestoreNotDurableError):
        restore(one_backup_url, str(dest))
    assert claimed == [True]
    probe = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # (let go once it failed)
    finally:
        os.close(probe)


def test_a_failed_fsync_of_the_copy_restores_nothing(one_backup_url, tmp_path, monkeypatch):
    dest = tmp_path / "new"
    failed = fail_fsync_of(monkeypatch, lambda path: ".new.restore-" in path)
    with pytest.raises(BackupError) as info:
        restore(one_backup_url, str(dest))
    assert failed and not isinstance(info.value, RestoreNotDurableError)
    message = str(info.value)
    assert message.startswith(f"cannot restore into {dest}: cannot fsync the directory "), message
    assert os.strerror(errno.EIO) in message and "nothing was restored" in message, message
    assert not dest.exists() and not [n for n in os.listdir(tmp_path) if ".restore-" in n]
    monkeypatch.undo()
    restore(one_backup_url, str(dest))
    assert _value(dest) == b"v"


def test_kvb_restore_prints_it_and_fails(one_backup_url, tmp_path, monkeypatch, capsys):
    dest = tmp_path / "new"
    fail_fsync_of(monkeypatch, tmp_path)
    assert main(["restore", one_backup_url, str(dest)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kvb: restored backup b1 into {dest}, but cannot make that durable")
    assert "restored backup b1" not in captured.out  # (no report of a restore done)
