"""A LOCATION deleted or emptied while the site runs (``rm -rf``, as one clears a file-based cache): each
running process went on using its deleted store for good, its writes unseen by the others and by every
process started since, which made a new store there. At the end of a request (Django calls close()) a
cache whose LOCATION no longer holds its store closes it, and the next request uses the one there."""

from __future__ import annotations

import os
import shutil

from django.core.cache import caches
from django.core.signals import request_finished
from django.test import override_settings
from kv_backend_django.cache import store_open_here

from kv_backend import DB

KV = "kv_backend_django.cache.KVCache"


def _conf(location) -> dict[str, dict]:
    return {
        "default": {"BACKEND": KV, "LOCATION": str(location)},
        "fragments": {"BACKEND": KV, "LOCATION": str(location), "KEY_PREFIX": "f"},
    }


def _another_process_sets(location, key: bytes) -> None:
    """What a worker started since (or a Celery task, a management command) does: it opens LOCATION."""
    with DB(str(location)) as db:
        db.put(key, b"")


def test_a_deleted_location_is_opened_anew_after_the_request(tmp_path):
    location = tmp_path / "cache"
    with override_settings(CACHES=_conf(location)):
        cache, fragments = caches["default"], caches["fragments"]
        cache.set("before", 1)
        fragments.set("sidebar", "<p>")
        shutil.rmtree(location)
        cache.set("meanwhile", 2)  # (to the deleted store: the request's writes go with it)
        request_finished.send(sender=None)  # Django closes the caches the request used
        assert not store_open_here(str(location))
        cache.set("after", 3)  # the next request: a new store at LOCATION, as every new process makes
        assert os.path.isfile(location / "STATE")
        _another_process_sets(location, b"from-another-process")
        with DB(str(location)) as db:
            assert cache.make_key("after").encode() in db
        assert cache.get("before") is None and cache.get("after") == 3
        assert fragments.get("sidebar") is None  # the other alias on the directory reopened it too
        assert fragments.db is cache.db


def test_a_location_emptied_is_opened_anew(tmp_path):
    location = tmp_path / "cache"
    with override_settings(CACHES=_conf(location)):
        cache = caches["default"]
        cache.set("session", "alice")
        for name in os.listdir(location):  # rm -rf LOCATION/*
            os.unlink(location / name)
        _another_process_sets(location, b"k")  # a process started since made a store there
        request_finished.send(sender=None)
        cache.set("session", "bob")
        with DB(str(location)) as db:
            assert db.get(cache.make_key("session").encode()) is not None  # in the store all processes use
            assert b"k" in db


def test_an_unchanged_location_keeps_its_store_open(tmp_path):
    location = tmp_path / "cache"
    with override_settings(CACHES=_conf(location)):
        cache = caches["default"]
        cache.set("k", 1)
        db = cache.db
        for _ in range(3):
            request_finished.send(sender=None)
        assert cache.db is db and not db.closed and cache.get("k") == 1


def test_close_looks_at_most_once_a_second(tmp_path, monkeypatch):
    from kv_backend_django import cache as kvcache

    location = tmp_path / "cache"
    with override_settings(CACHES=_conf(location)):
        cache = caches["default"]
        cache.set("k", 1)
        request_finished.send(sender=None)  # looked: unchanged
        shutil.rmtree(location)
        request_finished.send(sender=None)  # within the second: not looked again
        assert store_open_here(str(location))
        monkeypatch.setattr(kvcache, "_LOCATION_CHECK_INTERVAL", 0.0)  # (the second has passed)
        request_finished.send(sender=None)
        assert not store_open_here(str(location))
        assert cache.get("k") is None and os.path.isdir(location)
