"""A STATE page whose tail names a data file that is gone, older than the active one (damage to its
major id), where a rotation that died left a newest file of at most a header: the page is read as
damaged (as without one), so the file before the short one is the dead rotation's predecessor, which
recovery closes (its reserved zeros cut), as kvb check, kvb salvage, a backup and every open read it.
Read with the page, that file read as closed: its reserved zeros were a damaged region for kvb check
and stats(), a backup counted it, and every merge refused the store from then on."""

from __future__ import annotations

import os
import sys

import pytest
import test_format_reader11 as reader
from test_rotation_damage15 import _view

from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.backup import restore
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


def _store(path: str) -> tuple[dict, int]:
    """A store of rotations and a merge, its active file holding records and its reserved zeros; the
    page's tail then names a file the merge removed, and a rotation that died left a newest file.
    Returns the store's values and the published end of the active file."""
    values = {}
    with DB(path, max_file_size=4096) as db:
        for i in range(120):
            values[b"k%d" % (i % 30)] = b"v%d-" % i + bytes([i]) * 90
            db.put(b"k%d" % (i % 30), values[b"k%d" % (i % 30)])
        db.merge(wait=True)
        for i in range(5):
            values[b"late%d" % i] = b"w%d" % i
            db.put(b"late%d" % i, values[b"late%d" % i])
    major, end = published_tail(path)
    fids = list_data_files(path)
    assert fids[-1] == (major, 0) and os.path.getsize(os.path.join(path, data_name(fids[-1]))) > end
    gone = max(f[0] for f in fids if f[1])  # (the merge's outputs are named after its newest input)
    assert (gone, 0) not in fids and gone < major
    with open(os.path.join(path, "STATE"), "r+b") as f:
        f.seek(16)
        f.write(((gone << 40) | end).to_bytes(8, sys.byteorder))
    return values, end


def _rotation_died(path: str, length: int) -> None:
    """Leave the newest file a rotation that died after creating it leaves (``length`` bytes of its
    header)."""
    major = list_data_files(path)[-1][0]
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES[:length])


@pytest.mark.parametrize("length", [0, 5, rec.FILE_HEADER_SIZE])
def test_recovery_closes_the_file_before_a_dead_rotation_where_the_page_names_a_file_that_is_gone(
    store_path, tmp_path, length
):
    values, end = _store(store_path)
    active = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
    _rotation_died(store_path, length)
    report = check(store_path)
    assert report.problems == []
    assert any("which is gone" in note for note in report.notes)
    assert {k: v[0] for k, v in reader.read_store(store_path).items()} == values
    assert _view(store_path, read_only=True) == (values, 0)
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}", name="b").damaged_records == 0
    restore(f"file://{tmp_path / 'backups'}", str(tmp_path / "restored"), name="b")
    assert _view(str(tmp_path / "restored"), read_only=False) == (values, 0)
    sv = salvage(store_path, str(tmp_path / "salvaged"))
    assert sv.clean and sv.regions == []
    assert _view(store_path, read_only=False) == (values, 0)
    assert os.path.getsize(active) == end  # closed: its reserved zeros cut
    assert check(store_path).problems == []
    with DB(store_path) as db:
        db.merge(wait=True)  # (refused, the zeros read as damage)
        assert {k: db.get(k) for k in db} == values
        assert db.stats()["corrupt_records"] == 0


def test_damage_inside_that_file_is_still_reported(store_path, tmp_path):
    """Only what a rotation that died leaves at the end of the file is cut: a damaged record before
    its last one stays damage that every reader reports, and its key raises CorruptionError."""
    values, end = _store(store_path)
    active = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
    _rotation_died(store_path, rec.FILE_HEADER_SIZE)
    first = next(r for r in reader.records(active) if r[1] == rec.PUT)
    with open(active, "r+b") as f:
        f.seek(first[0] + rec.HEADER_SIZE + first[4])  # (its value's first byte: its lengths stay sound)
        f.write(b"\xff")
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert problems == [(active, first[0])]
    key = first[3]
    assert _view(store_path, read_only=True) == ({**values, key: "damaged"}, 1)
    assert _view(store_path, read_only=False) == ({**values, key: "damaged"}, 1)
    assert os.path.getsize(active) == end
    assert [(p.path, p.offset) for p in check(store_path).problems] == problems
    with DB(store_path) as db, pytest.raises(CorruptionError):
        db.get(key)
