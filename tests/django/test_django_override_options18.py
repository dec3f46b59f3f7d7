"""A test that overrides the engine OPTIONS (sync, max_file_size, auto_merge) of a cache on its own
LOCATION (override_settings, pytest-django's settings fixture) got KVCacheConfigurationError ("two
caches use LOCATION ... with different engine OPTIONS") on every call: the store was still open with
the options of the settings outside the override. A store open with other engine options than the
CACHES in effect give its LOCATION is now closed when CACHES changes, and reopens with theirs; one
whose options agree stays open."""

from __future__ import annotations

import os
import uuid

from conftest import KV, MAIN
from django.core.cache import cache, caches
from django.test import override_settings
from kv_backend_django import cache as kvcache


def _options(location: str) -> dict:
    return kvcache._stores[os.path.realpath(location)][1]


def test_a_cache_s_engine_options_can_be_overridden_on_its_own_location():
    key = f"override18-{uuid.uuid4().hex}"
    cache.set(key, "outer")
    outer = caches["default"].db
    assert _options(MAIN) == {}
    config = {"BACKEND": KV, "LOCATION": MAIN, "OPTIONS": {"sync": "always"}}
    with override_settings(CACHES={"default": config}):
        assert cache.get(key) == "outer"
        cache.set(key, "inner")
        assert _options(MAIN) == {"sync": "always"} and outer.closed
    assert cache.get(key) == "inner"  # the settings outside it: their store, with their options
    assert _options(MAIN) == {}
    cache.delete(key)


def test_a_store_whose_options_agree_stays_open_across_an_override():
    cache.set("override18-agree", 1)
    outer = caches["default"].db
    spelled_out = {"sync": "never", "MAX_ENTRIES": 1000}  # (the default engine options, spelled out)
    config = {"BACKEND": KV, "LOCATION": MAIN, "KEY_PREFIX": "other18", "OPTIONS": spelled_out}
    with override_settings(CACHES={"default": config}):
        assert cache.get("override18-agree") is None  # (another prefix)
        assert caches["default"].db is outer and not outer.closed
    assert caches["default"].db is outer and cache.get("override18-agree") == 1
    cache.delete("override18-agree")
