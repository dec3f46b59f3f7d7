"""Read-only opens of a store that has no ``STATE`` page, in a directory they cannot write, and the swap of
``kv_restore --replace``.

Every open holds an in-use lock that the swap checks (``kv_backend.state.kept_unopened``), so that no
store is swapped out and deleted under a process that has it open. The lock was the shared ``flock`` on the
``STATE`` page: a read-only open that found no page, and could not make one, held nothing, and a swap
neither saw it nor waited for it. Such an open now holds the lock on the store directory itself.

The readers run as the ``nobody`` user where the tests run as root (who may write any directory); the
store directories are 0555 besides, so that a reader running as their owner cannot write them either.
"""

from __future__ import annotations

import errno
import os
import random
import select
import signal
import stat
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import (
    become_nobody,
    exit_code,
    fork_talking,
    reachable_dir,
    run_as_nobody,
    wait_for,
    waiting_for_flock,
)
from zygote import Zygote

import kv_backend.dbm
from kv_backend import DB
from kv_backend.errors import StorageError
from kv_backend.files import LOCK_FILE, STATE_FILE, exchange_paths
from kv_backend.snapshot import store_snapshot
from kv_backend.state import SharedState, in_use, kept_unopened

KEYS = 20


@pytest.fixture
def base() -> Iterator[str]:
    """A directory the readers can reach, removed with what it holds."""
    yield from reachable_dir("kvb-readonly-")


def _unwritable_store(path: str, tag: bytes) -> str:
    """A store at ``path`` of :data:`KEYS` keys all of value ``tag``, without a ``STATE`` page (no writer
    opened it since it was made, as after a restore), in a directory nobody but root may write."""
    with DB(path) as db, db.transaction():
        for i in range(KEYS):
            db.put(b"k%02d" % i, tag)
    os.unlink(os.path.join(path, STATE_FILE))
    os.chmod(path, 0o555)
    return path


def _tag(db: DB) -> bytes:
    """The tag of a store :func:`_unwritable_store` made, all of it read: one value, :data:`KEYS` times."""
    values = {db.get(b"k%02d" % i) for i in range(KEYS)}
    assert len(db) == KEYS and len(values) == 1, values
    (tag,) = values
    assert isinstance(tag, bytes)
    return tag


def _hold_in_child(open_store: Callable[[str], Any], path: str) -> tuple[int, int, int]:
    """Fork a child that opens the store at ``path`` with ``open_store`` as an unprivileged user and keeps
    it open until told; return (pid, fd to read its "opened" byte from, fd to tell it to close on)."""

    def hold(close: int, opened: int) -> None:  # pragma: no cover - child
        become_nobody()
        with open_store(path):
            os.write(opened, b"o")
            os.read(close, 1)

    pid, close_w, opened_r = fork_talking(hold)
    return pid, opened_r, close_w


def _open_db(path: str) -> DB:
    return DB(path, read_only=True)


def _open_dbm(path: str) -> kv_backend.dbm.Database:
    return kv_backend.dbm.open(path, "r")


@pytest.mark.parametrize("open_store", [_open_db, _open_dbm, store_snapshot], ids=["db", "dbm", "snapshot"])
def test_a_read_only_open_without_a_page_keeps_the_store_in_use(base, open_store):
    path = _unwritable_store(os.path.join(base, "cache"), b"old")
    pid, opened, close = _hold_in_child(open_store, path)
    try:
        assert os.read(opened, 1) == b"o"
        assert not os.path.exists(os.path.join(path, STATE_FILE))  # (the reader could not make one)
        assert in_use(path)
        with kept_unopened(path) as unused:
            assert not unused  # a swap is refused
    finally:
        os.write(close, b"c")
        assert exit_code(pid) == 0
        os.close(opened)
        os.close(close)
    assert not in_use(path)  # let go at close


