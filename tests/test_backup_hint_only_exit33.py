"""kvb backup of a store whose only damage is hint entries (a merged file's hint file pointing to no sound
record of a key) said the backup was of a store "which kvb restore may refuse" and exited 1, while a
restore accepts it: it leaves those hint files out and replays their data files, which are sound. The
backup's report, message and exit status now follow the rule a restore applies (refused_damage)."""

from __future__ import annotations

import pytest
from test_backup_hint_damage18 import _merged_store, _rewrite_hints, damage_active_record
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store


def test_a_backup_whose_only_damage_is_hint_entries_restores_and_exits_0(tmp_path, capsys):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    url = f"file://{tmp_path / 'backups'}"
    report = backup_store(store, url, name="api")
    assert (report.damaged_records, report.damaged_hint_entries, report.restorable) == (1, 1, True)
    code, out, err = run(capsys, "backup", store, url, "--name", "cli")
    assert code == 0 and out.startswith("backup cli complete at ")
    assert err == (
        "kvb: the store holds 1 damaged hint entry, and so does this backup, which kvb restore restores "
        "all the same (it leaves those hint files out, and replays their data files, which are sound); "
        f"kvb check {store} lists them: remove those hint files while no process has the store open, "
        "and their data files are replayed instead\n"
    )
    code, out, _ = run(capsys, "restore", url, str(tmp_path / "restored"), "--name", "cli")
    assert code == 0 and "left out 1 damaged hint file(s)" in out
    with DB(str(tmp_path / "restored"), read_only=True) as db:
        assert db.get(b"k00") == b"v" * 100 and len(db) == 61


def test_a_backup_with_a_damaged_record_besides_hint_entries_still_exits_1(tmp_path, capsys):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    damage_active_record(store)
    url = f"file://{tmp_path / 'backups'}"
    code, _, err = run(capsys, "backup", store, url, "--name", "b")
    assert code == 1
    assert err == (
        "kvb: the store holds 1 damaged record(s) and 1 damaged hint entry, and so does this backup, which "
        f"kvb restore refuses; kvb check {store} lists them, and kvb salvage copies the readable keys into "
        "a new store to back up instead\n"
    )
    assert run(capsys, "restore", url, str(tmp_path / "restored"))[0] == 2
    report = backup_store(store, url, name="api")
    assert (report.damaged_records, report.damaged_hint_entries, report.restorable) == (2, 1, False)


def test_post_v1_backup_reports_whether_the_backup_restores(tmp_path):
    """The HTTP API's backup report carries the same judgement: ``restorable`` and the hint entries apart."""
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from kv_backend.http import create_app

    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    with DB(store) as db, TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": str(tmp_path / "backups"), "name": "http"})
    assert r.status_code == 200, r.text
    report = r.json()
    assert (report["damaged_records"], report["damaged_hint_entries"], report["restorable"]) == (1, 1, True)


def test_kvb_check_of_hint_entries_alone_does_not_say_to_restore_keys_from_a_backup(tmp_path, capsys):
    """kvb check's last line added "restore the affected keys from a backup" for damaged hint entries
    too, where the data is sound and removing the hint file is the remedy (each problem says so)."""
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    code, out, _ = run(capsys, "check", store)
    last = out.splitlines()[-1]
    assert code == 1 and last == "1 damaged spot(s)", out
    assert "remove the hint file while no process has the store open" in out
    damage_active_record(store)  # and a damaged record besides: its key is to be restored
    code, out, _ = run(capsys, "check", store)
    last = out.splitlines()[-1]
    assert code == 1 and last == "2 damaged spot(s); restore the affected keys from a backup", out
