"""OPTIONS a KVCache could not use, refused with an error naming the setting.

MAX_ENTRIES 0 or negative ("no limit" in other tools) was taken as Django takes it: every write culled
first, so the cache kept about 3 entries (cached sessions logged out at once), each write scanning the
store under its lock. An OPTIONS key that is no string ({1: 2}) was a raw TypeError from sorting the
unknown keys, not the ImproperlyConfigured that names them.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all


@pytest.mark.parametrize("value", [0, -1, "-5"])
@pytest.mark.parametrize(("where", "named"), [("OPTIONS", "OPTIONS MAX_ENTRIES"), ("beside", "max_entries")])
def test_a_max_entries_below_one_is_refused(tmp_path, value, where, named):
    params = {"OPTIONS": {"MAX_ENTRIES": value}} if where == "OPTIONS" else {"max_entries": value}
    with pytest.raises(
        KVCacheConfigurationError,
        match=rf"{named} of KVCache at .* is {int(value)}: the cache would be culled before every write.*"
        "there is no 'unlimited'",
    ):
        KVCache(str(tmp_path / "c"), params)
    assert not (tmp_path / "c").exists()  # refused before anything was made


def test_a_max_entries_of_one_still_works(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {"OPTIONS": {"MAX_ENTRIES": 1, "CULL_FREQUENCY": 1}})
    try:
        for i in range(5):
            cache.set(f"k{i}", i)
        assert cache.get("k4") == 4 and len(cache.db) == 1
    finally:
        close_all()


@pytest.mark.parametrize("options", [{1: 2}, {1: 2, "SYNC": "never"}, {("a",): 1, None: 0}])
def test_options_keys_that_are_no_strings_are_named(tmp_path, options):
    with pytest.raises(
        ImproperlyConfigured, match=r"unknown OPTIONS for KVCache at .*: .*; valid ones are"
    ) as err:
        KVCache(str(tmp_path / "c"), {"OPTIONS": options})
    for key in options:
        assert repr(key) in str(err.value)


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"SYNC": "always"}, "'SYNC' is 'sync'"),
        ({"max_entries": 10_000}, "'max_entries' is 'MAX_ENTRIES'"),
        ({"Auto_Merge": 0.5, "typo": 1}, "'Auto_Merge' is 'auto_merge')"),
    ],
)
def test_an_option_in_the_wrong_letter_case_is_named_with_its_spelling(tmp_path, options, says):
    """'unknown OPTIONS ...: 'max_entries'' left the reader to see that only the case was wrong."""
    with pytest.raises(KVCacheConfigurationError, match="the names are case-sensitive") as err:
        KVCache(str(tmp_path / "c"), {"OPTIONS": options})
    assert says in str(err.value)


def test_an_unknown_option_of_no_other_spelling_gets_no_case_hint(tmp_path):
    with pytest.raises(KVCacheConfigurationError) as err:
        KVCache(str(tmp_path / "c"), {"OPTIONS": {"CLIENT_CLASS": "x"}})
    assert "case-sensitive" not in str(err.value) and "'CLIENT_CLASS'" in str(err.value)
