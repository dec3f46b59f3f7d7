"""A transaction a writer died in, before its COMMIT, at the end of the file before a dead rotation's new
file, after a power failure that lost the STATE page.

A SIGKILL in a transaction leaves its records past the published end, then reserved zeros; the next
writer's recovery cuts them, and a rotation then creates the next file. A power failure can keep the
transaction's records and the file's reserved zeros but not that cut, nor the page, nor the new file's
header. Without a page, the file before the newest (one of at most a header) was read as closed whole, its
zeros as a damaged header in the published part, which applied the open batch (rule 3): every reader
returned the uncommitted transaction's values, and every merge refused the store (a closed file ending in
zeros). The transaction is that file's unfinished write now: no reader applies it or counts it as damage,
and recovery cuts it. Where the file ends right after the open batch (no zeros: the rotation had cut them,
so the file was closed), the batch is damage, as before, and is never applied either.
"""

from __future__ import annotations

import os
import signal

import pytest
from helpers import exit_code, fork_child
from test_format_reader11 import DAMAGED, read_store

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.files import data_name
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

ACKED = {
    **{b"a%d" % i: b"x%d" % i for i in range(4)},
    **{b"b%d" % i: b"in batch %d" % i for i in range(2)},
    b"a0": b"overwritten",
}


def killed_transaction(path: str) -> tuple[int, int, int]:
    """Acknowledged puts and a batch, then a transaction killed before its COMMIT (overwriting a0 and
    deleting a1, adding t0), followed by reserved zeros. Returns the major id of its file, where it starts
    (the published end) and where it ends."""
    with DB(path) as db:
        for k, v in ACKED.items():
            if not k.startswith(b"b"):
                db.put(k, v)
        with db.batch() as b:
            for k, v in ACKED.items():
                if k.startswith(b"b"):
                    b.put(k, v)
    major, end = published_tail(path)

    def die_in_a_transaction() -> None:
        with DB(path) as db, db.transaction():
            db.put(b"a0", b"uncommitted")
            db.delete(b"a1")
            db.put(b"t0", b"uncommitted")
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(die_in_a_transaction)) == -signal.SIGKILL
    txn_end = end + sum(rec.HEADER_SIZE + len(k) + len(v) for k, v in [(b"a0", b"uncommitted"), (b"a1", b"")])
    txn_end += rec.HEADER_SIZE + len(b"t0") + len(b"uncommitted")
    with open(os.path.join(path, data_name((major, 0))), "rb") as f:
        assert f.read()[txn_end:].strip(b"\0") == b""  # (the transaction, then reserved zeros)
    return major, end, txn_end


def _store(path: str, shape: str, header: int | None) -> str:
    """:func:`killed_transaction`; ``shape``: as it left it ("zeros"), with a torn record after it ("torn"),
    its first bytes zeroed (a power failure kept a later sector of it and not the first: "lost sector"; the
    first record's CRC alone: "lost crc") or with the file cut right after it ("cut"). The page lost, and
    a newest file of ``header`` bytes of its header (a rotation that died; none where None). Returns the
    name of the file holding the transaction."""
    major, end, txn_end = killed_transaction(path)
    name = os.path.join(path, data_name((major, 0)))
    with open(name, "r+b") as f:
        if shape == "torn":
            f.seek(txn_end)
            f.write(rec.encode(rec.PUT, b"t1", b"never written whole", 0.0, rec.FLAG_BATCH)[:30])
        elif shape == "lost sector":
            f.seek(end)
            f.write(bytes(7))  # (its first record's first bytes: its length fields damaged too)
        elif shape == "lost crc":
            f.seek(end)
            f.write(bytes(3))  # (its first record's CRC alone: its lengths sound)
    if shape == "cut":
        os.truncate(name, txn_end)
    os.unlink(os.path.join(path, "STATE"))
    if header is not None:
        with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
            f.write(rec.FILE_HEADER_BYTES[:header])
    return name


def view(path: str, read_only: bool) -> tuple[dict[bytes, bytes | None], int]:
    with DB(path, read_only=read_only) as db:
        return {k: db.get(k) for k in db}, db.stats()["corrupt_records"]


def reader_view(path: str) -> tuple[dict[bytes, bytes | str], int]:
    regions: list = []
    view = read_store(path, regions=regions)
    return {k: v if v == DAMAGED else v[0] for k, v in view.items()}, len(regions)


@pytest.mark.parametrize("header", [None, 0, 8, 16])
@pytest.mark.parametrize("shape", ["zeros", "torn", "lost sector", "lost crc"])
def test_the_transaction_is_an_unfinished_write_for_every_reader(store_path, tmp_path, shape, header):
    name = _store(store_path, shape, header)
    report = check(store_path)
    assert report.problems == []
    assert any("unfinished write" in note for note in report.notes)
    assert reader_view(store_path) == (ACKED, 0)
    url = (tmp_path / "backups").as_uri()
    assert backup_store(store_path, url).damaged_records == 0
    restore(url, str(tmp_path / "restored"))
    assert view(str(tmp_path / "restored"), read_only=True) == (ACKED, 0)
    salvaged = salvage(store_path, str(tmp_path / "salvaged"))
    assert salvaged.clean and salvaged.records_skipped == 0
    assert view(str(tmp_path / "salvaged"), read_only=True) == (ACKED, 0)
    assert view(store_path, read_only=True) == (ACKED, 0)
    assert view(store_path, read_only=False) == (ACKED, 0)  # the writer's recovery cuts it
    assert os.path.getsize(name) < rec.FILE_HEADER_SIZE + 400  # (the reserved zeros cut with it)
    assert view(store_path, read_only=True) == (ACKED, 0)
    assert check(store_path).problems == []
    with DB(store_path) as db:
        db.merge(wait=True)  # (refused while the closed file ended in zeros)
        assert {k: db.get(k) for k in db} == ACKED
    assert reader_view(store_path) == (ACKED, 0)


def test_an_open_batch_that_reaches_the_end_of_the_file_is_damage(store_path, tmp_path):
    """No zeros after it: the file was closed (a rotation cuts them), and lost the batch's COMMIT."""
    _store(store_path, "cut", 16)
    assert len(check(store_path).problems) == 1
    assert reader_view(store_path) == (ACKED, 1)
    assert backup_store(store_path, (tmp_path / "backups").as_uri()).damaged_records == 1
    salvaged = salvage(store_path, str(tmp_path / "salvaged"))
    assert len(salvaged.regions) == 1 and salvaged.records_skipped == 3
    assert view(str(tmp_path / "salvaged"), read_only=True) == (ACKED, 0)
    for read_only in (True, False, True):
        assert view(store_path, read_only=read_only) == (ACKED, 1)
