"""``kvb backups URL --verify`` of a backup taken of a store that held damaged records.

Such a backup is an exact copy, damage included: its objects pass their sha256, and a verify reported it
sound, yet a restore refuses it (a restore checks every record). The manifests count each data file's
damaged records, those of its hint file apart; a verify now applies the rule a restore applies
(:func:`kv_backend.backup_damage.refused_damage`) and reports such a backup as not restorable as is,
saying which files hold how many damaged records and what to do. A backup whose only damage is hint
entries restores (the restore leaves those hint files out), and verifies as sound.
"""

from __future__ import annotations

import json
import os

import fsspec
import pytest
from test_backup_hint_damage18 import _merged_store, _rewrite_hints, damage_active_record

import kv_backend.backup as kvbackup
from kv_backend import DB, record
from kv_backend.backup import backup_store, restore, verify_backups
from kv_backend.backup_damage import FileDamage, refused_damage
from kv_backend.cli import main
from kv_backend.errors import BackupError
from kv_backend.files import data_name, list_data_files


def _store(path: str, *, damaged: bool) -> str:
    """A store of a few keys in its active file; the value of its first record damaged if ``damaged``."""
    with DB(path) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v" * 20)
    if damaged:
        _damage(path)
    return path


def _damage(path: str) -> None:
    """Change a value byte of the first record of the store's active file (its CRC then fails)."""
    active = os.path.join(path, data_name(list_data_files(path)[-1]))
    with open(active, "r+b") as f:
        f.seek(record.FILE_HEADER_SIZE + record.HEADER_SIZE + len(b"k0"))
        f.write(b"M")


def test_a_backup_of_a_store_with_a_damaged_record_verifies_as_not_restorable(tmp_path):
    url = "memory://verify-damaged-records32"
    try:
        store = _store(str(tmp_path / "store"), damaged=True)
        assert backup_store(store, url, name="bad").damaged_records == 1
        with pytest.raises(BackupError, match="damaged"):
            restore(url, str(tmp_path / "restored"))
        report = verify_backups(url)
        (b,) = report.backups
        assert not report.ok and not b.ok and b.status == "unrestorable"
        file = data_name(list_data_files(store)[-1])
        assert b.damaged_records == [FileDamage(file, 1, 0)]
        assert str(b).startswith(f"bad  NOT RESTORABLE AS IS: 1 damaged record in {file}")
        assert "kvb salvage" in b.advice and store in b.advice and "back that up" in b.advice
        assert "1 backup not restorable as is" in str(report)
    finally:
        fsspec.filesystem("memory").rm("/verify-damaged-records32", recursive=True)


def test_a_backup_of_a_sound_store_verifies_as_sound(tmp_path):
    url = f"file://{tmp_path / 'backups'}"
    store = _store(str(tmp_path / "store"), damaged=False)
    assert backup_store(store, url, name="good").damaged_records == 0
    report = verify_backups(url)
    assert report.ok and [(b.status, b.damaged_records) for b in report.backups] == [("ok", [])]
    assert str(report).endswith("all sound")


def test_a_backup_whose_only_damage_is_hint_entries_restores_and_verifies_as_sound(tmp_path):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    url = f"file://{tmp_path / 'backups'}"
    assert backup_store(store, url, name="hints").damaged_records == 1
    report = verify_backups(url)
    assert report.ok and report.backups[0].status == "ok" and report.backups[0].damaged_records == []
    assert restore(url, str(tmp_path / "restored")).hints_dropped


def test_a_damaged_record_besides_damaged_hint_entries_is_not_restorable(tmp_path):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    fids = list_data_files(store)
    damage_active_record(store)
    url = f"file://{tmp_path / 'backups'}"
    assert backup_store(store, url, name="both").damaged_records == 2
    with pytest.raises(BackupError, match="damaged"):
        restore(url, str(tmp_path / "restored"))
    (b,) = verify_backups(url).backups
    assert b.status == "unrestorable"
    assert sorted(b.damaged_records) == sorted(
        [FileDamage(data_name(fids[0]), 0, 1), FileDamage(data_name(fids[-1]), 1, 0)]
    )


def test_the_rule_restore_and_verify_share():
    assert refused_damage([]) == []
    assert refused_damage([FileDamage("a.data", 0, 0)]) == []
    assert refused_damage([FileDamage("a.data", 0, 2), FileDamage("b.data", 0, 1)]) == []
    both = [FileDamage("a.data", 0, 2), FileDamage("b.data", 1, 0)]
    assert refused_damage(both) == both


def test_kvb_backups_verify_text_json_and_exit_status(tmp_path, capsys):
    backups = str(tmp_path / "backups")
    bad = _store(str(tmp_path / "store"), damaged=False)
    assert main(["backup", bad, backups, "--name", "good"]) == 0
    _damage(bad)
    assert main(["backup", bad, backups, "--name", "bad"]) == 1
    capsys.readouterr()
    assert main(["backups", backups, "--verify", "--name", "good"]) == 0
    assert "all sound" in capsys.readouterr().out

    assert main(["backups", backups, "--verify"]) == 1
    out, err = capsys.readouterr()
    file = data_name(list_data_files(bad)[-1])
    lines = out.splitlines()
    assert lines[0] == "good  ok" and lines[1].startswith(
        f"bad  NOT RESTORABLE AS IS: 1 damaged record in {file}"
    )
    assert "1 backup not restorable as is" in lines[2]
    assert "kvb: backup bad cannot be restored as is" in err and f"kvb salvage {bad}" in err

    assert main(["backups", backups, "--verify", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    by_name = {b["name"]: b for b in doc["backups"]}
    assert by_name["good"]["status"] == "ok" and by_name["good"]["damaged_records"] == []
    assert by_name["bad"]["ok"] is False and by_name["bad"]["status"] == "unrestorable"
    assert by_name["bad"]["damaged_records"] == [{"file": file, "records": 1, "hint_entries": 0}]
    assert "kvb salvage" in by_name["bad"]["advice"] and by_name["good"]["advice"] is None


def test_a_manifest_without_the_count_of_hint_entries_takes_all_its_damage_for_records(tmp_path):
    """A backup made before manifests counted hint entries apart: whole count as damaged records."""
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    url = f"file://{tmp_path / 'backups'}"
    backup_store(store, url, name="old")
    path = tmp_path / "backups" / "backups" / "old.json"
    doc = json.loads(path.read_text())
    del doc["checksum"]
    assert sum(e.pop("damaged_hint_entries", 0) for e in doc["files"]) == 1
    path.write_bytes(kvbackup._encode_manifest(doc))
    (b,) = verify_backups(url).backups
    assert b.status == "unrestorable" and b.damaged_records == [
        FileDamage(data_name(list_data_files(store)[0]), 1)
    ]
    # An incremental backup does not take over such a count: it scans the file again, and counts it apart.
    assert backup_store(store, url, name="new").damaged_records == 1
    assert [b.status for b in verify_backups(url, "new").backups] == ["ok"]
