"""A backup whose directory fsync fails does not pull the directories from under another backup.

A backup to a local URL whose missing directories it created, and whose fsync of one of them failed,
removed those directories again (the empty ones, deepest first). Another backup to the same URL that
had found them there meanwhile (it created nothing, so it fsynced nothing) then failed on its first
write there (``cannot copy ... No such file or directory``), though nothing was wrong on its side;
and where it had put something in one of them first, the directories above stayed, never fsynced by
anyone. Now a failed backup leaves the directories it made, and every backup fsyncs the entries of
the directories it uses, whoever made them, before its manifest names anything in them.

A restore that fails removes the parent directories it made: another restore into the same new
parent, which had found them there, failed the same way, and now makes them again; restores and
salvages fsync the directories above the new store, whoever made them, too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

import pytest
from helpers import exit_code, fail_fsync_of, fork_child, nobody_dir, nobody_store, run_as_nobody

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError
from kv_backend.backup import backup_store, list_backups, restore
from kv_backend.salvage import salvage


@pytest.fixture
def store(tmp_path) -> str:
    """A closed store of a few keys (``tmp_path/store``)."""
    path = str(tmp_path / "store")
    with DB(path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v%03d" % i * 20)
    return path


def _content(path: str) -> dict[bytes, bytes]:
    with DB(path, read_only=True) as db:
        return dict(db.items())


class _Paused:
    """A child process that runs ``fn`` once told to start, and stops at its first call of
    ``owner.attr`` until told to go on (the second of two processes, at the step the test chose)."""

    def __init__(self, fn: Callable[[], object], owner: object, attr: str) -> None:
        self._start, start_w = os.pipe()
        ready_r, self._ready = os.pipe()
        self._go, go_w = os.pipe()
        real_fsync, real = os.fsync, getattr(owner, attr)

        def child() -> None:
            os.fsync = real_fsync  # (a fault the test makes is the parent's)
            first = [True]

            def paused(*args, **kwargs):
                if first[0]:
                    first[0] = False
                    os.write(self._ready, b"r")
                    os.read(self._go, 1)
                return real(*args, **kwargs)

            setattr(owner, attr, paused)
            os.read(self._start, 1)
            fn()

        self.pid = fork_child(child)
        self._start_w, self._go_w = start_w, go_w
        self._ready_r = ready_r
        for fd in (self._start, self._ready, self._go):
            os.close(fd)

    def run_to_pause(self) -> None:
        os.write(self._start_w, b"s")
        assert os.read(self._ready_r, 1) == b"r"

    def finish(self) -> int:
        os.write(self._go_w, b"g")
        for fd in (self._start_w, self._go_w, self._ready_r):
            os.close(fd)
        return exit_code(self.pid)


def test_a_backup_beside_one_whose_directory_fsync_fails_completes(store, tmp_path, monkeypatch):
    root = tmp_path / "new" / "bk"  # (new, bk and files made by the first backup)
    # The other stops at its first write (its journal), its directories made.
    other = _Paused(lambda: backup_store(store, str(root), name="b2"), kvbackup._Target, "write_bytes")
    failing = fail_fsync_of(monkeypatch, tmp_path / "new")
    fail = os.fsync

    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}") == os.path.realpath(tmp_path / "new") and not failing:
            other.run_to_pause()  # it finds the directories there, and makes the rest
        fail(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(BackupError, match="nothing was backed up"):
        backup_store(store, str(root), name="b1")
    monkeypatch.undo()
    assert failing == [os.path.realpath(tmp_path / "new")]
    assert other.finish() == 0  # (it failed: cannot copy ... files/...: No such file or directory)
    assert [i.name for i in list_backups(str(root))] == ["b2"]
    restore(str(root), str(tmp_path / "r"), name="b2")
    assert _content(str(tmp_path / "r")) == _content(store)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory another user may not read")
def test_a_directory_above_that_the_user_may_not_read_is_passed_by():
    # The backup fsyncs the directories above the URL's, whoever made them; one this user may only
    # pass through (0711) holds nothing a backup of theirs made, and cannot be opened to be fsynced.
    base = tempfile.mkdtemp(prefix="kvb-dir-race-")
    try:
        os.chmod(base, 0o711)
        store = nobody_store(base)
        url = os.path.join(nobody_dir(base, "mine"), "bk")

        def back_up_and_restore() -> bool:
            backup_store(store, url, name="b1")
            restore(url, os.path.join(base, "mine", "r"))
            return _content(os.path.join(base, "mine", "r")) == _content(store)

        assert run_as_nobody(back_up_and_restore)
    finally:
        shutil.rmtree(base, ignore_errors=True)


class _Stop(Exception):
    pass


@pytest.mark.parametrize("kind", ["restore", "salvage"])
def test_a_restore_beside_one_that_fails_completes(store, tmp_path, kind):
    # One that fails removes the parent directories it made: another into the same new parent,
    # which found them there, made its copy's directory in one that was no more ("cannot create a
    # directory next to NEW/b: No such file or directory"). It makes them again.
    url = str(tmp_path / "bk")
    backup_store(store, url, name="b1")
    new = tmp_path / "new"
    if kind == "restore":
        second = lambda: restore(url, str(new / "b"))  # noqa: E731
    else:
        second = lambda: salvage(store, str(new / "b"))  # noqa: E731
    other = _Paused(second, kvbackup, "new_claimed_directory")  # (its parents made, not its copy's)

    def progress(done: int, total: int) -> None:
        if new.exists():  # (a salvage reads its source first)
            other.run_to_pause()
            raise _Stop

    with pytest.raises(_Stop):
        if kind == "restore":
            restore(url, str(new / "a"), progress=progress)
        else:
            salvage(store, str(new / "a"), progress=progress)
    assert other.finish() == 0
    assert sorted(os.listdir(new)) == ["b"]
    assert _content(str(new / "b")) == _content(store)


@pytest.mark.parametrize("kind", ["restore", "salvage"])
def test_a_restore_fsyncs_the_directories_above_whoever_made_them(store, tmp_path, monkeypatch, kind):
    # Those another restore made, which failed before its fsync and could not remove them (this
    # one's copy was in them), hold this store's entries too.
    url = str(tmp_path / "bk")
    backup_store(store, url, name="b1")
    above = tmp_path / "x" / "y"
    above.mkdir(parents=True)
    synced: list[str] = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    if kind == "restore":
        restore(url, str(above / "r"))
    else:
        salvage(store, str(above / "r"))
    monkeypatch.undo()
    assert {os.path.realpath(p) for p in (above, tmp_path / "x", tmp_path)} <= set(synced)
    assert _content(str(above / "r")) == _content(store)
