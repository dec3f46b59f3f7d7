"""``kvb serve`` against redis-server 7.0 where earlier reviews did not look: client-side caching's
``tracking-table-max-keys`` and INFO's tracking counters, ...

Each test runs the same commands on a ``kvb serve`` and on a throw-away redis-server and compares
the replies byte for byte where Redis is deterministic.
"""

from __future__ import annotations

import random
import threading

import pytest
from helpers import note_waits
from resp_helpers import Raw, RunningServer, wait_blocked


@pytest.fixture
def both(ports):
    """(kvb's port, redis-server's port), both emptied first (FLUSHALL also empties Redis's
    table of tracked keys, which outlives the clients that filled it)."""
    redis_port, kvb = ports  # the suite's module-scoped pair (conftest.py)
    for port in (kvb, redis_port):
        conn = Raw(port, 2)
        assert conn.call("FLUSHALL") == b"+OK\r\n"
        conn.close()
    return kvb, redis_port


class Conn(Raw):
    """A raw connection that can also read the push messages that came in since its last command."""

    def frames(self, *args: str | bytes) -> list[bytes]:
        """Send a command (if any), then PING: every frame received up to PING's reply."""
        words = [a.encode() if isinstance(a, str) else a for a in args]
        for cmd in ([words] if words else []) + [[b"PING"]]:
            self.sock.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in cmd))
        out = []
        while True:
            frame = self._read()
            if frame == b"+PONG\r\n":
                return out
            out.append(frame)


def invalidate(key: str) -> bytes:
    """The RESP3 ``invalidate`` push of one key."""
    return b">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%s\r\n" % (len(key), key.encode())


def info_fields(conn: Raw, section: str, prefix: str) -> list[bytes]:
    """The INFO ``section`` lines that start with ``prefix``."""
    return [line for line in conn.call("INFO", section).split(b"\r\n") if line.startswith(prefix.encode())]


# ---------------------------------------------------------------- client-side caching


def test_tracking_table_max_keys_config_answers_as_redis(both):
    """``CONFIG GET/SET tracking-table-max-keys`` was unknown (``ERR Unknown option``); it answers as
    in redis-server 7.0: default 1000000, an integer from 0 (no limit) to 2**63 - 1."""
    replies = []
    for port in both:
        conn = Raw(port, 2)
        try:
            replies.append(
                [
                    conn.call("CONFIG", "GET", "tracking-table-max-keys"),
                    conn.call("CONFIG", "SET", "tracking-table-max-keys", "-1"),
                    conn.call("CONFIG", "SET", "tracking-table-max-keys", "1k"),
                    conn.call("CONFIG", "SET", "tracking-table-max-keys", "9223372036854775808"),
                    conn.call("CONFIG", "SET", "Tracking-Table-Max-Keys", "9223372036854775807"),
                    conn.call("CONFIG", "GET", "tracking-table-*"),
                    conn.call("CONFIG", "SET", "tracking-table-max-keys", "0"),
                    conn.call("CONFIG", "GET", "tracking-table-max-keys"),
                    conn.call("CONFIG", "SET", "tracking-table-max-keys", "1000000"),
                ]
            )
        finally:
            conn.close()
    assert replies[0] == replies[1]
    assert replies[0][0] == b"*2\r\n$23\r\ntracking-table-max-keys\r\n$7\r\n1000000\r\n"


