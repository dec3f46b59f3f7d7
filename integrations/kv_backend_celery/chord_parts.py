"""A chord part's result stored with its count, in one store transaction.

Celery's ``mark_as_done``, ``mark_as_failure`` and ``mark_as_revoked`` store
the result of a task that is a chord part, then count it; here both happen in
one transaction, so a process killed between the two leaves neither.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from celery import group, states
from celery.app.task import Context
from celery.backends.base import Backend
from celery.canvas import _chain, _chord

from kv_backend import DB
from kv_backend.errors import CorruptionError
from kv_backend_celery.store import StoreBackend, bytes_to_str, ensure_bytes

__all__ = ["ChordPartResults"]


class _ChordPart:
    """A chord part being marked finished in this thread, and its count once stored with its result."""

    __slots__ = ("chained", "claim", "counted", "gid", "left", "request")

    def __init__(self, request: Any, gid: str, chained: bool = False) -> None:
        self.request = request
        self.gid = gid
        self.chained = chained  # a task of a chain failed with an earlier task of that chain
        self.counted = False  # set by _store_result, taken by on_chord_part_return
        self.left: int | None = None
        self.claim = b""


#: Whether Celery fails the tasks chained after a chord callback that failed (5.7+); before, the
#: callback's chain was left unrun, and a part of an enclosing chord there never counted.
_CALLBACK_CHAINS_FAILED = hasattr(Backend, "_fail_chain")

#: The chord part each thread is marking finished (``part``): its result and its count are
#: written in one transaction by ``_store_result``, which ``on_chord_part_return`` then uses.
_chord_part = threading.local()


@contextlib.contextmanager
def _storing_chord_part(request: Any) -> Iterator[None]:
    """Within the block, store the result of ``request``'s task with its count if it is a chord part.

    A task that is no chord part (no group, no chord callback or no id) goes the usual way.
    """
    gid = getattr(request, "group", None) if request is not None else None
    if not gid or not getattr(request, "chord", None) or not getattr(request, "id", None):
        yield
        return
    previous = _chord_part.__dict__.get("part")
    _chord_part.part = _ChordPart(request, gid)
    try:
        yield
    finally:
        _chord_part.part = previous


@contextlib.contextmanager
def _failing_chains() -> Iterator[None]:
    """Within the block, a chained task Celery fails with an earlier one is stored with its count.

    When a task fails, Celery stores the same failure for the tasks chained
    after it and, for one that is a chord part (the last task of a chain in a
    chord header), then calls ``on_chord_part_return`` with the request it
    stored the failure with: ``_store_result`` counts that part in the
    transaction that stores its failure (see :func:`_chained_part`).
    """
    state = _chord_part.__dict__
    previous = state.get("part"), state.get("failing_chains", False)
    _chord_part.failing_chains = True
    try:
        yield
    finally:
        _chord_part.part, _chord_part.failing_chains = previous


def _chained_part(request: Any, task_id: str, state: str) -> _ChordPart | None:
    """The chord part a failure being stored belongs to, if Celery is failing it with its chain.

    Only while a failure is propagated down a chain (see :func:`_failing_chains`),
    for a failed state, and for a request that is a chord part Celery built
    from a chained task's signature (it has that signature's ``options``,
    which no task's own request has): Celery calls ``on_chord_part_return``
    with it right after storing its failure (Celery 5.7+ unless that task had
    failed already, see :meth:`KVBackend._store_result`).
    """
    if not _chord_part.__dict__.get("failing_chains") or state not in states.PROPAGATE_STATES:
        return None
    options = getattr(request, "options", None)  # only the request Celery rebuilds from a chained signature
    if not isinstance(options, dict) or "chord" not in options:
        return None
    gid = getattr(request, "group", None) if request is not None else None
    if not gid or not getattr(request, "chord", None) or getattr(request, "id", None) != task_id:
        return None
    return _ChordPart(request, gid, chained=True)


def _enclosing_part(callback: Any) -> Context | None:
    """The request to fail a chord callback with, failed unsent, where Celery gives it none.

    A chord nested in another chord's header has a callback that counts as a part of the
    enclosing chord (its options name that chord: ``chord``, ``group_id``). Run, it is counted
    with its result as any part; failed without being sent (a part of its own chord failed),
    Celery stores its failure with no request, so the enclosing chord never counted it and never
    completed. So is a callback followed by a chain (``chain(chord(header, cb), t)`` in another
    chord's header): before Celery 5.7 its chain was not failed with it, and ``t``, a part of the
    enclosing chord, was never counted; the request carries that chain, which Celery's
    ``mark_as_failure`` fails then. None for anything else (a group callback, a chord that is no
    part and has no chain to fail, or one Celery fails itself).
    """
    options = getattr(callback, "options", None)
    if not isinstance(options, dict) or isinstance(callback, group) or not options.get("task_id"):
        return None
    part = bool(options.get("chord") and options.get("group_id"))
    chain = None if _CALLBACK_CHAINS_FAILED else options.get("chain")
    if not part and not chain:
        return None
    request = Context(dict(callback))
    request.update(options)
    request.id, request.group = options["task_id"], options.get("group_id") if part else None
    if not part:
        request.chord = None
    request.chain = chain or None  # (Celery 5.7+ fails the tasks chained after the callback itself)
    return request


def _chain_as_task(callback: Any) -> Any:
    """A chord callback that is a chain, as its first task followed by the rest: what Celery fails.

    Before Celery 5.7 ``chain(chord(header, cb), t)`` is sent as a chord whose callback is
    ``chain(cb, t)``, which has no task id of its own: failing it (a header task failed) raised
    ``ValueError: task_id must not be empty`` out of the part completing the chord, and neither
    ``cb`` nor ``t`` was failed. ``cb`` is failed, with ``t`` chained after it (see
    :func:`_enclosing_part`). Any other callback is returned as it is.
    """
    if not isinstance(callback, _chain) or not callback.tasks:
        return callback
    first, rest = callback.tasks[0], callback.tasks[1:]
    if isinstance(first, (group, _chain, _chord)) or not first.options.get("task_id"):
        return callback
    first = first.clone()
    # Celery lists a chain's tasks still to run last first.
    first.options["chain"] = [*(callback.options.get("chain") or []), *(dict(t) for t in reversed(rest))]
    return first


def _without_errbacks(callback: Any, called: list[dict[str, Any]]) -> Any:
    """``callback`` without the errbacks in ``called``: those a chord nested in its chord's header
    called already, failing first (Celery links a chord's errbacks to the chords in its header)."""
    if isinstance(callback, group) or not called:
        return callback
    errbacks = callback.options.get("link_error") or []
    kept = [e for e in errbacks if dict(e) not in called]
    if len(kept) == len(errbacks):
        return callback
    callback = callback.clone()
    callback.options["link_error"] = kept
    return callback


class ChordPartResults(StoreBackend):
    """Stores a finishing chord part's result and its count in one transaction (see :meth:`_store_result`)."""

    def _store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        traceback: str | None = None,
        request: Any = None,
        **kwargs: Any,
    ) -> Any:
        if self._dropped_by_read_only_worker(
            f"cannot store the {state} state of {{task}}",
            task_id,
            request,
            "its clients see the task as PENDING",
        ):
            return result
        meta = self._get_result_meta(result=result, state=state, traceback=traceback, request=request)
        meta["task_id"] = bytes_to_str(task_id)
        payload = self.encode(meta)  # encoded before taking the lock: other writers don't wait on it
        key = self.get_key_for_task(task_id)
        db = self._writer("cannot store the result of task", meta["task_id"])
        part = _chord_part.__dict__.get("part")
        if part is None or part.request is not request:
            part = _chained_part(request, meta["task_id"], state)
        if (
            part is not None
            and part.request is request
            and meta["task_id"] == request.id
            and state in states.READY_STATES
        ):
            # A chord part finishing (see mark_as_done): its result and its count in one
            # transaction, so that a process killed between the two leaves neither.
            with db.transaction():
                if part.chained and self._failed_already(db, key):
                    # Celery 5.7+ does not return the part of a chained task that had failed
                    # (5.3 does: its marker then keeps it from being counted twice).
                    self._write_result(db, task_id, key, payload, state)
                    return result
                self._write_result(db, task_id, key, payload, state)
                part.claim = uuid.uuid4().hex.encode()
                part.left = self._count_undamaged(
                    self.get_key_for_chord(part.gid),
                    part.gid,
                    task_id,
                    self._chord_part_ttl(),
                    part.claim,
                    request.chord,
                    getattr(request, "group_index", None),
                )
                part.counted = True
            if part.chained:
                _chord_part.part = part  # for the on_chord_part_return Celery calls next with this request
            return result
        with db.locked():
            self._write_result(db, task_id, key, payload, state)
        return result

    def _failed_already(self, db: DB, key: bytes | str) -> bool:
        """True if the task at ``key`` has a failed state (FAILURE, REVOKED) stored."""
        try:
            current = db.get(ensure_bytes(key))
        except CorruptionError:
            return False  # a damaged record (a disk fault): no state to be read
        return current is not None and self.decode_result(current).get("status") in states.PROPAGATE_STATES

    def mark_as_done(
        self,
        task_id: str,
        result: Any,
        request: Any = None,
        store_result: bool = True,
        state: str = states.SUCCESS,
    ) -> Any:
        """Celery's ``mark_as_done``; a chord part's result is stored and counted in one transaction."""
        with _storing_chord_part(request):
            return super().mark_as_done(
                task_id, result, request=request, store_result=store_result, state=state
            )

    def mark_as_failure(
        self,
        task_id: str,
        exc: BaseException,
        traceback: str | None = None,
        request: Any = None,
        store_result: bool = True,
        call_errbacks: bool = True,
        state: str = states.FAILURE,
    ) -> Any:
        """Celery's ``mark_as_failure``; a chord part's failure is stored and counted in one transaction.

        So is the failure Celery gives the chord part that ends a chain in a
        chord header when an earlier task of that chain fails, and the failure of
        a chord's callback that is a part of an enclosing chord (see
        :meth:`chord_error_from_stack`).
        """
        if request is None:
            enclosing = _chord_part.__dict__.get("enclosing")
            if enclosing is not None and enclosing.id == task_id:
                request = enclosing
        with _storing_chord_part(request), _failing_chains():
            return super().mark_as_failure(
                task_id,
                exc,
                traceback=traceback,
                request=request,
                store_result=store_result,
                call_errbacks=call_errbacks,
                state=state,
            )

    def mark_as_revoked(
        self,
        task_id: str,
        reason: str = "",
        request: Any = None,
        store_result: bool = True,
        state: str = states.REVOKED,
    ) -> Any:
        """Celery's ``mark_as_revoked``; a revoked chord part is stored and counted in one transaction."""
        with _storing_chord_part(request):
            return super().mark_as_revoked(
                task_id, reason=reason, request=request, store_result=store_result, state=state
            )

    def chord_error_from_stack(self, callback: Any, exc: BaseException | None = None) -> Any:
        """Celery's ``chord_error_from_stack``; chained chord parts fail in one transaction.

        Celery 5.7+ also fails the tasks chained after a failed chord callback:
        one of them that is a part of an enclosing chord is stored and counted
        in one transaction, as in :meth:`mark_as_failure`. So is the callback
        itself when it is a part of an enclosing chord (a chord in a chord's
        header): Celery stored its failure and left the enclosing chord waiting
        for it for ever (its callback never sent nor failed). The enclosing
        chord's errbacks that the nested chord's failure called already (Celery
        links a chord's errbacks to the chords in its header too) are not called
        again when the enclosing chord fails in turn.
        """
        previous = _chord_part.__dict__.get("enclosing")
        called = _chord_part.__dict__.get("errbacks_called") or []
        callback = _without_errbacks(_chain_as_task(callback), called)
        _chord_part.enclosing = _enclosing_part(callback)
        if not isinstance(callback, group):  # its errbacks are called next (Celery calls a group's tasks')
            errbacks = callback.options.get("link_error") or []
            _chord_part.errbacks_called = [*called, *(dict(e) for e in errbacks)]
        try:
            with _failing_chains():
                return super().chord_error_from_stack(callback, exc)
        finally:
            _chord_part.enclosing = previous
            _chord_part.errbacks_called = called
