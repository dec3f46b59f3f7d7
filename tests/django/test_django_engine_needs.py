"""Engine API that the cache backend needs and currently reaches through engine internals.

These are expected failures: when the engine gains the API, they pass (strict
xfail turns that into a failure) and kv_backend_django.cache should switch to it.
"""

from __future__ import annotations

import pytest

from kv_backend import DB


@pytest.mark.xfail(
    strict=True,
    reason="DB has no O(1) entry count: len(db) scans every expiry time (KeyDir.expired_count), "
    "and in a Django cache every key has one; the backend reads db._ix.kd for its MAX_ENTRIES check",
)
def test_engine_offers_a_constant_time_entry_count(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v", ttl=100)
        assert db.index_size() == 1  # keys in the index, expired or not: an O(1) upper bound of len()


@pytest.mark.xfail(
    strict=True,
    reason="no public way to drop expired keys still in the index, or to list keys without building "
    "the sorted index (which then costs on every later write); culling uses db._ix",
)
def test_engine_can_purge_expired_and_list_keys_unordered(store_path):
    import time

    with DB(store_path) as db:
        db.put(b"old", b"v", ttl=0.01)
        db.put(b"new", b"v")
        time.sleep(0.02)
        assert db.purge_expired() == 1
        assert set(db.keys(ordered=False)) == {b"new"}
