"""stats()'s corrupt_records counts the damage a reader hits, as kvb check counts it, whichever path
learned of it.

A merged data file is read through its hint file, whose records are checked only when read. Where such a
file lost bytes below the size its hint file gives, a writer's recovery fills it with zeros up to there
(a read-only open reads it so): every key it lost raises CorruptionError, and kvb check reports the
damaged region, but stats() said 0 after the fill, and 0 read-only before it too (1 for a file cut
inside its header). A record of such a file that failed its checksum when read was not counted either.
Each of these is now counted: the region of zeros at every open (one, as kvb check and replay count a
region), and the damaged records this process's reads meet (kept across a reload while their file is
there; a merge copies them as they are, and a read meets them again in its output)."""

from __future__ import annotations

import logging
import os

import pytest

from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.state import published_tail


def _merged(store: str, n: int = 60, *, max_file_size: int = 1 << 20) -> list[str]:
    """A store of ``n`` keys merged into output files read through their hint files, the last value
    ending in zeros; the paths of those files."""
    with DB(store, max_file_size=max_file_size) as db:
        for i in range(n):
            db.put(b"k%03d" % i, os.urandom(700))
        db.put(b"z", b"q" + bytes(100))
        db.merge(wait=True)
        db.put(b"after", b"merge")
    outputs = [os.path.join(store, data_name(fid)) for fid in list_data_files(store) if fid[1] > 0]
    assert outputs
    return outputs


def _damaged_reads(db: DB) -> int:
    bad = 0
    for key in db.unordered_keys():
        try:
            db.get(key)
        except CorruptionError:
            bad += 1
    return bad


@pytest.fixture(autouse=True)
def _quiet(caplog):
    caplog.set_level(logging.ERROR, logger="kv_backend.db")


@pytest.mark.parametrize(
    "cut",
    [lambda size: size // 2, lambda size: 10, lambda size: 0, lambda size: size - 30],
    ids=["records", "inside-header", "to-nothing", "zeros-only"],
)
def test_the_zeros_a_fill_puts_in_place_of_records_are_counted_before_and_after_it(store_path, cut):
    (path,) = _merged(store_path)
    size = os.path.getsize(path)
    os.truncate(path, cut(size))
    counts = []
    for read_only in (True, False, True):  # before the writer's recovery fills it, as it does, after
        with DB(store_path, read_only=read_only) as db:
            counted = db.stats()["corrupt_records"]  # (before any read)
            counts.append((counted, _damaged_reads(db)))
            assert db.stats()["corrupt_records"] == counted
    assert os.path.getsize(path) == size  # (filled)
    assert counts[0] == counts[1] == counts[2], counts
    counted, damaged = counts[0]
    if cut(size) == size - 30:  # (zeros alone lost: the fill gives them back)
        assert counted == damaged == 0 and check(store_path).ok
        return
    assert damaged == (61 if cut(size) <= rec.FILE_HEADER_SIZE else 31), counts
    # (kvb check: the region, and where the file lost its whole header, that header, which the count
    # holds too)
    problems = check(store_path).problems
    assert problems[-1].offset == min(p.offset for p in problems if p.offset >= rec.FILE_HEADER_SIZE)
    assert len(problems) == (2 if cut(size) < 10 else 1), problems
    assert counted == len(problems)


def test_a_reader_open_during_the_fill_counts_the_same(store_path):
    """A read-only handle open while a writer fills the file (a new generation: it reads the files again)."""
    (path,) = _merged(store_path)
    os.truncate(path, os.path.getsize(path) // 3)
    with DB(store_path, read_only=True) as reader:
        assert reader.stats()["corrupt_records"] == 1
        with DB(store_path) as writer:
            assert writer.stats()["corrupt_records"] == 1
        assert _damaged_reads(reader) > 30
        assert reader.stats()["corrupt_records"] == 1  # (its reads of the region's keys add nothing)


def test_replay_counts_the_region_a_fill_of_a_published_file_gives_back(store_path):
    """The file the page names, cut below its published end before a rotation that died: recovery fills
    it up to its published end, and replay reads the zeros as a damaged region (one, before and after)."""
    with DB(store_path) as db:
        for i in range(60):
            db.put(b"k%03d" % i, os.urandom(700))
    major, end = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    os.truncate(os.path.join(store_path, data_name((major, 0))), end // 2)
    for read_only in (True, False, True):
        with DB(store_path, read_only=read_only) as db:
            assert db.stats()["corrupt_records"] == 1
            assert _damaged_reads(db) == 1  # (the key of the record the cut went through)
    assert len(check(store_path).problems) == 1


def test_a_damaged_record_a_read_meets_is_counted_before_and_after_a_merge(store_path):
    """A record of a merged file that fails its checksum: an open does not look at it (the hint file
    points to it), its read raises and counts it, a reload (here: another file filled by a writer, a
    new generation) keeps it counted, and so does a reload after a merge that keeps it, as it is (a
    record of its key where the file lost bytes: one every reader reads as damage), once a read meets it."""
    first, second = _merged(store_path, 30, max_file_size=8192)[:2]
    with open(first, "r+b") as f:
        f.seek(rec.FILE_HEADER_SIZE + 100)  # inside the value of the file's first record
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.truncate(second, os.path.getsize(second) - 300)
    with DB(store_path, read_only=True) as reader:
        zeroed = reader.stats()["corrupt_records"]
        assert zeroed == 1
        with pytest.raises(CorruptionError) as raised:
            reader.get(b"k000")
        assert raised.value.path == first
        assert reader.stats()["corrupt_records"] == zeroed + 1
        with pytest.raises(CorruptionError):
            reader.get(b"k000")  # (counted once)
        assert reader.stats()["corrupt_records"] == zeroed + 1
        generation = reader.stats()["generation"]
        with DB(store_path) as writer:  # fills the second file: a new generation
            assert writer.stats()["generation"] > generation
            assert writer.stats()["corrupt_records"] == zeroed  # (it read nothing)
            writer.put(b"moved", b"on")  # (the tail moves: the reader catches up, and reloads)
        assert reader.stats()["generation"] > generation
        assert reader.stats()["corrupt_records"] == zeroed + 1
        assert _damaged_reads(reader) >= 2 and reader.stats()["corrupt_records"] == zeroed + 1
        damaged = _damaged_reads(reader)
        with DB(store_path) as writer:
            report = writer.merge(wait=True)  # (through the hint files: the damaged records kept)
            assert report.corrupt_kept == damaged
        assert reader.stats()["corrupt_records"] == 0  # (a reload: counted again as reads meet them)
        assert _damaged_reads(reader) == damaged and reader.stats()["corrupt_records"] == damaged
        with pytest.raises(CorruptionError):
            reader.get(b"k000")
        assert reader[b"moved"] == b"on"
    assert len(check(store_path).problems) == damaged
