"""``kvb serve`` never waits for the store's write lock in its event loop (see
test_serve_lock_wait20.py); two of its steps still could:

- After another process merged the store while a process held the write lock, the tracking step
  (reading what changed, which needs the lock to reload the merged files) raised out of the event
  loop's callback: asyncio logged "Exception in callback", every command, even a PING, waited for
  the lock, and the tracking clients were told nothing once it was free. Now the commands are
  answered meanwhile, and the invalidation messages are sent once the lock is free.
- An EVAL_RO or FCALL_RO that waited for the lock ran again once it was free, and MONITOR clients
  saw it twice; Redis shows each command once.
"""

from __future__ import annotations

import select
import signal
import time

import pytest
from resp_helpers import Raw, RunningServer
from test_script_busy19 import _send
from test_serve_lock_wait20 import Holder

from kv_backend.db import DB

NULL_INVALIDATION = b">2\r\n$10\r\ninvalidate\r\n_\r\n"  # (a merge: any key may have changed)


@pytest.fixture
def server(tmp_path):
    ours = RunningServer(str(tmp_path / "store")).start()
    yield ours
    ours.stop()


def _stderr_after_stop(server: RunningServer) -> str:
    server.proc.send_signal(signal.SIGTERM)
    _, err = server.proc.communicate(timeout=10)
    return err.decode()


def test_tracking_clients_are_told_once_the_lock_is_free_after_a_merge(server):
    client = Raw(server.port, 2)
    client.call("SET", "k", "1")
    client.call("SET", "k", "2")  # (something for the merge to drop)
    tracker = Raw(server.port, 3)
    assert tracker.call("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    assert tracker.call("GET", "k") == b"$1\r\n2\r\n"
    db = DB(server.path)
    try:
        with db.locked():  # this process merges and holds the lock: the server must reload to catch up
            db.merge()
            time.sleep(0.1)  # (the server's poll looks at the store meanwhile)
            started = time.monotonic()
            assert client.call("PING") == b"+PONG\r\n"  # (it waited for the lock)
            assert time.monotonic() - started < 1.0
            assert client.call("ECHO", "x") == b"$1\r\nx\r\n"
            assert select.select([tracker.sock], [], [], 0.2)[0] == []  # nothing is known of the store yet
        released = time.monotonic()
        assert select.select([tracker.sock], [], [], 5)[0] != []
        assert tracker._read() == NULL_INVALIDATION  # (not told at all)
        assert time.monotonic() - released < 1.0
        assert tracker.call("GET", "k") == b"$1\r\n2\r\n"
    finally:
        db.close()
    err = _stderr_after_stop(server)
    assert "Exception in callback" not in err and "WouldWait" not in err, err


def test_a_script_that_waits_for_the_lock_shows_once_to_monitor_clients(server):
    caller = Raw(server.port, 2)
    assert caller.call("SET", "k", "v") == b"+OK\r\n"
    lib = (
        "#!lua name=lib\nredis.register_function{function_name='get', callback=function(keys) "
        "return redis.call('get', keys[1]) end, flags={'no-writes'}}"
    )
    assert caller.call("FUNCTION", "LOAD", lib) == b"$3\r\nlib\r\n"
    monitor = Raw(server.port, 2)
    assert monitor.call("MONITOR") == b"+OK\r\n"
    holder = Holder(server.path)
    try:
        _send(caller, "EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k")
        _send(caller, "FCALL_RO", "get", "1", "k")
        time.sleep(0.3)  # they wait for the lock, tried again and again
    finally:
        holder.release()
    assert caller._read() == b"$1\r\nv\r\n"
    assert caller._read() == b"$1\r\nv\r\n"
    assert caller.call("ECHO", "end") == b"$3\r\nend\r\n"  # (after the others on the monitor)
    lines = []
    while not lines or b'"ECHO"' not in lines[-1]:
        lines.append(monitor.file.readline())
    shown = [line.split(b"] ", 1)[1] for line in lines]
    assert shown == [
        b'"EVAL_RO" "return redis.call(\'get\', KEYS[1])" "1" "k"\r\n',
        b'"get" "k"\r\n',  # (shown as "lua", once each run)
        b'"FCALL_RO" "get" "1" "k"\r\n',
        b'"get" "k"\r\n',
        b'"ECHO" "end"\r\n',
    ]
