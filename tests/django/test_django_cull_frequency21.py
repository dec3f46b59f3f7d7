"""A CULL_FREQUENCY larger than MAX_ENTRIES, read as "how often to cull" rather than "remove 1/N".

A cache full at MAX_ENTRIES entries culled MAX_ENTRIES // N = 0 of them, so it outgrew MAX_ENTRIES
(up to N entries), and every write scanned all of them under the store's lock: with MAX_ENTRIES 5000
and CULL_FREQUENCY 100000, 2,000 sets past MAX_ENTRIES left 7,000 entries at 2.7 ms a set (86 us with
CULL_FREQUENCY 3). Such a CULL_FREQUENCY is refused, naming both settings.
"""

from __future__ import annotations

import pytest
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"OPTIONS": {"MAX_ENTRIES": 100, "CULL_FREQUENCY": 1000}}, "OPTIONS CULL_FREQUENCY"),
        ({"OPTIONS": {"MAX_ENTRIES": 100}, "cull_frequency": 101}, "cull_frequency"),
        (
            {"max_entries": 10, "OPTIONS": {"MAX_ENTRIES": 1000, "CULL_FREQUENCY": 20}},
            "OPTIONS CULL_FREQUENCY",
        ),
    ],
)
def test_a_cull_frequency_above_max_entries_is_refused(tmp_path, params, named):
    with pytest.raises(
        KVCacheConfigurationError,
        match=rf"{named} of KVCache at .* is \d+, more than MAX_ENTRIES \(\d+\): a cache full at \d+ entries "
        r"would cull \d+ // \d+ = 0 of them.*it is not how often",
    ):
        KVCache(str(tmp_path / "c"), params)


@pytest.mark.parametrize(
    ("options", "most"),
    [
        ({"MAX_ENTRIES": 30, "CULL_FREQUENCY": 30}, 30),  # one entry a cull: still bounded
        ({"MAX_ENTRIES": 30, "CULL_FREQUENCY": 0}, 30),
        ({"MAX_ENTRIES": 2}, 3),  # the default 3 is not refused for a tiny cache
    ],
)
def test_cull_frequencies_that_remove_entries_are_taken(tmp_path, options, most):
    cache = KVCache(str(tmp_path / "c"), {"OPTIONS": options})
    for i in range(100):
        cache.set(f"k{i}", i)
    assert 0 < len(cache.db) <= most and cache.get("k99") == 99


def test_a_negative_cull_frequency_beside_options_is_named_as_given(tmp_path):
    with pytest.raises(KVCacheConfigurationError, match=r"^cull_frequency of KVCache at .* is -1: use N > 0"):
        KVCache(str(tmp_path / "c"), {"cull_frequency": -1})
