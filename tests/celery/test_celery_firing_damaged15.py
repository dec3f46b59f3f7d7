"""The list of chords being fired, damaged on disk, is rebuilt instead of stopping every chord.

Each chord's completing part, each chord's end and each round of the recovery read that list.
Its record failing its checksum (a disk fault) raised CorruptionError out of all of them: no
chord could complete any more, and no stuck chord was recovered, until the list expired.
"""

from __future__ import annotations

import json

import pytest
from celery_helpers import finish_part, make_chord
from test_celery_chord_damaged15 import damage
from test_celery_chord_recovery9 import _backend, _lapse, _left, _stuck

from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def test_chords_complete_and_are_recovered_with_a_damaged_list(store_path, monkeypatch):
    backend = _backend(store_path)
    sent: list = []
    stuck, _, _, _ = _stuck(backend, monkeypatch, sent=sent)  # listed as being fired
    damage(store_path, json.dumps([stuck]).encode())
    backend.db.close()  # reopened from the files (this process read the record as it was written)
    with pytest.raises(CorruptionError):
        backend.db.get(backend._firing_key())
    assert backend.db.get(backend.get_key_for_chord(stuck)) == b"0"  # only the list is damaged
    # Another chord completes: the list is rebuilt from the stored callbacks.
    gid, ids, body, _ = make_chord(backend, monkeypatch, sent=sent)
    for task_id in ids:
        finish_part(backend, gid, task_id, body)
    assert sent == [([1, 1, 1],)]
    assert _left(backend, gid) == []
    assert backend._firing(backend.db) == [stuck]
    _lapse(backend)
    assert backend.recover_chords() == 1  # the stuck chord is still found, and sent
    assert sent == [([1, 1, 1],), ([1, 1, 1],)]
    assert _left(backend, stuck) == []


def test_the_recovery_rebuilds_a_damaged_list(store_path, monkeypatch):
    backend = _backend(store_path)
    sent: list = []
    stuck, _, _, _ = _stuck(backend, monkeypatch, sent=sent)
    damage(store_path, json.dumps([stuck]).encode())
    backend.db.close()
    _lapse(backend)
    assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, stuck) == []
    assert backend.db.get(backend._firing_key()) is None
