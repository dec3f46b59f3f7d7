"""sync=<seconds> keeps its promise when the store goes idle: a write that returned without an fsync (the
interval since the last one had not passed) is fsynced by a timer about that many seconds after the last
fsync, unless an fsync (this process's or another's) began after it meanwhile; one daemon thread per DB
at most, started by the first such write, stopped by close(), none in a forked child until it writes.
See docs/engine.md and docs/protocol.md ("Writing", step 7)."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers import FsyncSpy, LogSays, child_env, fork_child, reap, wait_for

from kv_backend import DB

TIMER = "kv_backend sync timer"


def timers(path: str | None = None) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(TIMER) and (path is None or path in t.name)]


def idle(db: DB) -> bool:
    """Whether no timer fsync is pending for ``db`` (its timer woke and found nothing left to do)."""
    return not db._syncer.due


def test_a_write_left_unsynced_is_fsynced_within_the_interval_when_the_store_goes_idle(
    store_path, monkeypatch
):
    with DB(store_path, sync=0.5) as db:  # (long enough for the two puts to fall within it on a busy machine)
        db.put(b"first", b"v")  # the interval has passed since the open: fsynced on its path
        spy = FsyncSpy(monkeypatch)
        db.put(b"second", b"v")  # within the interval: returns unsynced, and arms the timer
        assert spy.calls == []
        started = time.monotonic()
        wait_for(lambda: spy.calls, timeout=1.5, what="the timer's fsync")
        assert time.monotonic() - started < 1.5
        assert len(spy.calls) == 1 and b"second" in spy.contents[0]
        assert spy.paths[0].endswith(db.stats()["active_file"])
        (thread,) = timers(db.path)
        assert thread.daemon
        wait_for(lambda: idle(db), timeout=5, what="the timer going idle")
        assert len(spy.calls) == 1  # nothing more to fsync: the timer waits for the next unsynced write


def test_sync_never_and_always_start_no_timer(tmp_path):
    for mode in ("never", "always"):
        with DB(str(tmp_path / mode), sync=mode) as db:
            for i in range(20):
                db.put(b"k%d" % i, b"v")
            assert timers(db.path) == []


def test_a_burst_of_writes_costs_about_one_fsync_per_interval_and_its_last_write_is_fsynced(
    store_path, monkeypatch
):
    with DB(store_path, sync=0.2) as db:
        db.put(b"warm", b"v")
        spy = FsyncSpy(monkeypatch)
        writes = 0
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            db.put(b"k%d" % writes, b"v")
            writes += 1
            time.sleep(0.002)
        last = b"k%d" % (writes - 1)
        wait_for(lambda: any(last in c for c in spy.contents), timeout=1.5, what="an fsync of the last write")
        wait_for(lambda: idle(db), timeout=5, what="the timer going idle")
        # About one per 0.2 s interval (the write path's or the timer's, never both), and the last one.
        assert 2 <= len(spy.calls) <= 1.0 / 0.2 + 3, (len(spy.calls), writes)
        assert writes > 5 * len(spy.calls)


def test_another_process_s_fsync_after_the_write_leaves_the_timer_nothing_to_do(store_path, monkeypatch):
    with DB(store_path, sync=2) as db:  # (two seconds: time for the child to fork and write first)
        db.put(b"first", b"v")
        spy = FsyncSpy(monkeypatch)
        db.put(b"second", b"v")  # unsynced: the timer is due about two seconds after the first fsync
        assert not idle(db)

        def other() -> None:
            with DB(store_path, sync="always") as other_db:
                other_db.put(b"other", b"v")  # fsyncs the active file, and marks the shared last_sync

        assert reap(fork_child(other)) == 0
        assert timers(db.path)
        wait_for(lambda: idle(db), timeout=5, what="the timer waking")
        assert spy.calls == []  # the other process's fsync covered "second": no fsync here


def test_close_fsyncs_then_stops_the_timer(store_path, monkeypatch):
    db = DB(store_path, sync=5)
    db.put(b"first", b"v")
    spy = FsyncSpy(monkeypatch)
    db.put(b"second", b"v")
    assert len(timers(db.path)) == 1 and spy.calls == []
    db.close()
    assert len(spy.calls) == 1 and b"second" in spy.contents[0]  # close's own fsync
    assert timers(db.path) == []  # joined: no thread left, no fsync after close


def test_a_close_from_the_timer_s_own_thread_does_not_deadlock(store_path, monkeypatch):
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))
    db = DB(store_path, sync=0.2)
    db.put(b"first", b"v")
    db.put(b"second", b"v")
    fsync_active = db._fsync_active
    closed_in: list[str] = []

    def close_then_fsync() -> None:
        closed_in.append(threading.current_thread().name)
        fsync_active()
        db.close()  # as a __del__ run in the timer's thread (its reference was the last) would

    monkeypatch.setattr(db, "_fsync_active", close_then_fsync)
    wait_for(lambda: db.closed, timeout=5, what="the close in the timer's thread")
    wait_for(lambda: not timers(store_path), timeout=5, what="the timer's end")
    assert closed_in and closed_in[0].startswith(TIMER)
    assert hooked == []
    with DB(store_path) as again:
        assert again[b"second"] == b"v"


def test_a_failed_timer_fsync_is_logged_not_raised_and_made_again_at_close(store_path, monkeypatch):
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(args.exc_value))
    said = LogSays("the sync timer of")
    logger = logging.getLogger("kv_backend.db")
    logger.addHandler(said)
    try:
        with DB(store_path, sync=1) as db:
            db.put(b"first", b"v")
            real = os.fdatasync
            failing = [True]

            def fdatasync(fd: int) -> None:
                if failing[0]:
                    raise OSError(errno.EIO, os.strerror(errno.EIO))
                real(fd)

            monkeypatch.setattr(os, "fdatasync", fdatasync)
            db.put(b"second", b"v")
            assert said.said.wait(5), "the timer's failed fsync was not logged"
            assert hooked == []
            assert db[b"second"] == b"v"  # the store carries on
            failing[0] = False
            spy = FsyncSpy(monkeypatch)
            db.close()  # the file is still marked unsynced: close fsyncs it again
            assert len(spy.calls) == 1 and b"second" in spy.contents[0]
    finally:
        logger.removeHandler(said)


def test_a_forked_child_has_no_timer_until_its_own_first_unsynced_write(store_path, monkeypatch):
    with DB(store_path, sync=1) as db:
        db.put(b"first", b"v")
        db.put(b"second", b"v")  # the parent's timer runs
        assert timers(db.path)
        last_sync = db._state.last_sync.value
        spy = FsyncSpy(monkeypatch)

        def inherits_nothing() -> None:
            assert timers() == []  # a fork copies only the forking thread
            assert idle(db)  # nor does it inherit the parent's pending fsync: the parent's timer makes it

        assert reap(fork_child(inherits_nothing)) == 0
        wait_for(lambda: any(b"second" in c for c in spy.contents), timeout=5, what="the parent's timer")
        wait_for(lambda: db._state.last_sync.value != last_sync, timeout=5, what="the parent's fsync's end")
        calls = len(spy.calls)

        def writes() -> None:
            # (The parent's timer is idle now: the child's writes are left to the child's own timer.)
            db.put(b"child-1", b"v")
            db.put(b"child-2", b"v")
            assert len(timers(db.path)) == 1
            wait_for(lambda: any(b"child-2" in c for c in spy.contents), timeout=5, what="the child's timer")

        assert reap(fork_child(writes)) == 0
        assert len(spy.calls) == calls  # the parent fsynced nothing for them
    with DB(store_path) as again:
        assert again[b"child-2"] == b"v"


_KILLED_WRITER = """
import os, sys, threading, time
from kv_backend import DB
real = os.fdatasync
def fdatasync(fd):
    real(fd)
    if threading.current_thread().name.startswith("kv_backend sync timer"):
        size = os.fstat(fd).st_size
        synced = os.pread(fd, size, 0)
        sys.stdout.write("FSYNCED %d\\n" % synced.count(b"value-"))
        sys.stdout.flush()
        time.sleep(60)  # SIGKILLed here, right after the timer's fsync returned
