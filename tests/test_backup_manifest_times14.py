"""A manifest whose checksum matches but whose creation time is no time (NaN, infinity, a bool, a
year out of any calendar), as a tool other than kv_backend, or a hand edit that recomputed the
checksum, may write: ``kvb backups`` died with a traceback listing it, and a restore without a
name took the one dated infinity for the newest backup. Such a manifest is listed as damaged."""

from __future__ import annotations

import json
import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, BackupError
from kv_backend.backup import _encode_manifest, list_backups, restore

BAD_TIMES = [float("nan"), float("inf"), float("-inf"), 1e20, -1e20, True]


@pytest.fixture
def url_with_bad_times(store_path, tmp_path):
    url = str(tmp_path / "bk")
    with DB(store_path) as db:
        db.put(b"k", b"v")
        db.backup(url, name="good")
    with open(os.path.join(url, "backups", "good.json"), encoding="utf-8") as f:
        body = json.load(f)
    body.pop("checksum")
    for i, created in enumerate(BAD_TIMES):
        with open(os.path.join(url, "backups", f"bad{i}.json"), "wb") as f:
            f.write(_encode_manifest(dict(body, name=f"bad{i}", created=created)))
    return url


def test_list_backups_marks_them_damaged(url_with_bad_times):
    infos = list_backups(url_with_bad_times)
    assert [(i.name, i.ok) for i in infos] == [("good", True)] + [(f"bad{i}", False) for i in range(6)]
    for info in infos[1:]:
        assert "creation time" in info.error and "is no time" in info.error
        assert "DAMAGED" in str(info)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_kvb_backups_lists_them_without_a_traceback(url_with_bad_times, capsys, json_flag):
    code, out, err = run(capsys, "backups", url_with_bad_times, *json_flag)
    assert code == 1, err
    assert "Traceback" not in err and "bad0, bad1" in err
    if json_flag:
        backups = json.loads(out)["backups"]
        assert [b["created"] for b in backups[1:]] == [None] * 6


def test_a_restore_without_a_name_does_not_take_infinity_for_the_newest(url_with_bad_times, tmp_path):
    with pytest.raises(BackupError, match=r"is no time.*pass name="):
        restore(url_with_bad_times, tmp_path / "r")
    assert restore(url_with_bad_times, tmp_path / "r", name="good").records == 1
    with pytest.raises(BackupError, match="creation time inf is no time"):
        restore(url_with_bad_times, tmp_path / "r2", name="bad1")
