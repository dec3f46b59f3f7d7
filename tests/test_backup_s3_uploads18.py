"""A backup killed while s3fs sent an object in parts (one larger than its block size) left the
multipart upload incomplete: its parts stored, and billed, under no object that a listing shows, so
that no prune removed them. A prune now lists the incomplete uploads of what a backup stores (keys
under ``files/`` named as a backup names its objects) with the objects, before it reads the journals,
and aborts them when no backup runs, as it deletes unreferenced objects; uploads of other keys are left
alone, as are all of them while a backup runs, and one a backup starts after the listing."""

from __future__ import annotations

import json
import time

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket

from kv_backend import DB
from kv_backend import backup as backup_module
from kv_backend.backup import backup_store, list_backups, prune_backups

STORED = "files/0000000001-000.data.0123456789abcdef"


def _start_upload(fs, bucket: str, key: str) -> None:
    """An incomplete multipart upload to ``key`` (one part sent), as a killed backup leaves one."""
    mpu = fs.call_s3("create_multipart_upload", Bucket=bucket, Key=key)
    fs.call_s3("upload_part", Bucket=bucket, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=b"x" * 100)


def _incomplete(fs, bucket: str) -> list[str]:
    return sorted(u["Key"] for u in fs.call_s3("list_multipart_uploads", Bucket=bucket).get("Uploads", []))


def _journal(fs, bucket: str, prefix: str, *, alive: bool) -> None:
    """The journal of a backup of this machine, running (``alive``) or killed."""
    process = backup_module._this_process()
    if process is None:
        pytest.skip("no /proc: a killed backup cannot be told from a running one")
    if not alive:
        process["start"] += 1  # (another process of that pid: the backup's is gone)
    now = time.time()
    doc = {"name": "x", "started": now, "updated": now, "files": [], "process": process}
    fs.pipe_file(f"{bucket}/{prefix}/pending/fedcba9876543210.json", json.dumps(doc).encode())


@pytest.fixture
def target(s3, tmp_path):  # noqa: F811
    """A bucket holding one backup: (url, options, fs, bucket, prefix)."""
    url, options, fs = s3
    with DB(str(tmp_path / "store")) as db:
        db.put(b"k", b"v")
    backup_store(str(tmp_path / "store"), url, name="one", **options)
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return url, options, fs, bucket, prefix


OTHERS = ["{p}/files/notes.txt", "{p}/elsewhere.data", "other/files/0000000001-000.data.01234567"]


def test_prune_aborts_what_a_killed_backup_was_sending(target):
    url, options, fs, bucket, prefix = target
    others = [key.format(p=prefix) for key in OTHERS]
    for key in [f"{prefix}/{STORED}", *others]:
        _start_upload(fs, bucket, key)
    _journal(fs, bucket, prefix, alive=False)
    assert prune_backups(url, keep=1, **options) == []
    assert _incomplete(fs, bucket) == sorted(others)
    assert [b.name for b in list_backups(url, **options)] == ["one"]


def test_prune_leaves_them_while_a_backup_runs(target):
    url, options, fs, bucket, prefix = target
    _start_upload(fs, bucket, f"{prefix}/{STORED}")
    _journal(fs, bucket, prefix, alive=True)
    assert prune_backups(url, keep=1, **options) == []
    assert _incomplete(fs, bucket) == [f"{prefix}/{STORED}"]


def test_prune_leaves_an_upload_a_backup_starts_after_the_listing(target, monkeypatch):
    url, options, fs, bucket, prefix = target
    read_journals = backup_module._journals

    def backup_starts_and_ends(t):
        # A backup that starts once prune listed the uploads (its journal written after they were read
        # too): what it sends is no killed backup's.
        _start_upload(fs, bucket, f"{prefix}/{STORED}")
        return read_journals(t)

    monkeypatch.setattr(backup_module, "_journals", backup_starts_and_ends)
    assert prune_backups(url, keep=1, **options) == []
    assert _incomplete(fs, bucket) == [f"{prefix}/{STORED}"]


def test_an_account_that_may_not_list_uploads_still_prunes(target, monkeypatch):
    url, options, fs, bucket, prefix = target
    import s3fs

    _start_upload(fs, bucket, f"{prefix}/{STORED}")
    real = s3fs.S3FileSystem.call_s3

    def refuse(self, method, *args, **kwargs):
        if method == "list_multipart_uploads":
            raise PermissionError("Access Denied")
        return real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "call_s3", refuse)
    assert prune_backups(url, keep=0, **options) == ["one"]
    assert list_backups(url, **options) == []
    monkeypatch.undo()
    assert _incomplete(fs, bucket) == [f"{prefix}/{STORED}"]
