"""Django's own cache-backend tests, pointed at KVCache.

This module is copied into ``tests/cache/`` of the Django source tree matching
the installed Django (see ``test_django_own_suite.py``) and run by Django's
``runtests.py``. It only declares test classes: the tests themselves are
Django's (``BaseCacheTests`` and the cache middleware and utility tests), so
the backend is held to exactly what Django expects of every cache backend.
With ``KV_SUITE_PART`` set, it holds one part of them (see ``PARTS``).
"""

import os
import shutil
import tempfile
import unittest

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

#: Django's tests here that wait out timeouts with time.sleep (test_touch 7 s; the others 2 s each, and
#: the two middleware tests run twice, in Django's class and in ours: 4 s each, 8 s together):
#: ``KV_SUITE_PART`` picks one of these groups, or ``rest`` all the other tests, so that
#: ``test_django_own_suite.py`` runs the parts side by side instead of sleeping through them in turn.
PARTS = {
    "touch": {"test_touch"},
    "expiry": {"test_expiration", "test_set_many_expiration", "test_forever_timeout"},
    "view_decorator": {"test_view_decorator"},
    "page_timeout": {"test_cache_page_timeout"},
}


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


def load_tests(loader, tests, pattern):
    """The tests of the part ``KV_SUITE_PART`` names (all of them without it): see :data:`PARTS`."""
    part = os.environ.get("KV_SUITE_PART")
    if not part:
        return tests
    if part != "rest" and part not in PARTS:
        raise ValueError(f"KV_SUITE_PART={part!r}: expected 'rest' or one of {sorted(PARTS)}")
    named = set().union(*PARTS.values())
    chosen = unittest.TestSuite()
    for test in _flat(tests):
        name = test.id().rsplit(".", 1)[-1]
        if name in PARTS[part] if part in PARTS else name not in named:
            chosen.addTest(test)
    return chosen


def _flat(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flat(test)
        else:
            yield test
