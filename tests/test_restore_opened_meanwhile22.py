"""A restore (or salvage) into a directory where a store is opened while it runs (a web or Celery worker
that starts, which creates a new, empty store there).

The restore never moves a half-made store into place (it renames a checked copy over a missing or
empty directory), and it must not replace what the other process made. It failed with "refusing to
restore into PATH: the directory is not empty (it holds ...); restore into a new or empty directory"
(or the rename's "Directory not empty"), as if the caller had named a directory in use. It now says
that the path was empty when the restore started, that a process opened a store there meanwhile, and
to stop the processes that use it, move aside what they made and restore again.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import child_env

import kv_backend.backup as backup_module
from kv_backend import DB, BackupError
from kv_backend.backup import backup_store, restore
from kv_backend.salvage import SalvageError, salvage


@pytest.fixture
def url(tmp_path):
    store = str(tmp_path / "store")
    with DB(store, max_file_size=4096) as db:
        for i in range(200):
            db.put(b"key-%03d" % i, b"value-%03d-" % i * 5)
    bk = str(tmp_path / "bk")
    backup_store(store, bk, name="one")
    return bk


def open_store_in_a_child(path: str) -> None:
    """What a worker starting does: open (and so create) the store at ``path``, in another process."""
    code = "import sys\nfrom kv_backend import DB\nwith DB(sys.argv[1]) as db:\n    assert len(db) == 0\n"
    subprocess.run([sys.executable, "-c", code, path], env=child_env(), check=True, timeout=60)


def assert_says_what_happened(exc: Exception, path: str, action: str = "restore") -> None:
    msg = str(exc)
    assert f"cannot {action} into {path}: it was empty when the {action} started" in msg, msg
    assert "a process opened a store at that path meanwhile" in msg, msg
    assert f"Stop every process that uses {path}" in msg and f"{action} again" in msg, msg


@pytest.mark.parametrize("empty_directory", [False, True])
def test_a_store_opened_while_the_backup_downloads(url, tmp_path, empty_directory):
    dest = str(tmp_path / "restored")
    if empty_directory:
        os.mkdir(dest)

    def progress(done, total):
        if done == total and not os.path.exists(os.path.join(dest, "KVB_FORMAT")):
            open_store_in_a_child(dest)

    with pytest.raises(BackupError) as info:
        restore(url, dest, progress=progress)
    assert_says_what_happened(info.value, dest)
    with DB(dest, read_only=True) as db:  # the worker's store, untouched
        assert len(db) == 0
    assert sorted(os.listdir(tmp_path)) == ["bk", "restored", "store"]  # no temporary directory left


def test_a_store_opened_just_before_the_rename(url, tmp_path, monkeypatch):
    dest = str(tmp_path / "restored")
    keep = backup_module.keep_directory_access

    def then_a_worker_starts(path, tmp, *args):
        keep(path, tmp, *args)
        open_store_in_a_child(dest)

    monkeypatch.setattr(backup_module, "keep_directory_access", then_a_worker_starts)
    with pytest.raises(BackupError) as info:
        restore(url, dest)
    assert_says_what_happened(info.value, dest)
    assert sorted(os.listdir(tmp_path)) == ["bk", "restored", "store"]


def test_after_the_advice_the_restore_succeeds(url, tmp_path):
    dest = str(tmp_path / "restored")
    open_store_in_a_child(dest)  # (what a worker left)
    os.rename(dest, str(tmp_path / "aside"))
    assert restore(url, dest).records == 200


def test_salvage_says_so_too(tmp_path, monkeypatch):
    src = str(tmp_path / "src")
    with DB(src) as db:
        db.put(b"k", b"v")
    dest = str(tmp_path / "salvaged")
    original = backup_module.keep_directory_access  # (salvage() imports it from there when it runs)

    def then_a_worker_starts(path, tmp, *args):
        open_store_in_a_child(dest)
        original(path, tmp, *args)

    monkeypatch.setattr(backup_module, "keep_directory_access", then_a_worker_starts)
    with pytest.raises(SalvageError) as info:
        salvage(src, dest)
    assert_says_what_happened(info.value, dest, "salvage")
