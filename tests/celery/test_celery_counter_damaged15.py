"""A chord part whose chord counter is damaged on disk still stores its result.

A part's result and its count are written in one transaction. The counter failing its
checksum (a disk fault) raised CorruptionError there, and the transaction stored no result
either: every later part of the chord lost its result. The part is now stored, not counted.
"""

from __future__ import annotations

import logging

import celery_helpers
from celery import states

from kv_backend.errors import CorruptionError


def test_a_part_of_a_chord_whose_counter_is_damaged_keeps_its_result(store_path, monkeypatch, caplog):
    backend = celery_helpers.make_app(f"kvb://{store_path}").backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=3)
    celery_helpers.finish_part(backend, gid, ids[0], body)
    db, counter = backend.db, backend.get_key_for_chord(gid)
    get = db.get

    def damaged(key, *args, **kwargs):
        if key == counter:
            raise CorruptionError(f"record of {key!r} failed its checksum")
        return get(key, *args, **kwargs)

    monkeypatch.setattr(db, "get", damaged)
    with caplog.at_level(logging.ERROR, logger="kv_backend_celery.backend"):
        celery_helpers.finish_part(backend, gid, ids[1], body, value=11)
    assert backend.get_task_meta(ids[1], cache=False)["status"] == states.SUCCESS
    assert backend.get_task_meta(ids[1], cache=False)["result"] == 11
    assert f"chord {gid}: a record of it is damaged" in caplog.text
    assert sent == []
