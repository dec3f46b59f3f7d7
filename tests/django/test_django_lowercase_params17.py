"""Django's BaseCache reads "timeout", "max_entries" and "cull_frequency" given beside OPTIONS in a
CACHES entry (before TIMEOUT and OPTIONS), and silently uses 300 (or 3) for a value int() cannot read.
KVCache refused such values in TIMEOUT and OPTIONS only: "max_entries": "1e5" culled at 300 entries
(logging out cached sessions), "timeout": "1h" cached for 300 s, and "timeout": float("inf") was
Django's raw OverflowError. They are checked where Django reads them now."""

from __future__ import annotations

import pytest
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"timeout": "1h"}, "timeout of KVCache at .* must be a number of seconds or None"),
        ({"timeout": "1h", "TIMEOUT": 60}, "timeout of KVCache"),  # (Django reads "timeout" first)
        ({"max_entries": "1e5"}, "max_entries of KVCache at .* must be a whole number, not '1e5'"),
        ({"max_entries": None, "OPTIONS": {"MAX_ENTRIES": 10}}, "max_entries of KVCache"),
        ({"cull_frequency": "a third"}, "cull_frequency of KVCache at .* must be a whole number"),
    ],
)
def test_values_django_would_silently_replace_are_refused(tmp_path, params, says):
    with pytest.raises(KVCacheConfigurationError, match=says):
        KVCache(str(tmp_path / "c"), params)


def test_the_values_given_beside_options_apply(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {"timeout": float("inf"), "max_entries": 10, "cull_frequency": 2})
    assert cache.default_timeout is None
    for i in range(30):
        cache.set(f"k{i}", i)
    assert len(cache.db) <= 10  # culled (30 without max_entries)
    assert cache.db.ttl(cache.make_key("k29").encode()) is None  # stored forever
    close_all()
