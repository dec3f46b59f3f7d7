"""Review of kvb serve's work moved off its event loop today: a CONFIG SET of TLS files built in a
thread (kv_backend.server.tlsreload.Changes) and BGSAVE's fsync in a thread (kv_backend.server.bgsave).

A thread that cannot be started (Python's "can't start new thread": a process or cgroup limit on
tasks, as systemd's TasksMax, or no memory for its stack) must cost one command at most, never wedge
the server's queue of TLS changes or its BGSAVE state.

The tests after those hold the clients' lifecycle around a CONFIG SET whose files are being read, as
guards (they passed before these changes too): the waiting client killed, commands pipelined behind it
(MULTI, HELLO 3, QUIT), SHUTDOWN from another client, its slow log entry, the query buffer limit, a
script running long meanwhile.

The child servers are those of test_tls_reload_loop26 and test_bgsave26 (a gate holds the threads'
work until the test opens it), with threads of the names given in KVB_TEST_NO_THREAD refused to start
as Python refuses them, KVB_TEST_NO_THREAD_TIMES times (then started as usual)."""

from __future__ import annotations

import io
import re
import select
import sys
import threading
from collections.abc import Iterator

import pytest
import test_bgsave26
import test_tls_reload_loop26
from gate_helpers import serving
from helpers import wait_for
from resp_helpers import Raw
from test_tls_reload_loop26 import client_id, config_get, nothing_to_read, pair, send
from tls_helpers import Certs, der, served_cert

from kv_backend.server.resp import Server

#: Put ahead of a gated server's script: its threads named in KVB_TEST_NO_THREAD fail to start.
_NO_THREAD = (
    "import os\n"
    "import kv_backend.server.bgsave as _bgsave, kv_backend.server.loading as _loading\n"
    "_refused = os.environ.get('KVB_TEST_NO_THREAD', '').split(',')\n"
    "_times = [int(os.environ.get('KVB_TEST_NO_THREAD_TIMES', '1'))]\n"
    "def _patch(module):\n"
    "    real = module.start_daemon_thread\n"
    "    def start(target, name, args=()):\n"
    "        if name in _refused and _times[0] > 0:\n"
    "            _times[0] -= 1\n"
    '            raise RuntimeError("can\'t start new thread")\n'
    "        return real(target, name, args)\n"
    "    module.start_daemon_thread = start\n"
    "_patch(_bgsave)\n"
    "_patch(_loading)\n"
)
#: Seconds a reply may take where the server answers at once (a wedged one never answers).
PROMPT = 10.0


def reply_within(raw: Raw, seconds: float = PROMPT) -> bytes | None:
    """The next reply, or None if none comes within ``seconds``."""
    ready, _, _ = select.select([raw.sock], [], [], seconds)
    if not ready:  # (the replies before were read whole: nothing of the next one is buffered)
        return None
    return raw._read()


def _no_thread(monkeypatch, module, names: str, times: int = 1) -> None:
    monkeypatch.setattr(module, "_SERVE_WITH_A_GATE", _NO_THREAD + module._SERVE_WITH_A_GATE)
    monkeypatch.setenv("KVB_TEST_NO_THREAD", names)
    monkeypatch.setenv("KVB_TEST_NO_THREAD_TIMES", str(times))


@pytest.fixture
def tls_server_no_thread(tmp_path, certs, monkeypatch) -> Iterator[test_tls_reload_loop26.Gated]:
    _no_thread(monkeypatch, test_tls_reload_loop26, "kvb-tls-settings")
    yield from serving(test_tls_reload_loop26.Gated(), tmp_path, certs)


@pytest.fixture
def bgsave_server_no_thread(tmp_path, monkeypatch) -> Iterator[test_bgsave26.Gated]:
    _no_thread(monkeypatch, test_bgsave26, "kvb-bgsave")
    yield from serving(test_bgsave26.Gated(tmp_path))


def rotate(certs: Certs) -> tuple[str, ...]:
    return ("CONFIG", "SET", "tls-cert-file", certs.cert, "tls-key-file", certs.key)


def persistence(raw: Raw) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):(.*)\r$", raw.call("INFO", "persistence").decode(), re.M))


# ------------------------------------------------------------------ a thread that cannot start


