"""Celery result backend that keeps task results in a kv_backend store.

Configure it with a ``kvb://`` URL naming an absolute directory::

    app = Celery("proj", broker="redis://...", backend="kvb:///var/lib/proj/results")
    # options: kvb:///var/lib/proj/results?sync=always&auto_merge=0.5

Celery finds the class through the ``celery.result_backends`` entry point, so
the URL works without importing this module. Results are stored under
Celery's usual key names (``celery-task-meta-<id>`` ...) with the
``result_expires`` lifetime as a TTL, chords count their parts with the
store's atomic cross-process ``incr``, and ``AsyncResult.get()`` wakes as soon
as any process writes to the store instead of polling every half second.

The class is assembled from modules named for what they hold: ``config``
(the URL and the settings checks), ``store`` (the open store and the reads
and writes of results), ``chords`` (counting parts, claims, sending the
callback), ``chord_parts`` (a part's result stored with its count),
``chord_damage`` (chords whose records are damaged on disk) and
``chord_recovery`` (chords whose sender was lost). This module keeps the
waiting, and the public names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from celery import states
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import AsyncResult

import kv_backend_celery.worker_check  # noqa: F401  (connects its worker_init handler)
from kv_backend import DB
from kv_backend_celery.chord_recovery import start_chord_recovery
from kv_backend_celery.chords import ChordBackend
from kv_backend_celery.config import KVBackendConfigurationError, parse_url
from kv_backend_celery.store import bytes_to_str

__all__ = ["KVBackend", "KVBackendConfigurationError", "parse_url", "start_chord_recovery"]


class KVBackend(ChordBackend):
    """Celery result backend on a kv_backend store, selected with ``kvb:///absolute/path``.

    The store opens on first use in each process (so the backend can be built
    in a parent and used in forked or unpickled worker processes), writes are
    visible to every other process at once, and waits wake within about a
    millisecond of the result landing.
    """

    # ---------------------------------------------------------------- waiting

    @staticmethod
    def _wait_cap(interval: float | None) -> float:
        """Longest single sleep: waits end early on any write, this only paces ``on_interval``."""
        return interval if interval and interval > 0 else 1.0

    def _check_not_eager(self) -> None:
        check = getattr(self, "_ensure_not_eager", None)
        if check is not None:
            check()

    @staticmethod
    def _nap(db: DB | None, token: int | None, seconds: float, started: float) -> None:
        """Sleep up to ``seconds``, waking at the store's next write, soon after it in a wait that began
        at ``started`` (``time.monotonic()``): the engine looks every 0.2-2 ms in the first 0.1 s of
        the wait, then every 2 % of the time waited, at most every 50 ms (``DB.wait_for_change``,
        counting from ``started`` across the naps). A read-only store that does not exist yet
        (``db`` None, see ``_reader``) is looked for again after them."""
        if db is None or token is None:
            time.sleep(max(seconds, 0.0))
            return
        db.wait_for_change(token, max(seconds, 0.0), since=started)

    def wait_for(
        self,
        task_id: str,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_interval: Callable[[], Any] | None = None,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
    ) -> dict[str, Any]:
        """Block until the task is ready and return its meta; wakes on the store's next write.

        ``on_message`` is called with the meta of each stored state seen while
        waiting (``STARTED``, custom progress states..., the final one), as
        Celery's redis backend calls it for each state message.

        ``interval`` only paces ``on_interval`` (and bounds each sleep): the
        result is seen typically within a millisecond of being written in the
        first 0.1 s of the wait, later within 2 % of the time waited, at most
        50 ms (see ``_nap``). A ready result is followed by one
        more ``on_interval`` call before it is returned, as Celery's redis
        backend calls it after every message: ``AsyncResult.get()`` passes
        its check of the parents there, so a failed parent (a chord's header)
        is raised rather than the ChordError its failure left on this task,
        whenever the failure lands: also between get()'s own first check of
        the parents and this wait's first look at the store (the result
        ready at once), where the ChordError came out.
        """
        self._check_not_eager()
        cap = self._wait_cap(interval)
        now = started = time.monotonic()
        deadline = None if timeout is None else now + timeout
        next_tick = now
        seen: dict[str, Any] | None = None
        while True:
            db = self._reader()  # a store deleted meanwhile is opened anew
            token = None if db is None else db.change_token()
            meta: dict[str, Any] = self.get_task_meta(task_id)
            if on_message is not None and meta["status"] != states.PENDING and meta != seen:
                seen = meta
                on_message(meta)
            if meta["status"] in states.READY_STATES:
                if on_interval is not None:
                    on_interval()
                return meta
            now = time.monotonic()
            if on_interval is not None and now >= next_tick:
                on_interval()
                next_tick = now + cap
            if deadline is not None and now >= deadline:
                raise CeleryTimeoutError("The operation timed out.")
            nap = min(cap, next_tick - now) if on_interval is not None else cap
            if deadline is not None:
                nap = min(nap, deadline - now)
            self._nap(db, token, nap, started)

    def wait_for_pending(
        self,
        result: AsyncResult,
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        callback: Callable[..., Any] | None = None,
        propagate: bool = True,
    ) -> Any:
        """``AsyncResult.get()``'s wait, with ``on_message`` (which Celery's synchronous backends refuse)."""
        meta = self.wait_for(
            result.id,
            timeout=timeout,
            interval=interval,
            no_ack=no_ack,
            on_interval=on_interval,
            on_message=on_message,
        )
        result._maybe_set_cache(meta)
        return result.maybe_throw(propagate=propagate, callback=callback)

    def get_many(
        self,
        task_ids: Iterable[str],
        timeout: float | None = None,
        interval: float = 0.5,
        no_ack: bool = True,
        on_message: Callable[[dict[str, Any]], Any] | None = None,
        on_interval: Callable[[], Any] | None = None,
        max_iterations: int | None = None,
        READY_STATES: frozenset[str] = states.READY_STATES,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(task_id, meta)`` as each task becomes ready, waking on the store's writes.

        ``on_message`` is called with the meta of each state of the tasks seen stored while
        waiting (``STARTED``, progress states..., the final one), once each, as Celery's redis
        backend calls it for each state message of a group's tasks.
        ``max_iterations`` bounds the number of reads of the pending results
        (1 = look once and return without waiting).
        """
        self._check_not_eager()
        pending = {bytes_to_str(t) for t in task_ids}
        cache = self._cache
        for task_id in list(pending):
            cached = cache.get(task_id)
            if cached is not None and cached["status"] in READY_STATES:
                pending.discard(task_id)
                yield task_id, cached
        if not pending:
            return
        cap = self._wait_cap(interval)
        now = started = time.monotonic()
        deadline = None if timeout is None else now + timeout
        next_tick = now
        passes = 0
        seen: dict[str, bytes] = {}  # the unfinished state last given to on_message, by task
        while pending:
            db = self._reader()  # a store deleted meanwhile is opened anew
            token = None if db is None else db.change_token()
            ids = list(pending)
            values = self.mget([self.get_key_for_task(t) for t in ids])
            for task_id, raw in zip(ids, values, strict=True):
                if raw is None or (on_message is not None and seen.get(task_id) == raw):
                    continue
                meta = self.decode_result(raw)
                if meta["status"] not in READY_STATES:
                    if on_message is not None and meta["status"] != states.PENDING:
                        seen[task_id] = raw
                        on_message(meta)
                    continue
                pending.discard(task_id)
                cache[task_id] = meta
                if on_message is not None:
                    on_message(meta)
                yield task_id, meta
            passes += 1
            if not pending or (max_iterations and passes >= max_iterations):
                return
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise CeleryTimeoutError(f"Operation timed out ({timeout})")
            if on_interval is not None and now >= next_tick:
                on_interval()
                next_tick = now + cap
            nap = min(cap, next_tick - now) if on_interval is not None else cap
            if deadline is not None:
                nap = min(nap, deadline - now)
            self._nap(db, token, nap, started)
