"""``kvb serve`` against redis-server 7.0 where earlier reviews did not look: WATCH of a key another
process changed and changed back, ...

Two servers serve one directory (``kvb``, ``kvb2``), as behind a load balancer; a ``Structures`` of
the test process on the same directory is "another process" too.
"""

from __future__ import annotations

import time

import pytest
import redis
from resp_helpers import Raw, RunningServer

from kv_backend.structures import Structures


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two ``kvb serve`` on one new directory: ``{"kvb": port, "kvb2": port, "path": directory}``."""
    base = tmp_path_factory.mktemp("review12")
    path = str(base / "store")
    first = RunningServer(path, unixsocket=str(base / "kvb.sock")).start()
    second = RunningServer(path).start()
    try:
        yield {"kvb": first.port, "kvb2": second.port, "path": path, "sock": first.unixsocket}
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


@pytest.fixture
def pair(two):
    """A client of each server, the store emptied first."""
    a, b = redis.Redis(port=two["kvb"]), redis.Redis(port=two["kvb2"])
    a.flushall()
    yield a, b
    a.close()
    b.close()


# ---------------------------------------------------------------- WATCH across processes


CHANGED_AND_UNDONE = {
    "set-back": ([("SET", "k", "1")], [("SET", "k", "2"), ("SET", "k", "1")]),
    "incr-decr": ([("SET", "k", "1")], [("INCR", "k"), ("DECR", "k")]),
    "del-set": ([("SET", "k", "1")], [("DEL", "k"), ("SET", "k", "1")]),
    "expire-persist": ([("SET", "k", "1")], [("EXPIRE", "k", "100"), ("PERSIST", "k")]),
    "hash-recreated": ([("HSET", "k", "f", "v")], [("DEL", "k"), ("HSET", "k", "f", "v")]),
    "list-push-pop": ([("RPUSH", "k", "a")], [("RPUSH", "k", "b"), ("RPOP", "k")]),
    "set-add-rem": ([("SADD", "k", "a")], [("SADD", "k", "b"), ("SREM", "k", "b")]),
    # docs/redis.md: a list element or a score overwritten by another process is seen
    "lset-back": ([("RPUSH", "k", "a")], [("LSET", "k", "0", "b"), ("LSET", "k", "0", "a")]),
    "zadd-score": ([("ZADD", "k", "1", "m")], [("ZADD", "k", "2", "m")]),
    "zincrby": ([("ZADD", "k", "1", "m")], [("ZINCRBY", "k", "1", "m")]),
    "hset-two-fields": ([("HSET", "k", "f", "1", "g", "1")], [("HSET", "k", "f", "2", "g", "2")]),
}


@pytest.mark.parametrize("case", sorted(CHANGED_AND_UNDONE))
def test_watch_sees_another_server_change_a_key_and_change_it_back(pair, case):
    """docs/redis.md, WATCH: a change another server made and undid between WATCH and EXEC went
    unseen (the metadata record at EXEC was compared with the one at WATCH by content), where
    redis-server fails the EXEC; every write of the record is a new record, and that is seen."""
    a, b = pair
    setup, meanwhile = CHANGED_AND_UNDONE[case]
    for cmd in setup:
        a.execute_command(*cmd)
    with a.pipeline() as p:
        p.watch("k")
        for cmd in meanwhile:
            b.execute_command(*cmd)
        p.multi()
        p.set("done", 1)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert a.get("done") is None


def test_watch_sees_an_in_process_user_change_a_key_and_change_it_back(pair, two):
    a, _ = pair
    a.set("k", "1")
    with Structures(two["path"]) as st, a.pipeline() as p:
        p.watch("k")
        assert st.incr("k") == 2 and st.decr("k") == 1
        p.multi()
        p.set("done", 1)
        with pytest.raises(redis.WatchError):
            p.execute()


def test_watch_of_a_key_nobody_changed_still_runs(pair):
    """The record's position, not only its content: a read of another server (which may catch up
    with the store) or a write of another key must not fail the EXEC."""
    a, b = pair
    a.set("k", "1")
    a.hset("h", "f", "v")
    with a.pipeline() as p:
        p.watch("k", "h", "missing")
        assert b.get("k") == b"1" and b.hgetall("h") == {b"f": b"v"}
        b.set("other", 2)
        p.multi()
        p.set("done", 1)
        assert p.execute() == [True]


@pytest.mark.parametrize(
    "change",
    [
        ("HSET", "k", "f", "2"),
        ("HSET", "k", "f", "1"),
        ("HINCRBY", "k", "f", "1"),
        ("HINCRBYFLOAT", "k", "f", "1"),
    ],
    ids=["hset", "hset-same-value", "hincrby", "hincrbyfloat"],
)
def test_watch_sees_another_server_overwrite_one_hash_field(pair, change):
    """One existing hash field overwritten by another server writes only that field's record (the
    metadata stays as it was) and went unseen; redis-server fails the EXEC. The log written
    since WATCH is searched for the hash's field records (nothing more on the write's path)."""
    a, b = pair
    a.hset("k", mapping={"f": "1", "g": "1"})
    a.hset("other", "f", "1")
    with a.pipeline() as p:
        p.watch("k")
        b.hset("other", "f", "2")  # another hash's field is no change of this one
        b.execute_command(*change)
        p.multi()
        p.set("done", 1)
        with pytest.raises(redis.WatchError):
            p.execute()


def test_watch_of_a_hash_whose_fields_nobody_wrote_still_runs(pair):
    a, b = pair
    a.hset("k", "f", "1")
    a.hset("k2", "f", "1")  # a name that k's field records' prefix is not a prefix of
    with a.pipeline() as p:
        p.watch("k")
        b.hset("k2", "f", "2")
        b.hset("kk", "f", "2")
        assert b.hget("k", "f") == b"1"
        p.multi()
        p.set("done", 1)
        assert p.execute() == [True]


@pytest.mark.parametrize("how", ["set-del", "set-px", "expired-then-set-del"])
def test_watch_sees_another_server_create_a_missing_key_and_remove_it_again(pair, how):
    """A key missing at WATCH and at EXEC that another server created and removed in between
    went unseen (no record to compare); redis-server fails the EXEC. The log written since
    WATCH is searched for the key's creation."""
    a, b = pair
    if how == "expired-then-set-del":
        a.set("k", 1, px=1)
        time.sleep(0.005)
    with a.pipeline() as p:
        p.watch("k")
        b.set("other", 1)
        # (an expiry long enough to be stored: one past before the write lands stores nothing)
        b.set("k", 1, px=30 if how == "set-px" else None)
        b.set("other", 2)
        if how == "set-px":
            deadline = time.monotonic() + 2
            while b.exists("k") and time.monotonic() < deadline:
                time.sleep(0.005)
        else:
            b.delete("k")
        p.multi()
        p.set("done", 1)
        with pytest.raises(redis.WatchError):
            p.execute()


