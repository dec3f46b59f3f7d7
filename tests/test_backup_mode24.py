"""A backup records the mode of the store directory its snapshot is taken from.

The mode (``store_mode`` in the manifest, which a restore into a new directory applies, and from which
a local backup's files take their permissions) was read before the snapshot's lock was taken: a store
swapped at its path in between (``kv_restore --replace``) was backed up with the old directory's mode,
a ``0755`` store's copies made ``0600``, or a ``0700`` store's readable by every user.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

import kv_backend.snapshot as kvsnapshot
from kv_backend import DB
from kv_backend.backup import backup_store, restore


def _manifest(url: str, name: str) -> dict:
    with open(os.path.join(url, "backups", f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def swap_before_snapshot(tmp_path, monkeypatch):
    """A store at ``tmp_path/store`` (mode 0700, ``k``: ``old``) that is swapped for another (mode 0755,
    ``k``: ``new``) after the backup starts and before it takes its snapshot; the store's path."""
    path = tmp_path / "store"
    with DB(str(path)) as db:
        db.put(b"k", b"old")
    os.chmod(path, 0o700)
    with DB(str(tmp_path / "restored")) as db:
        db.put(b"k", b"new")
    os.chmod(tmp_path / "restored", 0o755)
    real = kvsnapshot.store_snapshot
    swapped = []

    def swap_then_snapshot(store, **options):
        os.rename(path, tmp_path / "old")  # (as kv_restore --replace does where it cannot exchange)
        os.rename(tmp_path / "restored", path)
        swapped.append(store)
        return real(store, **options)

    monkeypatch.setattr(kvsnapshot, "store_snapshot", swap_then_snapshot)
    yield str(path)
    assert swapped  # (the swap happened between the start of the backup and its snapshot)


def test_the_manifest_holds_the_mode_of_the_directory_snapshotted(swap_before_snapshot, tmp_path):
    url = str(tmp_path / "bk")
    backup_store(swap_before_snapshot, url, name="b1")
    manifest = _manifest(url, "b1")
    assert manifest["store_mode"] == 0o755
    dest = tmp_path / "back"
    restore(url, str(dest))
    with DB(str(dest), read_only=True) as db:
        assert db.get(b"k") == b"new"  # (the snapshot: the store swapped in)
    assert stat.S_IMODE(os.stat(dest).st_mode) & 0o055 == 0o055 & ~_umask()


def test_the_local_copies_take_their_permissions_from_that_directory(swap_before_snapshot, tmp_path):
    url = tmp_path / "bk"
    old = os.umask(0o022)
    try:
        backup_store(swap_before_snapshot, str(url), name="b1")
    finally:
        os.umask(old)
    # A 0755 store's copies are 0644 under umask 022 (those of the 0700 store it replaced were 0600).
    for name in os.listdir(url / "files"):
        assert stat.S_IMODE(os.stat(url / "files" / name).st_mode) == 0o644, name
    assert stat.S_IMODE(os.stat(url / "backups" / "b1.json").st_mode) == 0o644


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
