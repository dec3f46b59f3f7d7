"""The BaseCache contract of KVCache, with the semantics of Django's own backends."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import os
import pickle
import time
import warnings

import pytest
from django.core.cache import CacheKeyWarning, cache, caches
from django.core.cache.backends.base import InvalidCacheBackendError
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from helpers import before_expiry
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all, open_store


class Thing:
    """A picklable user object."""

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Thing) and other.value == self.value


def expire_soon(c, key, value="v"):
    """Store ``key`` with a 0.3 s timeout (longer on a loaded machine) and wait until it has expired."""

    def store(life: float) -> object:
        c.set(key, value, life)
        return c.get(key)

    got, expired_by = before_expiry((0.3, 1, 5), store)
    assert got == value
    time.sleep(max(expired_by - time.time(), 0) + 0.05)


# ---------------------------------------------------------------- basics


def test_get_set_and_default():
    assert cache.get("missing") is None
    assert cache.get("missing", "dflt") == "dflt"
    assert cache.set("k", "v") is None
    assert cache.get("k") == "v"
    cache.set("k", "w")
    assert cache.get("k") == "w"


@pytest.mark.parametrize(
    "value",
    [
        None,
        0,
        -12,
        3.5,
        True,
        "unicode ☃ text",
        b"\x00\xff binary",
        bytearray(b"abc"),
        [1, [2, 3]],
        {"a": (1, 2), "b": {3}},
        frozenset({1}),
        datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.timezone.utc),
        decimal.Decimal("1.10"),
        Thing(5),
        "x" * 3_000_000,
    ],
    ids=lambda v: type(v).__name__,
)
def test_any_picklable_value_round_trips(value):
    cache.set("value", value)
    got = cache.get("value", "sentinel")
    assert got == value and type(got) is type(value)


def test_none_is_a_value():
    cache.set("none", None)
    assert cache.get("none", "dflt") is None
    assert cache.has_key("none")
    assert "none" in cache
    assert cache.add("none", 1) is False
    assert cache.get_many(["none", "nope"]) == {"none": None}


def test_values_are_stored_pickled():
    cache.set("pickled", {"a": 1})
    raw = cache.db.get(cache.make_key("pickled").encode())
    assert pickle.loads(raw) == {"a": 1}


def test_unicode_and_odd_keys():
    for key in ["ünïcödé", "with space", "ключ", "a" * 300, "\ud800surrogate", "tab\tkey"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CacheKeyWarning)
            cache.set(key, key)
            assert cache.get(key) == key
            assert cache.delete(key) is True


def test_huge_keys_are_hashed_not_refused():
    key = "k" * 70_000  # bigger than the engine's 64 KiB key limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CacheKeyWarning)
        cache.set(key, 1)
        assert cache.get(key) == 1
        assert cache.get(key[:-1] + "j") is None
        assert cache.incr(key) == 2
        assert cache.delete(key)


def test_validate_key_warnings():
    with pytest.warns(CacheKeyWarning, match="longer than 250"):
        cache.set("x" * 260, 1)
    with pytest.warns(CacheKeyWarning, match="characters that will cause errors"):
        cache.set("has space", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheKeyWarning)
        cache.set("fine_key", 1)  # no warning


def test_add():
    assert cache.add("a", 1) is True
    assert cache.add("a", 2) is False
    assert cache.get("a") == 1
    expire_soon(cache, "gone")
    assert cache.add("gone", "new") is True  # an expired key counts as absent
    assert cache.get("gone") == "new"


def test_delete_and_has_key():
    assert cache.delete("nope") is False
    cache.set("d", 1)
    assert cache.has_key("d") and "d" in cache
    assert cache.delete("d") is True
    assert not cache.has_key("d") and "d" not in cache
    assert cache.delete("d") is False


def test_clear_removes_everything_in_the_location():
    cache.set("a", 1)
    caches["prefix"].set("a", 2)
    caches["other"].set("a", 3)
    cache.clear()
    assert cache.get("a") is None
    assert caches["prefix"].get("a") is None  # same directory: gone too, as with FileBasedCache
    assert caches["other"].get("a") == 3  # another directory is untouched


def test_get_set_delete_many():
    assert cache.set_many({"a": 1, "b": None, "c": [3]}) == []
    assert cache.get_many(["a", "b", "c", "d"]) == {"a": 1, "b": None, "c": [3]}
    assert cache.get_many(iter(["a"])) == {"a": 1}
    assert cache.get_many([]) == {}
    assert cache.delete_many(["a", "c", "zzz"]) is None
    assert cache.get_many(["a", "b", "c"]) == {"b": None}
    assert cache.set_many({}) == []
    cache.set_many({"t1": 1, "t2": 2}, timeout=0)
    assert cache.get_many(["t1", "t2"]) == {}


def test_set_many_is_one_atomic_batch():
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set_many({"ok": 1, "bad": lambda: 1})
    assert cache.get("ok") is None  # nothing of a failed set_many is stored


# ---------------------------------------------------------------- timeouts


def test_timeout_none_is_forever_and_default_is_settings_timeout():
    cache.set("forever", 1, None)
    assert cache.db.ttl(cache.make_key("forever").encode()) is None
    cache.set("default", 1)
    assert 299 < cache.db.ttl(cache.make_key("default").encode()) <= 300
    caches["forever"].set("x", 1)
    assert caches["forever"].db.ttl(caches["forever"].make_key("x").encode()) is None
    cache.set("float", 1, 12.5)
    assert 12 < cache.db.ttl(cache.make_key("float").encode()) <= 12.5


def test_infinite_timeout_is_forever_like_djangos_local_backends():
    cache.set("inf", 1, float("inf"))
    assert cache.get("inf") == 1
    assert cache.db.ttl(cache.make_key("inf").encode()) is None
    assert cache.add("inf2", 2, float("inf")) and cache.get_or_set("inf3", 3, float("inf")) == 3
    assert cache.touch("inf3", float("inf")) is True
    cache.set_many({"m": 1}, float("inf"))
    assert [cache.db.ttl(cache.make_key(k).encode()) for k in ("inf2", "inf3", "m")] == [None] * 3
    cache.set("gone", 1, float("-inf"))
    assert cache.get("gone") is None


@pytest.mark.parametrize("timeout", [0, -1, -3.5])
def test_zero_or_negative_timeout_expires_at_once(timeout):
    cache.set("k", "old")
    cache.set("k", "new", timeout)
    assert cache.get("k") is None
    assert cache.add("fresh", 1, timeout) is True  # "stored", already expired
    assert cache.get("fresh") is None
    cache.set("present", 1)
    assert cache.add("present", 2, timeout) is False
    assert cache.get("present") == 1
    assert cache.get_or_set("gos", "d", timeout) == "d"
    assert cache.get("gos") is None
    assert cache.touch("present", timeout) is True
    assert cache.get("present") is None


def test_expiry_and_settings_timeout():
    short = caches["short"]
    short.set("k", 1)
    assert short.get("k") == 1
    expire_soon(cache, "e")
    assert cache.get("e") is None and not cache.has_key("e")
    assert cache.get_many(["e"]) == {}


def test_touch():
    assert cache.touch("missing") is False

    def touched(life: float) -> bool:
        cache.set("t", 1, life)
        return cache.touch("t", 100)

    touched_in_time, first_expiry = before_expiry((0.3, 1, 5), touched)
    assert touched_in_time is True
    time.sleep(max(first_expiry - time.time(), 0) + 0.05)
    assert cache.get("t") == 1
    assert cache.touch("t", None) is True
    assert cache.db.ttl(cache.make_key("t").encode()) is None
    assert cache.touch("t") is True  # default timeout
    assert 299 < cache.db.ttl(cache.make_key("t").encode()) <= 300
    expire_soon(cache, "old")
    assert cache.touch("old") is False


# ---------------------------------------------------------------- incr / get_or_set


def test_incr_decr():
    cache.set("n", 1)
    assert cache.incr("n") == 2
    assert cache.incr("n", 10) == 12
    assert cache.decr("n") == 11
    assert cache.decr("n", 20) == -9
    assert cache.get("n") == -9
    cache.set("f", 1.5)
    assert cache.incr("f", 2) == 3.5
    with pytest.raises(ValueError, match="not found"):
        cache.incr("missing")
    with pytest.raises(ValueError, match="not found"):
        cache.decr("missing")
    assert "missing" not in cache


def test_incr_keeps_expiry_and_rejects_non_numbers():
    cache.set("n", 1, 100)
    cache.incr("n")
    assert 99 < cache.db.ttl(cache.make_key("n").encode()) <= 100
    cache.set("s", "text")
    with pytest.raises(TypeError):
        cache.incr("s")
    assert cache.get("s") == "text"  # a failed incr writes nothing
    expire_soon(cache, "gone", 5)
    with pytest.raises(ValueError):
        cache.incr("gone")


def test_get_or_set():
    assert cache.get_or_set("g", "first") == "first"
    assert cache.get_or_set("g", "second") == "first"
    calls = []
    assert cache.get_or_set("c", lambda: calls.append(1) or "computed") == "computed"
    assert cache.get_or_set("c", lambda: calls.append(1) or "again") == "computed"
    assert calls == [1]
    assert cache.get_or_set("n", None) is None
    assert cache.has_key("n")  # None is stored as a value
    assert cache.get_or_set("t", 1, timeout=None) == 1
    assert cache.db.ttl(cache.make_key("t").encode()) is None


# ---------------------------------------------------------------- versions, prefixes, key functions


def test_versions():
    cache.set("a", "v1", version=1)
    cache.set("a", "v2", version=2)
    assert cache.get("a") == "v1"
    assert cache.get("a", version=2) == "v2"
    assert caches["v2"].get("a") == "v2"
    assert caches["v2"].get("a", version=1) == "v1"
    assert cache.get_many(["a"], version=2) == {"a": "v2"}
    cache.delete("a", version=2)
    assert cache.get("a", version=2) is None and cache.get("a") == "v1"


def test_incr_decr_version():
    cache.set("k", 42, None)
    assert cache.incr_version("k") == 2
    assert cache.get("k") is None
    assert cache.get("k", version=2) == 42
    assert 299 < cache.db.ttl(cache.make_key("k", 2).encode()) <= 300  # default timeout, as in Django
    assert cache.decr_version("k", version=2) == 1
    assert cache.get("k") == 42 and cache.get("k", version=2) is None
    assert cache.incr_version("k", delta=5) == 6
    with pytest.raises(ValueError):
        cache.incr_version("does-not-exist")
    caches["v2"].set("v", 1)
    assert caches["v2"].incr_version("v") == 3
    assert caches["v2"].get("v", version=3) == 1


def test_key_prefix_isolates_aliases_on_one_location():
    cache.set("k", "plain")
    caches["prefix"].set("k", "prefixed")
    assert cache.get("k") == "plain"
    assert caches["prefix"].get("k") == "prefixed"
    caches["prefix"].delete("k")
    assert cache.get("k") == "plain"
    assert cache.db is caches["prefix"].db  # one shared store per directory


def test_custom_key_function():
    custom = caches["custom_key"]
    custom.set("k", 1)
    assert custom.get("k") == 1
    assert cache.get("k") is None
    assert custom.db.get(b"CUSTOM--1-k") is not None


def test_separate_locations_are_separate():
    cache.set("k", 1)
    assert caches["other"].get("k") is None
    assert os.path.isdir(caches["other"].location)  # nested directory created


# ---------------------------------------------------------------- culling


def _cull_count(alias, initial_count):
    c = caches[alias]
    for i in range(1, initial_count):
        c.set(f"cull{i}", "value", 1000)
    return sum(1 for i in range(1, initial_count) if c.has_key(f"cull{i}"))


def test_cull_removes_a_third():
    # 49 sets with MAX_ENTRIES=30: culls at 30 -> 20 (+1), again later -> 29 left, as in Django.
    assert _cull_count("cull", 50) == 29


def test_zero_cull_frequency_clears():
    assert _cull_count("zero_cull", 50) == 19


def test_cull_through_add_set_many_and_get_or_set():
    c = caches["cull"]
    for i in range(40):
        c.add(f"a{i}", i)
    assert len(c.db) <= 30
    c.clear()
    c.set_many({f"m{i}": i for i in range(29)})
    c.set_many({"x": 1, "y": 2})
    assert len(c.db) <= 30
    for i in range(40):
        c.get_or_set(f"g{i}", i)
    assert len(c.db) <= 30


def test_set_many_culls_until_the_batch_fits_like_sets_one_by_one():
    # Django's backends set the keys one by one, culling a third each time the store is
    # full: 20 entries + 20 new ones end at MAX_ENTRIES (30), not 20 - 20 // 3 + 20 = 34.
    c = caches["cull"]
    for i in range(20):
        c.set(f"old{i}", i)
    c.set_many({f"new{i}": i for i in range(20)})
    assert len(c.db) <= 30
    assert all(c.has_key(f"new{i}") for i in range(20))


def test_cull_check_uses_the_constant_time_index_size():
    # The per-set cull check reads the engine's key directory size (O(1)); if the
    # engine renames it, the check silently falls back to the O(n) len().
    from kv_backend_django.cache import _indexed_count

    cache.set("k", 1, 100)
    assert len(cache.db._ix.kd) == _indexed_count(cache.db) == 1


def test_cull_drops_expired_entries_first():
    c = caches["cull"]
    for i in range(29):
        c.set(f"e{i}", i, 0.2)
    time.sleep(0.25)
    for i in range(10):
        c.set(f"live{i}", i)
    assert all(c.has_key(f"live{i}") for i in range(10))  # no live entry was culled


# ---------------------------------------------------------------- lifecycle and configuration


def test_close_is_cheap_and_keeps_the_store_open():
    db = cache.db
    cache.set("k", 1)
    for _ in range(3):
        cache.close()
    assert not db.closed
    assert cache.get("k") == 1
    asyncio.run(cache.aclose())
    assert cache.db is db


def test_store_reopens_after_close_all():
    cache.set("k", 1)
    old = cache.db
    close_all()
    assert old.closed
    assert cache.get("k") == 1
    assert cache.db is not old


def test_one_db_per_location_across_instances():
    a = KVCache(caches["default"].location, {})
    b = KVCache(caches["default"].location + "/", {"KEY_PREFIX": "x"})
    assert a.db is b.db is cache.db


def test_bad_configuration(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="LOCATION"):
        KVCache("", {})
    with pytest.raises(ImproperlyConfigured, match=r"unknown OPTIONS.*SYNC"):
        KVCache(str(tmp_path / "a"), {"OPTIONS": {"SYNC": "always"}})
    with pytest.raises(KVCacheConfigurationError, match=r"CULL_FREQUENCY .* is -1"):
        KVCache(str(tmp_path / "a"), {"OPTIONS": {"MAX_ENTRIES": 3, "CULL_FREQUENCY": -1}})
    with pytest.raises(KVCacheConfigurationError, match="sync"):
        KVCache(str(tmp_path / "b"), {"OPTIONS": {"sync": "sometimes"}}).get("k")
    KVCache(str(tmp_path / "c"), {"OPTIONS": {"sync": "always"}}).set("k", 1)
    with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):
        KVCache(str(tmp_path / "c"), {"OPTIONS": {"sync": "never"}}).get("k")
    (tmp_path / "file").write_text("not a dir")
    with pytest.raises(OSError):
        KVCache(str(tmp_path / "file"), {}).get("k")


def test_aliases_that_spell_out_the_engine_defaults_share_a_location(tmp_path):
    """An alias that writes the default sync/max_file_size/auto_merge agrees with one that omits them."""
    location = str(tmp_path / "shared")
    KVCache(location, {}).set("k", 1)
    spelled_out = {"sync": "never", "max_file_size": 128 << 20, "auto_merge": None}
    assert KVCache(location, {"OPTIONS": spelled_out}).get("k") == 1
    with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):
        KVCache(location, {"OPTIONS": {"sync": "always"}}).get("k")


def test_new_location_is_private_and_foreign_directories_are_refused(tmp_path):
    """A LOCATION the cache creates (parents too) is 0700; a directory of other files is a config error."""
    old_umask = os.umask(0o022)
    try:
        KVCache(str(tmp_path / "new" / "parent" / "cache"), {}).set("k", 1)
    finally:
        os.umask(old_umask)
    for d in (tmp_path / "new", tmp_path / "new" / "parent", tmp_path / "new" / "parent" / "cache"):
        assert os.stat(d).st_mode & 0o777 == 0o700, d
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    KVCache(str(shared), {}).set("k", 1)
    assert os.stat(shared).st_mode & 0o777 == 0o755  # an existing directory keeps its mode
    project = tmp_path / "project"
    project.mkdir()
    (project / "settings.py").write_text("DEBUG = True\n")
    with pytest.raises(KVCacheConfigurationError, match="empty directory") as info:
        KVCache(str(project), {}).get("k")
    assert isinstance(info.value, ImproperlyConfigured)
    assert os.listdir(project) == ["settings.py"]


def test_engine_options_pass_through(tmp_path):
    c = KVCache(str(tmp_path / "opts"), {"OPTIONS": {"sync": 0.5, "max_file_size": 8192, "MAX_ENTRIES": 10}})
    for i in range(8):
        c.set(f"k{i}", "x" * 2000)
    stats = c.db.stats()
    assert stats["files"] > 1 and stats["sync"] == 0.5
    assert open_store(str(tmp_path / "opts"), sync=0.5, max_file_size=8192) is c.db


def test_unknown_backend_alias_is_djangos_error():
    with pytest.raises(InvalidCacheBackendError):
        caches["nope"]


@override_settings(
    CACHES={"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": "/dev/null/cannot"}}
)
def test_unusable_location_raises_a_clear_oserror():
    from django.core.cache import caches as fresh

    with pytest.raises(OSError, match="/dev/null/cannot"):
        fresh["default"].set("k", 1)


def test_unpicklable_values_raise_and_store_nothing():
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.set("bad", lambda: 1)
    assert cache.get("bad") is None
    with pytest.raises((pickle.PicklingError, TypeError, AttributeError)):
        cache.add("bad", lambda: 1)
    assert "bad" not in cache


# ---------------------------------------------------------------- async API


def test_async_methods():
    async def scenario():
        assert await cache.aget("a") is None
        await cache.aset("a", 1)
        assert await cache.aget("a") == 1
        assert await cache.aadd("a", 2) is False
        assert await cache.aadd("b", 2) is True
        assert await cache.ahas_key("b")
        assert await cache.aincr("a", 5) == 6
        assert await cache.adecr("a") == 5
        with pytest.raises(ValueError):
            await cache.aincr("zzz")
        assert await cache.aget_or_set("c", lambda: 3) == 3
        assert await cache.aget_or_set("c", 4) == 3
        await cache.aset_many({"m1": 1, "m2": 2})
        assert await cache.aget_many(["m1", "m2", "m3"]) == {"m1": 1, "m2": 2}
        await cache.adelete_many(["m1"])
        assert await cache.aget_many(["m1", "m2"]) == {"m2": 2}
        assert await cache.atouch("m2", None) is True
        assert await cache.adelete("m2") is True
        assert await cache.aincr_version("a") == 2
        assert await cache.aget("a", version=2) == 5
        assert await cache.adecr_version("a", version=2) == 1
        await cache.aclear()
        assert await cache.aget("a") is None

    asyncio.run(scenario())


# ---------------------------------------------------------------- threads and bad input


def test_threads_share_one_store_and_count_exactly():
    import threading

    cache.set("t", 0, None)
    stores = set()

    def work():
        from django.core.cache import caches as per_thread  # Django gives each thread its own instance

        c = per_thread["default"]
        stores.add(id(c.db))
        for _ in range(200):
            c.incr("t")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get("t") == 800
    assert stores == {id(cache.db)}


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.set("k", 1, timeout="10"),
        lambda c: c.add("k", 1, timeout=[1]),
        lambda c: c.incr("n", "x"),
    ],
)
def test_bad_arguments_raise_type_error_like_locmem(call):
    for c in (cache, caches["locmem"]):
        c.set("n", 1)
        with pytest.raises(TypeError):
            call(c)
        assert c.get("n") == 1
