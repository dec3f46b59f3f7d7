"""OPTIONS ``auto_merge: 0`` turns automatic merging off, as None does and as ``auto_merge=0`` in a
``kvb://`` URL does; it was refused ("a fraction between 0 and 1"), without saying what turns it off."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from kv_backend_django.cache import KVCache, close_all

KV = "kv_backend_django.cache.KVCache"


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


@pytest.mark.parametrize("off", [0, 0.0])
def test_auto_merge_zero_is_off(tmp_path, off):
    cache = KVCache(str(tmp_path / "c"), {"OPTIONS": {"auto_merge": off}})
    cache.set("k", 1)
    assert cache.db.auto_merge is None and cache.get("k") == 1


def test_auto_merge_zero_none_and_left_out_are_one_setting(tmp_path):
    store = str(tmp_path / "store")
    conf = {
        "default": {"BACKEND": KV, "LOCATION": store},
        "zero": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"auto_merge": 0}},
        "none": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"auto_merge": None}},
        "half": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"auto_merge": 0.5}},
    }
    with override_settings(CACHES=conf):
        found = [m for m in run_checks(tags=["caches"]) if m.id == "kv_backend_django.E001"]
        assert [m.obj for m in found] == ["CACHES['half']"]
        caches["zero"].set("k", 1)
        assert caches["default"].get("k") == caches["none"].get("k") == 1
        assert caches["zero"].db is caches["default"].db is caches["none"].db
        with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):
            caches["half"].get("k")


@pytest.mark.parametrize("bad", [1, 50, -0.1, "0.5"])
def test_a_bad_auto_merge_says_what_turns_it_off(tmp_path, bad):
    with pytest.raises(
        ImproperlyConfigured, match=r"auto_merge must be a fraction between 0 and 1 .*None or 0 "
    ):
        KVCache(str(tmp_path / "c"), {"OPTIONS": {"auto_merge": bad}})
