"""``kvb serve`` while another process holds the store's write lock.

A Store's ``transaction()`` or ``locked()`` block in a script, or a Django cache culling a large
store, holds the lock for as long as it runs. The server waited for it in its event loop, so every
one of its clients waited too: a PING took as long as the other process's block (4 seconds for a
4-second block). Now the server serves the clients that only read meanwhile, and runs the commands
that may write, in the order they came, once it has the lock.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis
from resp_helpers import RunningServer

from kv_backend import Store

HOLD = 1.5  # seconds the other process's block holds the lock


@pytest.fixture
def server(tmp_path):
    srv = RunningServer(str(tmp_path / "kv")).start()
    yield srv
    srv.stop()


def _in_thread(fn):
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    return thread, out


def test_reads_are_served_while_another_process_holds_the_lock(server):
    client = redis.Redis(port=server.port, socket_timeout=HOLD / 3)  # (it waited for the whole block)
    client.set("k", "before")
    writer = redis.Redis(port=server.port, socket_timeout=30)
    piped = redis.Redis(port=server.port, socket_timeout=30)
    with Store(server.path, serializer="raw") as store:
        with store.locked():  # (this test process is the other process)
            held = time.monotonic()
            set_thread, set_out = _in_thread(lambda: (writer.set("k", "after"), time.monotonic()))

            def pipeline():
                p = piped.pipeline(transaction=False)
                p.set("p", "1").get("p").incr("n")
                return p.execute()

            pipe_thread, pipe_out = _in_thread(pipeline)
            time.sleep(0.3)
            start = time.monotonic()
            assert client.ping() is True
            assert client.get("k") == b"before"  # the write waits for the lock
            assert client.exists("p") == 0
            assert time.monotonic() - start < HOLD / 3  # not held up for the other process's block
            assert set_out == [] and pipe_out == []
            time.sleep(max(0.0, HOLD - (time.monotonic() - held)))
            released = time.monotonic()
        set_thread.join(10)
        pipe_thread.join(10)
        assert set_out[0][0] is True and set_out[0][1] >= released
        assert pipe_out == [[True, b"1", 1]]  # one connection's commands ran in order, after the block
        assert client.get("k") == b"after"


def test_a_transaction_waits_for_the_lock_and_runs_whole(server):
    client = redis.Redis(port=server.port, socket_timeout=30)
    with Store(server.path, serializer="raw") as store:
        with store.locked():
            p = client.pipeline(transaction=True)
            p.set("a", "1").incr("b").get("a")
            thread, out = _in_thread(p.execute)
            time.sleep(0.3)
            assert out == [] and redis.Redis(port=server.port, socket_timeout=HOLD / 3).get("a") is None
        thread.join(10)
    assert out == [[True, 1, b"1"]]
