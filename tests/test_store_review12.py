"""kv_backend.Store used directly from Python with the keys, values and arguments a program may
pass: what comes back is what docs/store.md promises, and failures are the project's errors."""

from __future__ import annotations

import pytest

from kv_backend import Store
from kv_backend.errors import ConfigurationError, InvalidArgumentError
from kv_backend.structures import Structures


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


def test_an_empty_path_is_refused_instead_of_opening_the_working_directory(tmp_path, monkeypatch):
    """Store("") (a setting left empty, say) opened the current directory as the store: an empty
    one silently became a store, another gave "<cwd> is not a kv_backend store" for a directory
    the caller never named. An empty path is a ConfigurationError, a path that is no path an
    InvalidArgumentError (it was Python's bare TypeError), and nothing is created."""
    monkeypatch.chdir(tmp_path)
    for path in ("", b""):
        with pytest.raises(ConfigurationError, match="empty"):
            Store(path)
        with pytest.raises(ConfigurationError, match="empty"):
            Structures(path)
    for path in (None, 5):
        with pytest.raises(InvalidArgumentError):
            Store(path)
    assert list(tmp_path.iterdir()) == []
    with Store(".") as s:  # the working directory, named
        s["k"] = 1
    assert (tmp_path / "KVB_FORMAT").exists()
