"""Background threads leave the process's signals to the main thread (kv_backend.threads).

A signal sent to a process goes to any thread that does not block it, and to
another thread when the main thread blocks it at that moment; Python then only
sets a flag, and a main thread blocked in a system call never runs the
handler. The engine's auto-merge thread (and the Celery backend's chord
recovery thread, see tests/celery/test_celery_shutdown11.py) took such
signals: they now block every signal sent to a process as a whole.
"""

from __future__ import annotations

import signal
import threading

import pytest

from kv_backend import DB
from kv_backend.threads import process_signals, start_daemon_thread

pytestmark = pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="no per-thread signal masks")

PROCESS_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP}
PROCESS_SIGNALS |= {signal.SIGUSR1, signal.SIGUSR2}
THREAD_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT, signal.SIGPIPE}


def _mask() -> set[int]:
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_daemon_thread_blocks_process_signals_and_leaves_the_callers_mask():
    seen: list[set[int]] = []
    before = _mask()
    thread = start_daemon_thread(lambda: seen.append(_mask()), "kvb-test-thread")
    thread.join(5)
    assert thread.daemon and thread.name == "kvb-test-thread"
    assert _mask() == before  # the caller's own mask is as it was
    assert PROCESS_SIGNALS | {signal.SIGRTMIN, signal.SIGALRM, signal.SIGCHLD} <= seen[0]
    assert not THREAD_SIGNALS & seen[0]  # a fault must still reach the thread that caused it
    assert seen[0] == process_signals() | before


def test_the_auto_merge_thread_blocks_process_signals(store_path, monkeypatch):
    import kv_backend.merge as merge_module

    monkeypatch.setattr(merge_module, "AUTO_MERGE_MIN_BYTES", 1)
    masks: list[set[int]] = []

    def record(db, progress=None, *, wait=False):
        masks.append(_mask())

    monkeypatch.setattr(merge_module, "merge", record)
    with DB(store_path, max_file_size=4096, auto_merge=0.1) as db:
        for i in range(200):
            db.put(b"same-key", b"%d" % i * 100)
            if db._merge_thread is not None:
                db._merge_thread.join(10)
                break
    assert masks and masks[0] >= PROCESS_SIGNALS
    assert threading.current_thread() is threading.main_thread() and not PROCESS_SIGNALS & _mask()
