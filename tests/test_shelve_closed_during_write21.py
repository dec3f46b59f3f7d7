"""A shelf closed in the middle of one of its writes raises the ValueError of every use of a closed shelf.

``shelf[key] = value`` where pickling the value closed the shelf (or where another thread closed it
meanwhile), and ``pop()``/``popitem()`` whose deserializer closed it, raised ``AttributeError:
'_ClosedDict' object has no attribute '_convert'``: the error of the engine was converted through the
shelf's database, which close() had already replaced. They now raise ``ValueError("invalid operation on
closed shelf")``, as any use of the closed shelf does; nothing is written or taken.
"""

from __future__ import annotations

import pickle

import pytest

import kv_backend.shelve as kv_shelve


def test_a_shelf_pop_whose_deserializer_closes_the_shelf_takes_nothing(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path) as shelf:
        shelf["k"] = [1]
        shelf["l"] = [2]

    def deserializer(data: bytes) -> object:
        shelf.close()
        return pickle.loads(data)

    for take in (lambda s: s.pop("k"), lambda s: s.popitem()):
        shelf = kv_shelve.open(path, serializer=pickle.dumps, deserializer=deserializer)
        with pytest.raises(ValueError, match="invalid operation on closed shelf"):
            take(shelf)
    with kv_shelve.open(path) as shelf:
        assert dict(shelf) == {"k": [1], "l": [2]}


class ClosesTheShelf:
    shelf: kv_shelve.KVShelf

    def __reduce__(self):
        self.shelf.close()
        return (int, (1,))


@pytest.mark.parametrize("writeback", [False, True])
def test_a_value_whose_pickling_closes_the_shelf_gives_the_closed_shelf_error(tmp_path, writeback):
    path = str(tmp_path / "shelf")
    value = ClosesTheShelf()
    value.shelf = kv_shelve.open(path, writeback=writeback)
    with pytest.raises(ValueError, match="invalid operation on closed shelf"):
        value.shelf["k"] = value
    with kv_shelve.open(path) as shelf:
        assert "k" not in shelf
