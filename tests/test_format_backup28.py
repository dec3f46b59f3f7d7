"""A backup's read of a store's format file (``KVB_FORMAT``, whose second line is the store's id), gaps
found in review.

* A backup of a store whose format file holds bytes that are not UTF-8 failed with a bare
  UnicodeDecodeError (``kvb backup`` printed a traceback, ``manage.py kv_backup`` the codec's words,
  ``POST /v1/backup`` blamed the URL): it is a CorruptionError naming the file and the first bad byte and
  saying what to do, alike from ``DB.backup``, ``backup_store``, ``kvb backup`` and the HTTP server;
  ``kvb check`` (which reports the damage) and ``kvb salvage`` still read the store.
* A backup whose snapshot is a plain list (a ``DB`` subclass's ``snapshot_files``) read the format file
  after the snapshot, without the write lock and without fsyncing the directory: it named an id the
  disk may not keep. It reads it as the snapshot does now.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import fail_store_id_fsync, one_key_store
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.errors import CorruptionError
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT
from kv_backend.snapshot import Snapshot
from kv_backend.store_id import read_store_id

ID = "0123456789abcdef0123456789abcdef"


# ----------------------------------------------------------------- 1: a format file that is not UTF-8


UNDECODABLE = FORMAT_TEXT.encode() + b"id \xff\xfe\n"


def _says_what_to_do(message: str, store: str) -> None:
    assert os.path.join(store, FORMAT_FILE) in message, message
    assert "not UTF-8" in message and "byte 30" in message, message
    assert "kvb salvage" in message and "id " in message, message


@pytest.mark.parametrize("how", ["DB.backup", "read-only DB.backup", "backup_store"])
def test_a_backup_of_a_store_whose_format_file_is_not_utf8_raises_corruption_error(tmp_path, how):
    store = one_key_store(tmp_path, UNDECODABLE)
    url = str(tmp_path / "bk")
    with pytest.raises(CorruptionError) as info:
        if how == "backup_store":
            backup_store(store, url)
        else:
            with DB(store, read_only=how.startswith("read-only")) as db:
                db.backup(url)
    _says_what_to_do(str(info.value), store)
    assert info.value.path == os.path.join(store, FORMAT_FILE) and info.value.offset == 30
    assert not os.path.exists(os.path.join(url, "backups")) or not os.listdir(os.path.join(url, "backups"))
    assert Path(store, FORMAT_FILE).read_bytes() == UNDECODABLE  # (left as it is)


def test_kvb_backup_says_so_and_check_and_salvage_still_read_the_store(tmp_path, capsys):
    store = one_key_store(tmp_path, UNDECODABLE)
    code, out, err = run(capsys, "backup", store, str(tmp_path / "bk"))
    assert code == 2 and "Traceback" not in err, (code, out, err)
    _says_what_to_do(err, store)
    code, out, err = run(capsys, "check", store)
    assert code == 1 and "1 files, 1 records" in out, (out, err)  # (the format file's damage: its data read)
    assert (
        f"{os.path.join(store, FORMAT_FILE)} @ 30: bytes that are not UTF-8" in out and "sed -i '2,$d'" in out
    ), out
    code, out, err = run(capsys, "salvage", store, str(tmp_path / "copy"))
    assert code == 0, (out, err)
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert db[b"k"] == b"v"
    assert read_store_id(str(tmp_path / "copy")) is not None  # (its own: the source's names none)


def test_the_id_line_sound_and_damage_after_it_says_to_keep_the_first_two_lines(tmp_path):
    store = one_key_store(tmp_path, f"{FORMAT_TEXT}id {ID}\n".encode() + b"\xff\n")
    with pytest.raises(CorruptionError) as info:
        backup_store(store, str(tmp_path / "bk"))
    assert "sed -i '3,$d'" in str(info.value) and ID in str(info.value), str(info.value)


# ----------------------------------------------------------------- 2: a snapshot that is a plain list


class ListSnapshotDB(DB):
    """A DB whose snapshot_files gives a plain list (the override a subclass may make)."""

    def snapshot_files(self):  # type: ignore[override]
        return list(super().snapshot_files())


def test_a_plain_list_snapshot_names_the_id_once_on_disk(tmp_path):
    store = one_key_store(tmp_path)
    given = read_store_id(store)
    with ListSnapshotDB(store, read_only=True) as db:
        assert not isinstance(db.snapshot_files(), Snapshot)
        db.backup(str(tmp_path / "bk"))
    assert given is not None and [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [given]


def test_a_plain_list_snapshot_never_names_an_id_whose_directory_cannot_be_fsynced(tmp_path, monkeypatch):
    """An id left on disk unconfirmed (an adder's put back failed): a reader records it only once it
    has fsynced the directory itself."""
    store = one_key_store(tmp_path)
    with ListSnapshotDB(store, read_only=True) as db:
        fail_store_id_fsync(monkeypatch)
        db.backup(str(tmp_path / "bk"))
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None]


def test_post_v1_backup_answers_corrupt_record_not_a_bad_target(tmp_path):
    """It answered 400 invalid_backup_target ("cannot back up to URL"), as the UnicodeDecodeError is a
    ValueError: the URL was not at fault."""
    testclient = pytest.importorskip("starlette.testclient")
    from kv_backend.http import create_app

    store = one_key_store(tmp_path, UNDECODABLE)
    with DB(store) as db, testclient.TestClient(create_app(db)) as client:
        r = client.post("/v1/backup", json={"url": str(tmp_path / "bk")})
    assert (r.status_code, r.json()["error"]) == (500, "corrupt_record"), r.text
    _says_what_to_do(r.json()["message"], store)
