"""Settings of the example site: kv_backend holds the cache, sessions, counters and Celery results.

Data lives under example_project/var/ (git-ignored) unless KVB_EXAMPLE_VAR
points elsewhere; KVB_EXAMPLE_CACHE overrides just the cache directory and
KVB_EXAMPLE_BROKER the Celery broker (a redis URL: run_demo.py starts ``kvb serve`` for it).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("KVB_EXAMPLE_VAR", BASE_DIR / "var"))
CACHE_DIR = Path(os.environ.get("KVB_EXAMPLE_CACHE", VAR_DIR / "cache"))
# var/ is git-ignored: make it here, or the first `manage.py migrate` of a fresh checkout
# fails with sqlite's "unable to open database file" (the cache creates its own directory).
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "kv_backend_django",  # the kv_merge / kv_backup / kv_restore / kv_stats commands
    "pages",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "db.sqlite3"}}

CACHES = {
    "default": {
        "BACKEND": "kv_backend_django.cache.KVCache",
        "LOCATION": str(CACHE_DIR),
        "TIMEOUT": 300,
        "OPTIONS": {
            "MAX_ENTRIES": 100_000,
            "CULL_FREQUENCY": 3,
            "sync": "never",  # "always" or seconds to fsync against power loss
            "auto_merge": 0.5,  # compact once half of the closed files' bytes are dead
        },
    },
    # A second alias on the same directory: its own key prefix, one shared store.
    "fragments": {
        "BACKEND": "kv_backend_django.cache.KVCache",
        "LOCATION": str(CACHE_DIR),
        "KEY_PREFIX": "fragments",
        "TIMEOUT": 600,
        "OPTIONS": {"MAX_ENTRIES": 100_000, "sync": "never", "auto_merge": 0.5},
    },
}

SESSION_ENGINE = "django.contrib.sessions.backends.cache"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Celery (mysite/celery.py reads the CELERY_ names): the broker speaks Redis (run_demo.py
# starts kvb serve; a redis-server works the same), the results go to a kv_backend store
# next to the cache, kept for an hour.
CELERY_BROKER_URL = os.environ.get("KVB_EXAMPLE_BROKER", "redis://127.0.0.1:6379/0")
# quote(): the path goes into a URL, where "%", "#", "?" and spaces have a meaning of their own
CELERY_RESULT_BACKEND = "kvb://" + quote(str((VAR_DIR / "celery-results").resolve()))
CELERY_RESULT_EXPIRES = 3600
CELERY_RESULT_EXTENDED = True
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
