"""``manage.py check`` reports a KVCache LOCATION the cache cannot open (kv_backend_django.E002).

A LOCATION that is a file, or a directory of other files, passed every check: the site then
failed on each request that used the cache (the cache refuses such a directory when it opens
its store), and ``runserver``, ``migrate`` and the Celery worker had said nothing at start.
"""

from __future__ import annotations

import os

import pytest
from django.core.checks import Error, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from kv_backend import DB

KV = "kv_backend_django.cache.KVCache"


def _found() -> dict[str, tuple[str, str]]:
    """``{obj: (id, message)}`` of what the kv_backend_django cache checks find of LOCATIONs: not W007,
    which these tests' settings raise for "default" (it holds the sessions, SESSION_ENGINE cache, and
    sets no MAX_ENTRIES), and which would share "default"'s entry with its LOCATION's message in the
    set order of Django's check registry."""
    return {
        m.obj: (m.id, m.msg)
        for m in run_checks(tags=["caches"])
        if m.id.startswith("kv_backend") and m.id != "kv_backend_django.W007"
    }


def test_a_location_that_is_a_file_or_holds_other_files_is_an_error(settings, tmp_path):
    (tmp_path / "notes.txt").write_text("not a cache")
    project = tmp_path / "project"
    project.mkdir()
    (project / "manage.py").write_text("")
    (project / "settings.py").write_text("")
    with DB(str(tmp_path / "store")) as db:
        db.put(b"k", b"v")
    (tmp_path / "empty").mkdir()
    settings.CACHES = {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "store")},  # an existing store: fine
        "new": {"BACKEND": KV, "LOCATION": str(tmp_path / "missing" / "cache")},  # created on first use
        "empty": {"BACKEND": KV, "LOCATION": str(tmp_path / "empty")},
        "file": {"BACKEND": KV, "LOCATION": str(tmp_path / "notes.txt")},
        "project": {"BACKEND": KV, "LOCATION": str(project)},
    }
    found = _found()
    assert sorted(found) == ["CACHES['file']", "CACHES['project']"]
    assert found["CACHES['file']"][0] == found["CACHES['project']"][0] == "kv_backend_django.E002"
    assert "notes.txt is a file" in found["CACHES['file']"][1]
    assert "manage.py, settings.py" in found["CACHES['project']"][1]
    assert not os.path.exists(tmp_path / "missing")  # the check creates nothing
    errors = [m for m in run_checks(tags=["caches"]) if m.id == "kv_backend_django.E002"]
    assert all(isinstance(m, Error) and "new or empty directory" in m.hint for m in errors)
    with pytest.raises(SystemCheckError, match=r"kv_backend_django\.E002"):
        call_command("check", tags=["caches"])


def test_a_store_of_a_format_this_release_cannot_read_is_an_error(settings, tmp_path):
    store = tmp_path / "cache"
    store.mkdir()
    (store / "KVB_FORMAT").write_text("kv_backend store format 99\n")
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": str(store)}}
    found = _found()
    assert found["CACHES['default']"][0] == "kv_backend_django.E002"
    assert "unsupported format" in found["CACHES['default']"][1]


def test_a_location_holding_another_store_is_left_to_w003_and_w004(settings, tmp_path):
    outer, results = tmp_path / "cache", tmp_path / "other" / "results"
    with DB(str(outer / "sessions")):
        pass
    with DB(str(results)):
        pass
    settings.CELERY_RESULT_BACKEND = f"kvb://{results}"
    settings.CACHES = {
        "default": {"BACKEND": KV, "LOCATION": str(outer)},
        "sessions": {"BACKEND": KV, "LOCATION": str(outer / "sessions")},
        "around_results": {"BACKEND": KV, "LOCATION": str(tmp_path / "other")},
    }
    assert {obj: check for obj, (check, _) in _found().items()} == {
        "CACHES['default']": "kv_backend_django.W003",
        "CACHES['around_results']": "kv_backend_django.W004",
    }
