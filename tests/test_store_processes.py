"""Store, shelve and dbm under real processes: concurrent writers, and writers killed with SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from helpers import spawn_python

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import Store

WRITER = """
import sys
from kv_backend import Store
import kv_backend.shelve as kshelve
import kv_backend.dbm as kdbm

kind, path, wid, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == "shelve":
    target = kshelve.open(path)
elif kind == "dbm":
    target = kdbm.open(path, "c")
else:
    target = Store(path)
counter = Store(path + "-counter")
for i in range(n):
    key = f"w{wid}-{i}"
    target[key] = {"writer": wid, "i": i} if kind != "dbm" else key.encode()
    if i % 3 == 0:
        counter.incr("hits")
target.close()
counter.close()
print("done", flush=True)
"""


@pytest.mark.parametrize("kind", ["store", "shelve", "dbm"])
def test_many_processes_write_one_store(tmp_path, kind):
    path = str(tmp_path / "shared")
    writers, n = 4, 120
    procs = [
        spawn_python(WRITER, kind, path, str(w), str(n), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for w in range(writers)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        assert out.strip() == b"done"
    expected_hits = writers * len(range(0, n, 3))
    with Store(path + "-counter") as counter:
        assert counter["hits"] == expected_hits  # incr never lost an update
    if kind == "shelve":
        with kshelve.open(path, "r") as shelf:
            assert len(shelf) == writers * n
            for w in range(writers):
                for i in range(n):
                    assert shelf[f"w{w}-{i}"] == {"writer": w, "i": i}
    elif kind == "dbm":
        with kdbm.open(path, "r") as db:
            assert len(db) == writers * n
            assert all(db[f"w{w}-{i}"] == f"w{w}-{i}".encode() for w in range(writers) for i in range(n))
    else:
        with Store(path) as s:
            assert len(s) == writers * n
            assert all(s[f"w{w}-{i}"] == {"writer": w, "i": i} for w in range(writers) for i in range(n))


def test_shelf_writes_are_seen_live_by_other_processes(tmp_path):
    path = str(tmp_path / "live")
    with kshelve.open(path) as shelf:
        shelf["before"] = 1
        child = spawn_python(
            """
import sys, time
import kv_backend.shelve as kshelve
with kshelve.open(sys.argv[1]) as shelf:
    assert shelf["before"] == 1
    shelf["from_child"] = [1, 2, 3]
print("ok", flush=True)
""",
            path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err.decode()
        assert shelf["from_child"] == [1, 2, 3]  # without reopening


CRASHER = """
import sys
from kv_backend import Store
import kv_backend.shelve as kshelve

kind, path = sys.argv[1], sys.argv[2]
target = kshelve.open(path) if kind == "shelve" else Store(path)
i = 0
while True:
    if kind == "store" and i % 4 == 3:
        with target.batch() as b:
            for j in range(5):
                b.set(f"b{i}-{j}", {"i": i, "j": j, "pad": "x" * 200})
    else:
        target[f"k{i}"] = {"i": i, "pad": "y" * (i % 300)}
    print(i, flush=True)
    i += 1
"""


def _kill_mid_run(kind: str, path: str, rng: random.Random) -> int:
    """Start a writer, let it acknowledge a random number of writes, SIGKILL it; return the last ack."""
    proc = spawn_python(CRASHER, kind, path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    target = rng.randint(20, 400)
    last = -1
    try:
        assert proc.stdout is not None
        while last < target:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"writer exited early: {proc.stderr.read().decode()}")
            last = int(line)
        time.sleep(rng.random() * 0.01)  # land somewhere in the middle of a later write
        os.kill(proc.pid, signal.SIGKILL)
        for line in proc.stdout:  # acknowledgements printed before the kill still count
            last = int(line)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
    return last


@pytest.mark.parametrize("run", range(3))
def test_sigkilled_store_writer_loses_no_acknowledged_write(tmp_path, run):
    rng = random.Random(1000 + run)
    path = str(tmp_path / "crash")
    last = _kill_mid_run("store", path, rng)
    with Store(path) as s:
        for i in range(last + 1):
            if i % 4 == 3:
                for j in range(5):
                    assert s[f"b{i}-{j}"] == {"i": i, "j": j, "pad": "x" * 200}
            else:
                assert s[f"k{i}"] == {"i": i, "pad": "y" * (i % 300)}
        # the write in flight at the kill is either complete or absent, batches all or nothing
        i = last + 1
        if i % 4 == 3:
            present = [f"b{i}-{j}" in s for j in range(5)]
            assert all(present) or not any(present)
        elif f"k{i}" in s:
            assert s[f"k{i}"] == {"i": i, "pad": "y" * (i % 300)}
        assert f"k{last + 3}" not in s
        s["after"] = "the store is writable again"
        assert s["after"] == "the store is writable again"


@pytest.mark.parametrize("run", range(2))
def test_sigkilled_shelf_writer_loses_no_acknowledged_write(tmp_path, run):
    rng = random.Random(2000 + run)
    path = str(tmp_path / "crash-shelf")
    last = _kill_mid_run("shelve", path, rng)
    with kshelve.open(path, "w") as shelf:
        for i in range(last + 1):
            assert shelf[f"k{i}"] == {"i": i, "pad": "y" * (i % 300)}
        shelf["after"] = 1


def test_store_survives_fork_and_threads(tmp_path):
    import threading

    path = str(tmp_path / "forked")
    with Store(path) as s:
        s["parent"] = 1
        pids = []
        for c in range(2):
            pid = os.fork()
            if pid == 0:  # child: use the inherited Store from several threads
                code = 0
                try:

                    def work(t: int, c: int = c) -> None:
                        for i in range(50):
                            s.incr("count")
                            s[f"c{c}-t{t}-{i}"] = i

                    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                except BaseException:
                    code = 1
                finally:
                    os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert s["count"] == 2 * 3 * 50
        assert len(s.keys(prefix="c")) == 2 * 3 * 50 + 1  # and "count"
        assert s["parent"] == 1


def _pool_worker(args):
    store, i = args
    store[f"pool-{i}"] = i * i
    return store.incr("pool-count")


def test_store_can_be_sent_to_worker_processes(tmp_path):
    import multiprocessing
    import pickle

    from kv_backend.errors import DatabaseClosedError

    path = str(tmp_path / "pool")
    with Store(path, serializer="json", sync=0.5) as s:
        copy = pickle.loads(pickle.dumps(s))
        assert copy.path == s.path and copy.serializer.name == "json" and copy.db.sync_mode == 0.5
        copy.close()
        # spawn, not fork: a pool forked from the test process would also run the
        # after-fork hooks of whatever else it holds (other tests' broker connections).
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            results = pool.map(_pool_worker, [(s, i) for i in range(8)])
        assert sorted(results) == list(range(1, 9))
        assert s.get_many([f"pool-{i}" for i in range(8)]) == {f"pool-{i}": i * i for i in range(8)}
    with pytest.raises(DatabaseClosedError):
        pickle.dumps(s)
