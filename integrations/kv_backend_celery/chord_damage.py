"""Chords whose records are damaged on disk (failing their checksum): failed once, with a ChordError.

A chord whose counter (or a generator header's positions) is damaged cannot
complete: the first part to meet the damage takes the chord's claim and fails
its callback with a ChordError naming the damaged record.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from celery.exceptions import ChordError

from kv_backend import DB
from kv_backend.errors import CorruptionError
from kv_backend_celery.chord_recovery import ChordRecovery, _TakenOver
from kv_backend_celery.store import bytes_to_str, ensure_bytes

__all__ = ["DamagedChords"]

# The backend's one logger, whatever module logs: the name users configure.
logger = logging.getLogger("kv_backend_celery.backend")


class DamagedChords(ChordRecovery):
    """Fails, once, a chord that a record damaged on disk keeps from completing."""

    def _damaged_key(self, gid: str) -> bytes:
        """Where a chord failed for a damaged record keeps the ChordError's message until its end."""
        return ensure_bytes(self.get_key_for_chord(gid, ".damaged"))

    def _damage_reason(self, db: DB, gid: str) -> str | None:
        """Why the chord fails for a damaged record (see :meth:`_take_damaged`); None: it does not."""
        try:
            raw = db.get(self._damaged_key(gid))
        except CorruptionError as exc:  # that note damaged in turn: the chord fails all the same
            return f"chord {gid} cannot complete: a record of it is damaged on disk ({exc})"
        return None if raw is None else raw.decode("utf-8", "replace")

    def _counting_records(self, db: DB, gid: str, key: bytes) -> Iterator[bytes]:
        """The keys of the records a chord's parts read to count: its counter, and a generator
        header's count of positions and each position (see :meth:`_count_part`)."""
        yield ensure_bytes(key)
        yield self._slots_key(gid)
        try:
            slots = int(db.get(self._slots_key(gid)) or 0)
        except (CorruptionError, ValueError):
            return
        for slot in range(1, slots + 1):
            yield self._slot_key(gid, slot)

    def _damaged_record(self, db: DB, gid: str, keys: Iterable[bytes], exc: CorruptionError) -> str:
        """The ChordError message naming which of the chord's ``keys`` is damaged (``exc``: how)."""
        for key in keys:
            try:
                db.get(key)
            except CorruptionError as found:
                return (
                    f"chord {gid} cannot complete: its record {bytes_to_str(key)!r} is damaged on disk "
                    f"({found})"
                )
        return f"chord {gid} cannot complete: a record of it is damaged on disk ({exc})"

    def _take_damaged(
        self,
        key: bytes,
        gid: str,
        task_id: str | None,
        keep: float | None,
        claim: bytes,
        chord_sig: Any,
        exc: CorruptionError,
    ) -> int | None:
        """Take over (to fail it) a chord whose counter or header positions are damaged on disk.

        Under the write lock, once for the chord whichever parts meet the damage at once: the
        first one writes, in one batch, why it fails, a readable count of 0, its claim, its
        marker, and the callback to the list of chords being fired, and gets 0 (see
        :class:`_TakenOver`); :meth:`_run_chord_callback` then fails the callback with a
        ChordError instead of joining the header. A process killed before that leaves a complete
        chord that a redelivered part or the recovery takes over, and fails, as any other. None
        (nothing more to do here) if the chord failed so already, has a live owner (its claim
        holds: it sends or fails the callback), or is over.

        A chord whose callback is stored was complete (the part that brought its count to 0
        stored it, in the same batch) and its sender was lost: its damaged count was 0, and it
        is taken over as any such chord (the callback is sent), not failed.
        """
        db = self.db
        claim_key = self._claim_key(gid)
        with db.locked():
            group_key = ensure_bytes(self.get_key_for_group(gid))
            slots_key = self._slots_key(gid)
            if (
                self._damaged_key(gid) in db
                or claim_key in db
                or not claim
                # over since the damage was met:
                or not any(k in db for k in (key, group_key, slots_key, self._kept_group_key(gid)))
            ):
                logger.error(
                    "chord %s: a record of it is damaged (%s); part %s not counted, the chord is failed "
                    "or finished elsewhere",
                    gid,
                    exc,
                    task_id,
                )
                return None
            counter_ttl = self._ttl(self._chord_counter_ttl())
            complete = self._callback_key(gid) in db
            reason = self._damaged_record(db, gid, self._counting_records(db, gid, key), exc)
            if complete:
                logger.error("%s; it was complete: taking it over (part %s)", reason, task_id)
            else:
                logger.error(
                    "chord %s: a record of it is damaged (%s); failing the chord: %s", gid, exc, reason
                )
            record = None if complete else self._encode_callback(gid, chord_sig)
            with db.batch() as batch:
                if not complete:
                    batch.put(self._damaged_key(gid), reason.encode(), ttl=counter_ttl)
                batch.put(ensure_bytes(key), b"0", ttl=counter_ttl)
                batch.delete(slots_key)  # a generator header's: later parts must not count on it
                batch.put(claim_key, claim, ttl=self._chord_claim_ttl())
                if task_id:
                    batch.put(self._part_marker(gid, task_id), b"1", ttl=self._ttl(keep))
                if record is not None:
                    batch.put(self._callback_key(gid), record, ttl=counter_ttl)
                    self._note_firing(batch, db, add=[gid])
        return _TakenOver(0)

    def _recover_damaged(
        self, db: DB, gid: str, key: bytes, claim: bytes, exc: CorruptionError
    ) -> bytes | None:
        """The stored callback of a stuck chord whose count is damaged, once claimed.

        Its count failing its checksum (a disk fault), the chord is taken over as a part meeting
        that damage takes it over (see :meth:`_take_damaged`: its callback is stored, so the chord
        was complete, and the callback is sent); None if another process owns the chord. A damaged
        stored callback cannot be sent by any round, and each would fail on it: the chord is left
        out of the recovery (a part delivered again, which carries the callback, can still send it).
        """
        try:
            record = db.get(self._callback_key(gid))
        except CorruptionError as damaged:
            logger.error("chord %s: a record of it is damaged (%s); the recovery leaves it", gid, damaged)
            record = None
        if record is None:  # (or expired with the chord: nothing left to send)
            with db.locked(), db.batch() as batch:
                self._note_firing(batch, db, drop=[gid])
            return None
        if self._take_damaged(key, gid, None, None, claim, None, exc) is None:
            return None
        return record

    def _fail_for_damage(self, gid: str, callback: Any, key: bytes, claim: bytes, reason: str) -> Any:
        """Fail the callback of a chord that a damaged record keeps from completing, and end the chord.

        Only as the owner of its claim (see :meth:`_take_damaged`): once, and never as well as sent.
        A chord failed so before the client announced its size keeps the note saying why (for
        ``result_chord_expires``, as the counter would have lived): the size announced next and the
        parts still to come find the chord failed, and leave nothing behind.
        """
        if not self._keep_claim(gid, key, claim, self._chord_publish_ttl(callback)):
            return self._taken_over(gid)
        try:
            announced = self.db.get(self._size_key(gid)) != b""  # (see _apply_chord_incr)
        except CorruptionError:
            announced = False
        deps = self._saved_group(gid)
        if self._sized_when_sent(gid, deps):  # its size may be announced still
            announced = False
        try:
            try:
                raise ChordError(reason)
            except ChordError as exc:  # chord_error_from_stack records the traceback being handled
                return self.chord_error_from_stack(callback, exc)
        finally:
            self._end_chord(gid, key, deps, keep_note=not announced)
