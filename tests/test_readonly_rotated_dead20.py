"""A read-only open of a store where a rotation died, with records after the published end before it.

The STATE page reaches the disk after the records written past its end (it is never fsynced), so a
power failure can keep acknowledged records (``sync="always"`` fsynced them) past the end it publishes;
a rotation that died then leaves the next data file after the one the page names, holding part of its
header (or nothing), or all of it. A writer's recovery keeps those records: where the newest file holds
less than a header, it removes it and recovers the file the page names as the active one; where it holds
its header, it adopts it and closes that file, keeping them too. A read-only open (and a backup) must read
what that recovery keeps (docs/file-format.md, "The end of the active file"): with the short newest file,
the open read only up to the published end and gave the old value of a key whose delete was acknowledged
after it.
"""

from __future__ import annotations

import os
import struct

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, restore
from kv_backend.files import data_name
from kv_backend.locking import WriteLock
from kv_backend.record import FILE_HEADER_BYTES
from kv_backend.state import published_tail


def _lag_page(path: str, major: int, end: int) -> None:
    """Leave the page as a power failure may: tail and intent at an end older than the records."""
    with open(os.path.join(path, "STATE"), "r+b") as f:
        for offset in (16, 32):
            f.seek(offset)
            f.write(struct.pack("=Q", (major << 40) | end))


def _store(path: str, header: int) -> int:
    """k00..k09 and k39 put; then k39 deleted and k41 put past the end the page keeps; then the file of
    a rotation that died holding ``header`` bytes of its header. Returns the active file's major id."""
    with DB(path) as db:
        for i in range(10):
            db.put(b"k%02d" % i, b"v%02d" % i)
        db.put(b"k39", b"old")
        major, before = published_tail(path)
        db.delete(b"k39")
        db.put(b"k41", b"new")
    _lag_page(path, major, before)
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(FILE_HEADER_BYTES[:header])
    return major


def _view(db: DB) -> dict[bytes, bytes | None]:
    return {k: db.get(k) for k in db}


_WANT = {**{b"k%02d" % i: b"v%02d" % i for i in range(10)}, b"k41": b"new"}


@pytest.mark.parametrize("header", [0, 8, 16])
def test_the_reader_reads_what_recovery_keeps(store_path, header):
    _store(store_path, header)
    with DB(store_path, read_only=True) as ro:
        assert ro.get(b"k39") is None
        assert _view(ro) == _WANT
        assert ro.stats()["corrupt_records"] == 0
        with DB(store_path) as w:  # the writer's recovery keeps the same records
            assert _view(w) == _WANT
            assert w.stats()["corrupt_records"] == 0
            w.put(b"k42", b"later")
        # The reader follows the writer from there: nothing read twice, nothing missed.
        assert _view(ro) == {**_WANT, b"k42": b"later"}
        assert ro.stats()["corrupt_records"] == 0


@pytest.mark.parametrize("header", [0, 8, 16])
def test_a_backup_restores_what_recovery_keeps(store_path, tmp_path, header):
    _store(store_path, header)
    url = (tmp_path / "backups").as_uri()
    assert backup_store(store_path, url).damaged_records == 0
    target = str(tmp_path / "restored")
    restore(url, target)
    with DB(target, read_only=True) as db:
        assert _view(db) == _WANT
    with DB(store_path) as w:
        assert _view(w) == _WANT


@pytest.mark.parametrize("header", [8, 16])
def test_without_a_lock_that_keeps_writers_out_only_the_published_end_is_read(
    store_path, tmp_path, monkeypatch, header
):
    """A read-only open or a backup that could not open LOCK (a store copied without it, in a directory
    the reader cannot write) holds no lock a writer waits for: past the published end, what it finds may
    be a live writer's unpublished write, and it reads up to the published end alone, in the file the
    page names whether or not a newer file follows it."""
    _store(store_path, header)
    os.unlink(os.path.join(store_path, "LOCK"))
    monkeypatch.setattr(WriteLock, "_open", lambda self: -1)
    old = {**{b"k%02d" % i: b"v%02d" % i for i in range(10)}, b"k39": b"old"}
    with DB(store_path, read_only=True) as ro:
        assert not ro._lock.excludes_writers
        assert _view(ro) == old
    url = (tmp_path / "backups").as_uri()
    backup_store(store_path, url)
    target = str(tmp_path / "restored")
    monkeypatch.undo()
    restore(url, target)
    with DB(target, read_only=True) as db:
        assert _view(db) == old