def test_watch_of_a_missing_key_others_did_not_create_still_runs(pair):
    """Nor is a missing key changed by writes of other keys, nor (as in Redis) by the removal of
    its expired record, which another server's read does."""
    a, b = pair
    a.set("k", 1, px=1)
    time.sleep(0.005)
    with a.pipeline() as p:
        p.watch("k", "never")
        b.set("other", 1)
        assert b.get("k") is None  # removes the expired key's records
        b.delete("never")
        p.multi()
        p.set("done", 1)
        assert p.execute() == [True]


def test_a_merge_between_watch_and_exec_fails_the_exec(pair, two):
    """docs/redis.md, WATCH: a merge moves every record, so the EXEC fails (a spurious failure,
    never a missed change)."""
    a, _ = pair
    a.set("k", "1")
    with Structures(two["path"]) as st, a.pipeline() as p:
        p.watch("k")
        st.db.merge(wait=True)
        p.multi()
        p.set("done", 1)
        with pytest.raises(redis.WatchError):
            p.execute()


# ---------------------------------------------------------------- the script cache across servers


def test_a_script_loaded_on_one_server_runs_by_sha_on_another(pair):
    """SCRIPT LOAD on one ``kvb serve`` answered NOSCRIPT to EVALSHA on another serving the same
    directory (behind a load balancer, redis-py's ``Script`` reloads on one connection and calls on
    another): SCRIPT LOAD keeps the script in the store, where every server finds it."""
    a, b = pair
    a.script_flush()
    sha = a.script_load("return 'hi ' .. ARGV[1]")
    assert b.script_exists(sha) == [True]
    assert b.evalsha(sha, 0, "there") == b"hi there"
    assert b.execute_command("EVALSHA_RO", sha.upper(), 0, "x") == b"hi x"
    script = b.register_script("return 'hi ' .. ARGV[1]")  # redis-py's Script: EVALSHA first
    assert script(args=["you"]) == b"hi you"


def test_script_flush_on_one_server_flushes_every_server(pair):
    """As on one Redis server: after SCRIPT FLUSH no server runs a script by its SHA1 any more, nor
    says it exists, whether it was loaded with SCRIPT LOAD or cached by EVAL."""
    a, b = pair
    loaded = a.script_load("return 1")
    assert b.evalsha(loaded, 0) == 1
    assert b.eval("return 2", 0) == 2
    evaled = b.script_load("return 2")
    a.script_flush()
    assert b.script_exists(loaded, evaled) == [False, False]
    assert a.script_exists(loaded, evaled) == [False, False]
    for client in (a, b):
        with pytest.raises(redis.exceptions.NoScriptError):
            client.evalsha(loaded, 0)
    assert b.script_load("return 1") == loaded and a.evalsha(loaded, 0) == 1


