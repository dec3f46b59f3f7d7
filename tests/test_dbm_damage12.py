"""A value damaged on disk, read through kv_backend.dbm and kv_backend.shelve."""

from __future__ import annotations

import errno
import os

import pytest

import kv_backend.dbm as kvdbm
import kv_backend.shelve as kvshelve
from kv_backend.errors import CorruptionError


def _damage_value(path: str, value: bytes) -> None:
    """Flip one byte of ``value`` where it is stored in the database's data file."""
    (name,) = [n for n in os.listdir(path) if n.endswith(".data")]
    data = os.path.join(path, name)
    with open(data, "r+b") as f:
        raw = f.read()
        pos = raw.rindex(value)
        f.seek(pos)
        f.write(bytes([raw[pos] ^ 0xFF]))


def test_a_damaged_value_raises_this_modules_error(tmp_path):
    """A CorruptionError passed through dbm unchanged, so ``except kv_backend.dbm.error`` (the
    error the module raises for every other failure, and what ``except dbm.error`` catches)
    missed it; it is a DamagedRecordError now, also a CorruptionError naming the record."""
    path = str(tmp_path / "db")
    with kvdbm.open(path, "c") as db:
        db[b"good"] = b"fine"
        db[b"bad"] = b"soon-to-be-damaged"
    _damage_value(path, b"soon-to-be-damaged")
    with kvdbm.open(path, "r") as db:
        for read in (lambda: db[b"bad"], lambda: db.get(b"bad"), lambda: dict(db.items())):
            with pytest.raises(kvdbm.error) as caught:
                read()
            err = caught.value
            assert isinstance(err, kvdbm.DamagedRecordError) and isinstance(err, CorruptionError)
            assert err.errno == errno.EIO and err.path and err.offset is not None
            assert "kvb check" in str(err)
        assert db[b"good"] == b"fine"  # nothing else is lost


def test_a_damaged_value_through_a_shelf(tmp_path):
    path = str(tmp_path / "shelf")
    with kvshelve.open(path) as shelf:
        shelf["ok"] = [1, 2]
        shelf["bad"] = "a-value-long-enough-to-find"
    _damage_value(path, b"a-value-long-enough-to-find")
    with kvshelve.open(path, "r") as shelf:
        with pytest.raises(kvdbm.error):
            shelf["bad"]
        assert shelf["ok"] == [1, 2]
