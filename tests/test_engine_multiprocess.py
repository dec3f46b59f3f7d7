"""Many real processes (and threads, and forked children) on one store at once."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pytest
from helpers import exit_code, fork_child, run_python, spawn_python

from kv_backend import DB
from kv_backend.check import check

PRELUDE = """
import json, mmap, os, struct, sys, threading
from kv_backend import DB

def ready_and_wait():
    print("ready", flush=True)
    line = sys.stdin.readline()
    assert line.strip() == "go", line

def report(obj):
    print(json.dumps(obj), flush=True)
"""


def start(code: str, *args: str) -> subprocess.Popen:
    return spawn_python(
        PRELUDE + code,
        *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def ready_then_go(procs: list[subprocess.Popen]) -> None:
    """Wait until every child has opened the store, then release them all at once."""
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            for q in procs:
                q.kill()
                q.wait()
            raise AssertionError(f"child did not start: {line!r}\n{p.stderr.read()}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def finish(procs: list[subprocess.Popen], timeout: float = 120) -> list:
    """Wait for every child; fail with its stderr if one failed; return each one's last JSON line."""
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, f"child failed ({p.returncode}):\n{err}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def make_report_file(tmp_path) -> str:
    path = str(tmp_path / "report.bin")
    with open(path, "wb") as f:
        f.write(b"\0" * 16)
    return path


# ------------------------------------------------------------------ atomic operations


INCR_CHILD = """
path, n = sys.argv[1], int(sys.argv[2])
db = DB(path, max_file_size=4096)  # small files: the writers rotate them under each other
ready_and_wait()
seen = []
for _ in range(n):
    seen.append(db.incr(b"counter"))
    with db.locked():  # a hand-made read-modify-write under the cross-process lock
        v = int(db.get(b"manual", b"0"))
        db.put(b"manual", str(v + 1).encode())
db.close()
report(seen)
"""


def test_incr_from_four_processes_is_exact(store_path):
    DB(store_path).close()
    procs = [start(INCR_CHILD, store_path, "300") for _ in range(4)]
    ready_then_go(procs)
    results = finish(procs)
    with DB(store_path) as db:
        assert db[b"counter"] == b"1200"
        assert db[b"manual"] == b"1200"
        assert db.stats()["files"] > 10
    # Every incr returned a distinct value: no two processes saw the same old value.
    assert sorted(v for r in results for v in r) == list(range(1, 1201))
    for r in results:
        assert r == sorted(r)


PIA_CHILD = """
path, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = DB(path, max_file_size=4096)
ready_and_wait()
won = [i for i in range(n) if db.put_if_absent(b"k%d" % i, me.encode())]
popped = [i for i in range(n) if db.pop(b"q%d" % i, None) is not None]
deleted = [i for i in range(n) if db.delete(b"d%d" % i)]
for _ in range(30):
    db.update(b"log", lambda old: (old or b"") + me.encode() + b",")
report([won, popped, deleted])
"""


def test_put_if_absent_pop_delete_have_exactly_one_winner(store_path):
    with DB(store_path) as db:
        for i in range(40):
            db.put(b"q%d" % i, b"to pop")
            db.put(b"d%d" % i, b"to delete")
    procs = [start(PIA_CHILD, store_path, str(me), "40") for me in range(5)]
    ready_then_go(procs)
    results = finish(procs)
    for what in range(3):  # put_if_absent, pop, delete
        winners: dict[int, list[int]] = {}
        for me, result in enumerate(results):
            for i in result[what]:
                winners.setdefault(i, []).append(me)
        assert sorted(winners) == list(range(40))
        assert all(len(w) == 1 for w in winners.values()), (what, winners)
        if what == 0:
            with DB(store_path) as db:
                for i, (me,) in winners.items():
                    assert db[b"k%d" % i] == str(me).encode()
    with DB(store_path) as db:
        assert list(db.keys(prefix=b"q")) == [] and list(db.keys(prefix=b"d")) == []
        log = db[b"log"].split(b",")[:-1]
        assert sorted(log) == sorted(str(me).encode() for me in range(5) for _ in range(30))


# ------------------------------------------------------------------ visibility


