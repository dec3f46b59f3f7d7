"""Django settings for the tests of this directory only.

The rest of the suite does not use Django, so the settings are configured
here (when pytest collects this directory) rather than globally; pytest-django
then sees configured settings and sets up its test environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)  # kvdjango_urls and kvdjango_templates

import django  # noqa: E402
from django.conf import settings  # noqa: E402

CACHE_ROOT = tempfile.mkdtemp(prefix="kvb-django-tests-")
# Also where no test of this directory runs (a worker or the controller that only imported this
# file), which the session fixture below does not see.
atexit.register(shutil.rmtree, CACHE_ROOT, True)
MAIN = os.path.join(CACHE_ROOT, "main")
KV = "kv_backend_django.cache.KVCache"


def cache_settings(root: str) -> dict[str, dict]:
    """The CACHES used by these tests (every alias a test needs), under ``root``."""
    main = os.path.join(root, "main")
    return {
        "default": {"BACKEND": KV, "LOCATION": main},
        # Same LOCATION, other prefix / version: must not see each other's keys.
        "prefix": {"BACKEND": KV, "LOCATION": main, "KEY_PREFIX": "cacheprefix"},
        "v2": {"BACKEND": KV, "LOCATION": main, "VERSION": 2},
        "custom_key": {
            "BACKEND": KV,
            "LOCATION": main,
            "KEY_FUNCTION": "kvdjango_urls.custom_key_func",
        },
        "other": {"BACKEND": KV, "LOCATION": os.path.join(root, "other", "nested")},
        "short": {"BACKEND": KV, "LOCATION": os.path.join(root, "short"), "TIMEOUT": 1},
        "forever": {"BACKEND": KV, "LOCATION": os.path.join(root, "forever"), "TIMEOUT": None},
        "cull": {"BACKEND": KV, "LOCATION": os.path.join(root, "cull"), "OPTIONS": {"MAX_ENTRIES": 30}},
        "zero_cull": {
            "BACKEND": KV,
            "LOCATION": os.path.join(root, "zero_cull"),
            "OPTIONS": {"MAX_ENTRIES": 30, "CULL_FREQUENCY": 0},
        },
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "kvb-tests"},
    }


if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="kv_backend django tests",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=["django.contrib.sessions", "kv_backend_django"],
        DATABASES={},
        CACHES=cache_settings(CACHE_ROOT),
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        ROOT_URLCONF="kvdjango_urls",
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "DIRS": [os.path.join(HERE, "kvdjango_templates")],
            }
        ],
        USE_TZ=True,
        CACHE_MIDDLEWARE_SECONDS=60,
        CACHE_MIDDLEWARE_KEY_PREFIX="site",
    )
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def _remove_cache_root():
    yield
    from kv_backend_django.cache import close_all

    close_all()
    shutil.rmtree(CACHE_ROOT, ignore_errors=True)


# The LOCATIONs of the settings' caches: their stores stay open from test to test.
SETTINGS_STORES = {
    os.path.realpath(c["LOCATION"]) for c in cache_settings(CACHE_ROOT).values() if c["BACKEND"] == KV
}


@pytest.fixture(autouse=True)
def _close_stores_made():
    """After each test, close the stores its caches opened on other LOCATIONs (a temporary directory,
    mostly): a process keeps one store per LOCATION open until closed, with its file descriptors,
    and a pytest worker ended a run holding a hundred or more of them. A cache still held reopens
    its store on next use."""
    yield
    from kv_backend_django import cache as kvcache

    for path in list(kvcache._stores):
        if path not in SETTINGS_STORES:
            kvcache.close_store(path)


@pytest.fixture(autouse=True)
def _clean_caches():
    """Every test starts with empty caches."""
    from django.core.cache import caches

    for alias in ("default", "other", "short", "forever", "cull", "zero_cull", "locmem"):
        caches[alias].clear()
    yield
