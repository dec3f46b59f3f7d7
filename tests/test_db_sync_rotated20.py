"""DB.sync() and Store.sync() flush every record the handle wrote, also those in a file another
handle's rotation closed since.

``sync()`` fsynced the active file only: under ``sync="never"``, records a handle had written to a
file that a rotation then closed without an fsync (another handle's, another process's say, or the
handle's own: see test_engine_input's test_sync_never_does_not_fsync) stayed unflushed after
``sync()`` returned, against its promise ("everything written so far"). A shelf's and a dbm
database's sync() already flush what their object wrote.
"""

from __future__ import annotations

import os

import pytest
from helpers import FsyncSpy

from kv_backend import DB, Store


def mine_db(handle: DB | Store) -> DB:
    return handle if isinstance(handle, DB) else handle.db


def _newest_data_file(path: str) -> str:
    return max(n for n in os.listdir(path) if n.endswith(".data"))


@pytest.mark.parametrize("front", ["DB", "Store"])
def test_sync_flushes_records_in_a_file_another_handle_rotated(tmp_path, monkeypatch, front):
    path = str(tmp_path / "kv")
    mine = DB(path) if front == "DB" else Store(path, serializer="raw")
    if front == "DB":
        mine.put(b"mine", b"MARK-before-rotation")
    else:
        mine["mine"] = b"MARK-before-rotation"
    first = _newest_data_file(path)
    with DB(path, max_file_size=4096) as other:
        other.put(b"big", b"x" * 8000)  # rotates: the first file is closed, not fsynced (sync="never")
    assert _newest_data_file(path) != first
    assert (mine.get(b"mine") if front == "DB" else mine["mine"]) == b"MARK-before-rotation"
    assert os.path.basename(mine_db(mine)._active.path) != first  # (the read caught up: a new active file)
    spy = FsyncSpy(monkeypatch)
    mine.sync()
    assert any(b"MARK-before-rotation" in content for content in spy.contents), len(spy.calls)
    calls = len(spy.calls)
    mine.sync()  # nothing new written: the active file alone, as before
    assert len(spy.calls) - calls <= 1
    mine.close()
