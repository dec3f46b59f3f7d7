"""A store closed in the middle of an update (by the caller's own code running inside it) says so.

``DB.update(key, fn)`` (so ``Store.modify`` and ``Store.incr``) whose ``fn`` closed the store went on to
write on the closed files: a bare ``AssertionError`` (under ``python -O``, a write to a file object that
was gone). Now it raises DatabaseClosedError saying nothing was written; the path opens again as before.
"""

from __future__ import annotations

import pytest

from kv_backend import DB, Store
from kv_backend.errors import DatabaseClosedError


def _closing(closable, result):
    def fn(*_):
        closable.close()
        return result

    return fn


@pytest.mark.parametrize("new", [b"new", None], ids=["replace", "delete"])
def test_an_update_whose_function_closes_the_store_writes_nothing(tmp_path, new):
    path = str(tmp_path / "s")
    with DB(path) as db:
        db[b"k"] = b"old"
    db = DB(path)
    with pytest.raises(DatabaseClosedError, match="closed by the function given to update"):
        db.update(b"k", _closing(db, new))
    assert db.closed
    with DB(path) as db:
        assert db[b"k"] == b"old"
        db[b"after"] = b"1"  # (the write lock was released)
        assert db.stats()["keys"] == 2


def test_a_modify_whose_function_closes_the_store_writes_nothing(tmp_path):
    path = str(tmp_path / "s")
    with Store(path) as store:
        store["n"] = 1
    store = Store(path)
    with pytest.raises(DatabaseClosedError, match="nothing was written"):
        store.modify("n", _closing(store, 2))
    with Store(path) as store:
        assert store["n"] == 1
        assert store.incr("n") == 2
