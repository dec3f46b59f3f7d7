"""Zeros that no byte of a file holds are skipped unread, with the same results.

A STATE page naming a file that newer files follow, with a published end up to 64 MiB past that file's
end (a loss a power failure can leave, or a bit flipped in the tail that the intent word vouches for):
every reader reads the file as filled with zeros up to that end, and recovery fills it so (a hole, the
file grown with ftruncate). Every reader looked for where reading resumes after the damaged header there
by searching each of those 64 MiB for a record's type byte, about a second per reader. The zeros past a
file's real size, and a hole that ends a file, are now known without reading them
(``kv_backend.record.data_from``), and skipped in one step.
"""

from __future__ import annotations

import os
import re

import pytest
from test_page_end_past_loss23 import lost_store as _lost_store
from test_state_page_damage18 import _WANT

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.salvage import salvage
from kv_backend.unpublished import MAX_LOSS, zero_filled


class _Searches:
    """Stands for record._MAYBE_RECORD: counts the bytes of the windows searched for a record's start."""

    def __init__(self, pattern: re.Pattern[bytes]) -> None:
        self.pattern = pattern
        self.searched = 0

    def search(self, window: bytes, pos: int, endpos: int) -> re.Match[bytes] | None:
        if pos == 4:  # (the first search of a window: the rest search the same window further on)
            self.searched += len(window)
        return self.pattern.search(window, pos, endpos)


@pytest.fixture
def searches(monkeypatch):
    counter = _Searches(rec._MAYBE_RECORD)
    monkeypatch.setattr(rec, "_MAYBE_RECORD", counter)
    return counter


def _counting(read: object) -> tuple[list[int], object]:
    """``read(offset, n)`` through ``read``, counting the bytes it returns (in ``got[0]``), and telling
    what ``read`` tells of where its file holds no bytes."""
    got = [0]

    def counted(offset: int, n: int) -> bytes:
        out = read(offset, n)
        got[0] += len(out)
        return out

    if hasattr(read, "data_from"):
        counted.data_from = read.data_from
    return got, counted


def _damaged_then_records() -> tuple[bytes, int]:
    """A data file: records, a damaged header, records (resync finds the first one after it)."""
    data = bytearray(rec.FILE_HEADER_BYTES)
    for i in range(20):
        data += rec.encode(rec.PUT, b"a%d" % i, b"v" * 100)
    at = len(data)
    damaged = bytearray(rec.encode(rec.PUT, b"bad", b"x" * 100))
    damaged[10:14] = (1 << 29).to_bytes(4, "little")  # (a value length past the data)
    data += damaged
    for i in range(20):
        data += rec.encode(rec.PUT, b"b%d" % i, b"w" * 100)
    return bytes(data), at


def test_resync_past_the_end_of_a_file_read_as_zeros_reads_none_of_them():
    data, at = _damaged_then_records()
    end = len(data) + MAX_LOSS
    whole = rec.reader_of(data + bytes(MAX_LOSS))  # (the same bytes, the zeros held in memory)
    read = rec.reader_of(data)
    got, filled = _counting(zero_filled(read, len(data), end))
    want = rec.resync(whole, at, end)
    assert want is not None and want > at
    assert rec.resync(filled, at, end) == want
    # Where only the zeros follow: none found, as before, without reading them.
    cut = len(data) - 50  # (inside the last record)
    got_cut, cut_filled = _counting(zero_filled(read, cut, end))
    assert rec.resync(cut_filled, cut - 30, end) is None
    assert got_cut[0] < 4 << 20, got_cut[0]
    assert rec.resync(rec.reader_of(data[:cut] + bytes(end - cut)), cut - 30, end) is None
    assert rec.zeros_start(filled, at, end) == rec.zeros_start(whole, at, end) == len(data)
    assert rec.only_zeros(filled, len(data), end) and not rec.only_zeros(filled, at, end)
    assert rec.sound_within(filled, len(data) - 1, end) is False
    assert got[0] < 8 * len(data) + (4 << 20), got[0]  # (not the 64 MiB of zeros)


def test_a_file_that_ends_in_a_hole_reads_as_its_bytes_do(tmp_path):
    """A file grown with ftruncate (recovery's fill of a file that lost bytes) is read through its
    descriptor byte for byte: where it holds data is not asked of the file system (SEEK_DATA), which
    may misreport a hole, so the searches find what they find in the same bytes in memory."""
    data, at = _damaged_then_records()
    path = str(tmp_path / "f")
    with open(path, "wb") as f:
        f.write(data)
        f.truncate(len(data) + (1 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        read = rec.file_reader(fd)
        end = len(data) + (1 << 20)
        assert rec.data_from(read, len(data), end) == len(data)  # (nothing skipped unread)
        assert rec.resync(read, at, end) == rec.resync(rec.reader_of(data + bytes(1 << 20)), at, end)
        assert rec.zeros_start(read, at, end) == len(data)
        assert rec.only_zeros(read, len(data), end)
    finally:
        os.close(fd)


def _reads(path: str, *, read_only: bool) -> None:
    with DB(path, read_only=read_only) as db:
        assert db.stats()["corrupt_records"] == 1  # (the zeros: one damaged region)
        assert set(db.keys()) <= set(_WANT)
        for key in db:
            assert db.get(key) == _WANT[key]


def test_every_reader_skips_the_zeros_of_a_file_that_lost_bytes(store_path, tmp_path, searches):
    lost = _lost_store(store_path)
    size = os.path.getsize(lost)
    _reads(store_path, read_only=True)
    assert [p.path for p in check(store_path).problems] == [lost]
    report = salvage(store_path, str(tmp_path / "salvaged"))
    with DB(str(tmp_path / "salvaged"), read_only=True) as salvaged:
        assert report.keys_copied == len(salvaged) > 0
    assert backup_store(store_path, str(tmp_path / "backups")).damaged_records == 1
    assert searches.searched < 8 << 20, searches.searched  # (64 MiB of zeros for each before)
    # A writer's recovery fills the file with zeros up to its published end (bytes of the file now,
    # read as such): the same results.
    _reads(store_path, read_only=False)
    assert os.path.getsize(lost) == size + MAX_LOSS
    _reads(store_path, read_only=True)
    assert [p.path for p in check(store_path).problems] == [lost]
