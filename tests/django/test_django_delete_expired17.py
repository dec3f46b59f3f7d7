"""What delete() of an expired key returns, which Django's backends answer differently: False here,
as its Redis and memcached backends answer, while its local-memory and file-based backends answer
True for a key no call has read since it expired (docs/django.md, Semantics)."""

from __future__ import annotations

import asyncio
import time

from kv_backend_django.cache import KVCache, close_all


def test_delete_of_an_expired_key_is_false(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {})
    cache.set("soon", 1, 0.05)
    cache.set("now", 1, 0)
    cache.set("kept", 1, None)
    cache.set_many({"m1": 1, "m2": 2}, 0.05)
    time.sleep(0.1)
    assert cache.delete("soon") is False
    assert cache.delete("now") is False
    assert asyncio.run(cache.adelete("m1")) is False
    assert cache.delete("kept") is True
    assert cache.delete("kept") is False
    assert cache.get_many(["m1", "m2"]) == {}
    close_all()
