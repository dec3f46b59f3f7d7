"""A Lua script or function that looped for ever blocked ``kvb serve`` for good: other clients hung,
``SCRIPT KILL`` could not even be read, SIGTERM and ``SHUTDOWN`` did nothing, only SIGKILL stopped
it. Now, as redis-server 7 after ``busy-reply-threshold`` milliseconds, the server answers other
clients ``BUSY`` while the script runs (the replies were measured against redis-server 7.0),
``SCRIPT KILL``/``FUNCTION KILL`` stop a script that has not written (one that has is
``UNKILLABLE``), ``SHUTDOWN NOSAVE`` stops the server keeping none of the script's writes, and a
SIGTERM stops it once the script has ended. No other client's command runs in the middle of a
script: a blocked client is not served the element a running script pushed."""

from __future__ import annotations

import signal
import socket
import threading
import time

import pytest
from helpers import wait_for
from resp_helpers import Raw, RunningServer
from test_resp_shutdown18 import _stored

from kv_backend.db import DB
from kv_backend.server import resp
from kv_backend.structures import Structures

BUSY = b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n"
BUSY_FUNCTION = BUSY.replace(b"SCRIPT KILL", b"FUNCTION KILL")
UNKILLABLE = (
    b"-UNKILLABLE Sorry the script already executed write commands against the dataset. You can either "
    b"wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.\r\n"
)
KILLED = b"-ERR Script killed by user with SCRIPT KILL... script: %s, on @user_%s:%d.\r\n"
SPIN = "#!lua name=spin\nredis.register_function('spin', function(keys, args) while true do end end)\n"


def _send(conn: Raw, *words: str) -> None:
    data = [w.encode() for w in words]
    conn.sock.sendall(b"*%d\r\n" % len(data) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in data))


def _busy(conn: Raw, reply: bytes = BUSY) -> None:
    """Wait until the script sent just before runs long: a command sent at the same time may run first."""
    wait_for(lambda: conn.call("PING") == reply, 10, "the script to run long")


def _start(tmp_path, loop: str, monkeypatch) -> tuple[RunningServer, Raw]:
    monkeypatch.setenv("KVB_EVENT_LOOP", loop)
    server = RunningServer(str(tmp_path / "store")).start()
    conn = Raw(server.port, 2)
    assert conn.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
    return server, conn


def _other(server: RunningServer) -> Raw:
    """Another client, served before the script starts (see test_a_connection_made_...)."""
    conn = Raw(server.port, 2)
    assert conn.call("PING") == b"+PONG\r\n"
    return conn


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request):
    if request.param == "uvloop":
        pytest.importorskip("uvloop")
    return request.param


def test_other_clients_get_busy_and_script_kill_ends_the_script(tmp_path, loop, monkeypatch):
    server, caller = _start(tmp_path, loop, monkeypatch)
    try:
        other = _other(server)
        body = "local i = 0 while true do i = i + 1 end"
        sha = caller.call("SCRIPT", "LOAD", body)[5:-2]
        _send(caller, "EVALSHA", sha.decode(), "0")
        _busy(other)  # (answered once the script has run 100 ms)
        assert other.call("GET", "k") == BUSY
        assert other.call("MULTI") == b"+OK\r\n"  # what Redis allows then runs
        assert other.call("SET", "k", "v") == BUSY
        assert other.call("EXEC") == b"-EXECABORT Transaction discarded because of: " + BUSY[1:]
        assert other.call("SHUTDOWN") == BUSY  # only SHUTDOWN NOSAVE
        assert other.call("FUNCTION", "KILL") == BUSY
        assert other.call("FUNCTION", "STATS") == BUSY  # as Redis: EVAL's scripts are not shown
        late = Raw(server.port, 2)  # a connection made while the script runs is served too
        assert late.call("PING") == BUSY
        assert late.call("SCRIPT", "KILL") == b"+OK\r\n"
        assert caller._read() == KILLED % (sha, b"script", 1)
        assert late.call("SCRIPT", "KILL") == b"-NOTBUSY No scripts in execution right now.\r\n"
        for conn in (caller, other, late):  # the event loop serves them all again
            assert conn.call("PING") == b"+PONG\r\n"
        assert late.call("GET", "k") == b"$-1\r\n"
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    "body",
    [
        "local co = coroutine.wrap(function() while true do end end) co()",
        "while true do pcall(function() while true do end end) end",
        "local co = coroutine.create(function() while true do end end) return coroutine.resume(co)",
    ],
)
def test_script_kill_reaches_coroutines_and_cannot_be_caught_for_ever(tmp_path, body, monkeypatch):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        _send(caller, "EVAL", body, "0")
        _busy(other)
        assert other.call("SCRIPT", "KILL") == b"+OK\r\n"
        reply = caller._read()
        # (a killed coroutine's resume answers false, as in Redis: the script then returns nil)
        assert reply.startswith(b"-ERR Script killed by user with SCRIPT KILL...") or reply == b"$-1\r\n"
        assert other.call("PING") == b"+PONG\r\n"
    finally:
        assert server.stop() == 0


