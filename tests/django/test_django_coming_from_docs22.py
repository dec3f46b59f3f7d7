"""docs/django.md's 'Coming from django-redis or diskcache' said the settings of those backends were
refused in OPTIONS and beside it, while the section on the CACHES entry (and the cache) report a key
beside OPTIONS by check W005 and go on. The page now says which are refused and which reported; the
keys it names are held here against what the cache and the check do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core import checks
from django.test import override_settings
from kv_backend_django.cache import KVCache, KVCacheConfigurationError, close_all

DOC = Path(__file__).resolve().parents[2] / "docs" / "django.md"


def _named() -> tuple[list[str], list[str]]:
    """The keys the section names as refused in OPTIONS, and as reported beside it."""
    text = re.sub(r"\s+", " ", DOC.read_text())
    m = re.search(
        r"Their settings in `OPTIONS` \(([^)]*)\) are refused as unknown, and those beside it "
        r"\(([^)]*)\) are reported by `manage.py check` \(W005\) and have no effect",
        text,
    )
    assert m, (
        "docs/django.md no longer says which django-redis/diskcache settings are refused and which reported"
    )
    return re.findall(r"`(\w+)`", m.group(1)), re.findall(r"`(\w+)`", m.group(2))


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


def test_the_named_settings_in_options_are_refused(tmp_path: Path) -> None:
    inside, _ = _named()
    assert {"CLIENT_CLASS", "size_limit"} <= set(inside)
    for key in inside:
        with pytest.raises(KVCacheConfigurationError, match=rf"unknown OPTIONS for KVCache at .*'{key}'"):
            KVCache(str(tmp_path / key), {"OPTIONS": {key: 1}})


def test_the_named_settings_beside_options_are_reported_and_the_cache_works(tmp_path: Path) -> None:
    _, beside = _named()
    assert beside == ["SHARDS", "DATABASE_TIMEOUT"]
    entry = {
        "BACKEND": "kv_backend_django.cache.KVCache",
        "LOCATION": str(tmp_path / "c"),
        **dict.fromkeys(beside, 8),
    }
    cache = KVCache(entry["LOCATION"], dict.fromkeys(beside, 8))
    cache.set("k", 1)
    assert cache.get("k") == 1
    with override_settings(CACHES={"default": entry}):
        found = [m for m in checks.run_checks(tags=[checks.Tags.caches]) if m.id == "kv_backend_django.W005"]
    assert len(found) == 1 and all(repr(key) in found[0].msg for key in beside), found
