"""A read-only open of a store without a STATE page where a rotation that died left a newest file of its
header alone, and the file before it ends in a batch without its COMMIT, with nothing a torn write could
be after the records that check out (a power failure kept the batch's records and not its COMMIT).

A writer's recovery closes that file whole (nothing of it can be an unfinished write: only reserved
zeros, or one torn record before them, are cut), and a batch still open at the end of a closed file is
a damaged region (docs/file-format.md), which stats()['corrupt_records'] counts; a read-only open read the
same records but did not count it (the file was not closed yet), so the two reported different damage.
"""

from __future__ import annotations

import os

from puts_and_batch22 import puts_and_a_batch

from kv_backend import DB
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.record import FILE_HEADER_BYTES, HEADER_SIZE
from kv_backend.salvage import salvage


def _store(path: str) -> None:
    major, end = puts_and_a_batch(path)
    os.truncate(os.path.join(path, data_name((major, 0))), end - HEADER_SIZE - 4)  # its COMMIT lost
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(FILE_HEADER_BYTES)
    os.unlink(os.path.join(path, "STATE"))


def _view(path: str, read_only: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, read_only=read_only) as db:
        return {k: db.get(k) for k in db}, db.stats()["corrupt_records"]


def test_the_open_batch_counts_as_the_writers_recovery_counts_it(store_path, tmp_path):
    _store(store_path)
    want = {b"a%d" % i: b"x%d" % i for i in range(5)}
    assert len(check(store_path).problems) == 1  # (it was a note: "cut off on next open", which it is not)
    assert backup_store(store_path, (tmp_path / "backups").as_uri()).damaged_records == 1
    report = salvage(store_path, str(tmp_path / "salvaged"))
    assert len(report.regions) == 1 and report.records_skipped == 2
    assert _view(store_path, read_only=True) == (want, 1)
    assert _view(store_path, read_only=False) == (want, 1)  # the writer's recovery closes the file whole
    assert _view(store_path, read_only=True) == (want, 1)
    assert len(check(store_path).problems) == 1
