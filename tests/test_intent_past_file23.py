"""A STATE page whose tail word a flipped bit moved past the data, into the reserved zeros after the records
of a transaction a killed writer left without its COMMIT, and whose intent word a flipped bit moved far past
the file's end, so that it still vouched for that tail (in the same file, past it).

Read with that page, the zeros were a damaged header in the published part and the open transaction was
applied (rule 3), so every reader returned a value never committed (the power-failure fuzzer, --damage seed
12746). A writer grows its file over a write before it stores its intent, and a power failure takes at most
64 MiB from it, so an intent further past the end of a file that reaches the tail's end is damaged: such a
page is damaged (docs/protocol.md, "The state page"), the store read as without one, and the transaction is
the file's unfinished write.
"""

from __future__ import annotations

import os
import signal

import pytest
from helpers import exit_code, fork_child
from test_format_reader_batch20 import _same, _values
from test_page_end_damaged_batch22 import _view
from test_state_page_damage18 import _set_tail

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import page_intent, published_tail
from kv_backend.unpublished import MAX_LOSS

_WANT = {b"a": b"acknowledged"}


def _store(path: str) -> tuple[int, int, int]:
    """A put, then a transaction of two puts whose writer is killed before its COMMIT. Returns the file's
    major id, the end of the put, and the end of the transaction's records."""
    with DB(path) as db:
        db.put(b"a", b"acknowledged")

    def child() -> None:
        with DB(path) as db, db.transaction():
            db.put(b"t0", b"never committed")
            db.put(b"t1", b"never committed either")
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    major, start = published_tail(path)
    _, end = page_intent(path)
    return major, start, end


@pytest.mark.parametrize("bit", [27, 38])
def test_an_intent_past_the_file_vouches_for_no_tail(store_path, bit):
    major, start, end = _store(store_path)
    size = os.path.getsize(os.path.join(store_path, data_name((major, 0))))
    far = end + 1024  # (in the reserved zeros after the transaction)
    assert far < size and (1 << bit) - size > MAX_LOSS
    _set_tail(store_path, major, far, intent=(major, start | (1 << bit)))
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes), report.notes
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert _values(_same(store_path)) == _WANT
    assert _view(store_path, read_only=True) == (_WANT, 0)
