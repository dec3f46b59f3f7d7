"""A bit flipped in the end of the STATE page's tail word, moving it past a transaction a killed writer left
without its COMMIT into the reserved zeros after it.

The page was trusted (what follows the end is what a writer leaves there, zeros): the transaction's
records were read as published, the zeros before the end as a damaged header, and rule 3 applied the open
batch, so every reader (a writer too) returned values that were never committed, and reported damage. A
page whose intent word does not vouch for its tail is damaged now, wherever it points: the writer stores
its intent before its tail, so a tail past the intent is what no writer leaves. Read as without a page,
the transaction is the active file's unfinished write.
"""

from __future__ import annotations

import os
import struct

import pytest
from test_format_reader11 import read_store
from test_lost_page_open_batch21 import ACKED, killed_transaction, reader_view, view

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


@pytest.mark.parametrize("dead", [None, 16])
def test_a_tail_flipped_past_a_killed_transaction(store_path, tmp_path, dead):
    major, end, txn_end = killed_transaction(store_path)
    flipped = end ^ (1 << (txn_end - 1).bit_length())  # (past the transaction, in the reserved zeros)
    assert txn_end < flipped < os.path.getsize(os.path.join(store_path, data_name((major, 0))))
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", major << 40 | flipped))
    if dead is not None:
        with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
            f.write(rec.FILE_HEADER_BYTES[:dead])
    report = check(store_path)
    assert report.problems == []
    assert any("does not vouch for its tail" in note for note in report.notes)
    assert reader_view(store_path) == (ACKED, 0)
    url = (tmp_path / "backups").as_uri()
    assert backup_store(store_path, url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert view(str(tmp_path / "restored"), read_only=True) == (ACKED, 0)
    assert salvage(store_path, str(tmp_path / "salvaged")).clean
    assert view(str(tmp_path / "salvaged"), read_only=True) == (ACKED, 0)
    assert view(store_path, read_only=True) == (ACKED, 0)
    assert view(store_path, read_only=False) == (ACKED, 0)  # (recovery cuts the transaction)
    assert published_tail(store_path) == ((major, end) if dead is None else (major + 1, rec.FILE_HEADER_SIZE))
    with DB(store_path) as db:
        db.merge(wait=True)
        assert {k: db.get(k) for k in db} == ACKED
    assert check(store_path).problems == []


def test_a_tail_flipped_back_into_zeros_inside_a_value(store_path, tmp_path):
    """A writer killed in its write (its intent past the tail), and a bit flipped in the tail that moves
    its end back into a run of zeros inside an acknowledged value: those zeros passed for reserved space,
    the page was trusted, and recovery cut every acknowledged record after the end. The intent lies past
    the tail, so the file is read to make sure: the end lies inside a record, the page is damaged."""
    value = b"v" + bytes(200) + b"w"
    with DB(store_path) as db:
        db.put(b"zeros", value)
        db.put(b"after", b"acknowledged")
    major, end = published_tail(store_path)
    inside = rec.FILE_HEADER_SIZE + rec.HEADER_SIZE + len(b"zeros") + 64
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", major << 40 | inside))
        f.seek(32)
        f.write(struct.pack("=Q", major << 40 | end + 100))  # (a write in flight)
    want = {b"zeros": value, b"after": b"acknowledged"}
    assert check(store_path).problems == []
    assert {k: v[0] for k, v in read_store(store_path).items()} == want
    assert view(store_path, read_only=True) == (want, 0)
    assert view(store_path, read_only=False) == (want, 0)
    assert published_tail(store_path) == (major, end)
