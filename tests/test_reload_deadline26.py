"""A write under a ``waiting_until`` deadline (``kvb http``'s ``--lock-timeout``) that first catches up with
another process's merge reloads the store's files, taking the write lock twice: to list and open the files,
then, after replaying them outside the lock, to install the new view. The second take waited without a
deadline: where another process took the lock in between (a long ``locked()`` block, a transaction), the
write waited as long as that process held it instead of giving up at its deadline, nothing written.

The other process here is a real one, which merges the store and then, when told, takes its lock and holds
it; the write is made in this process, told to it at the moment its reload has let the lock go after the
first take (a call the reload makes between the two takes, wrapped).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import spawn_python, stop_process
from starlette.testclient import TestClient

from kv_backend import db_open
from kv_backend.check import check
from kv_backend.db import DB
from kv_backend.errors import LockTimeoutError
from kv_backend.files import data_name, list_data_files
from kv_backend.http import create_app
from kv_backend.locking import NO_WAIT, waiting_until

#: The deadline of the write tested, in seconds from its start.
LIMIT = 0.3
#: How long after its deadline the write may still return (a busy machine's scheduling).
MARGIN = 1.5
#: How long the other process holds the lock at most (the write tested must give up far sooner).
HOLD = 20.0
KEYS = 200

#: The other process: overwrites every key and merges (the file set changes), says "merged"; then, at a
#: line on its stdin, takes the write lock, says "held" and holds it until its stdin closes or HOLD passes.
OTHER = """
import select, sys
from kv_backend.db import DB

path, keys, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with DB(path, max_file_size=4096) as db:
    for i in range(keys):
        db.put(b"k%d" % i, b"merged-%d" % i)
    db.merge(wait=True)
    print("merged", flush=True)
    if sys.stdin.readline().strip() == "hold":
        with db.locked():
            print("held", flush=True)
            select.select([sys.stdin], [], [], hold)
"""


def _store(tmp_path) -> str:
    path = str(tmp_path / "store")
    with DB(path, max_file_size=4096) as db:
        for i in range(KEYS):
            db.put(b"k%d" % i, b"old-%d" % i)
    return path


@contextlib.contextmanager
def _other(path: str, monkeypatch) -> Iterator[list[float]]:
    """The other process, once it has merged the store, set to take the lock between this process's
    reload's two takes (:func:`_held_between_the_takes`, whose list of times it was told the block gets).
    At the block's end its stdin is closed (it lets the lock go, and exits), and it is waited for: it must
    have exited 0 (where the block raised nothing)."""
    proc = spawn_python(
        OTHER, path, str(KEYS), str(HOLD), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "merged"
        yield _held_between_the_takes(monkeypatch, proc)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(HOLD + 10)
        stop_process(proc)
    assert proc.returncode == 0


def _held_between_the_takes(monkeypatch, proc: subprocess.Popen) -> list[float]:
    """Make the other process take the lock as soon as this process's reload has let it go after its first
    take (at its call of ``tail_files``, made outside the lock); the times it was told (one at most)."""
    told: list[float] = []
    real = db_open.tail_files

    def tail_files(*args, **kwargs):
        if not told:
            told.append(time.monotonic())
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("hold\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "held"
        return real(*args, **kwargs)

    monkeypatch.setattr(db_open, "tail_files", tail_files)
    return told


def _whole(path: str) -> None:
    """The store holds every key's value of the merge, and no damage, the write tested absent."""
    assert not check(path).problems
    with DB(path) as db:
        assert db.get(b"new") is None
        assert all(db.get(b"k%d" % i) == b"merged-%d" % i for i in range(KEYS))


