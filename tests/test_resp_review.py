"""Review of the commands added to ``kvb serve`` and Structures: blocked clients whose keys change
type, WATCH of keys replaced by another process, and other cases found by that review.

Where the question is Redis's behaviour, the same code runs against a real redis-server.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis
from helpers import note_waits
from resp_helpers import blocked_clients, wait_blocked

from kv_backend.structures import Structures


def in_thread(fn, *args) -> tuple[threading.Thread, dict]:
    """Run ``fn(*args)`` in a thread; the dict gets its result (or the exception) as ``"out"``."""
    box: dict = {}

    def go() -> None:
        try:
            box["out"] = fn(*args)
        except Exception as exc:  # the reply under test may be an error
            box["out"] = exc

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t, box


def raw(port: int) -> redis.Connection:
    """A plain connection: replies as the server sent them, without redis-py's reply callbacks."""
    conn = redis.Connection(port=port, socket_timeout=10, protocol=2)
    conn.connect()
    return conn


def call(conn: redis.Connection, *args):
    conn.send_command(*args)
    return conn.read_response()


# ------------------------------------------- a blocked client whose key changes type


BLOCKING_POPS = [
    (["BZPOPMIN", "a", "b", "5"], "zset", [b"b", b"m", b"1"]),
    (["BZPOPMAX", "a", "b", "5"], "zset", [b"b", b"m", b"1"]),
    (["BZMPOP", "5", "2", "a", "b", "MIN"], "zset", [b"b", [[b"m", b"1"]]]),
    (["BLPOP", "a", "b", "5"], "list", [b"b", b"m"]),
    (["BRPOP", "a", "b", "5"], "list", [b"b", b"m"]),
    (["BLMPOP", "5", "2", "a", "b", "LEFT"], "list", [b"b", [b"m"]]),
]


@pytest.mark.parametrize(("cmd", "kind", "reply"), BLOCKING_POPS, ids=[c[0][0] for c in BLOCKING_POPS])
def test_a_blocked_pop_is_not_failed_by_its_key_changing_type(port, cmd, kind, reply):
    # As in Redis: a key that another client sets to another type while a client waits on it is
    # no error for the waiter; it goes on waiting and is served by its other key.
    r = redis.Redis(port=port)
    waiter = raw(port)
    t, box = in_thread(call, waiter, *cmd)
    wait_blocked(r)
    r.set("a", "a string")
    time.sleep(0.1)  # kvb serve retries its waiters within this
    assert r.info("clients")["blocked_clients"] == 1, box
    if kind == "zset":
        r.zadd("b", {"m": 1})
    else:
        r.rpush("b", "m")
    t.join(10)
    assert box["out"] == reply
    assert r.get("a") == b"a string"
    r.close()
    waiter.disconnect()


def test_a_waiter_of_another_type_does_not_hold_up_the_next(port):
    # BZPOPMIN k blocked first, BLPOP k second: a push to the list k serves the BLPOP at once
    # and leaves the BZPOPMIN waiting, as in Redis. (Not held up until the BZPOPMIN's timeout, 8 s:
    # the BLPOP is answered while the server still counts the BZPOPMIN as blocked.)
    r = redis.Redis(port=port)
    zwaiter, lwaiter = raw(port), raw(port)
    tz, zbox = in_thread(call, zwaiter, "BZPOPMIN", "k", "8")
    wait_blocked(r, 1)
    tl, lbox = in_thread(call, lwaiter, "BLPOP", "k", "5")
    wait_blocked(r, 2)
    r.rpush("k", "x")
    tl.join(10)
    assert lbox["out"] == [b"k", b"x"]
    assert blocked_clients(r) == 1 and "out" not in zbox  # still waiting (for a sorted set)
    r.delete("k")
    r.zadd("k", {"m": 2})
    tz.join(10)
    assert zbox["out"] == [b"k", b"m", b"2"]
    r.close()
    zwaiter.disconnect()
    lwaiter.disconnect()


