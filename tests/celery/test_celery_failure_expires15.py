"""result_failure_expires for the failed parts of a chord header on kvb://.

A failed task keeps its result for result_failure_expires; a failed chord header task lost it:
while the chord ran its result was kept for the chord's lifetime, and when the chord ended it
got result_expires like the successful parts, as if it had succeeded.
"""

from __future__ import annotations

import celery_helpers
import pytest
from celery import states
from celery.app.task import Context

from kv_backend.errors import CorruptionError

HOUR, WEEK = 3600, 7 * 86400


def ttl(backend, task_id):
    return backend.db.ttl(backend.get_key_for_task(task_id))


def fail_part(backend, gid, task_id, body):
    request = Context(id=task_id, group=gid, chord=dict(body))
    backend.mark_as_failure(task_id, ValueError("bad input"), request=request)


@pytest.mark.parametrize("failure_expires", [WEEK, 60])
def test_a_failed_header_part_keeps_result_failure_expires(store_path, monkeypatch, failure_expires):
    app = celery_helpers.make_app(
        f"kvb://{store_path}", result_expires=HOUR, result_failure_expires=failure_expires
    )
    backend = app.backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=3)
    celery_helpers.finish_part(backend, gid, ids[0], body)
    fail_part(backend, gid, ids[1], body)
    # While the chord runs, its header results are kept at least for result_expires...
    assert HOUR - 60 < ttl(backend, ids[0]) <= HOUR
    # ...and a failed one at least for its own lifetime too.
    assert max(HOUR, failure_expires) - 60 < ttl(backend, ids[1]) <= max(HOUR, failure_expires)
    celery_helpers.finish_part(backend, gid, ids[2], body)
    assert sent == []  # the chord failed: its callback has the ChordError
    assert backend.get_task_meta(ids[1], cache=False)["status"] == states.FAILURE
    # The chord is over: each result has the lifetime of its state, as a task outside a chord.
    for task_id in (ids[0], ids[2]):
        assert HOUR - 60 < ttl(backend, task_id) <= HOUR
    assert failure_expires - 60 < ttl(backend, ids[1]) <= failure_expires
    backend.mark_as_failure("alone", ValueError("bad input"))
    assert failure_expires - 60 < ttl(backend, "alone") <= failure_expires


def test_a_failed_header_part_kept_for_ever_stays(store_path, monkeypatch):
    # result_failure_expires 0: failures are never dropped, inside a chord as outside it
    app = celery_helpers.make_app(f"kvb://{store_path}", result_expires=HOUR, result_failure_expires=0)
    backend = app.backend
    gid, ids, body, _ = celery_helpers.make_chord(backend, monkeypatch, parts=2)
    fail_part(backend, gid, ids[0], body)
    assert ttl(backend, ids[0]) is None
    celery_helpers.finish_part(backend, gid, ids[1], body)
    assert ttl(backend, ids[0]) is None
    assert HOUR - 60 < ttl(backend, ids[1]) <= HOUR


def test_a_chord_whose_parts_all_succeeded_gives_them_result_expires_without_reading_them(
    store_path, monkeypatch
):
    app = celery_helpers.make_app(f"kvb://{store_path}", result_expires=HOUR, result_failure_expires=WEEK)
    backend = app.backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=3)
    reads = []
    monkeypatch.setattr(backend, "_stored_state", lambda task_id: reads.append(task_id))
    for task_id in ids:
        celery_helpers.finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1, 1],)]
    assert reads == []  # the join proved them successful: no part is read again to learn its state
    for task_id in ids:
        assert HOUR - 60 < ttl(backend, task_id) <= HOUR


def test_a_part_whose_state_cannot_be_read_does_not_stop_the_end_of_the_chord(store_path, monkeypatch):
    # The chord's keys are dropped and the other parts get their lifetimes; the unreadable one
    # (a damaged record) is left as it is, with the chord's lifetime (here result_expires).
    app = celery_helpers.make_app(f"kvb://{store_path}", result_expires=HOUR, result_failure_expires=WEEK)
    backend = app.backend
    gid, ids, body, _ = celery_helpers.make_chord(backend, monkeypatch, parts=3)
    fail_part(backend, gid, ids[0], body)
    celery_helpers.finish_part(backend, gid, ids[1], body)
    stored_state = backend._stored_state

    def damaged(task_id):
        if task_id == ids[1]:
            raise CorruptionError(f"record of {task_id} fails its checksum")
        return stored_state(task_id)

    monkeypatch.setattr(backend, "_stored_state", damaged)
    celery_helpers.finish_part(backend, gid, ids[2], body)
    assert backend.restore_group(gid, cache=False) is None  # the chord is over
    assert WEEK - 60 < ttl(backend, ids[0]) <= WEEK
    assert HOUR - 60 < ttl(backend, ids[1]) <= HOUR
    assert HOUR - 60 < ttl(backend, ids[2]) <= HOUR
