"""What a Store or a shelf says of ``kvb serve``'s function and script records on a shared directory.

Reading the record of kvb serve's function libraries (``\\x00F``) or of its script cache (``\\x00S``...)
through a pickle Store or a shelf (``values()``, ``==``, ``items()``...) raised an error saying it was
"a record of a Redis key": there is no such key, and FLUSHALL or DEL would not remove it. The message now
says which record of kvb serve it is.
"""

from __future__ import annotations

import pytest
from redis_records_fixture22 import add_redis_keys

import kv_backend.shelve as kv_shelve
from kv_backend import Store
from kv_backend.serializers import DeserializationError
from kv_backend.structures.layout import FUNCTIONS, SCRIPTS


def test_each_record_is_named_for_what_it_is(tmp_path):
    path = str(tmp_path / "kv")
    sha = add_redis_keys(path)
    script = (SCRIPTS + sha).decode()
    with Store(path) as st:
        with pytest.raises(DeserializationError, match="it is kvb serve's record of its function libraries;"):
            st[FUNCTIONS.decode()]
        with pytest.raises(DeserializationError, match="it is a record of kvb serve's script cache;"):
            st[script]
        with pytest.raises(DeserializationError, match="it is a record of a Redis key of kvb serve"):
            st["\x00mgreeting"]
    with kv_shelve.open(path) as shelf, pytest.raises(DeserializationError, match="script cache"):
        shelf[script]
