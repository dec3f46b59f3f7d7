"""Storage options that a local (path, ``file://``) or ``memory://`` target's filesystem ignores.

fsspec's local and memory filesystems take any keyword argument and keep it unused, and fsspec drops
some (``mode=``) before it makes a filesystem: a typo, credentials given for a ``file://`` target
(``key=``, ``anon=``) or ``kvb --storage-option`` for a local directory were accepted silently, and
the user believed they applied. They are now refused with a ConfigurationError naming each one and
what the filesystem takes, before anything is read or written (kvb: exit 2; HTTP: 400
``invalid_backup_target``); an option the filesystem takes (``auto_mkdir``, fsspec's listings-cache
options) still works. s3fs hands what it does not take itself to botocore: an option neither knows is
refused too, one s3fs takes is passed on.
"""

from __future__ import annotations

import os

import pytest
from test_backup_s3 import s3, s3_server  # noqa: F401 - the moto server and a fresh bucket
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups, prune_backups, restore
from kv_backend.errors import ConfigurationError


def every_call(one_key_store, url, tmp_path, options):
    return (
        lambda: backup_store(one_key_store, url, name="one", **options),
        lambda: list_backups(url, **options),
        lambda: restore(url, str(tmp_path / "restored"), **options),
        lambda: prune_backups(url, keep=1, **options),
    )


@pytest.mark.parametrize(
    ("form", "options", "named"),
    [
        ("path", {"anon": True}, "anon="),
        ("file", {"key": "k", "secret": "s"}, "key=, secret="),
        ("file", {"mode": "r"}, "mode="),  # (fsspec's url_to_fs drops it)
        ("file", {"file": {"auto_mkdir": True, "anno": True}}, "anno="),
        ("chain", {"file": {"endpoint_url": "http://127.0.0.1:9"}}, "endpoint_url="),
    ],
)
def test_a_local_target_refuses_what_it_would_ignore(one_key_store, tmp_path, form, options, named):
    bk = tmp_path / "bk"
    url = {"path": str(bk), "file": bk.as_uri(), "chain": f"simplecache::{bk.as_uri()}"}[form]
    for call in every_call(one_key_store, url, tmp_path, options):
        with pytest.raises(ConfigurationError) as info:
            call()
        msg = str(info.value)
        assert f"storage option{'s' * (',' in named)} {named} would be ignored" in msg, msg
        assert "local filesystem" in msg and "auto_mkdir" in msg, msg
    assert not bk.exists() and not (tmp_path / "restored").exists()


def test_a_memory_target_refuses_what_it_would_ignore(one_key_store, tmp_path):
    url = "memory://ignored22"
    for call in every_call(one_key_store, url, tmp_path, {"anon": True}):
        with pytest.raises(ConfigurationError, match="option anon= would be ignored by fsspec's memory"):
            call()
    assert list_backups(url) == []


def test_options_the_filesystem_takes_still_work(one_key_store, tmp_path):
    url = (tmp_path / "bk").as_uri()
    taken = {"auto_mkdir": True, "use_listings_cache": False, "file": {"auto_mkdir": True}}
    assert backup_store(one_key_store, url, name="one", **taken).files_copied == 1
    assert [b.name for b in list_backups(url, **taken)] == ["one"]
    restore(url, str(tmp_path / "restored"), **taken)
    assert prune_backups(url, keep=1, **taken) == []


def test_kvb_storage_option_for_a_directory(one_key_store, tmp_path, capsys):
    url = str(tmp_path / "bk")
    code, _, err = run(capsys, "backup", one_key_store, url, "--storage-option", "anon=true")
    assert code == 2 and err.count("\n") == 1, err
    assert "anon= would be ignored by fsspec's local filesystem" in err
    assert not os.path.exists(url)
    code, _, err = run(capsys, "backup", one_key_store, url, "--storage-option", "auto-mkdir=true")
    assert code == 0, err


def test_post_backup_answers_invalid_backup_target(tmp_path):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    with DB(str(tmp_path / "s")) as db, TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": str(tmp_path / "bk"), "storage_options": {"key": "k"}})
    assert (r.status_code, r.json()["error"]) == (400, "invalid_backup_target"), r.json()
    assert "key= would be ignored" in r.json()["message"]


def test_s3_refuses_an_option_nobody_takes_and_passes_on_its_own(s3, one_key_store, tmp_path):  # noqa: F811
    url, options, _fs = s3
    with pytest.raises(ConfigurationError, match="storage option anno= is not one that s3fs takes"):
        backup_store(one_key_store, url, name="one", **options, anno=True)
    # (anon, use_ssl are s3fs's own: passed on, not refused; the credentials given win over anon=False)
    assert (
        backup_store(one_key_store, url, name="one", **options, anon=False, use_ssl=False).files_copied == 1
    )
    assert [b.name for b in list_backups(url, **options)] == ["one"]
