"""kv_backend.dbm's reorganize() while another process merges the database waits, then merges.

It raised the engine's MergeInProgressError, which 'except kv_backend.dbm.error:' (and the stdlib's
'except dbm.error:') missed, advising a merge(wait=True) that reorganize() does not take.
"""

from __future__ import annotations

import subprocess
import threading

from helpers import spawn_python

import kv_backend.dbm as kv_dbm
from kv_backend.merge import MergeReport

HOLD_MERGE_LOCK = """
import os, sys
from kv_backend.files import MERGE_LOCK_FILE
from kv_backend.locking import MergeLock

lock = MergeLock(os.path.join(sys.argv[1], MERGE_LOCK_FILE))
lock.acquire()  # what a merge in this process would hold
print("merging", flush=True)
sys.stdin.readline()  # until told to finish
lock.release()
"""


def test_reorganize_waits_for_another_process_merge(tmp_path):
    path = str(tmp_path / "db")
    with kv_dbm.open(path, "c") as db:
        for value in (b"old", b"new"):
            db.update({f"k{i}": value for i in range(200)})
        holder = spawn_python(HOLD_MERGE_LOCK, path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        outcome: list[object] = []
        reorganizer = threading.Thread(target=lambda: outcome.append(_reorganize(db)))
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline() == b"merging\n"
            reorganizer.start()
            reorganizer.join(timeout=0.5)
            assert reorganizer.is_alive() and outcome == []  # waiting for the other merge, not failing
            holder.stdin.write(b"done\n")
            holder.stdin.flush()
            reorganizer.join(timeout=60)
        finally:
            holder.stdin.close()
            holder.wait(timeout=60)
            holder.stdout.close()
        [report] = outcome
        assert isinstance(report, MergeReport), report
        assert report.records_dropped >= 200
        assert db[b"k0"] == b"new" and len(db) == 200


def _reorganize(db: kv_dbm.Database) -> object:
    try:
        return db.reorganize()
    except Exception as exc:  # reported by the test
        return exc
