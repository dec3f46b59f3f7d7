"""kv_backend.Store used directly from Python with the keys, values and arguments a program may
pass: what comes back is what docs/store.md promises, and failures are the project's errors."""

from __future__ import annotations

from kv_backend import Store


def test_get_many_of_a_bytes_store_takes_any_bytes_like_key_and_returns_bytes_keys(store_path):
    """A bytes store takes bytearray and memoryview keys everywhere, but get_many() used the key as
    given for the result's dict: a bytearray or memoryview raised "unhashable type" (after reading
    the values). Its keys are bytes, as iteration returns them."""
    with Store(store_path, key_type=bytes) as s:
        s[b"a"] = 1
        s[b"b"] = 2
        got = s.get_many([bytearray(b"a"), memoryview(b"xb")[1:], b"missing"])
        assert got == {b"a": 1, b"b": 2}
        assert all(type(k) is bytes for k in got)
