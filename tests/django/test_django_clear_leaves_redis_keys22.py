"""``clear()`` of a KVCache whose directory ``kvb serve`` also uses.

It removed every record of the directory: each Redis key, and ``kvb serve``'s function libraries and
script cache too (FUNCTION LIST answered empty, EVALSHA NOSCRIPT), which not even FLUSHALL removes.
The records of Redis keys are no cache entries (culling leaves them alone and MAX_ENTRIES does not count
them), so ``clear()``, which removes every entry of the LOCATION, now leaves them whole as well.
"""

from __future__ import annotations

from kv_backend_django.cache import KVCache
from redis_records_fixture22 import add_redis_keys, assert_redis_keys_whole


def test_clear_removes_every_entry_and_leaves_redis_keys_whole(tmp_path):
    path = str(tmp_path / "kv")
    sha = add_redis_keys(path)
    cache = KVCache(path, {})
    other = KVCache(path, {"KEY_PREFIX": "other"})
    cache.set("k", 1)
    other.set("k", 2)
    cache.clear()
    assert cache.get("k") is None and other.get("k") is None  # every entry, whatever its alias
    assert [key for key in cache.db if not key.startswith(b"\x00")] == []
    cache.close()
    assert_redis_keys_whole(path, sha)