WRITER_CHILD = """
path, report_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(report_path, os.O_RDWR)
mm = mmap.mmap(fd, 16)
db = DB(path, max_file_size=8192)
ready_and_wait()
for i in range(1, n + 1):
    db.put(b"seq", b"%d" % i)
    db.put(b"k%d" % i, b"v%d." % i * 10)
    struct.pack_into("<Q", mm, 0, i)  # reported as written only after put returned
struct.pack_into("<Q", mm, 8, 1)
report({"written": n})
"""

READER_CHILD = """
path, report_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(report_path, os.O_RDONLY)
mm = mmap.mmap(fd, 16, prot=mmap.PROT_READ)
db = DB(path, read_only=(mode == "ro"), max_file_size=8192)
ready_and_wait()
checks = 0
while True:
    done = struct.unpack_from("<Q", mm, 8)[0]
    r = struct.unpack_from("<Q", mm, 0)[0]
    if r:
        seq = db.get(b"seq")
        assert seq is not None and int(seq) >= r, f"stale read: reported {r}, read {seq!r}"
        value = db.get(b"k%d" % r)
        assert value == b"v%d." % r * 10, f"k{r} read as {value!r}"
        assert b"k%d" % r in db
        checks += 1
    if done:
        break
report({"checks": checks})
"""


def test_readers_never_see_stale_values(store_path, tmp_path):
    DB(store_path, max_file_size=8192).close()
    report_path = make_report_file(tmp_path)
    readers = [start(READER_CHILD, store_path, report_path, mode) for mode in ("ro", "rw", "ro")]
    writer = start(WRITER_CHILD, store_path, report_path, "400")
    ready_then_go([*readers, writer])
    results = finish([writer, *readers])
    assert results[0] == {"written": 400}
    assert all(r["checks"] > 0 for r in results[1:])
    with DB(store_path) as db:
        assert db[b"seq"] == b"400"
        assert db.stats()["files"] > 3  # the readers followed several file rotations


BATCH_WRITER = """
path, n = sys.argv[1], int(sys.argv[2])
db = DB(path, max_file_size=16384)
ready_and_wait()
for i in range(1, n + 1):
    with db.batch() as b:
        for j in range(10):
            b.put(b"a%d" % j, b"%d" % i)
        b.delete(b"marker%d" % (i - 1))
        b.put(b"marker%d" % i, b"x" * 50)
db.put(b"done", b"1")
report({"batches": n})
"""

BATCH_READER = """
path, mode = sys.argv[1], sys.argv[2]
db = DB(path, read_only=(mode == "ro"), max_file_size=16384)
ready_and_wait()
checks = 0
while True:
    done = db.get(b"done") is not None
    if mode == "locked":
        with db.locked():  # under the lock, a reader sees whole batches only
            values = [db.get(b"a%d" % j) for j in range(10)]
            assert len(set(values)) == 1, values
            markers = list(db.keys(prefix=b"marker"))
            assert len(markers) <= 1, markers
    else:
        # Read one by one: a later read may see a later batch, never an earlier one.
        values = [int(db.get(b"a%d" % j, b"0")) for j in range(10)]
        assert values == sorted(values), values
        pairs = [int(v) for _, v in db.items(prefix=b"a")]
        assert pairs == sorted(pairs), pairs
    checks += 1
    if done:
        break
report({"checks": checks})
"""


def test_batches_are_all_or_nothing_for_concurrent_readers(store_path):
    DB(store_path, max_file_size=16384).close()
    readers = [start(BATCH_READER, store_path, mode) for mode in ("ro", "rw", "locked")]
    writer = start(BATCH_WRITER, store_path, "250")
    ready_then_go([*readers, writer])
    results = finish([writer, *readers])
    assert all(r["checks"] > 0 for r in results[1:])
    with DB(store_path) as db:
        assert {db[b"a%d" % j] for j in range(10)} == {b"250"}
        assert list(db.keys(prefix=b"marker")) == [b"marker250"]


# ------------------------------------------------------------------ fork


