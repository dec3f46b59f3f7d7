"""Backups and restores: defects found by the tenth review (pruning, restores, damaged targets)."""

from __future__ import annotations

import errno
import os

import pytest

from kv_backend import DB, BackupError, StorageError
from kv_backend.backup import list_backups, prune_backups, restore


@pytest.fixture
def url(backup_url):
    """A fresh backup URL of each kind (conftest's ``backup_url``)."""
    return backup_url


@pytest.mark.parametrize("extra", [1, 2])
def test_prune_keeping_more_than_there_are_removes_nothing(url, store_path, extra):
    """keep=N with fewer than N backups keeps them all; it used to slice with a negative
    count (valid[:len - keep]) and delete the oldest backups instead."""
    names = ["a", "b", "c"]
    with DB(store_path) as db:
        for i, n in enumerate(names):
            db.put(b"k", str(i).encode())
            db.backup(url, name=n)
    assert prune_backups(url, keep=len(names) + extra) == []
    assert [i.name for i in list_backups(url)] == names


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else set()


@pytest.mark.parametrize("failure", ["open", "read"])
def test_a_disk_error_reading_the_store_is_a_storage_error(url, store_path, monkeypatch, failure):
    """Too many open files while the snapshot opens the store's files (it needs one more descriptor
    per file), or an I/O error while reading them: the backup used to end with a bare OSError (a
    traceback from `kvb backup`); it is now a StorageError naming the store, no descriptor is left
    open, and no backup is listed."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 200)
        db.merge()  # hint files too
        before = _open_fds()
        real_open, real_pread = os.open, os.pread
        if failure == "open":

            def fail_open(path, *args, **kwargs):
                if str(path).endswith(".hint"):
                    raise OSError(errno.EMFILE, "Too many open files", path)
                return real_open(path, *args, **kwargs)

            monkeypatch.setattr(os, "open", fail_open)
            code = errno.EMFILE
        else:

            def fail_pread(*args):
                raise OSError(errno.EIO, "Input/output error")

            monkeypatch.setattr(os, "pread", fail_pread)
            code = errno.EIO
        with pytest.raises(StorageError) as info:
            db.backup(url, name="one")
        monkeypatch.setattr(os, "open", real_open)
        monkeypatch.setattr(os, "pread", real_pread)
        assert info.value.errno == code
        assert store_path in str(info.value) or "of the store" in str(info.value)
        assert _open_fds() <= before
        assert list_backups(url) == []
        assert db.backup(url, name="one").files_copied > 0


def test_a_backup_at_the_root_of_a_filesystem_reports_a_url_that_works(store_path, tmp_path):
    """memory:// (or file:///) names a filesystem's root: the report, the restore report and the
    messages used to call it "memory:", which the backup functions refuse as a typo."""
    import fsspec

    fs = fsspec.filesystem("memory")
    try:
        with DB(store_path) as db:
            db.put(b"k", b"v")
            report = db.backup("memory://", name="at-root")
        assert report.url == "memory://"
        assert "complete at memory://: " in str(report)
        assert [i.name for i in list_backups(report.url)] == ["at-root"]
        assert restore(report.url, tmp_path / "r").url == "memory://"
        with pytest.raises(BackupError, match="no backup named 'nope' at memory://;"):
            restore("memory://", tmp_path / "r2", name="nope")
    finally:
        for rel in ("/backups", "/files", "/pending"):
            if fs.exists(rel):
                fs.rm(rel, recursive=True)


@pytest.mark.parametrize("below", ["sub", "sub/deeper"])
def test_a_restore_below_a_file_names_the_file(url, store_path, tmp_path, below):
    """A restore path under a file: the error said "File exists" (or "Not a directory"), as if the
    restore path itself were the problem; it now names the file that is in the way."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
    (tmp_path / "afile").write_bytes(b"")
    with pytest.raises(BackupError, match=f"{tmp_path / 'afile'} is a file, not a directory"):
        restore(url, tmp_path / "afile" / below)
    assert (tmp_path / "afile").read_bytes() == b""


def test_json_nested_too_deep_under_the_url_is_damage_not_a_crash(url, store_path, tmp_path):
    """A file in backups/ or pending/ holding JSON nested deeper than the parser's recursion
    limit (another program's file, or a hostile one) made every listing, backup and prune at the
    URL fail with a bare RecursionError; it is now a damaged manifest / a foreign journal."""
    import fsspec

    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="good")
        fs, root = fsspec.core.url_to_fs(url)
        deep = b"[" * 100_000 + b"]" * 100_000
        fs.pipe_file(f"{root}/backups/deep.json", deep)
        fs.pipe_file(f"{root}/pending/deep.json", deep)
        infos = {i.name: i for i in list_backups(url)}
        assert infos["good"].ok and not infos["deep"].ok
        assert "damaged" in infos["deep"].error
        assert db.backup(url, name="two").files_skipped == 1
    assert prune_backups(url, keep=5) == []
    restore(url, tmp_path / "r", name="two")


def test_backup_of_something_that_is_not_a_db_says_what_to_pass(store_path):
    """kv_backend.backup.backup(path_or_store, url) failed with AttributeError ('str' object has no
    attribute 'snapshot_files'); it is now an InvalidBackupArgumentError that says what to pass."""
    from kv_backend import ConfigurationError, Store
    from kv_backend.backup import InvalidBackupArgumentError, backup

    DB(store_path).close()
    with pytest.raises(InvalidBackupArgumentError, match=r"open it with DB\(path, read_only=True\)"):
        backup(store_path, "memory://kvb-review10-never")
    with Store(store_path + "-shelf") as shelf:
        with pytest.raises(ConfigurationError, match=r"pass its \.db"):
            backup(shelf, "memory://kvb-review10-never")
        assert backup(shelf.db, "memory://kvb-review10-shelf").files_copied == 1
    import fsspec

    fsspec.filesystem("memory").rm("/kvb-review10-shelf", recursive=True)
    assert not fsspec.filesystem("memory").exists("/kvb-review10-never")
