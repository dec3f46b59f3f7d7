"""A store path that is a symbolic link to a directory that does not exist (a volume not mounted yet).

Opening it to create the store said only "cannot create store directory PATH: File exists."
(mkdir does not follow the link), and read-only "the directory does not exist", while ``ls``
shows the path there. Every front end now names the link's target and says what to do, and
creates nothing, at the path or at the target.
"""

from __future__ import annotations

import os

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import DB, Store
from kv_backend.errors import StorageError, StoreNotFoundError


@pytest.fixture
def link(tmp_path):
    path = tmp_path / "data"
    os.symlink(tmp_path / "volume" / "kv", path)
    return str(path)


@pytest.mark.parametrize(
    "opener",
    [DB, Store, lambda p: kdbm.open(p, "c"), lambda p: kdbm.open(p, "n"), kshelve.open],
    ids=["DB", "Store", "dbm-c", "dbm-n", "shelve"],
)
def test_creating_a_store_through_a_dangling_link_names_its_target(tmp_path, link, opener):
    with pytest.raises(FileNotFoundError) as info:
        opener(link)
    assert isinstance(info.value, StorageError if opener in (DB, Store) else kdbm.error)
    message = str(info.value)
    assert "symbolic link" in message and str(tmp_path / "volume" / "kv") in message
    assert "File exists" not in message
    assert os.path.islink(link) and not os.path.exists(tmp_path / "volume")


def test_opening_one_read_only_names_its_target(tmp_path, link):
    with pytest.raises(StoreNotFoundError, match="symbolic link") as info:
        Store(link, read_only=True)
    assert str(tmp_path / "volume" / "kv") in str(info.value)
    with pytest.raises(kdbm.DatabaseNotFoundError):
        kdbm.open(link, "r")


def test_a_link_to_an_existing_directory_is_the_store(tmp_path):
    target = tmp_path / "volume"
    target.mkdir()
    os.symlink(target, tmp_path / "data")
    with Store(str(tmp_path / "data")) as s:
        s["k"] = 1
    with Store(str(target)) as s:
        assert s["k"] == 1


def test_a_dangling_link_above_the_store_path_is_named_too(tmp_path, link):
    below = os.path.join(link, "app", "kv")
    for opener in (Store, lambda p: kdbm.open(p, "c"), lambda p: Store(p, read_only=True)):
        with pytest.raises(FileNotFoundError, match="symbolic link") as info:
            opener(below)
        assert link in str(info.value) and str(tmp_path / "volume" / "kv") in str(info.value)
    assert not os.path.exists(tmp_path / "volume")


def test_a_relative_link_is_named_by_the_path_it_points_to(tmp_path):
    os.symlink(os.path.join("..", "volume"), tmp_path / "data")  # relative to the link's directory
    with pytest.raises(StoreNotFoundError) as info:
        Store(str(tmp_path / "data"))
    assert str(tmp_path.parent / "volume") in str(info.value)
