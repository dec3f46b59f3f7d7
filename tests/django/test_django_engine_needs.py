"""Engine API that the cache backend's culling relies on."""

from __future__ import annotations

from kv_backend import DB


def test_engine_offers_a_constant_time_entry_count(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"v", ttl=100)
        assert db.index_size() == 1  # keys in the index, expired or not: an O(1) upper bound of len()


def test_engine_can_purge_expired_and_list_keys_unordered(store_path):
    import time

    with DB(store_path) as db:
        db.put(b"old", b"v", ttl=0.01)
        db.put(b"new", b"v")
        time.sleep(0.02)
        assert db.purge_expired() == 1
        assert set(db.unordered_keys()) == {b"new"}
        assert db._ix.sorted is None  # listing did not build the sorted index