def test_a_script_only_evaluated_stays_in_its_server(pair):
    """docs/redis.md: EVAL caches its script in its own server only (nothing is written to the
    store for it), as redis-server's cache is not shared either."""
    a, b = pair
    a.script_flush()
    assert a.eval("return 3", 0) == 3
    sha = a.script_load("return 3")
    a.script_flush()
    assert a.eval("return 3", 0) == 3
    assert a.script_exists(sha) == [True] and b.script_exists(sha) == [False]


# ---------------------------------------------------------------- HELLO, CLIENT SETINFO


def _raw(port: int, *args: bytes | str) -> bytes:
    """One command on a new connection: its raw reply."""
    conn = Raw(port, 2)
    try:
        return conn.call(*args)
    finally:
        conn.close()


@pytest.mark.parametrize("name", ["a b", "a\nb", "\x7f"])
def test_hello_setname_refuses_what_client_setname_refuses(two, name):
    """``HELLO 3 SETNAME "a b"`` named the connection with a space in it, which breaks every
    CLIENT LIST parser (fields are separated by spaces); redis-server refuses it as CLIENT SETNAME
    does, and nothing else of the HELLO happens."""
    conn = Raw(two["kvb"], 2)
    try:
        refused = b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n"
        assert conn.call("HELLO", "3", "SETNAME", name) == refused
        assert conn.call("CLIENT", "GETNAME") == b"$-1\r\n"  # still RESP2, no name
    finally:
        conn.close()


def test_hello_setname_empty_removes_the_name(two):
    """As CLIENT SETNAME "" does (and redis-server's HELLO): GETNAME answered an empty string."""
    conn = Raw(two["kvb"], 2)
    try:
        assert conn.call("CLIENT", "SETNAME", "x") == b"+OK\r\n"
        assert conn.call("HELLO", "2", "SETNAME", "").startswith(b"*")
        assert conn.call("CLIENT", "GETNAME") == b"$-1\r\n"
    finally:
        conn.close()


@pytest.mark.parametrize("attr", ["lib-name", "LIB-VER"])
def test_client_setinfo_refuses_values_that_break_client_list(two, attr):
    """``CLIENT SETINFO lib-name "x name=admin"`` was taken, and CLIENT LIST then showed a forged
    ``name=admin`` field; Redis 7.2 refuses such a value as it refuses such a client name."""
    conn = Raw(two["kvb"], 2)
    try:
        refused = f"-ERR {attr} cannot contain spaces, newlines or special characters.\r\n".encode()
        assert conn.call("CLIENT", "SETINFO", attr, "x name=admin") == refused
        assert conn.call("CLIENT", "SETINFO", attr, "a\nb") == refused
        assert conn.call("CLIENT", "SETINFO", attr, "redis-py(x_y)") == b"+OK\r\n"
        info = conn.call("CLIENT", "INFO")
        assert f" {attr.lower()}=redis-py(x_y)".encode() in info and b"name=admin" not in info
    finally:
        conn.close()


def test_hello_before_auth_answers_redis_noauth_text(tmp_path):
    """The NOAUTH reply of a HELLO without AUTH on a server with a password stopped half-way
    through redis-server 7.0's sentence."""
    server = RunningServer(str(tmp_path / "store"), requirepass="pw").start()
    try:
        assert _raw(server.port, "HELLO", "3") == (
            b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO"
            b" AUTH <user> <pass> option can be used to authenticate the client and select the RESP"
            b" protocol version at the same time\r\n"
        )
        assert _raw(server.port, "HELLO", "2", "SETNAME", "a b").startswith(b"-ERR Client names cannot")
    finally:
        assert server.stop() == 0


# ---------------------------------------------------------------- keyspace notifications


def test_an_expiry_is_reported_by_the_server_that_removed_the_key_only(pair):
    """docs/redis.md, keyspace notifications: with two servers on one directory, the ``expired``
    event of a key goes to the subscribers of the server that removed it, not to the other's
    (which the docs said would report it too)."""
    a, b = pair
    b.config_set("notify-keyspace-events", "Ex")
    subs = [client.pubsub() for client in (a, b)]
    try:
        for sub in subs:
            sub.subscribe("__keyevent@0__:expired")
            assert sub.get_message(timeout=1)["type"] == "subscribe"
        b.set("gone", 1, px=30)  # (long enough to be stored: one past before the write stores nothing)
        deadline = time.monotonic() + 2
        while b.get("gone") is not None and time.monotonic() < deadline:  # b removes it, reports it
            time.sleep(0.005)
        assert subs[1].get_message(timeout=1)["data"] == b"gone"
        a.config_set("notify-keyspace-events", "Ex")  # a's sweep, from now on, finds nothing
        assert subs[0].get_message(timeout=0.25) is None
    finally:
        for sub in subs:
            sub.close()
        for client in (a, b):
            client.config_set("notify-keyspace-events", "")


