"""``DB``'s mapping methods as docs/engine.md describes them.

``values()`` takes the ``prefix``, ``start`` and ``reverse`` options that ``keys()`` and ``items()``
take; ``popitem()`` and ``setdefault()`` are atomic across processes, as ``pop()`` is: the tests
let another handle on the same store change the key between the call's read and its write.
"""

from __future__ import annotations

import pytest

from kv_backend import DB, InvalidValueError


def test_values_take_the_options_of_keys(db):
    db.update({b"a1": b"1", b"a2": b"2", b"a3": b"3", b"b1": b"4"})
    assert list(db.values(prefix=b"a")) == [b"1", b"2", b"3"]
    assert list(db.values(start=b"a2")) == [b"2", b"3", b"4"]
    assert list(db.values(prefix=b"a", start=b"a2", reverse=True)) == [b"2", b"1"]
    assert list(db.values()) == [v for _, v in db.items()]
    with pytest.raises(TypeError):
        db.values(b"a")  # keyword-only, as for keys() and items()


def test_popitem_moves_on_when_another_process_takes_the_smallest_key(db, store_path, monkeypatch):
    db.update({b"a": b"1", b"b": b"2"})
    other = DB(store_path)
    real_keys = DB.keys
    taken: list[bytes] = []

    def keys_then_taken(self, **options):
        for key in real_keys(self, **options):
            if not taken:
                taken.append(other.pop(key))  # another handle pops it between the scan and the delete
            yield key

    monkeypatch.setattr(DB, "keys", keys_then_taken)
    try:
        assert db.popitem() == (b"b", b"2")
    finally:
        other.close()
    assert taken == [b"1"]
    assert len(db) == 0
    with pytest.raises(KeyError):
        db.popitem()


def test_setdefault_returns_the_value_another_process_stored_first(db, store_path, monkeypatch):
    other = DB(store_path)
    real_get = DB.get
    real_getitem = DB.__getitem__

    def other_writes_after(read):
        def wrapper(self, *args):
            try:
                return read(self, *args)
            finally:
                if self is db and not other.closed:
                    other.put(b"k", b"theirs")
                    other.close()

        return wrapper

    monkeypatch.setattr(DB, "get", other_writes_after(real_get))
    monkeypatch.setattr(DB, "__getitem__", other_writes_after(real_getitem))
    assert db.setdefault(b"k", b"mine") == b"theirs"
    monkeypatch.undo()
    assert db[b"k"] == b"theirs"


def test_setdefault_checks_the_default_only_when_it_stores_it(db):
    db[b"k"] = b"v"
    assert db.setdefault(b"k") == b"v"
    assert db.setdefault(b"k", "not bytes") == b"v"
    assert db.setdefault(b"new", bytearray(b"x")) == b"x"
    with pytest.raises(InvalidValueError):
        db.setdefault(b"absent")
    assert b"absent" not in db
