"""``update()`` with nothing to store after ``close()`` (#2, #4).

The docs say every call after ``close()`` raises, and ``Store.update({})`` does,
but ``DB.update({})`` (and ``update()``, ``update([])``) returned quietly on a
closed DB, so code that went on with a handle it had closed learnt it only at a
later call, if any. It now raises ``DatabaseClosedError``. A dbm database and a
shelf keep doing nothing there, as the stdlib's do (their differential tests
compare it); docs/store.md says so.
"""

from __future__ import annotations

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import DB, Store
from kv_backend.errors import DatabaseClosedError

_CALLS = {
    "update({})": lambda o: o.update({}),
    "update()": lambda o: o.update(),
    "update([])": lambda o: o.update([]),
}


@pytest.mark.parametrize("call", list(_CALLS))
@pytest.mark.parametrize("opener", [DB, Store], ids=["DB", "Store"])
def test_an_empty_update_after_close_raises(tmp_path, opener, call):
    obj = opener(str(tmp_path / "db"))
    obj.update({})  # open: nothing to do, nothing raised
    obj.close()
    with pytest.raises(DatabaseClosedError, match="is closed"):
        _CALLS[call](obj)


@pytest.mark.parametrize("call", list(_CALLS))
def test_dbm_and_shelf_do_nothing_there_as_the_stdlib(tmp_path, call):
    db = kv_dbm.open(str(tmp_path / "dbm"), "c")
    shelf = kv_shelve.open(str(tmp_path / "shelf"))
    db.close()
    shelf.close()
    assert _CALLS[call](db) is None and _CALLS[call](shelf) is None
    assert shelf.sync() is None
    with pytest.raises(kv_dbm.ClosedError):
        db.update({b"k": b"v"})  # something to store: raises
