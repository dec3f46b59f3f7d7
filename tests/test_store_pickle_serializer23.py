"""Pickling a Store pickles its serializer (unpickling opens the store again with it): one that cannot
be pickled raises PickleSerializationError naming the serializer and what to do, not pickle's bare
TypeError; a copy (which pickles nothing) still works, and a picklable serializer still travels."""

from __future__ import annotations

import copy
import io
import json
import pickle
import threading

import pytest

from kv_backend import Store
from kv_backend.serializers import PickleSerializationError


class LockedJSON:
    """A JSON serializer holding a lock, which pickle refuses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def dumps(self, value: object) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> object:
        return json.loads(data)

    def __repr__(self) -> str:
        return "<LockedJSON>"


class PlainJSON(LockedJSON):
    """The same serializer, picklable: no lock."""

    def __init__(self) -> None:
        pass


def test_an_unpicklable_serializer_is_named(store_path):
    with Store(store_path, LockedJSON()) as s:
        s["k"] = [1, 2]
        for protocol in (2, pickle.HIGHEST_PROTOCOL):
            with pytest.raises(PickleSerializationError, match="serializer <LockedJSON>") as info:
                pickle.dumps(s, protocol)
            assert isinstance(info.value, TypeError)
            assert "cannot pickle '_thread.lock' object" in str(info.value)
        assert s["k"] == [1, 2]  # the store is untouched


def test_a_serializer_only_the_pickler_at_work_carries_still_travels(store_path):
    """A class defined in a function: pickle refuses it, a pickler such as cloudpickle carries it."""

    class Local(PlainJSON):
        pass

    class Carrier(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            return "Local" if obj is Local else None

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: object) -> object:
            return Local

    with Store(store_path, Local()) as s:
        s["k"] = 1
        with pytest.raises(AttributeError, match="Local"):  # pickle's own error, naming the class
            pickle.dumps(s)
        buf = io.BytesIO()
        Carrier(buf).dump(s)
        buf.seek(0)
        with Unpickler(buf).load() as back:
            assert back["k"] == 1 and type(back.serializer.inner) is Local


def test_copies_and_picklable_serializers_still_work(store_path):
    with Store(store_path, LockedJSON()) as s:
        s["k"] = 1
        with copy.copy(s) as c:
            assert c["k"] == 1 and c.serializer is s.serializer
        with pytest.raises(PickleSerializationError, match="serializer <LockedJSON>"):
            copy.deepcopy(s)
    with Store(store_path, PlainJSON()) as s:
        with pickle.loads(pickle.dumps(s)) as back:
            assert back["k"] == 1 and type(back.serializer.inner) is PlainJSON
        with copy.deepcopy(s) as deep:
            assert deep["k"] == 1 and deep.serializer is not s.serializer
