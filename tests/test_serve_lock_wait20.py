"""A second ``kvb serve`` on a store froze entirely (no PING answer, no reads, nothing) while another
process held the store's write lock: a script running long on the first server, a long transaction.
Its event loop waited in the lock for the first write any client sent. Now the loop never waits for
the lock: a command that needs it waits apart, its client's later commands with it, while the server
answers its other clients; it runs once the lock is free, or after busy-reply-threshold milliseconds
is answered a BUSY error saying so, without running."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time

import pytest
from helpers import child_env
from resp_helpers import Raw, RunningServer, info_number
from test_resp_shutdown18 import _stored
from test_script_busy19 import _busy, _other, _send

from kv_backend.db import DB
from kv_backend.locking import WouldWait

LOCK_BUSY = (
    b"BUSY another process holds the store's write lock (a script running long on another kvb serve of "
    b"this directory, or a long transaction): the command did not run; retry it later, or raise "
    b"busy-reply-threshold to wait longer"
)


class Holder:
    """Another process holding the store's write lock until :meth:`release`."""

    def __init__(self, path: str) -> None:
        code = (
            "import sys\nfrom kv_backend.db import DB\n"
            f"db = DB({path!r})\n"
            "with db.locked():\n    print('held', flush=True)\n    sys.stdin.readline()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=child_env()
        )
        assert self.proc.stdout.readline() == b"held\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)


def _timed(conn: Raw, *args: str) -> tuple[bytes, float]:
    started = time.monotonic()
    reply = conn.call(*args)
    return reply, time.monotonic() - started


@pytest.fixture
def server(tmp_path):
    ours = RunningServer(str(tmp_path / "store")).start()
    yield ours
    assert ours.stop() == 0


def test_a_second_server_keeps_serving_while_the_first_ones_script_holds_the_lock(tmp_path):
    path = str(tmp_path / "store")
    first = RunningServer(path).start()
    second = RunningServer(path).start()
    try:
        caller = Raw(first.port, 2)
        assert caller.call("SET", "k", "v") == b"+OK\r\n"
        assert caller.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        other = _other(first)
        _send(caller, "EVAL", "redis.call('set', 'in', '1') while true do end", "0")
        _busy(other)  # the script runs, holding the store's write lock
        writer, reader = Raw(second.port, 2), Raw(second.port, 2)
        assert writer.call("CONFIG", "SET", "busy-reply-threshold", "1500") == b"+OK\r\n"
        started = time.monotonic()
        _send(writer, "SET", "y", "1")
        _send(writer, "GET", "y")  # (waits behind the write, as in a pipeline)
        for _ in range(5):
            reply, took = _timed(reader, "PING")
            assert reply == b"+PONG\r\n" and took < 1
            reply, took = _timed(reader, "GET", "k")  # reads never need the lock
            assert reply == b"$1\r\nv\r\n" and took < 1
            time.sleep(0.1)
        assert writer._read() == b"-" + LOCK_BUSY + b"\r\n"
        assert writer._read() == b"$-1\r\n"
        assert time.monotonic() - started >= 1.4
        assert reader.call("PING") == b"+PONG\r\n"
        # (the script runs on the first server: this one has none to kill)
        assert reader.call("SCRIPT", "KILL") == b"-NOTBUSY No scripts in execution right now.\r\n"
        _send(other, "SHUTDOWN", "NOSAVE")  # the first server stops, keeping none of the script's writes
        assert first.proc.wait(15) == 0
        assert writer.call("SET", "y", "2") == b"+OK\r\n"  # the lock is free again
        assert reader.call("GET", "y") == b"$1\r\n2\r\n"
    finally:
        first.stop()
        assert second.stop() == 0
    assert _stored(path, b"y") == b"2" and _stored(path, b"in") is None


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_write_waiting_for_the_lock_runs_once_it_is_free(tmp_path, loop, monkeypatch):
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.setenv("KVB_EVENT_LOOP", loop)
    server = RunningServer(str(tmp_path / "store")).start()
    holder = None
    try:
        writer, reader = Raw(server.port, 2), Raw(server.port, 2)
        holder = Holder(server.path)
        _send(writer, "MULTI")
        _send(writer, "INCR", "n")
        _send(writer, "EXEC")
        _send(writer, "DUMP", "n")  # (behind EXEC, as in a pipeline)
        assert writer._read() == b"+OK\r\n"
        assert writer._read() == b"+QUEUED\r\n"  # (queued without the lock)
        time.sleep(0.3)
        reply, took = _timed(reader, "GET", "n")
        assert reply == b"$-1\r\n" and took < 1
        assert select.select([writer.sock], [], [], 0.2)[0] == []  # EXEC waits
        holder.release()
        assert writer._read() == b"*1\r\n:1\r\n"
        assert writer._read().startswith(b"$")  # DUMP's payload
        assert reader.call("GET", "n") == b"$1\r\n1\r\n"
    finally:
        if holder is not None:
            holder.release()
        assert server.stop() == 0


