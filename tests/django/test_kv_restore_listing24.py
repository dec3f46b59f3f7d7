"""``manage.py kv_restore`` lists the backup URL's manifests once.

It checks the URL before it says it started (``check_restore_url``), then restores: each looked for the
newest backup, so the manifests were listed twice (two requests, paid for on S3), and a backup completed
between the two was restored where the check had found another. The check now names the backup it
found, and the restore takes that one by its name.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from test_restore_listing24 import listings, two_backups  # noqa: F401 - fixtures

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import backup

KV = "kv_backend_django.cache.KVCache"


def _restore(location, url: str, *args: str) -> None:
    with override_settings(CACHES={"default": {"BACKEND": KV, "LOCATION": str(location)}}):
        call_command("kv_restore", url, *args, "-v", "0", stdout=StringIO())


def _value(path) -> bytes | None:
    with DB(str(path), read_only=True) as db:
        return db.get(b"k")


@pytest.mark.parametrize("replace", [False, True], ids=["new LOCATION", "--replace"])
def test_the_check_and_the_restore_list_the_manifests_once(two_backups, listings, tmp_path, replace):  # noqa: F811
    location = tmp_path / "cache"
    if replace:
        with DB(str(location)) as db:
            db.put(b"k", b"old")
    listings.clear()
    _restore(location, two_backups, *(["--replace"] if replace else []))
    assert _value(location) == b"2"
    assert len(listings) == 1 and listings.paths[0].endswith("/backups"), listings.paths


def test_a_named_backup_is_listed_by_neither(two_backups, listings, tmp_path):  # noqa: F811
    listings.clear()
    _restore(tmp_path / "cache", two_backups, "--name", "b1")
    assert _value(tmp_path / "cache") == b"1"
    assert len(listings) == 0, listings.paths


def test_the_backup_checked_is_the_one_restored(two_backups, tmp_path, monkeypatch):  # noqa: F811
    real = kvbackup.check_restore_url

    def check_then_another_backup_completes(url, name=None, **options):
        found = real(url, name, **options)
        with DB(str(tmp_path / "src")) as db:  # (the store two_backups backed up)
            db.put(b"k", b"3")
            backup(db, url, name="b3")
        return found

    monkeypatch.setattr(kvbackup, "check_restore_url", check_then_another_backup_completes)
    _restore(tmp_path / "cache", two_backups)
    assert _value(tmp_path / "cache") == b"2"
