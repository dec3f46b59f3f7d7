"""Store review 10: reads that fail must not lose data, and bad input raises the project's errors."""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.serializers import DeserializationError
from kv_backend.store import KeyEncodingError


def test_pop_of_an_unreadable_value_raises_and_keeps_it(tmp_path):
    """pop() deleted the key, then decoded the value: bytes another serializer wrote raised
    DeserializationError with the key already gone. The value is now decoded under the write
    lock before the delete, so the error leaves it stored (readable with the right serializer)."""
    with Store(str(tmp_path / "s"), "json") as s:
        s.db.put(b"a", b"\x80 not json")
        with pytest.raises(DeserializationError):
            s.pop("a")
        with pytest.raises(DeserializationError):
            s.pop("a", None)
        assert s.db.get(b"a") == b"\x80 not json"
        s["b"] = [1]
        assert s.pop("b") == [1]
        assert "b" not in s


def test_popitem_of_an_unreadable_pair_raises_and_keeps_it(tmp_path):
    """popitem() lost the smallest pair when its value could not be decoded, or when its key was
    not UTF-8 in a str store (KeyEncodingError after the delete); both now stay stored."""
    with Store(str(tmp_path / "s"), "json") as s:
        s.db.put(b"a", b"\x80 not json")
        s["b"] = 2
        with pytest.raises(DeserializationError):
            s.popitem()
        assert s.db.get(b"a") == b"\x80 not json"
        del s.db[b"a"]
        s.db.put(b"\xff", b"3")  # not UTF-8: written through the engine
        assert s.popitem() == ("b", 2)
        with pytest.raises(KeyEncodingError, match="key_type=bytes"):
            s.popitem()
        assert s.db.get(b"\xff") == b"3"
    with Store(str(tmp_path / "s"), "json", key_type=bytes) as s:
        assert s.popitem() == (b"\xff", 3)
        with pytest.raises(KeyError):
            s.popitem()
