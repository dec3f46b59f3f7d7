"""Backups while other processes write, backups killed midway, several backups at once."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import time

import pytest
from helpers import run_python, spawn_python, wait_for

import kv_backend.backup as kvbackup
from kv_backend import DB, BackupError
from kv_backend.backup import list_backups, prune_backups, restore
from kv_backend.check import check

BATCH = 3

# Writes batches of BATCH keys forever; after each batch commits, publishes its count in ACK.
WRITER = """
import os, struct, sys, time
from kv_backend import DB
db = DB(sys.argv[1], max_file_size=4096)
ack = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT)
pause = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
i = 0
while i < 200000:
    if pause:
        time.sleep(pause)
    with db.batch() as b:
        for j in range(3):
            b.put(b"k%07d-%d" % (i, j), b"value-%d-" % i * 8)
    i += 1
    os.pwrite(ack, struct.pack("<Q", i), 0)
"""


def acked(path: str) -> int:
    try:
        with open(path, "rb") as f:
            data = f.read(8)
    except FileNotFoundError:
        return 0
    return struct.unpack("<Q", data)[0] if len(data) == 8 else 0


def assert_prefix_of_batches(path: str, at_least: int) -> int:
    """The restored store holds batches 0..M-1 complete (M >= at_least) and nothing else."""
    assert check(path).ok
    with DB(path, read_only=True) as db:
        items = dict(db.items())
    batches = {}
    for key, value in items.items():
        i, j = key[1:].split(b"-")
        assert value == b"value-%d-" % int(i) * 8
        batches.setdefault(int(i), set()).add(int(j))
    m = len(batches)
    assert m >= at_least
    assert sorted(batches) == list(range(m)), "a point-in-time copy holds a prefix of the writes"
    assert all(js == set(range(BATCH)) for js in batches.values()), "batches are all-or-nothing"
    return m


@pytest.mark.parametrize("kind", ["memory", "file"])
def test_backup_while_another_process_writes(kind, tmp_path, monkeypatch):
    store = str(tmp_path / "store")
    ack = str(tmp_path / "ack")
    url = (
        f"file://{tmp_path / 'bk'}" if kind == "file" else f"memory:///kvb-live-{os.getpid()}-{id(tmp_path)}"
    )
    DB(store).close()
    writer = spawn_python(WRITER, store, ack, "0.0005")
    try:
        wait_for(lambda: acked(ack) >= 150)
        monkeypatch.setattr(kvbackup, "CHUNK_SIZE", 1024)
        reports = []
        floors = []
        with DB(store) as db:
            for round_ in range(2):
                floor = acked(ack)
                calls = 0

                def slow(done, total):
                    # Make sure the writer moves on while this backup is copying.
                    nonlocal calls
                    calls += 1
                    if calls <= 3:
                        seen = acked(ack)
                        wait_for(lambda: acked(ack) > seen or writer.poll() is not None)

                reports.append(db.backup(url, name=f"live{round_}", progress=slow))
                floors.append(floor)
        assert writer.poll() is None, "the writer kept running"
        assert acked(ack) > floors[-1]
    finally:
        writer.kill()
        writer.wait()
    assert reports[1].files_skipped >= 1, "closed files are not sent twice"
    sizes = []
    for round_, floor in enumerate(floors):
        target = str(tmp_path / f"restored{round_}")
        restore(url, target, name=f"live{round_}")
        sizes.append(assert_prefix_of_batches(target, floor))
    assert sizes[0] <= sizes[1]
    if kind == "memory":
        import fsspec

        fsspec.filesystem("memory").rm(url[len("memory://") :], recursive=True)


# Backs up STORE to URL as NAME, printing progress so the parent can kill it at a chosen point.
BACKUP_CHILD = """
import sys
import kv_backend.backup as kb
from kv_backend import DB
kb.CHUNK_SIZE = 256
with DB(sys.argv[1], read_only=True) as db:
    def show(done, total):
        sys.stdout.write(f"{done}\\n")
        sys.stdout.flush()
        sys.stdin.readline()  # the test's go-ahead: so that it kills the backup where it chose
    db.backup(sys.argv[2], name=sys.argv[3], progress=show)
