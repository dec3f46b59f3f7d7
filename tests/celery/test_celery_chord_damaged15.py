"""A chord whose header result is damaged on disk fails, instead of hanging for ever.

The stored result of a header task that fails its checksum (a disk fault) can never be read.
The part completing the chord raised CorruptionError while it looked for the failed part, left
the chord as it was, and every worker's recovery took it over every two seconds and failed the
same way: the callback was neither sent nor failed, and ``get()`` on the chord waited for ever.
"""

from __future__ import annotations

import glob
import os
import uuid

import celery_helpers
from celery import states
from celery.exceptions import ChordError


def damage(store: str, marker: bytes) -> None:
    """Change one byte of every record holding ``marker`` in the store's data files."""
    for path in glob.glob(os.path.join(store, "*.data")):
        with open(path, "r+b") as f:
            data = f.read()
            at = data.find(marker)
            while at >= 0:
                f.seek(at)
                f.write(b"X")
                at = data.find(marker, at + 1)


def test_a_damaged_header_result_fails_the_chord(store_path, monkeypatch):
    backend = celery_helpers.make_app(f"kvb://{store_path}", result_chord_join_timeout=5).backend
    gid, ids, body, sent = celery_helpers.make_chord(backend, monkeypatch, parts=2)
    marker = uuid.uuid4().hex
    celery_helpers.finish_part(backend, gid, ids[0], body, value=marker)
    damage(store_path, marker.encode())
    backend.db.close()  # reopened from the files (this process read the record as it was written)
    celery_helpers.finish_part(backend, gid, ids[1], body)  # completes the chord
    assert sent == []
    meta = backend.get_task_meta(body.id, cache=False)
    assert meta["status"] == states.FAILURE
    assert isinstance(meta["result"], ChordError) and "checksum" in str(meta["result"])
    assert backend.restore_group(gid, cache=False) is None  # the chord is over
    assert backend.recover_chords() == 0  # nothing left to take over
