"""Backups and restores: defects found by the tenth review (pruning, restores, damaged targets)."""

from __future__ import annotations

import pytest

from kv_backend import DB
from kv_backend.backup import list_backups, prune_backups


@pytest.fixture
def url(backup_url):
    """A fresh backup URL of each kind (conftest's ``backup_url``)."""
    return backup_url


@pytest.mark.parametrize("extra", [1, 2])
def test_prune_keeping_more_than_there_are_removes_nothing(url, store_path, extra):
    """keep=N with fewer than N backups keeps them all; it used to slice with a negative
    count (valid[:len - keep]) and delete the oldest backups instead."""
    names = ["a", "b", "c"]
    with DB(store_path) as db:
        for i, n in enumerate(names):
            db.put(b"k", str(i).encode())
            db.backup(url, name=n)
    assert prune_backups(url, keep=len(names) + extra) == []
    assert [i.name for i in list_backups(url)] == names
