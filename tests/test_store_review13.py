"""Store, shelve, dbm and Structures arguments: review 13 (issues #4 and #7)."""

from __future__ import annotations

import pytest

from kv_backend import DB, Store
from kv_backend.errors import InvalidKeyError

LONG = "b" * 70_000  # longer than any key can be, and sorting between "b" and "c"


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2, "c": 3})
        yield s


def test_store_views_take_a_start_longer_than_any_key(store):
    """``start=`` is a bound, not a stored key: one over the key size limit raised
    KeyTooLargeError (a prefix that long already matched nothing); it now bounds the walk."""
    assert list(store.keys(start=LONG)) == ["c"]
    assert list(store.keys(start=LONG, reverse=True)) == ["b", "a"]
    assert list(store.items(start=LONG)) == [("c", 3)]
    assert list(store.values(start=LONG, reverse=True)) == [2, 1]
    assert len(store.keys(start=LONG)) == 1
    assert list(reversed(store.keys(start=LONG))) == ["c"]
    assert list(store.keys(prefix=LONG)) == []
    assert list(store.keys(prefix="b", start=LONG)) == []
    assert list(store.keys(prefix="b", start=LONG, reverse=True)) == ["b"]


def test_db_scans_take_bounds_of_any_length_and_refuse_non_bytes(store):
    """``DB.keys``/``items`` accepted a long bytes prefix but not a long start, nor a long
    bytearray prefix (KeyTooLargeError); and a falsy non-bytes prefix (``0``, ``""``) silently
    meant no prefix while ``"a"`` was refused. Any length is a bound now; the type is checked."""
    db: DB = store.db
    long = LONG.encode()
    assert list(db.keys(start=long)) == [b"c"]
    assert list(db.keys(start=bytearray(long), reverse=True)) == [b"b", b"a"]
    assert list(db.keys(prefix=bytearray(long))) == []
    assert list(db.keys(prefix=memoryview(b"b"))) == [b"b"]
    assert [k for k, _ in db.items(start=long)] == [b"c"]
    assert list(db.keys(prefix=None)) == [b"a", b"b", b"c"]  # None is no prefix, as b"" is
    for bad in (0, "", "a", []):
        with pytest.raises(InvalidKeyError, match="prefix must be bytes"):
            list(db.keys(prefix=bad))
    with pytest.raises(InvalidKeyError, match="start must be bytes"):
        list(db.keys(start=""))
