"""``popitem()`` of a Store, a dbm or a shelf on a directory that ``kvb serve`` (or Structures) also uses.

It took the smallest key, and the records of Redis keys, which begin with a NUL byte, are the
smallest: a Store with bytes keys or ``serializer="raw"`` and ``kv_backend.dbm`` removed one (a hash's
field record, leaving the hash counting a field it no longer has), and a pickle Store or a shelf
raised at it on every call, so popitem() could not reach their own keys. Now they pass over those
records as the Django cache's culling does, and say so when nothing else is left.
"""

from __future__ import annotations

import pickle

import pytest

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend import DB, Store
from kv_backend.structures import Structures

OWN = {b"\x00own": pickle.dumps(1), b"mine": pickle.dumps(2)}  # (a NUL key that is no Redis record)


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.hset("h", mapping={"a": "1", "b": "2"})
        s.rpush("l", "x", "y")
        s.set("greeting", "hello")
    with DB(path) as db:
        for key, value in OWN.items():
            db.put(key, value)
    return path


def _redis_keys_whole(path: str) -> None:
    with Structures(path) as s:
        assert s.hgetall("h") == {b"a": b"1", b"b": b"2"} and s.hlen("h") == 2
        assert s.lrange("l", 0, -1) == [b"x", b"y"] and s.get("greeting") == b"hello"
        assert s.vacuum() == 0


def _pops_own_then_says_why_it_stops(popitem, first, second, what):
    assert popitem() == first
    assert popitem() == second
    with pytest.raises(KeyError, match=f"the {what} holds only records of Redis keys"):
        popitem()


def test_a_dbm(path):
    with kv_dbm.open(path, "w") as db:
        first, second = OWN.items()
        _pops_own_then_says_why_it_stops(db.popitem, first, second, "database")
    _redis_keys_whole(path)


@pytest.mark.parametrize("options", [{"key_type": bytes, "serializer": "raw"}, {"serializer": "raw"}, {}])
def test_a_store(path, options):
    with Store(path, **options) as st:
        key = (lambda k: k) if options.get("key_type") is bytes else (lambda k: k.decode())
        value = (lambda v: v) if options else pickle.loads
        first, second = ((key(k), value(v)) for k, v in OWN.items())
        _pops_own_then_says_why_it_stops(st.popitem, first, second, "store")
    _redis_keys_whole(path)


def test_a_shelf(path):
    with kv_shelve.open(path) as shelf:
        _pops_own_then_says_why_it_stops(shelf.popitem, ("\x00own", 1), ("mine", 2), "shelf")
    _redis_keys_whole(path)


def test_an_empty_store_is_still_empty(tmp_path):
    with Store(str(tmp_path / "kv")) as st, pytest.raises(KeyError, match="the store is empty"):
        st.popitem()
    empty = pytest.raises(KeyError, match="the database is empty")
    with kv_dbm.open(str(tmp_path / "kv2"), "c") as db, empty:
        db.popitem()