def test_an_open_without_a_page_waits_for_the_swap_then_opens_the_store_swapped_in(base):
    if not os.path.exists("/proc/locks"):
        pytest.skip("needs /proc/locks (Linux) to see the open wait")
    path = _unwritable_store(os.path.join(base, "cache"), b"old")
    restored = _unwritable_store(os.path.join(base, "cache.restoring-1"), b"new")

    def open_when_told(go: int, tags: int) -> None:  # pragma: no cover - child
        become_nobody()
        os.read(go, 1)
        with DB(path, read_only=True) as db:
            os.write(tags, _tag(db))

    pid, go_w, tags_r = fork_talking(open_when_told)
    try:
        # (No page added: the open has none, and waits on the directory.)
        with kept_unopened(path, add_page=False) as unused:
            assert unused
            os.write(go_w, b"g")  # (the open starts now, the swap's locks held)
            inode = os.stat(path).st_ino

            def waits_or_is_done() -> bool:
                return waiting_for_flock(inode) or bool(select.select([tags_r], [], [], 0)[0])

            wait_for(waits_or_is_done, what="the open waiting for the swap")
            assert waiting_for_flock(inode), "the open did not wait for the swap"
            if not exchange_paths(restored, path):
                pytest.skip("this file system cannot exchange two directories in one step")
        assert exit_code(pid) == 0
        assert os.read(tags_r, 16) == b"new"  # the store now at the path, not the one swapped out
    finally:
        os.close(go_w)  # (should the test fail before the child was told to start)
        os.close(tags_r)


READER = """
import os, random, sys, time
from kv_backend import DB
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
path, keys = sys.argv[1], int(sys.argv[2])
while True:
    with DB(path, read_only=True) as db:
        values = {db.get(b"k%02d" % i) for i in range(keys)}
        if len(db) != keys or len(values) != 1:
            print("part of a store:", len(db), sorted(values, key=repr), flush=True)
            sys.exit(1)
        # While this one is open, the store at the path is the one it has open: no swap happened.
        with DB(path, read_only=True) as again:
            now = {again.get(b"k%02d" % i) for i in range(keys)}
        if now != values:
            print("swapped under an open store:", values, now, flush=True)
            sys.exit(1)
    print("read", flush=True)
    time.sleep(random.uniform(0, 0.005))  # (moments with no reader, where the swapper gets through)
"""

SWAPPER = """
import os, shutil, sys
from kv_backend import DB
from kv_backend.files import STATE_FILE, exchange_paths
from kv_backend.state import kept_unopened
path, keys = sys.argv[1], int(sys.argv[2])
base, name = os.path.split(path)

def drop(directory):
    for root, dirs, _ in os.walk(directory):
        os.chmod(root, 0o755)
    shutil.rmtree(directory)

for leftover in os.listdir(base):  # (of a swapper killed before it dropped them)
    if leftover.startswith(name + "."):
        drop(os.path.join(base, leftover))
n = 0
while True:
    n += 1
    target = f"{path}.restoring-{os.getpid()}-{n}"
    with DB(target) as db, db.transaction():
        for i in range(keys):
            db.put(b"k%02d" % i, b"%d-%d" % (os.getpid(), n))
    os.unlink(os.path.join(target, STATE_FILE))
    os.chmod(target, 0o555)
    with kept_unopened(path) as unused:
        if unused:
            if not exchange_paths(target, path):
                sys.exit(3)
    drop(target)  # the old store once swapped, else the one not swapped in
    if unused:
        print("swapped", flush=True)
"""


def _count(lines: list[bytes], word: bytes) -> int:
    return sum(line.startswith(word) for line in lines)


def test_readers_and_a_swapper_killed_at_random_points_never_meet_half_a_store(base):
    """Three readers and a swapper, one of them SIGKILLed every 0.025-0.2 s for 3 s (some 30 kills, 4
    to 8 of the swapper), each replaced at once: forked from a zygote that has imported the project,
    a new one is at work within milliseconds, so every kill lands in its work (new interpreters spent
    0.1 s or more importing first, where a kill meets nothing of it: this loop ran 6 s, a kill every
    0.05-0.4 s, for as many kills)."""
    path = _unwritable_store(os.path.join(base, "cache"), b"first")
    rng = random.Random()
    args = (path, str(KEYS))
    out_dir = os.path.join(base, "out")
    os.mkdir(out_dir)
    serial = iter(range(10**6))
    swapper_imports = ("kv_backend", "kv_backend.files", "kv_backend.state", "shutil")
    with Zygote(READER) as reading, Zygote(SWAPPER, preload=swapper_imports) as swapping:
        zygotes = {READER: reading, SWAPPER: swapping}

        def start(code: str) -> Any:
            log = open(os.path.join(out_dir, str(next(serial))), "wb")  # noqa: SIM115 - closed below
            proc = zygotes[code].start(*args, output=log.fileno())
            proc.log = log
            return proc

        readers = [start(READER) for _ in range(3)]
        swapper = start(SWAPPER)
        done: list[Any] = []
        deadline = time.monotonic() + 3
        try:
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.025, 0.2))  # (a random point of their work to kill them at)
                victim = rng.randrange(len(readers) + 1)
                proc = swapper if victim == len(readers) else readers[victim]
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done.append(proc)
                if proc is swapper:
                    swapper = start(SWAPPER)
                else:
                    readers[victim] = start(READER)
        finally:
            for proc in [*readers, swapper]:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                done.append(proc)
    lines = []
    for proc in done:
        proc.log.close()
        with open(proc.log.name, "rb") as f:
            text = f.read()
        if proc.returncode == 3:
            pytest.skip("this file system cannot exchange two directories in one step")
        assert proc.returncode == -signal.SIGKILL, text.decode(errors="replace")
        lines += text.splitlines()
    assert _count(lines, b"read") > 0 and _count(lines, b"swapped") > 0, (
        _count(lines, b"read"),
        _count(lines, b"swapped"),
    )
    with DB(path, read_only=True) as db:
        _tag(db)  # a whole store at the path


