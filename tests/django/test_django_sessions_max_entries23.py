"""``manage.py check`` warns (kv_backend_django.W007) of a KVCache alias holding the sessions
(SESSION_ENGINE ``cache`` or ``cached_db``) without MAX_ENTRIES: it culls at Django's default of 300
entries, which logs users out of a busy site (or sends their sessions back to the database)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.cache import SessionStore
from django.core.checks import run_checks
from django.test import override_settings

KV = "kv_backend_django.cache.KVCache"
CACHE_ENGINE = "django.contrib.sessions.backends.cache"
CACHED_DB_ENGINE = "django.contrib.sessions.backends.cached_db"


def _w007() -> list[tuple[str, str, str]]:
    return [(m.obj, m.msg, m.hint) for m in run_checks(tags=["caches"]) if m.id == "kv_backend_django.W007"]


def _caches(tmp_path, **entry) -> dict[str, dict]:
    return {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "cache"), "OPTIONS": {"MAX_ENTRIES": 10_000}},
        "sessions": {"BACKEND": KV, "LOCATION": str(tmp_path / "sessions"), **entry},
    }


def test_cache_sessions_without_max_entries_warn_and_are_culled_at_300(tmp_path):
    conf = _caches(tmp_path, OPTIONS={"sync": "never"})
    with override_settings(CACHES=conf, SESSION_ENGINE=CACHE_ENGINE, SESSION_CACHE_ALIAS="sessions"):
        ((obj, msg, hint),) = _w007()
        assert obj == "CACHES['sessions']"
        assert "culls at Django's default of 300 entries" in msg
        assert "are logged out" in msg and "OPTIONS MAX_ENTRIES of CACHES['sessions']" in hint
        # What it warns of: the 301st login culls a third of the users logged in before.
        keys = []
        for n in range(301):
            session = SessionStore()
            session["n"] = n
            session.create()
            keys.append(session.session_key)
        kept = [key for key in keys if SessionStore(session_key=key).exists(key)]
        assert len(kept) == 201


def test_cached_db_sessions_without_max_entries_warn(tmp_path):
    with override_settings(
        CACHES=_caches(tmp_path), SESSION_ENGINE=CACHED_DB_ENGINE, SESSION_CACHE_ALIAS="sessions"
    ):
        ((obj, msg, _),) = _w007()
        assert obj == "CACHES['sessions']" and "read from the database again" in msg


@pytest.mark.parametrize(
    "entry",
    [{"OPTIONS": {"MAX_ENTRIES": 100_000}}, {"max_entries": 100_000}, {"OPTIONS": {"MAX_ENTRIES": 300}}],
)
def test_a_max_entries_given_is_not_reported(tmp_path, entry):
    with override_settings(
        CACHES=_caches(tmp_path, **entry), SESSION_ENGINE=CACHE_ENGINE, SESSION_CACHE_ALIAS="sessions"
    ):
        assert _w007() == []


def test_sessions_elsewhere_are_not_reported(tmp_path):
    conf = _caches(tmp_path)
    conf["locmem"] = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    for engine, alias in [
        (CACHE_ENGINE, "default"),  # the alias holding them sets MAX_ENTRIES
        (CACHE_ENGINE, "locmem"),  # not a KVCache
        ("django.contrib.sessions.backends.db", "sessions"),
        ("django.contrib.sessions.backends.signed_cookies", "sessions"),
        ("no_such.engine", "sessions"),  # left to Django
    ]:
        with override_settings(CACHES=conf, SESSION_ENGINE=engine, SESSION_CACHE_ALIAS=alias):
            assert _w007() == [], (engine, alias)