def test_fork_child_keeps_working(store_path):
    db = DB(store_path, max_file_size=4096)  # small files: parent and child rotate them under each other
    try:
        db.put(b"before", b"fork")
        r, w = os.pipe()

        def child():
            os.close(r)
            assert db.get(b"before") == b"fork"
            os.write(w, b"x")
            for i in range(300):
                db.incr(b"n")
                db.put(b"child%d" % i, b"c" * 50)
            with db.batch() as b:
                b.put(b"child", b"done")
            db.close()

        pid = fork_child(child)
        os.close(w)
        assert os.read(r, 1) == b"x"
        os.close(r)
        for i in range(300):
            db.incr(b"n")
            db.put(b"parent%d" % i, b"p" * 50)
        assert exit_code(pid) == 0
        assert db[b"n"] == b"600"
        assert db[b"child"] == b"done"
        assert len(db) == 3 + 600
        assert db.stats()["files"] > 5
        db.put(b"after", b"1")  # the parent's lock still works after the child closed its copy
    finally:
        db.close()
    with DB(store_path) as again:
        assert again[b"n"] == b"600" and again[b"after"] == b"1"


_PREFORK_POOL = """
import multiprocessing, sys
from kv_backend import DB

db = DB(sys.argv[1])

def incr(n):
    return [db.incr(b"pool") for _ in range(n)]

with multiprocessing.get_context("fork").Pool(3) as pool:
    results = pool.map(incr, [100] * 6)
assert db[b"pool"] == b"600", db[b"pool"]
assert sorted(v for r in results for v in r) == list(range(1, 601))
print("ok")
"""


def test_prefork_pool_uses_a_db_opened_in_the_parent(store_path):
    """Like Celery's prefork pool: workers forked after the DB was opened use the inherited object.

    Runs in a fresh interpreter: a pool forked from the test process would also
    run the after-fork hooks of whatever else that process holds (other tests'
    broker connections, for one).
    """
    proc = run_python(_PREFORK_POOL, store_path)
    assert proc.stdout.strip() == "ok"


def test_forked_child_does_not_share_the_parents_lock(store_path):
    with DB(store_path) as db:
        with db.locked():
            pid = fork_child(lambda: db.put(b"x", b"child"))
            time.sleep(0.3)
            # The child waits for the parent's lock instead of writing through it.
            assert os.waitpid(pid, os.WNOHANG) == (0, 0)
            assert db.get(b"x") is None
            db.put(b"x", b"parent")
        assert exit_code(pid) == 0
        assert db[b"x"] == b"child"


def test_fork_while_another_thread_holds_the_lock(store_path):
    with DB(store_path) as db:
        held = threading.Event()
        release = threading.Event()

        def holder():
            with db.locked():
                held.set()
                release.wait(10)
                db.put(b"order", b"thread")

        t = threading.Thread(target=holder)
        t.start()
        assert held.wait(10)
        # The child inherits a thread lock owned by a thread it does not have: it must not deadlock.
        pid = fork_child(lambda: db.put(b"order", b"child"))
        time.sleep(0.2)
        release.set()
        t.join(10)
        assert exit_code(pid) == 0
        assert db[b"order"] == b"child"


def test_closing_another_instance_keeps_the_lock(store_path):
    """flock, not POSIX record locks: closing another fd of LOCK in this process releases nothing."""
    with DB(store_path) as db:
        second = DB(store_path)
        writer = start(
            """
path = sys.argv[1]
db = DB(path)
ready_and_wait()
db.put(b"k", b"child")
report("written")
""",
            store_path,
        )
        try:
            assert writer.stdout.readline().strip() == "ready"
            with db.locked():
                writer.stdin.write("go\n")
                writer.stdin.flush()
                second.close()  # closes this process's other descriptor of LOCK
                time.sleep(0.3)
                assert writer.poll() is None, "closing another descriptor released the lock"
                assert db.get(b"k") is None
                db.put(b"k", b"parent")
            assert finish([writer]) == ["written"]
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
        assert db[b"k"] == b"child"


# ------------------------------------------------------------------ threads and processes


THREADS_CHILD = """
path, n = sys.argv[1], int(sys.argv[2])
db = DB(path)
ready_and_wait()
out = [[] for _ in range(2)]
def work(i):
    for _ in range(n):
        out[i].append(db.incr(b"n"))
threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
for t in threads: t.start()
for t in threads: t.join()
report(out[0] + out[1])
"""


