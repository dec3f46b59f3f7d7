"""A storage option named ``protocol`` (or ``target_protocol``) replaced the filesystem that the backup
URL names, as fsspec takes it: ``kvb backup STORE /srv/bk --storage-option protocol=memory`` said
"backup ... complete at /srv/bk" having written it into the memory of the kvb process, gone when
it exited (past the refusal of memory:// URLs, also in POST /v1/backup), and ``protocol=s3`` listed
a bucket named after the path. Both options are refused everywhere: the URL says the protocol."""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


@pytest.mark.parametrize("option", ["protocol", "target_protocol"])
def test_a_protocol_option_is_refused_by_every_function(one_key_store, tmp_path, option):
    url = str(tmp_path / "bk")
    calls = [
        lambda: backup_store(one_key_store, url, **{option: "memory"}),
        lambda: list_backups(url, **{option: "memory"}),
        lambda: restore(url, str(tmp_path / "r"), **{option: "memory"}),
        lambda: prune_backups(f"simplecache::file://{url}", keep=0, **{option: "memory"}),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError, match=f"storage option {option}= would replace"):
            call()
    assert sorted(os.listdir(tmp_path)) == ["store"]


def test_kvb_backup_with_protocol_memory_fails_instead_of_reporting_a_backup(one_key_store, tmp_path, capsys):
    url = str(tmp_path / "bk")
    code, out, err = run(capsys, "backup", one_key_store, url, "--storage-option", "protocol=memory")
    assert (code, out) == (2, ""), (code, out, err)
    assert "write the protocol in the URL" in err
    assert not os.path.exists(url)


def test_the_http_endpoint_refuses_it(one_key_store, tmp_path):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with DB(one_key_store) as db, TestClient(create_app(db)) as client:
        r = client.post(
            "/v1/backup", json={"url": str(tmp_path / "bk"), "storage_options": {"protocol": "memory"}}
        )
    assert r.status_code == 400 and "would replace" in r.json()["message"], r.json()
    assert not os.path.exists(tmp_path / "bk")