# ---------------------------------------------------------------- CLIENT LIST flags


def _flags(port: int, name: str) -> str:
    """The ``flags`` field of the CLIENT LIST line of the client named ``name``."""
    for line in _raw(port, "CLIENT", "LIST").decode().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("name") == name:
            return fields["flags"]
    raise AssertionError(f"no client named {name}")


def test_client_list_flags_are_redis_flags_in_redis_order(two):
    """CLIENT LIST showed ``N`` for a MONITOR client (Redis: ``O``), for one whose watched key
    another client changed (``d``) and for one after CLIENT NO-EVICT on (``e``; NO-TOUCH: Redis
    7.2's ``T``) or on the unix socket (``U``), and ``xP`` for a RESP3 subscriber in MULTI
    (Redis: ``Px``)."""
    port = two["kvb"]
    clients = {name: Raw(port, 3 if name == "sub" else 2) for name in ("mon", "dirty", "sub", "noev")}
    try:
        for name, conn in clients.items():
            assert conn.call("CLIENT", "SETNAME", name) == b"+OK\r\n"
        assert clients["mon"].call("MONITOR") == b"+OK\r\n"
        assert clients["dirty"].call("WATCH", "w") == b"+OK\r\n"
        assert _raw(port, "SET", "w", "1") == b"+OK\r\n"
        clients["sub"].call("SUBSCRIBE", "ch")
        assert clients["sub"].call("MULTI") == b"+OK\r\n"
        for word in ("NO-EVICT", "NO-TOUCH"):
            assert clients["noev"].call("CLIENT", word, "on") == b"+OK\r\n"
        assert clients["noev"].call("MULTI") == b"+OK\r\n"
        expected = {"mon": "O", "dirty": "d", "sub": "Px", "noev": "xeT"}
        assert {name: _flags(port, name) for name in clients} == expected
        assert clients["noev"].call("DISCARD") == b"+OK\r\n"
        assert clients["noev"].call("CLIENT", "NO-TOUCH", "off") == b"+OK\r\n"
        assert clients["noev"].call("RESET") == b"+RESET\r\n"  # as redis-server 7.0: NO-EVICT stays
        assert clients["noev"].call("CLIENT", "SETNAME", "noev") == b"+OK\r\n"
        assert _flags(port, "noev") == "e"
    finally:
        for conn in clients.values():
            conn.close()
    with redis.Redis(unix_socket_path=two["sock"]) as local:
        local.client_setname("local")
        assert _flags(port, "local") == "U"


# ---------------------------------------------------------------- Structures input


def test_structures_linsert_refuses_a_non_utf8_position_with_its_syntax_error(tmp_path):
    """``Structures.linsert(name, b"\\xff", ...)`` raised UnicodeDecodeError (not a KVError); it
    is ``ERR syntax error`` as for any other word than BEFORE or AFTER."""
    from kv_backend.structures import CommandError

    with Structures(str(tmp_path / "store")) as st:
        st.rpush("l", "a")
        for where in (b"\xff", b"before\xff"):
            with pytest.raises(CommandError, match="syntax error"):
                st.linsert("l", where, "a", "b")
        assert st.linsert("l", b"BEFORE", "a", "b") == 2


def test_created_since_reads_the_log_across_files_and_gives_up_past_its_budget(tmp_path):
    """``Structures.created_since`` (EXEC's test for a watched key missing then and now): the
    creation is found in any data file written since the mark; deletions and other keys are no
    creation; past its byte budget, or after a merge, it answers True without looking."""
    path = str(tmp_path / "store")
    with Structures(path, max_file_size=4096) as mine, Structures(path, max_file_size=4096) as other:
        mark = mine.watch_mark()
        assert not mine.created_since("k", mark)
        for i in range(100):  # several files
            other.set(f"filler{i}", "x" * 100)
        other.delete("k")
        assert not mine.created_since("k", mark)
        assert len({fid for fid in mine.db._fidx if fid[0] >= mark[1] >> 40}) > 2
        other.set("k", 1)
        other.delete("k")
        for i in range(100):
            other.set(f"filler{i}", "y" * 100)
        assert mine.created_since("k", mark)
        assert not mine.created_since("k", mine.watch_mark())
        other.set("k", 1)
        other.delete("k")
        assert mine.created_since("k", mark, most=1000)  # too far to read: True, unread
        mark = mine.watch_mark()
        other.db.merge(wait=True)
        assert mine.created_since("k", mark)
