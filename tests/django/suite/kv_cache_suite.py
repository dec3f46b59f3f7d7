"""Django's own cache-backend tests, pointed at KVCache.

This module is copied into ``tests/cache/`` of the Django source tree matching
the installed Django (see ``test_django_own_suite.py``) and run by Django's
``runtests.py``. It only declares test classes: the tests themselves are
Django's (``BaseCacheTests`` and the cache middleware and utility tests), so
the backend is held to exactly what Django expects of every cache backend.
"""

import shutil
import tempfile

from django.conf import settings
from django.core.signals import setting_changed
from django.test import TestCase, override_settings

from .tests import (
    BaseCacheTests,
    CacheHEADTest,
    CacheI18nTest,
    CacheMiddlewareTest,
    CacheUtils,
    TestWithTemplateResponse,
    caches_setting_for_tests,
)

KV = "kv_backend_django.cache.KVCache"


@override_settings(CACHES=caches_setting_for_tests(BACKEND=KV))
class KVCacheTests(BaseCacheTests, TestCase):
    """Every generic cache test, each alias on one fresh LOCATION (as Django's file-based tests do)."""

    def setUp(self):
        super().setUp()
        self.dirname = tempfile.mkdtemp(prefix="kvcache-")
        for params in settings.CACHES.values():
            params["LOCATION"] = self.dirname
        setting_changed.send(self.__class__, setting="CACHES", enter=False)

    def tearDown(self):
        from kv_backend_django.cache import close_all

        super().tearDown()
        close_all()
        shutil.rmtree(self.dirname)


_DIR = tempfile.mkdtemp(prefix="kvcache-suite-")
_DIR_OTHER = tempfile.mkdtemp(prefix="kvcache-suite-other-")
_DEFAULT = {"BACKEND": KV, "LOCATION": _DIR}


@override_settings(CACHES={"default": dict(_DEFAULT)})
class KVCacheUtils(CacheUtils):
    pass


@override_settings(CACHES={"default": dict(_DEFAULT, KEY_PREFIX="cacheprefix")})
class KVPrefixedCacheUtils(CacheUtils):
    pass


@override_settings(CACHES={"default": dict(_DEFAULT)})
class KVCacheHEADTest(CacheHEADTest):
    pass


@override_settings(CACHES={"default": dict(_DEFAULT)})
class KVCacheI18nTest(CacheI18nTest):
    pass


@override_settings(CACHES={"default": dict(_DEFAULT, KEY_PREFIX="cacheprefix")})
class KVPrefixedCacheI18nTest(CacheI18nTest):
    pass


@override_settings(
    CACHES={
        "default": dict(_DEFAULT),
        "other": {"BACKEND": KV, "LOCATION": _DIR_OTHER, "TIMEOUT": "1"},
    }
)
class KVCacheMiddlewareTest(CacheMiddlewareTest):
    pass


@override_settings(CACHES={"default": dict(_DEFAULT)})
class KVTestWithTemplateResponse(TestWithTemplateResponse):
    pass
