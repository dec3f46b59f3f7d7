"""A STATE page whose tail word is damaged so that it names a file newer files follow, with an end past
that file's end: every reader took the file for one that lost bytes and read it as filled with zeros
up to that end, and recovery filled it so. A bit flipped in the end's high bits (2^37 bytes past a
24 kB file) made a read-only open fail with MemoryError, and a writer's open grow the file to 137 GB
and scan its zeros for hours under the write lock; a major id flipped to an older closed file made a
writer fill that sound file with zeros, which kvb check then reported as damage for good (and merge
refused the store). The page's intent word, which a writer stores before the tail, must now vouch for
such a tail, or the page is damaged and read as without one (docs/protocol.md, "The state page")."""

from __future__ import annotations

import os
import struct

from helpers import run_python

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import STATE_FILE, data_name, list_data_files
from kv_backend.state import page_intent, published_tail, unpack_tail

_WANT = {b"k%02d" % i: b"%02d" % i * 200 for i in range(30)}


def _store(path: str) -> None:
    with DB(path, max_file_size=4096) as db:  # a few files
        for key, value in _WANT.items():
            db.put(key, value)


def _set_tail(path: str, major: int, end: int, *, intent: tuple[int, int] | None = None) -> None:
    with open(os.path.join(path, STATE_FILE), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", (major << 40) | end))
        if intent is not None:
            f.seek(32)
            f.write(struct.pack("=Q", (intent[0] << 40) | intent[1]))


def _sizes(path: str) -> dict:
    return {fid: os.path.getsize(os.path.join(path, data_name(fid))) for fid in list_data_files(path)}


def _reads_whole(path: str, *, read_only: bool) -> None:
    with DB(path, read_only=read_only) as db:
        assert dict(db.items()) == _WANT
        assert db.stats()["corrupt_records"] == 0


def test_a_flipped_high_bit_of_the_published_end_before_a_dead_rotation_is_a_damaged_page(store_path):
    _store(store_path)
    major, end = published_tail(store_path)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)  # a rotation that died: the page names the file before it
    _set_tail(store_path, major, end | (1 << 37))
    sizes = _sizes(store_path)
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes), report.notes
    # (In a child: the open that read 137 GB of zeros must not hang the test run.)
    run_python(
        """
        import sys
        sys.path.insert(0, sys.argv[2])
        from test_state_page_damage18 import _reads_whole
        _reads_whole(sys.argv[1], read_only=True)
        """,
        store_path,
        os.path.dirname(__file__),
        timeout=60,
    )
    assert _sizes(store_path) == sizes
    run_python(
        """
        import sys
        sys.path.insert(0, sys.argv[2])
        from test_state_page_damage18 import _reads_whole
        _reads_whole(sys.argv[1], read_only=False)
        """,
        store_path,
        os.path.dirname(__file__),
        timeout=60,
    )
    assert max(_sizes(store_path).values()) < 2 << 20  # (no file grown to the damaged end)
    assert check(store_path).ok


def test_a_major_id_flipped_to_an_older_file_does_not_fill_that_file(store_path):
    _store(store_path)
    fids = list_data_files(store_path)
    assert len(fids) >= 3
    older = fids[0]
    size = os.path.getsize(os.path.join(store_path, data_name(older)))
    _set_tail(store_path, older[0], size + 1000)  # past its end: read as a file that lost bytes
    sizes = _sizes(store_path)
    report = check(store_path)
    assert report.ok and any("damaged page" in n for n in report.notes), report.notes
    _reads_whole(store_path, read_only=True)
    _reads_whole(store_path, read_only=False)
    assert _sizes(store_path)[older] == sizes[older]
    assert check(store_path).ok
    with DB(store_path) as db:
        db.merge()  # (merge refuses a store that holds damage)
        assert dict(db.items()) == _WANT


def test_a_file_that_lost_bytes_is_still_filled_where_the_intent_vouches_for_the_page(store_path):
    """The page intact (its intent equal to its tail, or in the same file past it: a writer that died
    in a write), the file it names cut below its published end before a dead rotation's file: it lost
    acknowledged records, which every reader reports, as before."""
    _store(store_path)
    major, end = published_tail(store_path)
    assert page_intent(store_path) == (major, end)
    with open(os.path.join(store_path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    path = os.path.join(store_path, data_name((major, 0)))
    os.truncate(path, end - 100)
    for intent in [(major, end), (major, end + 300)]:
        _set_tail(store_path, major, end, intent=intent)
        assert unpack_tail((major << 40) | end) == published_tail(store_path)
        assert [p.path for p in check(store_path).problems] == [path]
        with DB(store_path, read_only=True) as db:
            assert db.stats()["corrupt_records"] == 1
    with DB(store_path) as db:
        assert db.stats()["corrupt_records"] == 1
    assert os.path.getsize(path) == end  # filled up to its published end
