"""Modules imported at their first use, safely across ``os.fork()``.

``import kv_backend`` leaves out what opening a store does not need (the backup machinery behind
``restore``, the front ends other than ``Store``, the Redis layout that ``clear()`` and ``popitem()``
consult, ``dataclasses`` for a merge's report, ``logging`` for the engine's rare warnings, ``json``
for a JSON store): each is imported by the first call that needs it. A first use in
one thread while another thread forks (gunicorn ``--preload``, a Celery prefork pool, a
``multiprocessing`` fork) was a hazard: the child inherits the module's import lock, held by a
thread it does not have, and hangs for ever at its own first use of the module.

:func:`load` imports a module so that a fork waits for it: a fork in one thread waits until no other
thread is inside :func:`load` (for at most :data:`FORK_WAIT` seconds, so that a fork never hangs for
ever), and no import through :func:`load` starts while the fork is made. A child therefore finds
each such module imported or not started, never half-imported. No lock is held during the import
itself, so imports in other threads, and the import system's own locks, are not waited for.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from types import ModuleType
from typing import Any

#: The longest a fork waits for the imports other threads have under way through :func:`load`.
FORK_WAIT = 30.0

_guard = threading.Condition(threading.Lock())
#: The imports under way through load(): the number of each thread's, by thread id (nested ones count).
_importing: dict[int, int] = {}


def _others_importing() -> bool:
    return any(ident != threading.get_ident() for ident in _importing)


def _before_fork() -> None:
    _guard.acquire()
    _guard.wait_for(lambda: not _others_importing(), timeout=FORK_WAIT)


def _after_fork_in_parent() -> None:
    _guard.release()


def _after_fork_in_child() -> None:
    global _guard, _importing
    _guard = threading.Condition(threading.Lock())  # (the parent's is held by the forking thread)
    me = threading.get_ident()
    _importing = {ident: count for ident, count in _importing.items() if ident == me}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


def load(name: str) -> ModuleType:
    """The module ``name``, imported now if no thread has imported it yet, so that a fork waits for it."""
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module  # (imported already: the import system is not entered)
    me = threading.get_ident()
    with _guard:
        _importing[me] = _importing.get(me, 0) + 1
    try:
        return importlib.import_module(name)
    finally:
        with _guard:
            left = _importing.pop(me) - 1
            if left:
                _importing[me] = left
            else:
                _guard.notify_all()


def log_warning(logger: str, message: str, *args: Any) -> None:
    """``logging.getLogger(logger).warning(message, *args)``, ``logging`` being imported at its first use."""
    load("logging").getLogger(logger).warning(message, *args)
