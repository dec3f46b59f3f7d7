"""The chord recovery with a chord callback whose stored state is damaged on disk.

The recovery reads the state of a stuck chord's callback to tell whether it was sent. A record
failing its checksum raised CorruptionError out of the whole recovery round, every round: that
chord and every stuck chord listed after it were never sent.
"""

from __future__ import annotations

import uuid

import pytest
from test_celery_chord_damaged15 import damage
from test_celery_chord_recovery9 import _backend, _lapse, _left, _stuck

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def test_a_damaged_callback_state_does_not_stop_the_recovery(store_path, monkeypatch):
    backend = _backend(store_path)
    sent: list = []
    first, _, body, _ = _stuck(backend, monkeypatch, sent=sent)
    second, _, _, _ = _stuck(backend, monkeypatch, sent=sent)
    marker = uuid.uuid4().hex
    # a progress state under the callback's id, as a task replaced by a group leaves there
    backend.store_result(body.id, {"progress": marker}, "PROGRESS")
    damage(store_path, marker.encode())
    backend.db.close()  # reopened from the files (this process read the record as it was written)
    _lapse(backend)
    # Nothing proves the first callback was sent: both are, once.
    assert backend.recover_chords() == 2
    assert sent == [([1, 1, 1],), ([1, 1, 1],)]
    assert _left(backend, first) == _left(backend, second) == []
    assert backend.recover_chords() == 0
