"""A cache in front of S3 (``simplecache::s3://bucket/prefix``) hid from the backup that it wrote to
an object store: it tried to create a bucket that did not exist (CreateBucket, where a plain
``s3://`` URL fails saying the bucket does not exist), and ``simplecache::s3://bucket//prefix`` (an
empty path segment, which S3 lists without) uploaded every file, then failed. The backup now writes
to the filesystem past the cache, with what a plain ``s3://`` URL gets."""

from __future__ import annotations

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket

from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


def test_a_cache_over_a_missing_bucket_creates_none(s3, store_path, tmp_path):  # noqa: F811
    url, options, fs = s3
    missing = "simplecache::" + url.replace("s3://", "s3://no-such-bucket-")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(BackupError, match=r"no-such-bucket-.*bucket does not exist"):
            db.backup(missing, s3=options)
    assert not fs.exists(missing.split("s3://")[1].split("/")[0])


def test_a_cache_over_an_empty_path_segment_is_refused_before_sending(s3, store_path):  # noqa: F811
    url, options, fs = s3
    bucket = url[len("s3://") :].split("/")[0]
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match="empty path segment"):
            db.backup(f"simplecache::s3://{bucket}//prefix", s3=options)
    assert fs.ls(bucket) == []


def test_backup_list_restore_prune_through_a_cache_over_s3(s3, store_path, tmp_path):  # noqa: F811
    url, options, _fs = s3
    cached = "simplecache::" + url
    with DB(store_path) as db:
        db.put(b"k", b"one")
        db.backup(cached, name="first", s3=options)
        db.put(b"k", b"two")
        db.backup(cached, name="second", s3=options)
    assert [b.name for b in list_backups(url, **options)] == ["first", "second"]  # where s3:// sees them
    restore(cached, str(tmp_path / "r"), name="first", s3=options)
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db.get(b"k") == b"one"
    assert prune_backups(cached, keep=1, s3=options) == ["first"]
    assert [b.name for b in list_backups(url, **options)] == ["second"]
