"""close() against the writes of other threads of the same process (#2).

close() in one thread while others wrote closed the files, the state page and the lock under
them: the writes died with bare AttributeErrors ('SharedState' object has no attribute 'tail' /
'last_sync'), AssertionErrors, or OSError EBADF from the lock. Now close() waits for what other
threads do under the write lock (a write, a rotation, a locked() or transaction() block, a
discard), which completes; a thread that takes the lock after close() did gets
DatabaseClosedError. Each write path is paused at a chosen point while close() comes.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable

import pytest
from helpers import thread_reporting

import kv_backend.db_write as db_write
import kv_backend.files as files
from kv_backend import DB
from kv_backend.check import check
from kv_backend.errors import DatabaseClosedError, KVError


class _Gate:
    """Pauses one thread, once, where a stand-in calls :meth:`pause`, until the test lets it go."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.paused = threading.Event()
        self.resume = threading.Event()

    def pause(self) -> None:
        if threading.current_thread() is self.thread and not self.paused.is_set():
            self.paused.set()
            self.resume.wait(5)


def _pause_in_pwrite(db: DB, gate: _Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer pauses before it appends its record (write lock held)."""
    real = db_write._pwrite

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        gate.pause()
        return real(fd, data, offset)

    monkeypatch.setattr(db_write, "_pwrite", pwrite)


def _pause_in_rotation(db: DB, gate: _Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer pauses in a rotation, the next file made, the active one not yet closed."""
    real = db._new_data_file

    def new_data_file(fid: object) -> object:
        f = real(fid)  # type: ignore[arg-type]
        gate.pause()
        return f

    monkeypatch.setattr(db, "_new_data_file", new_data_file)


def _pause_in_discard(db: DB, gate: _Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer pauses as its transaction is discarded, before the view is rebuilt."""
    real = db._zero_unpublished

    def zero_unpublished() -> None:
        real()
        gate.pause()

    monkeypatch.setattr(db, "_zero_unpublished", zero_unpublished)


def _in_block(kind: str, body: Callable[[DB], None]) -> Callable[[DB, _Gate], None]:
    """A locked() or transaction() block that writes, then pauses inside the block."""

    def run(db: DB, gate: _Gate) -> None:
        with db.locked() if kind == "locked" else db.transaction():
            body(db)
            gate.pause()

    return run


def _batch(db: DB, gate: _Gate) -> None:
    with db.batch() as b:
        b.put(b"k", b"new")
        b.delete(b"gone")


def _discarded(db: DB, gate: _Gate) -> None:
    with pytest.raises(RuntimeError), db.transaction():
        db.put(b"k", b"discarded")
        raise RuntimeError("discard it")


def _no_pause(db: DB, gate: _Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pause is in the operation itself (inside its block)."""


def _txn_body(db: DB) -> None:
    db.put(b"k", b"new")
    db.delete(b"gone")


# name: (pause installer, operation, value of b"k" afterwards, whether b"gone" is still there)
_PATHS: dict[str, tuple[Callable[..., None], Callable[[DB, _Gate], None], bytes | None, bool]] = {
    "put": (_pause_in_pwrite, lambda db, g: db.put(b"k", b"new"), b"new", True),
    "put with ttl": (_pause_in_pwrite, lambda db, g: db.put(b"k", b"new", ttl=60), b"new", True),
    "delete": (_pause_in_pwrite, lambda db, g: db.delete(b"k"), None, True),
    "incr": (_pause_in_pwrite, lambda db, g: db.incr(b"k"), b"8", True),
    "update": (_pause_in_pwrite, lambda db, g: db.update(b"k", lambda v: b"new"), b"new", True),
    "pop": (_pause_in_pwrite, lambda db, g: db.pop(b"gone"), b"7", False),
    "batch": (_pause_in_pwrite, _batch, b"new", False),
    "rotation": (_pause_in_rotation, lambda db, g: db.put(b"k", b"new" * 3000), b"new" * 3000, True),
    "locked block": (_no_pause, _in_block("locked", _txn_body), b"new", False),
    "transaction commit": (_no_pause, _in_block("transaction", _txn_body), b"new", False),
    "transaction before it writes": (_no_pause, _in_block("transaction", lambda db: None), b"7", True),
    "transaction discard": (_pause_in_discard, _discarded, b"7", True),
}


@pytest.mark.parametrize("path", list(_PATHS))
def test_close_waits_for_a_write_of_another_thread_and_later_writers_get_database_closed_error(
    store_path, monkeypatch, path
):
    install, op, k_after, gone_after = _PATHS[path]
    db = DB(store_path, max_file_size=8192)
    db.put(b"k", b"7")
    db.put(b"gone", b"x")
    gate = _Gate()
    install(db, gate, monkeypatch)
    got: dict[str, object] = {}

    def run(name: str, fn: Callable[[], object]) -> None:
        try:
            fn()
            got[name] = "done"
        except Exception as exc:  # reported to the test
            got[name] = exc

    writer = threading.Thread(target=run, args=("writer", lambda: op(db, gate)), daemon=True)
    gate.thread = writer
    writer.start()
    assert gate.paused.wait(5)
    # close() pauses once it holds the lock, so that a writer can be seen waiting for it.
    holding, go = threading.Event(), threading.Event()
    real_close_held = db._close_held

    def close_held() -> None:
        holding.set()
        go.wait(5)
        real_close_held()

    monkeypatch.setattr(db, "_close_held", close_held)
    closing = threading.Thread(target=run, args=("close", db.close), daemon=True)
    closing.start()
    closing.join(0.05)
    assert closing.is_alive() and not holding.is_set()  # it waits for the paused write
    gate.resume.set()
    writer.join(5)
    assert got.get("writer") == "done", got
    assert holding.wait(5)
    late = threading.Thread(target=run, args=("late", lambda: db.put(b"late", b"1")), daemon=True)
    late.start()
    late.join(0.05)
    assert late.is_alive()  # waiting for the lock close() holds
    go.set()
    closing.join(5)
    late.join(5)
    assert got.get("close") == "done", got
    assert isinstance(got.get("late"), DatabaseClosedError), got
    assert db.closed
    monkeypatch.undo()
    with DB(store_path) as again:
        assert again.get(b"k") == k_after
        assert (b"gone" in again) is gone_after
        assert b"late" not in again
    assert check(store_path).ok


def test_a_write_that_waits_for_the_lock_while_this_thread_closes_in_its_block_gets_database_closed_error(
    store_path,
):
    """close() inside this thread's own locked() block (allowed) while another thread waited for the
    lock: that thread then wrote into the closed store (a bare AttributeError or EBADF); it now gets
    DatabaseClosedError."""
    db = DB(store_path)
    got: list[object] = []

    def write() -> None:
        try:
            db.put(b"k", b"v")
            got.append("written")
        except Exception as exc:  # reported to the test
            got.append(exc)

    with db.locked():
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(0.05)
        assert writer.is_alive()
        db.close()
    writer.join(5)
    assert len(got) == 1 and isinstance(got[0], DatabaseClosedError), got
    with DB(store_path) as again:
        assert b"k" not in again
    assert check(store_path).ok


def test_two_threads_closing_at_once_both_return(store_path):
    db = DB(store_path)
    db.put(b"k", b"v")
    errors: list[BaseException] = []

    def close() -> None:
        try:
            db.close()
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    with db.locked():  # both wait for it
        threads = [threading.Thread(target=close, daemon=True) for _ in range(2)]
        for t in threads:
            t.start()
        threads[0].join(0.02)
        assert not db.closed
    for t in threads:
        t.join(5)
    assert not errors and db.closed
    with DB(store_path) as again:
        assert again[b"k"] == b"v"


def _pause_in_fsync(gate: _Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chosen thread pauses in its fsync of the active file, the write lock released."""
    real = db_write.fsync_file

    def fsync_file(fd: int) -> None:
        gate.pause()
        real(fd)

    monkeypatch.setattr(db_write, "fsync_file", fsync_file)


@pytest.mark.parametrize(
    ("write", "k_after"),
    [
        (lambda db: db.put(b"k", b"new"), b"new"),
        (lambda db: db.incr(b"k"), b"8"),
        (lambda db: db.delete(b"k"), None),
        (lambda db: db.update(b"k", lambda v: b"new"), b"new"),
    ],
    ids=["put", "incr", "delete", "update"],
)
def test_a_write_whose_fsync_close_overtakes_returns(store_path, monkeypatch, write, k_after):
    """With a sync policy a write fsyncs after it released the write lock; close() of another thread
    coming in between closed the state page and the file under it, and the write, which had taken
    effect, raised a bare AttributeError ('SharedState' object has no attribute 'last_sync') or
    StorageError EBADF. close() fsynced the file itself: the write now returns."""
    db = DB(store_path, sync="always")
    db.put(b"k", b"7")
    gate = _Gate()
    _pause_in_fsync(gate, monkeypatch)
    writer, got = thread_reporting(lambda: write(db))
    gate.thread = writer
    writer.start()
    assert gate.paused.wait(5)
    db.close()
    gate.resume.set()
    writer.join(5)
    assert len(got) == 1 and not isinstance(got[0], Exception), got
    monkeypatch.undo()
    with DB(store_path) as again:
        assert again.get(b"k") == k_after
    assert check(store_path).ok


def test_a_sync_that_close_overtakes_raises_database_closed_error(store_path, monkeypatch):
    """sync() racing close() of another thread fsynced a closed descriptor and raised StorageError
    EBADF ('cannot fsync'), as if the disk had failed; it now raises DatabaseClosedError, as a sync()
    after close() does."""
    db = DB(store_path)
    db.put(b"k", b"v")
    gate = _Gate()
    _pause_in_fsync(gate, monkeypatch)

    def act() -> object:
        db.sync()
        return "synced"

    syncing, got = thread_reporting(act)
    gate.thread = syncing
    syncing.start()
    assert gate.paused.wait(5)
    db.close()
    gate.resume.set()
    syncing.join(5)
    assert len(got) == 1 and isinstance(got[0], DatabaseClosedError), got


@pytest.mark.parametrize("call", ["sync()", "put with sync='always'"])
def test_an_fsync_that_a_rotation_of_another_thread_overtakes_fsyncs_the_file_by_name(
    store_path, monkeypatch, call
):
    """An fsync runs outside the write lock: a rotation of another thread meanwhile sealed the active
    file (closed its descriptor), and sync(), or a write with a sync policy that had taken effect,
    raised StorageError EBADF ('cannot fsync ...: Bad file descriptor') as if the disk had failed
    (or fsynced whatever file had reused the number). The file is now fsynced by its name."""
    db = DB(store_path, max_file_size=8192, sync="always" if call.startswith("put") else "never")
    db.put(b"k", b"7")
    first = db._active
    gate = _Gate()
    fsynced: list[int] = []
    real = db_write.fsync_file

    def fsync_file(fd: int) -> None:
        gate.pause()
        if threading.current_thread() is syncing:
            fsynced.append(fd)
        real(fd)

    monkeypatch.setattr(db_write, "fsync_file", fsync_file)

    def act() -> object:
        if call == "sync()":
            db.sync()
        else:
            db.put(b"k", b"new")
        return "done"

    syncing, got = thread_reporting(act)
    gate.thread = syncing
    syncing.start()
    assert gate.paused.wait(5)
    db.put(b"big", b"x" * 9000)  # rotates: the file being fsynced is sealed
    assert db._active is not first and first is not None and first.fd == -1
    gate.resume.set()
    syncing.join(5)
    assert got == ["done"], got
    # The descriptor the rotation closed (EBADF, or a file that reused its number), then the file
    # opened by its name; sync() then flushes the new active file too, which the rotating put wrote
    # (sync="never": nothing flushed it), as it flushes every file this handle wrote to.
    assert len(fsynced) == (3 if call == "sync()" else 2), fsynced
    db.close()
    with DB(store_path) as again:
        assert again.get(b"k") == (b"7" if call == "sync()" else b"new")
    assert check(store_path).ok


def test_close_while_a_catch_up_of_another_thread_seals_the_active_file_does_not_raise(
    store_path, monkeypatch
):
    """close() with a sync policy fsyncs the active file, unlocked against a read of another thread
    catching up with another process's rotation, which seals this process's active file (closes
    its descriptor) before it opens the next: close() then raised a bare ValueError ('file
    descriptor cannot be a negative integer (-1)'). It now fsyncs the file by its name."""
    db = DB(store_path, sync="always", max_file_size=8192)
    db.put(b"k", b"v")
    with DB(store_path, max_file_size=8192) as other:
        other.put(b"big", b"x" * 9000)  # another process rotates
    gate = _Gate()
    real_seal = files.DataFile.seal

    def seal(f: files.DataFile) -> None:
        real_seal(f)
        if f is db._active:
            gate.pause()  # this process's active file sealed, the next one not yet opened

    monkeypatch.setattr(files.DataFile, "seal", seal)
    got: dict[str, object] = {}

    def run(name: str, fn: Callable[[], object]) -> None:
        try:
            got[name] = fn()
        except Exception as exc:  # reported to the test
            got[name] = exc

    reader = threading.Thread(target=run, args=("read", lambda: db.get(b"k")), daemon=True)
    gate.thread = reader
    reader.start()
    assert gate.paused.wait(5)
    closing = threading.Thread(target=run, args=("close", db.close), daemon=True)
    closing.start()
    closing.join(0.05)  # it fsyncs, then waits for the view lock the catch-up holds
    gate.resume.set()
    reader.join(5)
    closing.join(5)
    assert got["close"] is None, got
    assert got["read"] == b"v" or isinstance(got["read"], DatabaseClosedError), got
    monkeypatch.undo()
    with DB(store_path) as again:
        assert again[b"k"] == b"v"
    assert check(store_path).ok


def _stress_worker(db: DB, seed: int, bad: list[str]) -> None:
    """Write by every path, at random, until the store is closed; note any other exception."""
    r = random.Random(seed)
    while True:
        k = b"k%02d" % r.randrange(40)
        op = r.randrange(11)
        try:
            if op == 0:
                db.put(k, b"p" * r.randrange(200), ttl=r.choice([None, 60]))
            elif op == 1:
                db.delete(k)
            elif op == 2:
                db.incr(b"n")
            elif op == 3:
                with db.batch() as b:
                    b.put(k, b"b" * 50)
                    b.delete(b"k00")
            elif op == 4:
                with db.transaction():
                    db.put(k, b"t" * r.randrange(300))
                    if r.random() < 0.4:
                        raise KeyError(k)
            elif op == 5:
                with db.locked():
                    db.put(k, b"l")
            elif op == 6:
                db.get(k)
            elif op == 7:
                db.merge()
            elif op == 8:
                db.pop(k, None)
            elif op == 9:
                db.sync()
            else:
                db.update(k, lambda v: b"u")
        except DatabaseClosedError:
            return
        except KeyError:
            pass
        except KVError as exc:
            if op != 7:  # a merge already running: MergeInProgressError
                bad.append(repr(exc))
                return
        except BaseException as exc:  # reported to the test
            bad.append(repr(exc))
            return


def test_close_during_writes_of_other_threads_lets_only_database_closed_error_escape(tmp_path):
    """A short randomized stress: threads write by every path (rotations and merges included, with
    each sync policy) while the main thread closes; only DatabaseClosedError escapes, nothing
    hangs, and the store reopens and checks clean."""
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    rounds = 0
    seed = random.randrange(1 << 30)
    r = random.Random(seed)
    try:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            rounds += 1
            path = str(tmp_path / f"s{rounds}")
            db = DB(path, max_file_size=4096, auto_merge=0.3, sync=r.choice(["never", "always", 0.001]))
            for i in range(40):
                db.put(b"k%02d" % i, b"v" * 40)
            bad: list[str] = []
            threads = [
                threading.Thread(target=_stress_worker, args=(db, r.randrange(1 << 30), bad), daemon=True)
                for _ in range(3)
            ]
            for t in threads:
                t.start()
            time.sleep(r.uniform(0.001, 0.02))
            db.close()
            for t in threads:
                t.join(5)
            assert not any(t.is_alive() for t in threads), f"a thread hung (seed {seed})"
            assert not bad, f"{bad} (seed {seed})"
            with DB(path) as again:
                again.put(b"after", b"1")
            assert check(path).ok, f"seed {seed}"
    finally:
        sys.setswitchinterval(old_interval)
    assert rounds > 1
