"""Backups to an S3-protocol server (moto's) while another process prunes or restores there.

As tests/test_backup_race25.py for a local directory: an object store has no directories, lists what
a listing cache may keep, and publishes an object whole when its upload completes. Every restored
backup must be exactly the store after M batches of the writer, M between those acknowledged before
the backup was called and after it returned.
"""

from __future__ import annotations

import json
import os
import subprocess

from helpers import spawn_python, wait_for
from test_backup_race25 import _backed_up, assert_snapshot, live
from test_backup_s3 import s3, s3_server

from kv_backend.backup import list_backups, prune_backups, restore

__all__ = ["live", "s3", "s3_server"]  # (fixtures)

WRITER_PAUSE, FILE_SIZE = 0.01, 16384  # (fewer objects to send than to a local directory)

PRUNER = """
import json, sys, time
from kv_backend.backup import prune_backups
options = json.loads(sys.argv[2])
while True:
    prune_backups(sys.argv[1], keep=1, **options)
    with open(sys.argv[3], "a") as f:
        f.write("p")  # (one more prune done)
    time.sleep(0.02)
"""

RESTORER = """
import json, os, sys
from kv_backend.backup import restore
url, into, options = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
n = 0
while True:
    n += 1
    dest = os.path.join(into, "%04d" % n)
    report = restore(url, dest, **options)
    os.rename(dest, dest + "-" + report.name)
"""


def _stopped(child: subprocess.Popen) -> None:
    assert child.poll() is None, child.communicate()
    child.kill()
    child.wait()


def test_s3_backups_while_another_process_prunes(s3, live, tmp_path):
    url, options, _fs = s3
    store, ack = live
    _backed_up(store, ack, url, "first", **options)
    prunes = tmp_path / "prunes"
    child = spawn_python(PRUNER, url, json.dumps(options), str(prunes), stderr=subprocess.PIPE, text=True)

    def pruned() -> int:
        assert child.poll() is None, child.communicate()
        return prunes.stat().st_size if prunes.exists() else 0

    try:
        for k in range(3):
            wait_for(lambda k=k: pruned() > k)  # (prunes between the backups, and during them)
            floor, ceiling = _backed_up(store, ack, url, f"p{k}", **options)
            restore(url, str(tmp_path / f"r{k}"), name=f"p{k}", **options)
            assert_snapshot(str(tmp_path / f"r{k}"), floor, ceiling)
    finally:
        _stopped(child)
    prune_backups(url, keep=1, **options)
    assert [i.name for i in list_backups(url, **options)] == ["p2"]


def test_s3_restores_while_backups_write_new_manifests(s3, live, tmp_path):
    url, options, _fs = s3
    store, ack = live
    bounds = {"b0": _backed_up(store, ack, url, "b0", **options)}
    restored = tmp_path / "restored"
    restored.mkdir()
    child = spawn_python(RESTORER, url, str(restored), json.dumps(options), stderr=subprocess.PIPE, text=True)

    def restored_from(name: str) -> bool:
        assert child.poll() is None, child.communicate()
        return any(d.endswith(f"-{name}") for d in os.listdir(restored))

    try:
        wait_for(lambda: restored_from("b0"))
        for k in range(1, 4):
            bounds[f"b{k}"] = _backed_up(store, ack, url, f"b{k}", **options)
        wait_for(lambda: restored_from("b3"))
    finally:
        _stopped(child)
    batches = {}
    for n in bounds:
        restore(url, str(tmp_path / f"own-{n}"), name=n, **options)
        batches[n] = assert_snapshot(str(tmp_path / f"own-{n}"), *bounds[n])
    done = [d for d in os.listdir(restored) if not d.startswith(".") and "-" in d]
    for d in done:
        n = d.partition("-")[2]
        assert assert_snapshot(str(restored / d), *bounds[n]) == batches[n]