@pytest.mark.parametrize("call", ["put", "delete", "get_then_put"])
def test_a_write_reloading_after_a_merge_gives_up_at_its_deadline_if_the_lock_is_taken_meanwhile(
    tmp_path, monkeypatch, call
):
    path = _store(tmp_path)
    with DB(path, max_file_size=4096) as db:
        assert db.get(b"k0") == b"old-0"
        with _other(path, monkeypatch) as told:
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match="nothing was written"), waiting_until(started + LIMIT):
                if call == "put":
                    db.put(b"new", b"v")
                elif call == "delete":
                    db.delete(b"new")
                else:
                    db.get(b"k1")  # (a read under the block reloads first: bounded too)
                    db.put(b"new", b"v")
            took = time.monotonic() - started
            assert told, "the write did not reload the merged store"
            assert took < LIMIT + MARGIN, f"the write gave up {took:.2f} s after it began"
        monkeypatch.undo()
        # Nothing was written, and this handle serves the merged store once the lock is free.
        assert db.get(b"new") is None
        assert db.get(b"k5") == b"merged-5"
        db.put(b"new", b"v")
        assert db.get(b"new") == b"v"
        db.delete(b"new")
    _whole(path)


def test_kvb_http_answers_lock_timeout_to_a_put_whose_reload_finds_the_lock_taken(tmp_path, monkeypatch):
    path = _store(tmp_path)
    with DB(path, max_file_size=4096) as db, TestClient(create_app(db, lock_timeout=LIMIT)) as client:
        assert client.get("/v1/keys/k0").content == b"old-0"
        with _other(path, monkeypatch) as told:
            started = time.monotonic()
            reply = client.put("/v1/keys/new", content=b"v")
            took = time.monotonic() - started
            assert told, "the write did not reload the merged store"
            assert reply.status_code == 503, reply.text
            assert reply.json()["error"] == "lock_timeout"
            assert took < LIMIT + MARGIN, f"answered {took:.2f} s after the request"
        monkeypatch.undo()
        assert client.get("/v1/keys/new").status_code == 404  # nothing was written
        assert client.get("/v1/keys/k0").content == b"merged-0"
    _whole(path)


def test_a_call_that_may_not_wait_never_reloads_a_merged_store(tmp_path, monkeypatch):
    """``waiting_until(NO_WAIT)`` (kvb http's event loop): a call that would first reload gives up at once,
    before any take of the lock, and the reload is left to a call that may wait."""
    path = _store(tmp_path)
    with DB(path, max_file_size=4096) as db:
        assert db.get(b"k0") == b"old-0"
        with _other(path, monkeypatch) as told:
            started = time.monotonic()
            for fn in (lambda: db.put(b"new", b"v"), lambda: db.get(b"k0")):
                with pytest.raises(LockTimeoutError), waiting_until(NO_WAIT):
                    fn()
            assert time.monotonic() - started < MARGIN
            assert not told  # (no reload began)
        monkeypatch.undo()
        assert db.get(b"k0") == b"merged-0"
    _whole(path)


def _held_by_this_process(paths: set[str]) -> set[str]:
    """Those of ``paths`` this process holds a descriptor or a mapping of (Linux: ``/proc/self``)."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            held.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    with open("/proc/self/maps") as f:
        held.update(line.split(None, 5)[5].strip() for line in f if len(line.split(None, 5)) == 6)
    return held & paths


def test_a_reload_given_up_at_its_install_closes_the_files_it_opened(tmp_path, monkeypatch):
    """The files the given-up reload opened and mapped (the merged ones) are closed when it gives up, not
    when its error's traceback goes (a caller, a test runner, a log handler, may keep it long)."""
    if not os.path.exists("/proc/self/maps"):
        pytest.skip("needs /proc (Linux) to see what the process holds")
    path = _store(tmp_path)
    with DB(path, max_file_size=4096) as db:
        assert db.get(b"k0") == b"old-0"
        with _other(path, monkeypatch):
            merged = {os.path.join(path, data_name(fid)) for fid in list_data_files(path)}
            assert not _held_by_this_process(merged)  # (the view is still the files before the merge)
            with pytest.raises(LockTimeoutError) as kept, waiting_until(time.monotonic() + LIMIT):
                db.put(b"new", b"v")
            assert kept.value.__traceback__ is not None  # (kept, and the frames it holds)
            assert not _held_by_this_process(merged)  # (before: the merged files, still open and mapped)
        monkeypatch.undo()
        assert db.get(b"k0") == b"merged-0"
    _whole(path)
