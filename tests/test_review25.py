"""Review of kvb http's reads and writes made on its event loop: nothing there may wait.

A GET/HEAD is read on the loop when DB.read_is_quick says so, and a write of one key is made there
when the write lock is free (locking.NO_WAIT). Neither may then wait on the loop for what a worker
thread would wait for: a transaction another thread of the process is writing (a DB shared with the
user's own code, or POST /v1/txn), or a catch-up with other processes' writes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

from helpers import ROOT, child_env, trace_calls
from helpers import key_url as url
from starlette.testclient import TestClient

from kv_backend.http import create_app


class OpenTransaction:
    """A transaction of another thread of this process on ``db`` that has written ``key`` and stays
    open until :meth:`end` (the user's own code sharing the DB with the app)."""

    def __init__(self, db, key: bytes = b"t") -> None:
        self.wrote = threading.Event()
        self._end = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(db, key))
        self._thread.start()
        assert self.wrote.wait(10)

    def _run(self, db, key: bytes) -> None:
        with db.transaction():
            db.put(key, b"in transaction")
            self.wrote.set()
            self._end.wait(30)

    def end(self) -> None:
        self._end.set()
        self._thread.join(10)


def _answered_meanwhile(client: TestClient, request):
    """Send ``request(client)`` from a thread; then whether /healthz is answered within 2 s while it
    is outstanding, and the statuses of both once they are done (the caller ends what holds it)."""
    got: list[int] = []
    sent = threading.Thread(target=lambda: got.append(request(client).status_code))
    sent.start()
    sent.join(0.3)
    health: list[int] = []
    probe = threading.Thread(target=lambda: health.append(client.get("/healthz").status_code))
    probe.start()
    probe.join(2)
    answered = health == [200]
    return answered, got, sent, probe


def _finish(*threads: threading.Thread) -> None:
    for th in threads:
        th.join(30)
        assert not th.is_alive()


def test_a_write_beside_another_threads_transaction_does_not_hold_up_the_loop(db):
    db.put(b"k", b"old")
    with TestClient(create_app(db)) as client:
        txn = OpenTransaction(db)
        try:
            answered, got, sent, probe = _answered_meanwhile(
                client, lambda c: c.put(url(b"k"), content=b"new")
            )
        finally:
            txn.end()
        _finish(sent, probe)
        assert answered, "the event loop waited for another thread's transaction"
        assert got == [204]
    assert db.get(b"k") == b"new" and db.get(b"t") == b"in transaction"


def test_a_conditional_delete_beside_another_threads_transaction_does_not_hold_up_the_loop(db):
    db.put(b"k", b"old")
    with TestClient(create_app(db)) as client:
        txn = OpenTransaction(db)
        try:
            answered, got, sent, probe = _answered_meanwhile(
                client, lambda c: c.delete(url(b"k"), headers={"If-Match": "*"})
            )
        finally:
            txn.end()
        _finish(sent, probe)
        assert answered, "the event loop waited for another thread's transaction"
        assert got == [204]
    assert db.get(b"k") is None


def test_a_quick_read_that_meets_a_transaction_begun_after_its_check_does_not_hold_up_the_loop(
    db, monkeypatch
):
    """A transaction of another thread may write between read_is_quick's look and the read (a thread
    switch there): the loop must not then wait for it to end."""
    db.put(b"k", b"old")
    started: list[OpenTransaction] = []
    real = db.read_is_quick

    def then_a_transaction(key, limit):
        quick = real(key, limit)
        if quick and key == b"k" and not started:
            started.append(OpenTransaction(db))  # it writes right after the look
        return quick

    monkeypatch.setattr(db, "read_is_quick", then_a_transaction)
    with TestClient(create_app(db)) as client:
        try:
            answered, got, sent, probe = _answered_meanwhile(client, lambda c: c.get(url(b"k")))
        finally:
            while not started:
                time.sleep(0.01)
            started[0].end()
        _finish(sent, probe)
        assert answered, "the event loop waited for another thread's transaction"
        assert got == [200]


def test_a_write_after_another_process_wrote_catches_up_in_a_worker_thread(db, monkeypatch):
    """Replaying another process's writes (here 5 MB of them) is not done on the event loop, as the
    docs say of every catch-up: a write that finds the view behind goes to a worker thread."""
    code = (
        "import sys\nfrom kv_backend import DB\n"
        "with DB(sys.argv[1]) as d:\n"
        "    for i in range(5000):\n"
        "        d.put(b'p%d' % i, b'x' * 1000)\n"
    )
    db.put(b"k", b"old")
    subprocess.run(
        [sys.executable, "-c", code, str(db.path)], cwd=ROOT, env=child_env(), check=True, timeout=120
    )
    # (what replays records: see DB._refresh)
    refreshes = trace_calls(
        monkeypatch, db, ("_catch_up", "_full_reload"), lambda name, args, on_loop: on_loop
    )
    with TestClient(create_app(db)) as client:
        assert client.put(url(b"k"), content=b"new").status_code == 204
        assert client.delete(url(b"p0")).status_code == 204
    assert refreshes and True not in refreshes, refreshes
    assert db.get(b"k") == b"new" and db.get(b"p0") is None and db.get(b"p4999") == b"x" * 1000


