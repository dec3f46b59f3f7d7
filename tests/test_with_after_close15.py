"""A ``with`` block on a closed Store, DB, dbm database or shelf (#4).

The docs say every call after ``close()`` raises, but ``with s:`` on a closed
object entered the block silently, and the first use inside it raised (or, for
a block that only hands the object on, nothing did): code that reuses a handle
it closed learnt it only later. Entering now raises the error of any other use
after close, as a closed file does.
"""

from __future__ import annotations

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import DB, Store
from kv_backend.errors import DatabaseClosedError


def _open(kind: str, path: str):
    if kind == "Store":
        return Store(path)
    if kind == "DB":
        return DB(path)
    return kv_dbm.open(path, "c") if kind == "dbm" else kv_shelve.open(path)


def _closed(kind: str, path: str):
    obj = _open(kind, path)
    obj.close()
    return obj


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("Store", DatabaseClosedError, "is closed"),
        ("DB", DatabaseClosedError, "is closed"),
        ("dbm", kv_dbm.ClosedError, "has already been closed"),
        ("shelf", ValueError, "invalid operation on closed shelf"),
    ],
)
def test_with_on_a_closed_object_raises_before_the_block(tmp_path, kind, error, message):
    obj = _closed(kind, str(tmp_path / kind))
    entered = []
    with pytest.raises(error, match=message), obj:
        entered.append(True)
    assert entered == []
    obj.close()  # still idempotent


@pytest.mark.parametrize("kind", ["Store", "DB", "dbm", "shelf"])
def test_with_on_an_open_object_still_closes_it(tmp_path, kind):
    obj = _open(kind, str(tmp_path / kind))
    with obj as same:
        assert same is obj
    assert obj.closed if kind != "shelf" else isinstance(obj.dict, kv_shelve._ClosedDict)
