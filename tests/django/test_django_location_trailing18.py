"""A LOCATION ending with a list's separator.

A LOCATION with a trailing "," or ";" ("/var/cache/site,", left over from a list or a line of
settings) became a directory with that character in its name, which no other process given the
path without it would use (and "/a;/b;" one named "b;" inside "/a;"). It is refused now, as the
list forms are, unless a directory of that very name exists already.
"""

from __future__ import annotations

import os

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from kv_backend_django.cache import KVCache, KVCacheConfigurationError

KV = "kv_backend_django.cache.KVCache"


@pytest.mark.parametrize("end", [",", ";", " ,", ";;"])
def test_a_location_ending_with_a_separator_is_refused(tmp_path, end):
    location = f"{tmp_path / 'site'}{end}"
    with pytest.raises(KVCacheConfigurationError, match=f"ends with '{end[-1]}'") as info:
        KVCache(location, {})
    assert f"give the directory alone, {str(tmp_path / 'site')!r}" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_under_home_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KVCacheConfigurationError, match="ends with ','"):
        KVCache("~/site,", {})
    assert os.listdir(tmp_path) == []


def test_a_list_with_a_trailing_separator_is_a_list(tmp_path):
    with pytest.raises(KVCacheConfigurationError, match="needs LOCATION as one directory, not 2 "):
        KVCache(f"{tmp_path / 'a'};{tmp_path / 'b'};", {})
    assert os.listdir(tmp_path) == []


def test_an_existing_directory_of_that_name_is_used(tmp_path):
    (tmp_path / "site,").mkdir()
    cache = KVCache(str(tmp_path / "site,"), {})
    cache.set("k", 1)
    assert cache.get("k") == 1 and cache.location == str(tmp_path / "site,")
    assert os.listdir(tmp_path) == ["site,"]


def test_manage_py_check_reports_it(settings, tmp_path):
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": f"{tmp_path / 'site'};"}}
    with pytest.raises(ImproperlyConfigured, match="ends with ';'"):
        run_checks(tags=["caches"])
    assert os.listdir(tmp_path) == []


def test_a_url_ending_with_a_separator_is_refused_as_a_url(tmp_path):
    with pytest.raises(KVCacheConfigurationError, match="not a URL or server"):
        KVCache("redis://127.0.0.1:6379/0,", {})
