"""A STATE page that names the file before a dead rotation's new file (its header alone), whose published
part ends in a batch without its COMMIT with nothing kept past that end (damage moved the tail word back
inside the batch, and the file lost the rest).

Every reader counted that batch as one damaged region, and the writer's recovery closed the file with it,
so that every merge refused the store until kvb salvage. It is the unfinished write it is at the end of
the active file (tests/test_page_end_open_batch21.py): recovery publishes the batch's start, then closes
the file there; no reader applies the batch or counts it as damage, before or after, and a merge works.
"""

from __future__ import annotations

import os

import pytest
from puts_and_batch22 import puts_and_a_batch
from test_format_reader11 import read_store
from test_format_reader_batch20 import _same, _values
from test_page_inside_batch20 import _set_tail

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

_WANT = {b"a%d" % i: b"x%d" % i for i in range(5)}
_RECORD = rec.HEADER_SIZE + len(b"b0") + len(b"in batch 0")
_TORN = rec.encode(rec.PUT, b"c0", b"unfinished")[:-4] + bytes(4)


def _store(path: str, inside: int, after: bytes = b"") -> tuple[int, int, int]:
    """Five puts and a batch of two; the page's end moved after the ``inside``-th record of the batch, the
    file cut there, ``after`` written past it, and the next file created holding its header alone. Returns
    the file's major id, where the batch starts and the page's end."""
    major, end = puts_and_a_batch(path)
    start = end - rec.HEADER_SIZE - 4 - 2 * _RECORD
    end = start + inside * _RECORD
    name = os.path.join(path, data_name((major, 0)))
    os.truncate(name, end)
    with open(name, "ab") as f:
        f.write(after)
    _set_tail(path, major, end)
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    return major, start, end


def _no_damage_anywhere(path: str, tmp_path) -> None:
    """Every reader that does not recover reads the store's values and no damage."""
    regions: list = []
    assert {k: v[0] for k, v in read_store(path, regions=regions).items()} == _WANT
    assert regions == []
    with DB(path, read_only=True) as db:
        assert {k: db.get(k) for k in db} == _WANT
        assert db.stats()["corrupt_records"] == 0
    report = check(path)
    assert report.problems == []
    assert len(report.notes) == 1  # (the batch, an unfinished write cut on next open)
    backup = backup_store(path, (tmp_path / "backups").as_uri())
    assert backup.damaged_records == 0
    restore((tmp_path / "backups").as_uri(), str(tmp_path / "restored"))
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert {k: db.get(k) for k in db} == _WANT
    salvaged = salvage(path, str(tmp_path / "salvaged"))
    assert salvaged.regions == [] and salvaged.records_skipped == 0
    with DB(str(tmp_path / "salvaged"), read_only=True) as db:
        assert {k: db.get(k) for k in db} == _WANT


def _recovered(path: str, major: int, start: int, reader: DB) -> None:
    """A writer's recovery closes the file at the batch's start; a merge then works, and the reader opened
    before it reads the files again."""
    with DB(path) as db:
        assert published_tail(path) == (major + 1, rec.FILE_HEADER_SIZE)
        assert os.path.getsize(os.path.join(path, data_name((major, 0)))) == start
        assert {k: db.get(k) for k in db} == _WANT
        assert db.stats()["corrupt_records"] == 0
        db.put(b"c0", b"after")
        db.merge(wait=True)  # (refused: the closed file ended in a batch without its COMMIT)
        assert {k: db.get(k) for k in db} == {**_WANT, b"c0": b"after"}
        assert all(fid[1] != 0 or fid[0] > major for fid in list_data_files(path))
    assert {k: reader.get(k) for k in reader} == {**_WANT, b"c0": b"after"}
    assert reader.stats()["corrupt_records"] == 0
    assert check(path).problems == []


@pytest.mark.parametrize("after", [b"", bytes(100), _TORN + bytes(100)], ids=["cut", "zeros", "torn"])
@pytest.mark.parametrize("inside", [1, 2])
def test_recovery_cuts_the_open_batch_and_a_merge_works(store_path, tmp_path, inside, after):
    major, start, _ = _store(store_path, inside, after)
    _no_damage_anywhere(store_path, tmp_path)
    reader = DB(store_path, read_only=True)
    try:
        _recovered(store_path, major, start, reader)
    finally:
        reader.close()


def test_a_writer_killed_between_publishing_the_batch_start_and_the_cut(store_path, tmp_path):
    """Recovery publishes the batch's start before it cuts the file there: a writer killed in between leaves
    the batch past the published end, an unfinished write as well, which every reader reads so."""
    major, start, _ = _store(store_path, 2, bytes(64))
    _set_tail(store_path, major, start)
    _no_damage_anywhere(store_path, tmp_path)
    reader = DB(store_path, read_only=True)
    try:
        _recovered(store_path, major, start, reader)
    finally:
        reader.close()


def test_the_format_reader_agrees(store_path):
    _store(store_path, 1, _TORN)
    assert _values(_same(store_path)) == _WANT


def test_a_record_kept_past_the_end_is_kept_and_the_batch_left_to_it(store_path):
    """A record past the published end that recovery keeps (a killed writer's, published once the page
    lost its end): the batch before it is interrupted, ignored as the format has it, and nothing is cut."""
    major, start, end = _store(store_path, 2, rec.encode(rec.PUT, b"c0", b"kept"))
    assert _values(_same(store_path)) == {**_WANT, b"c0": b"kept"}
    assert os.path.getsize(os.path.join(store_path, data_name((major, 0)))) > end > start
    assert check(store_path).problems == []


def test_damage_before_the_batch_is_still_reported(store_path, tmp_path):
    """A damaged header in the published part before the batch (read on at the next sound record): the batch
    is still found and cut, and the damage is reported before and after, the same by every reader."""
    major, start, _ = _store(store_path, 2, bytes(64))
    name = os.path.join(store_path, data_name((major, 0)))
    with open(name, "r+b") as f:
        f.seek(rec.FILE_HEADER_SIZE + 5)
        f.write(b"\xff\xff\xff\xff")  # (the first record's key length: far above the limit)
    assert len(check(store_path).problems) == 1
    mine = _same(store_path)  # (the writer's recovery in it)
    assert {k: v for k, v in _values(mine).items() if k != b"a0"} == {
        k: v for k, v in _WANT.items() if k != b"a0"
    }
    assert os.path.getsize(name) == start
    assert len(check(store_path).problems) == 1


def test_a_damaged_record_after_the_end_with_sound_records_after_it_is_not_cut(store_path):
    """What follows the end is no dead writer's (the batch's next record damaged, its COMMIT and acknowledged
    records after it): the batch may be one acknowledged with its COMMIT, so it is left as damage that every
    reader reports, before recovery and after it (recovery still cuts what follows the end)."""
    with DB(store_path) as db:
        for i in range(3):
            db.put(b"a%d" % i, b"x%d" % i)
        major, start = published_tail(store_path)
        with db.batch() as b:
            b.put(b"b0", b"in batch 0")
            b.put(b"b1", b"in batch 1")
        db.put(b"c0", b"y0")
    end = start + _RECORD
    name = os.path.join(store_path, data_name((major, 0)))
    with open(name, "r+b") as f:
        f.seek(end + 5)  # (the flags byte of the batch's second record)
        f.write(b"\0")
    _set_tail(store_path, major, end)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    assert [p.offset for p in check(store_path).problems] == [start, end]
    assert _values(_same(store_path)) == {b"a%d" % i: b"x%d" % i for i in range(3)}
    assert os.path.getsize(name) == end
    assert [p.offset for p in check(store_path).problems] == [start]
