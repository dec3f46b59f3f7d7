"""``manage.py check`` warns (kv_backend_django.W006) of an alias that culls the cache-only sessions on
their LOCATION sooner than their own alias would: culling counts and removes the entries of the whole
directory, whatever the alias, so a "fragments" alias with a small MAX_ENTRIES logged users out."""

from __future__ import annotations

from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.core.checks import run_checks
from django.test import override_settings

KV = "kv_backend_django.cache.KVCache"
CACHE_ENGINE = "django.contrib.sessions.backends.cache"


def _w006() -> list[tuple[str, str]]:
    return [(m.obj, m.msg) for m in run_checks(tags=["caches"]) if m.id == "kv_backend_django.W006"]


def _caches(tmp_path, **fragments_options) -> dict[str, dict]:
    return {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "cache"), "OPTIONS": {"MAX_ENTRIES": 1000}},
        "fragments": {
            "BACKEND": KV,
            "LOCATION": str(tmp_path / "cache"),
            "KEY_PREFIX": "fragments",
            "OPTIONS": fragments_options,
        },
    }


def test_a_smaller_max_entries_on_the_sessions_directory_logs_users_out_and_is_reported(tmp_path):
    with override_settings(CACHES=_caches(tmp_path, MAX_ENTRIES=50), SESSION_ENGINE=CACHE_ENGINE):
        found = _w006()
        assert [obj for obj, _ in found] == ["CACHES['fragments']"]
        assert "smaller MAX_ENTRIES (50, the sessions' cache 1000)" in found[0][1]
        assert "removes 1/3 of them, sessions included (those users are logged out)" in found[0][1]
        # What it warns of: 60 sessions, far below their alias's MAX_ENTRIES, and one fragment stored.
        keys = []
        for n in range(60):
            session = SessionStore()
            session["n"] = n
            session.create()
            keys.append(session.session_key)
        caches["fragments"].set("sidebar", "<p>")
        kept = [key for key in keys if SessionStore(session_key=key).exists(key)]
        assert len(kept) == 40  # 20 users logged out


def test_cull_frequency_zero_on_the_sessions_directory_is_reported(tmp_path):
    conf = _caches(tmp_path, MAX_ENTRIES=1000, CULL_FREQUENCY=0)
    with override_settings(CACHES=conf, SESSION_ENGINE=CACHE_ENGINE):
        found = _w006()
        assert [obj for obj, _ in found] == ["CACHES['fragments']"]
        assert "CULL_FREQUENCY 0" in found[0][1] and "logging out every user" in found[0][1]


def test_no_warning_where_the_sessions_lose_nothing_to_another_alias(tmp_path):
    same = _caches(tmp_path, MAX_ENTRIES=1000)
    larger = _caches(tmp_path, MAX_ENTRIES=5000)
    apart = _caches(tmp_path, MAX_ENTRIES=50)
    apart["fragments"]["LOCATION"] = str(tmp_path / "fragments")
    for conf, engine in [
        (same, CACHE_ENGINE),
        (larger, CACHE_ENGINE),
        (apart, CACHE_ENGINE),
        # the database keeps the sessions: a culled one is read from it again
        (_caches(tmp_path, MAX_ENTRIES=50), "django.contrib.sessions.backends.cached_db"),
        (_caches(tmp_path, MAX_ENTRIES=50), "django.contrib.sessions.backends.signed_cookies"),
    ]:
        with override_settings(CACHES=conf, SESSION_ENGINE=engine):
            assert _w006() == [], (conf, engine)


def test_the_sessions_alias_is_session_cache_alias(tmp_path):
    conf = _caches(tmp_path, MAX_ENTRIES=50)
    with override_settings(CACHES=conf, SESSION_ENGINE=CACHE_ENGINE, SESSION_CACHE_ALIAS="fragments"):
        assert _w006() == []  # the sessions' own alias culls at 50 anyway; "default" culls later
    conf["default"]["OPTIONS"] = {"MAX_ENTRIES": 10}
    with override_settings(CACHES=conf, SESSION_ENGINE=CACHE_ENGINE, SESSION_CACHE_ALIAS="fragments"):
        assert [obj for obj, _ in _w006()] == ["CACHES['default']"]


def test_a_session_engine_that_does_not_import_is_left_to_django(tmp_path):
    with override_settings(CACHES=_caches(tmp_path, MAX_ENTRIES=50), SESSION_ENGINE="no_such.engine"):
        assert _w006() == []
