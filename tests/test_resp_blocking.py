"""Blocking list commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH) over ``kvb serve``: redis-py and raw sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import redis
import redis.asyncio as aioredis
from helpers import run_python
from redis.backoff import NoBackoff
from redis.retry import Retry
from resp_helpers import RunningServer, serve_zygote, wait_blocked

from kv_backend.structures import Structures


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = RunningServer(str(tmp_path_factory.mktemp("blocking") / "store")).start()
    yield srv
    assert srv.stop() == 0, "the server did not exit cleanly on SIGTERM"


@pytest.fixture
def r(server):
    client = redis.Redis(port=server.port, socket_timeout=20)
    client.flushdb()
    yield client
    client.close()


def client(server, **kw) -> redis.Redis:
    return redis.Redis(port=server.port, socket_timeout=20, **kw)


def later(delay: float, fn, *args) -> threading.Thread:
    """Run ``fn(*args)`` in a thread after ``delay`` seconds."""

    def run() -> None:
        time.sleep(delay)
        fn(*args)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_answers_at_once_when_a_list_has_data(r):
    r.rpush("b", "b1", "b2")
    r.rpush("c", "c1")
    assert r.blpop(["a", "b", "c"], timeout=5) == (b"b", b"b1")  # the first non-empty list, in order
    assert r.brpop(["a", "c", "b"], timeout=5) == (b"c", b"c1")
    assert r.brpoplpush("b", "d", timeout=5) == b"b2"
    assert r.lrange("d", 0, -1) == [b"b2"]
    assert r.blmove("d", "e", timeout=5, src="LEFT", dest="RIGHT") == b"b2"
    assert not r.exists("b", "c", "d")  # emptied lists are gone, as in Redis


def test_waits_until_another_client_pushes(server, r):
    pusher = client(server)
    t0 = time.monotonic()
    pushing = later(0.3, pusher.rpush, "q", "job")
    assert r.blpop(["q"], timeout=10) == (b"q", b"job")
    assert 0.25 < time.monotonic() - t0 < 5
    assert r.llen("q") == 0
    pushing.join(10)  # its reply read before the connection is closed
    pusher.close()


def test_timeout_answers_null(server, r):
    t0 = time.monotonic()
    assert r.blpop(["nothing"], timeout=0.3) is None
    assert r.brpoplpush("nothing", "dst", timeout=0.2) is None
    assert time.monotonic() - t0 >= 0.45
    r3 = client(server, protocol=3)
    assert r3.brpop(["nothing"], timeout=0.1) is None
    r3.close()
    # On the wire, as Redis: a timed-out wait is a null array; BRPOPLPUSH in MULTI, a null bulk string.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"BRPOPLPUSH nothing dst 0.05\r\nMULTI\r\nBRPOPLPUSH nothing dst 0\r\nEXEC\r\n")
        want = b"*-1\r\n+OK\r\n+QUEUED\r\n*1\r\n$-1\r\n"
        got = b""
        while len(got) < len(want):
            got += s.recv(100)
        assert got == want


def test_waiters_are_served_first_come_first_served(server):
    clients = [client(server) for _ in range(3)]
    results: dict[int, tuple[bytes, bytes] | None] = {}

    def wait(i: int) -> None:
        results[i] = clients[i].blpop(["fifo"], timeout=10)

    threads = []
    pusher = client(server)
    for i in range(3):
        t = threading.Thread(target=wait, args=(i,))
        t.start()
        threads.append(t)
        wait_blocked(pusher, i + 1)  # a fixed arrival order
    pusher.rpush("fifo", "first", "second", "third")  # one push wakes all three, in order
    for t in threads:
        t.join(15)
    assert results == {0: (b"fifo", b"first"), 1: (b"fifo", b"second"), 2: (b"fifo", b"third")}
    for c in [*clients, pusher]:
        c.close()


def test_a_client_blocked_on_several_keys_is_served_from_the_one_pushed(server, r):
    later(0.2, client(server).lpush, "k2", "v")
    assert r.brpop(["k1", "k2", "k3"], timeout=10) == (b"k2", b"v")


def test_pipelined_commands_wait_for_the_blocked_one(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"BLPOP pq 0\r\nPING\r\n")
        s.settimeout(0.4)
        with pytest.raises(socket.timeout):
            s.recv(100)  # neither the BLPOP nor the PING behind it is answered yet
        s.settimeout(10)
        client(server).rpush("pq", "x")
        got = b""
        while not got.endswith(b"+PONG\r\n"):
            got += s.recv(100)
        assert got == b"*2\r\n$2\r\npq\r\n$1\r\nx\r\n+PONG\r\n"


def test_blmove_chain_wakes_the_next_waiter(server, r):
    """An element moved by a woken BLMOVE wakes the client blocked on its destination."""
    second = client(server)
    out: list = []
    t = threading.Thread(target=lambda: out.append(second.blpop(["stage2"], timeout=10)))
    t.start()
    time.sleep(0.2)
    mover = client(server)
    t2 = threading.Thread(target=lambda: out.append(mover.blmove("stage1", "stage2", 10, "LEFT", "RIGHT")))
    t2.start()
    time.sleep(0.2)
    r.rpush("stage1", "item")
    t.join(15)
    t2.join(15)
    assert sorted(out, key=repr) == sorted([b"item", (b"stage2", b"item")], key=repr)
    assert not r.exists("stage1", "stage2")
    second.close()
    mover.close()


def test_never_blocks_inside_a_transaction_or_a_script(r):
    pipe = r.pipeline(transaction=True)
    pipe.blpop(["empty"], timeout=0)
    pipe.brpoplpush("empty", "x", timeout=0)
    pipe.rpush("full", "v")
    pipe.blpop(["full"], timeout=0)
    assert pipe.execute() == [None, None, 1, (b"full", b"v")]
    # as Redis 7.0: scripts may not call BLPOP (test_resp_more9), and their BLMPOP answers at once
    assert r.eval("return redis.call('BLMPOP', 0, 1, KEYS[1], 'LEFT')", 1, "empty") is None


def test_errors_as_redis(r):
    r.set("str", "v")
    errors = {
        ("BLPOP", "q", "-1"): "timeout is negative",
        ("BLPOP", "q", "soon"): "timeout is not a float or out of range",
        ("BLPOP", "q", "inf"): "timeout is out of range",  # as Redis 7.2 (7.0 says "negative")
        ("BLPOP", "q", "1e400"): "timeout is out of range",
        ("BLPOP", "q", "9223372036854775"): "timeout is out of range",  # the deadline overflows in ms
        ("BLPOP", "q"): "wrong number of arguments",
        ("BLMOVE", "a", "b", "UP", "LEFT", "0"): "syntax error",
        ("BRPOP", "str", "0"): "WRONGTYPE",
        ("BLMOVE", "str", "b", "LEFT", "LEFT", "0"): "WRONGTYPE",
    }
    for args, message in errors.items():
        with pytest.raises(redis.ResponseError, match=message):
            r.execute_command(*args)
    r.rpush("full", "v")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.blpop(["str", "full"], timeout=1)  # a wrong type before a non-empty list stops the search
    assert r.blpop(["full", "str"], timeout=1) == (b"full", b"v")


def test_a_waiter_that_disconnects_takes_nothing(server, r):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"BLPOP gone 0\r\n")
        wait_blocked(r)
    wait_blocked(r, 0)  # the server saw it go
    r.rpush("gone", "kept")
    assert r.lrange("gone", 0, -1) == [b"kept"]


def test_client_unblock(server, r):
    waiter = client(server)
    wid = waiter.client_id()
    out: list = []
    t = threading.Thread(target=lambda: out.append(waiter.blpop(["ub"], timeout=0)))
    t.start()
    wait_blocked(r)
    assert r.client_unblock(wid) == 1
    t.join(10)
    assert out == [None]
    assert r.client_unblock(wid) == 0  # not blocked any more
    t = threading.Thread(target=lambda: out.append(_error_of(waiter.blpop, ["ub"], 0)))
    t.start()
    wait_blocked(r)
    assert r.client_unblock(wid, error=True) == 1
    t.join(10)
    assert "UNBLOCKED" in out[1]
    waiter.close()


def _error_of(fn, *args) -> str:
    try:
        fn(*args)
    except redis.ResponseError as exc:
        return str(exc)
    return "no error"


def test_served_from_another_process_writing_the_directory(server, r):
    """A push by another process (the engine, not this server) wakes the waiter."""
    code = """
        import sys, time
        from kv_backend.structures import Structures
        time.sleep(0.3)
        with Structures(sys.argv[1]) as st:
            st.rpush(b"xproc", b"from afar")
    """
    t = threading.Thread(target=run_python, args=(code, server.path))
    t.start()
    t0 = time.monotonic()
    assert r.blpop(["xproc"], timeout=10) == (b"xproc", b"from afar")
    assert time.monotonic() - t0 < 5
    t.join(30)
    with Structures(server.path) as st:  # the pop is in the store, seen by every process
        assert st.llen(b"xproc") == 0


def test_asyncio_client_many_consumers_get_every_element_once(server):
    async def main() -> list[bytes]:
        consumers = [aioredis.Redis(port=server.port) for _ in range(8)]
        producer = aioredis.Redis(port=server.port)
        got: list[bytes] = []

        async def consume(c: aioredis.Redis) -> None:
            while True:
                item = await c.blpop(["work"], timeout=1)
                if item is None:
                    return
                got.append(item[1])

        tasks = [asyncio.create_task(consume(c)) for c in consumers]
        for i in range(200):
            await producer.rpush("work", f"job-{i}")
        await asyncio.gather(*tasks)
        for c in [*consumers, producer]:
            await c.aclose()
        return got

    got = asyncio.run(main())
    assert sorted(got) == sorted(f"job-{i}".encode() for i in range(200))


NO_RETRY = Retry(NoBackoff(), 0)  # a killed server must end the client's loop at once


def _produce(port: int, tag: int, stop: threading.Event, lock: threading.Lock, pushed: list[bytes]) -> None:
    """RPUSH numbered elements until stopped or the server dies; record the acknowledged ones."""
    c = redis.Redis(port=port, socket_timeout=5, retry=NO_RETRY)
    i = 0
    try:
        while not stop.is_set():
            item = f"{tag}-{i}".encode()
            c.rpush("jobs", item)
            with lock:
                pushed.append(item)
            i += 1
    except (redis.ConnectionError, redis.TimeoutError):
        pass


def _consume(port: int, lock: threading.Lock, received: list[bytes]) -> None:
    """BLPOP until the server dies; record every element received."""
    c = redis.Redis(port=port, socket_timeout=5, retry=NO_RETRY)
    try:
        while True:
            got = c.blpop(["jobs"], timeout=0.2)
            if got is not None:
                with lock:
                    received.append(got[1])
    except (redis.ConnectionError, redis.TimeoutError):
        pass


def test_server_killed_while_clients_wait_loses_and_duplicates_nothing(tmp_path):
    """SIGKILL the server at random moments under a producer and blocked consumers, many runs.

    Every element whose push was acknowledged is, after a restart, either
    received by exactly one consumer or still in the list, except at most one
    per consumer and kill: a pop written to the log whose reply the kill cut off.
    """
    import random

    path = str(tmp_path / "store")
    rng = random.Random(7)
    received: list[bytes] = []
    pushed: list[bytes] = []
    lock = threading.Lock()
    consumers, runs = 3, 8
    with serve_zygote() as zygote:
        for run in range(runs):
            srv = RunningServer(path, zygote=zygote).start()
            stop = threading.Event()
            threads = [threading.Thread(target=_produce, args=(srv.port, run, stop, lock, pushed))]
            for _ in range(consumers):
                threads.append(threading.Thread(target=_consume, args=(srv.port, lock, received)))
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.2, 0.8))
            srv.kill()
            stop.set()
            for t in threads:
                t.join(20)
    with Structures(path) as st:
        remaining = st.lrange(b"jobs", 0, -1)
    assert received, "the consumers got nothing: the test did not exercise the blocking path"
    assert len(received) == len(set(received)), "an element was handed out twice"
    assert not set(received) & set(remaining), "an element was handed out and kept"
    missing = set(pushed) - set(received) - set(remaining)
    assert len(missing) <= consumers * runs, f"{len(missing)} acknowledged elements lost"


def test_a_served_blmove_dirties_a_watch_on_its_destination(server, r):
    mover = client(server)
    t = threading.Thread(target=mover.blmove, args=("src", "dst", 10, "LEFT", "RIGHT"))
    t.start()
    time.sleep(0.2)
    watcher = client(server)
    with watcher.pipeline() as p:
        p.watch("dst")
        r.rpush("src", "moved")  # serves the BLMOVE, which pushes to dst
        t.join(10)
        p.multi()
        p.set("dst-seen", "1")
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.lrange("dst", 0, -1) == [b"moved"]
    for c in (mover, watcher):
        c.close()


def test_xread_block_waits_for_new_entries(server, r):
    r.xadd("events", {"old": "1"}, id="1-0")
    assert r.xread({"events": "0"}) == [[b"events", [(b"1-0", {b"old": b"1"})]]]
    assert r.xread({"events": "$"}, block=200) == []  # only entries added after the call (null: [])
    writer = client(server)
    adder = later(0.3, writer.xadd, "events", {"new": "2"}, "2-0")
    t0 = time.monotonic()
    assert r.xread({"other": "$", "events": "$"}, block=0) == [[b"events", [(b"2-0", {b"new": b"2"})]]]
    assert 0.25 < time.monotonic() - t0 < 5
    r3 = client(server, protocol=3)
    assert r3.xread({"events": "1-0"}, count=1) == {b"events": [[(b"2-0", {b"new": b"2"})]]}  # a map
    with r.pipeline() as p:  # never waits inside MULTI
        p.xread({"events": "$"}, block=0)
        assert p.execute() == [[]]
    # The reader can get its entry before the writer's thread has read XADD's reply: closing the
    # writer under it made redis-py send XADD again, once even after the server had stopped.
    adder.join(10)
    for c in (writer, r3):
        c.close()
