"""A STATE page whose tail word damage left at a record boundary inside a batch that committed after it.

No writer publishes such an end (a batch is published with its COMMIT), and a writer's recovery read on
from it by the unpublished rules: the batch's COMMIT, counting records before the end, stopped the reading,
and recovery cut the batch and every acknowledged record after it off the file, silently (kvb check
reported nothing), after which every merge refused the store (a closed file ending inside a batch). Such a
page is damaged now, read as without one by every reader: nothing is cut.
"""

from __future__ import annotations

import os
import struct

import pytest

from kv_backend import DB
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import FILE_HEADER_BYTES, HEADER_SIZE
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


def _set_tail(path: str, major: int, end: int) -> None:
    with open(os.path.join(path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", (major << 40) | end))


_WANT = {
    **{b"a%d" % i: b"x%d" % i for i in range(5)},
    **{b"b%d" % i: b"in batch %d" % i for i in range(3)},
    b"after": b"acknowledged",
}


def _store(path: str, inside: int) -> tuple[int, int]:
    """Five puts, a batch of three, a put; the tail then moved back to the boundary after the batch's
    ``inside``-th record (0: before the batch). Returns the active file's major id and its real end."""
    with DB(path) as db:
        for i in range(5):
            db.put(b"a%d" % i, b"x%d" % i)
        major, before = published_tail(path)
        with db.batch() as b:
            for i in range(3):
                b.put(b"b%d" % i, b"in batch %d" % i)
        db.put(b"after", b"acknowledged")
        _, last = published_tail(path)
    record = HEADER_SIZE + len(b"b0") + len(b"in batch 0")
    _set_tail(path, major, before + inside * record)
    return major, last


def _view(path: str, **kw: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, **kw) as db:
        return {k: db.get(k) for k in db}, db.stats()["corrupt_records"]


@pytest.mark.parametrize("inside", [1, 2, 3])
def test_an_end_inside_a_batch_cuts_nothing(store_path, tmp_path, inside):
    major, last = _store(store_path, inside)
    report = check(store_path)
    assert report.problems == []
    assert any("inside a batch" in note for note in report.notes)
    assert _view(store_path, read_only=True) == (_WANT, 0)
    url = (tmp_path / "backups").as_uri()
    assert backup_store(store_path, url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert _view(str(tmp_path / "restored"), read_only=True) == (_WANT, 0)
    sv = salvage(store_path, str(tmp_path / "salvaged"))
    assert sv.clean
    assert _view(str(tmp_path / "salvaged"), read_only=True) == (_WANT, 0)
    assert _view(store_path) == (_WANT, 0)  # the writer's recovery
    assert published_tail(store_path) == (major, last)
    with DB(store_path) as db:
        db.merge(wait=True)  # (refused when the file ended inside the batch)
        assert {k: db.get(k) for k in db} == _WANT
    assert check(store_path).problems == []


def test_in_the_file_before_a_rotation_that_died(store_path, tmp_path):
    """The page names the file before the next one a rotation that died created: recovery closes it
    from the published end on, and cut the batch there too."""
    major, _ = _store(store_path, 2)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(FILE_HEADER_BYTES)
    assert check(store_path).problems == []
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _view(store_path) == (_WANT, 0)
    with DB(store_path) as db:
        db.merge(wait=True)
        assert {k: db.get(k) for k in db} == _WANT


def test_an_end_before_the_batch_is_trusted(store_path):
    """At the boundary before the batch (what a page that lags leaves), the page is sound: the batch and
    the put after it follow the end whole, and recovery keeps them."""
    major, last = _store(store_path, 0)
    assert not any("damaged page" in note for note in check(store_path).notes)
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _view(store_path) == (_WANT, 0)
    assert published_tail(store_path) == (major, last)


def test_with_a_damaged_record_before_the_end(store_path):
    """The batch's record right before the end damaged too (its last bytes zeroed: its lengths are sound,
    and the sound record after it confirms them): the page is damaged all the same, and only that key
    reads as damaged."""
    from kv_backend import CorruptionError

    _store(store_path, 2)
    record = HEADER_SIZE + len(b"b1") + len(b"in batch 1")
    major, end = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major, 0))), "r+b") as f:
        f.seek(end - 5)
        f.write(bytes(5))
    assert end - record > 0
    want = {k: v for k, v in _WANT.items() if k != b"b1"}
    for read_only in (True, False):
        with DB(store_path, read_only=read_only) as db:
            with pytest.raises(CorruptionError):
                db.get(b"b1")
            assert {k: db.get(k) for k in db if k != b"b1"} == want
            assert db.stats()["corrupt_records"] == 1


def test_with_a_rotation_that_died_before_the_next_files_header(store_path):
    """A newest file shorter than a header after the file the damaged page names, and a transaction
    killed before its COMMIT at that file's end: a writer's recovery took the page's word that the file
    it names is the active one (removing the short file, and cutting the transaction as an unfinished
    write), while every reader, reading the store as without a page, read that file as a rotation that
    died left it (closed whole: the transaction's records are no single torn write). Recovery now judges
    the page before it removes anything, and reads the store as every reader does."""
    from kv_backend import record as rec

    major, last = _store(store_path, 2)
    path = os.path.join(store_path, data_name((major, 0)))
    txn = b"".join(rec.encode(rec.PUT, b"t%d" % i, b"uncommitted", 0.0, rec.FLAG_BATCH) for i in range(2))
    with open(path, "r+b") as f:
        f.seek(last)
        f.write(txn)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb"):
        pass
    with DB(store_path, read_only=True) as ro:
        seen = {k: ro.get(k) for k in ro}, ro.stats()["corrupt_records"]
    assert {k: v for k, v in seen[0].items() if k in _WANT} == _WANT
    assert _view(store_path) == seen
    assert _view(store_path, read_only=True) == seen


def test_with_the_record_at_the_end_damaged(store_path, tmp_path):
    """The batch's record at the damaged end has a flipped bit too (its CRC): read from the end, it stops
    the reading before the COMMIT could show anything, and recovery cut it, the rest of the batch and every
    acknowledged record after it, leaving the file's published part ending in an open batch (which no
    merge got past). The records before the end already show the batch open there: the page is damaged."""
    from kv_backend import CorruptionError

    major, _ = _store(store_path, 2)
    _, end = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major, 0))), "r+b") as f:
        f.seek(end)
        crc = f.read(1)
        f.seek(end)
        f.write(bytes([crc[0] ^ 1]))
    want = {k: v for k, v in _WANT.items() if k != b"b2"}
    for read_only in (True, False, True):
        with DB(store_path, read_only=read_only) as db:
            with pytest.raises(CorruptionError):
                db.get(b"b2")
            assert {k: db.get(k) for k in db if k != b"b2"} == want
            assert db.stats()["corrupt_records"] == 1
    assert len(check(store_path).problems) == 1
    with DB(store_path) as db:
        db.merge(wait=True)  # (the damaged record is skipped; its key reads as absent after it)
        assert {k: db.get(k) for k in db if k != b"b2"} == want
