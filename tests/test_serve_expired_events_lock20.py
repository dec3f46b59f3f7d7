"""kvb serve deletes expired keys one write-lock hold each (its active expiry sweep, the keys a command
names, the keys blocked clients wait on). When another process took the lock between two deletions,
the WouldWait raised in the event loop left the keys already deleted unreported: their ``expired``
events were never published, and nothing would publish them later (the keys are gone). They are now
published before the WouldWait goes on."""

from __future__ import annotations

import time

import pytest

from kv_backend.locking import WouldWait
from kv_backend.server.notify import EXPIRED, KEYEVENT, Notifier
from kv_backend.structures import Structures


class _Server:
    """What a Notifier uses of its server: the store, the flags, publish."""

    def __init__(self, st: Structures) -> None:
        self.st = st
        self.notify_flags = EXPIRED | KEYEVENT
        self.published: list[tuple[bytes, bytes]] = []
        #: The keys whose deletion was tried, in order.
        self.tried: list[bytes] = []

    def publish(self, channel: bytes, message: bytes) -> int:
        self.published.append((channel, message))
        return 0


@pytest.fixture
def server(tmp_path, monkeypatch):
    st = Structures(str(tmp_path / "store"))
    for name in (b"a", b"b", b"c"):
        st.set(name, b"1", px=20)
    time.sleep(0.05)
    removed = st.remove_expired
    ours = _Server(st)
    calls = ours.tried

    def lock_taken_after_the_first(name):
        calls.append(name)
        if len(calls) > 1:
            raise WouldWait(st.db._lock.path)
        return removed(name)

    monkeypatch.setattr(st, "remove_expired", lock_taken_after_the_first)
    yield ours
    st.close()


def _reported(server: _Server) -> list[bytes]:
    return [key for channel, key in server.published if channel == b"__keyevent@0__:expired"]


def test_the_sweep_reports_the_keys_it_deleted_before_the_lock_was_taken(server):
    with pytest.raises(WouldWait):
        Notifier(server).sweep()
    assert len(server.tried) == 2 and _reported(server) == server.tried[:1]
    assert sorted(server.st.expired_names(10)) == sorted({b"a", b"b", b"c"} - {server.tried[0]})  # next time


def test_a_commands_named_keys_deleted_before_the_lock_was_taken_are_reported(server):
    with pytest.raises(WouldWait):
        Notifier(server).before(b"MGET", [b"MGET", b"a", b"b", b"c"], None, False)
    assert _reported(server) == [b"a"]
    assert not server.st.exists(b"a")
