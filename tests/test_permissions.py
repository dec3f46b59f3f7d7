"""Real permission errors, not simulated ones: processes that may read a store but not write it.

As root (as in CI), each scenario runs in a forked child that drops to the
``nobody`` user, so the files the test (root) created are readable but not
writable for it. As any other user, the store is made read-only with chmod
(which binds its owner too) before the child runs.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers import NOBODY, exit_code, fork_child, run_as_nobody

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import DB, Store

AS_ROOT = os.geteuid() == 0

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@pytest.fixture
def shared_dir() -> Iterator[str]:
    """A directory the ``nobody`` user can enter (pytest's tmp_path is private to its owner)."""
    path = tempfile.mkdtemp(prefix="kvb-perm-")
    os.chmod(path, 0o755)
    yield path
    _set_tree_mode(path, 0o755, 0o644)
    shutil.rmtree(path, ignore_errors=True)


def _set_tree_mode(path: str, dir_mode: int, file_mode: int) -> None:
    for root, _dirs, files in os.walk(path):
        os.chmod(root, dir_mode)
        for name in files:
            os.chmod(os.path.join(root, name), file_mode)


def as_reader(base: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` in a forked child that cannot write under ``base``; return what it returned.

    Raises AssertionError with the child's traceback if ``fn`` raised.
    """
    if not AS_ROOT:
        _set_tree_mode(base, 0o555, 0o444)
    try:
        return run_as_nobody(fn)
    finally:
        if not AS_ROOT:
            _set_tree_mode(base, 0o755, 0o644)


def _outcome(fn: Callable[[], Any]) -> tuple[str, ...]:
    """``("ok", repr(result))`` or the exception's class names, errno and text (picklable)."""
    try:
        return ("ok", repr(fn()))
    except Exception as exc:
        return ("raised", type(exc).__name__, str(getattr(exc, "errno", None)), str(exc))


def test_reader_reads_everything_and_writers_get_clear_errors(shared_dir):
    paths = {name: os.path.join(shared_dir, name) for name in ("db", "store", "dbm", "shelf")}
    data = {f"k{i}": i for i in range(200)}
    with DB(paths["db"]) as db:
        for k, v in data.items():
            db.put(k.encode(), str(v).encode())
    with Store(paths["store"]) as s:
        s.update(data)
    with kdbm.open(paths["dbm"], "c") as d:
        for k, v in data.items():
            d[k] = str(v)
    with kshelve.open(paths["shelf"]) as sh:
        sh.update(data)

    def reader() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with DB(paths["db"], read_only=True) as db:
            seen["db"] = {k.decode(): int(v) for k, v in db.items()}
        with Store(paths["store"], read_only=True) as s:
            seen["store"] = dict(s.items())
        with kdbm.open(paths["dbm"], "r") as d:
            seen["dbm"] = {k.decode(): int(d[k]) for k in d.keys()}  # noqa: SIM118 - dbm's own keys()
        with kshelve.open(paths["shelf"], "r") as sh:
            seen["shelf"] = dict(sh.items())
        seen["db rw"] = _outcome(lambda: DB(paths["db"]))
        seen["store rw"] = _outcome(lambda: Store(paths["store"]))
        seen["new store"] = _outcome(lambda: DB(os.path.join(shared_dir, "new")))
        seen["dbm w"] = _outcome(lambda: kdbm.open(paths["dbm"], "w"))
        seen["dbm c"] = _outcome(lambda: kdbm.open(os.path.join(shared_dir, "newdbm"), "c"))
        seen["shelf w"] = _outcome(lambda: kshelve.open(paths["shelf"], "w"))
        try:
            kdbm.open(paths["dbm"], "w")
        except kdbm.error:
            seen["dbm error caught"] = True
        return seen

    seen = as_reader(shared_dir, reader)
    for name in ("db", "store", "dbm", "shelf"):
        assert seen[name] == data, name
    for name in ("db rw", "store rw", "new store"):
        status, kind, code, text = seen[name]
        assert (status, kind, code) == ("raised", "StorageError", str(errno.EACCES)), name
        assert "permission" in text.lower() and "read_only=True" in text, name
    for name in ("dbm w", "dbm c", "shelf w"):
        status, kind, code, _ = seen[name]
        assert (status, kind, code) == ("raised", "PermissionDeniedError", str(errno.EACCES)), name
    assert seen["dbm error caught"]
    # Nothing was lost or changed, and the owner still writes.
    with DB(paths["db"]) as db:
        assert len(db) == len(data)
        db.put(b"after", b"1")
    with Store(paths["store"]) as s:
        assert dict(s.items()) == data
    assert not os.path.exists(os.path.join(shared_dir, "new"))


@pytest.mark.skipif(not AS_ROOT, reason="needs root: the writer and the reader must be different users")
def test_reader_without_write_access_follows_another_users_writes(shared_dir):
    """A read-only process maps the shared state page read-only; it still sees every new write."""
    path = os.path.join(shared_dir, "live")
    with DB(path) as writer:
        writer.put(b"first", b"1")
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()

        def reader() -> list[bytes | None]:
            with DB(path, read_only=True) as db:
                before = db.get(b"second")
                os.write(ready_w, b"x")
                os.read(go_r, 1)  # the writer has written "second" and expired "first"
                deadline = time.monotonic() + 10
                while db.get(b"second") is None and time.monotonic() < deadline:
                    time.sleep(0.01)
                return [before, db.get(b"first"), db.get(b"second"), db.get(b"gone")]

        result: list[Any] = []
        t = threading.Thread(target=lambda: result.append(as_reader(shared_dir, reader)))
        t.start()
        os.read(ready_r, 1)
        writer.put(b"second", b"2")
        writer.put(b"gone", b"x")
        writer.delete(b"gone")
        writer.put(b"first", b"1b")
        os.write(go_w, b"x")
        t.join(30)
        for fd in (go_r, go_w, ready_r, ready_w):
            os.close(fd)
    assert result == [[None, b"1b", b"2", None]]


SHARED_GID = 65530  # a group only these tests use; the kernel needs no /etc/group entry


def _as_user(uid: int, umask: int, fn: Callable[[], Any]) -> int:
    """Fork a child running ``fn()`` as ``uid`` in group SHARED_GID with ``umask``; return its pid."""

    def run() -> None:
        os.setgroups([SHARED_GID])
        os.setgid(SHARED_GID)
        os.setuid(uid)
        os.umask(umask)
        fn()

    return fork_child(run)


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run processes as two other users")
def test_two_users_in_one_group_share_a_store(shared_dir):
    """Web workers and task workers often run as different users of one group (umask 002,
    setgid directory): every file either of them creates, rotates or merges into stays
    writable for the other."""
    base = os.path.join(shared_dir, "group")
    os.mkdir(base)
    os.chown(base, 0, SHARED_GID)
    os.chmod(base, 0o2775)
    path = os.path.join(base, "store")
    users = (NOBODY, NOBODY - 1)

    def writer(me: int) -> Callable[[], None]:
        def run() -> None:
            with DB(path, max_file_size=4096) as db:  # rotates every few dozen records
                for i in range(300):
                    db.put(f"u{me}-{i}".encode(), b"v" * 64)
                    db.incr(b"both")
                    if i % 100 == 99:
                        db.merge(wait=True)  # merged files replace the other user's files

        return run

    pids = [_as_user(uid, 0o002, writer(uid)) for uid in users]
    assert [exit_code(pid) for pid in pids] == [0, 0]
    with DB(path, read_only=True) as db:
        assert int(db[b"both"]) == 600
        assert len(db) == 601
        assert all(db[f"u{u}-{i}".encode()] == b"v" * 64 for u in users for i in range(300))
    for name in os.listdir(path):
        st = os.stat(os.path.join(path, name))
        assert st.st_gid == SHARED_GID and st.st_mode & 0o060 == 0o060, (name, oct(st.st_mode))


@pytest.mark.skipif(not AS_ROOT, reason="needs root to run processes as two other users")
def test_a_user_outside_the_group_gets_a_clear_error(shared_dir):
    """With the default umask (022) the files are the creator's alone: another user can
    read but not write, and is told so."""
    path = os.path.join(shared_dir, "private")
    os.chmod(shared_dir, 0o777)
    pid = _as_user(NOBODY, 0o022, lambda: DB(path).put(b"k", b"v"))
    assert exit_code(pid) == 0

    def other() -> None:
        with DB(path, read_only=True) as db:
            assert db[b"k"] == b"v"
        try:
            DB(path)
        except OSError as exc:
            assert exc.errno == errno.EACCES and "read_only=True" in str(exc)
        else:
            raise AssertionError("a user without write permission opened the store read-write")

    pid = _as_user(NOBODY - 1, 0o022, other)
    assert exit_code(pid) == 0