def test_a_tls_change_whose_thread_cannot_start_fails_and_the_next_ones_run(
    tls_server_no_thread, certs, other
):
    # Its files are not read on the event loop (a slow file would hold up every client there): the
    # CONFIG SET fails as one whose files cannot be read, the settings in force stay.
    server = tls_server_no_thread
    setter, watcher = server.client(), server.client()
    send(setter, rotate(other))
    assert reply_within(setter) == (
        b"-ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS "
        b"configuration. Check server logs.\r\n"
    )
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", certs.cert)
    assert served_cert(server.tls_port) == der(certs.cert)
    # the next change has its thread: it runs (nothing is left waiting for the one that had none)
    send(setter, rotate(other))
    assert server.said() == b"T"  # (the first one's files were never read: no "L" before)
    server.open_gate()
    assert reply_within(setter) == b"+OK\r\n"
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", other.cert)
    assert served_cert(server.tls_port) == der(other.cert)


def test_a_bgsave_whose_thread_cannot_start_fails_as_redis_fork_failure_and_the_next_runs(
    bgsave_server_no_thread,
):
    server = bgsave_server_no_thread
    raw = server.client()
    before = int(raw.call("LASTSAVE")[1:-2])
    assert raw.call("BGSAVE") == b"-ERR\r\n"  # (redis-server's reply when it cannot fork)
    info = persistence(raw)
    assert (info["rdb_bgsave_in_progress"], info["rdb_last_bgsave_status"]) == ("0", "err")
    assert info["rdb_current_bgsave_time_sec"] == "-1"
    assert info["rdb_saves"] == "1"  # (as Redis: counted when tried)
    assert int(raw.call("LASTSAVE")[1:-2]) == before
    assert raw.call("SAVE") == b"+OK\r\n"  # nothing left "in progress"
    assert server.said() == b"L"
    assert raw.call("BGSAVE") == test_bgsave26.STARTED
    assert server.said() == b"T"
    server.open_gate()
    test_bgsave26.bgsave_ended(raw)
    assert persistence(raw)["rdb_last_bgsave_status"] == "ok"


def test_a_scheduled_bgsave_whose_thread_cannot_start_leaves_nothing_in_progress(bgsave_server_no_thread):
    server = bgsave_server_no_thread
    raw = server.client()
    assert raw.pipeline([("MULTI",), ("BGSAVE",), ("EXEC",)])[2] == b"*1\r\n+Background saving scheduled\r\n"
    wait_for(lambda: persistence(raw)["rdb_last_bgsave_status"] == "err", PROMPT, "the scheduled one tried")
    assert persistence(raw)["rdb_bgsave_in_progress"] == "0"
    assert raw.call("BGSAVE") == test_bgsave26.STARTED
    assert server.said() == b"T"
    server.open_gate()
    test_bgsave26.bgsave_ended(raw)


# ------------------------------------------------------------------ the log, written from the threads too


class _Writes(io.StringIO):
    """A stderr that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_each_log_line_is_one_write_so_that_the_threads_lines_never_run_together(tmp_path, monkeypatch):
    """The TLS settings' thread logs (a CA directory's files skipped) while the event loop logs: a line
    written in two writes (its text, then its newline, as print writes) ran into another thread's line
    ("kvb serve: ...kvb serve: ...", then an empty line): about 1 line in 4,000 of two threads' logging."""
    server = Server(str(tmp_path / "store"), loading=True)
    err = _Writes()
    monkeypatch.setattr(sys, "stderr", err)
    server.log("one line")
    server.log("another")
    assert err.writes == ["kvb serve: one line\n", "kvb serve: another\n"]
    err = _Writes()
    monkeypatch.setattr(sys, "stderr", err)
    done = threading.Event()

    def other() -> None:
        for i in range(2000):
            server.log(f"thread {i}")
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    for i in range(2000):
        server.log(f"loop {i}")
    thread.join()
    assert done.is_set()
    lines = err.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 4001
    assert all(re.fullmatch(r"kvb serve: (thread|loop) \d+", line) for line in lines[:-1])


# ------------------------------------------------------------------ guards: the waiting client's lifecycle


@pytest.fixture
def tls_server(tmp_path, certs) -> Iterator[test_tls_reload_loop26.Gated]:
    yield from serving(test_tls_reload_loop26.Gated(), tmp_path, certs)


