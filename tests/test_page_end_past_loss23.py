"""A STATE page naming a file that newer files follow, with a published end far past that file's end, and
an intent word that vouches for that tail: a bit flipped in each word (two power failures), or one flipped
in the tail while the intent names the header's end of the next file (a rotation between its two stores).

Every reader took the file for one that lost bytes, read as zeros up to its published end (2^38 bytes past
its 4 kB), and resynchronised over them record by record: a read-only open, kvb check, kvb salvage, a backup
and a writer's open never finished (the power-failure fuzzer, --damage seed 5517). No power failure takes
that much from a file: such a page is damaged (docs/protocol.md, "The state page"), and the store is read as
without one, whole.
"""

from __future__ import annotations

import os

import pytest
from helpers import run_python
from test_state_page_damage18 import _set_tail, _sizes, _store

from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import published_tail
from kv_backend.unpublished import MAX_LOSS

#: The readers, in a child with a timeout: before the fix they never finished.
_READERS = """
import sys
sys.path.insert(0, sys.argv[2])
from test_format_reader11 import read_store
from test_state_page_damage18 import _WANT, _reads_whole
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.salvage import salvage

store, scratch = sys.argv[1], sys.argv[3]
report = check(store)
assert report.ok and any("MiB past its end where newer files follow" in n for n in report.notes), report.notes
assert {k: v[0] for k, v in read_store(store).items()} == _WANT
_reads_whole(store, read_only=True)
assert salvage(store, scratch + "/salvaged").keys_copied == len(_WANT)
assert backup_store(store, scratch + "/backups").damaged_records == 0
_reads_whole(store, read_only=False)
assert check(store).ok
"""


@pytest.mark.parametrize("words", ["both flipped", "equal", "next header"])
def test_an_end_past_what_a_power_failure_can_take_is_a_damaged_page(store_path, tmp_path, words):
    _store(store_path)
    major, end = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)  # a rotation that died: the page names the file before it
    far = end | (1 << 38)
    intent = {
        "both flipped": (major, end | (1 << 39)),
        "equal": (major, far),
        "next header": (major + 1, rec.FILE_HEADER_SIZE),
    }[words]
    _set_tail(store_path, major, far, intent=intent)
    sizes = _sizes(store_path)
    run_python(_READERS, store_path, os.path.dirname(__file__), str(tmp_path), timeout=60)
    assert _sizes(store_path)[(major, 0)] <= sizes[(major, 0)]  # (not filled with zeros: reserved ones cut)


def lost_store(path: str) -> str:
    """A store whose page names a file that a dead rotation's new file follows, with a published end
    64 MiB past that file's end, the intent word vouching for it; the path of that file."""
    _store(path)
    major, _ = published_tail(path)
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    lost = os.path.join(path, data_name((major, 0)))
    size = os.path.getsize(lost)
    _set_tail(path, major, size + MAX_LOSS, intent=(major, size + MAX_LOSS))
    return lost


def test_a_loss_up_to_the_limit_is_still_damage(store_path):
    """The page intact, the file it names before a dead rotation's file with its
    published end the most a power failure may take past its end: the loss is reported, as before."""
    path = lost_store(store_path)
    assert [p.path for p in check(store_path).problems] == [path]
