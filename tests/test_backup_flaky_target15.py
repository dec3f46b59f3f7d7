"""Backups to a target whose connection fails once, at every point of a backup in turn.

Two failures left a wrong picture: a connection lost while the manifest was read back said only
"cannot read ...", though the backup was complete (and a run again under the same name was told the
name is taken); one lost while the journal was removed left the journal of a completed backup,
which prune took for a running backup's wherever the process lived on (a server, a worker), and
collected nothing for 24 hours.
"""

from __future__ import annotations

import json
import os

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore


class FlakyFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem whose ``fail_at``-th request (listing, reading, writing,
    deleting) raises ConnectionResetError, as a connection lost midway does."""

    protocol = ("kvbflaky15",)
    store: dict = {}  # (its own, not the memory filesystem's)
    pseudo_dirs = [""]
    calls = 0
    fail_at: int | None = None
    failed: list[str] = []

    def request(self, what: str) -> None:
        cls = type(self)
        cls.calls += 1
        if cls.calls == cls.fail_at:
            cls.failed.append(what)
            raise ConnectionResetError(f"connection reset by peer ({what})")

    def ls(self, path, detail=True, **kwargs):
        self.request("ls")
        return super().ls(path, detail=detail, **kwargs)

    def cat_file(self, path, start=None, end=None, **kwargs):
        self.request("cat_file")
        return super().cat_file(path, start=start, end=end, **kwargs)

    def pipe_file(self, path, value, mode="overwrite", **kwargs):
        self.request("pipe_file")
        return super().pipe_file(path, value, **kwargs)

    def _open(self, path, mode="rb", **kwargs):
        self.request("open")
        return super()._open(path, mode, **kwargs)

    def rm_file(self, path):
        self.request("rm_file")
        return super().rm_file(path)


fsspec.register_implementation("kvbflaky15", FlakyFileSystem, clobber=True)


@pytest.fixture
def flaky():
    def reset(fail_at=None):
        FlakyFileSystem.store.clear()
        FlakyFileSystem.pseudo_dirs[:] = [""]
        FlakyFileSystem.calls, FlakyFileSystem.fail_at = 0, fail_at
        FlakyFileSystem.failed.clear()

    yield reset
    reset()


def _stored(prefix: str) -> set[str]:
    return {k[len(prefix) :] for k in FlakyFileSystem.store if k.startswith(prefix)}


def test_a_connection_lost_at_any_point_leaves_a_true_picture(tmp_path, flaky):
    url = "kvbflaky15://bk"
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        for i in range(80):
            db.put(b"key-%03d" % i, b"value-%03d-" % i * 8)
        expected = dict(db.items())
        flaky()
        db.backup(url, name="probe")
        requests = FlakyFileSystem.calls
        assert requests > 10
        outcomes = set()
        for n in range(1, requests + 1):
            flaky(fail_at=n)
            try:
                db.backup(url, name="x")
                outcome = "ok"
            except BackupError as exc:
                outcome = str(exc)
            FlakyFileSystem.fail_at = None
            assert FlakyFileSystem.failed, n  # (every request of a backup is one the test can fail)
            listed = [(b.name, b.ok) for b in list_backups(url)]
            if outcome == "ok":
                assert listed == [("x", True)], n
            elif listed:
                # The manifest went out: the message says the backup may well be complete.
                assert listed == [("x", True)], (n, outcome)
                assert "backup x was written" in outcome and "kvb backups" in outcome, (n, outcome)
            else:
                assert "connection reset by peer" in outcome, (n, outcome)
            outcomes.add((outcome == "ok", bool(listed)))
            # Back up again and prune: the target holds one complete backup and nothing else.
            db.backup(url, name="y")
            prune_backups(url, keep=1)
            assert [b.name for b in list_backups(url)] == ["y"], n
            manifest = json.loads(FlakyFileSystem.store[f"{url}/backups/y.json"].getvalue())
            assert _stored(f"{url}/files/") == {e["stored_as"][len("files/") :] for e in manifest["files"]}, n
            assert _stored(f"{url}/pending/") == set(), (n, FlakyFileSystem.failed)
        assert outcomes == {(True, True), (False, True), (False, False)}
    restored = str(tmp_path / "restored")
    restore(url, restored)
    with DB(restored, read_only=True) as db:
        assert dict(db.items()) == expected


def test_a_journal_named_by_a_manifest_holds_no_prune_back(tmp_path, flaky):
    """The journal of a backup that completed (its removal failed) of a process still running."""
    url = "kvbflaky15://bk"
    flaky()
    with DB(str(tmp_path / "store"), max_file_size=4096) as db:
        for i in range(80):
            db.put(b"key-%03d" % i, os.urandom(30))
        db.backup(url, name="old")
        for i in range(80):
            db.put(b"key-%03d" % i, os.urandom(30))
        journals = []
        real_rm = FlakyFileSystem.rm_file

        def rm_file(self, path):
            if "/pending/" in path and not journals:
                journals.append(path)
                raise ConnectionResetError("connection reset by peer")
            return real_rm(self, path)

        FlakyFileSystem.rm_file = rm_file
        try:
            db.backup(url, name="new")
        finally:
            FlakyFileSystem.rm_file = real_rm
    assert journals and journals[0] in FlakyFileSystem.store
    old_objects = _stored(f"{url}/files/")
    assert prune_backups(url, keep=1) == ["old"]
    assert journals[0] not in FlakyFileSystem.store
    assert _stored(f"{url}/files/") < old_objects  # the objects of "old" alone were collected
    restore(url, str(tmp_path / "restored"))
