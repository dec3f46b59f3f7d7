"""kvb serve's BGSAVE fsyncs the store in a thread, as redis-server saves in a child: it is answered at
once, other clients are served while the fsync runs, a second one meanwhile gets Redis's error, and
LASTSAVE and INFO persistence change when it ends (a failed one reported as Redis reports a failed
bgsave). A server stopped meanwhile (SHUTDOWN, SIGTERM, SIGKILL) loses nothing and does not hang.

The child server's DB.sync calls say first on which thread they run on a pipe ("T": a worker, "L":
the event loop's); those off the event loop's thread then wait at a gate the test opens (another pipe):
a fsync as slow as the test wants, deterministically. An "f" through the gate makes that one fail."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gate_helpers import GatedServer, serving
from helpers import (
    free_port,
    require_tool,
    start_own_server,
    stop_process,
    wait_for,
)
from resp_helpers import Raw, start_redis_server

from kv_backend.structures import Structures

#: kvb serve whose DB.sync calls say where they run on one pipe, and those made off the event loop's
#: thread (the main one) wait for a byte on another first: b"f" makes that one fail.
_SERVE_WITH_A_GATE = (
    "import os, sys, threading\n"
    "from kv_backend import DB\n"
    "from kv_backend.errors import StorageError\n"
    "gate, said = int(os.environ['KVB_TEST_GATE']), int(os.environ['KVB_TEST_SAID'])\n"
    "real = DB.sync\n"
    "def gated(self):\n"
    "    on_loop = threading.current_thread() is threading.main_thread()\n"
    "    os.write(said, b'L' if on_loop else b'T')\n"
    "    if not on_loop and os.read(gate, 1) == b'f':\n"
    "        raise StorageError('cannot fsync: Input/output error (the test says so)')\n"
    "    return real(self)\n"
    "DB.sync = gated\n"
    "if os.environ.get('KVB_TEST_MAX_FILE'):\n"  # (small data files: rotations under the fsyncs)
    "    init = DB.__init__\n"
    "    def small(self, *args, **kwargs):\n"
    "        kwargs['max_file_size'] = int(os.environ['KVB_TEST_MAX_FILE'])\n"
    "        init(self, *args, **kwargs)\n"
    "    DB.__init__ = small\n"
    "from kv_backend.cli import main\n"
    "sys.exit(main(['serve', *sys.argv[1:]]))\n"
)
#: Seconds within which a command of another client is answered while the fsync waits at the gate.
QUICK = 1.0
STARTED = b"+Background saving started\r\n"
IN_PROGRESS = b"-ERR Background save already in progress\r\n"


class Gated(GatedServer):
    """kvb serve with the gate (on DB.sync), its log in a file."""

    def __init__(self, tmp: Path, max_file_size: int | None = None) -> None:
        super().__init__()
        self.tmp = tmp
        self.max_file_size = max_file_size
        self.store = str(tmp / "store")
        self.log = tmp / "serve.log"

    def start(self) -> None:
        env = self.gate_env()
        if self.max_file_size:
            env["KVB_TEST_MAX_FILE"] = str(self.max_file_size)

        def launch() -> tuple[subprocess.Popen, list[int]]:
            port = free_port()
            cmd = [sys.executable, "-c", _SERVE_WITH_A_GATE, "--dir", self.store, "--port", str(port)]
            with open(self.log, "ab") as log:
                fds = (self.gate_r, self.said_w)
                proc = subprocess.Popen(cmd, env=env, pass_fds=fds, stdout=subprocess.DEVNULL, stderr=log)
            return proc, [port]

        self.proc, (self.port,) = start_own_server(launch)  # (on a port of its own: see start_own_server)


@pytest.fixture
def server(tmp_path) -> Iterator[Gated]:
    yield from serving(Gated(tmp_path))


def persistence(raw: Raw) -> dict[str, str]:
    text = raw.call("INFO", "persistence").decode()
    return dict(re.findall(r"^(\w+):(.*)\r$", text, re.M))


def lastsave(raw: Raw) -> int:
    reply = raw.call("LASTSAVE")
    assert reply.startswith(b":"), reply
    return int(reply[1:-2])


def has_ended(info: dict[str, str], saves: int) -> bool:
    """Whether INFO persistence ``info`` says ``saves`` saves began, and none runs."""
    return (info["rdb_saves"], info["rdb_bgsave_in_progress"]) == (str(saves), "0")


def bgsave_ended(raw: Raw) -> None:
    wait_for(lambda: persistence(raw)["rdb_bgsave_in_progress"] == "0", 30, "the BGSAVE's end")


def test_others_are_served_while_the_fsync_runs_and_lastsave_changes_when_it_ends(server):
    saver, pinger = server.client(), server.client()
    before = lastsave(pinger)
    assert persistence(pinger)["rdb_last_save_time"] == str(before)
    t = time.monotonic()
    assert saver.call("BGSAVE") == STARTED  # at once: the fsync waits at the gate
    assert time.monotonic() - t < QUICK
    assert server.said() == b"T", "the fsync ran on the event loop"
    waits = []
    for _ in range(20):
        t = time.monotonic()
        assert pinger.call("PING") == b"+PONG\r\n"
        waits.append(time.monotonic() - t)
    assert max(waits) < QUICK, f"PING waited {max(waits):.3f} s for another client's BGSAVE"
    info = persistence(pinger)
    assert info["rdb_bgsave_in_progress"] == "1"
    assert int(info["rdb_current_bgsave_time_sec"]) >= 0  # (seconds it has run)
    assert info["rdb_last_bgsave_time_sec"] == "-1"
    assert info["rdb_saves"] == "1"
    # while it runs: Redis's error for another, SCHEDULE too (Redis 7.0), and for SAVE
    assert saver.call("BGSAVE") == IN_PROGRESS
    assert saver.call("BGSAVE", "SCHEDULE") == IN_PROGRESS
    assert saver.call("SAVE") == IN_PROGRESS
    wait_for(lambda: int(time.time()) > before, 5, "the next second")
    assert lastsave(pinger) == before  # not before it ends
    server.open_gate()
    bgsave_ended(pinger)
    after = lastsave(pinger)
    assert after > before
    info = persistence(pinger)
    assert (info["rdb_last_save_time"], info["rdb_last_bgsave_status"]) == (str(after), "ok")
    assert info["rdb_current_bgsave_time_sec"] == "-1"
    assert 0 <= int(info["rdb_last_bgsave_time_sec"]) <= after - before
    assert saver.call("BGSAVE", "SCHEDULE") == STARTED  # (none runs: started at once, as Redis)
    assert server.said() == b"T"
    server.open_gate()
    bgsave_ended(pinger)
    assert persistence(pinger)["rdb_saves"] == "2"
    assert pinger.call("CONFIG", "RESETSTAT") == b"+OK\r\n"
    assert persistence(pinger)["rdb_saves"] == "0"


def test_a_failed_fsync_is_reported_as_redis_reports_a_failed_bgsave(server):
    raw = server.client()
    before = lastsave(raw)
    wait_for(lambda: int(time.time()) > before, 5, "the next second")
    assert raw.call("BGSAVE") == STARTED
    assert server.said() == b"T"
    server.open_gate(b"f")
    bgsave_ended(raw)
    info = persistence(raw)
    assert info["rdb_last_bgsave_status"] == "err"
    assert info["rdb_last_save_time"] == str(before)
    assert lastsave(raw) == before  # (a failed save is not one)
    wait_for(lambda: b"background saving error" in server.log.read_bytes(), 10, "the error logged")
    assert b"Input/output error (the test says so)" in server.log.read_bytes()
    assert raw.call("BGSAVE") == STARTED  # another may begin, and succeed
    assert server.said() == b"T"
    server.open_gate()
    bgsave_ended(raw)
    assert persistence(raw)["rdb_last_bgsave_status"] == "ok"
    assert lastsave(raw) > before


def test_save_fsyncs_on_the_loop_and_is_a_save(server):
    raw = server.client()
    before = lastsave(raw)
    wait_for(lambda: int(time.time()) > before, 5, "the next second")
    assert raw.call("SAVE") == b"+OK\r\n"
    assert server.said() == b"L"
    assert lastsave(raw) > before
    assert persistence(raw)["rdb_saves"] == "1"


def test_inside_exec_it_is_scheduled_and_begins_after(server):
    raw = server.client()
    replies = raw.pipeline([("MULTI",), ("BGSAVE",), ("EXEC",)])
    assert replies == [b"+OK\r\n", b"+QUEUED\r\n", b"*1\r\n+Background saving scheduled\r\n"]
    assert server.said() == b"T"
    assert persistence(raw)["rdb_bgsave_in_progress"] == "1"
    replies = raw.pipeline([("MULTI",), ("BGSAVE",), ("EXEC",)])
    assert replies == [b"+OK\r\n", b"+QUEUED\r\n", b"*1\r\n" + IN_PROGRESS]
    server.open_gate()
    bgsave_ended(raw)
    assert persistence(raw)["rdb_saves"] == "1"


def write_keys(raw: Raw, n: int) -> None:
    replies = raw.pipeline([("SET", f"k{i}", f"v{i}") for i in range(n)])
    assert replies == [b"+OK\r\n"] * n


def assert_all_kept(store: str, n: int) -> None:
    with Structures(store) as st:
        assert {k: st.get(k) for k in st.keys(b"*")} == {f"k{i}".encode(): f"v{i}".encode() for i in range(n)}


@pytest.mark.parametrize("how", ["SHUTDOWN", "SIGTERM"])
def test_a_stop_while_the_fsync_runs_ends_promptly_and_loses_nothing(server, how):
    raw, other = server.client(), server.client()
    write_keys(raw, 300)
    assert raw.call("BGSAVE") == STARTED
    assert server.said() == b"T"
    write_keys(other, 300)  # (more writes beside the fsync under way)
    assert server.proc is not None
    t = time.monotonic()
    if how == "SHUTDOWN":
        raw.sock.sendall(b"*1\r\n$8\r\nSHUTDOWN\r\n")
    else:
        server.proc.terminate()
    assert server.said() == b"L", "the close did not fsync the store"  # (its own, on the main thread)
    assert server.proc.wait(20) == 0  # the fsync at the gate is not waited for
    assert time.monotonic() - t < 10
    assert raw.file.read() == b""
    log = server.log.read_bytes()
    assert b"closing the store while a background save runs: not waited for" in log
    assert_all_kept(server.store, 300)


def test_sigkill_while_the_fsync_runs_loses_nothing(server):
    raw = server.client()
    write_keys(raw, 300)
    assert raw.call("BGSAVE") == STARTED
    assert server.said() == b"T"
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    assert server.proc.wait(20) == -signal.SIGKILL
    assert_all_kept(server.store, 300)


def test_bgsaves_beside_writes_and_rotations_lose_and_damage_nothing(tmp_path):
    """A BGSAVE before each of 20 batches of writes of another client, 4 MiB into 64 KiB data files (some
    60 rotations, files sealed under a running fsync): every fsync succeeds, and after a SIGKILL the
    store opens whole, with every key."""
    server = Gated(tmp_path, max_file_size=64 * 1024)
    try:
        server.start()
        server.open_gate(b"x" * 4096)  # (the fsyncs go through at once)
        writer, saver = server.client(), server.client()
        value, saves = "v" * 1024, 0
        for batch in range(20):  # each batch written while the fsync a BGSAVE began runs, if it still does
            reply = saver.call("BGSAVE")
            assert reply in (STARTED, IN_PROGRESS), reply
            saves += reply == STARTED
            replies = writer.pipeline([("SET", f"k{batch}-{i}", value) for i in range(200)])
            assert replies == [b"+OK\r\n"] * 200
        bgsave_ended(writer)
        assert 1 <= saves == int(persistence(writer)["rdb_saves"])
        assert persistence(writer)["rdb_last_bgsave_status"] == "ok"
        assert b"background saving error" not in server.log.read_bytes()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(20)
        with Structures(server.store) as st:
            assert st.db.stats()["corrupt_records"] == 0
            assert st.dbsize() == 4000
            assert all(st.get(f"k{b}-{i}".encode()) == value.encode() for b in range(20) for i in range(200))
    finally:
        server.stop()


def test_the_replies_are_redis_servers(server, tmp_path):
    """The same commands to redis-server 7.0 (its save slowed by rdb-key-save-delay) and to kvb serve
    (its fsync held at the gate) get the same replies."""
    require_tool("redis-server")
    (tmp_path / "redis").mkdir()
    proc, port = start_redis_server(str(tmp_path / "redis"))
    redis = Raw(port, 2)
    try:
        ours = server.client()
        for raw in (redis, ours):
            assert raw.call("SET", "k", "v") == b"+OK\r\n"
        assert redis.call("CONFIG", "SET", "rdb-key-save-delay", "2000000") == b"+OK\r\n"  # (2 s a key)
        script = [
            ("BGSAVE", "NOW"),
            ("BGSAVE", "SCHEDULE", "x"),
            ("BGSAVE",),
            ("BGSAVE",),
            ("BGSAVE", "SCHEDULE"),
            ("SAVE",),
            ("MULTI",),
            ("BGSAVE",),
            ("EXEC",),
            ("MULTI",),
            ("SAVE",),
            ("EXEC",),
        ]
        theirs = redis.pipeline(script)
        mine = ours.pipeline(script)
        assert mine == theirs
        assert mine[3] == IN_PROGRESS
        assert server.said() == b"T"
        assert persistence(ours)["rdb_bgsave_in_progress"] == "1"  # (redis-server's said so: IN_PROGRESS)
        assert redis.call("CONFIG", "SET", "rdb-key-save-delay", "0") == b"+OK\r\n"
        server.open_gate()
        for raw in (redis, ours):
            bgsave_ended(raw)
        for raw in (redis, ours):
            assert raw.call("MULTI") == b"+OK\r\n"
            assert raw.call("BGSAVE") == b"+QUEUED\r\n"
        assert ours.call("EXEC") == redis.call("EXEC") == b"*1\r\n+Background saving scheduled\r\n"
        assert server.said() == b"T"
        server.open_gate()
        for raw in (redis, ours):  # (redis-server begins the scheduled one in its next cron run)
            wait_for(lambda r=raw: has_ended(persistence(r), saves=2), 30, "the scheduled BGSAVE's end")
        theirs_info, mine_info = persistence(redis), persistence(ours)
        rdb = [k for k in mine_info if k.startswith("rdb_")]
        assert rdb == [k for k in theirs_info if k in rdb]  # (in Redis's order)
        for field in ("rdb_bgsave_in_progress", "rdb_last_bgsave_status", "rdb_current_bgsave_time_sec"):
            assert mine_info[field] == theirs_info[field], field
        assert lastsave(ours) == int(mine_info["rdb_last_save_time"])
        assert lastsave(redis) == int(theirs_info["rdb_last_save_time"])
    finally:
        redis.close()
        stop_process(proc)
