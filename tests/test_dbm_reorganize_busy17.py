"""kv_backend.dbm's reorganize() while another process merges the database waits, then merges.

It raised the engine's MergeInProgressError, which 'except kv_backend.dbm.error:' (and the stdlib's
'except dbm.error:') missed, advising a merge(wait=True) that reorganize() does not take.
"""

from __future__ import annotations

import subprocess
import time

from helpers import spawn_python

import kv_backend.dbm as kv_dbm
from kv_backend.merge import MergeReport

HOLD_MERGE_LOCK = """
import os, sys, time
from kv_backend.files import MERGE_LOCK_FILE
from kv_backend.locking import MergeLock

lock = MergeLock(os.path.join(sys.argv[1], MERGE_LOCK_FILE))
lock.acquire()  # what a merge in this process would hold
print("merging", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


def test_reorganize_waits_for_another_process_merge(tmp_path):
    path = str(tmp_path / "db")
    with kv_dbm.open(path, "c") as db:
        for value in (b"old", b"new"):
            db.update({f"k{i}": value for i in range(200)})
        holder = spawn_python(HOLD_MERGE_LOCK, path, "0.5", stdout=subprocess.PIPE)
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == b"merging\n"
            started = time.monotonic()
            report = db.reorganize()
            waited = time.monotonic() - started
        finally:
            holder.wait(timeout=60)
            holder.stdout.close()
        assert isinstance(report, MergeReport)
        assert waited >= 0.2  # it waited for the other merge rather than failing or skipping
        assert report.records_dropped >= 200
        assert db[b"k0"] == b"new" and len(db) == 200