def _denied(path: str) -> str:
    """The message of a read-only open of ``path`` (by an unprivileged user): it must fail."""

    def attempt() -> str:
        with pytest.raises(StorageError) as info:
            DB(path, read_only=True)
        return str(info.value)

    return run_as_nobody(attempt) if os.geteuid() == 0 else attempt()


def test_an_unreadable_lock_file_or_directory_is_a_clear_error_and_loses_nothing(base):
    unreadable_lock = _unwritable_store(os.path.join(base, "lock"), b"kept")
    os.chmod(os.path.join(unreadable_lock, LOCK_FILE), 0)
    unreadable_dir = _unwritable_store(os.path.join(base, "dir"), b"kept")
    os.chmod(unreadable_dir, 0o111)
    with_page = os.path.join(base, "page")
    with DB(with_page) as db:
        db.put(b"k00", b"kept")
    os.chmod(with_page, 0o311)
    for path, what in [
        (unreadable_lock, "cannot open lock file"),
        (unreadable_dir, "cannot open the store directory"),  # (no page: it would hold the directory)
        (with_page, "cannot list the files of the store"),
    ]:
        message = _denied(path)
        assert what in message and "needs read permission on its directory and files" in message, message
    for path in (unreadable_lock, unreadable_dir, with_page):
        os.chmod(path, 0o755)
        os.chmod(os.path.join(path, LOCK_FILE), 0o644)
        with DB(path, read_only=True) as db:
            assert db.get(b"k00") == b"kept"  # nothing lost


def test_a_read_only_open_of_a_store_without_lock_file_keeps_it_in_use(base):
    path = _unwritable_store(os.path.join(base, "cache"), b"old")
    os.chmod(path, 0o755)
    os.unlink(os.path.join(path, LOCK_FILE))
    os.chmod(path, 0o555)
    pid, opened, close = _hold_in_child(_open_db, path)
    try:
        assert os.read(opened, 1) == b"o"
        assert not os.path.exists(os.path.join(path, LOCK_FILE))
        assert in_use(path)
    finally:
        os.write(close, b"c")
        assert exit_code(pid) == 0
        os.close(opened)
        os.close(close)
    assert not in_use(path)


def _tag_of_snapshot(path: str) -> bytes:
    """The tag of the store at ``path`` as a backup's snapshot of it copies it: the one value in its files."""
    with store_snapshot(path) as files:
        (data,) = [f for f in files if f.name.endswith(".data")]
        raw = data.read(0, data.length)
    tags = {tag for tag in (b"old", b"new") if tag in raw}
    assert len(tags) == 1, tags
    return tags.pop()


def _tag_of_open(path: str) -> bytes:
    with DB(path, read_only=True) as db:
        return _tag(db)


@pytest.mark.parametrize("read", [_tag_of_open, _tag_of_snapshot], ids=["open", "snapshot"])
def test_a_page_gone_when_mapped_is_a_swap_and_the_store_swapped_in_is_read(base, monkeypatch, read):
    """A read-only open found the store's page, and the store was swapped for one without a page before it
    mapped it: it raised "cannot open .../STATE: No such file or directory" instead of opening again."""
    path = os.path.join(base, "cache")
    with DB(path) as db, db.transaction():  # (a writer's open leaves the page)
        for i in range(KEYS):
            db.put(b"k%02d" % i, b"old")
    restored = _unwritable_store(os.path.join(base, "cache.restoring-1"), b"new")
    mapped, swaps = SharedState.__init__, []

    def swapped_first(page: SharedState, at: str, *, writable: bool, **more: Any) -> None:
        if not swaps:
            swaps.append(exchange_paths(restored, path))
            if not swaps[0]:
                pytest.skip("this file system cannot exchange two directories in one step")
        mapped(page, at, writable=writable, **more)

    monkeypatch.setattr(SharedState, "__init__", swapped_first)
    assert read(path) == b"new"
    assert swaps == [True]


