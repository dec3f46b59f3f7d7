"""``kvb serve --appendfsync {always,everysec,no}`` fsyncs as redis-server's ``appendfsync`` with
``appendonly yes``: ``everysec`` and ``no`` open the store with the engine's ``sync`` policy (1.0 s,
never); ``always`` opens it with sync="never" and fsyncs each event-loop turn's writes once, before
any reply of that turn is sent (its group commit: see test_serve_group_commit34). CONFIG GET
shows it, CONFIG SET keeps it (naming the option to restart with), INFO persistence says
``aof_last_write_status:err`` while the store refuses writes after a failed fsync, and such a write
is answered ``-MISCONF``, as Redis does."""

from __future__ import annotations

import errno
import os
import signal
import threading

import pytest
import redis
from helpers import run_kvb
from resp_helpers import Raw, RunningServer
from test_fsync_failure_refuses_writes32 import FailingFsync, timer_fails
from test_script_busy19 import UNKILLABLE, _busy, _other, _send

from kv_backend import DB, db_write
from kv_backend.errors import ConfigurationError
from kv_backend.server import resp
from kv_backend.structures import Structures


@pytest.mark.parametrize("policy", ["always", "everysec"])
def test_kvb_serve_takes_writes_under_a_sync_policy_and_shows_it(store_path: str, policy: str) -> None:
    server = RunningServer(store_path, options=["--appendfsync", policy]).start()
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        assert client.set("k", "v") is True
        assert client.incr("n") == 1
        assert client.config_get("appendfsync") == {"appendfsync": policy}
        assert client.config_set("appendfsync", policy.upper()) is True  # (its own value, in any case)
        other = "no" if policy == "always" else "always"
        with pytest.raises(redis.ResponseError, match=f"restart kvb serve with --appendfsync {other}"):
            client.config_set("appendfsync", other)
        with pytest.raises(redis.ResponseError, match="must be one of the following: everysec, always, no"):
            client.config_set("appendfsync", "sometimes")
        assert client.config_get("appendfsync") == {"appendfsync": policy}
        persistence = client.info("persistence")
        assert persistence["aof_enabled"] == 1 and persistence["aof_last_write_status"] == "ok"
        client.close()
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # (killed: what it answered is in the log all the same)
        server.proc.wait(10)
    finally:
        server.stop()
    with DB(store_path, read_only=True) as db:
        st = Structures(db)
        assert st.get(b"k") == b"v" and st.get(b"n") == b"1"


def test_servers_of_one_store_with_different_policies_see_each_others_writes(store_path: str) -> None:
    durable = RunningServer(store_path, options=["--appendfsync", "always"]).start()
    fast = RunningServer(store_path).start()  # (--appendfsync no)
    try:
        a = redis.Redis(port=durable.port, decode_responses=True)
        b = redis.Redis(port=fast.port, decode_responses=True)
        for i in range(20):
            assert a.incr("n") == 2 * i + 1
            assert b.incr("n") == 2 * i + 2
        assert a.config_get("appendfsync") == {"appendfsync": "always"}
        assert b.config_get("appendfsync") == {"appendfsync": "no"}
        a.close()
        b.close()
    finally:
        durable.stop()
        fast.stop()


def test_kvb_serve_opens_the_store_with_no_sync_policy_by_default(store_path: str) -> None:
    server = RunningServer(store_path).start()
    try:
        client = redis.Redis(port=server.port, decode_responses=True)
        assert client.config_get("appendfsync") == {"appendfsync": "no"}
        with pytest.raises(redis.ResponseError, match="restart kvb serve with --appendfsync everysec"):
            client.config_set("appendfsync", "everysec")
        client.close()
    finally:
        server.stop()


def test_a_bad_appendfsync_is_a_usage_error(store_path: str) -> None:
    done = run_kvb("serve", "--dir", store_path, "--port", "0", "--appendfsync", "sometimes", timeout=30)
    assert done.returncode == 2
    assert "--appendfsync: invalid choice: 'sometimes'" in done.stderr
    assert "'always', 'everysec', 'no'" in done.stderr
    assert not os.path.exists(store_path)  # (refused before the store is opened)


def test_the_server_refuses_an_unknown_policy(store_path: str) -> None:
    with pytest.raises(ConfigurationError, match="must be one of always, everysec, no, not 'yes'"):
        resp.Server(store_path, appendfsync="yes")
    assert not os.path.exists(store_path)


@pytest.mark.parametrize(("policy", "sync"), [("always", "never"), ("everysec", 1.0), ("no", "never")])
def test_each_value_opens_the_store_with_its_engine_policy(
    store_path: str, policy: str, sync: object
) -> None:
    # (always: the server fsyncs each event-loop turn's writes itself, see test_serve_group_commit34)
    server = resp.Server(store_path, appendfsync=policy)
    try:
        assert server.db.sync_mode == sync
        assert (server.group_commit is not None) is (policy == "always")
        assert server.config()[b"appendfsync"] == policy.encode()
    finally:
        server.close()


@pytest.mark.parametrize("loading", [False, True])
def test_always_makes_every_writer_s_rotations_durable(store_path: str, loading: bool) -> None:
    """Under --appendfsync always the engine's policy is "never" (the server fsyncs), yet the rotations
    of every writer of the store (this server's, another process's) must fsync the files they close and
    make, and the directory, as under a sync policy: else a data file a rotation made could be lost with
    the writes acknowledged in it."""
    with DB(store_path) as before:  # (the store exists, and no writer of it fsyncs yet)
        before.put(b"k", b"v")
        assert not before._files_must_be_durable()
    server = resp.Server(store_path, appendfsync="always", loading=loading)
    try:
        if loading:  # (as kvb serve opens it, in a thread while it listens)
            server.loaded(*resp._open_and_vacuum(store_path, "never", True)[:2])
        assert server.db._files_must_be_durable()
        with DB(store_path) as other:
            assert other._files_must_be_durable()
    finally:
        server.close()


