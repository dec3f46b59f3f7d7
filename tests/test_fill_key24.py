"""A data file that the STATE page names, followed by the file a rotation that died created, and that lost
bytes below its published end, is read as if zeros followed its bytes up to there (a writer's recovery
fills it so). Cut inside a record before the end of its key, the record's key length was still there
and its key was not: every reader took the key from the zeros, and listed a key nobody wrote
(``b"\\x00" * n``, or the key's first bytes followed by zeros), whose reads raised CorruptionError.

A key is now taken from a damaged record only where its bytes lie before the zeros that end the
published data (bytes the file lost, read or filled as zeros, or reserved zeros): such a record is a
damaged header whose key is not known (rules 1 and 3 of docs/file-format.md). The loss is still the
damage every reader reports (``stats()["corrupt_records"]``, ``kvb check``, ``kvb salvage``), a merge
refuses the store while it is there, and a key whose bytes the file holds still reads as damaged.
"""

from __future__ import annotations

import os
import time

import pytest
import test_docs_reader23 as docs_reader
from test_format_reader11 import DAMAGED, read_store

from kv_backend import DB, CorruptionError, Store
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

_KEY = b"key5!"


def _cut_before_dead_rotation(store: str, *, last: bool, cut_in: int) -> None:
    """A store whose page names a file that a rotation that died follows (a next file holding its header),
    the named file cut ``cut_in`` bytes into the record of ``_KEY`` (its last record, or one before
    another), so that the reader supplies zeros from there to the published end."""
    with DB(store) as db:
        db.put(b"a", b"1")
        db.put(_KEY, b"value")
        if not last:
            db.put(b"b", b"2")
    _cut_in_the_key_record(store, cut_in)


