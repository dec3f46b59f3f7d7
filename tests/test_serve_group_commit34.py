"""``kvb serve --appendfsync always`` commits in groups, as redis-server does: the writes of one
event-loop turn are fsynced once, after every command of that turn ran, and no byte of that turn's
output (a reply, even a read's, a pub/sub message, a blocked client's answer, a close after QUIT)
leaves before that fsync. A turn that wrote nothing sends at once and fsyncs nothing. A failed fsync
closes the connections whose replies it covered, and writes are refused (MISCONF) until an fsync
succeeds.

The server runs here in-process, on asyncio's and uvloop's event loops, its connections given
transports that record what is sent, next to the engine's fsyncs (``db_write.fsync_file``)."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from test_fsync_failure_refuses_writes32 import FailingFsync

from kv_backend import db_write
from kv_backend.server import resp
from kv_backend.server.groupcommit import HeldTransport

LOOPS = ["asyncio"]
try:
    import uvloop

    LOOPS.append("uvloop")
except ImportError:  # pragma: no cover
    uvloop = None


class Wire:
    """A connection's transport that records, in the shared ``events``, what it is given."""

    def __init__(self, events: list[tuple[Any, ...]], name: str) -> None:
        self.events = events
        self.name = name
        self.closed = False

    def write(self, data: bytes) -> None:
        self.events.append(("write", self.name, bytes(data)))

    def close(self) -> None:
        self.closed = True
        self.events.append(("close", self.name))

    def abort(self) -> None:
        self.closed = True
        self.events.append(("abort", self.name))

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 6379) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def command(*args: str | bytes) -> bytes:
    """One command, as a client sends it."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class Harness:
    """A server with ``--appendfsync always`` and its recording connections."""

    def __init__(self, path: str, events: list[tuple[Any, ...]]) -> None:
        self.server = resp.Server(path, appendfsync="always")
        self.events = events
        self.conns: dict[str, resp.Connection] = {}

    def connect(self, name: str) -> resp.Connection:
        conn = resp.Connection(self.server)
        conn.connection_made(Wire(self.events, name))  # type: ignore[arg-type]
        self.conns[name] = conn
        return conn

    def send(self, name: str, *commands: bytes) -> None:
        self.conns[name].data_received(b"".join(commands))

    async def settle(self) -> None:
        """Let the loop run until the commands sent ran and their output went out."""
        for _ in range(6):
            await asyncio.sleep(0)

    def sent(self, name: str) -> bytes:
        return b"".join(e[2] for e in self.events if e[0] == "write" and e[1] == name)


def run(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop_name == "uvloop":
        assert uvloop is not None
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        runner.run(main())


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What happened, in order: ("fsync",) for each fsync of a data file, and the transports' writes."""
    recorded: list[tuple[Any, ...]] = []
    real = db_write.fsync_file

    def fsync(fd: int) -> None:
        real(fd)
        recorded.append(("fsync",))

    monkeypatch.setattr(db_write, "fsync_file", fsync)
    return recorded


def fsyncs(events: list[tuple[Any, ...]]) -> int:
    return sum(1 for e in events if e[0] == "fsync")


