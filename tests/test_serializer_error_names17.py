"""A serializer's failures name it: serializer=json (the module, as store.md offers) said "module.dumps
failed", and a class of static methods "type.dumps failed"; they now say json and the class's name.
"""

from __future__ import annotations

import json

import pytest

from kv_backend import Store
from kv_backend.serializers import DeserializationError, SerializationError


class StaticJSON:
    @staticmethod
    def dumps(value: object) -> bytes:
        return json.dumps(value).encode()

    @staticmethod
    def loads(data: bytes) -> object:
        return json.loads(data)


class Instance(StaticJSON):
    name = "my-format"


@pytest.mark.parametrize(
    ("serializer", "name"), [(json, "json"), (StaticJSON, "StaticJSON"), (Instance(), "my-format")]
)
def test_the_error_names_the_serializer(tmp_path, serializer, name):
    with Store(str(tmp_path / "s"), serializer) as s:
        with pytest.raises(SerializationError, match=rf"^{name}\.dumps failed for a value of type set"):
            s["k"] = {1, 2}
        s.db.put(b"bad", b"{not json")
        with pytest.raises(DeserializationError, match=rf"^{name}\.loads failed"):
            s["bad"]
