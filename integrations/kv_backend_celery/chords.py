"""Chords counted in the store: each part adds one, and the part that completes the chord sends the callback.

Celery's counter-based chords (``implements_incr``): the client subtracts the
chord size, each finished part adds one with the store's atomic cross-process
``incr``, and the part that brings the counter to zero, holding the chord's
claim, joins the header results and sends the callback.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from celery import group, maybe_signature, states
from celery.exceptions import ChordError
from celery.result import AsyncResult, GroupResult, ResultSet, allow_join_result
from celery.utils.functional import _regen

from kv_backend import DB
from kv_backend.errors import CorruptionError
from kv_backend_celery.chord_damage import DamagedChords
from kv_backend_celery.chord_forget import _COUNTED, ForgottenParts
from kv_backend_celery.chord_parts import ChordPartResults, _chord_part
from kv_backend_celery.chord_recovery import _recovery_pids, _start_recovery_late, _TakenOver
from kv_backend_celery.config import chord_join_timeout
from kv_backend_celery.store import bytes_to_str, ensure_bytes

__all__ = ["ChordBackend"]

# The backend's one logger, whatever module logs: the name users configure.
logger = logging.getLogger("kv_backend_celery.backend")

#: Whether this Celery's groups send each task with its own index in the group (Celery 5.6 and
#: later): before, a ``group_index`` among a group's options (a chord member replaced by a group)
#: went to every task, and a chord with a generator header cannot be ordered by the indexes.
_GROUPS_KEEP_TASK_INDEXES = "group_index" in inspect.signature(group._apply_tasks).parameters

#: Before Celery 5.6: the generator-header chord this thread is sending, whose size its client
#: announces from this thread (see ``ChordBackend.set_chord_size``).
_sending = threading.local()


def _replaces_a_part(body: Any) -> bool:
    """Whether a chord's callback carries a chord part's ``group_index``: the chord Celery makes of
    the group a part is replaced with (``Task.replace()``), which before 5.6 sends that index with
    every task of its header."""
    options = getattr(body, "options", None)
    return isinstance(options, dict) and options.get("group_index") is not None


def _chord_error(message: str, cause: BaseException) -> ChordError:
    error = ChordError(message)
    error.__cause__ = cause
    return error


def _failed_part(results: Iterable[Any]) -> AsyncResult | None:
    """The first header result in a failed state, looking inside nested groups.

    A chord header may hold a group (a chain that ends in one): its result has
    no state of its own, the failure is in one of its tasks.
    """
    for result in results:
        if isinstance(result, ResultSet):
            found = _failed_part(result.results)
            if found is not None:
                return found
        elif result.state in states.PROPAGATE_STATES:
            return result
    return None


def _header_parts(results: Iterable[Any]) -> Iterator[AsyncResult]:
    """The task results of a chord header, those inside nested groups included (each is a part)."""
    for result in results:
        if isinstance(result, ResultSet):
            yield from _header_parts(result.results)
        else:
            yield result


def _nested_groups(results: Iterable[Any]) -> Iterator[ResultSet]:
    """The groups nested in a chord header (a header chain that ends in a group leaves one)."""
    for result in results:
        if isinstance(result, ResultSet):
            yield result
            yield from _nested_groups(result.results)


def _size_if_shared(gid: str, results: Iterable[Any]) -> int | None:
    """The chord's size if a group nested in its header bears the chord's own id, else None.

    Before Celery 5.6 the group ending a header chain takes the chord's group id as its own, and
    the worker applying it announces its size under that id too: a second announcement, made
    before or after the client's, which the counter must not subtract. The client knows the
    size then (one part per task result in the header, nested ones included).
    """
    results = list(results)
    if not any(getattr(nested, "id", None) == gid for nested in _nested_groups(results)):
        return None
    return sum(1 for _ in _header_parts(results))


class ChordBackend(ChordPartResults, DamagedChords, ForgottenParts):
    """Counts a chord's parts, and sends its callback from the part that completes it."""

    #: Shortest lifetime (seconds) of the claim the part that completes a chord
    #: holds while it joins the header and sends the callback.
    chord_claim_min = 1.0

    def _chord_counter_ttl(self) -> float | None:
        """Lifetime of a chord's part counter and markers.

        Celery 5.7+ has ``result_chord_expires`` for it (``chord_expires``);
        earlier releases give chord keys the ``result_expires`` lifetime.
        """
        return getattr(self, "chord_expires", self.expires)

    def _chord_part_ttl(self) -> float | None:
        """Lifetime of a running chord's header results and group (never below result_expires)."""
        ttl = getattr(self, "_chord_result_expires", None)
        if ttl is None:
            ttl = self._chord_counter_ttl()
        return ttl

    def _apply_chord_incr(self, header_result_args: Any, body: Any, **kwargs: Any) -> None:
        """Prepare a chord's bookkeeping before its header is sent (Celery calls it as ``apply_chord``).

        A header given as a list: its group is saved, as Celery's key-value
        backends do. A header given as a generator (Celery hands its results
        over as a lazy ``_regen``) is not unrolled here: Celery sends each of
        its tasks as the generator yields it and announces the size before the
        last one (Celery issue #3021). Saving its group would pull the whole
        generator before the first task goes out, and the results it would
        freeze are not the tasks being sent. Instead the chord is marked as
        one whose parts record their header position (see :meth:`_count_part`);
        the part that completes it saves the group from those positions.

        Before Celery 5.6 a group applied with a ``group_index`` option of its own (the group a
        task is replaced with inside a chord) handed that one index to every task it sent, so
        the positions cannot order such a chord's header: there the generator is unrolled and
        its group saved first, as for a list. A group nested in a generator header takes the
        chord's id there, and announces its size under it: only the announcement of the thread
        sending the chord counts (see :meth:`set_chord_size`).
        """
        self._check_writable("cannot send a chord: chords need a writable client (it stores their counters)")
        gid = header_result_args[0]
        results = header_result_args[1] if len(header_result_args) > 1 else None
        slotted = isinstance(results, _regen) and (_GROUPS_KEEP_TASK_INDEXES or not _replaces_a_part(body))
        if not slotted:
            super()._apply_chord_incr(header_result_args, body, **kwargs)
        else:
            self.ensure_chords_allowed()
            if not _GROUPS_KEEP_TASK_INDEXES:
                _sending.gid = gid
        # The counter is there from now on, and the size key says so (see _count_part): a
        # counter gone before the size is announced (a merge of an earlier release dropped it for
        # failing its checksum) is not counted from 0 again. A
        # size known now (see _size_if_shared) is counted at once: announcements are then ignored.
        size = None if slotted or results is None else _size_if_shared(gid, results)
        ttl = self._ttl(self._chord_counter_ttl())
        db = self.db
        with db.locked(), db.batch() as batch:
            if self.get_key_for_chord(gid) not in db:
                batch.put(self.get_key_for_chord(gid), str(-(size or 0)).encode(), ttl=ttl)
                batch.put(self._size_key(gid), b"" if size is None else str(size).encode(), ttl=ttl)
            if slotted:
                batch.put(self._slots_key(gid), b"0", ttl=ttl)

    def _size_key(self, gid: str) -> bytes:
        """Written (empty) with the counter when the chord is sent, then holding the size the client
        announces; it goes with the counter: a counter missing while it is there was dropped by a
        merge (see :meth:`_count_part`)."""
        return ensure_bytes(self.get_key_for_chord(gid, ".size"))

    @staticmethod
    def _sized(db: DB, size_key: bytes) -> bool:
        """Whether the chord's size is recorded (one damaged on disk is taken as not recorded)."""
        try:
            return bool(db.get(size_key))
        except CorruptionError:
            return False

    @staticmethod
    def _sized_when_sent(gid: str, deps: GroupResult | None) -> bool:
        """Whether the chord was sent with its size counted (see :func:`_size_if_shared`): its size
        may still be announced, by the client or by a group nested in its header."""
        return deps is not None and _size_if_shared(gid, deps.results) is not None

    def _slots_key(self, gid: str) -> bytes:
        """How many parts of a generator-header chord recorded their position (also marks such a chord)."""
        return ensure_bytes(self.get_key_for_chord(gid, ".slots"))

    def _slot_key(self, gid: str, slot: int) -> bytes:
        """Where the ``slot``-th counted part of a generator-header chord keeps its position and task id."""
        return ensure_bytes(self.get_key_for_chord(gid, f".slot.{slot}"))

    def _slotted_group(self, db: DB, gid: str, slots: int, last: tuple[Any, str], batch: Any) -> bytes | None:
        """The encoded header group of a generator-header chord its last part completes (write lock held).

        Read from the positions its other ``slots - 1`` parts recorded, plus
        ``last`` (the completing part's); each is dropped in ``batch``. Parts
        are ordered by their index in the header (``group_index``), in
        counting order where that is missing or shared (a group nested in the
        header numbers its own tasks). None if a position is missing (expired):
        the chord then fails with its lost group.
        """
        entries = []
        lost = False
        for slot in range(1, slots):
            raw = db.get(self._slot_key(gid, slot))
            batch.delete(self._slot_key(gid, slot))
            if raw is None:
                lost = True
                continue
            index, task_id = json.loads(raw)
            entries.append((index, slot, task_id))
        if lost:
            logger.error("chord %s: a header position recorded by one of its parts is gone", gid)
            return None
        entries.append((last[0], slots, last[1]))
        entries.sort(key=lambda e: (e[0] is None, e[0] if isinstance(e[0], int) else 0, e[1]))
        header = self.app.GroupResult(gid, [self.app.AsyncResult(task_id) for _, _, task_id in entries])
        return ensure_bytes(self.encode({"result": header.as_tuple()}))

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """Subtract the chord's size from its part counter (the client calls this before the last part).

        Parts add one as they finish, so the counter reaches exactly zero when
        the last one does, whichever order the size and the parts arrive in.

        A counter damaged on disk (parts counted before the size, then a disk fault) raised
        CorruptionError out of the client's ``apply_async``, before the header's last task was
        sent: the chord never completed. It is left as it is (the size is recorded): the parts
        still to come (the last one is sent next) meet the damage and fail the chord (see
        :meth:`_take_damaged`).

        A counter gone (a merge of an earlier release dropped a record failing its checksum) after
        the client wrote it
        when it sent the chord (see :meth:`_apply_chord_incr`) is not counted from 0 again: the
        size is recorded without it, and the parts still to come meet it gone (see
        :meth:`_count_part`).

        Before Celery 5.6 a generator header's size is the one its client announces, from the
        thread that sent the chord (see :meth:`_apply_chord_incr`).

        A size recorded already is not subtracted again: the chord was sent with its size (a group
        nested in its header bears its id, see :func:`_size_if_shared`), and this is the client's
        announcement or that nested group's.
        """
        key = self.get_key_for_chord(group_id)
        size_key = self._size_key(group_id)
        db = self.db
        with db.locked():
            if self._damaged_key(group_id) in db:  # failed already for a damaged record: keep its 0
                return
            if not _GROUPS_KEEP_TASK_INDEXES and self._slots_key(group_id) in db:
                if _sending.__dict__.get("gid") != group_id:  # a nested group's, under the chord's id
                    logger.debug(
                        "chord %s: size %s of a group in its header not subtracted", group_id, chord_size
                    )
                    return
                _sending.gid = None
            if self._sized(db, size_key):
                logger.debug("chord %s: its size is counted already; %s not subtracted", group_id, chord_size)
                return
            counted = False
            if key not in db and size_key in db:  # written with the counter (see _apply_chord_incr)
                logger.error(
                    "chord %s: its counter is gone (a merge of an earlier release dropped a record "
                    "failing its checksum); "
                    "the chord fails when its next part finds it gone",
                    group_id,
                )
            else:
                try:
                    db.incr(key, -int(chord_size))
                    counted = True
                except CorruptionError as exc:
                    logger.error(
                        "chord %s: its counter is damaged (%s); the chord fails when its next part "
                        "meets the damage",
                        group_id,
                        exc,
                    )
            size = str(int(chord_size)).encode()
            db.put(size_key, size, ttl=self._ttl(self._chord_counter_ttl()))
        if counted:
            self.expire(key, self._chord_counter_ttl())

    def on_chord_part_return(self, request: Any, state: str, result: Any, **kwargs: Any) -> Any:
        """Count a finished chord part with one atomic ``incr``; the part that brings it to zero fires.

        Exactly one part, in whichever process, sees the counter reach zero, so
        the callback is sent once and no ``chord_unlock`` task polls. Only that
        part reads the saved header group back (doing it for every part would
        cost O(parts^2) for large chords). A part that finishes before the
        client has announced the size sees a positive count and does nothing
        more: the last part is always sent after the size.
        """
        gid = getattr(request, "group", None)
        chord_sig = getattr(request, "chord", None)
        if not gid or not chord_sig:
            return None
        if self._dropped_by_read_only_worker(
            f"cannot count {{task}} as a part of chord {gid}",
            getattr(request, "id", None),
            request,
            "the chord never completes",
        ):
            return None
        if _recovery_pids.get(id(self.app)) != os.getpid():
            _start_recovery_late(self.app, request)
        key = self.get_key_for_chord(gid)
        task_id = getattr(request, "id", None)
        keep = self._chord_part_ttl()
        part = _chord_part.__dict__.get("part")
        if part is not None and part.request is request and part.counted:
            # Counted with its result, in one transaction (see _store_result): once only.
            part.counted = False
            left, claim = part.left, part.claim
        else:
            claim = uuid.uuid4().hex.encode()
            left = self._count_undamaged(
                key,
                gid,
                task_id,
                keep,
                claim,
                chord_sig,
                getattr(request, "group_index", None),
                self._unstored_result(request, task_id, state, result),
            )
        if left is None:
            return None
        if left == 0:
            return self._run_chord_callback(gid, chord_sig, key, claim, isinstance(left, _TakenOver))
        self.expire(self.get_key_for_group(gid), keep)
        if self._kept_group_key(gid) in self.db:  # deleted while the chord runs (see _delete_group)
            self.expire(self._kept_group_key(gid), keep)
        if task_id:  # (a failed part's result_failure_expires may be longer)
            self.expire(self.get_key_for_task(task_id), self._longest(keep, self._lifetime(state)))
        return None

    def _count_undamaged(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes,
        chord_sig: Any,
        group_index: Any = None,
        unstored: bytes | None = None,
    ) -> int | None:
        """:meth:`_count_part`; if a record of the chord is damaged on disk, the chord is failed.

        Its counter (or a generator header's positions) failing its checksum raised
        CorruptionError out of every part, and the transaction that stores a part's result with
        its count then stored no result either; later the chord never completed and ``get()``
        on it waited for ever. The part's result is stored, and the chord fails (see
        :meth:`_take_damaged`): 0 is returned to the one part that takes that failure over.
        """
        try:
            return self._count_part(key, gid, task_id, keep, claim, chord_sig, group_index, unstored)
        except CorruptionError as exc:
            return self._take_damaged(key, gid, task_id, keep, claim, chord_sig, exc)

    def _count_part(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes = b"",
        chord_sig: Any = None,
        group_index: Any = None,
        unstored: bytes | None = None,
    ) -> int | None:
        """Add one to the chord counter for ``task_id``, once; None if that part was counted already.

        The "counted" marker and the new count are written in one batch under
        the write lock, so a redelivered task is not counted twice and a crash
        can't leave one without the other. The part that brings the count to
        zero writes ``claim`` in the same batch: it owns the callback for
        :meth:`_chord_claim_ttl` seconds. A part delivered again (its worker
        was killed, ``acks_late``) finds its marker; if the count is zero, the
        chord has not been cleaned up and the claim has lapsed, the process
        that was sending the callback died, and this part claims the chord
        and sends it (0 is returned).

        A part delivered again after the chord has fired and been cleaned up
        finds neither its marker, nor the counter, nor the saved group: it is
        not counted (None), so it leaves no counter or marker behind. While a
        chord runs its group is always there (the client saves it before
        sending any part), and a group lost meanwhile leaves the counter, so
        the last part still reports the lost group. A chord whose header was
        a generator has no group yet (see :meth:`_apply_chord_incr`): each
        part records its header position (``group_index``) and task id in a
        slot of its own, in the same batch, and the part that completes the
        chord saves the group built from them in its batch, so the chord
        goes on from there (the join, a take-over, the recovery) as any other.

        The part that completes the chord also records the callback and notes
        the chord among those being fired, in the same batch, so that
        :meth:`recover_chords` can send it if that process dies and no part
        is delivered again.

        ``unstored``: the part's encoded result, which it did not store (``ignore_result``), kept
        in its marker for the chord's join (see :class:`ForgottenParts`).
        """
        db = self.db
        if not task_id:
            left = db.incr(key)
            self.expire(key, self._chord_counter_ttl())
            return left
        marker = self._part_marker(gid, task_id)
        claim_key = self._claim_key(gid)
        claim_ttl = self._chord_claim_ttl()
        with db.locked():
            if marker in db:
                if claim and db.get(key) == b"0" and claim_key not in db:
                    logger.warning(
                        "chord %s: part %s finished again after the process sending the callback "
                        "was lost; sending it from here",
                        gid,
                        task_id,
                    )
                    db.put(claim_key, claim, ttl=claim_ttl)
                    return _TakenOver(0)
                logger.warning("chord %s: part %s finished again; it was counted already", gid, task_id)
                return None
            if self._damaged_key(gid) in db:
                logger.warning("chord %s failed for a damaged record; part %s not counted", gid, task_id)
                return None
            raw = db.get(key)
            group_key = ensure_bytes(self.get_key_for_group(gid))
            slots = None if group_key in db else db.get(self._slots_key(gid))
            if raw is None and slots is None and group_key not in db and self._kept_group_key(gid) not in db:
                self._log_late_part(gid, task_id, chord_sig)
                return None
            if raw is None and self._size_key(gid) in db:
                # The client wrote the counter when it sent the chord (the size key says so): a
                # merge of an earlier release dropped it, as a record failing its checksum (counting
                # from 0 again, the chord never completed).
                when = "its size was announced" if db.get(self._size_key(gid)) else "the chord was sent"
                raise CorruptionError(
                    f"its counter {bytes_to_str(key)!r} is gone after {when} "
                    "(a merge of an earlier release dropped a record that failed its checksum)"
                )
            left = (int(raw) if raw is not None else 0) + 1
            record = self._encode_callback(gid, chord_sig) if left == 0 and claim else None
            counter_ttl = self._ttl(self._chord_counter_ttl())
            with db.batch() as batch:
                batch.put(marker, unstored or _COUNTED, ttl=self._ttl(keep))
                batch.put(key, str(left).encode(), ttl=counter_ttl)
                if slots is not None:  # a generator header: this part's position, or the whole group
                    slot = int(slots) + 1
                    if left == 0:
                        batch.delete(self._slots_key(gid))
                        header = self._slotted_group(db, gid, slot, (group_index, task_id), batch)
                        kept = self._kept_group_key(gid)  # there if it was deleted (see _delete_group)
                        if header is not None:
                            batch.put(kept if kept in db else group_key, header, ttl=self._ttl(keep))
                    else:
                        entry = json.dumps([group_index, task_id]).encode()
                        batch.put(self._slots_key(gid), str(slot).encode(), ttl=counter_ttl)
                        batch.put(self._slot_key(gid, slot), entry, ttl=counter_ttl)
                if left == 0 and claim:
                    batch.put(claim_key, claim, ttl=claim_ttl)
                    if record is not None:
                        batch.put(self._callback_key(gid), record, ttl=self._ttl(self._chord_counter_ttl()))
                        self._note_firing(batch, db, add=[gid])
        return left

    def _log_late_part(self, gid: str, task_id: str, chord_sig: Any) -> None:
        """Say why a part finding its chord gone is not counted: the chord is over, or it expired.

        Every part of a chord that expired (no part finished for ``result_chord_expires``, or
        ``result_expires`` when that is unset) finds it gone too, as a part delivered again after
        the chord ended does; such a part was logged as delivered again, and the chord, whose
        callback is never called, as complete.
        """
        callback = maybe_signature(chord_sig, app=self.app) if chord_sig else None
        lifetime = self._ttl(self._chord_counter_ttl())
        if lifetime is None or (callback is not None and self._callback_finished(callback)):
            logger.warning(
                "chord %s: part %s finished again after the chord was complete; ignored", gid, task_id
            )
            return
        logger.warning(
            "chord %s: part %s finished after the chord was complete (its callback is not finished yet), or "
            "after the chord expired: no part had finished for %g s (result_chord_expires, or result_expires "
            "when it is unset), and a chord that expired never calls its callback; not counted",
            gid,
            task_id,
            lifetime,
        )

    def _claim_key(self, gid: str) -> bytes:
        return ensure_bytes(self.get_key_for_chord(gid, ".claim"))

    def _chord_claim_ttl(self) -> float:
        """How long the part that completes a chord owns it before a redelivered part may take over.

        Twice the longest join (``result_chord_join_timeout``; 5 s when it is
        unbounded), so a live owner is never overtaken while it joins.
        """
        join = chord_join_timeout(self.app.conf)
        return max(self.chord_claim_min, 2.0 * (join or 5.0))

    def _chord_publish_ttl(self, callback: Any) -> float:
        """The claim's lifetime while the callback is sent: the join's plus the publish retries' budget."""
        conf = self.app.conf
        policy = dict(conf.get("task_publish_retry_policy") or {})
        policy.update(callback.options.get("retry_policy") or {})
        retry = callback.options.get("retry", conf.get("task_publish_retry", True))
        retries = policy.get("max_retries", 3) if retry else 0
        retries = 3 if retries is None else max(int(retries), 0)
        per_try = float(conf.get("broker_connection_timeout") or 4.0)
        per_try += float(policy.get("interval_max", 1) or 0)
        return self._chord_claim_ttl() + (retries + 1) * per_try

    def _keep_claim(self, gid: str, key: bytes, claim: bytes, ttl: float) -> bool:
        """Extend this process's claim on the chord to ``ttl`` seconds; False if another process owns it.

        A claim that lapsed (a slow join) is taken back as long as the chord is
        still complete and nobody else has claimed it.

        A claim damaged on disk cannot tell its owner: it is taken as another process's, so
        nobody sends the callback until it expires (seconds), and then the recovery takes the
        chord over. A damaged count was 0 when this process claimed the chord, and nobody else
        can have claimed it since: a process taking over a chord reads its count (and a chord
        failed for that damage gets a new one, see :meth:`_take_damaged`).
        """
        db = self.db
        claim_key = self._claim_key(gid)
        with db.locked():
            try:
                current = db.get(claim_key)
            except CorruptionError as exc:
                logger.error("chord %s: its claim is damaged (%s); left until it expires", gid, exc)
                return False
            if current not in (None, claim) or self._count_of(db, gid, key) != b"0":
                return False
            db.put(claim_key, claim, ttl=ttl)
        return True

    def _count_of(self, db: DB, gid: str, key: bytes) -> bytes | None:
        """The chord's stored count; ``b"0"`` for one damaged on disk (see :meth:`_keep_claim`), or gone
        while the chord is not over (its size key, which goes with it, is there): a merge of an earlier
        release dropped it, failing its checksum. None: the chord is over."""
        try:
            count = db.get(key)
        except CorruptionError as exc:
            logger.error("chord %s: its count is damaged (%s)", gid, exc)
            return b"0"
        if count is None and self._size_key(gid) in db:
            logger.error(
                "chord %s: its count is gone (a merge of an earlier release dropped a record failing its "
                "checksum)",
                gid,
            )
            return b"0"
        return count

    def _restore_chord_group(self, gid: str, chord_sig: Any) -> GroupResult | None:
        """The chord's saved header group, or None after recording a ChordError on the callback."""
        try:
            deps = self._restore_header(gid)
        except Exception as exc:
            logger.exception("chord %s: cannot restore its group", gid)
            self.chord_error_from_stack(
                maybe_signature(chord_sig, app=self.app), _chord_error(f"Cannot restore group: {exc!r}", exc)
            )
            return None
        if deps is None:
            # chord_error_from_stack records the traceback of the exception being handled.
            try:
                raise ChordError(f"GroupResult {gid} no longer exists (expired or deleted before the end)")
            except ChordError as exc:
                logger.error("chord %s: %s", gid, exc)
                self.chord_error_from_stack(maybe_signature(chord_sig, app=self.app), exc)
        return deps

    def _run_chord_callback(
        self, gid: str, chord_sig: Any, key: bytes, claim: bytes, taken_over: bool = False
    ) -> Any:
        callback = maybe_signature(chord_sig, app=self.app)
        if taken_over and self._callback_finished(callback):
            # The process that sent the callback (or stored its ChordError) died
            # before clearing the chord's keys.
            logger.warning(
                "chord %s: its callback %s has finished already, so it was sent; not sending it again",
                gid,
                callback.id,
            )
            self._end_chord(gid, key, self._saved_group(gid))
            return None
        reason = self._damage_reason(self.db, gid)
        if reason is not None:
            return self._fail_for_damage(gid, callback, key, claim, reason)
        deps = self._restore_chord_group(gid, chord_sig)
        if deps is None:
            db = self.db
            with db.locked(), db.batch() as batch:  # the parts' markers expire with _chord_counter_ttl()
                batch.delete(ensure_bytes(key))
                batch.delete(self._size_key(gid))
                batch.delete(self._claim_key(gid))
                batch.delete(self._callback_key(gid))
                self._note_firing(batch, db, drop=[gid])
            return None
        owner = joined = False
        publish_ttl = self._chord_publish_ttl(callback)
        recalled = self._recall_forgotten(gid, _header_parts(deps.results))
        try:
            try:
                join = deps.join_native if deps.supports_native_join else deps.join
                with allow_join_result():
                    values = join(timeout=chord_join_timeout(self.app.conf), propagate=True)
                joined = True  # (every part succeeded: a failed one raises)
            except Exception as exc:
                cause: BaseException = exc
                try:
                    culprit = _failed_part(deps.results)
                except CorruptionError as damaged:
                    # A part's stored result fails its checksum: it can never be read, so the
                    # chord fails, naming the record, rather than being taken over for ever.
                    culprit, cause = None, damaged
                if culprit is not None:
                    # The join may stop at another failed part than the first one: name the
                    # culprit with its own exception, not another part's.
                    own = culprit.result
                    cause = own if isinstance(own, BaseException) else exc
                reason = f"Dependency {culprit.id} raised {cause!r}" if culprit is not None else repr(cause)
                owner = self._keep_claim(gid, key, claim, publish_ttl)
                if not owner:
                    return self._taken_over(gid)
                logger.error("chord %s failed: %s", gid, reason)
                return self.chord_error_from_stack(callback, _chord_error(reason, cause))
            owner = self._keep_claim(gid, key, claim, publish_ttl)
            if not owner:
                return self._taken_over(gid)
            try:
                return self._publish_callback(callback, values)
            except Exception as exc:
                logger.exception("chord %s: cannot send its callback", gid)
                return self.chord_error_from_stack(callback, _chord_error(f"Callback error: {exc!r}", exc))
        finally:
            self._end_recall(recalled)
            if owner:
                self._end_chord(gid, key, deps, succeeded=joined)

    def _saved_group(self, gid: str) -> GroupResult | None:
        """The chord's saved header group, if it can be read, only to end the chord."""
        try:
            return self._restore_header(gid)
        except Exception:
            return None

    def _publish_callback(self, callback: Any, values: Any) -> Any:
        """Send the chord's callback, retrying a refused publish as Celery's own backends do.

        Celery 5.7+ sends a chord callback through ``app.amqp._retry_publish``,
        which retries (reconnecting) a publish the broker refused, up to the
        publish retry policy; a plain ``delay()`` fails the whole chord with a
        ChordError at the first refusal. Earlier releases have no such step.
        """
        retry_publish = getattr(self.app.amqp, "_retry_publish", None)
        if retry_publish is None:
            return callback.delay(values)
        return retry_publish(callback.delay, values)

    @staticmethod
    def _taken_over(gid: str) -> None:
        # Only the owner of the claim finishes the chord: this process was too slow,
        # and a redelivered part took the chord over and sends its callback.
        logger.warning("chord %s: another process took over its callback; not sending it from here", gid)

    def _callback_finished(self, callback: Any) -> bool:
        """True if the chord's callback has a finished state here: it was sent (or failed with a ChordError).

        Only a finished state (``SUCCESS``, ``FAILURE``, ``REVOKED``) proves
        it: a callback that replaces a task (``Task.replace()`` with a group
        makes a chord whose callback takes the replaced task's id) finds that
        task's ``STARTED`` or progress states under its id before it is sent.
        No finished state proves nothing: the callback may still wait in the
        broker, run, ignore its result, or keep it in another backend; nor does
        a record damaged on disk, which no read gets back.
        """
        callback_id = getattr(callback, "id", None)
        if not callback_id or isinstance(callback, group):
            return False
        try:
            return self._stored_state(callback_id) in states.READY_STATES
        except CorruptionError:
            return False

    def _end_chord(
        self, gid: str, key: bytes, deps: GroupResult | None, succeeded: bool = False, keep_note: bool = False
    ) -> None:
        """Drop the chord's saved group, counter, claim, markers and stored callback, in one write.

        One write: a process killed after sending the callback leaves either
        the whole chord (a redelivered part then finds it) or none of it.
        The tasks of groups nested in the header are parts too, and Celery
        announces each nested group's size under its own id: that counter,
        never reached by a part, goes as well. ``succeeded``: every part is known to have succeeded.
        ``keep_note``: the note of a chord failed for a damaged record stays (see
        :meth:`_fail_for_damage`).
        """
        self._cache.pop(gid, None)
        results = deps.results if deps is not None else []
        parts = list(_header_parts(results))
        db = self.db
        with db.locked(), db.batch() as batch:
            batch.delete(ensure_bytes(self.get_key_for_group(gid)))
            batch.delete(self._kept_group_key(gid))
            batch.delete(ensure_bytes(key))
            batch.delete(self._claim_key(gid))
            batch.delete(self._callback_key(gid))
            if not keep_note:
                batch.delete(self._damaged_key(gid))
            batch.delete(self._size_key(gid))
            self._note_firing(batch, db, drop=[gid])
            for dep in parts:
                batch.delete(self._part_marker(gid, dep.id))
            for nested in _nested_groups(results):
                if getattr(nested, "id", None):
                    batch.delete(ensure_bytes(self.get_key_for_chord(nested.id)))
                    batch.delete(self._size_key(nested.id))
                    batch.delete(self._kept_group_key(nested.id))
        # The chord is over: header results get back their normal lifetime, which for a failed
        # part is result_failure_expires (its state is read only where a part may have failed
        # and that lifetime differs).
        by_state = not succeeded and self._ttl(self.failure_expires) != self._ttl(self.expires)
        for dep in parts:
            try:
                state = self._stored_state(dep.id) if by_state else None
                self.expire(self.get_key_for_task(dep.id), self._lifetime(state))
            except CorruptionError as exc:  # a damaged record: left as it is (kvb check lists it)
                logger.warning("chord %s: the stored result of part %s is damaged: %s", gid, dep.id, exc)
