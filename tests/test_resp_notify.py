"""Keyspace notifications, CONFIG SET/REWRITE and WAIT of ``kvb serve``, compared with a real redis-server."""

from __future__ import annotations

import shlex
import time

import pytest
import redis
from helpers import before_expiry

from kv_backend.structures import Structures


@pytest.fixture
def clients(ports):
    made = [redis.Redis(port=p, socket_timeout=10) for p in ports]
    for c in made:
        c.flushall()
        c.config_set("notify-keyspace-events", "")
    yield made
    for c in made:
        c.config_set("notify-keyspace-events", "")
        c.close()


def events_of(port: int, commands: list[str], flags: str, protocol: int = 2) -> list[str]:
    """Run ``commands`` with ``flags`` on; what a subscriber to every key channel received, per command."""
    r = redis.Redis(port=port, socket_timeout=10)
    r.config_set("notify-keyspace-events", flags)
    sub = redis.Redis(port=port, socket_timeout=10, protocol=protocol).pubsub()
    sub.psubscribe("__key*__:*")
    sub.subscribe("marker")
    for _ in range(2):
        assert sub.get_message(timeout=5) is not None  # the subscribe confirmations
    out = []
    for line in commands:
        words = shlex.split(line)
        if words[0] == "pipeline":  # MULTI/EXEC of the commands after it, split on ';'
            with r.pipeline() as p:
                for part in " ".join(words[1:]).split(";"):
                    p.execute_command(*shlex.split(part))
                p.execute(raise_on_error=False)
        else:
            try:
                r.execute_command(*words)
            except redis.ResponseError:
                pass
        r.publish("marker", line)
        got = []
        while True:
            m = sub.get_message(timeout=5)
            assert m is not None, f"no marker after {line}"
            if m["type"] == "message" and m["channel"] == b"marker":
                break
            got.append(f"{m['channel'].decode()}={m['data'].decode()}")
        out.append(f"{line} -> {' '.join(got)}")
    sub.close()
    r.close()
    return out


