"""Culling a KVCache whose directory ``kvb serve`` (or ``Structures``) also uses.

A Redis key is several engine records (its metadata, one record per hash field, list element,
set member...). Culling removed random records of the directory, so it removed some of a Redis
key's records and not others: the server then answered HLEN 10 for a hash whose HGETALL gave 4
fields, and lost lists and sorted sets whole. Culling now leaves the records of Redis keys alone
(they are no cache entries, and MAX_ENTRIES does not count them); ``clear()`` leaves them whole too
(tests/django/test_django_clear_leaves_redis_keys22.py).
"""

from __future__ import annotations

import pytest
from kv_backend_django.cache import KVCache

from kv_backend.structures import Structures


def _redis_keys(path: str) -> Structures:
    s = Structures(path)
    s.hset("h", mapping={f"f{i}": str(i) for i in range(10)})
    s.rpush("l", *[str(i) for i in range(10)])
    s.zadd("z", {f"m{i}": i for i in range(10)})
    s.sadd("s", *range(10))
    s.set("plain", "v")
    return s


@pytest.mark.parametrize("frequency", [3, 0])
def test_culling_leaves_every_record_of_redis_keys(tmp_path, frequency):
    path = str(tmp_path / "kv")
    s = _redis_keys(path)
    before = {k: v for k, v in s.db.items()}
    cache = KVCache(path, {"OPTIONS": {"MAX_ENTRIES": 20, "CULL_FREQUENCY": frequency}})
    for i in range(60):
        cache.set(f"k{i}", i)
    assert {k: v for k, v in s.db.items() if k in before} == before  # all of them, unchanged
    assert s.hlen("h") == len(s.hgetall("h")) == 10
    assert s.lrange("l", 0, -1) == [str(i).encode() for i in range(10)]
    assert s.zcard("z") == len(s.zrange("z", 0, -1)) == 10
    assert s.scard("s") == len(s.smembers("s")) == 10
    assert s.get("plain") == b"v"
    # MAX_ENTRIES counts the cache's entries only: the Redis records did not make it cull more
    entries = [k for k in s.db if k not in before]
    assert 0 < len(entries) <= 20
    assert cache.get("k59") == 59
    s.close()


def test_a_directory_of_redis_keys_over_max_entries_is_not_culled_at_every_set(tmp_path, monkeypatch):
    path = str(tmp_path / "kv")
    s = _redis_keys(path)  # 55 records, more than MAX_ENTRIES
    cache = KVCache(path, {"OPTIONS": {"MAX_ENTRIES": 30}})
    cache.set("first", 1)  # scans once, and notes the Redis records it left out
    scans = []
    real = cache.db.unordered_keys
    monkeypatch.setattr(cache.db, "unordered_keys", lambda: scans.append(1) or real())
    for i in range(10):
        cache.set(f"k{i}", i)
    assert scans == []  # 11 entries: far from MAX_ENTRIES, no scan under the write lock
    assert cache.get_many(["first", "k9"]) == {"first": 1, "k9": 9}
    s.close()
