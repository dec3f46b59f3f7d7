"""A STATE page whose tail word a flipped bit moved forward, from the end of the data into a record of the
transaction a killed writer left after it without its COMMIT, a record a power failure then damaged (the
sectors after the end lost): the intent word, where the writer's records end, vouches for that tail.

The end lay inside no sound record (that record is damaged) and at no record boundary, so the page was
trusted: read by the rules of the published part, that record ran past the published end, a damaged header,
and the batch being read was applied (rule 3: its COMMIT was published with it), so every reader returned
the transaction's first value, never committed (the power-failure fuzzer, --damage seed 2084). No writer
publishes an end inside a record, nor inside a batch; now such a page is damaged where the end lies inside
a record of a batch still open there, its lengths sound and inside the file, with no sound record between
its start and the end (where the batch's COMMIT would be had it been published): the store is read as
without a page, and the transaction is the file's unfinished write, never applied, cut by recovery.
"""

from __future__ import annotations

import os
import signal

from helpers import exit_code, fork_child
from test_format_reader_batch20 import _same, _values
from test_page_end_damaged_batch22 import _view
from test_page_inside_batch20 import _set_tail

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import HEADER_SIZE
from kv_backend.state import page_intent, published_tail

_WANT = {b"a": b"acknowledged"}
_VALUE = b"1.41;" * 400  # (a value of text, holding no record)


def _store(path: str) -> tuple[int, int]:
    """A put, then a transaction of two puts whose writer is killed before its COMMIT; the second record's
    bytes from 1024 on lost (zeros), and the tail moved to 18 bytes before them, inside that record.
    Returns the file's major id and the end of the acknowledged put."""
    with DB(path) as db:
        db.put(b"a", b"acknowledged")

    def child() -> None:
        with DB(path) as db, db.transaction():
            db.put(b"t0", b"never committed")
            db.put(b"t1", _VALUE)
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    major, start = published_tail(path)
    second = start + HEADER_SIZE + 2 + len(b"never committed")
    assert page_intent(path) == (major, second + HEADER_SIZE + 2 + len(_VALUE))  # (the writer's intent)
    with open(os.path.join(path, data_name((major, 0))), "r+b") as f:
        f.seek(second + 1024)
        f.write(bytes(len(_VALUE) - 1024))
    _set_tail(path, major, second + 1024 - 18)
    return major, start


def test_an_end_inside_an_open_batchs_damaged_record(store_path, tmp_path):
    major, start = _store(store_path)
    assert check(store_path).problems == []
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _values(_same(store_path)) == _WANT
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert os.path.getsize(os.path.join(store_path, data_name((major, 0)))) == start  # (recovery cut it)
    assert published_tail(store_path) == (major, start)
