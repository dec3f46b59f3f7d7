"""A serializer class given where an instance belongs is refused at open, whoever wrote the class.

Only the built-in classes were caught: a user's class with plain dumps/loads methods was accepted,
and every write then failed with "type.dumps failed ... missing 1 required positional argument".
A class whose dumps and loads are static or class methods needs no instance and is still taken.
"""

from __future__ import annotations

import json

import pytest

from kv_backend import Store
from kv_backend.errors import ConfigurationError
from kv_backend.serializers import JSONSerializer


class PlainMethods:
    def dumps(self, value: object) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> object:
        return json.loads(data)


class OnlyLoadsPlain:
    @staticmethod
    def dumps(value: object) -> bytes:
        return json.dumps(value).encode()

    def loads(self, data: bytes) -> object:
        return json.loads(data)


class StaticAndClassMethods:
    @staticmethod
    def dumps(value: object) -> bytes:
        return json.dumps(value).encode()

    @classmethod
    def loads(cls, data: bytes) -> object:
        return json.loads(data)


@pytest.mark.parametrize("cls", [PlainMethods, OnlyLoadsPlain, JSONSerializer])
def test_a_class_that_needs_an_instance_is_refused_at_open(tmp_path, cls):
    path = tmp_path / "s"
    advice = rf"serializer={cls.__name__} is the class; pass an instance such as {cls.__name__}\(\)"
    with pytest.raises(ConfigurationError, match=advice):
        Store(str(path), cls)
    assert not path.exists()  # refused before anything was created


def test_an_instance_of_it_works(tmp_path):
    with Store(str(tmp_path / "s"), PlainMethods()) as s:
        s["k"] = {"a": 1}
        assert s["k"] == {"a": 1}


def test_a_class_of_static_and_class_methods_is_a_serializer(tmp_path):
    with Store(str(tmp_path / "s"), StaticAndClassMethods) as s:
        s["k"] = [1, 2]
        assert s["k"] == [1, 2]
