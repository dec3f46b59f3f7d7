"""A STATE page whose end damage moved back to a record boundary inside a batch of a file that a newer
one follows, where a power failure also cut that file inside the batch's next record (its header whole,
its lengths running past the end of the file).

The engine took the page for a damaged one (what follows its end is no writer's unfinished write: a writer
grows a file before it writes there, so the lengths of its last write point inside the file), and read the
file as closed: the batch's first record applied, the cut record's key damaged, damage reported. The
format reader of the tests took the record cut by the end of the file for a dying writer's, trusted the
page, and read the batch as the file's unfinished write: the cut record's key read as its older value,
no damage. The readers disagreed (the power-failure fuzzer, --damage seed 4511); docs/protocol.md, "The
state page", now says that a torn last write there has its lengths inside the file, as the engine reads it.
"""

from __future__ import annotations

import os
import struct

from test_format_reader11 import DAMAGED
from test_format_reader_batch20 import _same, _values

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import HEADER_SIZE
from kv_backend.state import published_tail

_WANT = {b"a": b"acknowledged", b"b0": b"in batch", b"b1": DAMAGED, b"c": b"x" * 3800}


def _store(path: str) -> None:
    """A put and a batch of two in file 1, a put that rotated to file 2; then the page's end moved back to
    the boundary after the batch's first record (its intent word past it, vouching for it), and file 1 cut
    inside the batch's second record."""
    with DB(path, max_file_size=4096) as db:
        db.put(b"a", b"acknowledged")
        major, before = published_tail(path)
        with db.batch() as b:
            b.put(b"b0", b"in batch")
            b.put(b"b1", b"v" * 300)
        db.put(b"c", b"x" * 3800)
    assert published_tail(path)[0] == major + 1  # (the last put rotated)
    end = before + HEADER_SIZE + len(b"b0") + len(b"in batch")
    with open(os.path.join(path, "STATE"), "r+b") as f:
        for at, word in ((16, end), (32, end + 100)):  # (the tail, then the intent word)
            f.seek(at)
            f.write(struct.pack("=Q", (major << 40) | word))
    os.truncate(os.path.join(path, data_name((major, 0))), end + HEADER_SIZE + 100)


def test_a_record_cut_by_the_end_of_the_file_is_no_dying_writers(store_path):
    _store(store_path)
    assert len(check(store_path).problems) == 1
    assert _values(_same(store_path)) == _WANT
