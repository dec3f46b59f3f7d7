"""``clear()`` and ``popitem()`` of every front end on a directory that ``kvb serve`` also uses.

A Store's, ``kv_backend.dbm``'s (and its flag ``"n"``'s) and a shelf's ``clear()`` removed every record
of the directory: every Redis key, and ``kvb serve``'s function libraries and script cache as well
(FUNCTION LIST answered empty afterwards, EVALSHA NOSCRIPT), which not even FLUSHALL removes. A shelf
that overrides its item methods deleted the records one by one, each Redis key's records apart.
``DB.popitem()`` took the smallest key, a record of a Redis key (the hash losing a field it still
counted), and such a shelf's ``popitem()`` raised at one. Now ``clear()`` removes the front end's keys
in one batch and leaves those records whole, and ``popitem()`` passes over them, as the Django
cache's culling does.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from redis_records_fixture22 import add_redis_keys, assert_redis_keys_whole

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import DB, Store

OWN = {b"\x00own": pickle.dumps(1), b"mine": pickle.dumps(2)}  # (a NUL key that is no Redis record)


class WrappingShelf(kv_shelve.KVShelf):
    """A shelf that overrides its item methods (it stores each value in a list)."""

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key)[0]

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, [value])


@pytest.fixture
def shared(tmp_path):
    path = str(tmp_path / "kv")
    sha = add_redis_keys(path)
    with DB(path) as db:
        for key, value in OWN.items():
            db.put(key, value)
    return path, sha


def _own_keys_gone(path: str) -> None:
    with DB(path) as db:
        assert not any(key in db for key in OWN)


@pytest.mark.parametrize("options", [{}, {"key_type": bytes, "serializer": "raw"}])
def test_a_store(shared, options):
    path, sha = shared
    with Store(path, **options) as st:
        st.clear()
    _own_keys_gone(path)
    assert_redis_keys_whole(path, sha)


def test_a_dbm_and_its_flag_n(shared):
    path, sha = shared
    with kv_dbm.open(path, "w") as db:
        db.clear()
    _own_keys_gone(path)
    assert_redis_keys_whole(path, sha)
    with DB(path) as db:
        db.put(b"mine", b"again")
    kv_dbm.open(path, "n").close()
    _own_keys_gone(path)
    assert_redis_keys_whole(path, sha)
    with kv_dbm.open(path, "r") as db:  # read-only, with nothing of its own left: nothing to do
        db.clear()


def test_a_read_only_dbm_with_keys_of_its_own_still_refuses(shared):
    path, _ = shared
    with kv_dbm.open(path, "r") as db, pytest.raises(kv_dbm.ReadOnlyDatabaseError):
        db.clear()


@pytest.mark.parametrize("cls", [kv_shelve.KVShelf, WrappingShelf])
def test_a_shelf(shared, cls):
    path, sha = shared
    with cls(path) as shelf:
        shelf.clear()
    _own_keys_gone(path)
    assert_redis_keys_whole(path, sha)


def test_a_shelf_overriding_its_items_pops_its_own_then_says_why_it_stops(tmp_path):
    path = str(tmp_path / "kv")
    sha = add_redis_keys(path)
    with WrappingShelf(path) as shelf:
        shelf["mine"] = 2
        shelf["\x00own"] = 1
        assert shelf.popitem() == ("\x00own", 1)  # unwrapped by its __getitem__
        assert shelf.popitem() == ("mine", 2)
        with pytest.raises(KeyError, match="the shelf holds only records of Redis keys"):
            shelf.popitem()
    assert_redis_keys_whole(path, sha)
    with WrappingShelf(str(tmp_path / "empty")) as shelf, pytest.raises(KeyError, match="the shelf is empty"):
        shelf.popitem()


def test_the_engine_pops_its_own_then_says_why_it_stops(shared):
    path, sha = shared
    with DB(path) as db:
        assert db.popitem() == (b"\x00own", OWN[b"\x00own"])
        assert db.popitem() == (b"mine", OWN[b"mine"])
        with pytest.raises(KeyError, match="the store holds only records of Redis keys"):
            db.popitem()
    assert_redis_keys_whole(path, sha)
