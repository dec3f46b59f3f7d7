"""A chord whose counter is gone (a merge of an earlier release dropped it) fails, instead of hanging.

A merge of an earlier release did not copy a record that failed its checksum: the key was gone
afterwards (merges now keep such a record as it is, and its reads raise, as
test_celery_chord_counter_fails16 has it). A chord's damaged counter dropped so was read as "no count
yet", and the parts still to come counted from 0 again: the count never reached 0, the callback was
neither sent nor failed, and ``get()`` on the chord waited for ever. Once the size is announced the
counter must be there: its absence is now met as its damage is, and the chord fails with a
ChordError, once.
"""

from __future__ import annotations

import pytest
from celery import states
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from kv_backend_celery.backend import KVBackend
from test_celery_chord_counter_fails16 import _counting_failures
from test_celery_chord_recovery9 import _left


def _lose_count(backend: KVBackend, gid: str) -> None:
    """Remove the chord's counter, as a merge of an earlier release left a counter that failed its
    checksum."""
    key = backend.get_key_for_chord(gid)
    assert key in backend.db
    backend.db.delete(key)


@pytest.mark.parametrize("counted", [0, 1, 2])
def test_a_counter_dropped_by_a_merge_fails_the_chord_once(store_path, monkeypatch, counted):
    backend = make_app(f"kvb://{store_path}?max_file_size=4096").backend
    failures = b"test-chord-failures"
    _counting_failures(backend, monkeypatch, failures)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    for task_id in ids[:counted]:
        finish_part(backend, gid, task_id, body)
    _lose_count(backend, gid)
    for task_id in ids[counted:]:
        finish_part(backend, gid, task_id, body, value=9)
        assert backend.get_task_meta(task_id, cache=False)["result"] == 9
    meta = backend.get_task_meta(body.id, cache=False)
    assert meta["status"] == states.FAILURE
    assert isinstance(meta["result"], ChordError)
    assert "is gone after its size was announced" in str(meta["result"])
    assert backend.db.get(failures) == b"1"
    assert sent == []
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0


def test_a_chord_whose_parts_finish_before_its_size_is_announced_still_completes(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3, announce=False)
    finish_part(backend, gid, ids[0], body)  # no counter yet: the first count
    finish_part(backend, gid, ids[1], body)
    backend.set_chord_size(gid, 3)
    finish_part(backend, gid, ids[2], body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
