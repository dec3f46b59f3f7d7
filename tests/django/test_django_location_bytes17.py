"""A KVCache LOCATION given as bytes (b"/var/cache/site", as os.fsencode gives it) was refused with
"needs LOCATION ... got b'/var/cache/site'", as if none were given, while a path object whose path
is bytes was taken. Bytes name the same directory as the str path now, for the cache and the checks."""

from __future__ import annotations

import os

from django.core.cache import caches
from django.core.checks import run_checks
from django.test import override_settings
from kv_backend_django.cache import KVCache, close_all

KV = "kv_backend_django.cache.KVCache"


def test_a_bytes_location_is_the_directory_it_names(tmp_path):
    location = tmp_path / "caché"
    cache = KVCache(os.fsencode(location), {})
    assert cache.location == str(location)
    cache.set("k", 1)
    assert KVCache(str(location), {}).get("k") == 1
    close_all()


def test_the_checks_take_it_as_the_cache_does(tmp_path, settings):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("not a cache")
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": os.fsencode(tmp_path / "other")}}
    found = {m.id for m in run_checks(tags=["caches"]) if m.id.startswith("kv_backend")}
    # A directory of other files, seen through the bytes (W007: "default" holds the sessions of these
    # tests, SESSION_ENGINE cache, and sets no MAX_ENTRIES).
    assert found == {"kv_backend_django.E002", "kv_backend_django.W007"}
    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": os.fsencode(tmp_path / "c")}}):
        caches["c"].set("k", 1)
        assert os.path.isdir(tmp_path / "c")
    close_all()
