"""A worker refuses to start on a ``kvb://`` URL with ``read_only=1``: it could store no result.

Such a worker failed only at its first task: with the solo pool it exited ("Unrecoverable error:
ReadOnlyError"), with prefork each result was lost and clients waited for it for ever. The check
runs at ``worker_init``, before the worker connects to the broker: :mod:`kv_backend_celery.cli`
(which the ``celery`` program loads) calls it, and this module connects it too, under the same
id, for a worker started otherwise in a process that had loaded the backend already.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from celery import signals
from celery.utils.nodenames import node_format

from kv_backend_celery.config import read_only_error
from kv_backend_celery.store import StoreBackend, read_only_workers

__all__ = ["WORKER_INIT_UID", "check_worker", "tasks_storing_results"]

logger = logging.getLogger("kv_backend_celery.backend")

#: The one ``worker_init`` handler of the package, whichever module connects it first.
WORKER_INIT_UID = "kv_backend_celery.cli.worker_init"


def tasks_storing_results(app: Any) -> list[str]:
    """The names of ``app``'s tasks (Celery's own ``celery.*`` aside) that store results when they run."""
    return sorted(
        name
        for name, task in app.tasks.items()
        if not name.startswith("celery.") and (not task.ignore_result or task.store_errors_even_if_ignored)
    )


def _tell_log_file(worker: Any, level: int, message: str) -> None:
    """Append ``message`` to the log file of ``worker``, if it has one: a detached worker (``celery
    multi``, ``--detach``) has no stderr, and its logging is set up only after ``worker_init``."""
    logfile, hostname = getattr(worker, "logfile", None), getattr(worker, "hostname", None)
    if not isinstance(logfile, str) or not logfile or not isinstance(hostname, str):
        return
    with contextlib.suppress(OSError):
        handler = logging.FileHandler(node_format(logfile, hostname), encoding="utf-8")
        try:
            handler.setFormatter(logging.Formatter(worker.app.conf.worker_log_format))
            handler.emit(logger.makeRecord(logger.name, level, __file__, 0, message, (), None))
        finally:
            handler.close()


def check_worker(app: Any, worker: Any = None) -> None:
    """Stop a worker of ``app`` whose kvb:// result store is read-only, unless no task stores results.

    Raises SystemExit (a signal handler's other exceptions are only logged by Celery, and the
    worker would start anyway), and writes why to ``worker``'s log file too. With every task
    ignoring its results, a warning is logged: a call that asks for its result
    (``ignore_result=False``) still fails to store it.
    """
    try:
        backend = app.backend
    except Exception:  # a configuration error: the worker reports it itself, as without this check
        return
    if not isinstance(backend, StoreBackend) or not backend.options.get("read_only"):
        return
    storing = tasks_storing_results(app)
    if storing:
        shown = ", ".join(storing[:5]) + (f" and {len(storing) - 5} more" if len(storing) > 5 else "")
        error = read_only_error(backend.url, f"a worker stores its tasks' results (here those of {shown})")
        message = f"celery worker: refusing to start: {error}"
        _tell_log_file(worker, logging.CRITICAL, message)
        raise SystemExit(message) from error
    read_only_workers.add(app)
    message = (
        f"the result backend URL {backend.url!r} opens the store read-only (read_only=1), so this worker "
        "can store no result; every task of this worker ignores its results, so it starts, but a call "
        "that asks for its result (ignore_result=False) still has it dropped (an error is logged, and "
        "its clients see the task as PENDING): give workers the URL without read_only=1"
    )
    logger.warning("%s", message)
    _tell_log_file(worker, logging.WARNING, message)


@signals.worker_init.connect(weak=False, dispatch_uid=WORKER_INIT_UID)
def _check_worker_at_start(sender: Any = None, **kwargs: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        check_worker(app, sender)
