"""Processes SIGKILLed mid-operation: nothing acknowledged is lost, nothing corrupt is returned,
batches stay all-or-nothing, counters stay exact, and the write lock is released."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time

import pytest
from helpers import spawn_python
from zygote import Zygote

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files

MAX_FILE = 32768


def make_value(key: bytes, size: int) -> bytes:
    """A value that names its key, so that a value returned for the wrong key or torn is detected."""
    unit = key + b"."
    return (unit * (size // len(unit) + 1))[:size]


CRASH_CHILD = """
import random, sys
from kv_backend import DB

def make_value(key, size):
    unit = key + b"."
    return (unit * (size // len(unit) + 1))[:size]

path, run, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(seed)
db = DB(path, max_file_size=int(sys.argv[4]))
out = sys.stdout
print("ready", flush=True)
n = 0
while True:
    n += 1
    op = rnd.random()
    if op < 0.35:
        size = rnd.choice([10, 100, 1000, 3000])
        key = b"p:%d:%d:%d" % (run, n, size)
        db.put(key, make_value(key, size))
        out.write("P %s\\n" % key.decode()); out.flush()
    elif op < 0.5:
        out.write("b %d %d\\n" % (run, n)); out.flush()
        with db.batch() as b:
            for j in range(5):
                key = b"b:%d:%d:%d" % (run, n, j)
                b.put(key, make_value(key, 700))
        out.write("B %d %d\\n" % (run, n)); out.flush()
    elif op < 0.75:
        v = db.incr(b"c:%d" % run)
        out.write("C %d %d\\n" % (run, v)); out.flush()
    elif op < 0.9:
        j = rnd.randrange(4)
        key = b"o:%d:%d" % (run, j)
        db.put(key, b"%d|" % n + make_value(key, 300))
        out.write("O %d %d %d\\n" % (run, j, n)); out.flush()
    else:
        key = b"d:%d:%d" % (run, n)
        db.put(key, b"doomed")
        out.write("P %s\\n" % key.decode()); out.flush()
        db.delete(key)
        out.write("D %s\\n" % key.decode()); out.flush()
"""


class Acks:
    """What the killed children acknowledged, parsed from their output."""

    def __init__(self) -> None:
        self.puts: set[bytes] = set()
        self.deleted: set[bytes] = set()
        self.batches_tried: set[tuple[int, int]] = set()
        self.batches_done: set[tuple[int, int]] = set()
        self.counters: dict[int, int] = {}
        self.overwrites: dict[tuple[int, int], int] = {}
        self.runs: list[int] = []

    def parse(self, run: int, output: str) -> None:
        self.runs.append(run)
        lines = output.split("\n")
        for line in lines[:-1]:  # the last piece may be a line cut by the kill
            kind, *rest = line.split()
            if kind == "P":
                self.puts.add(rest[0].encode())
            elif kind == "D":
                self.deleted.add(rest[0].encode())
            elif kind == "b":
                self.batches_tried.add((int(rest[0]), int(rest[1])))
            elif kind == "B":
                self.batches_done.add((int(rest[0]), int(rest[1])))
            elif kind == "C":
                self.counters[int(rest[0])] = int(rest[1])
            elif kind == "O":
                self.overwrites[(int(rest[0]), int(rest[1]))] = int(rest[2])

    def verify(self, db: DB, runs: list[int]) -> int:
        """Check every acknowledged write of ``runs`` through ``db``; return how many were checked."""
        wanted = set(runs)
        checked = 0
        for key in self.puts:
            if int(key.split(b":")[1]) not in wanted:
                continue
            got = db.get(key)
            if key in self.deleted:
                assert got is None, f"acknowledged delete of {key!r} was lost"
            elif key.startswith(b"d:"):
                assert got in (None, b"doomed"), (key, got)
            else:
                size = int(key.split(b":")[3])
                assert got == make_value(key, size), (
                    f"acknowledged put of {key!r} lost or damaged: {got!r:.80}"
                )
            checked += 1
        for run, n in self.batches_tried:
            if run not in wanted:
                continue
            keys = [b"b:%d:%d:%d" % (run, n, j) for j in range(5)]
            values = [db.get(k) for k in keys]
            present = [v for v in values if v is not None]
            assert len(present) in (0, 5), f"batch {run}/{n} partly applied: {len(present)} of 5"
            if (run, n) in self.batches_done:
                assert len(present) == 5, f"acknowledged batch {run}/{n} was lost"
            if present:
                assert values == [make_value(k, 700) for k in keys]
            checked += 1
        for run in runs:
            acked = self.counters.get(run, 0)
            value = int(db.get(b"c:%d" % run, b"0"))
            assert value in (acked, acked + 1), f"counter of run {run}: {value}, acknowledged {acked}"
            for j in range(4):
                key = b"o:%d:%d" % (run, j)
                got = db.get(key)
                if (run, j) in self.overwrites:
                    assert got is not None, f"acknowledged overwrite of {key!r} was lost"
                if got is not None:
                    n, _, rest = got.partition(b"|")
                    assert rest == make_value(key, 300), f"{key!r} damaged"
                    assert int(n) >= self.overwrites.get((run, j), 0), f"{key!r} went back in time"
        # Every value that is there (acknowledged or not) is whole and belongs to its key.
        for run in runs:
            for key, value in db.items(prefix=b"p:%d:" % run):
                assert value == make_value(key, int(key.split(b":")[3])), f"{key!r} damaged"
        return checked


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing_acknowledged(store_path):
    """10 rounds of two concurrent writers, each SIGKILLed at its own random moment."""
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    acks = Acks()
    recoverer = DB(store_path, max_file_size=MAX_FILE)  # a writer open across every crash
    long_lived = DB(store_path, read_only=True)  # and a reader
    zygote = Zygote(CRASH_CHILD)  # the writers are forked from it: no interpreter to start each time
    problems: list[str] = []
    try:
        for rnd_no in range(10):
            runs = [2 * rnd_no, 2 * rnd_no + 1]
            stop = threading.Event()

            def watch(runs=runs, stop=stop) -> None:
                # A concurrent reader: whatever it sees must be whole, never an error.
                while not stop.is_set():
                    try:
                        for run in runs:
                            for key, value in long_lived.items(prefix=b"p:%d:" % run):
                                if value != make_value(key, int(key.split(b":")[3])):
                                    problems.append(f"reader saw a damaged value for {key!r}")
                    except Exception as exc:
                        problems.append(f"reader failed: {exc!r}")
                        return
                    time.sleep(0.005)

            procs = [
                zygote.start(store_path, str(run), str(rnd.randrange(1 << 30)), str(MAX_FILE)) for run in runs
            ]
            for p in procs:
                assert p.stdout.readline().strip() == "ready", p.stderr.read()
            watcher = threading.Thread(target=watch)
            watcher.start()
            for p in procs:
                time.sleep(rnd.uniform(0.0, 0.1))
                p.send_signal(signal.SIGKILL)
            for run, p in zip(runs, procs, strict=True):
                output = p.stdout.read()
                p.wait()
                assert p.returncode == -signal.SIGKILL, p.stderr.read()
                acks.parse(run, output)
            stop.set()
            watcher.join(30)
            assert not problems, problems
            if rnd_no % 2:
                # A new writer recovers the dead writers' tail when it opens the store...
                with DB(store_path, max_file_size=MAX_FILE) as db:
                    acks.verify(db, runs)
            else:
                # ...and a writer that was already open recovers it before its next write.
                recoverer.put(b"last-round", b"%d" % rnd_no)
            acks.verify(recoverer, runs)
            acks.verify(long_lived, runs)
        with DB(store_path, max_file_size=MAX_FILE) as db:
            checked = acks.verify(db, acks.runs)
            db.put(b"final", b"ok")
        assert checked > 20, "the children were killed before they acknowledged anything"
        assert len(list_data_files(store_path)) > 1
        report = check(store_path)
        assert report.ok, report.problems
        assert report.notes == []
        acks.verify(long_lived, acks.runs)
        assert long_lived[b"final"] == b"ok"
    finally:
        zygote.close()
        long_lived.close()
        recoverer.close()


def test_killed_lock_holder_releases_the_lock(store_path):
    with DB(store_path) as db:
        db.put(b"k", b"before")
    # The writer opens the store first (opening takes the lock briefly), then waits for "go".
    writer = spawn_python(
        """
import sys
from kv_backend import DB
with DB(sys.argv[1]) as db:
    print("opened", flush=True)
    sys.stdin.readline()
    db.put(b"k", b"after")
    print("written", flush=True)
""",
        store_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = None
    ro = DB(store_path, read_only=True)
    try:
        assert writer.stdout.readline().strip() == "opened", writer.stderr.read()
        holder = spawn_python(
            """
import sys, time
from kv_backend import DB
db = DB(sys.argv[1])
with db.locked():
    with db.batch() as b:
        b.put(b"inside", b"1")
    print("locked", flush=True)
    time.sleep(60)
""",
            store_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "locked", holder.stderr.read()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        time.sleep(0.3)
        assert writer.poll() is None, "the writer did not wait for the lock"
        # An open reader does not wait for the lock holder.
        assert ro[b"k"] == b"before"
        assert ro[b"inside"] == b"1"
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        out, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
        assert out.strip() == "written"
        with DB(store_path) as db:
            assert db[b"k"] == b"after"
            assert db[b"inside"] == b"1"
            db.put(b"again", b"1")  # and this process can take the lock too
        assert ro[b"again"] == b"1"
    finally:
        ro.close()
        for p in (holder, writer):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


DEAD_WRITER = """
import os, signal, sys
import kv_backend.db as D
import kv_backend.db_write as W  # the write side, where records reach the file
from kv_backend import DB, record

path, mode = sys.argv[1], sys.argv[2]
db = DB(path, max_file_size=4096)
for i in range(20):
    db.put(b"base%d" % i, b"v%d" % i)
print("base", flush=True)
sys.stdin.readline()

def die():
    os.kill(os.getpid(), signal.SIGKILL)

real_pwrite = W._pwrite
if mode == "half-record":
    def pwrite(fd, data, off):
        real_pwrite(fd, bytes(data)[: len(data) // 2], off)
        die()
    W._pwrite = pwrite
    db.put(b"doomed", b"x" * 1000)
elif mode == "batch-without-commit":
    def pwrite(fd, data, off):
        real_pwrite(fd, bytes(data)[: len(data) - len(record.encode_commit(5))], off)
        die()
    W._pwrite = pwrite
    with db.batch() as b:
        for j in range(5):
            b.put(b"doomed%d" % j, b"y" * 300)
elif mode == "before-publish":
    def pwrite(fd, data, off):
        real_pwrite(fd, data, off)  # the whole record, but the tail word is never moved
        die()
    W._pwrite = pwrite
    db.put(b"doomed", b"z" * 100)
elif mode == "after-reserving-space":
    real_extend = D.DB._extend
    def extend(self, new_end):
        real_extend(self, new_end)
        die()
    D.DB._extend = extend
    db.put(b"doomed", b"e" * (2 << 20))  # larger than the space reserved so far
elif mode == "during-rotation":
    real_new = D.DB._new_data_file
    def new_data_file(self, fid):
        real_new(self, fid)
        die()
    D.DB._new_data_file = new_data_file
    db.put(b"doomed", b"r" * 3600)
print("survived", flush=True)
"""

DOOMED = {
    "half-record": {b"doomed": None},
    "batch-without-commit": {b"doomed%d" % j: None for j in range(5)},
    "before-publish": {b"doomed": b"z" * 100},
    "after-reserving-space": {b"doomed": None},
    "during-rotation": {b"doomed": None},
}


@pytest.mark.parametrize("mode", sorted(DOOMED))
def test_writer_killed_at_each_step_of_a_write(store_path, mode):
    p = spawn_python(DEAD_WRITER, store_path, mode, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "base"
        reader = DB(store_path, read_only=True)
        other = DB(store_path)  # an idle writer that was open before the crash
        p.stdin.write("go\n")
        p.stdin.flush()
        p.wait(30)
        assert p.returncode == -signal.SIGKILL, p.stdout.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    base = {b"base%d" % i: b"v%d" % i for i in range(20)}
    doomed = DOOMED[mode]

    def doomed_state(db: DB) -> str:
        got = {k: db.get(k) for k in doomed}
        if all(v is None for v in got.values()):
            return "absent"
        assert got == doomed, f"{mode}: a half-written operation is visible: {got}"
        return "present"

    try:
        for db in (other, reader):
            assert {k: db.get(k) for k in base} == base
            state = doomed_state(db)
            if None in doomed.values():
                assert state == "absent"
        with DB(store_path) as fresh:
            assert {k: fresh.get(k) for k in base} == base
            agreed = doomed_state(fresh)
            if None in doomed.values():
                assert agreed == "absent"
            fresh.put(b"after", b"1")
            with fresh.batch() as b:
                b.put(b"after-batch", b"2")
            stats = fresh.stats()
            active = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
            with open(active, "rb") as f:
                f.seek(stats["active_end"])
                left = f.read()
            assert not left.strip(b"\0"), "bytes of the dead writer were left past the tail"
        for db in (reader, other):
            assert db.get(b"after") == b"1" and db.get(b"after-batch") == b"2"
            assert {k: db.get(k) for k in base} == base
            assert doomed_state(db) == agreed
        other.put(b"from-other", b"3")
        assert reader.get(b"from-other") == b"3"
    finally:
        reader.close()
        other.close()
    report = check(store_path)
    assert report.ok and report.notes == [], (report.problems, report.notes)
    with DB(store_path) as db:
        assert len(db) == 20 + 3 + (len(doomed) if agreed == "present" else 0)


def test_interrupted_rotation_leaves_no_reserved_zeros_in_closed_files(store_path):
    survivor = DB(store_path, max_file_size=4096)  # a writer open since the store was new
    p = spawn_python(
        DEAD_WRITER, store_path, "during-rotation", stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout.readline().strip() == "base"
        p.stdin.write("go\n")
        p.stdin.flush()
        p.wait(30)
        assert p.returncode == -signal.SIGKILL
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    try:
        survivor.put(b"after-crash", b"x")  # appends to the old file, reserving space ahead of it
        with DB(store_path, max_file_size=4096) as fresh:  # adopts the file the dead writer created
            assert fresh[b"after-crash"] == b"x"
            assert all(fresh[b"base%d" % i] == b"v%d" % i for i in range(20))
            fresh.put(b"fresh", b"y")
        assert survivor[b"fresh"] == b"y"
        survivor.put(b"again", b"z")
    finally:
        survivor.close()
    with DB(store_path) as db:
        assert db[b"again"] == b"z" and db[b"after-crash"] == b"x"
    report = check(store_path)
    assert report.ok, report.problems


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_reader_survives_a_file_shrinking_while_it_maps_it(store_path, monkeypatch):
    import kv_backend.files as files_module

    writer = DB(store_path, max_file_size=4096)
    reader = DB(store_path, read_only=True)
    try:
        reader.get(b"x")  # the reader maps the new, still tiny active file
        for i in range(6):
            writer.put(b"k%d" % i, b"v" * 300)  # the file grows (space is reserved past the tail)
        active = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
        end = writer.stats()["active_end"]
        real_map_file = files_module.map_file

        def racing_map_file(fd: int, size: int):
            """map_file, except that the file shrinks first, as when a writer closes it at that moment."""
            if os.readlink(f"/proc/self/fd/{fd}") == active and size > end:
                os.truncate(active, end)  # what DB._rotate does to the file it closes
            return real_map_file(fd, size)

        monkeypatch.setattr(files_module, "map_file", racing_map_file)
        assert reader.get(b"k5") == b"v" * 300
    finally:
        reader.close()
        writer.close()


def test_file_grown_by_another_writer_while_this_one_opens(store_path, monkeypatch):
    """Another writer grows the active file (reserving space) between this process mapping it
    and reading its size at open, then fails its write (disk full) or is killed before writing:
    this process's own later writes past its mapping must still read back."""
    from kv_backend.files import DataFile

    with DB(store_path) as db:
        db.put(b"a", b"1")
    active = os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
    size = os.path.getsize(active)
    real_size = DataFile.size

    def racing_size(self: DataFile) -> int:
        if self.path == active and os.path.getsize(active) == size:
            os.truncate(active, 2 * size)  # what the other writer's DB._extend does
        return real_size(self)

    monkeypatch.setattr(DataFile, "size", racing_size)
    db = DB(store_path)
    monkeypatch.setattr(DataFile, "size", real_size)
    try:
        value = b"v" * (size // 4)
        for i in range(6):
            db.put(b"k%d" % i, value)  # past the first mapping's end
        assert all(db.get(b"k%d" % i) == value for i in range(6))
    finally:
        db.close()
