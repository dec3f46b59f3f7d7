"""kv_backend.dbm beside the stdlib's dbm modules, flag by flag and type by type (docs/store.md)."""

from __future__ import annotations

import array
import errno
import mmap
import os

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend.errors import ConfigurationError, InvalidKeyError, InvalidValueError


def _buffers() -> list[object]:
    """Bytes-like objects that are neither bytes, bytearray nor memoryview, with their bytes."""
    m = mmap.mmap(-1, 4)
    m.write(b"mmap")
    return [
        pytest.param(array.array("b", b"arr"), b"arr", id="array"),
        pytest.param(array.array("i", [1, 2]), array.array("i", [1, 2]).tobytes(), id="array-of-ints"),
        pytest.param(m, b"mmap", id="mmap"),
    ]


@pytest.mark.parametrize(("obj", "data"), _buffers())
def test_any_bytes_like_object_is_taken_as_its_bytes(tmp_path, obj, data):
    """docs/store.md promised "any other bytes-like object" as its bytes, and Python 3.13's dbm.sqlite3
    takes an array.array or an mmap, key or value; this module refused them with TypeError."""
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        db[b"k"] = obj
        assert db[b"k"] == data
        db[obj] = b"v"
        assert db[data] == b"v"
        assert db[obj] == b"v"
        assert obj in db
        assert db.get(obj) == b"v"
        assert db.setdefault(b"new", obj) == data
        db.update([(obj, obj)])
        assert db[data] == data
        assert db.pop(obj) == data
        assert obj not in db


def test_what_has_no_buffer_is_still_refused(tmp_path):
    with kdbm.open(str(tmp_path / "db"), "c") as db:
        for bad in (1, 1.5, None, [1], object()):
            with pytest.raises(InvalidValueError):
                db[b"k"] = bad
            with pytest.raises(InvalidKeyError):
                db[bad] = b"v"
            assert bad not in db


@pytest.mark.parametrize(("obj", "data"), _buffers())
def test_dbm_sqlite3_takes_them_too(tmp_path, obj, data):
    sqlite_dbm = pytest.importorskip("dbm.sqlite3", reason="dbm.sqlite3 is new in Python 3.13")
    db = sqlite_dbm.open(str(tmp_path / "db.sqlite"), "c")
    try:
        db[b"k"] = obj
        assert db[b"k"] == data
    finally:
        db.close()


@pytest.mark.parametrize("flag", ["C", "rw", "", "cx", "cm"])
def test_a_bad_flag_is_this_modules_error_and_a_value_error(tmp_path, flag):
    """dbm.gnu and dbm.ndbm raise their ``error`` for a flag they do not know (dbm.gnu's docs: "The
    exception error is raised if an invalid flag is specified"), dbm.dumb and dbm.sqlite3 a ValueError.
    This module, whose flags and open_flags are dbm.gnu's, raised a ValueError only, which
    ``except dbm.error:`` missed."""
    import dbm

    path = str(tmp_path / "db")
    for opener in (kdbm.open, kshelve.open):
        with pytest.raises(kdbm.error, match="flag must be") as info:
            opener(path, flag)
        assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigurationError)
        assert isinstance(info.value, dbm.error) and info.value.errno == errno.EINVAL
    assert not os.path.exists(path)
