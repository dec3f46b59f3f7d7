"""The recovery of chords whose sender was lost: the stored callbacks, and the thread that sends them.

The part that completes a chord stores its callback and lists the chord among
those being fired; every worker process that runs tasks has a thread that
looks at that list and takes over, once, a chord whose claim has lapsed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from celery import signals
from celery._state import _task_stack
from celery.app.task import Context
from celery.backends.base import KeyValueStoreBackend
from kombu.serialization import dumps as kombu_dumps
from kombu.serialization import loads as kombu_loads
from kombu.serialization import prepare_accept_content

from kv_backend import DB
from kv_backend.errors import CorruptionError
from kv_backend.threads import start_daemon_thread
from kv_backend_celery.store import StoreBackend, bytes_to_str, ensure_bytes

__all__ = ["ChordRecovery", "start_chord_recovery"]

# The backend's one logger, whatever module logs: the name users configure.
logger = logging.getLogger("kv_backend_celery.backend")


class _TakenOver(int):
    """The count (0) of a chord a redelivered part took over after the claim of its sender lapsed."""


class _PartStandIn:
    """Stands, while the recovery sends a chord's callback, for the part that completed the chord.

    Celery gives a task sent from within a worker task that task as its
    parent (``parent_id``), its root (``root_id``) and, with
    ``task_inherit_parent_priority``, its priority; the callback keeps
    exactly what the original send would have given it.
    """

    def __init__(self, parent: dict[str, Any]) -> None:
        self.name = parent.get("name")  # Celery's task log format shows it
        self.request = Context(
            id=parent.get("id"),
            root_id=parent.get("root_id"),
            delivery_info={"priority": parent.get("priority")},
            called_directly=False,
        )

    def add_trail(self, result: Any) -> Any:
        return result  # the part's result is stored already: its children stay as they were


@contextlib.contextmanager
def _sending_from(parent: dict[str, Any] | None) -> Iterator[None]:
    """Send tasks, in this thread, as if from the part described by ``parent`` (None: as is)."""
    if not parent:
        yield
        return
    _task_stack.push(_PartStandIn(parent))
    try:
        yield
    finally:
        _task_stack.pop()


# The process (pid) in which each app's recovery thread runs, by id(app): a thread does not
# survive fork, so a forked child starts its own.
_recovery_pids: dict[int, int] = {}
_recovery_lock = threading.Lock()


def _reset_lock_in_child() -> None:
    """A forked child gets a new module lock: one held by another thread of the parent at the fork
    (starting the chord recovery) would be held for ever in the child."""
    global _recovery_lock
    _recovery_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_lock_in_child)


class ChordRecovery(StoreBackend):
    """The stored callbacks of chords being fired, and :meth:`recover_chords`, which sends those whose
    sender was lost."""

    #: Seconds between two looks, in each worker process, for chords whose sender was lost
    #: (see :meth:`recover_chords`).
    chord_recovery_interval = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if _in_pool_child():
            # This module was not loaded when the child started (a worker that printed no
            # banner and was not started by the celery program, see kv_backend_celery.cli,
            # never built its backend before forking), so its worker_process_init handler
            # did not run: start the recovery now, at the child's first task, rather than
            # only at its first chord part.
            _start_recovery_thread(self.app, self)

    def _encode_callback(self, gid: str, chord_sig: Any) -> bytes | None:
        """The chord's callback as stored for :meth:`recover_chords`; None if it cannot be encoded."""
        if chord_sig is None:
            return None
        record: dict[str, Any] = {"callback": dict(chord_sig)}
        parent = self.app.current_worker_task
        if parent is not None:
            # Sent from here, the callback's message takes its root, parent and (with
            # task_inherit_parent_priority) priority from this task: the recovery, which
            # sends it from a thread running no task, stands in for it (see _sending_from).
            request = parent.request
            record["parent"] = {
                "name": parent.name,
                "id": request.id,
                "root_id": request.root_id,
                "priority": (request.delivery_info or {}).get("priority"),
            }
        # With the serializer of the task messages, which carried the callback to this
        # part: the result serializer could change it (json makes tuples lists).
        serializer = self.app.conf.task_serializer
        try:
            content_type, encoding, payload = kombu_dumps(record, serializer=serializer)
            return b"%s\0%s\0%s" % (ensure_bytes(content_type), ensure_bytes(encoding), ensure_bytes(payload))
        except Exception as exc:
            # Only the automatic recovery is lost: a redelivered part still sends the callback.
            logger.warning(
                "chord %s: its callback cannot be stored with the task serializer (%r); if the "
                "process sending it dies, only a part delivered again can send it",
                gid,
                exc,
            )
            return None

    def _decode_callback(self, record: bytes) -> dict[str, Any]:
        """The stored callback record: ``{"callback": ..., "parent": ...}`` (see :meth:`_encode_callback`)."""
        if record.startswith(b"application/") and record.count(b"\0") >= 2:
            content_type, encoding, payload = record.split(b"\0", 2)
            decoded: dict[str, Any] = kombu_loads(
                payload,
                bytes_to_str(content_type),
                bytes_to_str(encoding),
                accept=prepare_accept_content(self.app.conf.accept_content),
            )
            return decoded
        stored = self.decode(record)  # stored with the result serializer by the first release
        return stored if "callback" in stored else {"callback": stored}

    def _callback_key(self, gid: str) -> bytes:
        return ensure_bytes(self.get_key_for_chord(gid, ".callback"))

    def _firing_key(self) -> bytes:
        """The key listing the chords whose callback is being sent (Celery's global key prefix first)."""
        prefix = self.chord_keyprefix[: len(self.chord_keyprefix) - len(KeyValueStoreBackend.chord_keyprefix)]
        return ensure_bytes(prefix) + b"kvb-chords-firing"

    def _firing(self, db: DB) -> list[str]:
        """The group ids of the chords being fired (the write lock held, or a snapshot).

        An unreadable list is read as the chords whose callback is stored
        (see :meth:`_repair_firing`).
        """
        raw = self._firing_record(db)
        if raw is None:
            return []
        gids = self._parse_firing(raw)
        return gids if gids is not None else self._stored_callbacks(db)

    def _firing_record(self, db: DB) -> bytes | None:
        """The stored list of chords being fired; ``b""`` (unreadable) for one damaged on disk.

        A record failing its checksum would otherwise fail every chord's completion and end,
        which all read the list, and every round of the recovery, for good.
        """
        try:
            return db.get(self._firing_key())
        except CorruptionError as exc:
            logger.error("the list of chords being fired is damaged: %s", exc)
            return b""

    @staticmethod
    def _parse_firing(raw: bytes) -> list[str] | None:
        """The group ids in a stored list of chords being fired; None if it is unreadable."""
        try:
            gids = json.loads(raw)
        except ValueError:
            return None
        if not isinstance(gids, list) or not all(isinstance(g, str) for g in gids):
            return None
        return gids

    def _stored_callbacks(self, db: DB) -> list[str]:
        """The group ids of the chords whose callback is stored: a scan, only to rebuild a lost list."""
        prefix, suffix = ensure_bytes(self.chord_keyprefix), b".callback"
        return [
            bytes_to_str(k[len(prefix) : -len(suffix)]) for k in db.keys(prefix=prefix) if k.endswith(suffix)
        ]

    def _repair_firing(self, db: DB) -> None:
        """Rebuild an unreadable list of chords being fired from the stored callbacks, once.

        Read as empty, it would hide the chords it held from the recovery for good.
        """
        key = self._firing_key()
        with db.locked():
            raw = self._firing_record(db)
            if raw is None or self._parse_firing(raw) is not None:
                return  # another process rebuilt it
            gids = self._stored_callbacks(db)
            logger.error(
                "the list of chords being fired (%r) was unreadable; rebuilt it from the %d stored callbacks",
                raw[:100],
                len(gids),
            )
            if gids:
                db.put(key, json.dumps(gids).encode(), ttl=self._ttl(self._chord_counter_ttl()))
            else:
                db.delete(key)

    def _note_firing(self, batch: Any, db: DB, add: Iterable[str] = (), drop: Iterable[str] = ()) -> None:
        """Add ``add`` to and remove ``drop`` from the list of chords being fired, in ``batch``.

        Call it with the write lock held: it reads the list, then writes it in the batch.
        """
        gids = self._firing(db)
        dropped = set(drop)
        new = [g for g in gids if g not in dropped]
        new += [g for g in add if g not in new]
        if new == gids:
            return
        if new:
            batch.put(self._firing_key(), json.dumps(new).encode(), ttl=self._ttl(self._chord_counter_ttl()))
        else:
            batch.delete(self._firing_key())

    def recover_chords(self) -> int:
        """Send the callback of each chord whose sender was lost; return how many chords were taken over.

        A chord is stuck when all its parts are counted, the claim of the
        process that completed it has lapsed, and it was not cleared: that
        process died (killed while sending the callback) and, as Celery 5.7
        acknowledges a part that stored its result before its pool process
        was lost, no part may ever be delivered again. Each worker process
        calls this every :attr:`chord_recovery_interval` seconds and when it
        starts. It takes such a chord over exactly as a redelivered part does
        (the claim is taken under the write lock, so one process wins), and
        sends the callback unless the callback has a finished state (then it
        only clears the chord). It reads one key, the list of chords being
        fired, so it costs next to nothing when there is nothing to do.
        """
        db = self.db
        taken = 0
        raw = self._firing_record(db)
        firing = [] if raw is None else self._parse_firing(raw)
        if firing is None:
            self._repair_firing(db)
            firing = self._firing(db)
        for gid in firing:
            key = ensure_bytes(self.get_key_for_chord(gid))
            claim_key = self._claim_key(gid)
            claim = uuid.uuid4().hex.encode()
            try:
                count = db.get(key)
                if count is not None and (count != b"0" or claim_key in db):
                    continue  # owned by a live process: the usual case, seen without the write lock
                with db.locked():
                    count = db.get(key)
                    if count is None:  # dropped (by an earlier release's merge) if its size is there
                        count = self._count_of(db, gid, key)
                    record = db.get(self._callback_key(gid))
                    if count is None or record is None:
                        # Expired with the chord (result_chord_expires): nothing left to send.
                        with db.batch() as batch:
                            batch.delete(self._callback_key(gid))
                            self._note_firing(batch, db, drop=[gid])
                        continue
                    if count != b"0" or claim_key in db:
                        continue  # still owned by a live process (or not complete)
                    db.put(claim_key, claim, ttl=self._chord_claim_ttl())
            except CorruptionError as exc:
                record = self._recover_damaged(db, gid, key, claim, exc)
                if record is None:
                    continue
            logger.warning(
                "chord %s: the process sending its callback was lost and no part came again; "
                "taking it over here",
                gid,
            )
            taken += 1
            try:
                stored = self._decode_callback(record)
                chord_sig, parent = stored["callback"], stored.get("parent")
            except Exception as exc:
                logger.error("chord %s: its stored callback cannot be read (%r); clearing it", gid, exc)
                self._end_chord(gid, key, None)
                continue
            try:
                with _sending_from(parent):
                    self._run_chord_callback(gid, chord_sig, key, claim, taken_over=True)
            except CorruptionError as exc:  # the round goes on with the other chords
                logger.error("chord %s: a record of it is damaged (%s); not finished in this round", gid, exc)
        return taken


