"""The error after close() tells a Store or shelf user what to do, not only a DB user.

It said "open a new DB to use it again" whatever the object was: a Store's user was sent to
another class.
"""

from __future__ import annotations

import pytest

import kv_backend.shelve as kv_shelve
from kv_backend import DatabaseClosedError, Store


def test_a_closed_store_says_to_open_the_path_again(store_path):
    s = Store(store_path)
    s.close()
    with pytest.raises(DatabaseClosedError) as caught:
        s["k"] = 1
    message = str(caught.value)
    assert store_path in message
    assert "open the path again (a new DB, Store, shelf...) to use it" in message
    assert "open a new DB to use it again" not in message


def test_a_closed_db_under_a_shelf_says_the_same(store_path):
    shelf = kv_shelve.open(store_path)
    db = shelf.dict.db
    shelf.close()
    with pytest.raises(DatabaseClosedError, match="open the path again"):
        db.get(b"k")
