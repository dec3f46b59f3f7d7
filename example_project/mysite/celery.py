"""The example site's Celery app: a Redis-protocol broker (kvb serve in the demo), results in kv_backend.

Settings come from Django's settings (the ``CELERY_`` names); the result
backend is ``kvb://<data dir>/celery-results``, found through kv_backend's
entry point. Start a worker from example_project/ with::

    celery -A mysite worker -P prefork -c 2
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

app = Celery("mysite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
