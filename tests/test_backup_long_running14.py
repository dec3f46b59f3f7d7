"""A backup that sent nothing for a long time (hashing the unchanged files of a large store) left its
journal as written when it started: once that was ``PENDING_GRACE`` old, prune took it for a dead
backup's, deleted it, and collected the objects of the manifests it removed, which the running backup
was counting on; the backup then failed at its end. A running backup now rewrites its journal at
least every ``JOURNAL_REFRESH`` seconds while it reads files."""

from __future__ import annotations

import time

import pytest

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import list_backups, prune_backups, restore


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_prune_during_a_long_backup_that_sends_nothing_keeps_its_objects(
    kind, store_path, tmp_path, monkeypatch
):
    import uuid

    url = str(tmp_path / "bk") if kind == "local" else f"memory:///kvb-long14-{uuid.uuid4().hex}"
    with DB(store_path, max_file_size=4096) as db:
        for i in range(200):
            db.put(b"k%04d" % i, b"v" * 50)
        db.backup(url, name="one")
        monkeypatch.setattr(kvbackup, "PENDING_GRACE", 0.5)
        monkeypatch.setattr(kvbackup, "JOURNAL_REFRESH", 0.1)
        monkeypatch.setattr(kvbackup, "CHUNK_SIZE", 1024)
        calls = []

        def slow_then_prune(done: int, total: int) -> None:
            calls.append(done)
            if len(calls) == 2:
                time.sleep(0.7)  # hours of hashing, in short: the journal is older than PENDING_GRACE
            elif len(calls) == 3:
                assert prune_backups(url, keep=0) == ["one"]  # its objects are what "two" reuses

        report = db.backup(url, name="two", progress=slow_then_prune)
        assert report.files_copied == 0 and len(calls) > 3
        expected = dict(db.items())
    assert [b.name for b in list_backups(url)] == ["two"]
    restore(url, tmp_path / "r")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert dict(db.items()) == expected
