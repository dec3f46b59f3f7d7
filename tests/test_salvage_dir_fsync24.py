"""A salvage whose fsync of the directory above the copy fails, once it is in place, says so.

The fsync of the directory above the new store sat in the same ``try`` as the rename that moved the
copy there: its failure read "cannot move the copy into place" (the copy was in place) and the
copy's temporary directory, already moved, was to be deleted. It now raises
``SalvageNotDurableError`` (a ``SalvageError``): the salvaged store is in place, nothing is deleted,
and the message says what to do. The directories the salvage created above the new store are
fsynced too, as a restore's are.
"""

from __future__ import annotations

import errno
import os

import pytest
from helpers import fail_fsync_of

from kv_backend import DB
from kv_backend.cli import main
from kv_backend.salvage import SalvageError, SalvageNotDurableError, salvage

EIO = os.strerror(errno.EIO)


def _value(path) -> bytes | None:
    with DB(str(path), read_only=True) as db:
        return db.get(b"k")


@pytest.mark.parametrize("exists", [False, True], ids=["new path", "empty directory"])
def test_a_failed_fsync_after_the_move_leaves_the_copy_and_says_so(
    one_key_store, tmp_path, monkeypatch, exists
):
    parent = tmp_path / "salvaged"
    parent.mkdir()
    dst = parent / "new"
    if exists:
        dst.mkdir()
    failed = fail_fsync_of(monkeypatch, parent)
    with pytest.raises(SalvageNotDurableError) as info:
        salvage(one_key_store, str(dst))
    assert failed == [str(parent)]
    error = info.value
    assert isinstance(error, SalvageError)
    message = str(error)
    assert message.startswith(
        f"salvaged {one_key_store} into {dst}, but cannot make that durable: cannot fsync the directory "
        f"{parent}: {EIO}. "
    ), message
    assert "cannot move" not in message and "[Errno" not in message, message
    assert f"run `sync {parent}`" in message and "check the disk" in message, message
    assert (error.directory, error.reason) == (str(parent), EIO)
    assert error.report is not None and (error.report.dst, error.report.keys_copied) == (str(dst), 1)
    monkeypatch.undo()
    assert sorted(os.listdir(parent)) == ["new"]  # (in place, nothing deleted, no temporary copy left)
    assert _value(dst) == b"v"
    assert _value(one_key_store) == b"v"


def test_the_directories_it_made_above_the_new_store_are_fsynced(one_key_store, tmp_path, monkeypatch):
    dst = tmp_path / "made" / "deeper" / "new"  # (made and deeper: created by the salvage)
    failed = fail_fsync_of(monkeypatch, tmp_path)
    with pytest.raises(SalvageNotDurableError) as info:
        salvage(one_key_store, str(dst))
    assert failed == [str(tmp_path)]
    assert f"cannot fsync the directory {tmp_path}: {EIO}" in str(info.value)
    monkeypatch.undo()
    assert _value(dst) == b"v"


def test_kvb_salvage_prints_it_and_fails(one_key_store, tmp_path, monkeypatch, capsys):
    dst = tmp_path / "new"
    fail_fsync_of(monkeypatch, tmp_path)
    assert main(["salvage", one_key_store, str(dst)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"kvb: salvaged {one_key_store} into {dst}, but cannot make that durable")
    assert "keys copied" not in captured.out  # (no report of a salvage done)
    monkeypatch.undo()
    assert _value(dst) == b"v"
