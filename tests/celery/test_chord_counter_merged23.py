"""A chord whose damaged counter a merge went over fails with a ChordError naming the damage, once.

A merge dropped a record that failed its checksum: the chord's counter was gone after it, and the
chord failed for a counter "gone" (or, before its size was known, counted from 0 again). A merge now
keeps the damaged record as it is: the parts still to come meet the damage itself, as before the
merge, and fail the chord once, naming the damaged record.
"""

from __future__ import annotations

import pytest
from celery_helpers import finish_part, make_app, make_chord
from test_celery_chord_counter_fails16 import _counting_failures, _damage_count, _failed_with_chord_error
from test_celery_chord_recovery9 import _left

from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


@pytest.mark.parametrize("merges", [1, 2])
def test_a_damaged_counter_a_merge_kept_fails_the_chord_once(store_path, monkeypatch, merges):
    backend = make_app(f"kvb://{store_path}?max_file_size=4096").backend
    failures = b"test-chord-failures"
    _counting_failures(backend, monkeypatch, failures)
    gid, ids, body, sent = make_chord(backend, monkeypatch, parts=3)
    finish_part(backend, gid, ids[0], body)
    for i in range(60):  # the counter's file is closed, so a merge compacts it
        backend.set(f"filler-{i}", b"x" * 100)
    _damage_count(backend, store_path, gid)
    for _ in range(merges):
        assert backend.db.merge().corrupt_kept == 1
    with pytest.raises(CorruptionError):
        backend.db.get(backend.get_key_for_chord(gid))
    for task_id in ids[1:]:
        finish_part(backend, gid, task_id, body, value=9)
        assert backend.get_task_meta(task_id, cache=False)["result"] == 9
    _failed_with_chord_error(backend, body, gid)
    assert backend.db.get(failures) == b"1"
    assert sent == []
    assert _left(backend, gid) == []
    assert backend.recover_chords() == 0
