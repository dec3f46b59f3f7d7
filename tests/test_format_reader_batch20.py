"""The independent format reader of test_format_reader11 against DB on the shapes of the batch20 tests.

The reader did not know that a STATE page whose published end lies at a record boundary inside a batch
that committed after it is damaged (docs/protocol.md, "The state page"): it trusted such a page and read
on from its end by the unpublished rules, so the batch's COMMIT, counting records before the end, stopped
the reading and the batch and every acknowledged record after it were missing from what it read, where DB
(every reader and a writer's recovery) reads the store as without a page and keeps them. The shapes are
those of tests/test_page_inside_batch20.py, tests/test_readonly_closing_batch20.py and
tests/test_readonly_rotated_dead20.py; the reader also counts the damaged regions it reads, compared with
stats()["corrupt_records"] of a read-only and of a writer's open.
"""

from __future__ import annotations

import os
import shutil

import pytest
from test_format_reader11 import (
    DAMAGED,
    _page_inside_a_batch,
    _state_words,
    assert_same,
    data_files,
    patch,
    read_store,
    records,
)
from test_page_inside_batch20 import _WANT as _BATCH_WANT
from test_page_inside_batch20 import _set_tail
from test_page_inside_batch20 import _store as _batch_store
from test_readonly_closing_batch20 import _store as _closing_store
from test_readonly_rotated_dead20 import _WANT as _ROTATED_WANT
from test_readonly_rotated_dead20 import _store as _rotated_store

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import published_tail


def _same(path: str) -> dict:
    """The reader and DB (read-only, then a writer) see the same store and count the same damage; the
    reader reads the store the writer's recovery left the same."""
    regions: list = []
    mine = read_store(path, regions=regions)
    counts = []
    for read_only in (True, False):
        with DB(path, read_only=read_only) as db:
            counts.append(db.stats()["corrupt_records"])
    assert counts == [len(regions), len(regions)]
    assert assert_same(path) == mine
    assert read_store(path) == mine
    return mine


def _values(view: dict) -> dict:
    return {k: v if v == DAMAGED else v[0] for k, v in view.items()}


@pytest.mark.parametrize("inside", [0, 1, 2, 3])
def test_an_end_inside_a_batch(store_path, inside):
    _batch_store(store_path, inside)
    assert _values(_same(store_path)) == _BATCH_WANT


def test_an_end_inside_a_batch_before_a_rotation_that_died(store_path):
    major, _ = _batch_store(store_path, 2)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    assert _values(_same(store_path)) == _BATCH_WANT


@pytest.mark.parametrize("where", ["before the end", "at the end"])
def test_an_end_inside_a_batch_with_a_damaged_record(store_path, where):
    """The batch's record before the end with its last bytes zeroed (its lengths confirmed by the sound
    record after it), or the one at the end with a flipped bit in its CRC."""
    major, _ = _batch_store(store_path, 2)
    _, end = published_tail(store_path)
    name = os.path.join(store_path, data_name((major, 0)))
    if where == "before the end":
        patch(name, end - 5, bytes(5))
    else:
        with open(name, "rb") as f:
            first = f.read()[end]
        patch(name, end, bytes([first ^ 1]))
    damaged = b"b1" if where == "before the end" else b"b2"
    want = {**_BATCH_WANT, damaged: DAMAGED}
    assert _values(_same(store_path)) == want


@pytest.mark.parametrize("cut", [False, True])
def test_an_end_inside_a_batch_before_a_newest_file_shorter_than_a_header(store_path, cut):
    """With a transaction killed before its COMMIT at the end of the file the page names, before its
    reserved zeros (or the file cut right after it): read as without a page, that file is the one the
    rotation that died did not close. Before the zeros, the transaction is its unfinished write (recovery
    cuts it with them), never applied and no damage; cut, the file was closed whole, and the open batch at
    its end is damage, never applied either."""
    major, last = _batch_store(store_path, 2)
    txn = b"".join(rec.encode(rec.PUT, b"t%d" % i, b"uncommitted", 0.0, rec.FLAG_BATCH) for i in range(2))
    name = os.path.join(store_path, data_name((major, 0)))
    patch(name, last, txn)
    if cut:
        os.truncate(name, last + len(txn))
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb"):
        pass
    regions: list = []
    read_store(store_path, regions=regions)
    assert len(regions) == (1 if cut else 0)
    assert _values(_same(store_path)) == _BATCH_WANT


