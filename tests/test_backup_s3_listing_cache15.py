"""Listings of an S3 backup URL taken from s3fs's cache of what it listed before.

s3fs keeps every listing it made. Prune's second look at the manifests (after the journals) saw
only those of its first look: a backup that completed in between (journal gone, manifest not seen)
had the objects it sent collected, and could not be restored. A backup's last check that every
object it names is present saw the listing of its start: an object deleted since was taken for
present, and a backup that cannot be restored was reported complete.
"""

from __future__ import annotations

import pytest
from test_backup_same_name_race15 import s3_options  # noqa: F401 - a fixture (moto's S3 server)

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore


def _fill(db: DB, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        db.put(b"key-%04d" % i, b"value-%04d-" % i * 12)


def test_prune_keeps_the_objects_of_a_backup_that_completed_while_it_ran(tmp_path, monkeypatch, s3_options):  # noqa: F811
    url = "s3://kvb-race/prune-cache"
    store = str(tmp_path / "store")
    with DB(store, max_file_size=4096) as db:
        _fill(db, 100)
        db.backup(url, name="old", **s3_options)
        _fill(db, 100, start=100)
        expected = dict(db.items())
    load_all = kvbackup._load_all
    looks = []

    def load_all_then_another_backup_completes(target):
        found = load_all(target)
        if looks and target is not looks[0][0]:
            return found  # (the other backup's own look)
        looks.append((target, [n for n, _doc, _err in found]))
        if len(looks) == 1:
            # Another process (its own s3fs instance) completes a backup after prune's first look.
            with DB(store, read_only=True) as db:
                db.backup(url, name="new", skip_instance_cache=True, **s3_options)
        return found

    monkeypatch.setattr(kvbackup, "_load_all", load_all_then_another_backup_completes)
    assert prune_backups(url, keep=5, **s3_options) == []
    monkeypatch.undo()
    assert [b.name for b in list_backups(url, **s3_options)] == ["old", "new"]
    restore(url, tmp_path / "restored", name="new", **s3_options)
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert dict(db.items()) == expected
    assert [names for _target, names in looks] == [["old"], ["new", "old"]]


def test_a_backup_whose_object_went_missing_meanwhile_is_not_completed(tmp_path, monkeypatch, s3_options):  # noqa: F811
    import s3fs

    url = "s3://kvb-race/backup-cache"
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        _fill(db, 100)
        first = db.backup(url, name="first", **s3_options)
        known_copies = kvbackup._known_copies
        deleted = []

        def known_then_one_is_deleted(target, now):
            known = known_copies(target, now)
            # An object this backup will skip is deleted by someone else (a lifecycle rule, a hand).
            other = s3fs.S3FileSystem(skip_instance_cache=True, **s3_options)
            victim = sorted(other.find("kvb-race/backup-cache/files"))[0]
            other.rm_file(victim)
            deleted.append(victim)
            return known

        monkeypatch.setattr(kvbackup, "_known_copies", known_then_one_is_deleted)
        with pytest.raises(BackupError, match="is missing or has the wrong size after the copy"):
            db.backup(url, name="second", **s3_options)
        monkeypatch.undo()
        assert deleted
        assert [b.name for b in list_backups(url, **s3_options)] == ["first"]
        # Run again, as the message says: the missing file is sent again.
        again = db.backup(url, name="second", **s3_options)
    assert again.files_copied == 1 and again.files == first.files
    assert restore(url, tmp_path / "restored", name="second", **s3_options).records == 100
