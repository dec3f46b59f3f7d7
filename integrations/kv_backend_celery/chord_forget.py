"""Results a chord keeps with its parts' markers (forgotten while it ran, or never stored), and its
header group deleted while it ran.

``AsyncResult.forget()`` of a header task whose chord had not ended deleted the only copy of its
result the chord's join reads: the join waited ``result_chord_join_timeout`` for it, then failed
the chord with a ChordError (``TimeoutError``) although every part had succeeded. So did a header
task that ignores its result (``ignore_result=True``, or ``task_ignore_result``), which stores
none. ``redis://`` keeps each part's result with its chord too, and its callback gets them. Here
the forgotten result moves into the part's "counted" marker, which lives as long as the chord and
goes with its end, in one write; a part that stores no result keeps it in its marker when it is
counted; the join reads them from there.

``GroupResult.delete()`` of a running chord's header (``result.parent.delete()``) deleted the group
the part completing the chord reads: the chord failed with "GroupResult ... no longer exists",
where ``redis://`` gives the callback every value. The group now moves to the chord
(``chord-unlock-<group id>.group``), which reads it from there and deletes it at its end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from celery import states
from celery.result import GroupResult

from kv_backend import DB
from kv_backend.errors import CorruptionError
from kv_backend_celery.store import StoreBackend, bytes_to_str, ensure_bytes

__all__ = ["ForgottenParts"]

#: The value of a part's marker while its result is where it belongs (or it has none).
_COUNTED = b"1"

#: The value of a generator-header chord's kept group while it has none: its group was deleted
#: before its last part saved it (see ``_delete_group``).
_DELETED = b""

#: For the chord being joined in this thread: the key of each part's result, and its marker's.
_recalled = threading.local()


class ForgottenParts(StoreBackend):
    """Parts' results (forgotten while their chord ran, or never stored) and a header group deleted
    while it ran, kept with the chord for its end."""

    def _part_marker(self, gid: str, task_id: str) -> bytes:
        """The key marking ``task_id`` as counted in chord ``gid`` (holding its result once forgotten)."""
        return ensure_bytes(self.get_key_for_chord(gid, f".part.{task_id}"))

    def _running_part(self, db: DB, key: bytes) -> tuple[bytes, bytes] | None:
        """``(marker, stored result)`` if the result at ``key`` is a counted part of a chord not ended."""
        try:
            raw = db.get(key)
        except CorruptionError:
            return None  # a damaged record (a disk fault): nothing to keep
        if raw is None:
            return None
        try:
            meta = self.decode_result(raw)
        except Exception:  # not readable here (a serializer this client does not accept): deleted
            return None
        gid, task_id = meta.get("group_id"), meta.get("task_id")
        if not gid or not task_id or meta.get("status") not in states.READY_STATES:
            return None
        marker = self._part_marker(bytes_to_str(gid), bytes_to_str(task_id))
        return (marker, raw) if marker in db else None

    def _unstored_result(self, request: Any, task_id: str | None, state: str, result: Any) -> bytes | None:
        """The encoded result of a finished chord part that stored none (it ignores its result), to
        keep in its marker; None if it stored its result.

        Celery 5.3 stores the ``STARTED`` state of a task whose call asks to ignore its result
        (``.set(ignore_result=True)``) with ``task_track_started``, then no result: a part whose
        stored state is not a finished one stored none.
        """
        if not task_id or state not in states.READY_STATES:
            return None
        try:
            if self._stored_state(task_id) in states.READY_STATES:
                return None
        except CorruptionError:
            pass  # a damaged record (a disk fault): the result kept is the one to read
        meta = self._get_result_meta(
            result=self.encode_result(result, state), state=state, traceback=None, request=request
        )
        meta["task_id"] = bytes_to_str(task_id)
        return ensure_bytes(self.encode(meta))

    def _forget(self, task_id: str) -> None:
        """Delete the result of ``task_id``; a chord part's moves to its marker until its chord ends."""
        key = ensure_bytes(self.get_key_for_task(task_id))
        db = self._writer("cannot delete", key)
        with db.locked():
            running = self._running_part(db, key)
            if running is None:
                db.delete(key)
                return
            marker, raw = running
            self._move(db, key, marker, raw, db.ttl(marker))

    @staticmethod
    def _move(db: DB, key: bytes, kept: bytes, raw: bytes, left: float | None) -> None:
        """Move the value ``raw`` of ``key`` to ``kept``, living ``left`` more seconds (None: for ever),
        in one write (write lock held)."""
        with db.batch() as batch:
            batch.put(kept, raw, ttl=None if left is None else max(left, 0.001))
            batch.delete(key)

    def _kept_group_key(self, gid: str) -> bytes:
        """Where chord ``gid`` keeps its header group deleted while it ran (see :meth:`_delete_group`)."""
        return ensure_bytes(self.get_key_for_chord(gid, ".group"))

    def _delete_group(self, group_id: str) -> None:
        """Delete a saved group (``GroupResult.delete()``); a running chord's header moves to the chord.

        Every reader finds the group deleted at once; the chord reads it where it keeps it (see
        :meth:`_restore_header`) and deletes it at its end, whenever that comes. A chord runs while
        its counter is there. A group damaged on disk (failing its checksum) is only deleted.

        A generator header has no group saved until its last part completes the chord (see
        ``ChordBackend._count_part``): the delete is noted with the chord, and that part keeps the
        group with the chord rather than where readers would find it again.
        """
        key = ensure_bytes(self.get_key_for_group(group_id))
        db = self._writer("cannot delete", key)
        with db.locked():
            raw = None
            running = ensure_bytes(self.get_key_for_chord(group_id)) in db
            if running:
                try:
                    raw = db.get(key)
                except CorruptionError:
                    raw = None
            slots = self._slots_key(group_id)
            if raw is None and running and slots in db:  # a generator header, its group not saved yet
                left = db.ttl(slots)  # (it lives as long as the chord's counter)
                ttl = None if left is None else max(left, 0.001)
                db.put(self._kept_group_key(group_id), _DELETED, ttl=ttl)
                return
            if raw is None:
                db.delete(key)
                return
            self._move(db, key, self._kept_group_key(group_id), raw, db.ttl(key))

    def _restore_header(self, gid: str) -> GroupResult | None:
        """Chord ``gid``'s header group: saved, or kept by the chord once deleted while it ran."""
        previous = self._recall({ensure_bytes(self.get_key_for_group(gid)): self._kept_group_key(gid)})
        try:
            return GroupResult.restore(gid, backend=self)
        finally:
            self._end_recall(previous)

    def _recall_forgotten(self, gid: str, parts: Iterable[Any]) -> dict[bytes, bytes] | None:
        """Until :meth:`_end_recall`, reads in this thread find the results chord ``gid`` keeps for
        its ``parts`` (forgotten while it ran, or never stored) rather than the parts' own: the join
        and its look for a failed part read them. Each is looked for at each read of its part's, so
        a part forgotten while the join reads is found too. Returns what an enclosing join had
        recalled, for :meth:`_end_recall`."""
        return self._recall(
            {ensure_bytes(self.get_key_for_task(p.id)): self._part_marker(gid, p.id) for p in parts}
        )

    @staticmethod
    def _recall(markers: dict[bytes, bytes]) -> dict[bytes, bytes] | None:
        """Until :meth:`_end_recall`, a read in this thread of a key of ``markers`` reads first the key
        it maps to (see :meth:`_kept`); returns what was recalled before, for :meth:`_end_recall`."""
        previous: dict[bytes, bytes] | None = _recalled.__dict__.get("markers")
        _recalled.markers = {**previous, **markers} if previous else markers
        return previous

    @staticmethod
    def _end_recall(previous: dict[bytes, bytes] | None) -> None:
        """The join is over: reads find what they found before it."""
        _recalled.markers = previous

    def _kept(self, key: bytes | str) -> bytes | None:
        """What a chord being read in this thread keeps for ``key``: a part's result (see
        :meth:`_recall_forgotten`), or its header group (see :meth:`_restore_header`). It is read
        before ``key``: kept there, it is the one that counts (a part that stored no result may have
        stored its ``STARTED`` state, see :meth:`_unstored_result`)."""
        markers = _recalled.__dict__.get("markers")
        marker = markers.get(ensure_bytes(key)) if markers else None
        if marker is None:
            return None
        try:
            raw = self.db.get(marker)
        except CorruptionError:
            return None  # the join reports the part as missing
        return None if raw in (_COUNTED, _DELETED) else raw

    def get(self, key: bytes | str) -> bytes | None:
        """The raw value at ``key``; during a chord's join, a part's result it keeps (see :meth:`_kept`)."""
        kept = self._kept(key)
        return super().get(key) if kept is None else kept

    def mget(self, keys: Iterable[bytes | str]) -> list[bytes | None]:
        """The raw values of ``keys``; during a chord's join, parts' results it keeps (see :meth:`_kept`)."""
        keys = list(keys)
        kept = [self._kept(k) for k in keys]
        stored = super().mget([k for k, v in zip(keys, kept, strict=True) if v is None])
        values = iter(stored)
        return [next(values) if v is None else v for v in kept]
