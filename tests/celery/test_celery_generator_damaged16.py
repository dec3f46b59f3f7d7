"""A generator-header chord whose recorded header position is damaged on disk fails, naming it.

The parts of a chord whose header is a generator record their header position; the part that
completes the chord reads them to save the chord's group. One failing its checksum (a disk fault)
raised CorruptionError out of that part: the chord never completed and ``get()`` on it waited
for ever. The chord now fails with a ChordError naming the damaged position, once.
"""

from __future__ import annotations

import json

import kv_backend_celery.chords as backend_module
import pytest
from celery import states
from celery.exceptions import ChordError
from test_celery_chord_damaged15 import damage
from test_chord_generator13 import _Chord, generator_app

pytestmark = [
    pytest.mark.xdist_group("celery"),
    pytest.mark.timeout(60),
    pytest.mark.filterwarnings("ignore:Task name .* is already registered"),
]


def test_a_damaged_header_position_fails_the_chord(store_path, monkeypatch):
    monkeypatch.setattr(backend_module, "_GROUPS_KEEP_TASK_INDEXES", True)  # the generator path
    app = generator_app(f"kvb://{store_path}", "kvb-generator16", result_chord_join_timeout=0.05)
    c = _Chord(app, monkeypatch, 3)
    c.finish(*c.parts[0])
    damage(store_path, json.dumps([c.parts[0][1], c.parts[0][0]]).encode())  # only its position holds it
    app.backend.db.close()  # reopened from the files (this process read the record as it was written)
    c.finish(*c.parts[1])
    c.finish(*c.parts[2])  # completes the chord
    assert c.sent == []
    meta = app.backend.get_task_meta(c.result.id, cache=False)
    assert meta["status"] == states.FAILURE
    assert isinstance(meta["result"], ChordError)
    assert app.backend._slot_key(c.gid, 1).decode() in str(meta["result"])
    assert [k for k in c.left() if b".part." not in k and b".slot." not in k] == []  # the rest expires
    c.finish(*c.parts[2])  # delivered again: nothing more
    assert c.sent == []
    assert app.backend.recover_chords() == 0
