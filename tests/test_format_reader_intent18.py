"""The independent format reader of test_format_reader11 against DB on damaged STATE pages and cut files.

The reader did not know the rule (docs/protocol.md, "The state page") that a page whose tail names a
data file newer files follow, with a published end past that file's size, is trusted only where the
page's intent word vouches for the tail: it took every such file for one that lost bytes and read it
as filled with zeros up to that end, where DB reads the store as without a page (and a bit flipped
high in the end made the reader itself fail with MemoryError, building the zeros). And a closed merge
output cut inside its 16-byte header, whose hint file checks out for a larger size, the reader
skipped (its keys absent), where DB reads it through the hint file as filled with zeros, its keys
damaged (docs/file-format.md, "Data files" and "Hint files": a loss is reported, never silent).
"""

from __future__ import annotations

import os
import struct

import pytest
from test_format_reader11 import DAMAGED, assert_same, data_files, db_view, patch, read_store

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.state import published_tail

_WANT = {b"k%02d" % i: b"%02d" % i * 200 for i in range(30)}


def _store(path: str) -> tuple[int, int]:
    """A store of a few closed files and an active one; the page's (major, end)."""
    with DB(path, max_file_size=4096) as db:
        for key, value in _WANT.items():
            db.put(key, value)
    tail = published_tail(path)
    assert tail is not None and len(data_files(path)) >= 3
    return tail


def _set_page(path: str, tail: tuple[int, int], intent: tuple[int, int]) -> None:
    with open(os.path.join(path, "STATE"), "r+b") as f:
        for at, (major, end) in ((16, tail), (32, intent)):
            f.seek(at)
            f.write(struct.pack("=Q", (major << 40) | end))


def _dead_rotation(path: str, major: int, head: bytes = rec.FILE_HEADER_BYTES) -> str:
    """The next data file a rotation that died left after the file ``major`` (``head``: what it holds)."""
    name = os.path.join(path, data_name((major + 1, 0)))
    with open(name, "wb") as f:
        f.write(head)
    return name


def _whole(view: dict) -> bool:
    return {k: v[0] for k, v in view.items() if v != DAMAGED} == _WANT and DAMAGED not in view.values()


def test_a_flipped_high_bit_of_the_end_before_a_dead_rotation(store_path):
    """No MemoryError: the intent (equal to the old tail) does not vouch for it, the page is damaged."""
    major, end = _store(store_path)
    _dead_rotation(store_path, major)
    _set_page(store_path, (major, end | (1 << 37)), (major, end))
    assert _whole(assert_same(store_path))


def test_a_major_id_flipped_to_an_older_file(store_path):
    major, end = _store(store_path)
    older = int(os.path.basename(data_files(store_path)[0])[:10])
    _set_page(store_path, (older, os.path.getsize(data_files(store_path)[0]) + 1000), (major, end))
    assert _whole(assert_same(store_path))


@pytest.mark.parametrize(
    "intent, vouched",
    [
        ((0, 0), True),  # equal to the tail
        ((0, 300), True),  # the same file, past the tail: a write in flight
        ((1, None), True),  # the next file's header end: a rotation in flight
        ((0, -100), False),  # the same file, before the tail (the tail's end raised by damage)
        ((1, 1), False),  # the next file, past its header
        ((2, None), False),  # two files on
        ((-1, 0), False),  # an older file
    ],
)
def test_a_published_end_past_the_file_before_a_dead_rotation(store_path, intent, vouched):
    """The file the page names ends in a record whose last bytes are zeros, and the page's end lies 100
    bytes past the file. Vouched for, the file lost bytes: both read it as filled with zeros up to the
    published end, and that record, published whole, is damage; not vouched for, both read the store
    as without a page, and that record is a rotation's torn last write, cut (never acknowledged)."""
    major, end = _store(store_path)
    _dead_rotation(store_path, major)
    named = os.path.join(store_path, data_name((major, 0)))
    os.truncate(named, end)
    patch(named, end - 50, bytes(50))
    tail = (major, end + 100)
    bump, delta = intent
    _set_page(store_path, tail, (major + bump, rec.FILE_HEADER_SIZE if delta is None else tail[1] + delta))
    view = assert_same(store_path)
    if vouched:
        assert {key for key, value in view.items() if value == DAMAGED} == {b"k29"}
        assert os.path.getsize(named) == end + 100  # (filled by recovery)
    else:
        assert DAMAGED not in view.values() and set(view) == set(_WANT) - {b"k29"}
        assert os.path.getsize(named) < end - 50  # (the torn write cut)


@pytest.mark.parametrize("intent", ["vouches", "does not vouch"])
def test_a_newest_file_shorter_than_a_header_after_the_named_file(store_path, intent):
    """Where only a newest file shorter than a header follows the named file, that one is the active file
    (its end read from its bytes, as the page's end lies past them). An intent that does not vouch for the
    tail (no writer leaves one) makes the page damaged, as anywhere: read as without one."""
    major, end = _store(store_path)
    short = _dead_rotation(store_path, major, rec.FILE_HEADER_BYTES[:9])
    os.truncate(os.path.join(store_path, data_name((major, 0))), end)
    _set_page(store_path, (major, end + 500), (major, end + 500) if intent == "vouches" else (major - 1, 16))
    assert _whole(assert_same(store_path))
    # (With the page, recovery removed the short file, the named one staying active; without one it
    # adopts it.)
    assert os.path.exists(short) == (intent != "vouches")


@pytest.mark.parametrize("left", [0, 9])
def test_a_merge_output_cut_inside_its_header_reads_through_its_hint_file(store_path, left):
    with DB(store_path, max_file_size=4096) as db:
        for key, value in _WANT.items():
            db.put(key, value)
        db.merge()
        db.put(b"after", b"merge")
    merged = [n for n in data_files(store_path) if not n.endswith("-000.data")]
    assert len(merged) >= 2 and all(os.path.exists(n[: -len(".data")] + ".hint") for n in merged)
    os.truncate(merged[0], left)
    mine = read_store(store_path)
    lost = {key for key, value in mine.items() if value == DAMAGED}
    assert lost and lost < set(_WANT)  # every key the hint file names for it, and no other
    assert set(mine) == set(_WANT) | {b"after"}
    assert not check(store_path).ok
    for read_only in (True, False):  # a writer's open fills the file with zeros: the keys stay damaged
        theirs = db_view(store_path, read_only=read_only)
        assert {k: v if v == DAMAGED else v[0] for k, v in theirs.items()} == {
            k: v if v == DAMAGED else v[0] for k, v in mine.items()
        }
    assert os.path.getsize(merged[0]) > rec.FILE_HEADER_SIZE
    assert read_store(store_path) == mine
    assert not check(store_path).ok
