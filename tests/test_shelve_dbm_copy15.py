"""Pickling and copying a shelf or a dbm database (#4).

``pickle.dumps`` and ``copy.deepcopy`` of a ``kv_backend.shelve`` shelf or a
``kv_backend.dbm`` database failed with a bare ``TypeError: cannot pickle
'_thread.RLock' object`` from deep inside the engine, which says nothing of
what to do; ``copy.copy`` made an object sharing the database (and a shelf's
writeback cache) with the original, so closing either broke the other, and the
copy then raised in ``__del__``. All three now raise the project's
``PickleSerializationError`` (a ``TypeError`` and ``pickle.PicklingError``) naming
the path to open again. A ``Store`` still pickles and copies as another handle.
"""

from __future__ import annotations

import copy
import pickle
import re

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import Store
from kv_backend.serializers import PickleSerializationError

_WAYS = [pickle.dumps, copy.copy, copy.deepcopy]


@pytest.mark.parametrize("copier", _WAYS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("writeback", [False, True])
def test_a_shelf_cannot_be_pickled_or_copied(tmp_path, copier, writeback):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path, writeback=writeback) as shelf:
        shelf["k"] = [1]
        with pytest.raises(PickleSerializationError, match=re.escape(f"open {path!r} again")) as info:
            copier(shelf)
        assert isinstance(info.value, TypeError) and isinstance(info.value, pickle.PicklingError)
        shelf["k"].append(2)
        assert dict(shelf) == {"k": [1, 2] if writeback else [1]}  # the shelf is untouched
    with kv_shelve.open(path, "r") as shelf:
        assert shelf["k"] == ([1, 2] if writeback else [1])


@pytest.mark.parametrize("copier", _WAYS, ids=lambda f: f.__name__)
def test_a_dbm_database_cannot_be_pickled_or_copied(tmp_path, copier):
    path = str(tmp_path / "db")
    with kv_dbm.open(path, "c") as db:
        db[b"k"] = b"v"
        with pytest.raises(PickleSerializationError, match=re.escape(f"open {path!r} again")) as info:
            copier(db)
        assert isinstance(info.value, TypeError)
        assert dict(db) == {b"k": b"v"}
    with pytest.raises(PickleSerializationError, match="cannot be pickled"):
        pickle.dumps(db)  # closed: the same answer


def test_a_closed_shelf_cannot_be_pickled_either(tmp_path):
    shelf = kv_shelve.open(str(tmp_path / "shelf"))
    shelf.close()
    with pytest.raises(PickleSerializationError, match="open its path again"):
        pickle.dumps(shelf)


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=lambda f: f.__name__)
def test_a_store_copy_is_another_handle_on_the_same_data(store_path, copier):
    with Store(store_path) as s:
        s["k"] = 1
        other = copier(s)
        try:
            assert other is not s and other.path == s.path
            other["k"] = 2
            assert s["k"] == 2
        finally:
            other.close()
        assert not s.closed
