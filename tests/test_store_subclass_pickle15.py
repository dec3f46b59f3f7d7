"""Pickling and copying an instance of a Store subclass (#4).

``pickle.loads(pickle.dumps(s))``, ``copy.copy(s)`` and ``copy.deepcopy(s)`` of an
instance of a ``Store`` subclass gave a plain ``Store``: the subclass's methods
were gone (``AttributeError`` in the worker process that received it) and so
were the attributes it had set. They now give an instance of the subclass, with
its own attributes, on the same path; a plain Store pickles as before.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from kv_backend import Store


class Sessions(Store):
    def __init__(self, path: str, owner: str) -> None:
        super().__init__(path, "json")
        self.owner = owner

    def active(self) -> list[str]:
        return list(self.keys(prefix=f"{self.owner}:"))


_WAYS = [lambda s: pickle.loads(pickle.dumps(s)), copy.copy, copy.deepcopy]


@pytest.mark.parametrize("again", _WAYS, ids=["pickle", "copy", "deepcopy"])
def test_a_subclass_instance_comes_back_as_the_subclass(store_path, again):
    with Sessions(store_path, "ada") as s:
        s["ada:1"] = {"n": 1}
        s["bob:1"] = {"n": 2}
        other = again(s)
        try:
            assert type(other) is Sessions and other is not s
            assert other.owner == "ada" and other.active() == ["ada:1"]
            assert other.serializer.name == "json" and other.path == s.path
            other["ada:2"] = {"n": 3}
            assert s.active() == ["ada:1", "ada:2"]
        finally:
            other.close()
        assert not s.closed


def test_a_plain_store_pickles_as_before(store_path):
    with Store(store_path, key_type=bytes, serializer="raw", sync="always") as s:
        s[b"k"] = b"v"
        reduced = s.__reduce__()
        assert len(reduced) == 2  # no state: the same pickle as before
        with pickle.loads(pickle.dumps(s)) as other:
            assert type(other) is Store and other[b"k"] == b"v"
            assert other.key_type is bytes and other.db.sync_mode == "always"


def test_every_attribute_store_init_sets_is_listed(store_path):
    # An attribute missing from the list would be pickled as a subclass's (the engine cannot be).
    from kv_backend.store import _STORE_ATTRIBUTES

    with Store(store_path) as s:
        assert set(vars(s)) <= _STORE_ATTRIBUTES
