"""Client-side caching: ``CLIENT TRACKING``, ``CLIENT CACHING``, ``GETREDIR``, ``TRACKINGINFO`` and the
invalidation messages, checked against redis-server and across processes sharing one store.

``CLIENT TRACKING`` was refused (``unknown subcommand``), so no client-side cache (redis-py's
``cache_config=``, Jedis's, Lettuce's) could be used with ``kvb serve``. A cache must never keep a
value another process changed, so the changes by another ``kvb serve`` on the same directory and by
``Structures`` in another process are checked here as well as this server's own.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from helpers import child_env, require_tool
from resp_helpers import Raw, RunningServer, start_redis_server, stop_process

#: How long a change made elsewhere may take to reach a tracking client (docs/redis.md: ~20 ms).
BOUND = 1.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """Two ``kvb serve`` processes on one directory: (path, port of the first, port of the second)."""
    path = str(tmp_path_factory.mktemp("tracking") / "store")
    first = RunningServer(path).start()
    second = RunningServer(path).start()
    yield path, first.port, second.port
    assert first.stop() == 0
    assert second.stop() == 0


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A throw-away redis-server (no persistence) to compare with."""
    require_tool("redis-server")
    proc, port = start_redis_server(str(tmp_path_factory.mktemp("redis")))
    try:
        yield port
    finally:
        stop_process(proc)


class Conn(Raw):
    """A raw connection that can also read the push messages that came in since its last command."""

    def frames(self, *args: str | bytes) -> list[bytes]:
        """Send a command, then PING: every frame received up to PING's reply (the command's reply
        and the messages that reached this connection meanwhile), in order."""
        words = [a.encode() if isinstance(a, str) else a for a in args]
        out = []
        for cmd in ([words] if words else []) + [[b"PING"]]:
            self.sock.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in cmd))
        while True:
            frame = self._read()
            if frame in (b"+PONG\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"):
                return out
            out.append(frame)

    def pushes(self, want: int = 1) -> list[bytes]:
        """The messages received since the last command, waiting up to :data:`BOUND` for ``want``."""
        deadline = time.monotonic() + BOUND
        out = []
        while True:
            out += self.frames()
            if len(out) >= want or time.monotonic() > deadline:
                return out
            time.sleep(0.005)


def invalidate(*keys: str) -> bytes:
    """The RESP3 ``invalidate`` push of these keys."""
    return b">2\r\n$10\r\ninvalidate\r\n*%d\r\n" % len(keys) + b"".join(
        b"$%d\r\n%s\r\n" % (len(k), k.encode()) for k in keys
    )


NULL = b">2\r\n$10\r\ninvalidate\r\n_\r\n"


def _ids(conns: list[Conn]) -> list[bytes]:
    return [c.call("CLIENT", "ID")[1:-2] for c in conns]


def test_redis_py_cache_sees_changes_made_anywhere(servers, monkeypatch):
    """redis-py's client-side cache (``protocol=3, cache_config=CacheConfig()``) against kvb serve
    serves a changed value at most a moment after the change, whether it was made by another
    connection, by another kvb serve on the same directory or by ``Structures`` in another process.

    redis-py refuses to cache against any server that reports a version below 7.4 (redis-server 7.2
    included); kvb reports 7.2.0, so the test lowers that bar. What it exercises is the protocol
    (CLIENT TRACKING ON, invalidate pushes), which is Redis 6's."""
    redis = pytest.importorskip("redis")
    from redis.cache import CacheConfig

    if not hasattr(redis.connection.DefaultParser, "set_invalidation_push_handler"):
        pytest.skip(
            f"redis-py {redis.__version__}'s default parser ({redis.connection.DefaultParser.__name__}, "
            "hiredis) cannot take invalidation pushes, so its client-side cache fails against any server"
        )
    monkeypatch.setattr(redis.connection.CacheProxyConnection, "MIN_ALLOWED_VERSION", "7.0.0")
    path, port, other_port = servers
    cached = redis.Redis(port=port, protocol=3, cache_config=CacheConfig())
    here = redis.Redis(port=port)
    there = redis.Redis(port=other_port)

    def sees(key: str, value: bytes | None, get=None) -> None:
        read = get or (lambda: cached.get(key))
        deadline = time.monotonic() + BOUND
        while read() != value:
            assert time.monotonic() < deadline, f"{key} still cached after {BOUND} s"
            time.sleep(0.002)

    try:
        cached.set("k", "1")
        assert cached.get("k") == b"1" == cached.get("k")
        here.set("k", "2")
        sees("k", b"2")
        there.set("k", "3")
        sees("k", b"3")
        cached.hset("h", "f", "1")
        assert cached.hget("h", "f") == b"1"
        code = (
            "from kv_backend.db import DB\nfrom kv_backend.structures import Structures\n"
            f"db = DB({path!r})\nst = Structures(db)\nst.hset('h', {{'f': '2'}})\nst.set('k', '4')\n"
            "db.close()\n"
        )
        subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=60)
        sees("k", b"4")
        sees("h", b"2", lambda: cached.hget("h", "f"))
        there.delete("k")
        sees("k", None)
    finally:
        cached.close()
        here.close()
        there.close()


