"""A worker refuses to start on a ``kvb://`` URL with ``read_only=1``: it could store no result.

Such a worker failed only at its first task: with the solo pool it exited ("Unrecoverable error:
ReadOnlyError"), with prefork each result was lost and clients waited for it for ever. The check
runs at ``worker_init``, before the worker connects to the broker: :mod:`kv_backend_celery.cli`
(which the ``celery`` program loads) calls it, and this module connects it too, under the same
id, for a worker started otherwise in a process that had loaded the backend already.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from kv_backend_celery.config import read_only_error

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


def check_worker(app: Any) -> None:
    """Stop a worker of ``app`` whose kvb:// result store is read-only, unless no task stores results.

    Raises SystemExit (a signal handler's other exceptions are only logged by Celery, and the
    worker would start anyway). With every task ignoring its results, a warning is logged: a
    call that asks for its result (``ignore_result=False``) still fails to store it.
    """
    from kv_backend_celery.store import StoreBackend

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
        raise SystemExit(f"celery worker: refusing to start: {error}") from error
    logger.warning(
        "%s; every task of this worker ignores its results, so it starts, but a call that asks for "
        "its result (ignore_result=False) fails to store it",
        read_only_error(backend.url, "this worker can store no result"),
    )


@signals.worker_init.connect(weak=False, dispatch_uid=WORKER_INIT_UID)
def _check_worker_at_start(sender: Any = None, **kwargs: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        check_worker(app)
