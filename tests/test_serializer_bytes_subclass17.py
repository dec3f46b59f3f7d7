"""A value that is a bytes subclass (numpy.bytes_, a user's tagged bytes) is bytes to every serializer.

The raw serializer took only exact bytes, bytearray and memoryview, and a user serializer's dumps()
returning a bytes subclass was refused as "must return bytes", although kv_backend.dbm (and a bytes
Store's keys) accept bytes subclasses.
"""

from __future__ import annotations

import json

import pytest

from kv_backend import Store
from kv_backend.serializers import RawSerializer, SerializationError


class TaggedBytes(bytes):
    """A bytes subclass, as numpy.bytes_ is."""


class JSONAsTaggedBytes:
    def dumps(self, value: object) -> bytes:
        return TaggedBytes(json.dumps(value).encode())

    def loads(self, data: bytes) -> object:
        return json.loads(data)


def test_raw_store_takes_a_bytes_subclass_everywhere(tmp_path):
    with Store(str(tmp_path / "s"), "raw") as s:
        s["item"] = TaggedBytes(b"one")
        s.set("set", TaggedBytes(b"two"), ttl=60)
        s.update({"upd": TaggedBytes(b"three")})
        assert s.setdefault("sd", TaggedBytes(b"four")) == b"four"
        with s.batch() as b:
            b.set("batch", TaggedBytes(b"five"))
        assert dict(s) == {"item": b"one", "set": b"two", "upd": b"three", "sd": b"four", "batch": b"five"}
        assert all(type(v) is bytes for v in s.values())  # stored and read back as plain bytes


def test_raw_serializer_still_refuses_what_is_not_bytes_like(tmp_path):
    assert RawSerializer().dumps(TaggedBytes(b"x")) == b"x"
    with Store(str(tmp_path / "s"), "raw") as s, pytest.raises(SerializationError, match="bytes only"):
        s["k"] = "text"


def test_a_user_serializer_may_return_a_bytes_subclass(tmp_path):
    with Store(str(tmp_path / "s"), JSONAsTaggedBytes()) as s:
        s["k"] = {"a": [1, 2]}
        s.set_many({"m": 3})
        assert s["k"] == {"a": [1, 2]}
        assert s.get("m") == 3
        assert type(s.db.get(b"k")) is bytes
