"""sync="always": a write's fsync reaches the file holding its record even when another
thread's full reload (after another process's merge) installed an older view meanwhile."""

from __future__ import annotations

import os
import threading

import pytest

import kv_backend.db_open as db_open
from kv_backend import DB
from kv_backend.keydir import KeyDir


def _rotates(db: DB) -> bool:
    _, end = db._tail
    return end + 200 > db.max_file_size


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names fsynced files by /proc/self/fd (Linux)")
@pytest.mark.parametrize("sync", ["always", 0.0])
def test_fsync_after_a_reload_installed_an_older_active_file(tmp_path, monkeypatch, sync):
    db = DB(str(tmp_path / "s"), sync=sync, max_file_size=4096)
    try:
        while not _rotates(db):
            db.put(b"fill-%d" % len(db), b"x" * 100)
        snapshot_taken = threading.Event()
        may_install = threading.Event()
        installed = threading.Event()
        real_keydir = KeyDir

        def paused_keydir() -> KeyDir:
            # _full_reload builds its index right after taking its snapshot under the lock
            snapshot_taken.set()
            assert may_install.wait(10)
            return real_keydir()

        monkeypatch.setattr(db_open, "KeyDir", paused_keydir)

        def reload() -> None:
            db._full_reload()
            installed.set()

        reader = threading.Thread(target=reload)
        reader.start()
        assert snapshot_taken.wait(10)
        monkeypatch.setattr(db_open, "KeyDir", real_keydir)

        synced: list[str] = []
        real_fdatasync = os.fdatasync

        def recording_fdatasync(fd: int) -> None:
            synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
            real_fdatasync(fd)

        real_after = db._after_write

        def after_write() -> None:
            # the reader installs its view (from before the rotation) between this
            # write's publication and its fsync; only fsyncs from here on flush the record
            synced.clear()
            may_install.set()
            assert installed.wait(10)
            real_after()

        monkeypatch.setattr(db, "_after_write", after_write)
        monkeypatch.setattr(os, "fdatasync", recording_fdatasync)
        before = set(os.listdir(db.path))
        db.put(b"acknowledged", b"v" * 100)  # rotates, then writes into the new file
        reader.join(10)
        monkeypatch.undo()
        new_files = [n for n in set(os.listdir(db.path)) - before if n.endswith(".data")]
        assert len(new_files) == 1, new_files
        holder = os.path.realpath(os.path.join(db.path, new_files[0]))
        assert holder in synced, f"the file holding the write was not fsynced: {synced}"
        assert db.get(b"acknowledged") == b"v" * 100
    finally:
        db.close()
