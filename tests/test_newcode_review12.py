"""Review of this session's new code under concurrency, forks and crashes."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import exit_code, fork_child

from kv_backend import DB, locking


def _fork_while_held(lock: Any, child: Callable[[], None]) -> int:
    """Run ``child`` in a process forked while another thread holds ``lock``; its exit code (a hang
    ends it by SIGALRM after 5 s)."""
    held, go = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            held.set()
            go.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)

    def alarmed() -> None:
        signal.alarm(5)
        child()

    try:
        pid = fork_child(alarmed)
    finally:
        go.set()
        thread.join()
    return exit_code(pid)


def test_child_forked_while_another_thread_registers_a_lock_opens_stores(tmp_path: Path) -> None:
    # The registry of this process's write locks (by lock file) is guarded by a thread lock that a
    # thread opening or closing a store holds for a moment. A child forked then inherited it held by
    # a thread it does not have, and hung for ever at its first open, close or contended write.
    with DB(tmp_path) as db:
        db.put(b"k", b"v")

        def child() -> None:
            with DB(tmp_path) as other:
                assert other.get(b"k") == b"v"
                other.put(b"k2", b"v2")
            db.put(b"k3", b"v3")

        # the guard held stands for another thread's DB(...) or close() at the fork
        assert _fork_while_held(locking._LOCKS_GUARD, child) == 0
        assert db.get(b"k2") == b"v2" and db.get(b"k3") == b"v3"


def test_child_forked_while_another_thread_starts_the_chord_recovery_can_start_its_own() -> None:
    # The Celery backend's lock around "which process runs the chord recovery" was not renewed at
    # fork, unlike its store lock: a child forked while another thread held it (a moment, in
    # start_chord_recovery) hung at its own start of the recovery.
    import kv_backend_celery.chord_recovery as celery_backend

    class App:
        backend = None  # not a KVBackend: start_chord_recovery only notes the process

    def child() -> None:
        assert celery_backend.start_chord_recovery(App()) is False

    assert _fork_while_held(celery_backend._recovery_lock, child) == 0