print("DONE", flush=True)
"""


def test_killed_backup_never_looks_complete_and_retry_completes(tmp_path):
    store = str(tmp_path / "store")
    url = f"file://{tmp_path / 'bk'}"
    with DB(store, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"base-%04d" % i, b"b" * 100)
        db.backup(url, name="base")
        expected = {}
        for i in range(150):
            db.put(b"more-%04d" % i, b"m" * 100)
        expected = dict(db.items())
    rng = random.Random(1234)
    for run in range(3):
        name = f"kb{run}"
        child = spawn_python(
            BACKUP_CHILD, store, url, name, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        stop_at = rng.randint(2, 60)
        lines = 0
        try:
            # The child waits for a go-ahead after each progress line, so it is still running,
            # after the stop_at-th line, when the kill comes (under load it used to finish first).
            for _line in child.stdout:
                lines += 1
                if lines >= stop_at:
                    break
                child.stdin.write("\n")
                child.stdin.flush()
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
            child.stdout.close()
            child.stdin.close()
        assert child.returncode == -signal.SIGKILL
        assert [i.name for i in list_backups(url)] == ["base"]
        with pytest.raises(BackupError, match=f"no backup named '{name}'"):
            restore(url, tmp_path / f"bad{run}", name=name)
        assert not (tmp_path / f"bad{run}").exists()
        # The default restore still gives the last complete backup.
        restore(url, tmp_path / f"base{run}")
        with DB(str(tmp_path / f"base{run}"), read_only=True) as db:
            assert len(db) == 100
    # A retry completes (reusing what the killed runs already stored).
    with DB(store, read_only=True) as db:
        report = db.backup(url, name="retry")
    assert report.files_skipped >= 1
    restore(url, tmp_path / "final", name="retry")
    with DB(str(tmp_path / "final"), read_only=True) as db:
        assert dict(db.items()) == expected
    # The killed runs' journals are fresh, so prune keeps their objects for now.
    assert prune_backups(url, keep=1) == ["base"]
    restore(url, tmp_path / "after-prune")


SIMULTANEOUS = """
import sys
from kv_backend import DB
with DB(sys.argv[1]) as db:
    for i in range(60):
        db.put(b"%s-%03d" % (sys.argv[3].encode(), i), b"x" * 100)
    print(db.backup(sys.argv[2], name=sys.argv[3]))
"""


def test_several_processes_back_up_to_one_url(tmp_path):
    store = str(tmp_path / "store")
    url = f"file://{tmp_path / 'bk'}"
    DB(store, max_file_size=4096).close()
    children = [
        spawn_python(SIMULTANEOUS, store, url, f"p{n}", stdout=subprocess.PIPE, text=True) for n in range(3)
    ]
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0 and "complete" in out
    assert sorted(i.name for i in list_backups(url)) == ["p0", "p1", "p2"]
    for n in range(3):
        restore(url, tmp_path / f"r{n}", name=f"p{n}")
        with DB(str(tmp_path / f"r{n}"), read_only=True) as db:
            assert len(list(db.keys(prefix=b"p%d-" % n))) == 60
    with DB(store, read_only=True) as db:
        live = dict(db.items())
    last = max(list_backups(url), key=lambda i: i.created).name
    restore(url, tmp_path / "newest")
    with DB(str(tmp_path / "newest"), read_only=True) as db:
        assert set(db.keys(prefix=f"{last}-".encode())) <= set(live)
    run_python("import kv_backend.backup")  # importable in a fresh interpreter


RESTORER = """
import sys
from kv_backend import BackupError
from kv_backend.backup import restore
try:
    restore(sys.argv[1], sys.argv[2])
except BackupError as exc:
    print("REFUSED", exc)
else:
    print("RESTORED")
"""


def test_simultaneous_restores_into_one_directory(tmp_path):
    store = str(tmp_path / "store")
    url = f"file://{tmp_path / 'bk'}"
    with DB(store, max_file_size=4096) as db:
        for i in range(200):
            db.put(b"k%04d" % i, b"v" * 100)
        db.backup(url)
    target = str(tmp_path / "target")
    children = [spawn_python(RESTORER, url, target, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [c.communicate(timeout=120)[0] for c in children]
    assert all(c.returncode == 0 for c in children)
    assert sum(o.startswith("RESTORED") for o in outputs) == 1
    assert all(o.startswith(("RESTORED", "REFUSED")) for o in outputs)
    assert [p for p in os.listdir(tmp_path) if "restore-" in p] == []
    with DB(target, read_only=True) as db:
        assert len(db) == 200
    assert check(target).ok


MERGER = """
import sys, time
from kv_backend import DB, MergeInProgressError
with DB(sys.argv[1], max_file_size=4096) as db:
    merges = 0
    while merges < 10000:
        try:
            db.merge()
            merges += 1
        except MergeInProgressError:
            pass
        time.sleep(0.02)
