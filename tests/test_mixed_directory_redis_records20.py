"""A Store or a shelf listing a directory that ``kvb serve`` (or ``Structures``) also uses.

The records of Redis keys have engine keys that are not text (a NUL byte, a type letter, the name's
length in 4 bytes...). Listing them through a Store with str keys said the key "was written through
another interface" and to open the store with ``key_type=bytes``; a shelf said it was written
through ``kv_backend.dbm`` or a bytes Store and to "read or remove it through those", which for a
Redis record damages its Redis key. Both now say what the record is and what to do.
"""

from __future__ import annotations

import pickle

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import Store
from kv_backend.errors import KeyEncodingError, UndecodableKeyError
from kv_backend.structures import Structures
from kv_backend.structures.layout import is_structures_key


@pytest.fixture
def mixed(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.zadd("z", {"m": 1.5})  # its order record holds the score's bytes: not UTF-8
        s.hset("h", "f", "v")
    with Store(path) as store:
        store["mine"] = {"a": 1}
    return path


def _says_redis(message: str, front_end: str) -> None:
    assert "is a record of a Redis key of kvb serve" in message
    assert f"{front_end} cannot list a directory holding Redis keys" in message
    assert "a directory of its own" in message and "key_type=bytes" in message
    assert "removing one alone leaves its Redis key damaged" in message


def test_a_str_store_names_a_redis_record(mixed):
    with Store(mixed) as store:
        with pytest.raises(KeyEncodingError) as info:
            list(store)
        _says_redis(str(info.value), "a Store with str keys")
        assert store["mine"] == {"a": 1}
    with Store(mixed, key_type=bytes) as store:  # what the message offers
        assert b"mine" in list(store) and sum(map(is_structures_key, store)) == len(store) - 1


def test_a_shelf_names_a_redis_record(mixed):
    with kv_shelve.open(mixed) as shelf:
        with pytest.raises(UndecodableKeyError) as info:
            list(shelf.keys())
        _says_redis(str(info.value), "a shelf")
        assert "kv_backend.dbm" not in str(info.value)  # (reading or removing it there damages it)


def test_other_keys_that_are_not_text_keep_their_advice(tmp_path):
    path = str(tmp_path / "kv")
    with kv_dbm.open(path, "c") as db:
        db[b"a\x80binary"] = pickle.dumps(1)
        db[b"\x00q\x80"] = pickle.dumps(2)  # a NUL byte, and no Redis layout after it
    with Store(path) as store, pytest.raises(KeyEncodingError) as info:
        list(store)
    assert "written through another interface; open the store with key_type=bytes" in str(info.value)
    with kv_shelve.open(path) as shelf, pytest.raises(UndecodableKeyError) as info:
        list(shelf)
    assert "written through kv_backend.dbm or a Store with key_type=bytes" in str(info.value)


@pytest.mark.parametrize(
    "key, redis",
    [
        (b"\x00mname", True),
        (b"\x00h\x00\x00\x00\x01hf", True),
        (b"\x00F", True),
        (b"\x00S" + b"0" * 40, True),
        (b"\x00", False),
        (b"\x00q", False),
        (b"mname", False),
        (b"", False),
    ],
)
def test_which_keys_are_redis_records(key, redis):
    assert is_structures_key(key) is redis
