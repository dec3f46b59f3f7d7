"""Pickling and copying a DB (#2, #4).

``pickle.dumps(db)`` and ``copy.deepcopy(db)`` failed with a bare ``TypeError:
cannot pickle '_thread.RLock' object`` from inside the engine, which says nothing
of what to do, and ``copy.copy(db)`` made a second DB sharing the open files,
lock and thread locks of the first: closing one left the other with closed files.
All three now raise ``PickleSerializationError`` naming the path to open again,
as they do for a kv_backend.dbm database and a shelf (the same helper).
"""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from kv_backend import DB, Store
from kv_backend.serializers import PickleSerializationError


@pytest.mark.parametrize("copier", [pickle.dumps, copy.copy, copy.deepcopy], ids=lambda f: f.__name__)
def test_a_db_cannot_be_pickled_or_copied(tmp_path, copier):
    path = str(tmp_path / "db")
    with DB(path) as db:
        db[b"k"] = b"v"
        with pytest.raises(PickleSerializationError, match=re.escape(f"open {path!r} again")) as info:
            copier(db)
        assert isinstance(info.value, TypeError) and isinstance(info.value, pickle.PicklingError)
        db[b"k2"] = b"v2"  # untouched, still usable
        assert dict(db) == {b"k": b"v", b"k2": b"v2"}
    with pytest.raises(PickleSerializationError, match="cannot be pickled"):
        copier(db)  # closed: the same answer


def test_a_store_over_it_still_pickles_as_another_handle(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s["k"] = [1]
        other = pickle.loads(pickle.dumps(s))
        try:
            assert other["k"] == [1] and other.db is not s.db
        finally:
            other.close()
