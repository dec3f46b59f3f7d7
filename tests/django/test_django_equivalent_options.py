"""Two aliases on one LOCATION whose engine OPTIONS are spelt differently but mean the same (#3)."""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from kv_backend_django.cache import close_all

KV = "kv_backend_django.cache.KVCache"


def test_sync_zero_and_always_are_one_setting(tmp_path):
    """``sync: 0`` and ``sync: "always"`` both fsync every write: E001 flagged them as a conflict
    and the alias used second was refused on every call."""
    store = str(tmp_path / "store")
    conf = {
        "default": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"sync": "always"}},
        "zero": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"sync": 0}},
        "float": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"sync": 0.0, "auto_merge": None}},
        "never": {"BACKEND": KV, "LOCATION": store, "OPTIONS": {"sync": "never"}},
    }
    try:
        with override_settings(CACHES=conf):
            found = [m for m in run_checks(tags=["caches"]) if m.id == "kv_backend_django.E001"]
            assert [m.obj for m in found] == ["CACHES['never']"]
            assert "sync 'always' and 'never'" in found[0].msg  # the values as the settings spell them
            caches["default"].set("k", 1)
            assert caches["zero"].get("k") == caches["float"].get("k") == 1
            assert caches["zero"].db is caches["default"].db
            with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):
                caches["never"].get("k")
    finally:
        close_all()