def test_function_kill_and_function_stats(tmp_path, monkeypatch):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        assert caller.call("FUNCTION", "LOAD", SPIN) == b"$4\r\nspin\r\n"
        _send(caller, "FCALL", "spin", "0")
        _busy(other, BUSY_FUNCTION)
        stats = other.call("FUNCTION", "STATS")
        assert stats.startswith(
            b"*4\r\n$14\r\nrunning_script\r\n*6\r\n$4\r\nname\r\n$4\r\nspin\r\n$7\r\ncommand\r\n"
            b"*3\r\n$5\r\nFCALL\r\n$4\r\nspin\r\n$1\r\n0\r\n$11\r\nduration_ms\r\n:"
        )
        assert other.call("SCRIPT", "KILL") == BUSY_FUNCTION
        assert other.call("FUNCTION", "KILL") == b"+OK\r\n"
        assert caller._read() == KILLED % (b"spin", b"function", 2)
        assert other.call("FUNCTION", "STATS").startswith(b"*4\r\n$14\r\nrunning_script\r\n$-1\r\n")
    finally:
        assert server.stop() == 0


def test_a_script_that_wrote_is_unkillable_and_shutdown_nosave_keeps_none_of_it(tmp_path, loop, monkeypatch):
    server, caller = _start(tmp_path, loop, monkeypatch)
    try:
        other, waiter = _other(server), _other(server)
        assert other.call("SET", "before", "1") == b"+OK\r\n"  # acknowledged: kept
        _send(waiter, "BLPOP", "q", "0")
        wait_for(lambda: b"blocked_clients:1" in other.call("INFO", "clients"), 10, "a blocked client")
        body = "redis.call('rpush', 'q', 'a') redis.call('set', 'in', '1') while true do end"
        _send(caller, "EVAL", body, "0")
        _busy(other)
        assert other.call("SCRIPT", "KILL") == UNKILLABLE
        assert other.call("SHUTDOWN") == BUSY
        _send(other, "SHUTDOWN", "NOSAVE")
        assert other.file.read() == b""  # no reply: the connection closes, as with Redis
        assert server.proc.wait(15) == 0
        # the element the script pushed was not handed to the blocked client in the middle of it
        assert waiter.file.read() == b""
        assert caller.file.read() == b""
        err = server.proc.stderr.read().decode()
        assert "slow script detected" in err and err.endswith("kvb serve: stopped\n")
    finally:
        server.stop()
    assert _stored(server.path, b"before") == b"1"
    assert _stored(server.path, b"in") is None
    db = DB(server.path)
    try:
        assert Structures(db).llen(b"q") == 0
    finally:
        db.close()


def test_sigterm_stops_the_server_once_the_script_ends(tmp_path, monkeypatch):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        _send(caller, "EVAL", "while true do end", "0")
        _busy(other)
        server.proc.send_signal(signal.SIGTERM)
        assert other.call("PING") == BUSY  # as Redis: the shutdown waits for the script
        assert server.proc.poll() is None
        assert other.call("SCRIPT", "KILL") == b"+OK\r\n"
        assert caller.file.read().startswith(b"-ERR Script killed by user")  # then the connection closes
        assert server.proc.wait(15) == 0
        assert "SIGTERM received while a script runs" in server.proc.stderr.read().decode()
    finally:
        server.stop()


def test_a_second_sigint_stops_the_server_at_once_with_status_1(tmp_path, monkeypatch):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        _send(caller, "EVAL", "redis.call('set', 'in', '1') while true do end", "0")
        _busy(other)
        server.proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        assert server.proc.poll() is None
        server.proc.send_signal(signal.SIGINT)  # Redis: "You insist... exiting now.", status 1
        assert server.proc.wait(15) == 1
        assert caller.file.read() == b""
    finally:
        server.stop()
    assert _stored(server.path, b"in") is None


