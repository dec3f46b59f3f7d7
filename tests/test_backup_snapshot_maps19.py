"""A backup's snapshot held a descriptor per data and hint file for as long as the backup ran, so that
a merge could not take the files away: a store of more files than the soft limit of open files made it
raise the limit, and past the hard limit the backup failed (EMFILE), where the store itself opens with a
few descriptors. The files that never change again (closed data files, hint files) are now held
through read-only maps that keep no descriptor, and read through their names while these name the
same files (an I/O error is a StorageError there), through the maps once a merge removed them (#5)."""

from __future__ import annotations

import errno
import os

import pytest
from helpers import run_python

import kv_backend.filemaps as filemaps
from kv_backend import DB, StorageError
from kv_backend.backup import restore
from kv_backend.files import list_data_files

pytestmark = pytest.mark.skipif(
    filemaps.MAPS_HOLD_FD or not os.path.isdir("/proc/self/fd"),
    reason="maps keep a descriptor here (see kv_backend.filemaps), or no /proc to count descriptors",
)

_CHILD = """
import resource, sys
from kv_backend import DB
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
with DB(sys.argv[1]) as db:
    report = db.backup(sys.argv[2])
print(report.files_copied, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
"""


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _store(path: str, n: int = 1500) -> str:
    with DB(path, max_file_size=4096) as db:
        for i in range(n):
            db.put(b"k%05d" % i, b"v" * 100)
        db.merge()  # (a hint file for each merged data file)
        for i in range(n, n + 200):
            db.put(b"k%05d" % i, b"w" * 100)
    return path


def test_a_backup_of_more_files_than_the_soft_limit_needs_no_more_descriptors(tmp_path):
    store = _store(str(tmp_path / "store"))
    assert len(os.listdir(store)) > 100  # (more than the limit of 64)
    out = run_python(_CHILD, store, f"file://{tmp_path / 'bk'}").stdout.split()
    assert int(out[0]) > 100 and out[1] == "64", out  # (the limit left as it was)
    restore(f"file://{tmp_path / 'bk'}", str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored"), read_only=True) as copy:
        assert len(copy) == 1700 and copy[b"k00007"] == b"v" * 100 and copy[b"k01600"] == b"w" * 100


def test_the_snapshot_holds_its_files_while_a_merge_removes_or_replaces_them(tmp_path):
    store = _store(str(tmp_path / "store"), 600)
    with DB(store, max_file_size=4096) as db:
        before = _fds()
        snapshot = db.snapshot_files()
        try:
            assert _fds() - before <= 4  # (the newest data files)
            held = {s.name: s for s in snapshot}
            want = {}
            for name, snap in held.items():
                with open(os.path.join(store, name), "rb") as f:
                    want[name] = f.read()[: snap.length]
            assert all(held[name].read(0, len(data)) == data for name, data in want.items())
            for i in range(0, 600, 2):
                db.delete(b"k%05d" % i)
            db.merge()  # every file of the snapshot but the active one removed
            left = set(os.listdir(store))
            gone = [name for name in want if name not in left]
            assert len(gone) > 40
            # A removed file's name given to another file (no merge does that): not read in its place.
            replaced = next(n for n in gone if n.endswith(".data"))
            with open(os.path.join(store, replaced), "wb") as f:
                f.write(b"\xff" * len(want[replaced]))
            for name, data in want.items():
                assert held[name].read(0, len(data)) == data, name
                assert held[name].read(len(data) // 3, 5000) == data[len(data) // 3 : len(data) // 3 + 5000]
            os.unlink(os.path.join(store, replaced))
            assert _fds() - before <= 4
        finally:
            for snap in snapshot:
                snap.close()
        assert _fds() == before
        assert len(db) == 500


def test_an_io_error_reading_a_closed_file_through_its_name_is_a_storage_error(tmp_path, monkeypatch):
    """What a read of the map would make SIGBUS: the file is read through its name while it is there."""
    store = _store(str(tmp_path / "store"), 300)
    with DB(store, read_only=True) as db:
        snapshot = db.snapshot_files()
    closed = next(s for s in snapshot if s.fd < 0 and s.name.endswith(".data"))
    assert list_data_files(store) and os.path.exists(os.path.join(store, closed.name))

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "pread", fail)
    with pytest.raises(StorageError) as info:
        closed.read(0, 100)
    assert info.value.errno == errno.EIO and closed.name in str(info.value)
    for snap in snapshot:
        snap.close()