def test_changes_by_other_processes_reach_an_idle_client(servers):
    """A client that sends nothing still gets the message for a change made by another kvb serve
    process on the same directory: the server looks at the store while clients track."""
    _, port, other_port = servers
    a, b = Conn(port, 3), Conn(other_port, 3)
    try:
        assert a.call("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
        a.call("GET", "idle")
        b.call("SET", "idle", "x")
        a.sock.settimeout(BOUND)
        assert a._read() == invalidate("idle")  # unasked: no command was sent
    finally:
        a.close()
        b.close()


def test_a_store_rebuilt_by_a_merge_sends_the_null_message(servers):
    """Where kvb cannot tell which keys changed (another process merged the store, so the server
    rebuilt its index from the files), every tracking client is told to drop everything."""
    path, port, _ = servers
    a, b = Conn(port, 3), Conn(port, 3)
    try:
        a.call("CLIENT", "TRACKING", "ON")
        b.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "m:")
        for i in range(50):
            a.call("SET", f"m:{i}", "x" * 100)
        a.call("GET", "m:1")
        a.frames(), b.frames()  # drop the messages of the SETs
        code = f"from kv_backend.db import DB\ndb = DB({path!r}, max_file_size=4096)\ndb.merge()\ndb.close()"
        subprocess.run([sys.executable, "-c", code], env=child_env(), check=True, timeout=60)
        assert NULL in a.pushes() and NULL in b.pushes()
        assert a.call("GET", "m:1") == b"$100\r\n" + b"x" * 100 + b"\r\n"
    finally:
        a.close()
        b.close()


def test_expired_keys_are_announced(servers):
    """A key read and then expiring sends its message, without anybody touching it again."""
    _, port, other_port = servers
    a, b = Conn(port, 3), Conn(other_port, 3)
    try:
        a.call("CLIENT", "TRACKING", "ON")
        b.call("SET", "exp", "1", "PX", "50")
        a.call("GET", "exp")
        assert a.pushes() == [invalidate("exp")]
    finally:
        a.close()
        b.close()


