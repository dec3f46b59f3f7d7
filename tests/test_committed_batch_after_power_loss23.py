"""The active file without a STATE page (a power failure lost it), ending in a batch that committed (its
records fsynced and acknowledged), one record of which bit rot damaged, then what a transaction a writer
died in left after it: a COMMIT with the batch's records was there all along, so that batch is no unfinished
write.

Every reader took the batch for the file's unfinished transaction (records of a batch that check out, bytes
that are no record around them, then reserved zeros) and ended the data before it; a writer's recovery cut
it off the file, silently, with every acknowledged record in it:

- the batch's second record damaged (its type byte), its COMMIT sound, then zeros, then a sector of the next
  transaction's value that the power failure kept (no record): the COMMIT, followed by neither a sound
  record nor zeros to the end of the file, is no confirmed record, so the reading resumed nowhere after the
  damaged record and never saw it, though the damaged record's lengths lead to it;
- the batch's COMMIT damaged (its type byte), then the next transaction's first record, whole, then reserved
  zeros: the damaged COMMIT was taken for bytes that are no record, though its lengths, confirmed by that
  record, make it a damaged record without a key, which is a COMMIT.

Now a COMMIT that checks out, or a damaged record without a key whose lengths are confirmed, reached by
stepping over damaged records by their lengths, means the batch before it committed: the stop is damage,
which every reader reports, and nothing after it is cut.
"""

from __future__ import annotations

import os

from test_format_reader11 import DAMAGED
from test_format_reader_batch20 import _same, _values
from test_page_end_damaged_batch22 import _view

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import COMMIT, FILE_HEADER_BYTES, FLAG_BATCH, PUT, encode, encode_commit
from kv_backend.salvage import salvage

_SIZE = 8192  # the active file's size, reserved zeros after its records
_HEAD = encode(PUT, b"a", b"before")
_BATCH = [encode(PUT, b"g1", b"one", flags=FLAG_BATCH), encode(PUT, b"g2", b"two" * 40, flags=FLAG_BATCH)]


def _damaged(record: bytes) -> bytes:
    """``record`` with its type byte damaged (its CRC no longer matches; its lengths are intact)."""
    return record[:4] + b"\xff" + record[5:]


def _store(path: str, tail: bytes) -> None:
    """A store whose only data file holds ``_HEAD``, then ``tail``, then reserved zeros, and no STATE page
    (lost to a power failure)."""
    with DB(path) as db:
        db.put(b"a", b"replaced by the file below")
    name = os.path.join(path, data_name((1, 0)))
    with open(name, "wb") as f:
        f.write(FILE_HEADER_BYTES + _HEAD + tail)
        f.truncate(_SIZE)
    os.unlink(os.path.join(path, "STATE"))


def _reported_and_kept(path: str, tmp_path, want: dict[bytes, bytes | None]) -> None:
    """Every reader returns ``want`` and reports one damaged record, before recovery and after it; the
    writer's recovery cuts nothing of the batch."""
    assert len(check(path).problems) == 1
    assert not salvage(path, str(tmp_path / "salvaged")).clean
    assert _view(path, read_only=True) == (want, 1)
    assert _values(_same(path)) == want  # (the format reader, then a writer's open: its recovery)
    assert _view(path, read_only=True) == (want, 1)
    assert len(check(path).problems) == 1
    assert os.path.getsize(os.path.join(path, data_name((1, 0)))) >= 16 + len(_HEAD) + sum(map(len, _BATCH))


def test_a_sound_commit_after_a_damaged_record_and_a_kept_sector(store_path, tmp_path):
    kept_sector = b"bytes of the next transaction's value " * 10  # (no record)
    tail = _BATCH[0] + _damaged(_BATCH[1]) + encode_commit(2)
    gap = 1024 - 16 - len(_HEAD) - len(tail)  # (the next sector, lost, reads as zeros)
    assert gap > 0
    _store(store_path, tail + bytes(gap) + kept_sector)
    _reported_and_kept(store_path, tmp_path, {b"a": b"before", b"g1": b"one", b"g2": DAMAGED})


def test_a_damaged_commit_before_the_next_transactions_first_record(store_path, tmp_path):
    commit = _damaged(encode_commit(2))
    assert commit[4] != COMMIT
    next_transaction = encode(PUT, b"h", b"next" + bytes(300), flags=FLAG_BATCH)
    _store(store_path, b"".join(_BATCH) + commit + next_transaction)
    _reported_and_kept(store_path, tmp_path, {b"a": b"before", b"g1": b"one", b"g2": b"two" * 40})
