"""A store whose STATE page names the file before a newest file of its header alone (a rotation that
died before publishing the new file), where the published part of that file ends in a batch without its
COMMIT and nothing follows that end (damage moved the tail word back inside the batch, and the file lost
its COMMIT and what followed).

A writer's recovery closed that file at its published end, so that a batch still open at the end of a
closed file was damage: stats()['corrupt_records'] counted it, and so did a backup, while a read-only open
and kvb check read the file as the active one and reported one damaged record fewer. Recovery now cuts
that batch as the unfinished write it is (as at the end of the active file): every reader reads it so
before and after, none applies it or counts it as damage (tests/test_rotated_page_batch21.py).
"""

from __future__ import annotations

import os
import struct

from puts_and_batch22 import puts_and_a_batch

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage

_WANT = {b"a%d" % i: b"x%d" % i for i in range(5)}


def _set_tail(path: str, major: int, end: int) -> None:
    with open(os.path.join(path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(struct.pack("=Q", (major << 40) | end))


def _store(path: str, *, after: bytes = b"") -> None:
    """Five puts and a batch of two; the file then cut before the batch's COMMIT, the tail moved there,
    ``after`` (an unfinished write's bytes) past it, and the next file created holding its header alone."""
    major, end = puts_and_a_batch(path)
    fpath = os.path.join(path, data_name((major, 0)))
    end -= rec.HEADER_SIZE + 4  # (the COMMIT)
    os.truncate(fpath, end)
    with open(fpath, "ab") as f:
        f.write(after)
    _set_tail(path, major, end)
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)


def _view(path: str, read_only: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, read_only=read_only) as db:
        return {k: db.get(k) for k in db}, db.stats()["corrupt_records"]


def _agree(path: str, tmp_path) -> None:
    assert _view(path, read_only=True) == (_WANT, 0)
    assert check(path).problems == []
    assert backup_store(path, (tmp_path / "backups").as_uri()).damaged_records == 0
    assert salvage(path, str(tmp_path / "salvaged")).records_skipped == 0
    assert _view(path, read_only=False) == (_WANT, 0)  # the writer's recovery cuts the batch, closes the file
    assert _view(path, read_only=True) == (_WANT, 0)
    assert check(path).problems == []


def test_the_open_batch_at_the_published_end_is_no_damage_for_any_reader(store_path, tmp_path):
    _store(store_path)
    _agree(store_path, tmp_path)


def test_a_torn_write_after_it_is_no_damage(store_path, tmp_path):
    torn = rec.encode(rec.PUT, b"c0", b"unfinished")[:-4] + bytes(4)
    _store(store_path, after=torn + bytes(100))
    _agree(store_path, tmp_path)
