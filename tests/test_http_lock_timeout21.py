"""``kvb http``'s writes waited for the store's write lock for as long as another process held it (a
long transaction, a script running long on a ``kvb serve`` of the store): the client hung with no
answer and each waiting write held one of the server's threads. A write now waits at most
``--lock-timeout`` seconds (``KVB_HTTP_LOCK_TIMEOUT``, default 5), then is answered 503 lock_timeout
with Retry-After, nothing written."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from helpers import child_env, run_kvb
from starlette.testclient import TestClient
from test_http_etag19 import _serve
from test_serve_lock_wait20 import Holder

from kv_backend.db import DB
from kv_backend.errors import ConfigurationError, LockTimeoutError
from kv_backend.http import create_app
from kv_backend.http.app import DEFAULT_LOCK_TIMEOUT, LOCKING_THREADS
from kv_backend.lock_waiter import LockWaiter
from kv_backend.locking import waiting_until


def _assert_timed_out(reply: httpx.Response) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "1"
    body = reply.json()
    assert body["error"] == "lock_timeout"
    assert "nothing was written" in body["message"] and "--lock-timeout" in body["message"]


def test_writes_give_up_after_the_lock_timeout_and_write_nothing(tmp_path, monkeypatch):
    path = str(tmp_path / "store")
    monkeypatch.setenv("KVB_HTTP_LOCK_TIMEOUT", "0.5")
    with open(tmp_path / "log", "ab") as log:
        proc, url = _serve(path, log)
        holder = None
        # (one client for all, its threads too: httpx.put and its kind build one each, with its TLS
        # context, 15-40 ms a call)
        client = httpx.Client(timeout=30)
        try:
            assert client.put(f"{url}/v1/keys/a", content=b"1").status_code == 201
            holder = Holder(path)
            replies: list[httpx.Response] = []

            def put(i: int) -> None:
                replies.append(client.put(f"{url}/v1/keys/k{i}", content=b"x"))

            # more writes than may wait in threads at once: those without a thread give up too
            writers = [threading.Thread(target=put, args=(i,)) for i in range(LOCKING_THREADS + 10)]
            started = time.monotonic()
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join(30)
            assert time.monotonic() - started < 10
            assert len(replies) == len(writers)
            for reply in replies:
                _assert_timed_out(reply)
            _assert_timed_out(client.delete(f"{url}/v1/keys/a"))
            _assert_timed_out(client.post(f"{url}/v1/keys/a/incr"))
            txn = [{"op": "put", "key": "t", "value": "v"}]
            _assert_timed_out(client.post(f"{url}/v1/txn", json={"ops": txn}))
            got = client.get(f"{url}/v1/keys/a", timeout=5)  # reads are answered meanwhile
            assert got.status_code == 200 and got.content == b"1"
            holder.release()
            assert client.get(f"{url}/v1/keys/k0").status_code == 404  # nothing was written
            assert client.get(f"{url}/v1/keys/t").status_code == 404
            assert client.put(f"{url}/v1/keys/k0", content=b"y").status_code == 201  # free again
            assert client.post(f"{url}/v1/keys/a/incr").json() == {"value": 2}
        finally:
            client.close()
            if holder is not None:
                holder.release()
            proc.terminate()
            proc.wait(15)


def test_a_write_waits_for_a_lock_released_within_the_timeout(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as db, DB(path) as other:
        client = TestClient(create_app(db, lock_timeout=5))
        with client:
            held = threading.Event()

            def hold() -> None:
                with other.locked():
                    held.set()
                    time.sleep(0.5)

            holder = threading.Thread(target=hold)
            holder.start()
            held.wait(5)
            assert client.put("/v1/keys/k", content=b"v").status_code == 201
            holder.join()
        assert db.get(b"k") == b"v"


def test_a_transaction_held_in_another_thread_of_the_process_times_out_too(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as db:
        release, held = threading.Event(), threading.Event()

        def hold() -> None:
            with db.locked():
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            held.wait(5)
            with TestClient(create_app(db, lock_timeout=0.3)) as client:
                started = time.monotonic()
                _assert_timed_out(client.put("/v1/keys/k", content=b"v"))
                assert time.monotonic() - started < 3
        finally:
            release.set()
            holder.join()
        assert db.get(b"k") is None


def test_waiting_until_bounds_only_the_first_take_of_the_lock(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as db:
        release, held = threading.Event(), threading.Event()

        def hold() -> None:
            with db.locked():
                held.set()
                release.wait(10)

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            held.wait(5)
            started = time.monotonic()
            with pytest.raises(LockTimeoutError, match="nothing was written"), waiting_until(started + 0.2):
                db.put(b"k", b"v")
            assert 0.15 < time.monotonic() - started < 2
        finally:
            release.set()
            holder.join()
        with waiting_until(time.monotonic() - 1):  # past, but the lock is free: taken at once
            db.put(b"k", b"v")
            db.put(b"k2", b"v")  # (a later take in the same block is not bounded)
        assert db.get(b"k") == b"v" and db.get(b"k2") == b"v"


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "5"])
def test_a_lock_timeout_the_app_cannot_use_is_refused(tmp_path, bad):
    with DB(str(tmp_path / "store")) as db, pytest.raises(ConfigurationError, match="lock_timeout"):
        create_app(db, lock_timeout=bad)


def test_the_cli_option_and_the_variable_are_checked(tmp_path, monkeypatch):
    assert DEFAULT_LOCK_TIMEOUT == 5
    done = run_kvb("http", "--dir", str(tmp_path / "s"), "--lock-timeout", "0", timeout=60)
    assert done.returncode == 2 and "--lock-timeout" in done.stderr
    monkeypatch.setenv("KVB_HTTP_LOCK_TIMEOUT", "soon")
    done = run_kvb("http", "--dir", str(tmp_path / "s"), "--port", "0", timeout=60)
    assert done.returncode == 2 and "KVB_HTTP_LOCK_TIMEOUT must be a number of seconds > 0" in done.stderr


_HOG = """
import sys, time
from kv_backend.db import DB
db = DB(sys.argv[1])
print('go', flush=True)
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    with db.locked():  # held, let go and taken again at once: a busy writer
        db.put(b'hog', b'x')
        time.sleep(0.002)
