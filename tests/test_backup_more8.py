"""Backups and restores: more edge cases found by review (foreign files, URLs, restore targets)."""

from __future__ import annotations

import os
import uuid

import fsspec
import pytest

from kv_backend import DB
from kv_backend.backup import prune_backups, restore


@pytest.fixture(params=["memory", "file"])
def url(request, tmp_path):
    """A fresh backup URL of each kind."""
    if request.param == "file":
        yield f"file://{tmp_path / 'backups'}"
        return
    path = f"/kvb-more8-{uuid.uuid4().hex}"
    yield f"memory://{path}"
    fs = fsspec.filesystem("memory")
    if fs.exists(path):
        fs.rm(path, recursive=True)


def stored(url: str) -> list[str]:
    fs, root = fsspec.core.url_to_fs(url)
    return sorted(os.path.basename(p) for p in fs.find(f"{root}/files"))


def test_prune_leaves_other_programs_files_alone(url, store_path):
    """The URL may be shared (a bucket's root, a home directory): prune deletes only what backups wrote."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/files/holiday.jpg", b"a photo")
    fs.pipe_file(f"{root}/files/0000000001-000.data", b"someone else's store file")
    fs.pipe_file(f"{root}/pending/settings.json", b'{"theme": "dark"}')
    assert prune_backups(url, keep=0) == ["one"]
    assert stored(url) == ["0000000001-000.data", "holiday.jpg"]
    assert fs.cat_file(f"{root}/pending/settings.json") == b'{"theme": "dark"}'


def test_a_journal_that_is_not_a_json_object_is_ignored(url, store_path, tmp_path):
    """pending/ may hold JSON that is no journal (a list, a number): backups and prune carry on."""
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="one")
        fs, root = fsspec.core.url_to_fs(url)
        fs.pipe_file(f"{root}/pending/list.json", b"[1, 2]")
        fs.pipe_file(f"{root}/pending/number.json", b"7")
        db.put(b"k", b"w")
        assert db.backup(url, name="two").files_copied == 1
    assert prune_backups(url, keep=1) == ["one"]
    restore(url, tmp_path / "r")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db[b"k"] == b"w"
