"""A chord whose counter a merge dropped before its size was announced fails once, instead of hanging.

A merge of an earlier release did not copy a record that failed its checksum: a chord's damaged
counter was gone after it (merges now keep such a record as it is). A counter dropped after the
chord's first parts were counted and before the client announced its size was counted from 0 again
(by the client announcing the size, or by a part finishing first): the count never reached 0, the
callback was neither sent nor failed, and ``get()`` on the chord waited for ever. The client now
writes the counter (at 0) and the size key when it sends the chord, so a counter found gone is met
as damaged, and the chord fails with a ChordError, once, as for a counter damaged before the size
was announced.

Failing it, rather than rebuilding the count from the parts' markers: a marker is as exposed to the
disk fault as the counter (a merge of an earlier release dropped it as silently), a count rebuilt
short would never complete, and finding the markers takes a scan of the store's keys. A failed chord
says what happened, as it does for a counter that is only damaged.
"""

from __future__ import annotations

import pytest
from celery import states
from celery_helpers import finish_part, make_chord
from test_celery_chord_counter_fails16 import _counting_failures, _failed_with_chord_error
from test_celery_chord_recovery9 import _left
from test_chord_counter_dropped16 import _lose_count
from test_chord_dropped_complete17 import _backend

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


@pytest.mark.parametrize("counted", [1, 2])
@pytest.mark.parametrize("part_before_size", [False, True])
def test_counter_dropped_before_the_size_is_announced_fails_the_chord_once(
    store_path, monkeypatch, counted, part_before_size
):
    backend = _backend(store_path)
    failures = b"test-chord-failures"
    _counting_failures(backend, monkeypatch, failures)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=4, announce=False)
    for task_id in ids[:counted]:
        finish_part(backend, gid, task_id, body)
    _lose_count(backend, gid)
    rest = ids[counted:]
    if part_before_size:  # a part counted from 0 again would have hidden the loss from the size
        finish_part(backend, gid, rest[0], body, value=5)
        rest = rest[1:]
    backend.set_chord_size(gid, 4)  # the client, before it sends the last part: no exception
    for task_id in rest:
        finish_part(backend, gid, task_id, body, value=9)
        assert backend.get_task_meta(task_id, cache=False)["result"] == 9
    _failed_with_chord_error(backend, body, gid)
    assert "is gone" in str(backend.get_task_meta(body.id, cache=False)["result"])
    for task_id in ids:  # copies of the parts: nothing more happens
        finish_part(backend, gid, task_id, body)
    assert backend.db.get(failures) == b"1"
    assert sent == []
    # A chord failed before its size was announced keeps its note (until result_chord_expires):
    # the size announced after it and the parts still to come found it failed, and wrote nothing.
    assert _left(backend, gid) == ([backend._damaged_key(gid)] if part_before_size else [])
    assert backend.recover_chords() == 0


def test_a_chord_sent_and_completed_as_usual_leaves_nothing(store_path, monkeypatch):
    backend = _backend(store_path)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3, announce=False)
    assert backend.db.get(backend.get_key_for_chord(gid)) == b"0"  # written when the chord is sent
    finish_part(backend, gid, ids[0], body)
    backend.set_chord_size(gid, 3)
    for task_id in ids[1:]:
        finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1, 1],)]
    assert backend.get_task_meta(body.id, cache=False)["status"] == states.PENDING  # sent, not run here
    assert _left(backend, gid) == []
