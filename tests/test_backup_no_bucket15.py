"""A backup URL that names an object store but no bucket (s3://) is refused before anything is sent.

fsspec reads the first word of an object store's path as its bucket: with none, a backup to
``s3://`` listed and wrote ``s3://backups/...``, a bucket named "backups" that may be anyone's.
"""

from __future__ import annotations

import os

import pytest

from kv_backend import DB
from kv_backend.backup import list_backups, prune_backups, restore
from kv_backend.cli import main
from kv_backend.errors import ConfigurationError

NO_BUCKET = ["s3://", "s3:///", "gs://", "az://", "simplecache::s3://", "S3://"]


@pytest.mark.parametrize("url", NO_BUCKET)
def test_an_object_store_url_without_a_bucket_is_refused_everywhere(url, store_path, tmp_path):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        with pytest.raises(ConfigurationError, match=r"names no bucket or directory: write .*://BUCKET/path"):
            db.backup(url)
    others = (
        lambda: list_backups(url),
        lambda: prune_backups(url, keep=1),
        lambda: restore(url, tmp_path / "r"),
    )
    for call in others:
        with pytest.raises(ConfigurationError, match="names no bucket"):
            call()
    assert not os.path.exists(tmp_path / "r")
    with DB(store_path, read_only=True) as db:
        assert db[b"k"] == b"v"


def test_kvb_backup_to_a_url_without_a_bucket_says_what_to_write(store_path, capsys):
    with DB(store_path) as db:
        db.put(b"k", b"v")
    assert main(["backup", store_path, "s3://"]) != 0
    err = capsys.readouterr().err
    assert "names no bucket or directory" in err and "s3://BUCKET/path" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("url", ["memory://", "s3://bucket", "file:///"])
def test_a_url_with_a_bucket_or_a_root_that_means_one_is_not_refused_for_it(url):
    from kv_backend.backup import _check_url_typos

    _check_url_typos(url)  # raises nothing: memory:// is this process's own filesystem's root
