"""A ``set_many`` that crosses MAX_ENTRIES leaves what the same keys ``set`` one by one would.

Django's own backends run ``set_many`` as a loop of ``set``, each culling first if the cache is
full, so a cull may remove keys the same ``set_many`` stored before it. KVCache kept the whole
batch and culled only the entries stored before it: with CULL_FREQUENCY 0 (or 1), where a cull
empties the cache, 25 entries and a batch of 12 with MAX_ENTRIES 30 left 12 entries where
FileBasedCache and LocMemCache leave 7; a batch of 50 left 50 where they leave 20.
"""

from __future__ import annotations

import itertools

import pytest
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from kv_backend_django.cache import KVCache, close_all

MAX = 30


@pytest.fixture(autouse=True)
def _close():
    yield
    close_all()


def _caches(tmp_path, frequency: int, entries: int, name: str) -> dict[str, object]:
    """KVCache, FileBasedCache and LocMemCache, each holding ``entries`` entries old0, old1, ..."""
    out = {}
    for cls in (KVCache, FileBasedCache, LocMemCache):
        location = str(tmp_path / cls.__name__) if cls is not LocMemCache else f"{name}-{tmp_path.name}"
        roomy = cls(location, {"OPTIONS": {"MAX_ENTRIES": 10_000}})
        roomy.set_many({f"old{i}": i for i in range(entries)})
        cache = cls(location, {"OPTIONS": {"MAX_ENTRIES": MAX, "CULL_FREQUENCY": frequency}})
        out[cls.__name__] = cache
    return out


def _keys(cache) -> set[str]:
    """The keys the cache holds (of old0..old99, new0..new99)."""
    names = [f"{kind}{i}" for kind, i in itertools.product(("old", "new"), range(100))]
    return set(cache.get_many(names))


CASES = [(25, 12), (29, 12), (0, 31), (0, 40), (5, 50), (30, 12), (18, 12), (40, 12), (10, 30), (29, 2)]


@pytest.mark.parametrize("frequency", [0, 1])
@pytest.mark.parametrize(("entries", "incoming"), CASES)
def test_set_many_emptying_the_cache_leaves_the_keys_sets_one_by_one_would(
    tmp_path, frequency, entries, incoming
):
    caches = _caches(tmp_path, frequency, entries, f"f{frequency}-{entries}-{incoming}")
    data = {f"new{i}": i for i in range(incoming)}
    for cache in caches.values():
        cache.set_many(data)
    kv = _keys(caches["KVCache"])
    # A cull that empties the cache is no random choice: the same keys are left, to the key.
    assert kv == _keys(caches["FileBasedCache"]) == _keys(caches["LocMemCache"])
    assert len(caches["KVCache"].db) == len(kv) <= max(MAX, entries)
    assert f"new{incoming - 1}" in kv  # the last key set is stored after any cull


@pytest.mark.parametrize("frequency", [2, 3, 7])
@pytest.mark.parametrize(("entries", "incoming"), CASES)
def test_set_many_culling_a_share_leaves_as_many_as_sets_one_by_one(tmp_path, frequency, entries, incoming):
    caches = _caches(tmp_path, frequency, entries, f"f{frequency}-{entries}-{incoming}")
    data = {f"new{i}": i for i in range(incoming)}
    for cache in caches.values():
        cache.set_many(data)
    kv, files, locmem = (_keys(caches[n]) for n in ("KVCache", "FileBasedCache", "LocMemCache"))
    assert len(caches["KVCache"].db) == len(kv) == len(files) == len(locmem)
    # Entries stored before the batch are culled first, then the batch's earliest keys, as
    # LocMemCache (least recently used first) does; FileBasedCache picks at random among all.
    new = {k for k in kv if k.startswith("new")}
    assert new == {k for k in locmem if k.startswith("new")}


def test_re_set_keys_take_no_new_room_as_sets_one_by_one(tmp_path):
    caches = _caches(tmp_path, 0, 29, "reset")
    data = {f"old{i}": -i for i in range(10)}  # stored already: re-set, the cache stays at 29
    data["new0"] = 0  # fills it to 30: no cull yet
    data["old20"] = -20  # finds 30 entries: empties the cache, then is stored
    for cache in caches.values():
        cache.set_many(data)
    kv = _keys(caches["KVCache"])
    assert kv == _keys(caches["FileBasedCache"]) == _keys(caches["LocMemCache"]) == {"old20"}
    assert caches["KVCache"].get("old20") == -20 and len(caches["KVCache"].db) == 1
