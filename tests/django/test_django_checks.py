"""``manage.py check`` warns about KVCache locations a web server could publish, or relative ones."""

from __future__ import annotations

import os

from django.core.checks import run_checks

KV = "kv_backend_django.cache.KVCache"
#: W007: "default" holds the sessions of these tests (SESSION_ENGINE cache) and sets no MAX_ENTRIES.
SESSIONS = ("kv_backend_django.W007", "CACHES['default']")


def _ids(**kwargs) -> list[tuple[str, str]]:
    return [(m.id, m.obj) for m in run_checks(tags=["caches"], **kwargs) if m.id.startswith("kv_backend")]


def test_locations_inside_or_around_published_directories_warn(settings, tmp_path):
    media, static, extra = tmp_path / "media", tmp_path / "static", tmp_path / "assets"
    settings.MEDIA_ROOT = str(media)
    settings.STATIC_ROOT = str(static)
    settings.STATICFILES_DIRS = [("prefixed", str(extra))]
    settings.CACHES = {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "private" / "cache")},
        "inside": {"BACKEND": KV, "LOCATION": str(media / "cache")},
        "same": {"BACKEND": KV, "LOCATION": str(static)},
        "around": {"BACKEND": KV, "LOCATION": str(tmp_path)},
        "assets": {"BACKEND": KV, "LOCATION": str(extra / "kv")},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    nested = ("kv_backend_django.W003", "CACHES['around']")  # tmp_path holds the other LOCATIONs
    assert sorted(_ids()) == [nested, SESSIONS]  # W001 is a deployment check only
    found = _ids(include_deployment_checks=True)
    assert sorted(found) == [
        ("kv_backend_django.W001", "CACHES['around']"),
        ("kv_backend_django.W001", "CACHES['assets']"),
        ("kv_backend_django.W001", "CACHES['inside']"),
        ("kv_backend_django.W001", "CACHES['same']"),
        nested,
        SESSIONS,
    ]
    messages = {m.obj: m.msg for m in run_checks(tags=["caches"], include_deployment_checks=True)}
    assert "is inside MEDIA_ROOT" in messages["CACHES['inside']"]
    assert "contains MEDIA_ROOT" in messages["CACHES['around']"]


def test_a_relative_location_warns(settings, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings.CACHES = {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "abs")},
        "relative": {"BACKEND": KV, "LOCATION": os.path.join("var", "cache")},
    }
    assert sorted(_ids()) == [("kv_backend_django.W002", "CACHES['relative']"), SESSIONS]
