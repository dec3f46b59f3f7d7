"""What docs/django.md ("Coming from django-redis") says a KVCache answers where django-redis answers
otherwise without an error: Django's own answers."""

from __future__ import annotations

import time

from django.core.cache import caches
from django.test import override_settings

KV = "kv_backend_django.cache.KVCache"


def test_set_and_delete_many_return_none_and_incr_version_gives_the_default_timeout(tmp_path):
    conf = {"default": {"BACKEND": KV, "LOCATION": str(tmp_path / "cache"), "TIMEOUT": 1}}
    with override_settings(CACHES=conf):
        cache = caches["default"]
        assert cache.set("k", 1, timeout=None) is None  # django-redis: True
        cache.set("gone", 2, timeout=None)
        assert cache.delete_many(["gone", "absent"]) is None  # django-redis: 1
        cache.set("forever", "v", timeout=None)
        cache.set("permanent", "v", timeout=None)
        assert cache.incr_version("forever") == cache.incr_version("permanent") == 2
        assert cache.touch("permanent", None, version=2) is True
        time.sleep(1.2)  # the alias's TIMEOUT, which the moved values were given
        assert cache.get("forever", version=2) is None  # django-redis kept it (its TTL: none)
        assert cache.get("permanent", version=2) == "v"