def start_chord_recovery(app: Any) -> bool:
    """Start this process's thread that runs :meth:`KVBackend.recover_chords` for ``app``.

    It looks at once (a chord stuck while no worker ran is finished when one
    starts), then every ``chord_recovery_interval`` seconds. Only one thread
    per app and process; False if there is one already, or if ``app`` does
    not use this backend (or uses a read-only store, which cannot finish
    chords). Worker processes call it at their start (see the signal handlers
    below), when a pool child builds its backend, and at their first chord part.
    """
    if _recovery_pids.get(id(app)) == os.getpid():
        return False
    try:
        backend = app.backend
    except Exception:  # another backend's configuration error is its own business
        with _recovery_lock:
            _recovery_pids[id(app)] = os.getpid()
        return False
    return _start_recovery_thread(app, backend)


def _start_recovery_thread(app: Any, backend: Any) -> bool:
    """Start the recovery thread of ``app`` (whose backend is ``backend``), once per process."""
    pid = os.getpid()
    with _recovery_lock:
        if _recovery_pids.get(id(app)) == pid:
            return False
        _recovery_pids[id(app)] = pid
    if not isinstance(backend, ChordRecovery) or backend.options.get("read_only"):
        return False
    # Blocking the process's signals: the thread runs in every prefork pool child, and a
    # SIGTERM it took would never interrupt the child's main thread (see kv_backend.threads).
    start_daemon_thread(_recovery_loop, "kvb-chord-recovery", (app,))
    return True