def test_structures_blocking_pops_skip_a_key_that_changed_type(tmp_path, monkeypatch):
    st = Structures(str(tmp_path / "s"))
    waiting = note_waits(monkeypatch, st.db)
    try:
        for pop, push in (
            (lambda: st.bzpopmin(["a", "b"], 5), lambda: st.zadd("b", {"m": 1})),
            (lambda: st.bzmpop(["a", "b"], 5, "max"), lambda: st.zadd("b", {"m": 1})),
            (lambda: st.blpop(["a", "b"], 5), lambda: st.rpush("b", "m")),
            (lambda: st.blmpop(["a", "b"], 5), lambda: st.rpush("b", "m")),
        ):
            st.delete("a", "b")
            waiting.clear()
            t, box = in_thread(pop)
            assert waiting.wait(10), box
            waiting.clear()
            st.set("a", "a string")
            assert waiting.wait(10), box  # tried again, and waits on
            assert "out" not in box
            push()
            t.join(10)
            assert box["out"] is not None and not isinstance(box["out"], Exception), box
            assert box["out"][0] == b"b"
    finally:
        st.close()


# ---------------------------- WATCH of a key another process replaces (COPY, RENAME)


@pytest.mark.parametrize(
    "setup",
    [
        [("SADD", "src", "new"), ("SADD", "dst", "old")],
        [("HSET", "src", "f", "new"), ("HSET", "dst", "f", "old")],
        [("ZADD", "src", "1", "new"), ("ZADD", "dst", "1", "old")],
        [("RPUSH", "src", "new"), ("RPUSH", "dst", "old")],
        [("XADD", "src", "1-1", "f", "new"), ("XADD", "dst", "1-1", "f", "old")],
        # the destination written more often than the source: its counter is ahead
        [("SADD", "src", "new"), ("SADD", "dst", "a"), ("SADD", "dst", "b"), ("SREM", "dst", "b")],
    ],
    ids=["set", "hash", "zset", "list", "stream", "set-older"],
)
@pytest.mark.parametrize("how", ["copy", "rename"])
def test_watch_sees_another_process_replace_the_key(resp_servers, setup, how):
    # docs/redis.md: a key's deletion or replacement by another process fails a watcher's EXEC. A
    # collection copied or renamed over one of the same type and size must not leave the watched
    # metadata record as it was.
    a = redis.Redis(port=resp_servers.kvb)
    a.flushall()
    for cmd in setup:
        a.execute_command(*cmd)
    st = Structures(resp_servers.kvb_path)
    try:
        with a.pipeline() as p:
            p.watch("dst")
            if how == "copy":
                assert st.copy("src", "dst", replace=True)
            else:
                assert st.rename("src", "dst")
            p.multi()
            p.type("dst")
            with pytest.raises(redis.WatchError):
                p.execute()
    finally:
        st.close()
        a.close()


# ------------------------------------------- CLIENT REPLY OFF|SKIP and pub/sub


def _command(*words: str) -> bytes:
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words)


def _exchange(port: int, payload: bytes, subscribed: int, expected: int) -> bytes:
    """Send ``payload`` on a new connection, publish to ``ch`` once ``subscribed`` bytes came back
    (the subscription's confirmation: it is in place), and read ``expected`` bytes back in all."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(payload)
        out = b""
        while len(out) < subscribed and (data := s.recv(65536)):
            out += data
        with redis.Redis(port=port) as pub:
            pub.publish("ch", "hi")
        while len(out) < expected:
            data = s.recv(65536)
            if not data:
                break
            out += data
        s.settimeout(0.1)
        try:
            out += s.recv(65536)
        except TimeoutError:
            pass
        return out


@pytest.mark.parametrize("mode", ["OFF", "SKIP"])
def test_client_reply_off_or_skip_still_confirms_subscriptions(port, mode):
    # Redis sends (un)subscribe confirmations, which are pushes, whatever CLIENT REPLY says; the
    # PING reply (an ordinary reply in subscribe mode) is dropped under OFF and sent after SKIP.
    payload = _command("CLIENT", "REPLY", mode) + _command("SUBSCRIBE", "ch") + _command("PING")
    confirm = b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
    pong = b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
    message = b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n"
    want = confirm + (b"" if mode == "OFF" else pong) + message
    assert _exchange(port, payload, len(confirm), len(want)) == want
