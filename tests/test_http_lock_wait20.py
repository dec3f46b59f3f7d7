"""``kvb http`` answered no read while enough writes waited for the store's write lock that another
process held (a script running long on a ``kvb serve`` of the store, a long transaction): each
waiting write took a thread of the pool every engine call runs in (40), and a GET then waited for a
thread. Calls that take the write lock now run at most LOCKING_THREADS at once, beside the pool, so
that reads keep threads of their own."""

from __future__ import annotations

import threading
import time

import httpx
from test_http_etag19 import _serve
from test_serve_lock_wait20 import Holder

from kv_backend.http.app import LOCKING_THREADS


def test_reads_are_answered_while_many_writes_wait_for_the_lock(tmp_path, monkeypatch):
    path = str(tmp_path / "store")
    # (writes wait at most --lock-timeout, 5 s by default: on a loaded machine, 65 writes queued
    # behind a held lock may take longer than that once it is free; this test wants each one made)
    monkeypatch.setenv("KVB_HTTP_LOCK_TIMEOUT", "60")
    with open(tmp_path / "log", "ab") as log:
        proc, url = _serve(path, log)
        holder = None
        # (one client for all, its threads too: httpx.put and its kind build one each, with its TLS
        # context, 15-40 ms a call)
        client = httpx.Client(timeout=60)
        try:
            assert client.put(f"{url}/v1/keys/a", content=b"1").status_code == 201
            holder = Holder(path)
            codes: list[int] = []

            def put(i: int) -> None:
                codes.append(client.put(f"{url}/v1/keys/k{i}", content=b"x").status_code)

            writers = [threading.Thread(target=put, args=(i,)) for i in range(LOCKING_THREADS + 45)]
            for writer in writers:
                writer.start()
            time.sleep(1)  # (they have all reached the server, and wait)
            assert codes == []
            started = time.monotonic()
            got = client.get(f"{url}/v1/keys/a", timeout=10)
            assert got.status_code == 200 and got.content == b"1"
            assert time.monotonic() - started < 5
            holder.release()
            for writer in writers:
                writer.join(60)
            assert codes == [201] * len(writers)  # every write waited, and was made
        finally:
            client.close()
            if holder is not None:
                holder.release()
            proc.terminate()
            proc.wait(15)
