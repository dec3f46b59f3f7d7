"""``kvb serve`` never waits for the store's write lock in its event loop (see
test_serve_lock_wait20.py); its tracking step still could:

After another process merged the store while a process held the write lock, the tracking step
(reading what changed, which needs the lock to reload the merged files) raised out of the event
loop's callback: asyncio logged "Exception in callback", every command, even a PING, waited for
the lock, and the tracking clients were told nothing once it was free. Now the commands are
answered meanwhile, and the invalidation messages are sent once the lock is free.
"""

from __future__ import annotations

import select
import signal
import time

import pytest
from resp_helpers import Raw, RunningServer

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
