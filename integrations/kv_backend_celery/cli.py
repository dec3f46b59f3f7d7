"""The ``celery kvb-recover-chords`` command; the ``celery`` program loads this module at its start.

Installing kv_backend registers this module in Celery's ``celery.commands``
entry-point group, which the ``celery`` program (``celery worker``,
``python -m celery``, ``app.worker_main()``) loads before it runs anything.
It connects one handler to ``worker_init``, sent when a worker starts, before
its pool does: if the app's result backend is a ``kvb://`` URL, it loads
:mod:`kv_backend_celery.backend`, and with it the handlers of
:mod:`kv_backend_celery.chord_recovery` (``worker_ready``,
``worker_process_init``), which then start the stuck-chord recovery in every
worker process that runs tasks. Without it, ``celery -q worker``, which prints no
banner and so builds no result backend before its first task, started the
recovery only at the first task (prefork) or the first chord part (solo,
threads...). The same handler stops a worker whose store is read-only
(``read_only=1``), which could store no result. This module imports neither
kv_backend nor the backend unless a worker needs them: other apps and commands
don't pay for it.
"""

from __future__ import annotations

from typing import Any

import click
from celery import signals
from celery.bin.base import CeleryCommand, handle_preload_options

__all__ = ["recover_chords"]


def _uses_kvb_url(app: Any) -> bool:
    """True if ``app``'s result backend is configured with a ``kvb://`` URL."""
    backend = app.backend_cls or app.conf.result_backend
    return isinstance(backend, str) and backend.partition("://")[0].lower() == "kvb"


@signals.worker_init.connect(weak=False, dispatch_uid="kv_backend_celery.cli.worker_init")
def _load_backend_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """Load the backend module (and so its recovery handlers) in a worker whose results go to kvb://,
    and refuse to start if its store is read-only (see :mod:`kv_backend_celery.worker_check`)."""
    app = getattr(sender, "app", None)
    if app is not None and _uses_kvb_url(app):
        import kv_backend_celery.backend  # noqa: F401  (and the recovery's worker signal handlers)
        from kv_backend_celery.worker_check import check_worker

        check_worker(app, sender)


@click.command("kvb-recover-chords", cls=CeleryCommand)
@click.pass_context
@handle_preload_options
def recover_chords(ctx: Any) -> None:
    """Send, once, the callbacks of kvb:// chords whose sender was lost (workers do it every 2 s)."""
    from celery.exceptions import ImproperlyConfigured

    from kv_backend.errors import KVError
    from kv_backend.files import prepare_directory
    from kv_backend_celery.backend import KVBackend

    app = ctx.obj.app
    try:
        backend = app.backend
    except ImproperlyConfigured as exc:  # a kvb:// URL the backend refuses: its message says what to write
        raise click.UsageError(str(exc)) from exc
    if not isinstance(backend, KVBackend):
        raise click.UsageError(
            f"the result backend of app {app.main!r} is {backend.__class__.__name__}, not kvb://; "
            "name the app with -A (celery -A proj kvb-recover-chords)"
        )
    if backend.options.get("read_only"):
        raise click.UsageError(
            f"the result store of app {app.main!r} is opened read-only (read_only=1) and cannot "
            "finish chords; run this with the URL the workers use"
        )
    try:
        # Only a store the workers made can hold chords: a path that holds none (a typo in the URL)
        # is said so, not given an empty store that "0 chord(s) taken over" would then seem to vouch for.
        prepare_directory(backend.path, create=False)
        taken = backend.recover_chords()
    except KVError as exc:  # no store there, not a store, one this user may not read or write...
        text = getattr(exc, "strerror", None) or str(exc)
        raise click.ClickException(
            f"cannot recover the chords of app {app.main!r}: {text}; check its result_backend "
            "(the URL the workers use)"
        ) from exc
    ctx.obj.echo(f"{taken} chord(s) taken over")
