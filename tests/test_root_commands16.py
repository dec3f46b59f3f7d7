"""kvb commands run as root (sudo, a root crontab) on a store another user owns.

Root may write every file, so they ran, and left the files they made root's: a merge's data and hint
files and MERGE.lock, the next active data file of a put, the LOCK and STATE files that a read-only
command (kvb get, keys, stats, backup; kvb check makes none) makes for a store that has none. The
owner's processes then failed to open or write the store (permission denied). The engine now gives
each file root makes in a store the owner and group of the store's format file; a new store root
makes in a directory another user prepared is that user's."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator

import pytest
from helpers import NOBODY, file_owners, nobody_dir, nobody_store, nobody_writes_and_merges, run_as_nobody

# (Imported here: the nobody user may not be able to read the Python install to import them later.)
import kv_backend.backup
import kv_backend.check
import kv_backend.merge
import kv_backend.progress
import kv_backend.salvage  # noqa: F401
from kv_backend import DB
from kv_backend.cli import main
from kv_backend.files import LOCK_FILE, STATE_FILE

pytestmark = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(os, "fork"),
    reason="runs kvb as root on a store of the nobody user",
)


@pytest.fixture
def base() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="kvb-root-commands-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _kvb(*argv: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(list(argv))


def test_merge_as_root_leaves_the_owners_files(base):
    path = nobody_store(base)
    assert _kvb("merge", path) == 0
    assert any(n.endswith(".hint") for n in os.listdir(path))  # the merge ran
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert nobody_writes_and_merges(path, b"k29") == b"v299"


def test_put_and_delete_as_root_through_a_rotation_leave_the_owners_files(base):
    path = nobody_store(base)
    assert _kvb("put", path, "k0", "root") == 0
    assert _kvb("delete", path, "k1") == 0
    with DB(path, max_file_size=4096) as db:  # what a root service writing many keys does
        for i in range(100):
            db.put(b"r%d" % i, b"y" * 100)
    assert len([n for n in os.listdir(path) if n.endswith(".data")]) > 3
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert nobody_writes_and_merges(path, b"k0") == b"root"


@pytest.mark.parametrize("command", ["get", "keys", "stats", "check", "backup"])
def test_read_only_command_as_root_on_a_store_without_lock_and_state(base, command):
    path = nobody_store(base)
    os.unlink(os.path.join(path, LOCK_FILE))  # a store copied by hand
    os.unlink(os.path.join(path, STATE_FILE))
    argv = {
        "get": ["get", path, "k3"],
        "keys": ["keys", path],
        "stats": ["stats", path],
        "check": ["check", path],
        "backup": ["backup", path, os.path.join(base, "backups")],
    }[command]
    assert _kvb(*argv) == 0
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert nobody_writes_and_merges(path, b"k3") == b"v273"


def test_a_new_store_root_makes_in_a_directory_the_owner_prepared_is_the_owners(base):
    path = nobody_dir(base)
    assert _kvb("put", path, "a", "1") == 0
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert nobody_writes_and_merges(path, b"a") == b"1"


def test_a_store_of_root_and_a_file_of_another_user_are_left_alone(base):
    """A root store stays root's; a file a group's other user made stays theirs (only root's are given)."""
    path = os.path.join(base, "kv")
    assert _kvb("put", path, "a", "1") == 0
    assert set(file_owners(path).values()) == {(0, 0)}
    lock = os.path.join(path, LOCK_FILE)
    os.chown(lock, NOBODY, NOBODY)
    os.chmod(lock, 0o666)
    assert _kvb("merge", path) == 0
    assert file_owners(path).pop(LOCK_FILE) == (NOBODY, NOBODY)
    assert set(file_owners(path).values()) - {(NOBODY, NOBODY)} == {(0, 0)}
    assert stat.S_IMODE(os.stat(lock).st_mode) == 0o666


def test_in_a_setgid_directory_roots_files_keep_the_directorys_group(base):
    """A store whose group was set after it was made (chgrp, chmod g+s): the files root adds are the
    owner's, in the directory's group as every writer's new files, not the format file's old group."""
    path = nobody_store(base)
    group = 4242  # (any group id: root may give files to one without a name)
    os.chown(path, NOBODY, group)
    os.chmod(path, 0o2770)
    with DB(path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"r%d" % i, b"y" * 100)
    new = [n for n, owner in file_owners(path).items() if owner != (NOBODY, NOBODY)]
    assert len(new) > 3
    assert {file_owners(path)[n] for n in new} == {(NOBODY, group)}


def test_roots_files_in_a_store_shared_by_a_group_are_group_writable_whatever_roots_umask(base):
    """Root's cron runs under umask 022: the files it gave a 2770 store of 0660 files were 0640, and
    the group's other users could not write the next active data file."""
    path = nobody_dir(base)
    os.chown(path, NOBODY, 4242)
    os.chmod(path, 0o2770)

    def make() -> None:
        os.umask(0o007)
        with DB(path) as db:
            db.put(b"a", b"1")

    run_as_nobody(make)
    old = os.umask(0o022)
    try:
        assert _kvb("merge", path) == 0
        with DB(path, max_file_size=4096) as db:
            for i in range(100):
                db.put(b"r%d" % i, b"y" * 100)
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(os.stat(os.path.join(path, n)).st_mode) for n in os.listdir(path)}
    assert modes == {0o660}
    assert set(file_owners(path).values()) == {(NOBODY, 4242)}


def test_a_lock_file_root_makes_is_never_roots_to_the_owners_processes(base):
    """Made by name and given away afterwards, a LOCK file a root reader made was root's (0644) for
    some microseconds, and a process of the owner opening the store then failed (permission denied):
    in 0.5 s of root's read-only opens, about 3000 of a worker's opens did. Now it is made given."""
    path = nobody_store(base)
    lock = os.path.join(path, LOCK_FILE)
    r, w = os.pipe()

    def worker() -> int:
        os.close(w)
        denied = 0
        while True:
            try:
                os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o666))
            except PermissionError:
                denied += 1
            except FileNotFoundError:  # (made meanwhile by root, then unlinked: no matter)
                pass
            try:
                if not os.read(r, 1):  # the test closed its end: done
                    return denied
            except BlockingIOError:  # (still open)
                pass

    os.set_blocking(r, False)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 101  # (an exception in the child)
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code = min(worker(), 100)
        finally:
            os._exit(code)
    os.close(r)
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock)
            with DB(path, read_only=True) as db:
                assert db.get(b"k3") == b"v273"
    finally:
        os.close(w)
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # (the number of opens refused, up to 100)


def test_a_root_lock_file_left_by_an_earlier_run_is_given_back_at_roots_next_open(base):
    path = nobody_store(base)
    lock = os.path.join(path, LOCK_FILE)
    os.chown(lock, 0, 0)  # what a root command left before files were given away
    os.chmod(lock, 0o644)
    assert _kvb("get", path, "k3") == 0
    assert set(file_owners(path).values()) == {(NOBODY, NOBODY)}
    assert nobody_writes_and_merges(path, b"k3") == b"v273"
