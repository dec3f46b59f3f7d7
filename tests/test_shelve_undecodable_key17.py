"""A shelf meeting a stored key its keyencoding cannot decode raises UndecodableKeyError.

Iterating such a shelf (or its keys(), items(), values(), popitem()) raised a bare UnicodeDecodeError
that named neither the key nor where it came from, outside the project's errors, where a str Store
raises KeyEncodingError saying to open it with key_type=bytes. The new error is both, so code written
for the stdlib's shelf (except UnicodeDecodeError) still catches it.
"""

from __future__ import annotations

import pickle

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend.errors import KeyEncodingError, UndecodableKeyError


@pytest.fixture
def shelf_path(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_dbm.open(path, "c") as db:
        db[b"a\x80binary"] = pickle.dumps("from dbm")  # the smallest key: popitem() meets it first
        db[b"text"] = pickle.dumps("from a shelf")
    return path


@pytest.mark.parametrize("walk", ["iter", "keys", "items", "values", "popitem"])
def test_an_undecodable_key_raises_the_project_error_naming_it(shelf_path, walk):
    with kv_shelve.open(shelf_path) as shelf:
        walks = {
            "iter": lambda: list(shelf),
            "keys": lambda: list(shelf.keys()),
            "items": lambda: list(shelf.items()),
            "values": lambda: list(shelf.values()),
            "popitem": shelf.popitem,
        }
        with pytest.raises(UndecodableKeyError) as info:
            walks[walk]()
        assert isinstance(info.value, UnicodeDecodeError) and isinstance(info.value, KeyEncodingError)
        assert info.value.object == b"a\x80binary" and info.value.encoding == "utf-8"
        assert "b'a\\x80binary' is not utf-8 text" in str(info.value)
        assert "key_type=bytes" in str(info.value)
        assert len(shelf) == 2  # popitem() left it stored
        assert shelf["text"] == "from a shelf"


def test_the_key_is_reachable_as_the_message_says(shelf_path):
    with kv_dbm.open(shelf_path, "w") as db:
        del db[b"a\x80binary"]
    with kv_shelve.open(shelf_path) as shelf:
        assert dict(shelf.items()) == {"text": "from a shelf"}
