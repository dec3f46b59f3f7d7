"""Review 12 of the Django integration: LOCATION spellings, odd timeouts, sessions, middleware, async."""

from __future__ import annotations

import os

import pytest
from django.core.exceptions import ImproperlyConfigured
from kv_backend_django.cache import KVCache, KVCacheConfigurationError

KV = "kv_backend_django.cache.KVCache"


@pytest.mark.parametrize(
    "location, says",
    [
        ("file:///var/cache/mysite", "use the path itself, '/var/cache/mysite'"),
        ("redis://127.0.0.1:6379/1", "the LOCATION of another cache backend"),
        ("memcached://127.0.0.1:11211", "the LOCATION of another cache backend"),
    ],
)
def test_a_url_location_is_refused_not_made_a_directory_under_the_working_directory(
    tmp_path, monkeypatch, location, says
):
    """A URL copied from another alias's settings was a directory "redis:/127.0.0.1:6379/1" here."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KVCacheConfigurationError, match="must be a directory, not a URL") as info:
        KVCache(location, {})
    assert says in str(info.value)
    assert isinstance(info.value, ImproperlyConfigured)
    assert os.listdir(tmp_path) == []


def test_manage_py_check_refuses_a_url_location(settings, tmp_path, monkeypatch):
    from django.core.checks import run_checks

    monkeypatch.chdir(tmp_path)
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": "redis://127.0.0.1:6379/0"}}
    with pytest.raises(ImproperlyConfigured, match=r"not a URL \('redis://127.0.0.1:6379/0'\)"):
        run_checks(tags=["caches"])
    assert os.listdir(tmp_path) == []


def test_a_location_under_home_is_expanded_not_a_directory_named_tilde(settings, tmp_path, monkeypatch):
    """Django's FileBasedCache makes "./~/cache" in each working directory: a store per process."""
    from django.core.checks import run_checks

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    cache = KVCache("~/cache", {})
    assert cache.location == str(home / "cache")
    cache.set("k", 1)
    assert KVCache(str(home / "cache"), {}).get("k") == 1
    assert os.listdir(work) == []
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": "~/cache"}}
    assert [m.id for m in run_checks(tags=["caches"]) if m.id.startswith("kv_backend")] == []  # no W002


def test_a_location_under_an_unknown_users_home_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KVCacheConfigurationError, match="no such home directory"):
        KVCache("~no-such-user-kvb12/cache", {})
    assert os.listdir(tmp_path) == []