os.fdatasync = fdatasync
db = DB(sys.argv[1], sync=1)
for i in range(50):
    db.put(b"key-%d" % i, b"value-%d" % i)
sys.stdout.write("WROTE 50\\n")
sys.stdout.flush()
time.sleep(10)
"""


def test_a_sigkill_right_after_the_timer_s_fsync_loses_nothing(store_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), store_path],
        stdout=subprocess.PIPE,
        env=child_env(),
    )
    try:
        lines = [proc.stdout.readline().decode().split() for _ in range(2)]  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # The writes returned first, then the timer fsynced every one of them (and the process was killed).
    assert lines == [["WROTE", "50"], ["FSYNCED", "50"]], lines
    with DB(store_path) as db:
        assert {k: db[k] for k in db} == {b"key-%d" % i: b"value-%d" % i for i in range(50)}


@pytest.mark.parametrize("exit_how", ["return", "exit"])
def test_the_timer_thread_leaves_no_traceback_at_interpreter_exit(store_path, exit_how):
    code = f"""
import sys
from kv_backend import DB
db = DB(sys.argv[1], sync=30)
db.put(b"a", b"1")
db.put(b"b", b"2")
assert any(t.name.startswith("kv_backend sync timer") for t in __import__("threading").enumerate())
{"sys.exit(0)" if exit_how == "exit" else "pass"}
"""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), store_path],
        capture_output=True,
        env=child_env(),
        timeout=60,
    )
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    with DB(store_path) as db:
        assert db[b"b"] == b"2"