def test_a_read_only_open_of_a_store_whose_page_is_too_short_keeps_it_in_use(base):
    """A page too short to be one (cut by a full disk, say) is read as no page: the open held no lock."""
    path = _unwritable_store(os.path.join(base, "cache"), b"old")
    os.chmod(path, 0o755)
    with open(os.path.join(path, STATE_FILE), "wb"):
        pass
    os.chmod(path, 0o555)
    pid, opened, close = _hold_in_child(_open_db, path)
    try:
        assert os.read(opened, 1) == b"o"
        assert in_use(path)
    finally:
        os.write(close, b"c")
        assert exit_code(pid) == 0
        os.close(opened)
        os.close(close)
    assert not in_use(path)


def test_a_child_forked_with_the_store_open_keeps_it_in_use_after_its_parent_closes_it(base):
    path = _unwritable_store(os.path.join(base, "cache"), b"old")

    # (The child has no end of the test's to write to: closing it tells the grandchild too, should the
    # test fail.)
    def open_then_fork(tell: int, said: int) -> None:  # pragma: no cover - child
        become_nobody()
        db = DB(path, read_only=True)
        grandchild = os.fork()
        if grandchild == 0:
            try:
                os.read(tell, 1)
                assert _tag(db) == b"old"  # (still open here)
                db.close()
                os.write(said, b"b")
            finally:
                os._exit(0)
        db.close()
        os.write(said, b"a")
        assert exit_code(grandchild) == 0

    pid, tell_w, said_r = fork_talking(open_then_fork)
    try:
        assert os.read(said_r, 1) == b"a"  # the parent closed the store; its child has it open
        assert in_use(path)
        os.write(tell_w, b"c")
        assert os.read(said_r, 1) == b"b"
        assert not in_use(path)
    finally:
        os.close(tell_w)
        assert exit_code(pid) == 0
        os.close(said_r)


def test_a_filesystem_without_locks_on_directories_still_opens_and_swaps(base, monkeypatch):
    """Some network and FUSE filesystems refuse ``flock`` on a directory: an open without a page, and the
    check of a swap, go on without that lock there (as before it was taken) rather than fail."""
    import fcntl

    import kv_backend.locking

    real = fcntl.flock

    def no_directory_locks(fd: int, operation: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", no_directory_locks)
    monkeypatch.setattr(kv_backend.locking, "_flock", no_directory_locks)
    path = _unwritable_store(os.path.join(base, "cache"), b"old")

    def open_and_check() -> tuple[bytes, bool]:
        with DB(path, read_only=True) as db:
            return _tag(db), in_use(path)

    assert run_as_nobody(open_and_check) == (b"old", False)


@pytest.mark.parametrize("empty_page_first", [False, True], ids=["page-by-writer", "empty-page-by-a-swap"])
def test_a_read_only_open_without_a_page_follows_a_writer_that_makes_one(base, monkeypatch, empty_page_first):
    """A reader that opened a store no writer had opened, in a directory it may not write, read the store as
    it was then for ever: a writer (a user who may write the directory) that opened it later made the page
    and wrote, and the reader never looked at it. It now looks for the page, and follows it once made
    (also where a swap that found the store in use made it empty first, and a writer filled it later)."""
    import kv_backend.db_common

    monkeypatch.setattr(kv_backend.db_common, "PAGE_LOOK_INTERVAL", 0.01)
    path = _unwritable_store(os.path.join(base, "cache"), b"old")

    def follow(_: int, said: int) -> None:  # pragma: no cover - child
        become_nobody()
        with DB(path, read_only=True) as db:
            assert _tag(db) == b"old"
            os.write(said, b"o")
            wait_for(lambda: db.get(b"k00") == b"new", 30, "the writer's value")
            assert _tag(db) == b"new" and in_use(path)

    pid, orders, said_r = fork_talking(follow)
    os.close(orders)  # (none)
    try:
        assert os.read(said_r, 1) == b"o"
        if empty_page_first:
            with kept_unopened(path) as unused:
                assert not unused  # (and the page is made, empty)
        with DB(path) as db, db.transaction():  # (root, or the owner: may write the directory)
            for i in range(KEYS):
                db.put(b"k%02d" % i, b"new")
    finally:
        assert exit_code(pid) == 0
        os.close(said_r)
