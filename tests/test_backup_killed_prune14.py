"""Prune after a backup was killed: the killed backup's journal counted as a running backup for 24
hours, so no prune collected anything until then, not even the objects of the backups it removed
(``kvb backups --keep N`` freed no space after a kill, on a target that was full, say). A prune on
the machine the backup ran on now sees that its process is gone: it collects at once, keeping only
what the killed backup sent, which a new backup reuses."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest
from helpers import spawn_python

import kv_backend.backup as kvbackup
from kv_backend import DB
from kv_backend.backup import list_backups, prune_backups, restore

pytestmark = pytest.mark.skipif(
    kvbackup._this_process() is None, reason="needs /proc to tell a killed backup from a running one"
)

CHILD = """
import json, os, signal, sys
import kv_backend.backup as kb
from kv_backend import DB
kb.JOURNAL_INTERVAL = 0
kb.CHUNK_SIZE = 512
pending = os.path.join(sys.argv[2], "pending")
def progress(done, total):
    if sys.argv[3] == "done":
        return
    journals = [n for n in os.listdir(pending) if n.endswith(".json") and not n.startswith(".")]
    if journals and json.load(open(os.path.join(pending, journals[0])))["files"]:
        if sys.argv[3] == "kill":
            os.kill(os.getpid(), signal.SIGKILL)  # killed with a journal that names what it sent
        print("WAITING", flush=True)
        sys.stdin.readline()  # a running backup, until the test lets it go on
        sys.argv[3] = "done"
with DB(sys.argv[1], read_only=True) as db:
    db.backup(sys.argv[2], name="child", progress=progress)
print("DONE", flush=True)
"""


def _objects(url: str) -> set[str]:
    return set(os.listdir(os.path.join(url, "files")))


def _fill(store: str, prefix: bytes) -> None:
    with DB(store, max_file_size=4096) as db:
        for i in range(150):
            db.put(prefix + b"%04d" % i, os.urandom(40))


def _as_the_same_store(store: str, other: str) -> None:
    """Give ``other`` the id of ``store`` (as a copy of it has): a URL holds the backups of one store."""
    shutil.copyfile(os.path.join(store, "KVB_FORMAT"), os.path.join(other, "KVB_FORMAT"))


def test_prune_collects_at_once_after_a_backup_was_killed(tmp_path):
    store, url = str(tmp_path / "store"), str(tmp_path / "bk")
    _fill(store, b"old-")
    with DB(store, read_only=True) as db:
        db.backup(url, name="one")
    old = _objects(url)
    _fill(str(tmp_path / "other"), b"new-")  # another store: the killed backup sends all of it
    _as_the_same_store(store, str(tmp_path / "other"))
    child = spawn_python(CHILD, str(tmp_path / "other"), url, "kill")
    assert child.wait(timeout=120) == -signal.SIGKILL
    journals = os.listdir(os.path.join(url, "pending"))
    sent = _objects(url) - old
    assert len(journals) == 1 and sent
    assert prune_backups(url, keep=0) == ["one"]
    # The objects of "one" are gone; what the killed backup sent (and its journal) stays for reuse.
    assert not _objects(url) & old
    assert _objects(url) <= sent and os.listdir(os.path.join(url, "pending")) == journals
    with DB(str(tmp_path / "other"), read_only=True) as db:
        report = db.backup(url, name="retry")
        expected = dict(db.items())
    assert report.files_skipped >= 1
    restore(url, tmp_path / "r")
    with DB(str(tmp_path / "r"), read_only=True) as db:
        assert dict(db.items()) == expected
    assert [b.name for b in list_backups(url)] == ["retry"]


def test_a_running_backup_of_another_process_still_holds_prune_back(tmp_path):
    store, url = str(tmp_path / "store"), str(tmp_path / "bk")
    _fill(store, b"old-")
    with DB(store, read_only=True) as db:
        db.backup(url, name="one")
    old = _objects(url)
    _fill(str(tmp_path / "other"), b"new-")
    _as_the_same_store(store, str(tmp_path / "other"))
    child = spawn_python(
        CHILD, str(tmp_path / "other"), url, "wait", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline() == "WAITING\n"
        assert prune_backups(url, keep=0) == ["one"]
        assert _objects(url) >= old  # nothing collected while it runs
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "DONE\n"
    finally:
        child.stdin.close()
        child.wait(timeout=60)
        child.stdout.close()
    assert child.returncode == 0
    assert prune_backups(url, keep=1) == []
    assert not _objects(url) & old  # collected once it finished
    assert restore(url, tmp_path / "r").name == "child"