def test_threads_and_processes_together(store_path):
    n = 150
    shared = DB(store_path)
    own = DB(store_path)
    try:
        procs = [start(THREADS_CHILD, store_path, str(n)) for _ in range(2)]
        seen: list[list[int]] = [[] for _ in range(4)]
        errors: list[BaseException] = []

        def work(i: int, db: DB) -> None:
            try:
                for _ in range(n):
                    seen[i].append(db.incr(b"n"))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i, shared)) for i in range(3)]
        threads.append(threading.Thread(target=work, args=(3, own)))
        ready_then_go(procs)
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        results = finish(procs)
        assert not errors
        total = 8 * n
        assert shared[b"n"] == str(total).encode()
        assert own[b"n"] == str(total).encode()
        everything = [v for s in seen for v in s] + [v for r in results for v in r]
        assert sorted(everything) == list(range(1, total + 1))
    finally:
        shared.close()
        own.close()


def test_threads_writing_and_iterating_one_instance(store_path):
    with DB(store_path) as db:
        errors: list[BaseException] = []
        scans: list[int] = []
        stop = threading.Event()

        def writer(t: int) -> None:
            try:
                for i in range(300):
                    db.put(b"t%d:%04d" % (t, i), b"v")
                    if i % 3 == 0:
                        db.delete(b"t%d:%04d" % (t, i))
            except BaseException as exc:
                errors.append(exc)

        def iterate() -> None:
            try:
                while not stop.is_set():
                    keys = list(db.keys())
                    assert keys == sorted(set(keys))
                    scans.append(len(keys))
                    time.sleep(0.0005)  # a busy loop would starve the writers of the GIL
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
        it = threading.Thread(target=iterate)
        it.start()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stop.set()
        it.join(60)
        assert not errors, errors
        assert scans, "the iterating thread never ran"
        assert len(db) == 3 * 200
    with DB(store_path) as db:
        assert len(db) == 3 * 200


@pytest.mark.parametrize("read_only", [False, True])
def test_reader_process_sees_writes_without_reopening(store_path, read_only):
    code = """
path, ro = sys.argv[1], sys.argv[2] == "1"
db = DB(path, read_only=ro)
ready_and_wait()
seen = {}
for line in sys.stdin:
    key = line.strip().encode()
    if key == b"quit":
        break
    seen[key.decode()] = (db.get(key) or b"").decode()
    print("ok", flush=True)
report(seen)
"""
    with DB(store_path) as db:
        db.put(b"k0", b"initial")
        p = start(code, store_path, "1" if read_only else "0")
        ready_then_go([p])
        for i in range(1, 6):
            db.put(b"k%d" % i, b"v%d" % i)
            p.stdin.write(f"k{i}\n")
            p.stdin.flush()
            assert p.stdout.readline().strip() == "ok"
        db.delete(b"k0")
        p.stdin.write("k0\nquit\n")
        p.stdin.flush()
        (seen,) = finish([p])
    assert seen == {"k1": "v1", "k2": "v2", "k3": "v3", "k4": "v4", "k5": "v5", "k0": ""}


FIRST_OPEN_CHILD = """
import os, sys, time
from kv_backend import DB
path, start, me = sys.argv[1], float(sys.argv[2]), sys.argv[3]
while time.time() < start:  # every child opens the new store at the same instant
    pass
with DB(path) as db:
    db.put(me.encode(), b"here")
print("ok")
"""


