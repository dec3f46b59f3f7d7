"""A KVCache LOCATION that lists directories, as a memcached or Redis LOCATION lists servers
("/a;/b", "/a,/b", ["/a", "/b"]), was taken as one directory named "b" inside "/a;" (or "/a,"),
created on first use; a list or tuple was refused with "needs LOCATION", as if none were given.
Each is refused now when the cache is created (so ``manage.py check`` reports it), saying that
a KVCache keeps its cache in one directory (one given as a list: to give it alone), and nothing
is created."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from kv_backend_django.cache import KVCache, KVCacheConfigurationError

KV = "kv_backend_django.cache.KVCache"


@pytest.mark.parametrize("separator", [";", ",", ", ", " ; "])
def test_a_string_listing_directories_is_refused(tmp_path, separator):
    a, b = tmp_path / "a", tmp_path / "b"
    with pytest.raises(KVCacheConfigurationError, match="needs LOCATION as one directory, not 2 ") as info:
        KVCache(f"{a}{separator}{b}", {})
    assert isinstance(info.value, ImproperlyConfigured)
    assert "keeps its cache in one directory" in str(info.value)
    assert f"give one, such as {str(a)!r}," in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("kind", [list, tuple])
def test_a_list_or_tuple_of_directories_is_refused(tmp_path, kind):
    location = kind([str(tmp_path / "a"), tmp_path / "b", str(tmp_path / "c")])
    with pytest.raises(KVCacheConfigurationError, match="needs LOCATION as one directory, not 3 ") as info:
        KVCache(location, {})
    assert "configure a cache alias for each directory" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_a_list_of_one_directory_says_to_give_the_directory_itself(tmp_path):
    with pytest.raises(
        KVCacheConfigurationError, match=r"as one directory, not a list .*: give the directory itself"
    ) as info:
        KVCache([str(tmp_path / "cache")], {})
    assert repr(str(tmp_path / "cache")) in str(info.value)
    assert os.listdir(tmp_path) == []


def test_under_home_too(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KVCacheConfigurationError, match="needs LOCATION as one directory, not 2 "):
        KVCache("~/a;~/b", {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["reports,2026", "a;b", "x, y", "a;b;/c"])
def test_a_directory_whose_name_holds_a_separator_is_still_one_directory(tmp_path, name):
    """Only a LOCATION every part of which is an absolute path is a list."""
    cache = KVCache(str(tmp_path / name), {})
    cache.set("k", 1)
    assert cache.get("k") == 1
    assert os.path.isdir(tmp_path / name) and cache.location == str(tmp_path / name)


def test_manage_py_check_and_the_commands_report_it(settings, tmp_path):
    from django.core.checks import run_checks

    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": f"{tmp_path / 'a'};{tmp_path / 'b'}"}}
    with pytest.raises(ImproperlyConfigured, match="needs LOCATION as one directory, not 2 "):
        run_checks(tags=["caches"])
    with pytest.raises(CommandError, match=r"cache 'default' cannot be created: .*as one directory, not 2 "):
        call_command("kv_stats", stdout=StringIO())
    assert os.listdir(tmp_path) == []
