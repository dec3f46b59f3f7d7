"""A STATE page whose end lies at a record boundary inside a batch, where the record at that end has a
damaged type byte (two independent damages: to the tail word, and to the record).

The record at the end was not taken for a batch's (its type byte is damaged, though its batch flag is
sound), so the page was trusted: recovery read on from the end by the unpublished rules, stopped at the
damaged record, and cut it with the rest of the batch, its COMMIT and every acknowledged record after it
off the file, silently (kvb check alone reported it, and a backup counted a damaged record), while the
format reader takes such a page for a damaged one. Now that record's batch flag decides, as its type
does for a sound record: the page is damaged, read as without one, and the damaged record is damage every
reader reports; nothing after it is cut.

The same shape where the batch never committed (a transaction a killed writer left past the published
end, which the damaged tail word moved inside it): read as without a page, the transaction is the file's
unfinished write, never applied, no damage, and cut by recovery.
"""

from __future__ import annotations

import os
import signal

import pytest
from helpers import exit_code, fork_child
from test_format_reader11 import DAMAGED
from test_format_reader_batch20 import _same, _values
from test_page_inside_batch20 import _WANT, _set_tail
from test_page_inside_batch20 import _store as _batch_store

from kv_backend import DB, CorruptionError
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import HEADER_SIZE
from kv_backend.salvage import salvage
from kv_backend.state import page_intent, published_tail

_RECORD = HEADER_SIZE + len(b"b0") + len(b"in batch 0")


def _damage_type(path: str, major: int, at: int, to: int) -> None:
    with open(os.path.join(path, data_name((major, 0))), "r+b") as f:
        f.seek(at + 4)
        f.write(bytes([to]))


def _view(path: str, read_only: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, read_only=read_only) as db:
        out = {}
        for k in db:
            try:
                out[k] = db.get(k)
            except CorruptionError:
                out[k] = DAMAGED
        return out, db.stats()["corrupt_records"]


@pytest.mark.parametrize("to", [0, 4, 0x81])
@pytest.mark.parametrize("inside", [1, 2])
def test_a_committed_batch_is_damage_and_nothing_is_cut(store_path, tmp_path, inside, to):
    major, last = _batch_store(store_path, inside)
    _, end = published_tail(store_path)
    _damage_type(store_path, major, end, to)
    damaged = b"b%d" % inside
    want = {**_WANT, damaged: DAMAGED}
    assert any("damaged page" in note for note in check(store_path).notes)
    assert len(check(store_path).problems) == 1
    report = salvage(store_path, str(tmp_path / "salvaged"))
    assert not report.clean
    assert _view(str(tmp_path / "salvaged"), read_only=True)[0] == {
        k: v for k, v in want.items() if k != damaged
    }
    assert _view(store_path, read_only=True) == (want, 1)
    assert _values(_same(store_path)) == want  # (the format reader, then a writer's recovery)
    assert _view(store_path, read_only=False) == (want, 1)
    assert os.path.getsize(os.path.join(store_path, data_name((major, 0)))) >= last  # (nothing cut)
    assert len(check(store_path).problems) == 1


def _killed_in_a_transaction(path: str) -> tuple[int, int, int]:
    """Five puts, then a transaction of three puts whose writer is killed before its COMMIT; returns the
    file's major id, the published end (where the transaction starts) and its intent's end."""
    with DB(path) as db:
        for i in range(5):
            db.put(b"a%d" % i, b"x%d" % i)

    def child() -> None:
        with DB(path) as db, db.transaction():
            for i in range(3):
                db.put(b"t%d" % i, b"in batch %d" % i)
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    major, end = published_tail(path)
    intent = page_intent(path)
    assert intent is not None and intent[1] == end + 3 * _RECORD
    return major, end, intent[1]


@pytest.mark.parametrize("to", [0, 4, 0x81])
@pytest.mark.parametrize("inside", [1, 2])
def test_an_uncommitted_transaction_is_an_unfinished_write(store_path, tmp_path, inside, to):
    major, start, _ = _killed_in_a_transaction(store_path)
    _set_tail(store_path, major, start + inside * _RECORD)
    _damage_type(store_path, major, start + inside * _RECORD, to)
    want = {b"a%d" % i: b"x%d" % i for i in range(5)}
    assert check(store_path).problems == []
    assert salvage(store_path, str(tmp_path / "salvaged")).clean
    assert _view(str(tmp_path / "salvaged"), read_only=True) == (want, 0)
    assert _view(store_path, read_only=True) == (want, 0)
    assert _values(_same(store_path)) == want
    assert _view(store_path, read_only=False) == (want, 0)
    assert published_tail(store_path)[1] == start
    with DB(store_path) as db:
        db.merge(wait=True)
        assert {k: db.get(k) for k in db} == want


@pytest.mark.parametrize("to", [0, 4, 0x81])
def test_the_batchs_commit_at_the_end_damaged(store_path, tmp_path, to):
    """The end after the batch's last record, at its COMMIT, whose type byte is damaged: a damaged record
    without a key is a COMMIT (rule 1), so the batch committed after the end, and the page is damaged. The
    batch is applied (the damaged COMMIT applies it) and the damage is reported; nothing is cut."""
    major, last = _batch_store(store_path, 3)
    _, end = published_tail(store_path)
    _damage_type(store_path, major, end, to)
    assert any("damaged page" in note for note in check(store_path).notes)
    assert len(check(store_path).problems) == 1
    assert not salvage(store_path, str(tmp_path / "salvaged")).clean
    assert _view(store_path, read_only=True) == (_WANT, 1)
    assert _values(_same(store_path)) == _WANT
    assert _view(store_path, read_only=False) == (_WANT, 1)
    assert os.path.getsize(os.path.join(store_path, data_name((major, 0)))) >= last
