"""A restore lists the manifests of its backup URL once.

Each listing is a request (a paid one on S3), and two listings of a URL that other processes back up to
and prune may differ. ``restore()`` and ``kvb restore`` list ``backups/`` once to find the newest backup,
none for a backup given by name; ``check_restore_url`` (which ``manage.py kv_restore`` runs before it
says it started) names the backup it found, so that the restore that follows takes that one by name
instead of listing again (see tests/django/test_kv_restore_listing24.py).
"""

from __future__ import annotations

import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup, check_restore_url, restore

LISTINGS = ("ls", "find", "glob", "walk")


class Listings:
    """The listing requests made of fsspec's memory filesystem (a ``find`` that lists through ``ls``
    counts once), by the directory listed."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.depth = 0

    def __len__(self) -> int:
        return len(self.paths)

    def clear(self) -> None:
        self.paths.clear()


@pytest.fixture
def listings(monkeypatch):
    """The listings made of fsspec's memory filesystem while the test runs."""
    seen = Listings()

    def counted(real):
        def method(self, path, *args, **kwargs):
            if seen.depth == 0:
                seen.paths.append(str(path))
            seen.depth += 1
            try:
                return real(self, path, *args, **kwargs)
            finally:
                seen.depth -= 1

        return method

    for name in LISTINGS:
        monkeypatch.setattr(MemoryFileSystem, name, counted(getattr(MemoryFileSystem, name)))
    return seen


@pytest.fixture
def two_backups(tmp_path):
    """A memory:// URL holding two backups of a one-key store, ``b1`` (``k``: ``1``) then ``b2`` (``2``)."""
    url = f"memory:///kvb-test-{uuid.uuid4().hex}"
    with DB(str(tmp_path / "src")) as db:
        db.put(b"k", b"1")
        backup(db, url, name="b1")
        db.put(b"k", b"2")
        backup(db, url, name="b2")
    yield url
    fs = fsspec.filesystem("memory")
    fs.rm(url.removeprefix("memory://"), recursive=True)


def _value(path) -> bytes | None:
    with DB(str(path), read_only=True) as db:
        return db.get(b"k")


def test_a_restore_of_the_newest_backup_lists_the_manifests_once(two_backups, listings, tmp_path):
    listings.clear()
    report = restore(two_backups, str(tmp_path / "new"))
    assert report.name == "b2" and _value(tmp_path / "new") == b"2"
    assert len(listings) == 1 and listings.paths[0].endswith("/backups"), listings.paths


def test_a_restore_of_a_named_backup_lists_nothing(two_backups, listings, tmp_path):
    listings.clear()
    restore(two_backups, str(tmp_path / "new"), name="b1")
    assert _value(tmp_path / "new") == b"1"
    assert len(listings) == 0, listings.paths


def test_kvb_restore_lists_the_manifests_once(two_backups, listings, tmp_path, capsys):
    listings.clear()
    code, _out, err = run(capsys, "restore", two_backups, str(tmp_path / "new"))
    assert code == 0, err
    assert _value(tmp_path / "new") == b"2"
    assert len(listings) == 1, listings.paths


def test_check_restore_url_names_the_backup_a_restore_of_that_name_restores(two_backups, listings, tmp_path):
    listings.clear()
    assert check_restore_url(two_backups) == "b2"
    assert check_restore_url(two_backups, "b1") == "b1"
    assert len(listings) == 1, listings.paths  # (the newest: found by listing; b1: read by its name)
    listings.clear()
    restore(two_backups, str(tmp_path / "new"), name="b2")  # (what kv_restore does with it)
    assert len(listings) == 0, listings.paths
    assert _value(tmp_path / "new") == b"2"
