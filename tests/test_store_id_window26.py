"""The window in which a store made before ids shows an id that is not on disk yet: the process adding it
(``store_id.add_store_id``) holds the write lock from the rename of the new format file into place through
the fsync of the directory, and where that fsync fails, puts the old file back (the store goes without).
Whatever reads the file in that window without the lock sees an id the store may never keep; what it does
with it must be checked under the lock:

* a writable open reads the file once, outside the lock (its format check), and skipped the read again under
  the lock where that first read named an id: one read in the window skipped the id its open should add;
* ``kvb backup`` (backup_store) decided the same way whether its snapshot adds the id;
* a salvage copied its source's id, read without the lock, to the new store;
* ``DB.store_id`` returned what the file said.

Here the other process is mostly another thread's DB object (its own open file description of LOCK, so the
two exclude each other as processes do), whose directory fsync alone fails; and once a real process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    become_nobody,
    exit_code,
    fork_talking,
    nobody_dir,
    reachable_dir,
    spawn_python,
    stop_process,
    wait_for,
    waiting_for_flock,
)
from test_store_id_durable26 import _old_store, _opener

import kv_backend.db as db_module
import kv_backend.files as files_module
import kv_backend.salvage as salvage_module
import kv_backend.store_id as store_id_module
from kv_backend import DB
from kv_backend.backup import backup_store, list_backups
from kv_backend.files import LOCK_FILE, STATE_FILE
from kv_backend.store_id import read_store_id


@contextlib.contextmanager
def _id_in_its_window(store: str, monkeypatch) -> Iterator[threading.Event]:
    """Another opener of ``store`` (a thread) adds an id and stays, holding the write lock, between the
    rename and the fsync of the directory, which then fails (the old file is put back). The block runs in
    that window; setting the event it is given lets the opener go on (at its exit at the latest)."""
    real = store_id_module.fsync_dir
    in_window, go_on = threading.Event(), threading.Event()

    def fsync_dir(path: str) -> None:
        if threading.current_thread() is not adder:
            real(path)
            return
        if not in_window.is_set():
            in_window.set()
            assert go_on.wait(30)
        raise OSError(errno.EIO, "Input/output error")

    adder, errors = _opener(store)
    monkeypatch.setattr(store_id_module, "fsync_dir", fsync_dir)
    adder.start()
    try:
        assert in_window.wait(30)
        assert read_store_id(store) is not None  # (the window: an id shows that the disk may not keep)
        yield go_on
    finally:
        go_on.set()
        adder.join(30)
    assert not errors and not adder.is_alive()


def _going_on_after(go_on: threading.Event, fn):
    """``fn`` wrapped so that the opener in its window goes on once ``fn`` has returned."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            go_on.set()

    return wrapped


def _going_on_before(go_on: threading.Event, fn):
    """``fn`` wrapped so that the opener in its window goes on as ``fn`` is called."""

    def wrapped(*args, **kwargs):
        go_on.set()
        return fn(*args, **kwargs)

    return wrapped