"""


def test_backup_while_writing_and_merging(tmp_path, monkeypatch):
    """A merge that swaps files under a running backup does not disturb the snapshot."""
    store = str(tmp_path / "store")
    ack = str(tmp_path / "ack")
    url = f"file://{tmp_path / 'bk'}"
    DB(store).close()
    writer = spawn_python(WRITER, store, ack, "0.003")
    merger = None
    try:
        wait_for(lambda: acked(ack) >= 100)
        merger = spawn_python(MERGER, store)
        monkeypatch.setattr(kvbackup, "CHUNK_SIZE", 2048)
        floors = []
        with DB(store) as db:
            for round_ in range(3):
                wait_for(lambda: any(n.endswith(".hint") for n in os.listdir(store)))
                floors.append(acked(ack))
                db.backup(url, name=f"m{round_}", progress=lambda d, t: time.sleep(0.002))
        assert writer.poll() is None and merger.poll() is None
    finally:
        for proc in (writer, merger):
            if proc is not None:
                proc.kill()
                proc.wait()
    for round_, floor in enumerate(floors):
        target = str(tmp_path / f"r{round_}")
        restore(url, target, name=f"m{round_}")
        assert any(n.endswith(".hint") for n in os.listdir(target))
        assert check(target).notes == []
        assert_prefix_of_batches(target, floor)


def test_backup_after_merge_sends_merged_files(tmp_path):
    store = str(tmp_path / "store")
    url = f"file://{tmp_path / 'bk'}"
    with DB(store, max_file_size=4096) as db:
        for rnd in range(3):
            for i in range(60):
                db.put(b"k%03d" % i, b"round-%d-" % rnd * 10)
        before = db.backup(url, name="before")
        db.merge()
        names = {s.name for s in db.snapshot_files()}
        after = db.backup(url, name="after")
        expected = dict(db.items())
    assert any(n.endswith(".hint") for n in names)
    assert after.files_copied >= 2 and after.bytes < before.bytes
    for name in ("before", "after"):
        restore(url, tmp_path / name, name=name)
        with DB(str(tmp_path / name), read_only=True) as db:
            assert dict(db.items()) == expected
    assert prune_backups(url, keep=1) == ["before"]
    restore(url, tmp_path / "pruned")
    assert check(str(tmp_path / "pruned")).ok


RESTORE_CHILD = """
import sys
import kv_backend.backup as kb
kb.CHUNK_SIZE = 256
def show(done, total):
    sys.stdout.write(f"{done}\\n")
    sys.stdout.flush()
    sys.stdin.readline()  # (the parent's go-ahead: the restore cannot run ahead of the kill)
kb.restore(sys.argv[1], sys.argv[2], progress=show)
print("DONE", flush=True)
"""


def test_killed_restore_leaves_no_store(tmp_path):
    store = str(tmp_path / "store")
    url = f"file://{tmp_path / 'bk'}"
    with DB(store, max_file_size=4096) as db:
        for i in range(150):
            db.put(b"k%04d" % i, b"v" * 100)
        db.backup(url)
    rng = random.Random(99)
    target = str(tmp_path / "target")
    for _ in range(2):
        child = spawn_python(
            RESTORE_CHILD, url, target, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        stop_at = rng.randint(1, 40)
        try:
            for n, line in enumerate(child.stdout, 1):
                assert line != "DONE\n", "the restore ended before the kill"
                if n >= stop_at:
                    break  # killed while it waits in its progress call, mid-restore
                child.stdin.write("\n")
                child.stdin.flush()
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
            child.stdout.close()
            child.stdin.close()
        assert not os.path.exists(target), "a killed restore never leaves a partial store at the target"
    report = restore(url, target)
    assert report.files >= 3
    with DB(target, read_only=True) as db:
        assert len(db) == 150
