"""A restore onto a full disk said only "cannot restore into PATH: No space left on device" where the
disk filled while a data file was written (closing the file flushed what it still buffered, failed
again, and that bare error replaced the one naming the file), and where the restored copy's STATE page
could not be made it said "[Errno 28] cannot map .../STATE: ... nothing acknowledged was lost.; the
disk ... is full", the advice of a store's open. Both now name the file, and the temporary directory
goes."""

from __future__ import annotations

import errno
import os

import pytest

import kv_backend.backup as kvbackup
import kv_backend.state as kvstate
from kv_backend import DB, BackupError
from kv_backend.backup import restore
from kv_backend.files import storage_error

FULL = "No space left on device"


@pytest.fixture
def url(tmp_path):
    url = str(tmp_path / "bk")
    with DB(str(tmp_path / "store")) as db:
        for i in range(50):
            db.put(b"k%d" % i, b"v" * 100)
        db.backup(url, name="one")
    return url


class _FullFile:
    """A file on a full disk that buffers: each write fails, and so do flush and close after it."""

    def __init__(self, raw):
        self.raw = raw
        self.pending = False

    def _full(self):
        raise OSError(errno.ENOSPC, FULL)

    def write(self, data):
        self.pending = True
        self._full()

    def flush(self):
        if self.pending:
            self._full()

    def fileno(self):
        return self.raw.fileno()

    def close(self):
        self.raw.close()
        if self.pending:
            self._full()


def test_a_data_file_that_fills_the_disk_is_named(url, tmp_path, monkeypatch):
    def full_open(path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)  # noqa: SIM115 - closed by _FullFile
        return _FullFile(f) if mode == "wb" else f

    monkeypatch.setattr(kvbackup, "open", full_open, raising=False)
    dest = str(tmp_path / "new")
    with pytest.raises(BackupError) as info:
        restore(url, dest)
    message = str(info.value)
    assert f"cannot write {tmp_path}{os.sep}.new.restore-" in message
    assert f".data: {FULL}; the disk of {tmp_path} is full" in message
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]


def test_a_state_page_that_fills_the_disk_is_named_without_a_stores_advice(url, tmp_path, monkeypatch):
    def full_page(path, *args, **kwargs):
        raise storage_error(OSError(errno.ENOSPC, FULL, path), f"cannot map {path}")

    monkeypatch.setattr(kvstate, "SharedState", full_page)
    dest = str(tmp_path / "new")
    with pytest.raises(BackupError) as info:
        restore(url, dest)
    message = str(info.value)
    assert f"cannot restore into {dest}: cannot map {tmp_path}{os.sep}.new.restore-" in message
    assert f"STATE: {FULL}; the disk of {tmp_path} is full" in message
    assert "[Errno" not in message and "acknowledged" not in message
    assert sorted(os.listdir(tmp_path)) == ["bk", "store"]
