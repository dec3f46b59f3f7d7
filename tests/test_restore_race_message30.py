"""Several restores (or salvages) into one path at once: exactly one succeeds, and the others say that
another restore put a copy of the same store there, not that a worker created a new, empty store
there, to be deleted "if it holds nothing you need" (it holds the restored store)."""

from __future__ import annotations

import multiprocessing
import os

import pytest

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


def assert_says_another_copy_is_there(exc: Exception, path: str, action: str) -> None:
    msg = str(exc)
    assert f"cannot {action} into {path}: it was empty when the {action} started" in msg, msg
    assert "a copy of the same store" in msg and "new, empty" not in msg, msg
    other = "salvage" if action == "restore" else "restore"
    assert f"another {action} (or a {other}) put a copy" in msg, msg  # (not "or a restore or salvage")
    assert "delete it" not in msg, msg


def test_a_restore_that_another_restore_overtook(url, tmp_path, monkeypatch):
    dest = str(tmp_path / "restored")
    keep = backup_module.keep_directory_access
    started: list[bool] = []
    done = []

    def then_another_restore_finishes(path, tmp, *args):
        keep(path, tmp, *args)
        if not started:
            started.append(True)
            done.append(restore(url, dest))  # (the other one, which wins the rename)

    monkeypatch.setattr(backup_module, "keep_directory_access", then_another_restore_finishes)
    with pytest.raises(BackupError) as info:
        restore(url, dest)
    assert_says_another_copy_is_there(info.value, dest, "restore")
    assert done and done[0].records == 200
    with DB(dest, read_only=True) as db:  # the winner's store, untouched
        assert len(db) == 200


def test_a_salvage_that_another_salvage_overtook(tmp_path, monkeypatch):
    src = str(tmp_path / "src")
    with DB(src) as db:
        db.put(b"k", b"v")
    dest = str(tmp_path / "salvaged")
    original = backup_module.keep_directory_access  # (salvage() imports it from there when it runs)
    started: list[bool] = []
    done = []

    def then_another_salvage_finishes(path, tmp, *args):
        if not started:
            started.append(True)
            done.append(salvage(src, dest))  # (the other one, which wins the rename)
        original(path, tmp, *args)

    monkeypatch.setattr(backup_module, "keep_directory_access", then_another_salvage_finishes)
    with pytest.raises(SalvageError) as info:
        salvage(src, dest)
    assert_says_another_copy_is_there(info.value, dest, "salvage")
    with DB(dest, read_only=True) as db:
        assert db[b"k"] == b"v"


def _restore(url: str, dest: str) -> str:
    try:
        restore(url, dest)
        return "ok"
    except BackupError as exc:
        return str(exc)


def test_restores_at_once_in_processes(url, tmp_path):
    dest = str(tmp_path / "restored")
    pool = multiprocessing.get_context("fork").Pool(3)
    try:
        results = pool.starmap(_restore, [(url, dest)] * 3)
    finally:
        # Ended by the pool's sentinel, not by the SIGTERM of Pool.terminate (the with block's exit): a
        # child forked from this test process inherits its signal handlers, and a full run hung 300 s
        # joining a child that SIGTERM did not end.
        pool.close()
        pool.join()
    assert results.count("ok") == 1, results
    for failed in (r for r in results if r != "ok"):
        assert "a copy of the same store" in failed or "the directory is not empty" in failed, failed
    with DB(dest, read_only=True) as db:
        assert len(db) == 200
    assert sorted(os.listdir(tmp_path)) == ["bk", "restored", "store"]