EVERY_FAMILY = [
    "set s v",
    "set s v nx",
    "set s w xx ex 100",
    "set s v get",
    "setnx s x",
    "setnx s4 x",
    "setex s5 100 v",
    "psetex s6 100000 v",
    "mset m1 a m2 b m1 c",
    "msetnx m1 a m9 b",
    "msetnx m10 a m11 b",
    "getset s x",
    "getdel s",
    "getdel nosuch",
    "getex s5 ex 50",
    "getex s5 persist",
    "getex s5 persist",
    "getex m1 pxat 1",
    "append a x",
    "append a ''",
    "setrange a 5 z",
    "setrange a 0 ''",
    "incr n",
    "incrby n 0",
    "decr n",
    "decrby n 2",
    "incrbyfloat n 1.5",
    "setbit b 3 1",
    "setbit b 3 1",
    "bitop and bd b b",
    "bitop and bd nosuch",
    "bitop and bx nosuch",
    "bitfield bf set u8 0 1",
    "bitfield bf get u8 0",
    "bitfield bf incrby u8 0 1 overflow fail incrby u8 0 300",
    "pfadd h1 a b",
    "pfadd h1 a",
    "pfadd h2",
    "pfmerge h3 h1",
    "pfcount h1",
    "del m2 nosuch m10 m2",
    "unlink m11",
    "expire a 100",
    "expire a 100 nx",
    "pexpire a 100000",
    "expireat a 9999999999",
    "pexpireat a 9999999999000",
    "persist a",
    "persist a",
    "expire a 0",
    "expire nosuch 10",
    "expire n -1",
    "set r1 v",
    "rename r1 r2",
    "set r3 v",
    "rename r2 r3",
    "renamenx r3 r4",
    "set r5 x",
    "renamenx r4 r5",
    "rename r5 r5",
    "copy r5 r6",
    "copy r5 r6",
    "copy r5 r6 replace",
    "copy nosuch r7",
    "hset h f v g w",
    "hset h f v",
    "hsetnx h f v",
    "hsetnx h k v",
    "hmset h a 1",
    "hincrby h a 2",
    "hincrbyfloat h a 0.5",
    "hdel h f g",
    "hdel h nosuch",
    "hdel h a k",
    "lpush l a b c",
    "rpush l d",
    "lpushx l e",
    "rpushx l f",
    "lpushx nol a",
    "lpop l",
    "rpop l",
    "lpop l 2",
    "linsert l before a z",
    "linsert l before nosuch z",
    "lset l 0 q",
    "lrem l 0 q",
    "ltrim l 0 -1",
    "ltrim l 0 0",
    "lpop l",
    "lpop l",
    "ltrim nol 0 1",
    "rpush l1 a b",
    "rpoplpush l1 l2",
    "lmove l1 l2 left right",
    "lmove l2 l2 left left",
    "lmpop 2 nol l2 right count 5",
    "rpush l3 x",
    "blpop l3 0",
    "rpush l3 x y",
    "brpop l3 0",
    "brpoplpush l3 l4 0",
    "blmove l4 l5 left left 0",
    "blmpop 0 1 l5 left",
    "sadd st a b c",
    "sadd st a",
    "srem st a",
    "srem st zz",
    "smove st st2 b",
    "sadd st b",
    "smove st st2 b",
    "smove st st2 c",
    "smove st2 st2 b",
    "sadd st a",
    "spop st",
    "sadd st a b c",
    "spop st 2",
    "spop st 5",
    "sadd x1 a b",
    "sadd x2 b c",
    "sinterstore d x1 x2",
    "sunionstore d x1 x2",
    "sdiffstore d x1 x2",
    "sinterstore d x1 nosuch",
    "sdiffstore d x1 x1",
    "zadd z 1 a 2 b",
    "zadd z 1 a",
    "zadd z 5 a",
    "zadd z incr 1 a",
    "zadd z nx incr 1 a",
    "zadd z xx ch 1 q",
    "zadd z gt 0 a",
    "zincrby z 2 b",
    "zrem z a",
    "zrem z nosuch",
    "zadd z 1 a 2 c 3 d",
    "zremrangebyscore z 1 1",
    "zremrangebyrank z 0 0",
    "zadd z 0 aa 0 ab",
    "zremrangebylex z [aa [ab",
    "zpopmin z",
    "zpopmax z 5",
    "zadd z1 1 a 2 b",
    "zadd z2 2 b 3 c",
    "zunionstore zd 2 z1 z2",
    "zinterstore zd 2 z1 z2",
    "zdiffstore zd 2 z1 z2",
    "zinterstore zd 2 z1 nosuch",
    "zrangestore zr z1 0 -1",
    "zrangestore zr z1 5 6",
    "zmpop 1 z1 min",
    "zadd z3 1 a",
    "bzpopmin z3 0",
    "zadd z3 1 a 2 b",
    "bzpopmax z3 0",
    "bzmpop 0 1 z3 min",
    "xadd x 1-1 f v",
    "xadd x maxlen 1 2-1 f v",
    "xadd x maxlen 5 3-1 f v",
    "xadd nox nomkstream * f v",
    "xdel x 3-1",
    "xdel x 3-1",
    "xadd x 4-1 f v",
    "xtrim x maxlen 1",
    "xtrim x maxlen 1",
    "xsetid x 5-1",
    "xgroup create x g 0",
    "xgroup create x2 g $ mkstream",
    "xgroup setid x g 0",
    "xgroup createconsumer x g c1",
    "xgroup createconsumer x g c1",
    "xreadgroup group g c2 streams x >",
    "xreadgroup group g c2 streams x 0",
    "xack x g 4-1",
    "xgroup delconsumer x g nosuch",
    "xgroup delconsumer x g c1",
    "xgroup destroy x g",
    "xgroup destroy x g",
    "eval \"redis.call('set', KEYS[1], 'v') redis.call('del', KEYS[1]) return 1\" 1 ev",
    "pipeline set t1 v; lpush t2 a; del t1; incr t2",
    "geoadd g 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
    "geoadd g 13.361389 38.115556 Palermo",
    "geoadd g xx 13.5 38.1 Palermo",
    "geosearchstore gd g fromlonlat 15 37 byradius 200 km",
    "geosearchstore gd g fromlonlat 0 0 byradius 1 km",
    "georadius g 15 37 200 km store gr",
    "georadius g 15 37 200 km storedist gr2",
    "georadiusbymember g Palermo 10 km store gr3",
    "georadius g 0 0 1 km store gr",
    "georadius_ro g 15 37 200 km",
    "flushdb",
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_every_command_family_publishes_redis_events(ports, clients, protocol):
    want, got = (events_of(p, EVERY_FAMILY, "KEA", protocol) for p in ports)
    assert got == want


def test_new_key_events_as_redis(ports, clients):
    commands = [
        "set k v",
        "set k w",
        "rename k k2",
        "set k3 v",
        "rename k2 k3",
        "copy k3 k4",
        "copy k3 k4 replace",
        "rpush l a",
        "rpoplpush l l2",
        "sadd s a",
        "sinterstore s2 s s",
        "zadd z 1 a",
        "zunionstore z2 1 z",
        "xadd x * f v",
        "incr i",
        "hset h f v",
        "getdel k3",
        "pfadd p",
        "bitop or bo p",
        "msetnx c 1 c 2",
        "xgroup create x5 g $ mkstream",
        "lpushx nol a",
        "setrange sr 1 a",
        "append ap ''",
    ]
    want, got = (events_of(p, commands, "KEgn$lshzt") for p in ports)
    assert got == want


def test_key_miss_events_as_redis(ports, clients):
    commands = [
        "get k",
        "exists k",
        "type k",
        "ttl k",
        "mget a b",
        "hget h f",
        "lrange l 0 1",
        "smembers s",
        "zscore z a",
        "xrange x - +",
        "object encoding k",
        "llen l",
        "sinter s s2",
        "pfcount p",
        "getbit k 0",
        "xread streams x 0",
        "touch k",
        "getex k",
        "getdel k",
        "incr k",
        "lpop k",
        "del k",
        "copy a b",
        "expire k 10",
        "randomkey",
        "hrandfield h",
        "lmpop 1 l left",
        "zunion 1 z",
        "rpoplpush a b",
        "sinterstore d s s",
    ]
    want, got = (events_of(p, commands, "Em") for p in ports)
    assert got == want


def test_only_the_classes_switched_on(ports, clients):
    commands = ["set a 1", "lpush l x", "expire a 100", "del a l"]
    for flags in ("K$", "El", "Eg", "K", "E", "KE$lg"):
        want, got = (events_of(p, commands, flags) for p in ports)
        assert got == want, flags


def test_no_events_by_default(ports):
    kvb = redis.Redis(port=ports[1], socket_timeout=5)
    kvb.config_set("notify-keyspace-events", "")
    sub = kvb.pubsub()
    sub.psubscribe("*")
    assert sub.get_message(timeout=5)["type"] == "psubscribe"
    kvb.set("quiet", 1)
    kvb.publish("x", "done")
    assert sub.get_message(timeout=5)["channel"] == b"x"  # nothing about "quiet" came first
    sub.close()
    kvb.close()


def test_blocked_pop_served_later_publishes_its_events(ports, clients):
    kvb = redis.Redis(port=ports[1], socket_timeout=5)
    kvb.config_set("notify-keyspace-events", "Elg")
    sub = kvb.pubsub()
    sub.psubscribe("__keyevent@0__:*")
    sub.get_message(timeout=5)
    waiter = redis.Redis(port=ports[1], socket_timeout=5)
    waiter.execute_command("CLIENT", "SETNAME", "w")
    import threading

    result = []
    t = threading.Thread(target=lambda: result.append(waiter.blmove("src", "dst", 5, "LEFT", "RIGHT")))
    t.start()
    deadline = time.time() + 5
    while b"name=w" not in kvb.execute_command("CLIENT", "LIST") or b"flags=b" not in b"".join(
        line for line in kvb.execute_command("CLIENT", "LIST").split(b"\n") if b"name=w" in line
    ):
        assert time.time() < deadline
        time.sleep(0.01)
    kvb.rpush("src", "x")
    t.join(5)
    assert result == [b"x"]
    got = [(m["channel"], m["data"]) for m in iter(lambda: sub.get_message(timeout=0.3), None)]
    assert got == [
        (b"__keyevent@0__:rpush", b"src"),
        (b"__keyevent@0__:rpush", b"dst"),
        (b"__keyevent@0__:lpop", b"src"),
        (b"__keyevent@0__:del", b"src"),
    ]
    sub.close()
    waiter.close()
    kvb.close()


def test_expired_events_on_access_and_by_the_sweep(ports, clients):
    kvb = redis.Redis(port=ports[1], socket_timeout=5)
    kvb.config_set("notify-keyspace-events", "Ex")
    sub = kvb.pubsub()
    sub.subscribe("__keyevent@0__:expired")
    sub.get_message(timeout=5)
    kvb.set("swept", "v", px=20)
    kvb.hset("h", "f", "v")
    kvb.pexpire("h", 20)
    got = {sub.get_message(timeout=2)["data"] for _ in range(2)}
    assert got == {b"swept", b"h"}  # the sweep found them within the 2 s waited, nobody asked
    assert kvb.exists("swept", "h") == 0
    kvb.config_set("notify-keyspace-events", "")  # no sweep: found on access
    kvb.set("seen", "v", px=10)
    time.sleep(0.03)
    kvb.config_set("notify-keyspace-events", "Ex")
    assert kvb.get("seen") is None
    assert sub.get_message(timeout=2)["data"] == b"seen"
    assert sub.get_message(timeout=0.3) is None  # reported once
    sub.close()
    kvb.close()


def test_writes_of_another_process_publish_nothing(ports, clients, tmp_path):
    kvb = redis.Redis(port=ports[1], socket_timeout=5)
    path = kvb.config_get("dir")["dir"]
    kvb.config_set("notify-keyspace-events", "KEA")
    sub = kvb.pubsub()
    sub.psubscribe("__key*__:*")
    sub.get_message(timeout=5)
    with Structures(path) as st:
        st.set("other", "v")
    kvb.publish("__keyevent@0__:marker", "m")
    assert sub.get_message(timeout=5)["data"] == b"m"
    assert kvb.get("other") == b"v"
    sub.close()
    kvb.close()


# ---------------------------------------------------------------- CONFIG SET


def _answer(client: redis.Redis, *args: str) -> object:
    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        return f"ERR {exc}"


CONFIG_CALLS = [
    ["CONFIG", "SET", "notify-keyspace-events", "KEA"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "NOTIFY-KEYSPACE-EVENTS", "gK"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "Ex"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "dtezxhsl$gKEmn"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "nmzE"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "Q"],
    ["CONFIG", "SET", "notify-keyspace-events", "AgE", "nosuch", "1"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "K", "notify-keyspace-events", "E"],
    ["CONFIG", "SET", "notify-keyspace-events", "K", "appendonly", "maybe"],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", ""],
    ["CONFIG", "GET", "notify-keyspace-events"],
    ["CONFIG", "SET", "nosuch", "1"],
    ["CONFIG", "SET", "notify-keyspace-events"],
    ["CONFIG", "SET", "notify-keyspace-events", "K", "save"],
    ["CONFIG", "SET", "databases", "2"],
    ["CONFIG", "SET", "unixsocket", "/tmp/x"],
    ["CONFIG", "SET", "dir", "/nonexistent"],
    ["CONFIG", "SET", "save", "abc"],
    ["CONFIG", "SET", "save", "3600 1 300 100"],
    ["CONFIG", "SET", "save", ""],
    ["CONFIG", "SET", "appendonly", "yes"],
    ["CONFIG", "SET", "appendfsync", "bad"],
    ["CONFIG", "SET", "maxmemory-policy", "bad"],
    ["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    ["CONFIG", "SET", "maxmemory", "1x"],
    ["CONFIG", "SET", "maxmemory", "0"],
    ["CONFIG", "SET", "hll-sparse-max-bytes", "x"],
    ["CONFIG", "SET", "timeout", "-1"],
    ["CONFIG", "SET", "timeout", "0"],
    ["CONFIG", "SET", "maxclients", "0"],
    ["CONFIG", "SET", "proto-max-bulk-len", "10"],
    ["CONFIG", "REWRITE"],
    ["CONFIG", "REWRITE", "x"],
    ["CONFIG", "RESETSTAT"],
]


def test_config_set_as_redis(clients):
    theirs, ours = clients
    for call in CONFIG_CALLS:
        assert _answer(ours, *call) == _answer(theirs, *call), call


def test_config_set_refuses_what_kvb_cannot_change_and_changes_nothing(clients):
    ours = clients[1]
    answer = _answer(ours, "CONFIG", "SET", "notify-keyspace-events", "KEA", "maxmemory", "100mb")
    assert answer == (
        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - kvb serve cannot change it "
        "(it is '0' for as long as it runs)"
    )
    assert ours.config_get("notify-keyspace-events") == {"notify-keyspace-events": ""}
    assert _answer(ours, "CONFIG", "SET", "appendfsync", "always").startswith("ERR CONFIG SET failed")
    assert ours.config_set("appendonly", "no") is True  # accepted and ignored: writes stay logged
    assert ours.config_get("appendonly") == {"appendonly": "yes"}


# ---------------------------------------------------------------- WAIT


WAIT_CALLS = [
    ["WAIT", "0", "0"],
    ["WAIT", "-1", "0"],
    ["WAIT", "0", "100"],
    ["WAIT", "a", "b"],
    ["WAIT", "1", "a"],
    ["WAIT", "0", "1.5"],
    ["WAIT", "0", "-1"],
    ["WAIT", "1", "-1"],
    ["WAIT", "99999999999999999999", "0"],
    ["WAIT", "0"],
    ["WAIT", "1", "50"],
]


def test_wait_answers_as_a_primary_without_replicas(clients):
    theirs, ours = clients
    for call in WAIT_CALLS:
        assert _answer(ours, *call) == _answer(theirs, *call), call
    for client in clients:
        started = time.time()
        assert client.execute_command("WAIT", "2", "120") == 0
        assert 0.1 <= time.time() - started < 2
        with client.pipeline() as p:  # inside MULTI: at once
            p.execute_command("WAIT", "1", "0")
            assert p.execute() == [0]
        assert str(_answer(client, "EVAL", "return redis.call('wait', 0, 0)", "0")) == (
            "ERR This Redis command is not allowed from script script: "
            "09c741d9d86c54b89b6c904a627c276a73679c40, on @user_script:1."
        )
    for c in clients:
        client = redis.Redis(port=c.connection_pool.connection_kwargs["port"], protocol=3)
        assert client.execute_command("WAIT", "1", "10") == 0
        client.close()


def test_wait_for_ever_ends_with_client_unblock(clients):
    import threading

    for client in clients:
        port = client.connection_pool.connection_kwargs["port"]
        for how, want in (("TIMEOUT", 0), ("ERROR", "ERR UNBLOCKED client unblocked via CLIENT UNBLOCK")):
            waiter = redis.Redis(port=port, socket_timeout=5)
            wid = waiter.client_id()
            result = []
            t = threading.Thread(target=lambda w=waiter, r=result: r.append(_answer(w, "WAIT", "1", "0")))
            t.start()
            deadline = time.time() + 5
            while client.execute_command("CLIENT", "UNBLOCK", wid, how) != 1:
                assert time.time() < deadline
                time.sleep(0.01)
            t.join(5)
            assert result == [want]
            assert waiter.ping()
            waiter.close()


def test_command_info_of_the_new_commands(clients):
    theirs, ours = clients
    for name in ("wait", "config|rewrite", "config|set"):
        mine = ours.execute_command("COMMAND", "INFO", name)
        redis_info = theirs.execute_command("COMMAND", "INFO", name)
        assert mine == redis_info, name


# ---------------------------------------------------------------- in-process


def test_structures_expired_names_and_remove_expired(tmp_path):
    with Structures(str(tmp_path / "s")) as st:

        def store(life: float) -> bool:
            st.set("a", "v", ex=life)
            st.rpush("l", "x", "y")
            st.expire("l", life)
            st.set("live", "v", ex=100)
            return st.remove_expired("a")

        removed, expired_by = before_expiry((0.01, 0.1, 1), store)
        assert removed is False  # not yet
        time.sleep(max(expired_by - time.time(), 0) + 0.01)
        assert sorted(st.expired_names(10)) == [b"a", b"l"]
        assert st.expired_names(1) in ([b"a"], [b"l"])
        assert st.remove_expired("a") is True
        assert st.remove_expired("a") is False  # reported once
        assert st.remove_expired("live") is False
        assert st.remove_expired("missing") is False
        assert st.remove_expired("l") is True
        assert list(st.db.keys(prefix=b"\x00l")) == []  # the list's elements went with it
        assert st.expired_names(10) == []