def _users_app(db, hold):
    """create_app(db) mounted at /kv in the user's own app, whose /hold route runs ``hold()`` (a
    coroutine function) on the same event loop."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def held(request):
        return PlainTextResponse(await hold())

    return Starlette(routes=[Route("/hold", held), Mount("/kv", app=create_app(db))])


def test_a_write_beside_the_users_transaction_on_the_same_loop_is_no_part_of_it(db):
    """The user's code holds a transaction of the DB across an await on the event loop kvb http runs on:
    a PUT answered meanwhile must not join that transaction (the loop's thread holds its lock), which
    the user's code then discards: its write, acknowledged, would be lost."""
    entered = threading.Event()

    async def hold() -> str:
        try:
            with db.transaction():
                entered.set()
                await asyncio.sleep(1)  # (a PUT arrives meanwhile)
                raise RuntimeError("the user's block fails: its transaction is discarded")
        except RuntimeError:
            return "discarded"

    with TestClient(_users_app(db, hold)) as client:
        held: list[str] = []
        user = threading.Thread(target=lambda: held.append(client.get("/hold").text))
        user.start()
        assert entered.wait(10)
        r = client.put("/kv" + url(b"k"), content=b"acknowledged")
        user.join(30)
        assert held == ["discarded"]
        assert r.status_code == 201
        assert client.get("/kv" + url(b"k")).content == b"acknowledged"
    assert db.get(b"k") == b"acknowledged"


def test_a_write_inside_the_users_locked_block_on_the_same_loop_waits_for_its_end(db):
    """Likewise a locked() block of the user's code across an await: the PUT is not made inside it
    (between the block's read and its write), but after it."""
    db.put(b"n", b"1")
    entered = threading.Event()

    async def hold() -> str:
        with db.locked():
            entered.set()
            seen = db.get(b"n")
            await asyncio.sleep(1)  # (a PUT arrives meanwhile)
            db.put(b"n", b"%d" % (int(seen) + 1))
        return "done"

    with TestClient(_users_app(db, hold)) as client:
        user = threading.Thread(target=lambda: client.get("/hold"))
        user.start()
        assert entered.wait(10)
        assert client.put("/kv" + url(b"n"), content=b"100").status_code == 204
        user.join(30)
    assert db.get(b"n") == b"100"  # made after the block's increment, not lost under it


def test_a_write_after_another_process_merged_rebuilds_the_view_in_a_worker_thread(db, monkeypatch):
    """A merge in another process changes the file set: the view is rebuilt from the merged files
    (DB._full_reload), which is not done on the event loop either."""
    for i in range(2000):
        db.put(b"m%d" % (i % 100), b"%d" % i)
    code = "import sys\nfrom kv_backend import DB\nwith DB(sys.argv[1]) as d:\n    d.merge(wait=True)\n"
    subprocess.run(
        [sys.executable, "-c", code, str(db.path)], cwd=ROOT, env=child_env(), check=True, timeout=120
    )
    rebuilt = trace_calls(monkeypatch, db, ("_catch_up", "_full_reload"), lambda name, args, on_loop: on_loop)
    with TestClient(create_app(db)) as client:
        assert client.put(url(b"m0"), content=b"new").status_code == 204
        assert client.get(url(b"m1")).content == b"1901"
    assert rebuilt and True not in rebuilt, rebuilt
    assert db.get(b"m0") == b"new"


def test_a_write_beside_the_users_block_on_another_db_of_the_store_waits_for_its_end(db, store_path):
    """The user's code on the same event loop holds the store's lock through another DB object of the
    same store across an await: the PUT waits for the block's end in a worker thread, as it does for any
    holder, rather than be refused for a wait on itself that it never makes."""
    from kv_backend import DB

    entered = threading.Event()

    with DB(store_path) as other:

        async def hold() -> str:
            with other.locked():
                entered.set()
                await asyncio.sleep(1)  # (a PUT arrives meanwhile)
            return "done"

        with TestClient(_users_app(db, hold)) as client:
            user = threading.Thread(target=lambda: client.get("/hold"))
            user.start()
            assert entered.wait(10)
            r = client.put("/kv" + url(b"k"), content=b"v")
            user.join(30)
            assert r.status_code == 201, r.text
    assert db.get(b"k") == b"v"
