"""More behaviour held to Django's own backends: culling, management commands, system checks."""

from __future__ import annotations

from io import StringIO

from django.core.cache import caches
from django.core.management import call_command


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_set_many_of_stored_keys_culls_no_more_than_sets_one_by_one():
    # LocMemCache and FileBasedCache, re-setting keys one by one into a store one entry
    # short of MAX_ENTRIES (30), cull nothing; nor may a set_many of the same keys.
    c = caches["cull"]
    for i in range(29):
        c.set(f"k{i}", i)
    c.set_many({f"k{i}": -i for i in range(10)})
    assert len(c.db) == 29
    c.set_many({**{f"k{i}": i for i in range(5)}, "new": 1})  # one new key: fits at 30
    assert len(c.db) == 30
    assert c.get_many(["k3", "k7", "k20", "new"]) == {"k3": 3, "k7": -7, "k20": 20, "new": 1}
    c.set_many({"k0": 0, "k1": 1})  # the store is full: setting k0 alone would cull one round
    assert 20 <= len(c.db) <= 22 and c.get_many(["k0", "k1"]) == {"k0": 0, "k1": 1}
