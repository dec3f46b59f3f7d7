"""Culling a store far over MAX_ENTRIES, as Django's FileBasedCache does.

One ``set`` on a store far over MAX_ENTRIES (MAX_ENTRIES lowered since) culled round after round
until the store fitted, removing most of the cache at once; Django's FileBasedCache culls one
round (entries // CULL_FREQUENCY) per ``set``, and so does a KVCache now. A ``set_many`` culls
what the same keys set one by one into FileBasedCache would.
"""

from __future__ import annotations

import pytest
from django.core.cache.backends.filebased import FileBasedCache
from kv_backend_django.cache import KVCache


def _filled(cls, location: str, entries: int):
    """A cache of ``cls`` at ``location`` holding ``entries`` entries, written with room for them."""
    cls(location, {"OPTIONS": {"MAX_ENTRIES": 10_000}}).set_many({f"old{i}": i for i in range(entries)})
    return cls(location, {"OPTIONS": {"MAX_ENTRIES": 30}})


def _count(cache) -> int:
    return len(cache.db) if isinstance(cache, KVCache) else len(cache._list_cache_files())


def test_one_set_far_over_max_entries_culls_one_round_as_file_based_cache(tmp_path):
    kv = _filled(KVCache, str(tmp_path / "kv"), 300)
    files = _filled(FileBasedCache, str(tmp_path / "files"), 300)
    for cache in (kv, files):
        cache.set("new", 1)
    assert _count(kv) == _count(files) == 300 - 100 + 1
    kv.set("new2", 2)
    files.set("new2", 2)
    assert _count(kv) == _count(files) == 201 - 67 + 1
    assert kv.get("new2") == 2  # (the second set may cull the first one, as in Django)


@pytest.mark.parametrize("entries, incoming, left", [(90, 5, 21), (20, 20, 30), (29, 1, 30), (30, 1, 21)])
def test_set_many_culls_as_sets_one_by_one_into_file_based_cache(tmp_path, entries, incoming, left):
    kv = _filled(KVCache, str(tmp_path / "kv"), entries)
    files = _filled(FileBasedCache, str(tmp_path / "files"), entries)
    data = {f"new{i}": i for i in range(incoming)}
    kv.set_many(data)
    files.set_many(data)  # FileBasedCache sets them one by one, culling before each
    assert _count(kv) == _count(files) == left
    assert kv.get_many(list(data)) == data  # only entries stored before are culled


@pytest.mark.parametrize("entries, incoming", [(90, 40), (2, 50)])
def test_a_batch_that_one_by_one_would_cull_itself_leaves_as_file_based_cache(tmp_path, entries, incoming):
    # Set one by one, the later keys cull earlier ones of the batch (FileBasedCache ends under
    # MAX_ENTRIES): so does one set_many, culling the batch's earliest keys once the entries
    # stored before it are gone.
    kv = _filled(KVCache, str(tmp_path / "kv"), entries)
    files = _filled(FileBasedCache, str(tmp_path / "files"), entries)
    data = {f"new{i}": i for i in range(incoming)}
    kv.set_many(data)
    files.set_many(data)
    assert _count(kv) == _count(files) < incoming
    left = kv.get_many(list(data))
    assert len(left) == _count(kv) and left == {k: data[k] for k in list(data)[-len(left) :]}