def _in_pool_child() -> bool:
    """True in a prefork pool child (Celery's process initializer ran in this process or a parent)."""
    prefork = sys.modules.get("celery.concurrency.prefork")
    return prefork is not None and getattr(prefork, "_process_hostname", None) is not None


def _recovery_loop(app: Any) -> None:
    failures = 0
    interval = ChordRecovery.chord_recovery_interval
    while True:
        try:
            backend = app.backend  # this thread's own backend instance (Celery keeps one per thread)
            interval = backend.chord_recovery_interval
            backend.recover_chords()
            failures = 0
        except Exception:
            failures += 1
            if failures == 1:  # the store or the broker unreachable: say it once, keep trying
                logger.exception("kv_backend chord recovery failed; trying again")
        time.sleep(max(float(interval), 0.01))


def _start_recovery_late(app: Any, request: Any) -> None:
    """Start the recovery in a worker process whose start signal came before this module was loaded.

    Not in a prefork worker's main process (its pool children run it, and a
    thread there could hold a lock while the pool forks a new child), nor
    for eager tasks or calls made outside a worker.
    """
    if not getattr(request, "hostname", None) or getattr(request, "is_eager", False):
        return
    if "celery.concurrency.prefork" in sys.modules:
        from billiard.process import current_process

        if current_process().name == "MainProcess":
            return
    start_chord_recovery(app)


@signals.worker_process_init.connect(weak=False, dispatch_uid="kv_backend_celery.chord_recovery.child")
def _recover_chords_in_pool_child(**kwargs: Any) -> None:
    """A prefork pool child starts its recovery thread (the children send the callbacks)."""
    from celery import current_app

    start_chord_recovery(current_app._get_current_object())


@signals.worker_ready.connect(weak=False, dispatch_uid="kv_backend_celery.chord_recovery.worker")
def _recover_chords_in_worker(sender: Any = None, **kwargs: Any) -> None:
    """A worker whose tasks run in its own process (solo, threads, gevent...) starts the recovery."""
    app = getattr(sender, "app", None)
    if app is None:
        return
    prefork = sys.modules.get("celery.concurrency.prefork")
    if prefork is not None and isinstance(getattr(sender, "pool", None), prefork.TaskPool):
        # Its pool children run it; none in this process, where a thread could hold
        # a lock while the pool forks a new child.
        with _recovery_lock:
            _recovery_pids[id(app)] = os.getpid()
        return
    start_chord_recovery(app)