def test_many_processes_creating_one_new_store_at_once(tmp_path):
    """Gunicorn workers starting together on an empty LOCATION: every one opens it, none is refused."""
    for round_no in range(2):
        path = str(tmp_path / f"new-{round_no}")
        start = time.time() + 1.0
        procs = [
            spawn_python(
                FIRST_OPEN_CHILD,
                *(path, str(start), f"p{i}"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(6)
        ]
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0 and out.strip() == "ok", err
        with DB(path) as db:
            assert sorted(db.keys()) == [b"p%d" % i for i in range(6)]


WRITERS_CHILD = """
path, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
db = DB(path, max_file_size=8192)  # small files: rotations happen under the other writers
ready_and_wait()
for i in range(n):
    own, shared = b"own:%d:%d" % (me, i), b"shared:%d" % (i % 7)
    db.put(own, b"v%d" % i, ttl=3600 if i % 3 == 0 else None)
    db.put(shared, b"%d:%d" % (me, i))
    # Read-your-writes, whether the put appended before or after indexing the others' records.
    assert db.get(own) == b"v%d" % i, (own, db.get(own))
    assert db.get(shared) is not None
    if i % 5 == 4:
        assert db.delete(b"own:%d:%d" % (me, i - 2))
report(len(db))
"""


def test_busy_writers_read_their_own_writes_and_agree_at_the_end(store_path):
    """Four processes writing at once (puts land behind one another's unindexed records)."""
    DB(store_path).close()
    n = 400
    procs = [start(WRITERS_CHILD, store_path, str(me), str(n)) for me in range(4)]
    ready_then_go(procs)
    finish(procs)
    own_left = n - n // 5
    with DB(store_path) as db:
        assert len(db) == 4 * own_left + 7
        for me in range(4):
            for i in range(n):
                expected = None if (i % 5 == 2 and i + 2 < n) else b"v%d" % i
                assert db.get(b"own:%d:%d" % (me, i)) == expected
        shared = {k: db[k] for k in db.keys(prefix=b"shared:")}
        # Each shared key holds one of the last values some writer gave it.
        for j in range(7):
            _writer, i_s = (int(x) for x in shared[b"shared:%d" % j].split(b":"))
            assert i_s % 7 == j and i_s >= n - 7
        with DB(store_path, read_only=True) as fresh:
            assert db.stats()["live_bytes"] == fresh.stats()["live_bytes"]
    assert check(store_path).ok


def test_in_use_tells_whether_any_process_has_the_store_open(store_path):
    from kv_backend.state import in_use

    assert not in_use(store_path)  # no store yet
    db = DB(store_path)
    assert in_use(store_path)
    db.close()
    assert not in_use(store_path)
    with DB(store_path, read_only=True):
        assert in_use(store_path)  # readers count too
    holder = spawn_python(
        "import sys; from kv_backend import DB\n"
        "db = DB(sys.argv[1]); print('open', flush=True); sys.stdin.read()",
        store_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"open"
        assert in_use(store_path)
    finally:
        holder.communicate(b"", timeout=30)
    assert not in_use(store_path)
    # A forked child keeps the store it inherited open after the parent closes it.
    db = DB(store_path)
    r, w = os.pipe()
    pid = fork_child(lambda: os.read(r, 1))
    db.close()
    assert in_use(store_path)
    os.write(w, b"x")
    assert exit_code(pid) == 0
    assert not in_use(store_path)
    os.close(r)
    os.close(w)


def test_closed_files_keep_no_descriptor_of_ours(store_path):
    """Files this process closed by rotating, or saw another process close, keep only their
    mapping's descriptor (none where maps keep none, see kv_backend.filemaps), so long-running
    processes stay within limits."""
    from kv_backend.filemaps import MAPS_HOLD_FD

    per_file = 1 if MAPS_HOLD_FD else 0

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to count descriptors")
    before = fds()
    with DB(store_path, max_file_size=4096) as db:
        for i in range(2000):
            db.put(b"k%05d" % i, b"v" * 100)
        files = len([n for n in os.listdir(store_path) if n.endswith(".data")])
        assert fds() - before <= per_file * files + 6
        run_python(
            """
            import sys
            from kv_backend import DB
            with DB(sys.argv[1], max_file_size=4096) as db:
                for i in range(2000, 4000):
                    db.put(b"k%05d" % i, b"w" * 100)
            """,
            store_path,
        )
        assert db[b"k03999"] == b"w" * 100 and db[b"k00000"] == b"v" * 100 and len(db) == 4000
        files = len([n for n in os.listdir(store_path) if n.endswith(".data")])
        assert fds() - before <= per_file * files + 6
        db.put(b"still", b"writes")
        assert db[b"still"] == b"writes"
    assert fds() == before
