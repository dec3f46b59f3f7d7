"""On real workers: a chord whose counter is damaged on disk fails, and ``get()`` on it raises.

The counter record failing its checksum (a disk fault) while the chord ran left its last part
uncounted: the chord never completed, and ``get()`` on it waited for ever.
"""

from __future__ import annotations

import glob
import os
import time
import uuid

import pytest
from celery import chord, states
from celery.exceptions import ChordError

from kv_backend import DB
from kv_backend.errors import CorruptionError

pytestmark = [pytest.mark.xdist_group("celery"), pytest.mark.timeout(120)]

TIMEOUT = 30


def _damage_in_place(store: str, record: bytes, key_length: int) -> None:
    """Change the first value byte of the last record starting ``record`` (every process maps the file)."""
    for path in glob.glob(os.path.join(store, "*.data")):
        with open(path, "r+b") as f:
            at = f.read().rfind(record)
            if at >= 0:
                f.seek(at + key_length)
                f.write(b"X")


def test_a_chord_whose_counter_is_damaged_fails_on_workers(celery_env):
    m = celery_env.app_module
    backend = celery_env.app.backend
    flag = f"flag-{uuid.uuid4()}"
    result = chord([m.add.s(1, 1), m.wait_flag.s(flag)], m.tsum.s()).apply_async()
    gid = result.parent.id
    key = backend.get_key_for_chord(gid)
    deadline = time.monotonic() + TIMEOUT
    while backend.db.get(key) != b"-1":  # the size announced and the first part counted
        assert time.monotonic() < deadline, backend.db.get(key)
        time.sleep(0.05)
    _damage_in_place(celery_env.results_path, key + b"-1", len(key))
    with pytest.raises(CorruptionError):
        backend.db.get(key)
    DB(celery_env.side_path).put(flag.encode(), b"released")  # the last part finishes
    with pytest.raises(ChordError) as raised:
        result.get(timeout=TIMEOUT)
    assert key.decode() in str(raised.value) and "damaged" in str(raised.value)
    assert result.state == states.FAILURE
    assert [r.get(timeout=TIMEOUT) for r in result.parent.results] == [2, "released"]
