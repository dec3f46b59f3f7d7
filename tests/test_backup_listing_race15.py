"""Listing a local backup directory while a backup renames a temporary copy into place.

A journal or manifest is written as a hidden temporary file, then renamed. When that file went
between the directory read and its stat, the whole listing read as empty: prune saw no running
backup (and collected the objects a running backup had sent, which then failed with "missing ...
was the backup pruned meanwhile?"), a backup took every object for absent, and ``kvb backups`` /
``kvb restore`` said there was no backup at all.
"""

from __future__ import annotations

import os

import pytest

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import list_backups, prune_backups, restore


class _Listing(list):
    """What os.scandir returns: iterable, and a context manager."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _renamed_while_listing(monkeypatch, directory: str) -> list[str]:
    """Make every read of ``directory`` see a temporary copy that is renamed away before its stat."""
    real = os.scandir
    vanished: list[str] = []

    def scandir(path):
        if os.path.abspath(path) != os.path.abspath(directory):
            return real(path)
        tmp = os.path.join(path, f".{len(vanished)}.json.0123456789ab.tmp")
        with open(tmp, "wb") as f:
            f.write(b"{}")
        with real(path) as it:
            entries = list(it)
        os.unlink(tmp)  # renamed into place by its writer, after the directory was read
        vanished.append(tmp)
        return _Listing(entries)

    monkeypatch.setattr(os, "scandir", scandir)
    return vanished


def _fill(db: DB, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        db.put(b"key-%04d" % i, b"value-%04d-" % i * 12)


def test_prune_during_a_backup_keeps_what_it_sent(tmp_path, monkeypatch):
    url = str(tmp_path / "backups")
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        _fill(db, 100)
        db.backup(url, name="old")
        _fill(db, 100, start=100)
        pruned = []

        def prune_midway(done, total):
            if done > total // 2 and not pruned:
                # Another process prunes while this backup runs; meanwhile the backup's journal is
                # rewritten (its temporary copy renamed into place) as prune reads pending/.
                vanished = _renamed_while_listing(monkeypatch, os.path.join(url, "pending"))
                pruned.append(prune_backups(url, keep=0))
                monkeypatch.undo()
                assert vanished

        report = db.backup(url, name="new", progress=prune_midway)
        expected = dict(db.items())
    assert pruned == [["old"]]
    assert report.files_copied > 0
    assert [b.name for b in list_backups(url)] == ["new"]
    restore(url, tmp_path / "restored")
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert dict(db.items()) == expected


@pytest.mark.parametrize("directory", ["backups", "files"])
def test_listing_while_a_copy_is_renamed_into_place_sees_the_backups(tmp_path, monkeypatch, directory):
    url = str(tmp_path / "backups")
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        _fill(db, 100)
        first = db.backup(url, name="nightly")
        vanished = _renamed_while_listing(monkeypatch, os.path.join(url, directory))
        assert [b.name for b in list_backups(url)] == ["nightly"]
        again = db.backup(url, name="again")  # (nothing changed: nothing sent again)
        report = restore(url, tmp_path / "restored", name="nightly")
    assert vanished
    assert again.files_copied == 0 and again.files_skipped == first.files
    assert report.records == 100


def test_a_vanished_entry_is_left_out_not_the_listing(tmp_path, monkeypatch):
    target = kvbackup._Target(str(tmp_path), {})
    os.makedirs(tmp_path / "pending")
    (tmp_path / "pending" / "abc.json").write_bytes(b"{}")
    _renamed_while_listing(monkeypatch, str(tmp_path / "pending"))
    assert target.listdir("pending") == {"abc.json": 2}
    assert target.listdir("missing") == {}
