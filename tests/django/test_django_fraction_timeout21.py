"""A TIMEOUT that is no whole number of seconds.

Django reads TIMEOUT with int(): 0.5 became 0, "don't cache", so a site or a test configured with
TIMEOUT 0.5 stored nothing at all, silently, while a call's timeout=0.5 keeps a value half a
second; 2.5 became 2. KVCache keeps such a TIMEOUT as given.
"""

from __future__ import annotations

import decimal
import fractions
import time

import pytest
from kv_backend_django.cache import KVCache, close_all


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


@pytest.mark.parametrize(
    ("params", "seconds"),
    [
        ({"TIMEOUT": 0.5}, 0.5),
        ({"TIMEOUT": 2.5}, 2.5),
        ({"TIMEOUT": decimal.Decimal("1.5")}, 1.5),
        ({"TIMEOUT": fractions.Fraction(1, 4)}, 0.25),
        ({"timeout": 0.75, "TIMEOUT": 60}, 0.75),  # (Django reads "timeout" first)
    ],
)
def test_a_fractional_timeout_is_kept(tmp_path, params, seconds):
    cache = KVCache(str(tmp_path / "c"), params)
    assert cache.default_timeout == seconds
    cache.set("k", "v")
    assert cache.get("k") == "v"  # (0: nothing stored)
    left = cache.db.ttl(cache.make_key("k").encode())
    assert left is not None and seconds - 0.2 < left <= seconds


def test_a_half_second_timeout_expires_after_half_a_second(tmp_path):
    cache = KVCache(str(tmp_path / "c"), {"TIMEOUT": 0.3})
    assert cache.add("k", 1) and cache.get_or_set("g", 2) == 2 and cache.get("k") == 1
    time.sleep(0.4)
    assert cache.get("k") is None and cache.get("g") is None


@pytest.mark.parametrize(
    ("timeout", "seconds"), [(3.0, 3), (decimal.Decimal("4"), 4), ("5", 5), (None, None)]
)
def test_whole_and_absent_timeouts_read_as_before(tmp_path, timeout, seconds):
    cache = KVCache(str(tmp_path / "c"), {"TIMEOUT": timeout})
    assert cache.default_timeout == seconds and (seconds is None or type(cache.default_timeout) is int)
