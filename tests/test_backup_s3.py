"""Backups to a real S3-protocol server (moto's, on loopback) through s3fs, from the API and the CLI."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest
from helpers import run_kvb
from s3_helpers import moto_server

from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore


def require_modules(*names: str) -> None:
    """Skip (fail under CI=true) unless every module in ``names`` can be imported."""
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed (pip install 'moto[server]' s3fs boto3)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI requires {message}")
    pytest.skip(message)


REGION = "us-east-1"


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1, on a port of its own (s3_helpers), stopped after the module."""
    require_modules("moto", "s3fs", "boto3", "flask")
    with moto_server() as url:
        yield url


@pytest.fixture
def s3(s3_server, request):
    """A fresh bucket; yields (url, storage options, s3fs filesystem)."""
    import boto3
    import s3fs

    bucket = "kvb-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=REGION,
    )
    client.create_bucket(Bucket=bucket)
    options = {
        "endpoint_url": s3_server,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": REGION},
    }
    fs = s3fs.S3FileSystem(**options)
    yield f"s3://{bucket}/backups/prod", options, fs
    fs.rm(bucket, recursive=True)


def fill(db: DB, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        db.put(b"key-%05d" % i, b"value-%05d-" % i * 10)


def test_s3_round_trip_incremental_prune(s3, store_path, tmp_path):
    url, options, fs = s3
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 100)
        first = db.backup(url, name="first", **options)
        fill(db, 100, start=100)
        second = db.backup(url, name="second", **options)
        expected = dict(db.items())
    assert first.files_copied >= 3 and first.files_skipped == 0
    assert second.files_skipped >= first.files_copied - 1 and second.files_copied >= 2
    assert [i.name for i in list_backups(url, **options)] == ["first", "second"]
    report = restore(url, tmp_path / "r", **options)
    assert report.name == "second" and report.records == 200
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert dict(db.items()) == expected
    restore(url, tmp_path / "r1", name="first", **options)
    with DB(str(tmp_path / "r1"), read_only=True) as db:
        assert len(db) == 100
    assert prune_backups(url, keep=1, **options) == ["first"]
    bucket_path = url[len("s3://") :]
    fs.invalidate_cache()
    assert len(fs.find(f"{bucket_path}/files")) == second.files
    restore(url, tmp_path / "r2", **options)


def test_s3_damage_and_interrupted_upload(s3, store_path, tmp_path):
    url, options, fs = s3
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 100)

        def fail(done, total):
            if done > 5000:
                raise ConnectionError("link down")

        with pytest.raises(ConnectionError):
            db.backup(url, name="cut", progress=fail, **options)
        assert list_backups(url, **options) == []
        db.backup(url, name="cut", **options)
    bucket_path = url[len("s3://") :]
    doc = json.loads(fs.cat_file(f"{bucket_path}/backups/cut.json"))
    entry = doc["files"][0]
    obj = f"{bucket_path}/{entry['stored_as']}"
    data = bytearray(fs.cat_file(obj))
    data[-1] ^= 0xFF
    fs.pipe_file(obj, bytes(data))
    with pytest.raises(BackupError, match=f"file {entry['name']} of backup cut is damaged"):
        restore(url, tmp_path / "r", **options)
    assert not (tmp_path / "r").exists()


def test_s3_missing_bucket_fails_clearly(s3, store_path, tmp_path):
    url, options, fs = s3
    missing = url.replace("s3://", "s3://no-such-bucket-")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(BackupError, match=r"no-such-bucket-.*bucket does not exist"):
            db.backup(missing, **options)
    assert not fs.exists(missing[len("s3://") :].split("/")[0])  # no bucket was created on our behalf
    with pytest.raises(BackupError, match="no complete backup at s3://no-such-bucket-"):
        restore(missing, tmp_path / "r", **options)
    assert not (tmp_path / "r").exists()


def test_cli_backup_to_s3(s3, store_path, tmp_path):
    """`kvb backup` passes --storage-option values (JSON allowed) through to s3fs."""
    url, options, _fs = s3
    with DB(store_path, max_file_size=4096) as db:
        fill(db, 50)
    opts = [
        "--storage-option",
        f"endpoint_url={options['endpoint_url']}",
        "--storage-option",
        "key=testing",
        "--storage-option",
        "secret=testing",
        "--storage-option",
        'client_kwargs={"region_name": "us-east-1"}',
    ]
    out = run_kvb("backup", store_path, url, "--name", "cli1", *opts)
    assert out.returncode == 0, out.stderr
    assert "backup cli1 complete" in out.stdout
    assert [i.name for i in list_backups(url, **options)] == ["cli1"]
    restore(url, tmp_path / "r", **options)
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert len(db) == 50
