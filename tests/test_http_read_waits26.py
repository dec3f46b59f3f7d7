"""``kvb http``'s reads that must catch up with another process's merge (the store's file set changed)
reload the store under its write lock, and waited for it for as long as another process held it (a
long transaction, a ``locked()`` block, a stalled writer): the client had no answer and a thread was
held all that time. Such a read now waits at most ``--lock-timeout`` seconds, as a write does, then is
answered 503 lock_timeout with ``Retry-After: 1``; reads that need no lock are answered meanwhile."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from helpers import child_env
from starlette.testclient import TestClient
from test_http_etag19 import _serve
from test_lock_wait25 import Other

from kv_backend.db import DB
from kv_backend.http import create_app

LOCK_TIMEOUT = 0.5
MARGIN = 3.0  # seconds past the timeout a loaded machine may take to answer

#: Another process: merges the store (its file set changes), then holds the write lock until stdin closes.
_MERGE_AND_HOLD = """
import sys
from kv_backend.db import DB
db = DB(sys.argv[1])
db.merge()
with db.locked():
    print('held', flush=True)
    sys.stdin.readline()
"""


class MergeAndHold:
    def __init__(self, path: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MERGE_AND_HOLD, path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=child_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line == b"held\n", line

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _assert_read_timed_out(reply: httpx.Response, elapsed: float, head: bool = False) -> None:
    assert reply.status_code == 503, reply.text
    assert reply.headers["retry-after"] == "1"
    assert LOCK_TIMEOUT * 0.8 <= elapsed < LOCK_TIMEOUT + MARGIN, elapsed
    if not head:
        body = reply.json()
        assert body["error"] == "lock_timeout", body
        assert "--lock-timeout" in body["message"], body


def _timed(client: httpx.Client, method: str, url: str, **kwargs) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = client.request(method, url, timeout=LOCK_TIMEOUT + 30, **kwargs)
    return reply, time.monotonic() - started


def test_reads_that_must_reload_a_merged_store_give_up_at_the_lock_timeout(tmp_path, monkeypatch):
    path = str(tmp_path / "store")
    monkeypatch.setenv("KVB_HTTP_LOCK_TIMEOUT", str(LOCK_TIMEOUT))
    with open(tmp_path / "log", "ab") as log:
        proc, url = _serve(path, log)
        holder = None
        # (one client: httpx.put and its kind build one each, with its TLS context, 15-40 ms a call)
        client = httpx.Client(timeout=30)
        try:
            for i in range(20):
                assert client.put(f"{url}/v1/keys/k{i}", content=b"v%d" % i).status_code == 201
            for i in range(10):
                assert client.delete(f"{url}/v1/keys/k{i}").status_code == 204
            holder = MergeAndHold(path)
            reads = [  # (at once, on connections of their own: each gives up on its own)
                (("GET", f"{url}/v1/keys/k15"), {}),
                (("GET", f"{url}/v1/keys/k15"), {"headers": {"Range": "bytes=0-0"}}),
                (("HEAD", f"{url}/v1/keys/k15"), {}),
                (("GET", f"{url}/v1/keys?prefix=k1"), {}),
                (("GET", f"{url}/v1/keys?values=true"), {}),
                (("GET", f"{url}/v1/stats"), {}),
                (("POST", f"{url}/v1/txn"), {"json": {"ops": [{"op": "get", "key": "k15"}]}}),
            ]
            with ThreadPoolExecutor(len(reads)) as pool:
                replies = list(pool.map(lambda read: _timed(client, *read[0], **read[1]), reads))
            for ((method, _), _), (reply, elapsed) in zip(reads, replies, strict=True):
                _assert_read_timed_out(reply, elapsed, head=method == "HEAD")
            assert proc.poll() is None
            holder.release()
            got = client.get(f"{url}/v1/keys/k15")
            assert got.status_code == 200 and got.content == b"v15"
            assert client.head(f"{url}/v1/keys/k15").status_code == 200
            part = client.get(f"{url}/v1/keys/k15", headers={"Range": "bytes=0-0"})
            assert part.status_code == 206 and part.content == b"v"
            assert client.get(f"{url}/v1/keys/k3").status_code == 404
            listing = client.get(f"{url}/v1/keys?prefix=k1").json()
            assert listing["keys"] == ["k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17", "k18", "k19"]
            txn = client.post(f"{url}/v1/txn", json={"ops": [{"op": "get", "key": "k15"}]})
            assert txn.status_code == 200 and txn.json()["results"][0]["found"] is True
        finally:
            client.close()
            if holder is not None:
                holder.kill()
            proc.terminate()
            proc.wait(15)


def test_a_read_whose_holder_lets_go_within_the_timeout_is_answered(tmp_path, monkeypatch):
    path = str(tmp_path / "store")
    monkeypatch.setenv("KVB_HTTP_LOCK_TIMEOUT", "20")
    with open(tmp_path / "log", "ab") as log:
        proc, url = _serve(path, log)
        holder = None
        try:
            with httpx.Client(timeout=30) as client:
                for i in range(10):
                    assert client.put(f"{url}/v1/keys/k{i}", content=b"v%d" % i).status_code == 201
                assert client.delete(f"{url}/v1/keys/k0").status_code == 204
                holder = MergeAndHold(path)
                pending = client.build_request("GET", f"{url}/v1/keys/k5")
                replies: list[httpx.Response] = []
                reader = threading.Thread(target=lambda: replies.append(client.send(pending)))
                reader.start()
                reader.join(0.5)
                assert reader.is_alive()  # waiting for the lock
                holder.release()
                reader.join(30)
            assert replies[0].status_code == 200 and replies[0].content == b"v5"
        finally:
            if holder is not None:
                holder.kill()
            proc.terminate()
            proc.wait(15)


def test_a_read_waiting_for_another_threads_transaction_gives_up_at_the_lock_timeout_too(tmp_path):
    # A read in a worker thread waited for a transaction that another thread of the process (your own
    # code on the DB given to create_app) was writing to end, for as long as it lasted.
    with DB(str(tmp_path / "store")) as db:
        db.put(b"a", b"0")
        db.put(b"big", b"x" * 100_000)  # (larger than a read on the event loop)
        with TestClient(create_app(db, lock_timeout=LOCK_TIMEOUT)) as client:
            other = Other(db)
            try:
                for url in ("/v1/keys/a", "/v1/keys/big", "/v1/keys", "/v1/stats"):
                    started = time.monotonic()
                    reply = client.get(url)
                    _assert_read_timed_out(reply, time.monotonic() - started)  # (before: 200 after 3 s)
                started = time.monotonic()
                reply = client.head("/v1/keys/a")
                _assert_read_timed_out(reply, time.monotonic() - started, head=True)
            finally:
                other.end()
            assert client.get("/v1/keys/a").content == b"0"
            assert client.get("/v1/keys/txn").content == b"1"  # all of the transaction, once it ended
