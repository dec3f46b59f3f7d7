"""Background threads that leave the process's signals to its main thread.

The kernel delivers a signal sent to a process (``kill``, ``killpg``: what
systemd, a process manager or Celery's prefork pool send) to its main thread
unless that thread blocks it at that moment (or has another signal pending),
and then to any other thread that does not. Python runs signal handlers only
in the main thread: a signal taken by a background thread merely sets a flag,
and a main thread blocked in a system call (a read on a pipe, a semaphore) is
not interrupted and runs the handler only once something else wakes it, if
ever.

A Celery prefork pool child blocks ``SIGTERM`` while it writes to the pool's
result pipe, then waits for its next job in a read with no timeout. With the
stuck-chord recovery thread running in every pool child, a ``SIGTERM`` sent to
the worker's process group in that window reached the recovery thread; the
child never exited and its worker hung in its shutdown. The threads started
here block every signal the kernel sends to a process as a whole, so such a
signal stays pending until the main thread takes it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

#: Signals the kernel raises in the thread that caused them (a fault, a write to a
#: closed pipe, a file over its size limit) and those no thread can block.
_THREAD_DIRECTED = frozenset(
    {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS", "SIGABRT", "SIGPIPE", "SIGXFSZ"}
    | {"SIGKILL", "SIGSTOP"}
)


def process_signals() -> set[int]:
    """The signals a background thread blocks: all but the thread-directed ones (real-time ones too)."""
    return {sig for sig in signal.valid_signals() if getattr(sig, "name", None) not in _THREAD_DIRECTED}


def start_daemon_thread(
    target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """Start a daemon thread running ``target(*args)`` that never takes a signal sent to the process.

    The signals are blocked in this thread around ``start()``, so the new
    thread inherits the mask from its first instruction on; this thread's
    own mask is restored at once (a signal arriving meanwhile is delivered
    then).
    """
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    if not hasattr(signal, "pthread_sigmask"):  # no per-thread masks (Windows)
        thread.start()
        return thread
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, process_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread
