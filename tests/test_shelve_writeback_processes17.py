"""Writeback shelves and processes: what a kill leaves, and two caches changing one entry (docs/store.md).

Changes made to cached objects live in the process until sync() or close(); the shelf's own calls
are in the log when they return; a kill during sync() leaves every changed entry written back or
none of them. Two caches changing one entry: the later sync() wins; Store.modify merges.
"""

from __future__ import annotations

import os
import signal
import subprocess

from helpers import spawn_python

import kv_backend.shelve as kshelve
from kv_backend import Store

ENTRIES = 1500

KILLED_BEFORE_SYNC = """
import sys, time
import kv_backend.shelve as kshelve
from kv_backend import Store

shelf = kshelve.open(sys.argv[1], writeback=True)
shelf["assigned"] = [1]               # written when the call returns
shelf["assigned"].append(2)           # in the cache only
shelf["read"].append("mutated")       # read into the cache, changed there
shelf.update({"updated": "u"})        # written when the call returns
del shelf["deleted"]
print("ready", flush=True)
time.sleep(60)
"""

SYNC_LOOP = """
import sys
import kv_backend.shelve as kshelve
from kv_backend import Store

shelf = kshelve.open(sys.argv[1], writeback=True)
n = int(sys.argv[2])
generation = 0
while True:
    generation += 1
    for i in range(n):
        shelf[f"k{i:05d}"]["g"] = generation
    print(generation, flush=True)
    shelf.sync()
"""


def _wait_for_line(proc: subprocess.Popen) -> bytes:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"the child exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
    return line


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def test_a_kill_loses_the_cached_changes_and_keeps_what_the_calls_wrote(tmp_path):
    path = str(tmp_path / "shelf")
    with kshelve.open(path) as shelf:
        shelf["read"] = ["original"]
        shelf["deleted"] = 0
    proc = spawn_python(KILLED_BEFORE_SYNC, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_for_line(proc) == b"ready\n"
    finally:
        _kill(proc)
    with kshelve.open(path, "r") as shelf:
        assert dict(shelf) == {"assigned": [1], "read": ["original"], "updated": "u"}


def test_a_kill_during_sync_writes_back_every_changed_entry_or_none(tmp_path):
    path = str(tmp_path / "shelf")
    with kshelve.open(path) as shelf:
        shelf.update({f"k{i:05d}": {"g": 0} for i in range(ENTRIES)})
    proc = spawn_python(SYNC_LOOP, path, str(ENTRIES), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(3):  # some generations written back whole, the kill lands in a later sync
            _wait_for_line(proc)
    finally:
        _kill(proc)
    with kshelve.open(path, "r") as shelf:
        generations = {value["g"] for value in shelf.values()}
        assert len(shelf) == ENTRIES
    assert len(generations) == 1, generations  # one generation for every entry: none half written back
    assert generations.pop() >= 2


def test_two_caches_changing_one_entry_the_later_sync_wins_and_modify_merges(tmp_path):
    path = str(tmp_path / "shelf")
    with kshelve.open(path) as shelf:
        shelf["tags"] = ["a"]
    first = kshelve.open(path, writeback=True)
    second = kshelve.open(path, writeback=True)
    try:
        first["tags"].append("from-first")
        second["tags"].append("from-second")
        first.sync()
        second.sync()
        with kshelve.open(path, "r") as reader:
            assert reader["tags"] == ["a", "from-second"]  # first's change is lost, not merged
    finally:
        first.close()
        second.close()
    with Store(path) as store:  # the same directory: str keys, pickle values
        store.modify("tags", lambda tags: [*tags, "modified"])
    with kshelve.open(path, "r") as shelf:
        assert shelf["tags"] == ["a", "from-second", "modified"]


def test_a_forked_multiprocessing_child_loses_what_it_did_not_sync(tmp_path):
    # A forked multiprocessing child ends with os._exit(): a shelf it still holds is not collected,
    # nor written back. (One it no longer references is collected, and written back, at once.)
    import multiprocessing

    path = str(tmp_path / "shelf")
    with kshelve.open(path) as shelf:
        shelf["unsynced"] = [0]
        shelf["synced"] = [0]
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_change_in_child, args=(path,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    with kshelve.open(path, "r") as shelf:
        assert shelf["synced"] == [0, "child"]
        assert shelf["unsynced"] == [0]


_HELD: list[kshelve.KVShelf] = []  # a shelf a worker keeps, as in a global opened by a pool's initializer


def _change_in_child(path: str) -> None:
    shelf = kshelve.open(path, writeback=True)
    _HELD.append(shelf)
    shelf["synced"].append("child")
    shelf.sync()
    shelf["unsynced"].append("child")
    # returns without close(), the shelf still held: the process ends with os._exit()