def test_an_open_whose_check_read_an_id_in_its_window_still_adds_one(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    with _id_in_its_window(store, monkeypatch) as go_on:
        # The format check reads the id in the window; the opener then fails its fsync and puts the old
        # file back before this open takes the lock (which it waits for).
        monkeypatch.setattr(db_module, "format_file_text", _going_on_after(go_on, db_module.format_file_text))
        with DB(store) as db:
            given = db.store_id
            assert db[b"k"] == b"v"
    assert given is not None  # (before: None, the open skipped the add its check seemed to make needless)
    assert read_store_id(store) == given


def test_a_backup_whose_check_read_an_id_in_its_window_still_adds_one(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    with _id_in_its_window(store, monkeypatch) as go_on:
        checked = _going_on_after(go_on, files_module.format_file_text)
        monkeypatch.setattr(files_module, "format_file_text", checked)
        backup_store(store, str(tmp_path / "bk"))
    given = read_store_id(store)
    assert given is not None  # (before: None)
    assert [i.store_id for i in list_backups(str(tmp_path / "bk"))] == [given]


def test_a_salvage_never_gives_its_copy_an_id_its_source_takes_back(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    with _id_in_its_window(store, monkeypatch) as go_on:
        shown = read_store_id(store)
        # The salvage's read of the source's id falls in the window; the opener then fails its fsync.
        monkeypatch.setattr(
            store_id_module, "read_format", _going_on_after(go_on, store_id_module.read_format)
        )
        report = salvage_module.salvage(store, str(tmp_path / "copy"))
    assert report.clean and report.keys_copied == 1
    assert read_store_id(store) is None  # (taken back)
    copied = read_store_id(str(tmp_path / "copy"))
    assert copied is not None and copied != shown  # (its own; before: the id its source never kept)


def test_a_salvage_inside_its_own_hold_of_the_source_lock_reads_the_id_at_once(tmp_path):
    """A program that salvages a store while this thread holds its write lock (a locked() block) does not
    wait for itself: no other process can be adding the id meanwhile."""
    store = str(tmp_path / "s")
    with DB(store) as db:
        db.put(b"k", b"v")
        with db.locked():
            salvage_module.salvage(store, str(tmp_path / "copy"))
        assert read_store_id(str(tmp_path / "copy")) == db.store_id is not None


def test_store_id_never_shows_an_id_the_store_takes_back(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    with DB(store, read_only=True) as db:
        with _id_in_its_window(store, monkeypatch) as go_on:
            # (Before: no take of the lock, and the id shown in the window; now the other opener goes on
            # once this call is on its way to take the lock.)
            taken = _going_on_before(go_on, store_id_module.lock_file_taken)
            monkeypatch.setattr(store_id_module, "lock_file_taken", taken)
            shown = db.store_id
        assert shown is None  # (before: the id the other opener then took back)
        assert db[b"k"] == b"v"


def test_store_id_inside_a_locked_block_and_after_close(tmp_path):
    store = str(tmp_path / "s")
    with DB(store) as db:
        given = db.store_id
        with db.locked():
            assert db.store_id == given is not None
    assert db.store_id == given  # (a closed DB reads the file, as before)


ADDER = """
import errno, sys
import kv_backend.store_id as store_id
from kv_backend import DB

def fsync_dir(path):  # (the rename is done, the lock held: say so, wait, then fail)
    if not getattr(fsync_dir, "done", False):
        fsync_dir.done = True
        print("window", flush=True)
        sys.stdin.readline()
    raise OSError(errno.EIO, "Input/output error")

store_id.fsync_dir = fsync_dir
with DB(sys.argv[1]):
    pass
print("done", flush=True)
"""


def test_an_open_beside_another_process_whose_id_is_taken_back_adds_one(tmp_path, monkeypatch):
    store = _old_store(tmp_path / "s")
    adder = spawn_python(ADDER, store, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert adder.stdout is not None and adder.stdin is not None
        assert adder.stdout.readline() == "window\n"
        shown = read_store_id(store)
        assert shown is not None

        def go_on() -> None:
            adder.stdin.write("go\n")
            adder.stdin.flush()

        real = db_module.format_file_text

        def checked(*args, **kwargs):
            try:
                return real(*args, **kwargs)
            finally:
                go_on()

        monkeypatch.setattr(db_module, "format_file_text", checked)
        with DB(store) as db:
            given = db.store_id
        assert adder.stdout.readline() == "done\n" and adder.wait(30) == 0
    finally:
        stop_process(adder)
    assert given is not None and given != shown  # (before: None)
    assert read_store_id(store) == given


@pytest.fixture
def base() -> Iterator[str]:
    """A directory the nobody user can reach, removed with what it holds."""
    yield from reachable_dir("kvb-window-")


def test_a_backup_of_a_reader_whose_lock_keeps_no_writer_out_never_names_a_taken_back_id(base):
    """A read-only open of a store without a LOCK file, in a directory it cannot write, holds a lock that
    keeps no writer out; a writer (who may write the directory) makes LOCK later, and adds the id under it.
    The reader's backup read the format file under its own lock alone: in that writer's window, an id the
    store then took back. It now reads it under the LOCK file's lock where there is one it can open."""
    if not os.path.exists("/proc/locks"):
        pytest.skip("needs /proc/locks (Linux) to see the backup wait")
    store = _old_store(Path(base) / "s")
    for name in (LOCK_FILE, STATE_FILE):
        os.unlink(os.path.join(store, name))
    os.chmod(store, 0o555)
    target = nobody_dir(base, "bk")

    def back_up_as_nobody(orders: int, answers: int) -> None:  # pragma: no cover - child
        # (A backup made before becoming nobody loads every module a backup needs: root's interpreter may
        # be unreadable to nobody.)
        with DB(os.path.join(base, "warm")) as warm:
            warm.backup(os.path.join(base, "warm-bk"))
        become_nobody()
        with DB(store, read_only=True) as db:
            assert not db._lock.excludes_writers
            os.write(answers, b"opened\n")
            os.read(orders, 1)
            db.backup(target, name="b1")
            os.write(answers, b"%s\n" % str(list_backups(target)[0].store_id).encode())

    pid, orders_w, answers_r = fork_talking(back_up_as_nobody)
    adder = None
    try:
        opened = os.read(answers_r, 4000)
        assert opened == b"opened\n", opened.decode()
        adder = spawn_python(ADDER, store, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert adder.stdout is not None and adder.stdin is not None
        assert adder.stdout.readline() == "window\n"  # (it made LOCK, and holds it)
        shown = read_store_id(store)
        assert shown is not None
        os.write(orders_w, b"b")
        inode = os.stat(os.path.join(store, LOCK_FILE)).st_ino
        wait_for(
            lambda: waiting_for_flock(inode) or select.select([answers_r], [], [], 0)[0],
            what="the backup waiting for the lock, or done",
        )
        adder.stdin.write("go\n")
        adder.stdin.flush()
        assert adder.stdout.readline() == "done\n" and adder.wait(30) == 0
        named = os.read(answers_r, 4000).decode().strip()
    finally:
        os.close(orders_w)
        if adder is not None:
            stop_process(adder)
        code = exit_code(pid)
        os.close(answers_r)
    assert code == 0, named
    assert read_store_id(store) is None  # (taken back)
    assert named == "None", (named, shown)  # (before: the id taken back)
