"""A KVShelf subclass that overrides ``__getitem__``, ``__setitem__`` or ``__delitem__`` has them used by
update(), setdefault(), pop(), popitem() and clear(), as a subclass of the stdlib's shelf has.

Those methods wrote and read the database directly: a subclass whose ``__setitem__`` wraps values (a
version stamp, a check) had ``update()`` and ``setdefault()`` store them unwrapped, and ``pop()`` and
``popitem()`` returned the stored form its ``__getitem__`` unwraps, where the stdlib's shelf (whose
methods are ``MutableMapping``'s) goes through them.
"""

from __future__ import annotations

import shelve
from typing import Any

import pytest

import kv_backend.shelve as kv_shelve


def _wrapping(base: type) -> type:
    class Wrapping(base):  # type: ignore[misc, valid-type]
        deleted: list[str]

        def __setitem__(self, key: str, value: Any) -> None:
            if value == "refused":
                raise ValueError("refused value")
            super().__setitem__(key, ("v1", value))

        def __getitem__(self, key: str) -> Any:
            stored = super().__getitem__(key)
            assert stored[0] == "v1", stored
            return stored[1]

        def __delitem__(self, key: str) -> None:
            super().__delitem__(key)
            self.__dict__.setdefault("deleted", []).append(key)

    return Wrapping


KVWrapping = _wrapping(kv_shelve.KVShelf)
StdWrapping = _wrapping(shelve.Shelf)


def _exercise(shelf: Any) -> list[Any]:
    shelf["a"] = 1
    shelf.update({"b": 2}, c=3)
    shelf.update([("d", [4])])
    seen: list[Any] = [shelf.setdefault("e", 5), shelf.setdefault("a", 0)]
    seen += [shelf.pop("b"), shelf.pop("zz", "default"), shelf.popitem()]
    seen += [shelf.get("c"), sorted(shelf.items()), sorted(map(repr, shelf.values()))]
    with pytest.raises(KeyError):
        shelf.pop("zz")
    seen.append(sorted(shelf))
    shelf.clear()
    seen += [len(shelf), shelf.__dict__.get("deleted")]
    return seen


@pytest.mark.parametrize("writeback", [False, True])
def test_the_subclass_item_methods_are_used_as_by_the_stdlib_shelf(tmp_path, writeback):
    ours = _exercise(KVWrapping(str(tmp_path / "kv"), "c", writeback=writeback))
    theirs = _exercise(StdWrapping({}, writeback=writeback))
    assert ours == theirs
    assert ours[:5] == [5, 1, 2, "default", ("a", 1)]
    assert ours[-1] == ["b", "a", "c", "d", "e"]  # (clear() deleted each key through __delitem__)


def test_what_the_subclass_stores_is_what_its_setitem_makes(tmp_path):
    path = str(tmp_path / "kv")
    with KVWrapping(path, "c") as shelf:
        shelf.update({"a": 1})
        shelf.setdefault("b", 2)
    with kv_shelve.open(path, "r") as plain:
        assert dict(plain.items()) == {"a": ("v1", 1), "b": ("v1", 2)}


@pytest.mark.parametrize("writeback", [False, True])
def test_an_update_through_the_subclass_is_still_all_or_nothing(tmp_path, writeback):
    with KVWrapping(str(tmp_path / "kv"), "c", writeback=writeback) as shelf:
        shelf["a"] = 1
        if writeback:
            assert shelf["a"] == 1  # (cached)
        with pytest.raises(ValueError, match="refused"):
            shelf.update({"a": 10, "b": 2, "c": "refused"})
        assert dict(shelf.items()) == {"a": 1}
        assert set(shelf.cache) <= {"a"}
        assert shelf.cache.get("a", ("v1", 1)) == ("v1", 1)
    with KVWrapping(str(tmp_path / "kv"), "r") as shelf:
        assert dict(shelf.items()) == {"a": 1}


def test_a_missing_key_does_not_spoil_the_callers_transaction(tmp_path):
    with KVWrapping(str(tmp_path / "kv"), "c") as shelf:
        with shelf.dict.db.transaction():
            assert shelf.pop("absent", None) is None
            with pytest.raises(KeyError):
                shelf.pop("absent")
            shelf["kept"] = 1
        assert shelf["kept"] == 1


def test_a_read_only_subclass_shelf_reads_and_refuses_writes(tmp_path):
    path = str(tmp_path / "kv")
    with KVWrapping(path, "c") as shelf:
        shelf["a"] = 1
    with KVWrapping(path, "r") as shelf:
        assert shelf.setdefault("a", 0) == 1 and shelf.pop("absent", "d") == "d"
        with pytest.raises(kv_shelve._kv_dbm.ReadOnlyDatabaseError):
            shelf.pop("a")
        with pytest.raises(kv_shelve._kv_dbm.ReadOnlyDatabaseError):
            shelf.update(b=2)


def test_a_subclass_that_keeps_the_item_methods_keeps_the_direct_paths():
    class Counting(kv_shelve.KVShelf):
        def sync(self) -> None:
            super().sync()

    assert not Counting._overrides_items and KVWrapping._overrides_items
