"""A backup under a name that is taken: what the message advises must work.

It said "choose another name (or remove it with prune_backups / kvb backups --keep)"; but prune
removes the oldest backups, never the newest (which is usually the one whose name a nightly job
reuses), nor a damaged manifest, so that advice freed no name. It now names the manifest to delete.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import BackupExistsError, list_backups, prune_backups, restore


@pytest.mark.parametrize("damaged", [False, True])
def test_the_advice_frees_the_name(tmp_path, damaged):
    url = str(tmp_path / "backups")
    manifest = os.path.join(url, "backups", "nightly.json")
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        for i in range(100):
            db.put(b"key-%03d" % i, b"value-%03d-" % i * 10)
        db.backup(url, name="older")
        db.put(b"key-000", b"changed")
        db.backup(url, name="nightly")
        if damaged:
            os.truncate(manifest, os.path.getsize(manifest) // 2)
            assert [b.ok for b in list_backups(url)] == [True, False]
        db.put(b"key-001", b"changed too")
        with pytest.raises(BackupExistsError) as info:
            db.backup(url, name="nightly")
        msg = str(info.value)
        assert f"delete its manifest {manifest}" in msg and "--keep" not in msg, msg
        prune_backups(url, keep=1)  # (what the message used to advise: the name stays taken)
        assert "nightly" in [b.name for b in list_backups(url)]
        os.unlink(manifest)  # what it advises now
        report = db.backup(url, name="nightly")
        expected = dict(db.items())
    assert report.name == "nightly"
    assert prune_backups(url, keep=1) == (["older"] if damaged else [])
    assert [(b.name, b.ok) for b in list_backups(url)] == [("nightly", True)]
    restore(url, tmp_path / "restored")
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert dict(db.items()) == expected
