"""Store, shelve and dbm edge cases: keys that can never be stored in views, and more."""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.serializers import DeserializationError


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2})
        yield s


@pytest.mark.parametrize("key", ["", "x" * 70_000])
def test_views_never_hold_a_key_that_cannot_be_stored(store, key):
    """Like ``key in store``, a view's ``in`` is False for an empty or over-long key (it raised
    KeyTooLargeError), so set operations with such keys work as they do on dict views."""
    assert key not in store
    assert key not in store.keys()  # noqa: SIM118 - the view itself is tested
    assert (key, 1) not in store.items()
    assert store.keys() & {key, "a"} == {"a"}
    assert not {key} <= store.keys()
    assert store.keys() - {key} == {"a", "b"}
    assert store.items() & {(key, 1), ("a", 1)} == {("a", 1)}
    assert store.keys(prefix="a") & {key, "a"} == {"a"}


def test_json_nested_too_deep_to_decode_is_a_deserialization_error(tmp_path):
    """JSON data nested deeper than the decoder can go (written by another program: the json
    serializer is the one for untrusted writers) raised a bare RecursionError on read; it is
    now DeserializationError like any other unreadable value, and the store stays usable."""
    with Store(str(tmp_path / "j"), "json") as s:
        s.db.put(b"deep", b"[" * 100_000 + b"]" * 100_000)
        with pytest.raises(DeserializationError, match="not UTF-8 JSON"):
            s["deep"]
        with pytest.raises(DeserializationError):
            s.get("deep")
        s["ok"] = [[1]]
        assert s["ok"] == [[1]]