def read_to_end(raw: Raw) -> bytes:
    """What the server sends until it closes the connection."""
    out = b""
    while True:
        try:
            chunk = raw.file.read1(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def in_force(raw: Raw, certs: Certs) -> bool:
    return config_get(raw, "tls-cert-file") == pair("tls-cert-file", certs.cert)


def test_client_kill_of_the_waiting_client_closes_it_and_its_change_is_still_put_in_force(tls_server, other):
    setter, killer = tls_server.client(), tls_server.client()
    setter_id = client_id(setter)
    send(setter, rotate(other), ("PING",))
    assert tls_server.said() == b"T"
    assert killer.call("CLIENT", "KILL", "ID", str(setter_id)) == b":1\r\n"
    assert read_to_end(setter) == b""  # closed, unanswered (its PING never runs)
    tls_server.open_gate()
    wait_for(lambda: in_force(killer, other), PROMPT, "the change in force")
    assert served_cert(tls_server.tls_port) == der(other.cert)


def test_multi_hello_3_and_quit_pipelined_behind_run_in_order_once_it_is_answered(tls_server, other):
    setter = tls_server.client()
    behind = [("MULTI",), ("SET", "k", "v"), ("EXEC",), ("HELLO", "3"), ("PING",), ("QUIT",)]
    send(setter, rotate(other), *behind)
    assert tls_server.said() == b"T"
    assert nothing_to_read(setter)
    tls_server.open_gate()
    out = read_to_end(setter)
    assert out.startswith(b"+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n%"), out  # then HELLO's map
    assert out.endswith(b"+PONG\r\n+OK\r\n"), out  # RESP3 from HELLO on; QUIT closes


def test_shutdown_from_another_client_does_not_wait_for_the_read(tls_server, other):
    setter, stopper = tls_server.client(), tls_server.client()
    send(setter, rotate(other))
    assert tls_server.said() == b"T"
    send(stopper, ("SHUTDOWN",))  # the read never ends (the gate stays shut)
    assert tls_server.proc is not None
    assert tls_server.proc.wait(20) == 0
    assert read_to_end(setter) == b""  # closed unanswered: nothing was put in force


def test_its_slow_log_entry_is_one_with_the_passphrase_redacted(tls_server, other):
    setter, watcher = tls_server.client(), tls_server.client()
    assert watcher.call("CONFIG", "SET", "slowlog-log-slower-than", "0") == b"+OK\r\n"
    send(setter, (*rotate(other), "tls-key-file-pass", "not-the-secret"))
    assert tls_server.said() == b"T"
    tls_server.open_gate()
    assert setter._read() == b"+OK\r\n"
    log = watcher.call("SLOWLOG", "GET", "-1")
    assert log.count(b"tls-cert-file") == 1
    assert b"not-the-secret" not in log and b"(redacted)" in log


def test_a_waiting_client_over_the_query_buffer_limit_is_closed_and_its_change_still_made(tls_server, other):
    setter, watcher = tls_server.client(), tls_server.client()
    assert watcher.call("CONFIG", "SET", "client-query-buffer-limit", "1mb") == b"+OK\r\n"
    send(setter, rotate(other))
    assert tls_server.said() == b"T"
    value = b"x" * 65536
    big = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%b\r\n" % (len(value), value)
    try:
        for _ in range(40):  # 2.6 MB of commands held behind the CONFIG SET
            setter.sock.sendall(big)
    except OSError:
        pass  # (closed by the server: as redis-server, over client-query-buffer-limit)
    assert read_to_end(setter) == b""
    tls_server.open_gate()
    wait_for(lambda: in_force(watcher, other), PROMPT, "the change in force")
    assert watcher.call("EXISTS", "k") == b":0\r\n"  # none of what it held ran


def test_a_script_running_long_holds_the_reply_until_it_ends(tls_server, other):
    setter, scripter, watcher = tls_server.client(), tls_server.client(), tls_server.client()
    assert watcher.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
    send(setter, rotate(other))
    assert tls_server.said() == b"T"
    send(scripter, ("EVAL", "while true do end", "0"))
    wait_for(lambda: watcher.call("PING").startswith(b"-BUSY"), PROMPT, "the script running long")
    tls_server.open_gate()  # built meanwhile: put in force on the event loop, once the script ends
    assert reply_within(setter, 0.5) is None
    assert watcher.call("SCRIPT", "KILL") == b"+OK\r\n"
    assert scripter._read().startswith(b"-ERR Script killed by user with SCRIPT KILL")
    assert reply_within(setter) == b"+OK\r\n"
    assert in_force(watcher, other)