def _scripted(port: int) -> list[list[bytes]]:
    """The same sequence on either server: every reply and message each connection received."""
    a, b, c, r2, d = (Conn(port, p) for p in (3, 3, 3, 2, 2))
    conns = [a, b, c, r2, d]
    try:
        b.call("FLUSHALL")
        rid = _ids([r2])[0]
        steps: list[tuple[Conn, tuple[str | bytes, ...]]] = [
            (r2, ("SUBSCRIBE", "__redis__:invalidate")),
            (d, ("CLIENT", "TRACKING", "ON", "REDIRECT", rid)),
            (a, ("CLIENT", "TRACKING", "ON")),
            (c, ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "x", "NOLOOP")),
            (a, ("CLIENT", "TRACKINGINFO")),
            (c, ("CLIENT", "TRACKINGINFO")),
            (a, ("MGET", "k1", "k2", "user:1")),
            (a, ("HGET", "h", "f")),
            (d, ("GET", "k1")),
            (d, ("CLIENT", "GETREDIR")),
            (a, ("SET", "k1", "v")),  # its own write: the message follows the reply
            (b, ("MSET", "k1", "a", "k2", "b", "user:2", "c", "user:1", "d", "xy", "e", "other", "f")),
            (b, ("SET", "k1", "again")),  # not read since: no message
            (c, ("SET", "user:3", "mine")),  # NOLOOP: not to c itself
            (b, ("HSET", "h", "f", "1", "g", "2")),
            (a, ("HGETALL", "h")),
            (b, ("HDEL", "h", "nope")),  # changes nothing: no message
            (b, ("DEL", "h")),
            (a, ("CLIENT", "TRACKING", "OFF")),
            (a, ("CLIENT", "TRACKING", "ON", "OPTIN")),
            (a, ("GET", "o1")),
            (a, ("CLIENT", "CACHING", "YES")),
            (a, ("GET", "o2")),
            (a, ("GET", "o3")),
            (a, ("MULTI",)),
            (a, ("SET", "o9", "1")),
            (a, ("EXEC",)),
            (b, ("MSET", "o1", "1", "o2", "2", "o3", "3")),
            (a, ("CLIENT", "TRACKING", "OFF")),
            (a, ("CLIENT", "TRACKING", "ON", "OPTOUT", "NOLOOP")),
            (a, ("GET", "p1")),
            (a, ("CLIENT", "CACHING", "NO")),
            (a, ("GET", "p2")),
            (a, ("EVAL", "return redis.call('get', KEYS[1])", "1", "p3")),
            (a, ("SET", "p1", "mine")),
            (b, ("MSET", "p1", "1", "p2", "2", "p3", "3")),
            (a, ("CLIENT", "TRACKINGINFO")),
            (a, ("MGET", "f1", "f2")),
            (b, ("FLUSHDB",)),
            (a, ("CLIENT", "TRACKING", "OFF")),
            (a, ("CLIENT", "TRACKINGINFO")),
            (a, ("CLIENT", "GETREDIR")),
        ]
        seen = []
        queuing = False
        for who, args in steps:
            queuing = (queuing or args[0] == "MULTI") and args[0] != "EXEC"
            if queuing or args[1:2] == ("CACHING",):  # a PING would be queued, or be the next command
                seen.append([conns.index(who), who.call(*args)])
                continue
            seen.append([conns.index(who), *who.frames(*args)])
            for other in conns:
                if other is not who:
                    seen.append([conns.index(other), *other.frames()])
        mark = b":%s\r\n" % rid  # the redirect's client ID differs between the servers
        return [[s if type(s) is int else s.replace(mark, b":<id>\r\n") for s in step] for step in seen]
    finally:
        for conn in conns:
            conn.close()


def test_messages_as_redis_server_sends_them(servers, redis_port):
    """One scripted sequence (default mode, REDIRECT to a RESP2 subscriber, BCAST with prefixes,
    OPTIN/OPTOUT with CLIENT CACHING, NOLOOP, MULTI, a script, FLUSHDB) gets the same replies and
    the same messages, in the same order, from kvb serve and redis-server."""
    theirs = _scripted(redis_port)
    ours = _scripted(servers[1])
    assert len(ours) == len(theirs)
    for step, (want, got) in enumerate(zip(theirs, ours, strict=True)):
        assert got == want, (step, want, got)


