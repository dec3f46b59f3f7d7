"""A storage option that s3fs does not take (``region_name=``, which belongs in ``client_kwargs``; a
misspelt ``endpoint=``) was handed on to the botocore session, which refused it only at the first
request: backup, listing, restore and prune failed with "BackupError: cannot list
s3://.../backups: TypeError: AioSession.__init__() got an unexpected keyword argument 'region_name'"
(``POST /v1/backup``: 502 backup_failed, as if S3 could not be reached), not saying where the option
goes. They are now refused before any request, with a ConfigurationError naming the option and where
it belongs (``kvb``: exit 2; HTTP: 400 invalid_backup_target)."""

from __future__ import annotations

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError

pytest.importorskip("s3fs")


@pytest.mark.parametrize(
    ("option", "says"),
    [
        ("region_name", 'client_kwargs={"region_name": ...}'),
        ("verify", 'client_kwargs={"verify": ...}'),
        ("endpoint", "s3fs.S3FileSystem's arguments"),
        ("block_size", "default_block_size"),
    ],
)
def test_an_option_s3fs_does_not_take_is_refused_before_any_request(
    s3,  # noqa: F811
    one_key_store,
    tmp_path,
    option,
    says,
):
    url, options, fs = s3
    bad = {**options, option: "x"}
    for call in (
        lambda: backup_store(one_key_store, url, name="one", **bad),
        lambda: list_backups(url, **bad),
        lambda: restore(url, str(tmp_path / "r"), **bad),
        lambda: prune_backups(url, keep=1, **bad),
    ):
        with pytest.raises(ConfigurationError, match=f"storage option {option}=") as info:
            call()
        assert says in str(info.value) and "AioSession" not in str(info.value)
    assert fs.ls(url.removeprefix("s3://").partition("/")[0]) == []  # nothing written
    backup_store(one_key_store, url, name="one", **options)  # (the same without it)
    assert [b.name for b in list_backups(url, **options)] == ["one"]


def test_kvb_says_where_the_option_goes(s3, one_key_store, capsys):  # noqa: F811
    url, options, _fs = s3
    args = [f"--storage-option={k}={v}" for k, v in options.items() if isinstance(v, str)]
    code, _, err = run(capsys, "backups", url, *args, "--storage-option=region_name=us-east-1")
    assert code == 2, err
    assert "client_kwargs" in err and "region_name" in err


def test_post_backup_answers_invalid_backup_target(s3, tmp_path):  # noqa: F811
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    url, options, _fs = s3
    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": url, "storage_options": {**options, "region_name": "x"}})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()
    assert "client_kwargs" in r.json()["message"]
