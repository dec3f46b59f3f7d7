"""A full disk and the active file's reserved space (docs/protocol.md, "Writing", step 3).

The active file grows ahead of its tail in steps (64 KiB, doubling up to 1 MiB, then 1 MiB each).
Grown with ftruncate alone that space is a
hole, which reserves nothing: on a full disk (tmpfs, ext4, xfs alike) the appends into it failed
half-way through a record. It is now reserved with posix_fallocate, so a full disk is refused before
anything is written; and a write that fails all the same leaves no part of itself behind for a later
writer's recovery to take for a record.
"""

from __future__ import annotations

import errno
import os

import pytest
from helpers import data_files, patch_engine

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.errors import StorageError

pytestmark = pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="no posix_fallocate here")


def _no_space(*args: object) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_the_space_ahead_of_the_tail_is_reserved(store_path, monkeypatch):
    real = os.posix_fallocate
    calls: list[tuple[int, int]] = []

    def recording(fd: int, offset: int, length: int) -> None:
        calls.append((offset, offset + length))
        real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", recording)
    with DB(store_path) as db:
        calls.clear()
        db.put(b"k", b"v" * 3000)
        end = db._tail[1]
        assert any(start <= end - 3000 and stop >= 64 << 10 for start, stop in calls), calls
        (path,) = data_files(store_path)
        st = os.stat(path)
        assert st.st_size == 64 << 10  # (a small store's first step: see docs/engine.md)
        if st.st_blocks * 512 < st.st_size:  # (a file system that reserves nothing: only grown)
            pytest.skip("this file system does not reserve blocks for posix_fallocate")


def test_short_of_a_whole_step_only_the_write_is_reserved(store_path, monkeypatch):
    real = os.posix_fallocate
    with DB(store_path) as db, DB(store_path, read_only=True) as reader:
        db.put(b"before", b"safe")
        # Room for a record, not for a whole step (64 KiB here).
        monkeypatch.setattr(
            os, "posix_fallocate", lambda fd, off, n: _no_space() if n > 10_000 else real(fd, off, n)
        )
        db._alloc = db._tail[1]  # (as if the reserved step were used up)
        db.put(b"fits", b"x" * 500)
        assert db[b"fits"] == b"x" * 500
        # No room at all: refused before anything is written, nothing announced, and it works again.
        monkeypatch.setattr(os, "posix_fallocate", _no_space)
        db._alloc = db._tail[1]
        token = db.change_token()
        with pytest.raises(StorageError) as info:
            db.put(b"lost", b"z" * 500)
        assert info.value.errno == errno.ENOSPC and "no space left" in str(info.value).lower()
        assert db._state.intent.value == db._state.tail.value
        assert db.change_token() == token and reader.get(b"lost") is None
        assert db[b"before"] == b"safe" and b"fits" in db
        monkeypatch.setattr(os, "posix_fallocate", real)
        db.put(b"after", b"ok")
        assert reader[b"after"] == b"ok"
    with DB(store_path) as db:
        assert dict(db.items()) == {b"before": b"safe", b"fits": b"x" * 500, b"after": b"ok"}
    assert check(store_path).ok


def test_a_failed_write_leaves_nothing_a_later_recovery_keeps(store_path, monkeypatch):
    """Half a record reached the file, then the disk was full. The next write, shorter, landed on its
    first bytes; the rest of it stayed past the published end, and a record inside its value that
    began right there checked out: the next writer to open the store kept it as a dead writer's
    unpublished write, a key nobody ever stored (acknowledged or not)."""
    short = rec.encode(rec.PUT, b"s", b"1" * 10)
    ghost = rec.encode(rec.PUT, b"ghost", b"never stored")
    lead = len(short) - rec.HEADER_SIZE - len(b"big")  # the ghost begins where the short record ends
    assert lead > 0
    value = b"p" * lead + ghost + b"q" * 4000
    real_pwrite = os.pwrite

    def half_then_full(fd, data, offset):
        real_pwrite(fd, bytes(memoryview(data)[: len(data) // 2]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    with DB(store_path) as db:
        db.put(b"before", b"safe")
        monkeypatch.setattr(os, "pwrite", half_then_full)
        patch_engine(monkeypatch, "_pwrite", half_then_full)
        with pytest.raises(StorageError):
            db.put(b"big", value)
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        patch_engine(monkeypatch, "_pwrite", real_pwrite)
        db.put(b"s", b"1" * 10)
    for read_only in (True, False):
        with DB(store_path, read_only=read_only) as db:
            assert dict(db.items()) == {b"before": b"safe", b"s": b"1" * 10}
    assert check(store_path).ok
