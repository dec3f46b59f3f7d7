"""Real filesystems in trouble, not simulated errors: a small tmpfs mounted for each test
fills up (ENOSPC) or is remounted read-only (EROFS).

Every scenario runs in a child interpreter, so that a process killed by the
kernel (SIGBUS from a store into a mapping the disk has no room for) fails the
test instead of taking pytest down with it. Needs root and permission to
mount a tmpfs (as in CI); elsewhere the simulated disk-full tests in
test_engine_input.py still run.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from helpers import run_python

SIZE = 2 * 1024 * 1024

pytestmark = pytest.mark.xdist_group("mounts")


@pytest.fixture
def small_disk() -> Iterator[str]:
    """A 2 MiB tmpfs, mounted for the test and unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a 2 MiB tmpfs (a real full disk)")
    where = tempfile.mkdtemp(prefix="kvb-full-")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0755", "tmpfs", where],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        os.rmdir(where)
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)
        os.rmdir(where)


def test_a_full_disk_refuses_writes_loses_nothing_and_recovers(small_disk):
    out = run_python(
        """
        import errno, os, sys
        from kv_backend import DB
        from kv_backend.errors import StorageError

        base = sys.argv[1]
        path = os.path.join(base, "store")
        reserve = os.path.join(base, "reserve")  # room to give back once the disk is full
        with open(reserve, "wb") as f:
            f.write(b"r" * 1024 * 1024)  # half the disk: enough for the merge at the end

        def fill(db, acked, start):
            i = start
            while True:
                key, value = b"k%06d" % i, os.urandom(500)
                try:
                    db.put(key, value)
                except StorageError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    assert "disk is full" in str(exc), exc
                    return i
                acked[key] = value
                i += 1

        acked = {}
        db = DB(path, max_file_size=64 * 1024)  # many rotations on the way
        n = fill(db, acked, 0)
        assert n > 800, n
        assert all(db.get(k) == v for k, v in acked.items())
        try:
            db.merge(wait=True)
        except StorageError as exc:
            assert exc.errno == errno.ENOSPC, exc
        assert all(db.get(k) == v for k, v in acked.items())
        db.close()

        # Still full: the store opens (read-write and read-only) and reads everything.
        for read_only in (False, True):
            with DB(path, read_only=read_only) as db:
                assert len(db) == len(acked)
                assert all(db.get(k) == v for k, v in acked.items())

        # Room again: writes and a merge go through, and nothing was lost.
        os.remove(reserve)
        with DB(path, max_file_size=64 * 1024) as db:
            for i in range(n, n + 100):
                db.put(b"k%06d" % i, b"after")
                acked[b"k%06d" % i] = b"after"
            for k in list(acked)[: len(acked) // 2]:
                db.delete(k)
                del acked[k]
            db.merge(wait=True)
        with DB(path) as db:
            assert dict(db.items()) == acked
        print("ok", n)
        """,
        small_disk,
    )
    assert out.stdout.startswith("ok")


def test_creating_a_store_on_a_full_disk_fails_cleanly_then_works(small_disk):
    """Whatever step of creating a store the disk fills at, the caller gets an ENOSPC
    StorageError (never a crash), and the same path works once there is room."""
    out = run_python(
        """
        import errno, os, sys
        from kv_backend import DB
        from kv_backend.errors import StorageError

        base = sys.argv[1]
        filler = os.path.join(base, "filler")
        outcomes = []
        for free_pages in range(8):
            fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            try:
                while True:
                    os.write(fd, b"x" * 4096)
            except OSError:
                pass
            os.ftruncate(fd, os.fstat(fd).st_size - 4096 * free_pages)
            os.close(fd)
            path = os.path.join(base, f"store{free_pages}")
            try:
                with DB(path) as db:
                    db.put(b"k", b"v")
                outcomes.append("created")
            except StorageError as exc:
                assert exc.errno == errno.ENOSPC, exc
                outcomes.append("refused")
            os.remove(filler)
            with DB(path) as db:
                db.put(b"k2", b"v2")
                assert db.get(b"k2") == b"v2"
        assert outcomes[0] == "refused" and outcomes[-1] == "created", outcomes
        print("ok", outcomes)
        """,
        small_disk,
    )
    assert out.stdout.startswith("ok")


def test_a_store_on_a_read_only_mount_opens_read_only(small_disk):
    """A volume mounted read-only (a container's ``:ro`` volume, a restored backup):
    read-only opens read everything, and a read-write open says what to do."""
    run_python(
        """
        import sys
        from kv_backend import DB, Store
        base = sys.argv[1]
        with DB(base + "/db") as db:
            for i in range(100):
                db.put(b"k%d" % i, b"v%d" % i)
        with Store(base + "/store") as s:
            s["a"] = {"x": 1}
        """,
        small_disk,
    )
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    out = run_python(
        """
        import errno, sys
        import kv_backend.dbm as kdbm
        import kv_backend.shelve as kshelve
        from kv_backend import DB, Store
        from kv_backend.errors import StorageError
        base = sys.argv[1]
        with DB(base + "/db", read_only=True) as db:
            assert dict(db.items()) == {b"k%d" % i: b"v%d" % i for i in range(100)}
        with Store(base + "/store", read_only=True) as s:
            assert s["a"] == {"x": 1}
        with kdbm.open(base + "/db", "r") as d:
            assert d[b"k5"] == b"v5"
        with kshelve.open(base + "/store", "r") as sh:
            assert sh["a"] == {"x": 1}
        for attempt in (lambda: DB(base + "/db"), lambda: DB(base + "/new")):
            try:
                attempt()
            except StorageError as exc:
                assert exc.errno == errno.EROFS, exc
                assert "read-only: open the store with read_only=True" in str(exc), exc
            else:
                raise AssertionError("opened read-write on a read-only mount")
        try:
            kdbm.open(base + "/db", "w")
        except kdbm.error as exc:
            assert exc.errno == errno.EROFS
        print("ok")
        """,
        small_disk,
    )
    assert out.stdout.startswith("ok")
