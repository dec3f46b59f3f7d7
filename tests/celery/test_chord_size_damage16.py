"""A chord whose counter is damaged on disk before the client announces its size fails, once.

The client announces a chord's size (``set_chord_size``, inside ``apply_async``) just before
sending the header's last task, while the parts sent before it may have been counted already.
Their counter failing its checksum (a disk fault) raised CorruptionError out of ``apply_async``:
the header's last task was never sent and the chord never completed, its callback neither sent
nor failed, and ``get()`` on it waited for ever. The size is now left unannounced on a damaged
counter: the parts still to finish meet the damage and fail the chord with a ChordError naming
the record, once, as they do for a counter damaged while the chord runs.
"""

from __future__ import annotations

import time
import uuid

import pytest
from celery import chord, states
from celery.exceptions import ChordError
from celery_helpers import finish_part, make_app, make_chord
from kv_backend_celery.backend import KVBackend
from test_celery_chord_counter_fails16 import _counting_failures, _damage_count, _failed_with_chord_error
from test_celery_chord_recovery9 import _left

from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

TIMEOUT = 30


def test_a_counter_damaged_before_the_size_is_announced_fails_the_chord_once(store_path, monkeypatch):
    backend = make_app(f"kvb://{store_path}").backend
    failures = b"test-chord-failures"
    _counting_failures(backend, monkeypatch, failures)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3, announce=False)
    finish_part(backend, gid, ids[0], body)
    finish_part(backend, gid, ids[1], body)
    _damage_count(backend, store_path, gid)
    backend.set_chord_size(gid, 3)  # the client, before it sends the last part: no exception
    with pytest.raises(CorruptionError):  # left as it is, for the parts to meet
        backend.db.get(backend.get_key_for_chord(gid))
    assert backend.get_task_meta(body.id, cache=False)["status"] == states.PENDING
    finish_part(backend, gid, ids[2], body, value=7)  # the last part meets the damage
    assert backend.get_task_meta(ids[2], cache=False)["result"] == 7
    _failed_with_chord_error(backend, body, gid)
    for task_id in ids:  # copies of the parts: nothing more happens
        finish_part(backend, gid, task_id, body)
    assert backend.db.get(failures) == b"1"
    assert sent == []
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0


def test_apply_async_of_a_chord_whose_counter_is_damaged_returns_and_get_raises(celery_env, monkeypatch):
    m = celery_env.app_module
    backend = celery_env.app.backend
    announce = KVBackend.set_chord_size

    def damaged_first(self, group_id, chord_size):
        # The parts sent before the last one are counted, then their counter is damaged on disk.
        key = self.get_key_for_chord(group_id)
        deadline = time.monotonic() + TIMEOUT
        while self.db.get(key) != str(chord_size - 1).encode():
            assert time.monotonic() < deadline, self.db.get(key)
            time.sleep(0.02)
        _damage_count(self, celery_env.results_path, group_id)
        return announce(self, group_id, chord_size)

    monkeypatch.setattr(KVBackend, "set_chord_size", damaged_first)
    values = [uuid.uuid4().int % 1000 for _ in range(3)]
    result = chord([m.add.s(v, 1) for v in values], m.tsum.s()).apply_async()
    with pytest.raises(ChordError) as raised:
        result.get(timeout=TIMEOUT)
    gid = result.parent.id
    assert backend.get_key_for_chord(gid).decode() in str(raised.value) and "damaged" in str(raised.value)
    assert result.state == states.FAILURE
    assert [r.get(timeout=TIMEOUT) for r in result.parent.results] == [v + 1 for v in values]
