"""A backup name with a line break at its end ("nightly\\n", as a script's read or a JSON body may
pass it) was accepted: the check's ``$`` matches before a final line break. The backup was then
stored as ``backups/nightly\\n.json`` and listed by ``kvb backups`` across two lines."""

from __future__ import annotations

import os

import pytest
from starlette.testclient import TestClient
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, ConfigurationError
from kv_backend.backup import list_backups, prune_backups, restore
from kv_backend.http import create_app


@pytest.mark.parametrize("name", ["nightly\n", "0000000001-000.data\n"])
def test_a_name_with_a_final_line_break_is_refused_everywhere(name, store_path, tmp_path, capsys):
    url = str(tmp_path / "bk")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="good")
        with pytest.raises(ConfigurationError, match="bad backup name"):
            db.backup(url, name=name)
        with TestClient(create_app(db)) as client:
            r = client.post("/v1/backup", json={"url": url, "name": name})
            assert r.status_code == 400 and "bad backup name" in r.json()["message"], r.text
    with pytest.raises(ConfigurationError, match="bad backup name"):
        restore(url, tmp_path / "r", name=name)
    code, _out, err = run(capsys, "backup", store_path, url, "--name", name)
    assert code == 2 and "bad backup name" in err
    assert os.listdir(os.path.join(url, "backups")) == ["good.json"]


def test_a_manifest_made_under_such_a_name_is_listed_as_damaged_and_its_objects_kept(
    store_path, tmp_path, capsys
):
    url = str(tmp_path / "bk")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="old")
        db.put(b"k", b"w")
        db.backup(url, name="good")
    # What an earlier version wrote for the name "old\n".
    os.rename(os.path.join(url, "backups", "old.json"), os.path.join(url, "backups", "old\n.json"))
    objects = sorted(os.listdir(os.path.join(url, "files")))
    infos = list_backups(url)
    assert [(i.name, i.ok) for i in infos] == [("good", True), ("old\n", False)]
    assert "ends in a line break" in infos[1].error and "rename it to old.json" in infos[1].error
    assert str(infos[1]).startswith("'old\\n'  DAMAGED: ")  # one line
    assert prune_backups(url, keep=1) == []
    assert sorted(os.listdir(os.path.join(url, "files"))) == objects  # not collected
    code, out, err = run(capsys, "backups", url)
    assert code == 1 and len(out.splitlines()) == 2, out
    # The summary on stderr is one line too, naming the manifest as the listing does.
    assert err.count("\n") == 1 and "damaged backup manifest(s)" in err and ": 'old\\n'; repair" in err, err
    os.rename(os.path.join(url, "backups", "old\n.json"), os.path.join(url, "backups", "old.json"))
    restore(url, tmp_path / "r", name="old")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert db.get(b"k") == b"v"
