"""An id added to a store made before ids (``store_id.add_store_id``) is renamed into place, then its
directory fsynced: until then a power failure may take it back. Two ways it could be used without being
durable:

* the directory's fsync failed and was ignored: the id stayed, used by this process and every other,
  while the disk might come back without it (and the next open give the store another id, whose backups
  the URL holding this one's then refuses). The old file is now put back: no id this time, a later open
  adds one;
* a backup read the format file after its snapshot, without the write lock, which the process adding the
  id holds from the rename through the fsync: it could record in its manifest an id not yet on disk. It now
  reads the file under the lock its snapshot is taken under.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import kv_backend.store_id as store_id_module
from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.files import FORMAT_FILE, FORMAT_TEXT, TMP_SUFFIX
from kv_backend.store_id import read_store_id


def _old_store(path: Path) -> str:
    with DB(str(path)) as db:
        db.put(b"k", b"v")
    (path / FORMAT_FILE).write_text(FORMAT_TEXT)  # (as versions before ids left it)
    return str(path)


def _opener(store: str) -> tuple[threading.Thread, list[BaseException]]:
    """A thread (not started) that opens ``store`` for writing, adding its id, and closes it; and the list
    that receives what the open raised."""
    errors: list[BaseException] = []

    def open_for_writing() -> None:
        try:
            with DB(store):
                pass
        except BaseException as exc:  # pragma: no cover - reported by the test
            errors.append(exc)

    return threading.Thread(target=open_for_writing), errors


def _failing_fsync_dir(monkeypatch, before=None) -> list[str]:
    """Make the store id module's directory fsyncs fail (EIO), calling ``before()`` at the first; the
    directories it was asked to fsync."""
    asked: list[str] = []

    def fsync_dir(path: str) -> None:
        asked.append(path)
        if before is not None and len(asked) == 1:
            before()
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(store_id_module, "fsync_dir", fsync_dir)
    return asked


def test_an_id_whose_directory_cannot_be_fsynced_is_taken_back(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    asked = _failing_fsync_dir(monkeypatch)
    with DB(store) as db:
        assert db.store_id is None and db[b"k"] == b"v"
    assert asked
    assert (Path(store) / FORMAT_FILE).read_text() == FORMAT_TEXT  # the old file is back
    assert not (Path(store) / (FORMAT_FILE + TMP_SUFFIX)).exists()
    monkeypatch.undo()
    with DB(store) as db:  # a later open, whose fsync succeeds, adds it
        given = db.store_id
    assert given is not None and read_store_id(store) == given


def test_a_backup_whose_id_cannot_be_made_durable_names_none(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    _failing_fsync_dir(monkeypatch)
    backup_store(store, str(tmp_path / "bk"))
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None]
    assert read_store_id(store) is None


def test_a_backup_never_records_an_id_another_process_has_not_made_durable(tmp_path, monkeypatch):
    """The backup's snapshot is taken; then another opener adds the id and, holding the lock, stays between
    the rename and the directory's fsync (which fails) while the backup goes on: the backup must not name
    the id, which the disk may not keep (and which is taken back here)."""
    store = _old_store(tmp_path / "s")
    in_window, backup_done = threading.Event(), threading.Event()
    _failing_fsync_dir(monkeypatch, before=lambda: (in_window.set(), backup_done.wait(10)))
    adder, errors = _opener(store)
    with DB(store, read_only=True) as reader:
        real = reader.snapshot_files

        def snapshot_then_id_added():
            files = real()
            adder.start()  # (the snapshot let the lock go: the opener takes it and adds the id)
            assert in_window.wait(10)
            return files

        monkeypatch.setattr(reader, "snapshot_files", snapshot_then_id_added)
        try:
            reader.backup(str(tmp_path / "bk"), name="b1")
        finally:
            backup_done.set()
            if adder.ident is not None:
                adder.join(30)
    assert not errors and not adder.is_alive()
    assert read_store_id(store) is None  # (taken back: its directory could not be fsynced)
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [None]


def test_the_snapshot_holds_the_format_file_read_under_its_lock(tmp_path):
    store = tmp_path / "s"
    with DB(str(store)) as db:
        db.put(b"k", b"v")
        files = db.snapshot_files()
        try:
            assert files.store_format == (store / FORMAT_FILE).read_text()  # type: ignore[attr-defined]
        finally:
            for f in files:
                f.close()
