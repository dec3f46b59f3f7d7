"""A merge refused by a closed data file that ends in zeros, as the recovery of an earlier version left
the file before a rotation that died (its reserved space never cut off).

The zeros cannot be told from records that damage zeroed, so the merge still refuses the store, but its
error said only "a damaged record header"; it now says the bytes are all zeros, where they come from,
and that a copy made with `kvb salvage` holds every key the store holds where they are reserved space.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB, CorruptionError
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage


def _store(path: str) -> dict[bytes, bytes]:
    values = {}
    with DB(path, max_file_size=4096) as db:
        for i in range(60):
            values[b"k%02d" % (i % 20)] = b"%d-" % i + b"x" * 100
            db.put(b"k%02d" % (i % 20), values[b"k%02d" % (i % 20)])
    assert len(list_data_files(path)) > 1
    return values


def test_zeros_to_the_end_of_a_closed_file_are_named(store_path, tmp_path):
    values = _store(store_path)
    closed = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    end = os.path.getsize(closed)
    os.truncate(closed, 1 << 20)  # its reserved space, as such a recovery left it
    with DB(store_path) as db:
        with pytest.raises(CorruptionError) as err:
            db.merge()
        assert {k: db.get(k) for k in db} == values
    text = str(err.value)
    assert f"cannot be read past offset {end}: the {(1 << 20) - end} bytes from there" in text
    assert "all zeros" in text and "kvb salvage" in text
    assert os.path.getsize(closed) == 1 << 20  # nothing was removed
    report = salvage(store_path, str(tmp_path / "copy"))
    with DB(str(tmp_path / "copy"), read_only=True) as copy:
        assert {k: copy.get(k) for k in copy} == values
    assert [r.offset for r in report.regions] == [end]


def test_other_damage_is_named_as_before(store_path):
    _store(store_path)
    closed = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    with open(closed, "r+b") as f:
        f.seek(16 + 6)
        f.write(b"\xff\xff\xff\xff")  # the first record's key length
    with DB(store_path) as db, pytest.raises(CorruptionError) as err:
        db.merge()
    assert "cannot be read past offset 16 (a damaged record header)" in str(err.value)
    assert "zeros" not in str(err.value)