def _info_status(conn: resp.Connection) -> str:
    text = conn.execute([b"INFO", b"persistence"])
    lines = dict(line.split(":", 1) for line in bytes(text).decode().split("\r\n") if ":" in line)
    return lines["aof_last_write_status"]


def test_always_fsyncs_the_writes_once_at_the_commit_not_in_each_write(
    store_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = db_write.fsync_file

    def counted(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(db_write, "fsync_file", counted)
    server = resp.Server(store_path, appendfsync="always")
    try:
        commit = server.group_commit
        assert commit is not None
        conn = resp.Connection(server)
        for i in range(5):
            conn.execute([b"SET", b"k", str(i).encode()])
        assert calls == []  # (the writes wait for the commit)
        assert commit.holding()
        commit.commit()
        assert len(calls) == 1 and not commit.holding()
        commit.commit()  # nothing written since: no fsync
        assert conn.execute([b"GET", b"k"]) == b"4"
        assert len(calls) == 1 and not commit.holding()
    finally:
        server.close()


def test_a_write_after_a_failed_commit_is_answered_misconf_and_info_says_err(
    store_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = FailingFsync(monkeypatch)
    server = resp.Server(store_path, appendfsync="always")
    try:
        commit = server.group_commit
        assert commit is not None
        conn = resp.Connection(server)
        assert conn.execute([b"SET", b"k", b"v"]) is not None
        commit.commit()
        assert _info_status(conn) == "ok"
        fsync.on = True
        assert conn.execute([b"SET", b"k", b"first"]) == "OK"  # (applied; its reply would wait)
        commit.commit()  # the commit's fsync fails: recorded
        assert _info_status(conn) == "err"
        # ...and the next writes are refused, writing nothing, as Redis answers after a failed fsync.
        reply = conn.execute([b"SET", b"k", b"second"])
        assert reply.message == f"MISCONF Errors writing to the AOF file: {os.strerror(errno.EIO)}"
        assert conn.execute([b"GET", b"k"]) == b"first"  # reads are served
        fsync.on = False
        assert conn.execute([b"SET", b"k", b"third"]) is not None
        assert conn.execute([b"GET", b"k"]) == b"third"
        assert _info_status(conn) == "ok"
        commit.commit()
        assert not commit.holding()
    finally:
        fsync.on = False
        server.close()


def test_always_loses_no_acknowledged_write_of_many_clients_when_killed(store_path: str) -> None:
    server = RunningServer(store_path, options=["--appendfsync", "always"]).start()
    acknowledged: dict[str, list[int]] = {}
    try:

        def client(name: str) -> None:
            c = redis.Redis(port=server.port)
            done = acknowledged.setdefault(name, [])
            try:
                for i in range(40):
                    pipe = c.pipeline(transaction=False)
                    pipe.set(f"{name}:{i}", i)
                    pipe.rpush(f"{name}:list", i)
                    pipe.execute()
                    done.append(i)
            except redis.ConnectionError:
                pass
            finally:
                c.close()

        threads = [threading.Thread(target=client, args=(f"c{n}",)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # (right after the last replies)
        server.proc.wait(10)
    finally:
        server.stop()
    with DB(store_path, read_only=True) as db:
        st = Structures(db)
        for name, done in acknowledged.items():
            assert len(done) == 40
            for i in done:
                assert st.get(f"{name}:{i}".encode()) == str(i).encode()
            assert st.lrange(f"{name}:list".encode(), 0, -1) == [str(i).encode() for i in done]


def test_everysec_answers_misconf_after_its_timer_failed_to_fsync(
    store_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = FailingFsync(monkeypatch)
    server = resp.Server(store_path, appendfsync="everysec")
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"SET", b"k", b"v"]) is not None
        timer_fails(server.db, fsync)  # (about a second: the timer fsyncs a second after the last fsync)
        assert _info_status(conn) == "err"
        reply = conn.execute([b"SET", b"k", b"changed"])
        assert reply.message == f"MISCONF Errors writing to the AOF file: {os.strerror(errno.EIO)}"
        fsync.on = False
        assert conn.execute([b"SET", b"k", b"changed"]) is not None
        assert _info_status(conn) == "ok"
    finally:
        fsync.on = False
        server.close()


def test_always_answers_other_clients_while_a_script_that_wrote_runs_long(store_path: str) -> None:
    # (its writes are not fsynced yet: what other clients are answered meanwhile tells nothing of them)
    server = RunningServer(store_path, options=["--appendfsync", "always"]).start()
    try:
        caller = Raw(server.port, 2)
        assert caller.call("SET", "k", "v") == b"+OK\r\n"
        assert caller.call("CONFIG", "SET", "busy-reply-threshold", "100") == b"+OK\r\n"
        other = _other(server)
        _send(caller, "EVAL", "redis.call('set', 'in', '1') while true do end", "0")
        _busy(other)
        assert other.call("SCRIPT", "KILL") == UNKILLABLE
        _send(other, "SHUTDOWN", "NOSAVE")
        assert server.proc is not None and server.proc.wait(15) == 0
    finally:
        server.stop()
    with DB(store_path, read_only=True) as db:
        st = Structures(db)
        assert st.get(b"k") == b"v" and st.get(b"in") is None
