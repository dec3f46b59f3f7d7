"""``incr_version`` whose new version makes the same key as the old one.

With ``delta=0``, or a KEY_FUNCTION that leaves the version out of the key, the value was stored
under the "new" key and then deleted as the old one (as Django's own backends do: set, then delete):
a call meant to move a value lost it. It now stays, with the default timeout a move gives it.
"""

from __future__ import annotations

import pytest
from kv_backend_django.cache import KVCache, close_all


def _versionless(key, key_prefix, version):
    return f"{key_prefix}:{key}"


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


def test_incr_version_by_zero_keeps_the_value(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {"TIMEOUT": 60})
    cache.set("k", "v", timeout=None)
    assert cache.incr_version("k", 0) == 1 and cache.decr_version("k", 0) == 1
    assert cache.get("k") == "v"
    left = cache.db.ttl(cache.make_key("k").encode())
    assert left is not None and 55 < left <= 60  # the default timeout, as for any move


def test_incr_version_with_a_key_function_without_the_version_keeps_the_value(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {"KEY_FUNCTION": _versionless})
    cache.set("k", "v")
    assert cache.incr_version("k") == 2
    assert cache.get("k", version=2) == "v" and cache.get("k") == "v"


def test_incr_version_still_moves_the_value_to_another_key(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {})
    cache.set("k", "v")
    assert cache.incr_version("k", 2) == 3
    assert cache.get("k") is None and cache.get("k", version=3) == "v"
    with pytest.raises(ValueError, match="Key 'k' not found"):
        cache.incr_version("k", 0)
