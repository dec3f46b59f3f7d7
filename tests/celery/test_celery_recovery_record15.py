"""The chord recovery with a stuck chord whose stored callback is damaged on disk.

The recovery reads each stuck chord's counter and stored callback. One failing its checksum
raised CorruptionError out of the whole round, every round: no stuck chord listed after it was
ever sent. Such a chord is now left out of the recovery (logged), and the others are sent.
"""

from __future__ import annotations

import logging

import pytest
from test_celery_chord_damaged15 import damage
from test_celery_chord_recovery9 import _backend, _lapse, _left, _stuck

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(60)]


def test_a_damaged_stored_callback_does_not_stop_the_recovery(store_path, monkeypatch, caplog):
    backend = _backend(store_path)
    sent: list = []
    damaged, _, body, _ = _stuck(backend, monkeypatch, sent=sent)
    other, _, _, _ = _stuck(backend, monkeypatch, sent=sent)
    damage(store_path, body.task.encode())  # the task name of its callback: only in its stored record
    backend.db.close()  # reopened from the files (this process read the record as it was written)
    _lapse(backend)
    with caplog.at_level(logging.ERROR, logger="kv_backend_celery.backend"):
        assert backend.recover_chords() == 1
    assert sent == [([1, 1, 1],)]
    assert _left(backend, other) == []
    assert f"chord {damaged}: a record of it is damaged" in caplog.text
    assert damaged not in backend._firing(backend.db)
    assert backend.recover_chords() == 0