"""


def test_a_bounded_wait_gets_the_lock_from_a_busy_writer_as_a_blocking_one_does(tmp_path):
    """Waiting until a deadline by polling the lock found it free hardly ever while another process
    took it again at once after each hold: most writes gave up. The wait is now queued in the kernel
    as a blocking acquire is, and every write gets its turn."""
    path = str(tmp_path / "store")
    DB(path).close()
    hog = subprocess.Popen([sys.executable, "-c", _HOG, path, "4"], stdout=subprocess.PIPE, env=child_env())
    try:
        assert hog.stdout.readline() == b"go\n"
        time.sleep(0.2)
        with DB(path) as db:
            outcomes: list[str] = []

            def write(i: int) -> None:
                try:
                    with waiting_until(time.monotonic() + 3):
                        db.put(b"k%d" % i, b"v")
                    outcomes.append("written")
                except LockTimeoutError:
                    outcomes.append("gave up")

            writers = [threading.Thread(target=write, args=(i,)) for i in range(10)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join(30)
            assert outcomes == ["written"] * 10
    finally:
        hog.kill()
        hog.wait()


def _waiter_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "kvb-lock-waiter")


def test_writes_that_give_up_leave_one_waiting_thread_which_lets_the_lock_go(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as db:
        holder = Holder(path)
        try:
            for _ in range(5):
                with pytest.raises(LockTimeoutError), waiting_until(time.monotonic() + 0.05):
                    db.put(b"k", b"v")
            assert _waiter_threads() <= 1  # the next wait takes over the one still queued
        finally:
            holder.release()
        deadline = time.monotonic() + 10
        while _waiter_threads() and time.monotonic() < deadline:  # it got the lock, and let it go
            time.sleep(0.01)
        assert _waiter_threads() == 0
        # (another description: it waits if anything still held the lock)
        with DB(path) as other, waiting_until(time.monotonic() + 2):
            other.put(b"k", b"w")
        assert db.get(b"k") == b"w"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_keep_the_lock_the_waiting_thread_gets(tmp_path):
    """A child forked while a waiting thread is queued has a copy of its descriptor; were it kept, the
    lock that description gets would stay held, after the parent lets it go, for as long as the
    child lives."""
    path = str(tmp_path / "store")
    with DB(path) as db, DB(path) as other:
        holder = Holder(path)
        try:
            with pytest.raises(LockTimeoutError), waiting_until(time.monotonic() + 0.05):
                db.put(b"k", b"v")
            pid = os.fork()
            if pid == 0:  # the child: only lives on, holding whatever it inherited
                holder.proc.stdin.close()  # (but the holder's stdin: the holder must see its end)
                time.sleep(5)
                os._exit(0)
        finally:
            holder.release()
        try:
            started = time.monotonic()
            with waiting_until(started + 3):
                other.put(b"k", b"w")
            assert time.monotonic() - started < 2.5
        finally:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


_COUNTER = """
import sys, threading, time
from kv_backend.db import DB
from kv_backend.errors import LockTimeoutError
from kv_backend.lock_waiter import LockWaiter
from kv_backend.locking import waiting_until
db = DB(sys.argv[1])
gave_up = []

def work():
    for _ in range(100):
        try:
            with waiting_until(time.monotonic() + 30), db.locked():
                value = int(db.get(b"c") or b"0")
                time.sleep(0.0005)
                db.put(b"c", b"%d" % (value + 1))
        except LockTimeoutError:
            gave_up.append(1)

threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(len(gave_up))
"""


def test_bounded_waits_of_two_processes_neither_give_up_early_nor_overlap(tmp_path):
    """A waiting thread found the waiter queued for it already ended (it had got the lock just before
    with nobody waiting, and let it go) and gave up at once, far before its deadline: a few writes in
    a hundred, under two processes' contention. It now takes the lock, or queues anew."""
    path = str(tmp_path / "store")
    DB(path).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", _COUNTER, path], stdout=subprocess.PIPE, env=child_env())
        for _ in range(2)
    ]
    gave_up = [int(proc.communicate(timeout=120)[0]) for proc in procs]
    assert gave_up == [0, 0]
    with DB(path) as db:
        assert db.get(b"c") == b"800"  # every increment under the lock, none lost


def test_a_waiter_interrupted_after_it_got_the_lock_lets_it_go(tmp_path):
    path = str(tmp_path / "store")
    with DB(path) as other:
        holder = Holder(path)
        waiter = LockWaiter(os.path.join(path, "LOCK"), os.O_RDWR)
        real_wait = waiter.done.wait

        def interrupted(seconds: float) -> bool:
            holder.release()
            assert real_wait(10)  # the waiter got the lock for this thread...
            raise KeyboardInterrupt  # ...which leaves before it takes it

        waiter.done.wait = interrupted  # type: ignore[method-assign]
        try:
            with pytest.raises(KeyboardInterrupt):
                waiter.wait(10)
        finally:
            holder.release()
        with waiting_until(time.monotonic() + 2):  # nothing holds it any more
            other.put(b"k", b"v")