@pytest.mark.parametrize("loop_name", LOOPS)
def test_replies_of_a_turn_that_wrote_leave_after_its_one_fsync(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            h.connect("writer")
            h.connect("reader")
            assert h.server.db.sync_mode == "never"  # (the server makes the fsyncs)
            assert isinstance(h.conns["writer"].transport, HeldTransport)
            h.send("writer", command("SET", "k", "v"))
            h.send("reader", command("GET", "k"))  # (a read after the write, in the same turn)
            await h.settle()
            kinds = [e[0] for e in events]
            assert kinds == ["fsync", "write", "write"], events
            assert h.sent("writer") == b"+OK\r\n" and h.sent("reader") == b"$1\r\nv\r\n"
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_many_clients_pipelining_writes_in_one_turn_cost_one_fsync(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            names = [f"c{i}" for i in range(20)]
            for name in names:
                h.connect(name)
            for name in names:
                h.send(name, *(command("SET", f"{name}:{j}", "x") for j in range(10)))
            await h.settle()
            assert fsyncs(events) == 1
            assert events[0] == ("fsync",)
            for name in names:
                assert h.sent(name) == b"+OK\r\n" * 10
            assert h.server.group_commit is not None and not h.server.group_commit.held
            # the next turn's writes: one fsync more
            for name in names:
                h.send(name, command("INCR", "n"))
            await h.settle()
            assert fsyncs(events) == 2
            assert h.server.st.get(b"n") == b"20"
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_read_only_turn_sends_at_once_and_fsyncs_nothing(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            h.connect("a")
            h.connect("b")
            h.send("a", command("SET", "k", "v"))
            await h.settle()
            before = fsyncs(events)
            assert before == 1
            h.send("a", command("GET", "k"), command("PING"))
            h.send("b", command("EXISTS", "k"))
            h.server.flush()  # (the turn's commands: their replies are not held)
            assert h.sent("a") == b"+OK\r\n$1\r\nv\r\n+PONG\r\n" and h.sent("b") == b":1\r\n"
            await h.settle()
            assert fsyncs(events) == before
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_write_with_no_reply_is_fsynced_in_its_turn(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            h.connect("a")
            h.send("a", command("CLIENT", "REPLY", "OFF"), command("SET", "k", "v"))
            await h.settle()
            assert fsyncs(events) == 1 and h.sent("a") == b""
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_failed_fsync_closes_the_connections_it_covered_then_writes_get_misconf(
    store_path: str, monkeypatch: pytest.MonkeyPatch, loop_name: str
) -> None:
    fsync = FailingFsync(monkeypatch)

    async def main() -> None:
        events: list[tuple[Any, ...]] = []
        h = Harness(store_path, events)
        try:
            for name in ("writer", "reader", "idle", "later"):
                h.connect(name)
            h.send("writer", command("SET", "k", "v"))
            await h.settle()
            assert h.sent("writer") == b"+OK\r\n"
            events.clear()
            fsync.on = True
            h.send("writer", command("SET", "k", "lost?"))
            h.send("reader", command("GET", "k"))
            await h.settle()
            # the replies that fsync covered are not sent: their connections are dropped
            assert sorted(events) == [("abort", "reader"), ("abort", "writer")]
            assert fsync.failed >= 1
            # writes are refused until an fsync succeeds; reads are served
            h.send("later", command("SET", "k", "refused"))
            await h.settle()
            assert (
                h.sent("later")
                == b"-MISCONF Errors writing to the AOF file: %s\r\n" % os.strerror(errno.EIO).encode()
            )
            h.send("idle", command("INFO", "persistence"))
            await h.settle()
            assert b"aof_last_write_status:err" in h.sent("idle")
            fsync.on = False
            events.clear()
            h.send("later", command("SET", "k", "again"), command("GET", "k"))
            await h.settle()
            assert h.sent("later").endswith(b"+OK\r\n$5\r\nagain\r\n")
            h.send("idle", command("INFO", "persistence"))
            await h.settle()
            assert b"aof_last_write_status:ok" in h.sent("idle")
            assert not h.server.db.sync_failed_at
        finally:
            fsync.on = False
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_blocked_transactions_scripts_pubsub_and_quit_answer_after_the_fsync(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            for name in ("popper", "pusher", "tx", "script", "sub", "quitter"):
                h.connect(name)
            h.send("popper", command("BLPOP", "list", "0"))
            h.send("sub", command("SUBSCRIBE", "ch"))
            await h.settle()
            assert h.sent("popper") == b""
            events.clear()
            h.send("pusher", command("LPUSH", "list", "x"))
            h.send("tx", command("MULTI"), command("INCR", "n"), command("INCR", "n"), command("EXEC"))
            h.send("script", command("EVAL", "redis.call('SET', KEYS[1], ARGV[1]) return 7", "1", "s", "v"))
            h.send("quitter", command("SET", "q", "1"), command("PUBLISH", "ch", "hello"), command("QUIT"))
            await h.settle()
            assert events[0] == ("fsync",) and fsyncs(events) == 1, events
            assert h.sent("popper") == b"*2\r\n$4\r\nlist\r\n$1\r\nx\r\n"
            assert h.sent("pusher") == b":1\r\n"
            assert h.sent("tx") == b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:2\r\n"
            assert h.sent("script") == b":7\r\n"
            assert h.sent("sub").endswith(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$5\r\nhello\r\n")
            assert h.sent("quitter") == b"+OK\r\n:1\r\n+OK\r\n"
            closes = [i for i, e in enumerate(events) if e == ("close", "quitter")]
            replies = [i for i, e in enumerate(events) if e[:2] == ("write", "quitter")]
            assert closes and replies and closes[0] > replies[-1]
            assert h.server.st.get(b"s") == b"v" and h.server.st.get(b"n") == b"2"
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_failed_save_makes_writes_refused_until_an_fsync_succeeds(
    store_path: str, monkeypatch: pytest.MonkeyPatch, loop_name: str
) -> None:
    fsync = FailingFsync(monkeypatch)

    async def main() -> None:
        events: list[tuple[Any, ...]] = []
        h = Harness(store_path, events)
        try:
            h.connect("a")
            h.send("a", command("SET", "k", "v"))
            await h.settle()
            fsync.on = True
            h.send("a", command("SAVE"))
            await h.settle()
            assert h.sent("a").startswith(b"+OK\r\n-ERR ")
            assert h.server.db.sync_failed_at is not None
            events.clear()
            h.send("a", command("SET", "k", "refused"), command("GET", "k"))
            await h.settle()
            assert h.sent("a").startswith(b"-MISCONF Errors writing to the AOF file: ")
            assert h.sent("a").endswith(b"$1\r\nv\r\n")
            fsync.on = False
            events.clear()
            h.send("a", command("SET", "k", "taken"))
            await h.settle()
            assert h.sent("a") == b"+OK\r\n" and h.server.db.sync_failed_at is None
        finally:
            fsync.on = False
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_monitor_lines_and_tracking_invalidations_leave_after_the_fsync(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            for name in ("monitor", "tracker", "writer"):
                h.connect(name)
            h.send("writer", command("SET", "k", "v"))
            h.send("monitor", command("MONITOR"))
            h.send("tracker", command("HELLO", "3"), command("CLIENT", "TRACKING", "ON"), command("GET", "k"))
            await h.settle()
            events.clear()
            h.send("writer", command("SET", "k", "changed"))
            await h.settle()
            assert events[0] == ("fsync",) and fsyncs(events) == 1, events
            assert b'"SET" "k" "changed"' in h.sent("monitor")
            assert h.sent("tracker") == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
            assert h.sent("writer") == b"+OK\r\n"
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_that_half_closes_gets_its_held_replies_then_the_close(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            conn = h.connect("a")
            h.send("a", command("SET", "k", "v"), command("GET", "k"))
            assert conn.eof_received() is True  # (its commands are queued: closed once they ran)
            await h.settle()
            assert events == [("fsync",), ("write", "a", b"+OK\r\n$1\r\nv\r\n"), ("close", "a")]
            events.clear()
            conn = h.connect("b")
            h.send("b", command("SET", "k", "w"))
            h.server.flush()  # (its reply held: the end of its input comes before the commit)
            assert conn.eof_received() is True
            await h.settle()
            assert events == [("fsync",), ("write", "b", b"+OK\r\n"), ("close", "b")]
        finally:
            h.server.close()

    run(loop_name, main)


@pytest.mark.parametrize("loop_name", LOOPS)
def test_the_expired_keys_sweep_is_fsynced_before_its_events_are_sent(
    store_path: str, events: list[tuple[Any, ...]], loop_name: str
) -> None:
    async def main() -> None:
        h = Harness(store_path, events)
        try:
            h.connect("sub")
            h.connect("writer")
            h.send("writer", command("CONFIG", "SET", "notify-keyspace-events", "Ex"))
            h.send("sub", command("SUBSCRIBE", "__keyevent@0__:expired"))
            h.send("writer", command("SET", "gone", "v", "PX", "300"))
            await h.settle()
            events.clear()
            for _ in range(500):  # (the sweep runs every 0.1 s; the key expires 0.3 s after the set)
                await asyncio.sleep(0.01)
                if h.sent("sub").endswith(b"$4\r\ngone\r\n"):
                    break
            sent = [i for i, e in enumerate(events) if e[:2] == ("write", "sub")]
            assert sent and events[0] == ("fsync",) and sent[0] > 0, events
            assert h.server.group_commit is not None and not h.server.group_commit.holding()
            # with nobody told, the sweep's deletions are fsynced in its turn all the same
            h.send("sub", command("UNSUBSCRIBE"))
            h.send("writer", command("SET", "gone2", "v", "PX", "300"))
            await h.settle()
            events.clear()
            for _ in range(500):
                await asyncio.sleep(0.01)
                if fsyncs(events):
                    break
            assert events == [("fsync",)]
            assert not h.server.group_commit.holding()
        finally:
            h.server.close()

    run(loop_name, main)