def test_an_open_batch_at_the_end_of_the_file_before_a_rotation_that_died(store_path):
    """No page, a newest file of its header alone, and the file before it ending in a batch that lost its
    COMMIT (closed_whole): one damaged region, not an unfinished write."""
    _closing_store(store_path)
    assert _values(_same(store_path)) == {b"a%d" % i: b"x%d" % i for i in range(5)}


@pytest.mark.parametrize("header", [0, 8, 16])
def test_records_past_a_lagging_page_before_a_rotation_that_died(store_path, header):
    _rotated_store(store_path, header)
    assert _values(_same(store_path)) == _ROTATED_WANT


@pytest.mark.parametrize("inside", [0, 2])
def test_an_end_inside_a_batch_after_a_damaged_header(store_path, inside):
    """A damaged header (a key length above 65536) before the end stops the reading from the file's header:
    the COMMIT after the end, counting more records than follow it, decides alone (at the boundary before
    the batch, it counts what follows: the page is sound)."""
    major, _ = _batch_store(store_path, inside)
    patch(os.path.join(store_path, data_name((major, 0))), rec.FILE_HEADER_SIZE + 6, b"\xff\xff\xff\x7f")
    view = _values(_same(store_path))
    assert view == {k: v for k, v in _BATCH_WANT.items() if k != b"a0"}  # (its key length lost)


@pytest.mark.parametrize("inside", [1, 2])
@pytest.mark.parametrize(
    "how", ["as left", "commit overwritten", "commit overwritten, last zeroed", "commit damaged"]
)
def test_the_reader_judges_the_page_as_kvb_check_does(store_path, inside, how):
    """What a writer that died at the end leaves is what the unpublished rules read from there up to a stop
    that can be an unfinished last write: the batch's COMMIT overwritten by a record without the flag (the
    batch then never committed), the page is sound, even with an acknowledged record after it."""
    major, _ = _batch_store(store_path, inside)
    name = os.path.join(store_path, data_name((major, 0)))
    recs = records(name)
    commit = [r for r in recs if r[1] == rec.COMMIT][-1]
    if how.startswith("commit overwritten"):
        patch(name, commit[0], rec.encode(rec.PUT, b"z", b"abc", 0.0, 0))  # (as long as the COMMIT)
    if how.endswith("last zeroed") or how == "commit damaged":
        patch(name, recs[-1][0], bytes(rec.HEADER_SIZE + recs[-1][4] + recs[-1][5]))
    if how == "commit damaged":
        patch(name, commit[0] + rec.HEADER_SIZE, b"\xff")
    ids = sorted((int(n[:10]), int(n[11:14])) for n in map(os.path.basename, data_files(store_path)))
    words = _state_words(store_path)
    assert words is not None
    damaged = _page_inside_a_batch(store_path, ids, words[0])
    assert damaged == any("inside a batch" in note for note in check(store_path).notes)
    assert damaged == (how == "as left")
    _same(store_path)


@pytest.mark.parametrize("dead", [None, 16])
def test_every_end_around_a_batch_and_a_transaction(store_path, tmp_path, dead):
    """The page's end at each record boundary of a file holding a batch and a transaction, with no damage, a
    bit flipped in the last byte of a batch's record or of the transaction's COMMIT (and, ``dead``, a
    rotation that died after that file): the reader and DB read and report the same."""
    with DB(store_path) as db:
        for i in range(3):
            db.put(b"a%d" % i, b"x%d" % i)
        with db.batch() as b:
            for i in range(3):
                b.put(b"b%d" % i, b"y%d" % i)
        db.put(b"m", b"mid")
        with db.transaction():
            db.put(b"t0", b"z")
            db.delete(b"a1")
        db.put(b"after", b"ack")
    major, last = published_tail(store_path)
    recs = records(data_files(store_path)[-1])
    damages = [None, recs[4], recs[-2]]  # (b1, the transaction's COMMIT)
    assert damages[1][3] == b"b1" and damages[2][1] == rec.COMMIT
    for n, (damage, r) in enumerate((d, r) for d in damages for r in [*recs[3:], None]):
        path = str(tmp_path / str(n))
        shutil.copytree(store_path, path)
        name = data_files(path)[-1]
        if damage is not None:
            at = damage[0] + rec.HEADER_SIZE + damage[4] + damage[5] - 1
            with open(name, "rb") as f:
                patch(name, at, bytes([f.read()[at] ^ 1]))
        _set_tail(path, major, last if r is None else r[0])
        if dead is not None:
            with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
                f.write(rec.FILE_HEADER_BYTES[:dead])
        _same(path)
