"""kvb backup opened the store before copying it, replaying the whole log of a store never merged to
build a key directory the backup never uses (3M keys: 8.4 s and the memory of the key directory, for an
incremental backup whose copy took 0.25 s). A backup needs the file list and the active file's
published end, taken under the write lock: backup_store (which kvb backup runs) takes them from the
store's directory alone, and refuses what an open refuses."""

from __future__ import annotations

import os
import shutil

import pytest

from kv_backend import DB, StoreNotFoundError
from kv_backend import db_open as db_open_module
from kv_backend.backup import backup_store, list_backups, restore
from kv_backend.cli import main
from kv_backend.errors import NotAStoreError
from kv_backend.state import in_use


def _fill(path: str, n: int = 500) -> dict[bytes, bytes]:
    with DB(path, max_file_size=8192) as db:
        for i in range(n):
            db.put(b"k%04d" % i, b"v%d" % i)
        db.delete(b"k0003")
        return dict(db.items())


def _restored(url: str, where: str, name: str | None = None) -> dict[bytes, bytes]:
    restore(url, where, name=name)
    with DB(where, read_only=True) as db:
        return dict(db.items())


def _no_replay(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the store was replayed")

    monkeypatch.setattr(db_open_module, "_replay", refuse)
    monkeypatch.setattr(db_open_module.KeyDir, "apply_hints", refuse)


def test_kvb_backup_does_not_replay_the_store(store_path, tmp_path, monkeypatch):
    expected = _fill(store_path)
    url = str(tmp_path / "bk")
    _no_replay(monkeypatch)
    assert main(["backup", store_path, url, "--name", "one"]) == 0
    assert main(["backup", store_path, url, "--name", "two"]) == 0  # (incremental)
    monkeypatch.undo()
    assert [b.name for b in list_backups(url)] == ["one", "two"]
    assert _restored(url, str(tmp_path / "r"), "two") == expected


def test_backup_store_copies_the_published_data_while_a_writer_goes_on(store_path, tmp_path):
    url = str(tmp_path / "bk")
    with DB(store_path) as db:
        db.put(b"a", b"1")
        with db.batch() as b:
            b.put(b"b", b"2")
            b.put(b"c", b"3")
        expected = dict(db.items())
        seen_in_use = []

        def progress(done: int, total: int) -> None:
            seen_in_use.append(in_use(store_path))
            if done == 0:
                db.put(b"after", b"x")  # written once the snapshot is taken: not in this backup

        report = backup_store(store_path, url, progress=progress)
        assert report.files_copied >= 1 and report.damaged_records == 0
        assert db[b"after"] == b"x"
    assert seen_in_use and all(seen_in_use)  # (held as an open store holds it, for kv_restore --replace)
    assert _restored(url, str(tmp_path / "r")) == expected


def test_backup_store_of_a_store_copied_without_its_state_page(store_path, tmp_path):
    expected = _fill(store_path, 200)
    copy = str(tmp_path / "copy")
    shutil.copytree(store_path, copy, ignore=shutil.ignore_patterns("STATE", "LOCK"))
    url = str(tmp_path / "bk")
    assert backup_store(copy, url).damaged_records == 0
    assert not os.path.exists(os.path.join(copy, "STATE"))  # (only read)
    assert _restored(url, str(tmp_path / "r")) == expected


def test_backup_store_refuses_what_an_open_refuses_and_writes_nothing(store_path, tmp_path, capsys):
    url = str(tmp_path / "bk")
    with pytest.raises(StoreNotFoundError):
        backup_store(str(tmp_path / "typo"), url)
    os.makedirs(tmp_path / "empty")
    with pytest.raises(StoreNotFoundError):
        backup_store(tmp_path / "empty", url)
    _fill(store_path, 10)
    name = sorted(n for n in os.listdir(store_path) if n.endswith(".data"))[0]
    with open(os.path.join(store_path, name), "r+b") as f:
        f.seek(8)
        f.write((2).to_bytes(4, "little"))
    with pytest.raises(NotAStoreError, match=r"format version 2.*reads version 1 only"):
        backup_store(store_path, url)
    assert not os.path.exists(tmp_path / "typo") and list_backups(url) == []
    assert main(["backup", str(tmp_path / "typo"), url]) == 2
    assert capsys.readouterr().err.startswith("kvb: no kv_backend store at")
    assert not os.path.exists(tmp_path / "typo")


def test_kvb_backup_refuses_a_storage_option_named_like_an_argument(store_path, tmp_path, capsys):
    _fill(store_path, 10)
    url = str(tmp_path / "bk")
    for key in ("path", "db", "url"):
        assert main(["backup", store_path, url, "--storage-option", f"{key}=x"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"kvb: --storage-option {key}=") and len(err.splitlines()) == 1, err
    assert list_backups(url) == []