BAD = [
    ("CLIENT", "TRACKING"),
    ("CLIENT", "TRACKING", "maybe"),
    ("CLIENT", "TRACKING", "ON", "FOO"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT", "x"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT", "012"),
    ("CLIENT", "TRACKING", "ON", "REDIRECT", "99999"),
    ("CLIENT", "TRACKING", "ON", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "ON", "OPTIN", "OPTOUT"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "OPTIN"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "ab", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "a"),
    ("CLIENT", "TRACKING", "OFF", "FOO"),
    ("CLIENT", "CACHING"),
    ("CLIENT", "CACHING", "YES"),
    ("CLIENT", "CACHING", "yes", "x"),
    ("CLIENT", "GETREDIR", "x"),
    ("CLIENT", "TRACKINGINFO", "x"),
    ("CLIENT", "TRACKING", "ON"),
    ("CLIENT", "CACHING", "YES"),
    ("CLIENT", "CACHING", "maybe"),
    ("CLIENT", "TRACKING", "ON", "BCAST"),
    ("CLIENT", "TRACKING", "ON", "OPTIN"),
    ("CLIENT", "CACHING", "NO"),
    ("CLIENT", "TRACKING", "ON", "OPTOUT"),
    ("CLIENT", "TRACKING", "OFF"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "b"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "bc"),
    ("CLIENT", "TRACKING", "ON"),
    ("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "c"),
    ("CLIENT", "TRACKINGINFO"),
    ("EVAL", "return redis.call('client', 'tracking', 'on')", "0"),
    ("EVAL", "return redis.call('client', 'trackinginfo')", "0"),
]


def test_bad_arguments_get_redis_errors(servers, redis_port):
    """Every malformed or conflicting CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO call gets
    redis-server's reply, word for word (including the order in which conflicts are checked)."""
    conns = [Conn(redis_port, 3), Conn(servers[1], 3)]
    try:
        for args in BAD:
            theirs, ours = (c.call(*args) for c in conns)
            assert ours == theirs, (args, theirs, ours)
    finally:
        for c in conns:
            c.close()


def test_client_list_and_info_show_tracking(servers):
    """CLIENT LIST shows a tracking client's flags (``t``, ``B`` for BCAST, ``R`` once the client it
    redirects to is gone) and its ``redir``; INFO counts ``tracking_clients``; RESET and a closed
    connection stop tracking."""
    port = servers[1]
    a, b, gone = Conn(port, 3), Conn(port, 3), Conn(port, 3)
    try:
        gone_id = _ids([gone])[0].decode()
        assert a.call("CLIENT", "TRACKING", "ON", "REDIRECT", gone_id) == b"+OK\r\n"
        b.call("CLIENT", "TRACKING", "ON", "BCAST")
        assert b"tracking_clients:2\r\n" in a.call("INFO", "clients")
        info = a.call("CLIENT", "INFO")
        assert b" flags=t " in info and f" redir={gone_id} ".encode() in info
        info = b.call("CLIENT", "INFO")
        assert b" flags=tB " in info and b" redir=0 " in info
        gone.close()
        a.call("GET", "r")
        b.call("SET", "r", "1")
        assert a.pushes() == [b">2\r\n$21\r\ntracking-redir-broken\r\n:%s\r\n" % gone_id.encode()]
        assert b" flags=tR " in a.call("CLIENT", "INFO")
        assert a.call("RESET") == b"+RESET\r\n"
        assert b" flags=N " in a.call("CLIENT", "INFO") and b" redir=-1 " in a.call("CLIENT", "INFO")
        b.close()
        time.sleep(0.05)
        assert b"tracking_clients:0\r\n" in a.call("INFO", "clients")
    finally:
        a.close()
        b.close()


def test_follow_changes_reports_own_and_other_writers_keys(tmp_path):
    """The engine's change feed the server builds on: off by default (writes note nothing); on, it
    gives the keys this process wrote and those it caught up with from another writer, in order,
    and None once a merge rebuilt the index from the files."""
    from kv_backend.db import DB

    path = str(tmp_path / "s")
    db, other = DB(path, max_file_size=4096), DB(path, max_file_size=4096)
    try:
        db.put(b"a", b"1")
        assert db._ix.sink is None and db.take_changes() == []
        db.follow_changes()
        db.put(b"a", b"2")
        with db.batch() as batch:
            batch.put(b"b", b"1")
            batch.delete(b"a")
        other.put(b"c", b"1")
        assert db.take_changes() == [b"a", b"b", b"a", b"c"]
        assert db.take_changes() == []
        for i in range(100):
            other.put(b"k%d" % i, b"x" * 100)
        other.merge()
        assert db.take_changes() is None
        assert db.take_changes() == []
        db.follow_changes(False)
        db.put(b"d", b"1")
        assert db._ix.sink is None and db.take_changes() == []
    finally:
        db.close()
        other.close()
