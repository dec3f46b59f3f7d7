"""Celery tasks of the example site (their results are stored by the kvb:// result backend)."""

from __future__ import annotations

import os
from collections import Counter

from celery import shared_task
from django.core.cache import cache

PUNCTUATION = ".,;:!?\"'()"


@shared_task
def word_count(text: str) -> dict[str, object]:
    """Count the words of ``text``; also bump a counter in the site's cache, from the worker."""
    words = Counter(w.strip(PUNCTUATION).lower() for w in text.split())
    words.pop("", None)
    cache.add("demo:tasks", 0, timeout=None)
    return {
        "words": sum(words.values()),
        "most_common": words.most_common(3),
        "tasks_run": cache.incr("demo:tasks"),
        "worker_pid": os.getpid(),
    }
