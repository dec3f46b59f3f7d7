"""The file before a dead rotation's new file (its header alone), without a STATE page, ending in a
transaction a killed writer left before its COMMIT, every record of which a power failure damaged (sectors
of each lost), then the file's reserved zeros.

Every reader took the damaged records for a damaged region of the published part (one region, up to the
end of the file): kvb check, stats()['corrupt_records'], kvb salvage and a backup reported it, and every
merge refused the store until kvb salvage, though no value was wrong. With one record of the transaction
whole, the same shape was the file's unfinished write; and the same damaged records before reserved zeros
in the active file are its unfinished write too. The reserved zeros say that the rotation's cut of them
never reached the disk: the file was still the active one there, and what follows its data is what a
dying writer left, which a power failure damaged (fsynced bytes it cannot damage: what sync='always'
acknowledged was fsynced before the rotation began). It is now the unfinished write, as for the active
file: no damage, never applied, cut by recovery. Where the rotation had cut the reserved zeros (the
damaged records run to the end of the file), the file was closed, and they stay damage.
"""

from __future__ import annotations

import os
import signal

from helpers import exit_code, fork_child
from test_format_reader11 import DAMAGED, read_store
from test_page_end_damaged_batch22 import _view

from kv_backend import DB
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.record import FILE_HEADER_BYTES, HEADER_SIZE
from kv_backend.salvage import salvage
from kv_backend.state import published_tail

_WANT = {b"a%d" % i: b"x%d" % i for i in range(5)}
_VALUE = 700  # (a record over a sector: the power failure kept its first sector, lost the next)


def _store(path: str, *, reserved_zeros: bool) -> tuple[int, int]:
    """Five puts, then a transaction of three puts whose writer is killed before its COMMIT; each of its
    records then damaged (a byte of its value zeroed), the page lost, and the next file created holding its
    header alone. Returns the file's major id and where the transaction starts."""
    with DB(path) as db:
        for key, value in _WANT.items():
            db.put(key, value)

    def child() -> None:
        with DB(path) as db, db.transaction():
            for i in range(3):
                db.put(b"t%d" % i, b"%d" % i * _VALUE)
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    major, start = published_tail(path)
    name = os.path.join(path, data_name((major, 0)))
    record = HEADER_SIZE + 2 + _VALUE
    with open(name, "r+b") as f:
        for i in range(3):
            f.seek(start + i * record + HEADER_SIZE + 2 + 600)
            f.write(bytes(1))
    if not reserved_zeros:
        os.truncate(name, start + 3 * record)
    os.unlink(os.path.join(path, "STATE"))
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(FILE_HEADER_BYTES)
    return major, start


def test_before_reserved_zeros_it_is_the_unfinished_write(store_path, tmp_path):
    major, start = _store(store_path, reserved_zeros=True)
    regions: list = []
    assert {k: v[0] for k, v in read_store(store_path, regions=regions).items()} == _WANT
    assert regions == []
    assert check(store_path).problems == []
    assert _view(store_path, read_only=True) == (_WANT, 0)
    assert backup_store(store_path, (tmp_path / "backups").as_uri()).damaged_records == 0
    assert salvage(store_path, str(tmp_path / "salvaged")).clean
    assert _view(store_path, read_only=False) == (_WANT, 0)  # (recovery closes the file at its start)
    assert os.path.getsize(os.path.join(store_path, data_name((major, 0)))) == start
    with DB(store_path) as db:
        db.merge(wait=True)  # (refused while the damaged records were a region of a closed file)
        assert {k: db.get(k) for k in db} == _WANT
    assert all(fid[1] != 0 or fid[0] > major for fid in list_data_files(store_path))
    assert check(store_path).problems == []


def test_up_to_the_end_of_the_file_it_is_damage(store_path, tmp_path):
    """(Each damaged record's lengths are confirmed, the last one's by the end of the closed file: each is
    skipped, its key read as damaged.)"""
    _store(store_path, reserved_zeros=False)
    want = {**_WANT, **{b"t%d" % i: DAMAGED for i in range(3)}}
    regions: list = []
    assert {
        k: v if v == DAMAGED else v[0] for k, v in read_store(store_path, regions=regions).items()
    } == want
    assert len(regions) == 3
    assert len(check(store_path).problems) == 3
    assert _view(store_path, read_only=True) == (want, 3)
    assert backup_store(store_path, (tmp_path / "backups").as_uri()).damaged_records == 3
    assert not salvage(store_path, str(tmp_path / "salvaged")).clean
    assert _view(store_path, read_only=False) == (want, 3)
