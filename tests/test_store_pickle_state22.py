"""Pickling and copying a Store subclass with ``__slots__``, and a Store's batch.

A Store subclass's instance came back from ``pickle`` (or ``copy.copy``) with the attributes of its
``__dict__`` but without those of its ``__slots__``: reading one raised AttributeError on the other
side. They now come back too. And a batch (``with store.batch() as b``) pickled or copied: the copy
took writes that were never made (a batch writes when its block ends, in its own process); that is
now refused with PickleSerializationError.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from kv_backend import Store
from kv_backend.serializers import PickleSerializationError


class Tagged(Store):
    __slots__ = ("__secret", "tag", "unset")


class MoreTagged(Tagged):
    __slots__ = "extra"


def _made(cls, path):
    store = cls(path, serializer="json")
    store.tag = "t"
    store._Tagged__secret = 42
    store.note = "in __dict__"
    store["k"] = [1]
    return store


@pytest.mark.parametrize("how", ["pickle", "copy", "deepcopy"])
def test_the_slots_of_a_subclass_come_back(store_path, how):
    store = _made(MoreTagged, store_path)
    store.extra = {"x": 1}
    clone = {
        "pickle": lambda s: pickle.loads(pickle.dumps(s)),
        "copy": copy.copy,
        "deepcopy": copy.deepcopy,
    }[how](store)
    try:
        assert type(clone) is MoreTagged and clone is not store
        assert (clone.tag, clone._Tagged__secret, clone.extra) == ("t", 42, {"x": 1})
        assert clone.note == "in __dict__"
        assert not hasattr(clone, "unset")  # (never set: still unset)
        assert clone["k"] == [1] and clone.serializer.name == "json"
        clone["k2"] = 2
        assert store["k2"] == 2  # another handle on the same directory
    finally:
        clone.close()
        store.close()


class Plain(Store):
    pass


def test_a_subclass_without_slots_is_pickled_as_before(store_path):
    with Plain(store_path) as store:
        store.note = 1
        with pickle.loads(pickle.dumps(store)) as clone:
            assert type(clone) is Plain and clone.note == 1


@pytest.mark.parametrize("how", [pickle.dumps, copy.copy, copy.deepcopy])
def test_a_batch_cannot_be_pickled_or_copied(store_path, how):
    with Store(store_path) as store:
        with store.batch() as batch:
            batch["a"] = 1
            with pytest.raises(PickleSerializationError, match="batch cannot be pickled or copied"):
                how(batch)
            batch["b"] = 2
        assert dict(store.items()) == {"a": 1, "b": 2}
