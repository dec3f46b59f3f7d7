"""A STATE page whose end lies at a record boundary inside a batch of the active file, with nothing after
that end (the rest of the batch, its COMMIT and what followed zeroed, or cut off the file).

No writer publishes such an end; the page is trusted all the same (what follows its end is what a writer
leaves there), and no reader applies the batch, which ends the published part without its COMMIT. But the
writer's recovery kept it there: the next rotation closed the file at that end, and a closed file ending
in a batch without its COMMIT is damage, which kvb check then reported and every merge refused. A writer's
open now cuts the open batch as the unfinished write it is (the page then publishes its start, with a new
generation), so that the closed file is sound and a merge works. And kvb check, which stopped at that batch,
now reads what follows the end as recovery reads it (records it keeps, records after a stop that it cuts).
"""

from __future__ import annotations

import os

import pytest
from test_format_reader11 import read_store
from test_page_inside_batch20 import _store

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import HEADER_SIZE, PUT, encode
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

_WANT = {b"a%d" % i: b"x%d" % i for i in range(5)}
_RECORD = HEADER_SIZE + len(b"b0") + len(b"in batch 0")


def _damaged(path: str, inside: int, how: str) -> tuple[int, int]:
    """The page's end after the ``inside``-th record of the batch, all after it zeroed or cut; returns the
    file's major id and where the batch starts."""
    major, last = _store(path, inside)
    _, end = published_tail(path)
    name = os.path.join(path, data_name((major, 0)))
    if how == "zeroed":
        with open(name, "r+b") as f:
            f.seek(end)
            f.write(bytes(last - end))
    else:
        os.truncate(name, end)
    return major, end - inside * _RECORD


def _view(path: str, read_only: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, read_only=read_only) as db:
        return {k: db.get(k) for k in db}, db.stats()["corrupt_records"]


@pytest.mark.parametrize("how", ["zeroed", "cut"])
@pytest.mark.parametrize("inside", [1, 2])
def test_a_writer_cuts_the_open_batch_so_that_a_merge_works(store_path, inside, how):
    major, start = _damaged(store_path, inside, how)
    assert check(store_path).problems == []
    assert {k: v[0] for k, v in read_store(store_path).items()} == _WANT
    reader = DB(store_path, read_only=True)  # (open while the writer cuts: it reads the files again)
    try:
        assert {k: reader.get(k) for k in reader} == _WANT
        assert _view(store_path, read_only=True) == (_WANT, 0)
        with DB(store_path, max_file_size=4096) as db:
            assert published_tail(store_path) == (major, start)
            assert {k: db.get(k) for k in db} == _WANT
            assert db.stats()["corrupt_records"] == 0
            assert {k: reader.get(k) for k in reader} == _WANT
            db.put(b"big", bytes(5000))  # (the file is closed at the published end)
            assert {k: reader.get(k) for k in reader} == {**_WANT, b"big": bytes(5000)}
            assert reader.stats()["corrupt_records"] == 0
            db.merge(wait=True)  # (refused: a closed file ended in a batch without its COMMIT)
            assert {k: db.get(k) for k in db} == {**_WANT, b"big": bytes(5000)}
        assert check(store_path).problems == []
        assert _view(store_path, read_only=True) == ({**_WANT, b"big": bytes(5000)}, 0)
    finally:
        reader.close()


def _with_after_the_end(path: str, after: bytes) -> tuple[int, int]:
    """The page's end after the batch's second record, and ``after`` written there, zeros after it."""
    major, last = _store(path, 2)
    _, end = published_tail(path)
    with open(os.path.join(path, data_name((major, 0))), "r+b") as f:
        f.seek(end)
        f.write(after.ljust(last - end, b"\0"))
    return major, end


def test_kvb_check_reads_past_the_open_batch_as_recovery_does(store_path):
    """After the end: a record whose CRC does not match, then records that check out (a page that lags
    records written after its end). Recovery cuts them all; kvb check, which stopped at the open batch,
    said nothing of them."""
    damaged = bytearray(encode(PUT, b"d", b"torn?", 0.0))
    damaged[0] ^= 1
    sound = encode(PUT, b"s1", b"after it", 0.0) + encode(PUT, b"s2", b"after it", 0.0)
    _with_after_the_end(store_path, bytes(damaged) + sound)
    report = check(store_path)
    assert len(report.problems) == 1 and "lags records written after its end" in report.problems[0].what
    assert _view(store_path, read_only=False) == (_WANT, 0)  # (recovery cuts them, as kvb check says)
    assert check(store_path).problems == []


def test_kvb_check_counts_the_records_recovery_keeps_after_the_open_batch(store_path, tmp_path):
    _, end = _with_after_the_end(store_path, encode(PUT, b"s1", b"kept", 0.0))
    report = check(store_path)
    assert report.problems == []
    assert salvage(store_path, str(tmp_path / "salvaged")).clean
    assert _view(str(tmp_path / "salvaged"), read_only=True) == ({**_WANT, b"s1": b"kept"}, 0)
    with DB(store_path, read_only=True) as db:
        assert db.get(b"s1") == b"kept"
        records = sum(1 for _ in db)
    assert report.records >= records
    assert _view(store_path, read_only=False) == ({**_WANT, b"s1": b"kept"}, 0)
    assert published_tail(store_path)[1] > end
    assert check(store_path).records == report.records
