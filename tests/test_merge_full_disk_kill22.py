"""SIGKILL during merges on a full disk (no room for a new data file: the active file stays, and
the closed files are merged; see docs/protocol.md, "Merge"): at any moment of it, the store reads
as before, nothing is left that a later open or merge trips on, and it merges once there is room."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from helpers import spawn_python

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import list_data_files

_MERGER = """
import errno, sys
import kv_backend.db_write as writing
from kv_backend import DB
from kv_backend.errors import StorageError

real_write_all = writing.write_all

def no_room_for_headers(fd, data, offset):
    if offset == 0:  # the header of a new data file: the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_write_all(fd, data, offset)

writing.write_all = no_room_for_headers
db = DB(sys.argv[1], max_file_size=8192)
print("ready", flush=True)
db.merge(wait=True)
print("merged", flush=True)
while True:
    try:
        db.merge(wait=True)
    except StorageError as exc:  # the active file full of the merges' no-op records: undone, tried again
        if exc.errno != errno.ENOSPC:
            raise
"""


@pytest.mark.parametrize("seed", range(6))
def test_sigkill_during_a_full_disk_merge_loses_nothing(store_path, seed):
    rnd = random.Random(seed)
    model: dict[bytes, bytes] = {}
    with DB(store_path, max_file_size=8192) as db:
        for i in range(1200):
            key = b"key%03d" % rnd.randrange(150)
            if rnd.random() < 0.2:
                db.delete(key)
                model.pop(key, None)
            else:
                db.put(key, b"v%d-" % i * rnd.randrange(1, 20))
                model[key] = db[key]
        active = db._tail[0]
    proc = spawn_python(_MERGER, store_path, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    if seed % 2:
        assert proc.stdout.readline().strip() == "merged"
    time.sleep(rnd.uniform(0.0, 0.2))
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    if seed % 2:  # (killed in a later merge: the first one, on the full disk, was done)
        assert any(fid[1] for fid in list_data_files(store_path))
    assert check(store_path).ok
    with DB(store_path, max_file_size=8192) as db:
        assert dict(db.items()) == model
        assert db._tail[0] == active  # no new file was made
        db.put(b"after", b"crash")
        db.merge()
        assert db[b"after"] == b"crash"
        model[b"after"] = b"crash"
    with DB(store_path) as db:
        assert dict(db.items()) == model
    assert not [n for n in os.listdir(store_path) if n.endswith(".tmp")]