def test_past_the_threshold_exec_and_eval_ro_are_refused(server):
    conn, reader = Raw(server.port, 2), Raw(server.port, 2)
    assert conn.call("SET", "a", "x") == b"+OK\r\n"
    assert conn.call("CONFIG", "SET", "busy-reply-threshold", "1000") == b"+OK\r\n"
    holder = Holder(server.path)
    try:
        processed = info_number(reader, "stats", "total_commands_processed")
        assert conn.call("MULTI") == b"+OK\r\n"
        assert conn.call("SET", "a", "y") == b"+QUEUED\r\n"
        reply, took = _timed(conn, "EXEC")
        assert reply == b"-EXECABORT Transaction discarded because of: " + LOCK_BUSY + b"\r\n"
        assert took >= 0.99
        # (a script runs as one transaction, under the lock): refused at once, the lock not seen free since
        reply, took = _timed(conn, "EVAL_RO", "return 1", "0")
        assert reply == b"-" + LOCK_BUSY + b"\r\n" and took < 0.9
        assert conn.call("EXEC") == b"-ERR EXEC without MULTI\r\n"  # (discarded)
        assert conn.call("GET", "a") == b"$1\r\nx\r\n"
        # each command counted once, not once per try (MULTI, SET, EXEC, EVAL_RO, EXEC, GET, INFO)
        assert info_number(reader, "stats", "total_commands_processed") == processed + 7
    finally:
        holder.release()
    time.sleep(0.1)  # (the server sees the lock free again: the next write waits afresh)
    holder = Holder(server.path)
    try:
        _send(conn, "SET", "a", "z")
        time.sleep(0.1)
        holder.release()
        assert conn._read() == b"+OK\r\n"
    finally:
        holder.release()
    assert reader.call("GET", "a") == b"$1\r\nz\r\n"


def test_a_client_that_shuts_down_its_side_while_its_write_waits_gets_the_reply(server):
    holder = Holder(server.path)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(b"SET half 1\r\nGET half\r\n")
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        holder.release()
        got = b""
        while chunk := sock.recv(100):
            got += chunk
        assert got == b"+OK\r\n$1\r\n1\r\n"
        sock.close()
    finally:
        holder.release()


def test_only_the_no_wait_thread_is_refused_the_wait(tmp_path):
    path = str(tmp_path / "store")
    db = DB(path)
    holder = Holder(path)
    try:
        db._lock.no_wait_thread = threading.get_ident()
        started = time.monotonic()
        with pytest.raises(WouldWait):
            db.put(b"k", b"1")
        assert time.monotonic() - started < 1
        assert db.get(b"k") is None and not db._lock.held
        other = threading.Thread(target=db.put, args=(b"k", b"2"))  # another thread waits, as ever
        other.start()
        other.join(0.3)
        assert other.is_alive()
        holder.release()
        other.join(10)
        assert db.get(b"k") == b"2"
        db.put(b"k", b"3")  # free: taken at once
        assert db.get(b"k") == b"3"
    finally:
        holder.release()
        db.close()


def test_pfcount_of_a_cached_count_or_a_missing_key_does_not_wait_for_the_lock(server):
    """PFCOUNT took the write lock even to read a count its value caches (or a missing key's 0)."""
    conn = Raw(server.port, 2)
    assert conn.call("PFADD", "hll", "a", "b", "c") == b":1\r\n"
    assert conn.call("PFCOUNT", "hll") == b":3\r\n"  # (caches the count)
    holder = Holder(server.path)
    try:
        for key, count in (("hll", b":3\r\n"), ("missing", b":0\r\n")):
            reply, took = _timed(conn, "PFCOUNT", key)
            assert reply == count and took < 1
    finally:
        holder.release()
    assert conn.call("PFADD", "hll", "d") == b":1\r\n"  # (the cache is out of date: counted again)
    assert conn.call("PFCOUNT", "hll") == b":4\r\n"


def test_reads_of_several_records_at_one_moment_do_not_wait_for_the_lock(server):
    """DUMP, LCS and SORT_RO read several records as one moment left them: under the write lock, so
    that with another process holding it they waited like writes. They now read without it, again
    while another process writes in the middle, and take it only if that keeps happening."""
    conn = Raw(server.port, 2)
    assert conn.call("RPUSH", "l", "2", "1") == b":2\r\n"
    assert conn.call("MSET", "a", "ohmytext", "b", "mynewtext") == b"+OK\r\n"
    dumped = conn.call("DUMP", "l")
    holder = Holder(server.path)
    try:
        for args, expected in (
            (("DUMP", "l"), dumped),
            (("LCS", "a", "b"), b"$6\r\nmytext\r\n"),
            (("SORT_RO", "l"), b"*2\r\n$1\r\n1\r\n$1\r\n2\r\n"),
        ):
            reply, took = _timed(conn, *args)
            assert reply == expected and took < 1
    finally:
        holder.release()


def test_a_long_wait_for_the_lock_costs_the_server_little_cpu(server):
    """Each retry of a waiting write tried the lock for up to a millisecond, every 2 ms: a third of
    a CPU for as long as another server's script ran. After 0.1 s of waiting a retry only looks."""
    conn = Raw(server.port, 2)
    assert conn.call("CONFIG", "SET", "busy-reply-threshold", "20000") == b"+OK\r\n"
    holder = Holder(server.path)
    try:
        _send(conn, "SET", "a", "1")
        time.sleep(0.3)

        def cpu_seconds() -> float:
            with open(f"/proc/{server.proc.pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = cpu_seconds()
        time.sleep(3)
        assert cpu_seconds() - before < 0.75
    finally:
        holder.release()
    assert conn._read() == b"+OK\r\n"