def _cut_in_the_key_record(store: str, cut_in: int) -> None:
    """The file the page names cut ``cut_in`` bytes into the record of ``_KEY``, and a next file holding
    a header (a rotation that died) made: the reader supplies zeros from the cut to the published end."""
    major, end = published_tail(store)
    path = os.path.join(store, data_name((major, 0)))
    with open(path, "rb") as f:
        at = f.read().index(_KEY) - rec.HEADER_SIZE
    with open(os.path.join(store, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    os.truncate(path, at + cut_in)
    assert os.path.getsize(path) < end


def _view(store: str, *, read_only: bool) -> tuple[dict[bytes, object], int, int]:
    """Every key the open lists (its value, or "damaged"), how many it counts and the damage it reports."""
    out: dict[bytes, object] = {}
    with DB(store, read_only=read_only) as db:
        listed = list(db.keys())
        for key in listed:
            try:
                out[key] = db.get(key)
            except CorruptionError:
                out[key] = "damaged"
        assert len(db) == len(out) == len(list(db)) == len(db.unordered_keys())
        return out, db.count(), db.stats()["corrupt_records"]


# (offsets inside the record of _KEY: its header is 22 bytes, the key 5, the value 5)
_BEFORE_THE_KEY = [7, 10, 14, 21, 22]
_INSIDE_THE_KEY = [24, 26]


@pytest.mark.parametrize("last", [True, False], ids=["last", "middle"])
@pytest.mark.parametrize("cut_in", _BEFORE_THE_KEY + _INSIDE_THE_KEY)
def test_no_key_is_taken_from_the_zeros_that_stand_in_for_lost_bytes(store_path, tmp_path, last, cut_in):
    _cut_before_dead_rotation(store_path, last=last, cut_in=cut_in)
    problems = check(store_path).problems
    assert problems and all(p.key in (None, _KEY) for p in problems), problems
    fmt_regions: list = []
    assert read_store(store_path, regions=fmt_regions) == {b"a": (b"1", 0.0)} and fmt_regions
    by_docs = docs_reader.read_store(store_path, time.time())
    assert (by_docs.live, by_docs.damaged) == ({b"a": (b"1", 0.0)}, set()) and by_docs.regions
    salvaged = salvage(store_path, str(tmp_path / "salvaged"))
    assert not salvaged.clean and salvaged.damaged_keys == [] and salvaged.regions
    # A read-only open reads it as filled; a writer's recovery fills it; a read-only open after that.
    for read_only in (True, False, True):
        view, count, corrupt = _view(store_path, read_only=read_only)
        assert view == {b"a": b"1"} and count == 1, (read_only, view)
        assert corrupt >= 1
    with Store(store_path, key_type=bytes, read_only=True) as store:
        assert list(store) == list(store.keys()) == [b"a"] and len(store) == 1
    assert check(store_path).problems
    with DB(store_path) as db, pytest.raises(CorruptionError, match="damaged record header"):
        db.merge(wait=True)  # (merging would delete the loss, which every reader reports)


@pytest.mark.parametrize("last", [True, False], ids=["last", "middle"])
def test_a_key_the_file_holds_still_reads_as_damaged(store_path, tmp_path, last):
    # Cut inside the value: the key's bytes are the file's own, and reading it must raise.
    _cut_before_dead_rotation(store_path, last=last, cut_in=rec.HEADER_SIZE + len(_KEY) + 2)
    assert read_store(store_path) == {b"a": (b"1", 0.0), _KEY: DAMAGED}
    by_docs = docs_reader.read_store(store_path, time.time())
    assert (by_docs.live, by_docs.damaged) == ({b"a": (b"1", 0.0)}, {_KEY})
    assert any(p.key == _KEY for p in check(store_path).problems) or last is False
    assert salvage(store_path, str(tmp_path / "salvaged")).damaged_keys == [_KEY]
    for read_only in (True, False, True):
        view, count, corrupt = _view(store_path, read_only=read_only)
        assert view == {b"a": b"1", _KEY: "damaged"} and count == 2 and corrupt >= 1


def test_a_key_of_zero_bytes_that_was_written_is_kept(store_path):
    # A key of zero bytes is a key like any other where the file holds it (and its record checks out).
    zeros = bytes(5)
    with DB(store_path) as db:
        db.put(zeros, bytes(8))
        db.put(b"b", b"2")
    with DB(store_path) as db:
        assert sorted(db.keys()) == [zeros, b"b"] and db.get(zeros) == bytes(8)
        assert db.stats()["corrupt_records"] == 0
    assert not check(store_path).problems


@pytest.mark.parametrize("cut_in", [10, 14, 22, 24])
def test_a_batch_cut_inside_its_last_record_committed(store_path, tmp_path, cut_in):
    # Published whole up to its end, the file held the batch's COMMIT: the batch committed, whether the
    # cut left its last record's key length (before, that record read as a record of the zeros' key
    # without its COMMIT: the batch was dropped) or not (a damaged header: the batch applied).
    with DB(store_path) as db, db.batch() as b:
        b.put(b"x", b"1")
        b.put(_KEY, b"value")
    _cut_in_the_key_record(store_path, cut_in)
    assert read_store(store_path) == {b"x": (b"1", 0.0)}
    by_docs = docs_reader.read_store(store_path, time.time())
    assert (by_docs.live, by_docs.damaged) == ({b"x": (b"1", 0.0)}, set()) and by_docs.regions
    assert check(store_path).problems
    salvaged = salvage(store_path, str(tmp_path / "salvaged"))
    assert salvaged.regions and not salvaged.damaged_keys
    with DB(str(tmp_path / "salvaged"), read_only=True) as db:
        assert dict(db.items()) == {b"x": b"1"}
    for read_only in (True, False, True):
        view, _, corrupt = _view(store_path, read_only=read_only)
        assert view == {b"x": b"1"} and corrupt >= 1


def test_a_written_key_ending_in_zeros_before_the_end_zeros_is_not_taken(store_path, tmp_path):
    # The one record the rule misreads (docs/protocol.md, "What is not promised"): damage to the last
    # published record, whose key ends in a zero byte and whose value is empty. Its key reads as its
    # previous value, but the damage is reported, and a merge refuses the store.
    key = b"k\x00"
    with DB(store_path) as db:
        db.put(key, b"old")
        db.put(key, b"")
    major, end = published_tail(store_path)
    path = os.path.join(store_path, data_name((major, 0)))
    with open(path, "r+b") as f:
        f.seek(end - rec.HEADER_SIZE - len(key) + 4)
        f.write(b"\x04")  # (its type byte: no type the format knows)
    for read_only in (True, False):
        view, _, corrupt = _view(store_path, read_only=read_only)
        assert view == {key: b"old"} and corrupt == 1
    assert read_store(store_path) == {key: (b"old", 0.0)}
    assert check(store_path).problems
    assert not salvage(store_path, str(tmp_path / "salvaged")).clean
    with DB(store_path) as db, pytest.raises(CorruptionError, match="damaged record header"):
        db.merge(wait=True)
