"""``clear()`` of a shelf subclass that overrides ``__delitem__`` leaves what its ``__delitem__`` keeps.

clear() deleted each key through the subclass's ``__delitem__`` (as the docs say, and as a subclass of
the stdlib's shelf has it), and then cleared the database again, directly: a key the subclass's
``__delitem__`` chose to keep (a pinned entry, a tombstone of a soft delete) was removed behind its back.
clear() now ends after the deletes, as update(), setdefault(), pop() and popitem() do.
"""

from __future__ import annotations

import pytest

import kv_backend.shelve as kv_shelve


class Pinned(kv_shelve.KVShelf):
    """Entries whose key starts with "pin:" cannot be deleted; every other delete is logged."""

    def __delitem__(self, key: str) -> None:
        self.__dict__.setdefault("deleted", []).append(key)
        if not key.startswith("pin:"):
            super().__delitem__(key)


@pytest.mark.parametrize("writeback", [False, True])
def test_clear_leaves_what_the_subclass_delitem_keeps(tmp_path, writeback):
    path = str(tmp_path / "shelf")
    shelf = Pinned(path, "c", writeback=writeback)
    shelf.update({"a": 1, "pin:config": {"x": 1}, "b": [2]})
    shelf.clear()
    assert sorted(shelf.__dict__["deleted"]) == ["a", "b", "pin:config"]
    assert dict(shelf) == {"pin:config": {"x": 1}}
    shelf.close()
    with kv_shelve.open(path) as plain:
        assert dict(plain) == {"pin:config": {"x": 1}}
        plain.clear()  # (a shelf without the override clears everything at once)
        assert len(plain) == 0


def test_clear_deletes_an_entry_only_the_cache_still_holds(tmp_path):
    # With writeback, an entry this process read stays present for it after another process deleted
    # it (docs/store.md); clear() deletes it too, through __delitem__, as the direct path drops it.
    path = str(tmp_path / "shelf")
    with Pinned(path, "c", writeback=True) as shelf:
        shelf.update({"a": [1], "b": [2]})
        shelf.sync()
        assert shelf["a"] == [1]
        with kv_shelve.open(path) as other:
            del other["a"]
        assert "a" in shelf
        shelf.clear()
        assert "a" not in shelf and len(shelf) == 0
        assert sorted(shelf.__dict__["deleted"]) == ["a", "b"]
    with kv_shelve.open(path) as plain:
        assert dict(plain) == {}
