"""Keys of a KVCache's CACHES entry that Django does not read.

Django ignores them: "MAX_ENTRIES": 100_000 given beside OPTIONS rather than in it left the cache
culling at 300 entries (cached sessions logged out), silently; so did "sync": "always" there (no
fsync), a typo ("OPTION", "TIMEOUTS") or a setting of another backend (diskcache's "SHARDS").
A cache option there is refused with ImproperlyConfigured saying where it goes; any other such key is
reported by manage.py check (W005) and does not stop the cache.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


@pytest.mark.parametrize(
    ("key", "value", "option"),
    [
        ("MAX_ENTRIES", 100_000, "MAX_ENTRIES"),
        ("CULL_FREQUENCY", 4, "CULL_FREQUENCY"),
        ("sync", "always", "sync"),
        ("SYNC", "always", "sync"),
        ("AUTO_MERGE", 0.5, "auto_merge"),
        ("max_file_size", 1 << 20, "max_file_size"),
    ],
)
def test_a_cache_option_beside_options_is_refused_saying_where_it_goes(tmp_path, key, value, option):
    with pytest.raises(
        KVCacheConfigurationError,
        match=rf"'{key}' of KVCache at .* is given beside OPTIONS, where Django does not read it: put it in "
        rf"OPTIONS, as \{{'OPTIONS': \{{'{option}': {value!r}\}}\}}",
    ):
        KVCache(str(tmp_path / "c"), {"TIMEOUT": 60, key: value})
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("keys", [["OPTION"], ["TIMEOUTS"], ["SHARDS", "DATABASE_TIMEOUT"], [1]])
def test_an_unknown_key_is_reported_by_check_and_does_not_stop_the_cache(tmp_path, keys):
    from django.core import checks

    entry = {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(tmp_path / "c")}
    entry.update({key: 1 for key in keys})
    cache = KVCache(str(tmp_path / "c"), {k: v for k, v in entry.items() if k not in ("BACKEND", "LOCATION")})
    cache.set("k", 1)
    assert cache.get("k") == 1
    with override_settings(CACHES={"default": entry}):
        found = [m for m in checks.run_checks(tags=[checks.Tags.caches]) if m.id == "kv_backend_django.W005"]
    assert len(found) == 1, found
    assert found[0].obj == "CACHES['default']"
    assert all(repr(key) in found[0].msg for key in keys), found[0].msg


def test_check_is_silent_for_the_keys_django_reads(tmp_path):
    from django.core import checks

    entry = {
        "BACKEND": "kv_backend_django.cache.KVCache",
        "LOCATION": str(tmp_path / "c"),
        "TIMEOUT": 60,
        "OPTIONS": {"MAX_ENTRIES": 10},
        "KEY_PREFIX": "p",
        "VERSION": 2,
    }
    with override_settings(CACHES={"default": entry}):
        assert not [
            m for m in checks.run_checks(tags=[checks.Tags.caches]) if m.id == "kv_backend_django.W005"
        ]


def test_every_key_django_reads_is_taken(tmp_path):
    cache = KVCache(
        str(tmp_path / "c"),
        {
            "BACKEND": "kv_backend_django.cache.KVCache",
            "LOCATION": str(tmp_path / "c"),
            "TIMEOUT": 60,
            "timeout": 30,
            "max_entries": 50,
            "cull_frequency": 2,
            "OPTIONS": {"MAX_ENTRIES": 10, "sync": "never"},
            "KEY_PREFIX": "p",
            "VERSION": 3,
            "KEY_FUNCTION": "django.core.cache.backends.base.default_key_func",
        },
    )
    cache.set("k", 1)
    assert cache.get("k") == 1 and cache.default_timeout == 30 and cache._max_entries == 50
    assert cache.make_key("k") == "p:3:k"


def test_a_command_names_the_misplaced_key(tmp_path):
    caches = {
        "default": {
            "BACKEND": "kv_backend_django.cache.KVCache",
            "LOCATION": str(tmp_path / "c"),
            "MAX_ENTRIES": 100_000,
        }
    }
    with (
        override_settings(CACHES=caches),
        pytest.raises(
            CommandError,
            match=r"cache 'default' cannot be created: 'MAX_ENTRIES' of KVCache at .* beside OPTIONS",
        ),
    ):
        call_command("kv_stats", stdout=io.StringIO())