def test_function_load_times_out_as_in_redis(tmp_path):
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        started = time.monotonic()
        reply = conn._reply([b"FUNCTION", b"LOAD", b"#!lua name=inf\n\nwhile true do end"])
        assert reply == b"-ERR Error registering functions: ERR FUNCTION LOAD timeout\r\n"
        assert time.monotonic() - started < 5
        assert conn._reply([b"FUNCTION", b"LOAD", SPIN.encode()]) == b"$4\r\nspin\r\n"  # the hook is reset
        assert conn._reply([b"EVAL", b"local n = 0 for i = 1, 300000 do n = n + i end return n", b"0"]) == (
            b":45000150000\r\n"
        )
    finally:
        server.close()


def test_busy_reply_threshold_and_its_old_name_as_in_redis(tmp_path):
    server = resp.Server(str(tmp_path / "store"))
    try:
        conn = resp.Connection(server)
        get = [b"CONFIG", b"GET", b"busy-reply-threshold", b"lua-time-limit"]
        assert conn._reply(get) == (
            b"*4\r\n$20\r\nbusy-reply-threshold\r\n$4\r\n5000\r\n$14\r\nlua-time-limit\r\n$4\r\n5000\r\n"
        )
        assert conn._reply([b"CONFIG", b"SET", b"lua-time-limit", b"7"]) == b"+OK\r\n"
        assert server.busy_reply_threshold == 7
        assert conn._reply([b"CONFIG", b"GET", b"busy-reply-threshold"]).endswith(b"$1\r\n7\r\n")
        assert conn._reply([b"CONFIG", b"SET", b"busy-reply-threshold", b"-1"]) == (
            b"-ERR CONFIG SET failed (possibly related to argument 'busy-reply-threshold') - argument must "
            b"be between 0 and 9223372036854775807 inclusive\r\n"
        )
        assert conn._reply([b"CONFIG", b"SET", b"lua-time-limit", b"x"]) == (
            b"-ERR CONFIG SET failed (possibly related to argument 'lua-time-limit') - argument couldn't be "
            b"parsed into an integer\r\n"
        )
    finally:
        server.close()


def test_a_connection_closed_while_the_script_runs_is_let_go(tmp_path, monkeypatch):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        _send(caller, "EVAL", "while true do end", "0")
        _busy(other)
        gone = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        gone.sendall(b"QUIT\r\n")
        assert gone.recv(100) == b"+OK\r\n"
        gone.close()
        assert other.call("SCRIPT", "KILL") == b"+OK\r\n"
        assert caller._read().startswith(b"-ERR Script killed")
        wait_for(lambda: other.call("CLIENT", "LIST").count(b"id=") == 2, 10, "two clients left")
    finally:
        assert server.stop() == 0


def test_a_script_past_the_threshold_in_a_server_without_network_ends_as_usual(tmp_path):
    server = resp.Server(str(tmp_path / "store"))  # (in-process: no event loop, nothing listens)
    try:
        conn = resp.Connection(server)
        assert conn._reply([b"CONFIG", b"SET", b"busy-reply-threshold", b"0"]) == b"+OK\r\n"
        body = b"local n = 0 for i = 1, 300000 do n = n + i end redis.call('set', 'k', n) return n"
        assert conn._reply([b"EVAL", body, b"0"]) == b":45000150000\r\n"
        assert server.busy is None and server.scripts.running is None
        assert conn._reply([b"GET", b"k"]) == b"$11\r\n45000150000\r\n"
    finally:
        server.close()


@pytest.mark.parametrize("late", [False, True])
def test_a_client_flooding_commands_while_the_script_runs_gets_every_reply_in_order(
    tmp_path, monkeypatch, late
):
    server, caller = _start(tmp_path, "asyncio", monkeypatch)
    try:
        other = _other(server)
        # (read from directly below: nothing is left in Raw's buffer)
        flood = None if late else _other(server).sock
        _send(caller, "EVAL", "while true do end", "0")
        _busy(other)
        if flood is None:  # accepted while the script runs, then handed to the event loop
            flood = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        count = 60_000  # more BUSY replies than the buffers hold: the server stops reading it meanwhile
        sender = threading.Thread(target=flood.sendall, args=(b"PING\r\n" * count,))
        sender.start()
        time.sleep(0.5)
        assert other.call("SCRIPT", "KILL") == b"+OK\r\n"
        assert caller._read().startswith(b"-ERR Script killed")
        replies = bytearray()
        while replies.count(b"\r\n") < count:
            replies += flood.recv(1 << 20)
        sender.join(30)
        lines = bytes(replies).split(b"\r\n")[:-1]
        busy = lines.count(BUSY[:-2])
        assert busy > 0 and lines == [BUSY[:-2]] * busy + [b"+PONG"] * (count - busy)
    finally:
        assert server.stop() == 0
