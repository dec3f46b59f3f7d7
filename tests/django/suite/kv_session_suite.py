"""Django's own session tests of the cache and cached_db engines, their cache a KVCache.

This module is copied into ``tests/sessions_tests/`` of the Django source tree
matching the installed Django (see ``test_django_own_suite.py``) and run by
Django's ``runtests.py``. The tests are Django's; only the cache changes.
Django's classes are reached through their module so that they do not run a
second time here with Django's default (local-memory) cache.
"""

import tempfile
import unittest

from django.core.cache import caches
from django.test import override_settings

from . import tests as django_tests

KV = "kv_backend_django.cache.KVCache"
_CACHES = {"default": {"BACKEND": KV, "LOCATION": tempfile.mkdtemp(prefix="kvcache-sessions-")}}


class OnKVCache:
    def test_the_default_cache_is_a_kvcache(self):
        from kv_backend_django.cache import KVCache

        self.assertIsInstance(caches["default"], KVCache)


@override_settings(CACHES=_CACHES)
class KVCacheSessionTests(OnKVCache, django_tests.CacheSessionTests):
    pass


@override_settings(CACHES=_CACHES)
class KVCacheDBSessionTests(OnKVCache, django_tests.CacheDBSessionTests):
    pass


@override_settings(CACHES=_CACHES)
class KVCacheDBSessionWithTimeZoneTests(OnKVCache, django_tests.CacheDBSessionWithTimeZoneTests):
    pass


@override_settings(CACHES=_CACHES, SESSION_ENGINE="django.contrib.sessions.backends.cache")
class KVCacheSessionMiddlewareTests(OnKVCache, django_tests.SessionMiddlewareTests):
    @unittest.skip("reads the session from the database model, which the cache engine does not use")
    def test_empty_session_saved(self):
        pass


@override_settings(CACHES=_CACHES, SESSION_ENGINE="django.contrib.sessions.backends.cached_db")
class KVCacheDBSessionMiddlewareTests(OnKVCache, django_tests.SessionMiddlewareTests):
    pass