def test_tracking_table_max_keys_invalidates_keys_to_stay_under_it(both):
    """Over ``tracking-table-max-keys`` read keys, the server forgets some before the next command
    and tells their readers (an ``invalidate`` push ahead of that command's reply), as Redis does;
    it did not count them at all. Redis picks the keys at random, kvb the ones read longest ago."""
    for port in both:
        conn, admin = Conn(port, 3), Raw(port, 2)
        try:
            assert admin.call("MSET", "a", "1", "b", "2", "c", "3") == b"+OK\r\n"
            assert admin.call("CONFIG", "SET", "tracking-table-max-keys", "2") == b"+OK\r\n"
            assert conn.call("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
            for key in "abc":
                assert conn.call("GET", key).startswith(b"$1\r\n")
            pushes = conn.frames()
            assert len(pushes) == 1 and pushes[0] in [invalidate(k) for k in "abc"]
            if port == both[0]:
                assert pushes == [invalidate("a")]
            assert info_fields(conn, "stats", "tracking_total_") == [
                b"tracking_total_keys:2",
                b"tracking_total_items:2",
                b"tracking_total_prefixes:0",
            ]
            assert conn.frames() == []  # at the limit, not over it
            assert admin.call("CONFIG", "SET", "tracking-table-max-keys", "0") == b"+OK\r\n"
            assert conn.call("MGET", "a", "b", "c").startswith(b"*3\r\n")
            assert conn.frames() == []  # 0: no limit
            assert info_fields(conn, "stats", "tracking_total_keys") == [b"tracking_total_keys:3"]
        finally:
            admin.call("CONFIG", "SET", "tracking-table-max-keys", "1000000")
            conn.close()
            admin.close()


def test_info_counts_tracked_keys_items_and_prefixes_as_redis(both):
    """INFO's ``tracking_total_keys`` (keys read by default-mode clients), ``tracking_total_items``
    (key and reader pairs) and ``tracking_total_prefixes`` (BCAST prefixes) were missing."""
    seen = []
    for port in both:
        a, b, c = Conn(port, 3), Conn(port, 3), Conn(port, 2)
        try:
            a.call("CLIENT", "TRACKING", "ON")
            b.call("CLIENT", "TRACKING", "ON")
            c.call("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "x:", "PREFIX", "y:")
            a.call("MGET", "k1", "k2")
            b.call("GET", "k1")
            b.call("SET", "x:1", "v")  # no key of theirs: nothing forgotten
            seen.append(info_fields(a, "clients", "tracking_") + info_fields(a, "stats", "tracking_"))
            a.call("SET", "k2", "v")  # forgotten once changed
            seen.append(info_fields(a, "stats", "tracking_"))
        finally:
            for conn in (a, b, c):
                conn.close()
    assert (
        seen[0]
        == seen[2]
        == [
            b"tracking_clients:3",
            b"tracking_total_keys:2",
            b"tracking_total_items:3",
            b"tracking_total_prefixes:2",
        ]
    )
    assert seen[1] == seen[3]


def test_tracking_table_max_keys_is_applied_while_no_command_comes(both):
    """As Redis's cron does, the server brings the table under a lowered limit within about 100 ms
    even while no client sends anything."""
    for port in both:
        conn, admin = Conn(port, 3), Raw(port, 2)
        try:
            assert conn.call("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
            assert conn.call("MGET", "a", "b", "c") == b"*3\r\n_\r\n_\r\n_\r\n"
            assert admin.call("CONFIG", "SET", "tracking-table-max-keys", "1") == b"+OK\r\n"
            conn.sock.settimeout(2)
            pushes = sorted(conn._read() for _ in range(2))  # unasked: no command was sent
            assert pushes in (
                [invalidate("a"), invalidate("b")],
                [invalidate("a"), invalidate("c")],
                [invalidate("b"), invalidate("c")],
            )
            assert info_fields(admin, "stats", "tracking_total_keys") == [b"tracking_total_keys:1"]
        finally:
            admin.call("CONFIG", "SET", "tracking-table-max-keys", "1000000")
            conn.close()
            admin.close()


# ---------------------------------------------------------------- blocking commands


def _send(conn: Raw, *args: str) -> None:
    """Send a command without reading its reply."""
    words = [a.encode() for a in args]
    conn.sock.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words))


@pytest.mark.parametrize(
    "change",
    [
        ["DEL", "s"],
        ["SET", "s", "x"],
        ["RENAME", "s", "s2"],
        ["FLUSHALL"],
        ["XGROUP", "DESTROY", "s", "g"],
        ["PEXPIRE", "s", "60"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_blocked_xreadgroup_is_told_its_stream_or_group_is_gone(both, change):
    """A client blocked in XREADGROUP whose stream is deleted (or overwritten, renamed away) gets
    Redis's ``UNBLOCKED the stream key no longer exists``, and one whose group is destroyed
    ``NOGROUP the consumer group this client was blocked on no longer exists``; kvb answered
    XREADGROUP's NOGROUP for a missing key (WRONGTYPE for an overwritten one), so a consumer
    could not tell its stream had been deleted as it can against Redis, and one whose stream
    expired waited for ever."""
    replies = []
    for port in both:
        reader, admin = Raw(port, 2), Raw(port, 2)
        try:
            assert admin.call("XGROUP", "CREATE", "s", "g", "$", "MKSTREAM") == b"+OK\r\n"
            reader.sock.settimeout(5)
            _send(reader, "XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", "s", ">")
            wait_blocked(admin)
            admin.call(*change)
            replies.append(reader._read())
        finally:
            reader.close()
            admin.close()
    assert replies[0] == replies[1]
    assert replies[0].startswith(b"-NOGROUP the consumer" if change[0] == "XGROUP" else b"-UNBLOCKED")


def test_in_process_blocked_xreadgroup_is_told_its_stream_is_gone(tmp_path, monkeypatch):
    """``Structures.xreadgroup(block=0)`` waiting on a stream that another thread deletes raises
    the same UNBLOCKED error (it raised XREADGROUP's NOGROUP for a missing key)."""
    from kv_backend.structures import CommandError, Structures

    st = Structures(str(tmp_path / "store"))
    try:
        st.xgroup_create("s", "g", "$", mkstream=True)
        waiting = note_waits(monkeypatch, st.db)
        outcome: dict = {}

        def read() -> None:
            try:
                outcome["reply"] = st.xreadgroup("g", "c", {"s": ">"}, block=0)
            except CommandError as exc:
                outcome["error"] = str(exc)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        assert waiting.wait(10), outcome
        st.delete("s")
        thread.join(5)
        assert outcome == {"error": "UNBLOCKED the stream key no longer exists"}
    finally:
        st.close()


# ---------------------------------------------------------------- CLIENT KILL


def test_client_kill_filter_given_twice_keeps_the_last(both):
    """``CLIENT KILL ID a ID b`` kills b, as in Redis, where a filter given again replaces the
    earlier one; kvb applied both (no client has two ids), so it killed nobody."""
    for port in both:
        admin, first, second = Raw(port, 2), Raw(port, 2), Raw(port, 2)
        try:
            ids = [c.call("CLIENT", "ID")[1:-2].decode() for c in (first, second)]
            assert admin.call("CLIENT", "KILL", "ID", ids[0], "ID", ids[1]) == b":1\r\n"
            assert first.call("PING") == b"+PONG\r\n"
            addr = first.call("CLIENT", "INFO").split(b" addr=")[1].split(b" ")[0].decode()
            kill = ["CLIENT", "KILL", "ADDR", "1.2.3.4:5", "ADDR", addr, "TYPE", "pubsub", "TYPE", "normal"]
            assert admin.call(*kill) == b":1\r\n"
            assert first.file.read() == b""  # closed
        finally:
            for conn in (admin, first, second):
                conn.close()


# ---------------------------------------------------------------- several servers on one store


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    """Two ``kvb serve`` processes on one directory: their ports."""
    path = str(tmp_path_factory.mktemp("review11-two") / "store")
    servers = []
    for _ in range(2):
        server = RunningServer(path)
        servers.append(server.start())
    yield [s.port for s in servers]
    for server in servers:
        assert server.stop() == 0


def test_a_read_sees_another_servers_transaction_whole_or_not_at_all(two_servers):
    """``MGET a ... b`` on one server while another server runs ``MULTI; INCR a; INCR b; EXEC``
    over and over must find ``a == b``, since each command is atomic (docs/redis.md). A read-only
    command took no lock, and caught up with the other process's writes half-way: it read ``a``
    before a transaction and ``b`` after it (15 reads out of 20 here)."""
    writer, reader = Raw(two_servers[0], 2), Raw(two_servers[1], 2)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            for cmd in (["MULTI"], ["INCR", "a"], ["INCR", "b"], ["EXEC"]):
                writer.call(*cmd)

    thread = threading.Thread(target=write, daemon=True)
    try:
        writer.call("SET", "a", "0")
        writer.call("SET", "b", "0")
        thread.start()
        keys = ["a", *(f"k{i}" for i in range(2000)), "b"]
        seen = []
        for _ in range(10):
            parts = reader.call("MGET", *keys).split(b"\r\n")
            seen.append((parts[2], parts[-2]))
        assert [(a, b) for a, b in seen if a != b] == []
    finally:
        stop.set()
        thread.join(5)
        writer.close()
        reader.close()


# ---------------------------------------------------------------- Structures in-process


def test_structures_huge_counts_and_counters_raise_kv_errors(tmp_path):
    """A Python int past 2**63 - 1 as ZPOPMIN's count (Python ints "clamp any size" for counts,
    docs of parse_index) raised islice's ValueError, and as a group's entries-read or a stream's
    entries-added struct.error: neither a KVError. The count now pops everything, as any count
    past the set's size does; the counters are Redis's "value is not an integer or out of range"
    (they are long longs there)."""
    from kv_backend.errors import KVError, NotAnIntegerError
    from kv_backend.structures import Structures

    st = Structures(str(tmp_path / "store"))
    try:
        st.zadd("z", {"a": 1, "b": 2, "c": 3})
        assert st.zpopmin("z", 2**70) == [(b"a", 1.0), (b"b", 2.0), (b"c", 3.0)]
        st.zadd("z", {"a": 1, "b": 2})
        assert st.zpopmax("z", 2**64) == [(b"b", 2.0), (b"a", 1.0)]
        st.zadd("z", {"a": 1})
        assert st.zmpop(["z"], "min", 2**70) == (b"z", [(b"a", 1.0)])
        st.xadd("x", {"f": "v"}, "1-1")
        st.xgroup_create("x", "g", "0")
        calls = [
            lambda: st.xgroup_create("x", "g2", "0", entries_read=2**63),
            lambda: st.xgroup_setid("x", "g", "0", entries_read=2**70),
            lambda: st.xsetid("x", "5-5", entries_added=2**63),
        ]
        for call in calls:
            with pytest.raises(NotAnIntegerError, match=r"^ERR value is not an integer or out of range$"):
                call()
        assert st.xinfo_stream("x")["entries-added"] == 1
        assert [g["name"] for g in st.xinfo_groups("x")] == [b"g"]
        assert issubclass(NotAnIntegerError, KVError)
    finally:
        st.close()


def test_structures_lmove_reads_its_ends_as_lmove_does(tmp_path):
    """``Structures.lmove`` took any word but "LEFT" for RIGHT: ``b"left"`` (names and values may
    be bytes everywhere else) popped the last element, a typo such as "lfet" pushed at the tail.
    It now reads LEFT/RIGHT in any case, str or bytes, and refuses anything else as LMOVE does."""
    from kv_backend.structures import CommandError, Structures

    st = Structures(str(tmp_path / "store"))
    try:
        st.rpush("l", "a", "b", "c")
        assert st.lmove("l", "d", b"left", b"LEFT") == b"a"
        assert st.lmove("l", "d", "Left", b"right") == b"b"
        assert st.lrange("l", 0, -1) == [b"c"] and st.lrange("d", 0, -1) == [b"a", b"b"]
        for ends in [("lfet", "left"), ("left", "middle"), (b"", "left"), (1, "left")]:
            with pytest.raises(CommandError, match=r"^ERR syntax error$"):
                st.lmove("l", "d", *ends)
            with pytest.raises(CommandError, match=r"^ERR syntax error$"):
                st.lmove("missing", "d", *ends)  # checked first, as Redis parses before it looks
        assert st.lrange("l", 0, -1) == [b"c"] and st.lrange("d", 0, -1) == [b"a", b"b"]
    finally:
        st.close()


def test_structures_scan_takes_its_type_as_bytes_too(tmp_path):
    """``Structures.scan(type=b"hash")`` (bytes, as every name and option may be elsewhere)
    matched no type and so found nothing, silently; it now finds the hashes, as ``type="hash"``."""
    from kv_backend.structures import Structures

    st = Structures(str(tmp_path / "store"))
    try:
        st.hset("h", {"f": "v"})
        st.set("s", "v")
        assert st.scan(0, type=b"hash") == st.scan(0, type="HASH") == (0, [b"h"])
        assert list(st.iter_keys(b"*", b"string")) == [b"s"]
        assert st.scan(0, type=b"nosuchtype") == (0, [])
    finally:
        st.close()


def test_structures_memory_usage_negative_samples_is_a_kv_error(tmp_path):
    """``memory_usage(name, samples=-1)`` raised a bare ValueError, outside kv_backend.errors; it
    is a CommandError now (still a ValueError)."""
    from kv_backend.structures import CommandError, Structures

    st = Structures(str(tmp_path / "store"))
    try:
        st.set("s", "v")
        with pytest.raises(CommandError, match=r"^ERR samples must be 0 \(all\) or more$"):
            st.memory_usage("s", samples=-1)
    finally:
        st.close()


# ---------------------------------------------------------------- transactions


def test_a_refused_exec_discards_the_transaction_as_redis(both):
    """An EXEC refused before it runs (``EXEC x``, or sent in RESP2 subscribe mode) answers
    ``EXECABORT Transaction discarded because of: <why>`` and discards the transaction, as Redis
    does; kvb answered the bare error and kept the transaction, so the next EXEC ran into
    ``EXECABORT ... previous errors`` where Redis answers ``EXEC without MULTI``."""
    replies = []
    for port in both:
        conn = Raw(port, 2)
        try:
            steps = [
                ["WATCH", "w"],
                ["MULTI"],
                ["SET", "a", "1"],
                ["EXEC", "x"],
                ["EXEC"],
                ["GET", "a"],
                ["SUBSCRIBE", "c"],
                ["EXEC"],
            ]
            replies.append([conn.call(*step) for step in steps])
        finally:
            conn.close()
    assert replies[0] == replies[1]
    assert replies[0][3] == (
        b"-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n"
    )
    assert replies[0][7].startswith(b"-EXECABORT Transaction discarded because of: Can't execute 'exec'")


def test_resp2_subscriber_may_not_send_hello_or_auth(both):
    """docs/redis.md: "RESP2 clients in subscribe mode may only (un)subscribe, PING, QUIT and
    RESET", as in Redis; kvb let HELLO and AUTH through as well."""
    replies = []
    for port in both:
        conn = Raw(port, 2)
        try:
            conn.call("SUBSCRIBE", "c")
            replies.append([conn.call("HELLO", "3"), conn.call("AUTH", "pw"), conn.call("PING")])
        finally:
            conn.close()
    assert replies[0] == replies[1]
    assert replies[0][0] == (
        b"-ERR Can't execute 'hello': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
        b"are allowed in this context\r\n"
    )


def test_tracking_items_count_is_kept_not_summed():
    """INFO's tracking_total_items is kept up to date as keys are read, changed, forgotten over the
    limit or flushed (it was a sum over the whole table at each INFO, which stalls a server whose
    clients read a million keys); it must always equal that sum."""
    from kv_backend.server.tracking import ClientTracking, Tracking

    class Client:
        resp3 = True

        def __init__(self, cid: int) -> None:
            self.id, self.tracking, self.tracking_out = cid, ClientTracking(), []

        def in_subscribe_mode(self) -> bool:
            return False

    class Server:
        clients = {cid: Client(cid) for cid in range(1, 6)}

    tracking = Tracking(Server())  # type: ignore[arg-type]
    rng = random.Random(11)
    for _ in range(3000):
        op = rng.random()
        if op < 0.6:
            keys = [b"k%d" % rng.randint(0, 50) for _ in range(rng.randint(1, 3))]
            tracking.remember(Server.clients[rng.randint(1, 5)], keys)  # type: ignore[arg-type]
        elif op < 0.9:
            tracking.invalidate([b"k%d" % rng.randint(0, 50)], None)
        elif op < 0.98:
            tracking.max_keys = rng.randint(0, 30)
            tracking.limit()
        elif op < 0.99:
            tracking.flush_all()
        else:
            tracking.close()
        assert tracking.counts()[1] == sum(len(ids) for ids in tracking.table.values())


def test_bgsave_takes_only_schedule(both):
    """``BGSAVE x`` answered "Background saving started"; Redis answers a syntax error for any
    argument but SCHEDULE."""
    replies = []
    for port in both:
        conn = Raw(port, 2)
        try:
            replies.append([conn.call("BGSAVE", "x"), conn.call("BGSAVE", "schedule", "x")])
        finally:
            conn.close()
    assert replies[0] == replies[1] == [b"-ERR syntax error\r\n"] * 2
