"""A backup's damaged_records counted the damaged records of the data files it copied, not the entries of
their hint files that point to the wrong record (a hint file that passes its checksum, read instead of
its data file when a store opens: the key raises CorruptionError). kvb check lists those, and a
restore, which checks the restored copy, refused the backup; but the backup reported 0 damage, and
kvb backup (manage.py kv_backup, POST /v1/backup) exited 0. The backup now counts them as kvb check
does, and an incremental backup takes the count over only from an earlier one of the same data file
checked with the same hint file."""

from __future__ import annotations

import os

import pytest
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB, record
from kv_backend import check as check_module
from kv_backend.backup import backup_store, restore
from kv_backend.check import check
from kv_backend.errors import BackupError
from kv_backend.files import data_name, hint_name, list_data_files
from kv_backend.hint import write_hints


def _merged_store(path: str) -> str:
    """A store whose closed files a merge wrote, each with its hint file, and an active file after them."""
    with DB(path, max_file_size=4096) as db:
        for i in range(60):
            db.put(b"k%02d" % i, b"v" * 100)
        db.merge()
        db.put(b"after", b"merge")
    return path


def _rewrite_hints(store: str, *, swap: bool) -> str:
    """Write the hint file of the store's first data file again, its first key pointing to the second
    key's record if ``swap`` (a sound record of another key), else right: return the data file's path."""
    fid = list_data_files(store)[0]
    dpath = os.path.join(store, data_name(fid))
    with open(dpath, "rb") as f:
        buf = f.read()
    scanned = record.scan(buf, record.FILE_HEADER_SIZE, len(buf)).entries
    puts = [(k, off, size) for t, k, off, size, _ in scanned if t == record.PUT]
    assert len(puts) == len(scanned) > 2  # (a merge's output: live PUTs only)
    locations = [off << 32 | size for _, off, size in puts]
    if swap:
        locations[0] = locations[1]
    keys = [k for k, _, _ in puts]
    write_hints(os.path.join(store, hint_name(fid)), len(buf), keys, locations, [0.0] * len(puts))
    return dpath


def damage_active_record(store: str) -> None:
    """Damage a value byte of the first record of the store's active file (that of key ``after``, which
    :func:`_merged_store` writes last): a damaged record, which a restore refuses."""
    active = os.path.join(store, data_name(list_data_files(store)[-1]))
    with open(active, "r+b") as f:
        f.seek(record.FILE_HEADER_SIZE + record.HEADER_SIZE + len(b"after"))
        f.write(b"M")


def test_a_backup_counts_a_hint_entry_pointing_to_the_wrong_record(tmp_path, capsys):
    store = _merged_store(str(tmp_path / "store"))
    dpath = _rewrite_hints(store, swap=True)
    problems = check(store).problems
    assert [p.path for p in problems] == [dpath] and "points here for the key b'k00'" in problems[0].what
    url = f"file://{tmp_path / 'backups'}"
    assert backup_store(store, url, name="api").damaged_records == 1
    # The data files are sound: the restore leaves the damaged hint file out, and every key reads.
    restored = str(tmp_path / "restored")
    report = restore(url, restored)
    assert report.hints_dropped == [os.path.basename(hint_name(list_data_files(store)[0]))]
    assert "left out 1 damaged hint file(s)" in str(report)
    assert check(restored).ok
    with DB(restored, read_only=True) as db:
        assert db.get(b"k00") == db.get(b"k01") == b"v" * 100 and db.get(b"after") == b"merge"
        assert len(db) == 61
    code, _out, err = run(capsys, "backup", store, url, "--name", "cli")
    assert code == 0 and "holds 1 damaged hint entry" in err  # (a restore accepts it)


def test_a_restore_still_refuses_a_damaged_record_besides_a_damaged_hint_file(tmp_path):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    damage_active_record(store)
    url = f"file://{tmp_path / 'backups'}"
    assert backup_store(store, url).damaged_records == 2
    with pytest.raises(BackupError, match="damaged"):
        restore(url, str(tmp_path / "restored"))
    assert not os.path.exists(tmp_path / "restored")


def test_an_incremental_backup_checks_a_hint_file_that_changed_with_its_data_file_unchanged(tmp_path):
    store = _merged_store(str(tmp_path / "store"))
    url = f"file://{tmp_path / 'backups'}"
    _rewrite_hints(store, swap=False)
    assert backup_store(store, url, name="one").damaged_records == 0
    _rewrite_hints(store, swap=True)  # (the data file is the same bytes: its copy is shared)
    second = backup_store(store, url, name="two")
    assert second.files_skipped >= 1 and second.damaged_records == 1 == len(check(store).problems)
    _rewrite_hints(store, swap=False)
    assert backup_store(store, url, name="three").damaged_records == 0


def test_the_count_of_a_file_and_its_hint_file_is_taken_over_unread(tmp_path, monkeypatch):
    store = _merged_store(str(tmp_path / "store"))
    _rewrite_hints(store, swap=True)
    url = f"file://{tmp_path / 'backups'}"
    assert backup_store(store, url, name="one").damaged_records == 1
    scanned = []
    original = check_module.snapshot_problems

    def counting(read, size, name, **kwargs):
        scanned.append(name)
        return original(read, size, name, **kwargs)

    monkeypatch.setattr(check_module, "snapshot_problems", counting)
    with DB(store) as db:
        db.put(b"later", b"write")
    second = backup_store(store, url, name="two")
    assert second.damaged_records == 1
    # Only the active file, which has grown meanwhile, is read again.
    assert scanned == [data_name(list_data_files(store)[-1])]
