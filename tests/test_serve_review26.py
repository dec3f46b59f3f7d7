"""Review of kvb serve's work moved off its event loop today: a CONFIG SET of TLS files built in a
thread (kv_backend.server.tlsreload.Changes) and BGSAVE's fsync in a thread (kv_backend.server.bgsave).

A thread that cannot be started (Python's "can't start new thread": a process or cgroup limit on
tasks, as systemd's TasksMax, or no memory for its stack) must cost one command at most, never wedge
the server's queue of TLS changes or its BGSAVE state.

The child servers are those of test_tls_reload_loop26 and test_bgsave26 (a gate holds the threads'
work until the test opens it), with threads of the names given in KVB_TEST_NO_THREAD refused to start
as Python refuses them, KVB_TEST_NO_THREAD_TIMES times (then started as usual)."""

from __future__ import annotations

import re
import select
from collections.abc import Iterator

import pytest
import test_bgsave26
import test_tls_reload_loop26
from helpers import wait_for
from resp_helpers import Raw
from test_tls_reload_loop26 import config_get, der, pair, send, served_cert
from tls_helpers import Certs

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
    if not ready and not raw.file.peek(0):
        return None
    return raw._read()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other(tmp_path_factory) -> Certs:
    return Certs(tmp_path_factory.mktemp("other"))


def _no_thread(monkeypatch, module, names: str, times: int = 1) -> None:
    monkeypatch.setattr(module, "_SERVE_WITH_A_GATE", _NO_THREAD + module._SERVE_WITH_A_GATE)
    monkeypatch.setenv("KVB_TEST_NO_THREAD", names)
    monkeypatch.setenv("KVB_TEST_NO_THREAD_TIMES", str(times))


@pytest.fixture
def tls_server_no_thread(tmp_path, certs, monkeypatch) -> Iterator[test_tls_reload_loop26.Gated]:
    _no_thread(monkeypatch, test_tls_reload_loop26, "kvb-tls-settings")
    gated = test_tls_reload_loop26.Gated()
    try:
        gated.start(tmp_path, certs)
        yield gated
    finally:
        gated.stop()


@pytest.fixture
def bgsave_server_no_thread(tmp_path, monkeypatch) -> Iterator[test_bgsave26.Gated]:
    _no_thread(monkeypatch, test_bgsave26, "kvb-bgsave")
    gated = test_bgsave26.Gated(tmp_path)
    try:
        gated.start()
        yield gated
    finally:
        gated.stop()


def rotate(certs: Certs) -> tuple[str, ...]:
    return ("CONFIG", "SET", "tls-cert-file", certs.cert, "tls-key-file", certs.key)


def persistence(raw: Raw) -> dict[str, str]:
    return dict(re.findall(r"^(\w+):(.*)\r$", raw.call("INFO", "persistence").decode(), re.M))


# ------------------------------------------------------------------ a thread that cannot start


def test_a_tls_change_whose_thread_cannot_start_is_built_on_the_loop_and_the_next_ones_run(
    tls_server_no_thread, certs, other
):
    server = tls_server_no_thread
    setter, watcher = server.client(), server.client()
    send(setter, rotate(other))
    assert server.said() == b"L"  # no thread: read on the event loop, as before, as redis-server
    assert reply_within(setter) == b"+OK\r\n"
    assert served_cert(server.tls_port) == der(other.cert)
    # the next change has its thread: it runs (nothing is left waiting for the one that had none)
    send(setter, rotate(certs))
    assert server.said() == b"T"
    server.open_gate()
    assert reply_within(setter) == b"+OK\r\n"
    assert config_get(watcher, "tls-cert-file") == pair("tls-cert-file", certs.cert)
    assert served_cert(server.tls_port) == der(certs.cert)


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
