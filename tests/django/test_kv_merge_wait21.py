"""``manage.py kv_merge --wait``: wait for a merge another process runs, then merge.

With ``auto_merge`` on, a cron ``kv_merge`` that met a worker's merge failed ("another process is
merging ... run kv_merge again after it finished"), exit status 1 and a mail from cron, with no way
to wait for it as ``kvb merge --wait`` does.
"""

from __future__ import annotations

import re
import threading
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from kv_backend_django.cache import close_all

from kv_backend.files import MERGE_LOCK_FILE
from kv_backend.locking import MergeLock


@pytest.fixture
def held_merge(tmp_path):
    """A cache with dead records, and the merge lock of its store held as another process's merge holds it."""
    location = tmp_path / "c"
    conf = {
        "default": {
            "BACKEND": "kv_backend_django.cache.KVCache",
            "LOCATION": str(location),
            "OPTIONS": {"max_file_size": 4096},
        }
    }
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        cache = caches["default"]
        for i in range(200):
            cache.set(f"k{i % 20}", "x" * 100)
        other = MergeLock(str(location / MERGE_LOCK_FILE))
        assert other.try_acquire()
        try:
            yield location, other, cache
        finally:
            other.release()
            close_all()


def test_without_wait_the_error_says_how_to_wait(held_merge):
    location, _, _ = held_merge
    with pytest.raises(
        CommandError,
        match=rf"another process is merging the cache at {re.escape(str(location))} "
        r".* or run kv_merge --wait",
    ):
        call_command("kv_merge", stdout=StringIO())


def test_with_wait_it_merges_once_the_other_merge_is_done(held_merge):
    _, other, cache = held_merge
    dead = cache.db.stats()["dead_bytes"]
    assert dead > 0
    releaser = threading.Timer(0.4, other.release)
    releaser.start()
    out = StringIO()
    started = time.monotonic()
    try:
        call_command("kv_merge", "--wait", stdout=out)
    finally:
        releaser.join()
    assert time.monotonic() - started >= 0.35  # it waited for the lock
    assert "Merge finished." in out.getvalue()
    assert cache.db.stats()["dead_bytes"] < dead
    assert all(cache.get(f"k{i}") == "x" * 100 for i in range(20))
