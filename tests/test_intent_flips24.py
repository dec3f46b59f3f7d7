"""A STATE page whose tail word a flipped bit moved past the records of a transaction a killed writer left
without its COMMIT, into the reserved zeros after them, and whose intent word a flipped bit left at or past
that tail, in the same file: it vouched for that tail (the power-failure fuzzer's --damage seed 12746, where
the intent's bit was a high one; any bit of the intent's end from the tail's on does it).

Read with that page, the zeros were a damaged header in the published part and the open transaction was
applied (rule 3 of docs/file-format.md), so every reader returned values never committed. A writer
publishes a batch with its COMMIT, so a published end that only zeros separate from a batch still open
(reading the file from its header by the rules of the published part) is no end a writer left, unless a
power failure lost that COMMIT, in a write that had not returned: such a page is damaged where its intent
word lies past the tail (docs/protocol.md, "The state page"), the store read as without one, and the
transaction is the file's unfinished write.
"""

from __future__ import annotations

import os

import pytest
from test_format_reader_batch20 import _same, _values
from test_intent_past_file23 import _WANT, _store
from test_page_end_damaged_batch22 import _view
from test_state_page_damage18 import _set_tail

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import published_tail


@pytest.mark.parametrize("past", [8, 1024, 1 << 20])
@pytest.mark.parametrize("into", [1, 200])
def test_an_intent_at_or_past_a_tail_moved_past_an_open_transaction_is_damaged(store_path, past, into):
    major, _, end = _store(store_path)
    size = os.path.getsize(os.path.join(store_path, data_name((major, 0))))
    far = end + into  # (in the reserved zeros after the transaction's records)
    assert far < size  # (the intent inside the file, or past it by less than a power failure takes)
    _set_tail(store_path, major, far, intent=(major, far + past))
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes), report.notes
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _values(_same(store_path)) == _WANT
    assert _view(store_path, read_only=False) == (_WANT, 0)
    assert check(store_path).ok


def test_a_batch_whose_commit_a_power_failure_lost_is_the_unfinished_write(store_path):
    """A batch published whole, then its COMMIT's bytes lost (zeros) while the page that published it was
    kept, its intent past it (the next write in flight): that batch had not returned (an fsync would have
    kept the COMMIT). Read as without the page, it is the file's unfinished write; the records before it
    are all kept."""
    with DB(store_path) as db:
        db.put(b"a", b"acknowledged")
        with db.batch() as b:
            b.put(b"t0", b"in flight")
            b.put(b"t1", b"in flight too")
    major, end = published_tail(store_path)
    path = os.path.join(store_path, data_name((major, 0)))
    with open(path, "r+b") as f:
        f.seek(end - 26)  # (the COMMIT: 22 bytes of header, a 4-byte count)
        f.write(bytes(26))
    _set_tail(store_path, major, end, intent=(major, end + 100))
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _values(_same(store_path)) == _WANT
    assert _view(store_path, read_only=False) == (_WANT, 0)
    assert check(store_path).ok
