"""``|`` and ``|=`` on a Store, as on a dict (#4).

``store |= {"k": 1}`` raised ``TypeError: unsupported operand type(s)``, and so did
``store | d`` and ``d | store``, though a Store is documented as a dict on disk
and ``dict`` has had these operators since Python 3.9. Now ``|=`` is an atomic
``update()``, and ``|`` gives a new ``dict`` (as ``os.environ | d`` does).
"""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import InvalidArgumentError, ReadOnlyError
from kv_backend.serializers import SerializationError


@pytest.fixture
def store(store_path):
    with Store(store_path, serializer="json") as s:
        s.update({"a": 1, "b": 2})
        yield s


def test_in_place_union_updates_the_store_and_keeps_it(store):
    before = store
    store |= {"b": 20, "c": 3}
    assert store is before and not store.closed
    assert dict(store) == {"a": 1, "b": 20, "c": 3}
    store |= [("d", 4)]  # pairs, as dict |= takes
    assert store["d"] == 4


def test_in_place_union_is_all_or_nothing(store):
    with pytest.raises(SerializationError):
        store |= {"x": 1, "y": {1, 2}}  # a set is not JSON
    assert dict(store) == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        store |= 5
    with pytest.raises(InvalidArgumentError):
        store |= [("only-a-key",)]
    assert dict(store) == {"a": 1, "b": 2}


def test_union_gives_a_new_dict_and_leaves_the_store(store):
    assert store | {"b": 20, "z": 0} == {"a": 1, "b": 20, "z": 0}
    assert {"b": 20, "z": 0} | store == {"a": 1, "b": 2, "z": 0}
    assert type(store | {}) is dict and type({} | store) is dict
    assert dict(store) == {"a": 1, "b": 2}
    with pytest.raises(TypeError):
        store | [("c", 3)]  # as dict | list
    with pytest.raises(TypeError):
        [("c", 3)] | store


def test_in_place_union_on_a_read_only_store_raises(store, store_path):
    with Store(store_path, serializer="json", read_only=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro |= {"c": 3}
        assert ro | {"c": 3} == {"a": 1, "b": 2, "c": 3}
