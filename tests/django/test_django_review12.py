"""Review 12 of the Django integration: LOCATION spellings, odd timeouts, sessions, middleware, async."""

from __future__ import annotations

import os
from decimal import Decimal

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
        ("127.0.0.1:11211", "the LOCATION of another cache backend"),
        ("localhost:6379/0", "the LOCATION of another cache backend"),
        ("unix:/run/memcached/memcached.sock", "the LOCATION of another cache backend"),
    ],
)
def test_a_url_location_is_refused_not_made_a_directory_under_the_working_directory(
    tmp_path, monkeypatch, location, says
):
    """A URL or server copied from another alias's settings was a directory "redis:/127.0.0.1:6379/1"
    (or "127.0.0.1:11211") here."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KVCacheConfigurationError, match="must be a directory, not a URL or server") as info:
        KVCache(location, {})
    assert says in str(info.value)
    assert isinstance(info.value, ImproperlyConfigured)
    assert os.listdir(tmp_path) == []


def test_manage_py_check_refuses_a_url_location(settings, tmp_path, monkeypatch):
    from django.core.checks import run_checks

    monkeypatch.chdir(tmp_path)
    settings.CACHES = {"default": {"BACKEND": KV, "LOCATION": "redis://127.0.0.1:6379/0"}}
    with pytest.raises(ImproperlyConfigured, match=r"not a URL or server \('redis://127.0.0.1:6379/0'\)"):
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
    found = [m.id for m in run_checks(tags=["caches"]) if m.id.startswith("kv_backend")]
    assert found == ["kv_backend_django.W007"]  # no W002 (W007: the sessions' alias sets no MAX_ENTRIES)


def test_a_location_under_an_unknown_users_home_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KVCacheConfigurationError, match="no such home directory"):
        KVCache("~no-such-user-kvb12/cache", {})
    assert os.listdir(tmp_path) == []


NAN_TIMEOUTS = [float("nan"), Decimal("NaN"), Decimal("sNaN")]
TIMEOUT_CALLS = {
    "set": lambda c, t: c.set("k", 1, t),
    "add": lambda c, t: c.add("k", 1, t),
    "touch": lambda c, t: c.touch("k", t),
    "set_many": lambda c, t: c.set_many({"k": 1, "j": 2}, t),
    "get_or_set": lambda c, t: c.get_or_set("k", 1, t),
}


@pytest.mark.parametrize("call", TIMEOUT_CALLS, ids=str)
@pytest.mark.parametrize("timeout", NAN_TIMEOUTS, ids=repr)
def test_a_nan_timeout_is_a_value_error_as_in_djangos_server_backends(tmp_path, call, timeout):
    """It was the engine's ConfigurationError about a "ttl" (for get_or_set, the value silently
    not stored; for a Decimal NaN, decimal.InvalidOperation); Django's Redis, memcached and
    database backends raise ValueError. Nothing is written."""
    cache = KVCache(str(tmp_path / "c"), {})
    before = {} if call == "get_or_set" else {"k": 0}  # get_or_set of a present key stores nothing
    cache.set_many(before)
    with pytest.raises(ValueError, match=r"(?i)a cache timeout is a number of seconds or None, not .*nan"):
        TIMEOUT_CALLS[call](cache, timeout)
    assert cache.get_many(["k", "j"]) == before


@pytest.mark.parametrize("call", TIMEOUT_CALLS, ids=str)
@pytest.mark.parametrize(
    "timeout, kept",
    [
        (float("inf"), True),
        (10**400, True),
        (Decimal("Infinity"), True),
        (float("-inf"), False),
        (-(10**400), False),
    ],
    ids=["inf", "10**400", "Decimal-Infinity", "-inf", "-10**400"],
)
def test_infinite_and_huge_timeouts_mean_forever_or_expired_at_once(tmp_path, call, timeout, kept):
    """10**400 seconds was an OverflowError (as in Django's local-memory and file backends): longer
    than any expiry, it keeps the key forever, as float("inf") does."""
    cache = KVCache(str(tmp_path / "c"), {})
    if call == "touch":
        cache.set("k", 1, 1)
    TIMEOUT_CALLS[call](cache, timeout)
    assert cache.get("k") == (1 if kept else None)
    if kept:
        assert cache.db.ttl(cache.make_key("k").encode()) is None


def test_a_huge_default_timeout_is_forever_for_every_write(tmp_path):
    """TIMEOUT 10**400 passes Django's int() check; every set then raised OverflowError."""
    cache = KVCache(str(tmp_path / "c"), {"TIMEOUT": 10**400})
    cache.set("k", 1)
    assert cache.incr_version("k") == 2
    assert cache.get("k", version=2) == 1
    assert cache.db.ttl(cache.make_key("k", version=2).encode()) is None


@pytest.mark.parametrize(
    "location, says",
    [
        ("/var/cache/site\n", "begins or ends with whitespace"),
        (" /var/cache/site", "begins or ends with whitespace"),
        (" ", "begins or ends with whitespace"),
        ("/var/cache/si\0te", "holds a NUL character"),
    ],
    ids=["newline", "leading-space", "blank", "nul"],
)
def test_a_location_with_whitespace_around_it_or_a_nul_is_refused(tmp_path, monkeypatch, location, says):
    """A path read from a file with its newline was a directory "site\\n" (another store than the
    one kvb and cron are given), a leading space a relative directory " " here, a NUL a raw
    ValueError ("embedded null byte") on every request."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KVCacheConfigurationError, match=says):
        KVCache(location, {})
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("timeout", [0, -1], ids=["zero", "negative"])
def test_set_many_already_expired_writes_nothing_for_keys_not_stored(tmp_path, timeout):
    """With TIMEOUT 0 ("don't cache") every set_many wrote a delete record per key, stored or not:
    dead bytes on disk until a merge. It deletes the stored keys, atomically, as set() does."""
    cache = KVCache(str(tmp_path / "c"), {})
    cache.set_many({"a": 1, "b": 2})
    end = cache.db.stats()["active_end"]
    cache.set_many({f"absent{i}": i for i in range(50)}, timeout)
    assert cache.db.stats()["active_end"] == end
    cache.set_many({"a": 3, "absent": 4}, timeout)
    assert cache.get_many(["a", "b", "absent"]) == {"b": 2}


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files in /proc")
def test_overriding_caches_in_tests_does_not_keep_every_store_open(tmp_path):
    """A Django test suite that gives each test a cache in a temporary directory kept every store
    it opened open (five file descriptors each): "Too many open files" after a few hundred tests."""
    from django.core.cache import cache, caches
    from django.test import override_settings
    from kv_backend_django import cache as kvcache

    outer = caches["default"].db  # the store of the settings outside the overrides stays open
    held = None
    before = _open_fds()
    for i in range(20):
        location = str(tmp_path / f"test{i}")
        with override_settings(CACHES={"default": {"BACKEND": KV, "LOCATION": location}}):
            cache.set("k", i)
            assert not outer.closed
            held = held or caches["default"]
    assert _open_fds() <= before
    assert all(not path.startswith(str(tmp_path)) for path in kvcache._stores)
    assert held.get("k") == 0  # a KVCache still held reopens its store


def test_a_permission_error_without_a_file_name_does_not_end_in_none(tmp_path):
    """The cache's advice on a store it may not open kept the engine's file name even when there
    was none, and an OSError with its filename set to None prints ": None" at the end."""
    import errno

    from kv_backend_django.cache import _permission_error

    from kv_backend.errors import StorageError

    err = _permission_error(str(tmp_path), StorageError(errno.EACCES, "Permission denied"))
    assert not str(err).endswith(": None"), str(err)
    assert err.errno == errno.EACCES and err.filename is None
    named = StorageError(errno.EACCES, "Permission denied")
    named.filename = str(tmp_path / "LOCK")
    assert _permission_error(str(tmp_path), named).filename == str(tmp_path / "LOCK")
