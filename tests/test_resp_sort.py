"""SORT, SORT_RO, LCS and SUBSTR of ``kvb serve`` against a real redis-server, reply bytes compared
as they come off the wire (RESP2 and RESP3): numeric and ALPHA order, ties, LIMIT, BY and GET
patterns (``#``, ``key->field``, ``nosort``), STORE, error texts and the order they are checked
in; then WATCH, expiry, MULTI, a blocked client woken by a stored result, keyspace events, COMMAND
INFO/GETKEYS, the in-process methods and another process writing while SORT STORE runs."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import redis
from helpers import child_env
from resp_helpers import wait_blocked
from test_resp_geo import _watch_case, same, script

from kv_backend.structures import CommandError, Structures, WrongTypeError
from kv_backend.structures.sort import sort_score


def test_sort_orders_limits_and_errors_as_redis(raw):
    """Numbers as C's strtod reads them (hex, inf, leading blanks, "" as 0; NaN, overflow,
    underflow and trailing text refused), ALPHA, DESC, every LIMIT corner, the options read
    before the key's type, SORT_RO refusing STORE, sets of integers in intset order."""
    script(
        raw,
        """
        RPUSH l 3 1 2 10 "" " 5" 0x10 -1.5 inf -inf 1e-300
        SORT l
        SORT l DESC
        SORT l ALPHA
        SORT l ALPHA DESC
        SORT l DESC ASC
        SORT l LIMIT 1 3
        SORT l LIMIT -1 3 DESC
        SORT l LIMIT 3 -1
        SORT l LIMIT 100 1
        SORT l LIMIT 0 0
        SORT l LIMIT 2 9223372036854775807
        SORT l LIMIT 9223372036854775807 9223372036854775807
        SORT l LIMIT 0 1 LIMIT 2 2
        SORT l LIMIT a 1
        SORT l LIMIT 1 a
        SORT l LIMIT 1
        SORT l foo
        SORT l STORE
        SORT l GET
        SORT l BY
        SORT_RO l STORE d
        SORT_RO l DESC LIMIT 0 2
        SET str x
        SORT str
        SORT str foo
        SORT str LIMIT 1 x
        SORT_RO str
        SORT nokey
        SORT nokey STORE d
        RPUSH bad 1 x 2
        SORT bad
        SORT bad ALPHA
        SORT bad BY nosort
        RPUSH ok " +.5e1" InFiNiTy 0x1p3 "-0" 1e308
        SORT ok
        SORT ok DESC
        RPUSH bad2 "1 " nan 1_0 0x "  "
        SORT bad2
        SADD s 5 3 1 20 4 -7
        SORT s
        SORT s DESC LIMIT 1 2
        SORT s ALPHA
        SORT s BY nosort
        SORT s BY nosort DESC
        SORT s BY nosort STORE d
        LRANGE d 0 -1
        SORT s BY nosort DESC STORE d
        LRANGE d 0 -1
        SADD s2 b a c 1
        SORT s2 ALPHA
        SORT s2 BY nosort STORE d
        LRANGE d 0 -1
        SORT s2
        ZADD z 3 a 1 b 2 c 2 d 0 e
        SORT z ALPHA
        SORT z ALPHA DESC
        SORT z BY nosort
        SORT z BY nosort DESC
        SORT z BY nosort LIMIT 1 3
        SORT z BY nosort DESC LIMIT 1 3
        SORT z BY nosort DESC LIMIT 10 3
        SORT z
        ZADD zn 3 10 1 2 2 30
        SORT zn
        SORT zn BY nosort GET #
        HSET hh a b
        SORT hh
        RPUSH dup 3 1 3 2 1
        SORT dup
        SORT dup DESC
        SORT dup BY nosort DESC
        # last: Redis 7.0 reads a stale errno, so after an out-of-range number it refuses
        # every numeric SORT on this connection until something resets errno
        RPUSH range 1e400 1e-400 4.9e-324
        SORT range
        """,
    )


def test_by_and_get_patterns_as_redis(raw):
    """BY and GET name string keys and hash fields (``*->field``); ``#`` is the element; missing
    values sort first (ALPHA) or as 0 and GET as nil; BY without ``*`` keeps the list's or sorted
    set's order, also when a later BY has a ``*``; ties in BY values keep list order, and with a
    LIMIT come out as Redis's partial quicksort leaves them."""
    script(
        raw,
        """
        MSET w_1 30 w_2 20 w_3 10 w_10 5 wx_ 1
        HSET h_1 f 3 g a
        HSET h_2 f 1 g b
        HSET h_3 f 2
        SADD w_4 x
        RPUSH l 1 2 3 10 4
        SORT l BY w_*
        SORT l BY w_* DESC
        SORT l BY w_* GET #
        SORT l BY w_* GET # GET w_* GET h_*->f GET h_*->g GET nothing GET w_4
        SORT l BY h_*->f
        SORT l BY h_*->f ALPHA
        SORT l BY h_*->g ALPHA
        SORT l BY h_*->g ALPHA DESC
        SORT l BY h_*->g ALPHA LIMIT 1 2
        SORT l BY h_*->
        SORT l BY w_*->f
        SORT l BY h_*->f GET h_*->f GET #
        SORT l BY nosort
        SORT l BY nosort DESC
        SORT l BY nosort DESC LIMIT 1 2
        SORT l BY nosort LIMIT 1 2 GET w_*
        SORT l BY nosort BY w_*
        SORT l BY w_* BY nosort
        SORT l BY w_* LIMIT 0 1 ALPHA
        SORT_RO l BY h_*->f GET h_*->g
        SET v_a x
        RPUSH dup b a b c a
        SORT dup BY v_* ALPHA
        SORT dup BY v_* ALPHA DESC
        SORT dup BY v_* ALPHA DESC LIMIT 1 2
        SORT dup BY v_*
        SORT dup BY v_* DESC
        """,
    )


def test_random_sorts_match_redis(raw):
    """Random lists and sorted sets sorted with random options give redis-server's bytes (a sorted
    set's ALPHA BY ties are left out: Redis takes those members in its hash table's order)."""
    rng = random.Random(11)
    for _ in range(25):
        for c in raw:
            c.call("FLUSHALL")
        n = rng.randint(0, 40)
        values = [
            str(rng.choice([rng.randint(-5, 50), round(rng.random() * 10, 3), f"a{rng.randint(0, 9)}"]))
            for _ in range(n)
        ]
        kind = rng.choice(["list", "list", "zset"])
        setup: list[list[str]] = []
        if values and kind == "list":
            setup.append(["RPUSH", "k", *values])
        elif values:
            setup.append(["ZADD", "k", *[x for v in values for x in (str(rng.randint(0, 5)), v)]])
        for v in set(values):
            if rng.random() < 0.7:
                setup.append(["SET", f"w_{v}", rng.choice(["x", "y", "1", "2"])])
            if rng.random() < 0.5:
                setup.append(["HSET", f"h_{v}", "f", str(rng.randint(0, 3))])
        for cmd in setup:
            same(raw, *cmd)
        for _ in range(8):
            cmd = ["SORT", "k"]
            by = rng.choice([None, "w_*", "h_*->f", "nosort"])
            if by:
                cmd += ["BY", by]
            if rng.random() < 0.5:
                cmd += ["LIMIT", str(rng.randint(-2, n + 2)), str(rng.randint(-2, n + 2))]
            if rng.random() < 0.5:
                cmd.append("DESC")
            if rng.random() < 0.6:
                cmd.append("ALPHA")
            for _ in range(rng.randint(0, 2)):
                cmd += ["GET", rng.choice(["#", "w_*", "h_*->f"])]
            if kind == "zset" and by in ("w_*", "h_*->f") and "ALPHA" in cmd:
                continue
            same(raw, *cmd)
            if rng.random() < 0.3:
                same(raw, *cmd, "STORE", "dst")
                same(raw, "LRANGE", "dst", "0", "-1")


def test_store_replaces_any_key_drops_its_ttl_and_deletes_on_empty(raw):
    script(
        raw,
        """
        RPUSH l 3 1 2
        MSET w_1 a w_3 b
        SET dst x
        EXPIRE dst 100
        SORT l STORE dst
        TTL dst
        TYPE dst
        LRANGE dst 0 -1
        SORT l GET w_* GET # STORE dst
        LRANGE dst 0 -1
        RPUSH dst2 x
        SORT l DESC STORE dst2 STORE dst3
        EXISTS dst2
        LRANGE dst3 0 -1
        SORT l LIMIT 0 0 STORE dst
        EXISTS dst
        SORT nokey STORE dst3
        EXISTS dst3
        SORT l STORE l
        LRANGE l 0 -1
        ZADD z 1 a
        SORT z BY nosort STORE z
        TYPE z
        """,
    )


def test_expired_keys_and_transactions(raw):
    """Expired BY/GET keys and an expired sorted key read as missing; SORT runs queued in MULTI."""
    script(
        raw,
        """
        RPUSH l 2 1
        MSET w_1 b w_2 a
        PEXPIRE w_1 1
        PEXPIRE l 100000
        """,
    )
    time.sleep(0.01)
    script(
        raw,
        """
        SORT l BY w_* ALPHA GET w_*
        MULTI
        SORT l STORE d
        SORT_RO d ALPHA
        SORT l LIMIT x 1
        LCS w_2 w_2
        EXEC
        """,
    )
    for conn in raw:
        conn.call("PEXPIRE", "l", "1")
    time.sleep(0.01)
    script(raw, "SORT l\nSORT l STORE d\nEXISTS d")


@pytest.mark.parametrize(
    "watched, other",
    [
        ("d", ["SORT", "l", "STORE", "d"]),
        ("d", ["SORT", "l", "STORE", "x", "LIMIT", "0", "0", "STORE", "d"]),  # the last STORE wins
        ("d", ["SORT", "nokey", "STORE", "d"]),  # an empty result deletes d
        ("l", ["SORT", "l", "STORE", "d"]),  # the source is only read
        ("x", ["SORT", "l", "STORE", "d"]),
        ("x", ["SORT", "nokey", "STORE", "x"]),  # nothing to delete
        ("d", ["SORT_RO", "l"]),
    ],
)
def test_watch_sees_the_key_sort_stores(ports, watched, other):
    setup = [["RPUSH", "l", "2", "1"], ["SET", "d", "x"]]
    want, got = (_watch_case(port, setup, watched, other) for port in ports)
    assert got == want, (watched, other)


def test_a_stored_result_wakes_a_client_blocked_on_the_destination(ports):
    with redis.Redis(port=ports[1]) as a, redis.Redis(port=ports[1]) as b:
        a.flushall()
        a.rpush("l", 3, 1, 2)
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(b.blpop(["d"], 10)))
        waiter.start()
        wait_blocked(a)
        assert a.sort("l", store="d") == 3
        waiter.join(10)
        assert got == [(b"d", b"1")]
        assert a.lrange("d", 0, -1) == [b"2", b"3"]


def test_keyspace_events_of_sort_store_as_redis(ports):
    """``sortstore`` on the stored key (and ``new`` when it is created), ``del`` when an empty
    result removes it, nothing for SORT without STORE."""
    events = []
    for port in ports:
        with redis.Redis(port=port) as r:
            r.flushall()
            r.config_set("notify-keyspace-events", "KEA")
            try:
                p = r.pubsub()
                p.psubscribe("__keyspace@0__:*")
                p.subscribe("end")  # the message published there last ends the reading below
                for _ in range(2):
                    assert p.get_message(timeout=1)["type"] in ("psubscribe", "subscribe")
                r.rpush("l", 2, 1)
                r.set("d", "x")
                for cmd in (["SORT", "l"], ["SORT", "l", "STORE", "d"], ["SORT", "l", "STORE", "n"]):
                    r.execute_command(*cmd)
                r.execute_command("SORT", "nokey", "STORE", "d")
                r.execute_command("SORT", "nokey", "STORE", "none")
                r.publish("end", "x")
                seen = []
                while True:
                    m = p.get_message(timeout=2)
                    if m is None or m["type"] != "pmessage":
                        break
                    seen.append((m["channel"], m["data"]))
                events.append(seen)
                p.close()
            finally:
                r.config_set("notify-keyspace-events", "")
    assert events[1] == events[0]
    assert (b"__keyspace@0__:d", b"sortstore") in events[0]


def test_lcs_and_substr_as_redis(raw):
    script(
        raw,
        """
        MSET a ohmytext b mynewtext c "" d x n1 12345 n2 2345
        LCS a b
        LCS a b LEN
        LCS a b IDX
        LCS a b IDX WITHMATCHLEN
        LCS a b IDX MINMATCHLEN 4
        LCS a b IDX MINMATCHLEN 4 WITHMATCHLEN
        LCS a b IDX MINMATCHLEN -3 WITHMATCHLEN
        LCS a b WITHMATCHLEN MINMATCHLEN 2
        LCS a b IDX LEN
        LCS a b LEN LEN
        LCS a b foo
        LCS a b MINMATCHLEN
        LCS a b MINMATCHLEN x
        LCS a c
        LCS a c IDX
        LCS nokey nokey2 IDX WITHMATCHLEN
        LCS nokey a LEN
        LCS n1 n2 IDX WITHMATCHLEN
        LCS a
        RPUSH l 1
        LCS a l
        LCS l a foo
        LCS a l MINMATCHLEN x
        LCS a l IDX LEN
        SUBSTR a 1 3
        SUBSTR a -3 -1
        SUBSTR a 0 -100
        SUBSTR nokey 0 1
        SUBSTR l 0 1
        SUBSTR a x 1
        SUBSTR a 1
        """,
    )
    rng = random.Random(3)
    for _ in range(60):
        x = "".join(rng.choice("abc") for _ in range(rng.randint(0, 25)))
        y = "".join(rng.choice("abc") for _ in range(rng.randint(0, 25)))
        same(raw, "MSET", "x", x, "y", y)
        opts = rng.choice([[], ["LEN"], ["IDX"], ["IDX", "WITHMATCHLEN"], ["IDX", "MINMATCHLEN", "2"]])
        same(raw, "LCS", "x", "y", *opts)


@pytest.mark.parametrize(
    "cmd",
    [
        ["COMMAND", "INFO", "sort", "sort_ro", "lcs", "substr"],
        ["COMMAND", "GETKEYS", "SORT", "a", "STORE", "b", "LIMIT", "0", "1", "STORE", "c"],
        ["COMMAND", "GETKEYS", "SORT", "a", "GET", "STORE"],
        ["COMMAND", "GETKEYS", "SORT", "a", "BY", "STORE", "STORE", "x"],
        ["COMMAND", "GETKEYSANDFLAGS", "SORT", "a", "STORE", "b"],
        ["COMMAND", "GETKEYS", "SORT_RO", "a", "BY", "x"],
        ["COMMAND", "GETKEYS", "LCS", "a", "b"],
    ],
)
def test_command_describes_the_new_commands_as_redis(raw, cmd):
    want, got = raw[0].call(*cmd), raw[1].call(*cmd)
    if cmd[1] == "INFO":  # the key specs' notes (Redis's prose) are left out
        notes = [
            b"$5\r\nnotes\r\n$120\r\nFor the optional BY/GET keyword. It is marked 'unknown' because "
            b"the key names derive from the content of the key we sort\r\n",
            b"$5\r\nnotes\r\n$116\r\nFor the optional STORE keyword. It is marked 'unknown' because "
            b"the keyword can appear anywhere in the argument array\r\n",
        ]
        for note in notes:
            want = want.replace(note, b"")
        want = want.replace(b"*8\r\n$5\r\nflags", b"*6\r\n$5\r\nflags").replace(
            b"%4\r\n$5\r\nflags", b"%3\r\n$5\r\nflags"
        )
    assert got == want


def test_in_process_sort_and_lcs(tmp_path):
    with Structures(str(tmp_path / "s")) as st:
        st.rpush("l", 3, 1, 2)
        for k, v in {"w_1": "c", "w_2": "b", "w_3": "a"}.items():
            st.set(k, v)
        st.hset("h_1", mapping={"f": "x"})
        assert st.sort("l") == [b"1", b"2", b"3"]
        assert st.sort("l", desc=True, offset=1, count=1) == [b"2"]
        assert st.sort("l", by="w_*", alpha=True) == [b"3", b"2", b"1"]
        assert st.sort("l", get=["#", "h_*->f"]) == [b"1", b"x", b"2", None, b"3", None]
        assert st.sort("l", by="nosort", desc=True) == [b"2", b"1", b"3"]
        st.set("d", "old", ex=100)
        assert st.sort("l", store="d", get=["h_*->f"]) == 3
        assert st.lrange("d", 0, -1) == [b"x", b"", b""] and st.ttl("d") is None
        assert st.sort("nokey", store="d") == 0 and not st.exists("d")
        with pytest.raises(WrongTypeError):
            st.sort("w_1")
        st.rpush("bad", "x")
        with pytest.raises(CommandError, match="can't be converted into double"):
            st.sort("bad")
        assert st.sort("bad", alpha=True) == [b"x"]
        st.set("a", "ohmytext")
        st.set("b", "mynewtext")
        assert st.lcs("a", "b") == b"mytext"
        assert st.lcs("a", "b", len=True) == 6
        assert st.lcs("a", "b", idx=True, minmatchlen=4, withmatchlen=True) == {
            b"matches": [[[4, 7], [5, 8], 4]],
            b"len": 6,
        }
        with pytest.raises(CommandError, match="must contain string values"):
            st.lcs("a", "l")


def test_sort_score_reads_numbers_as_strtod():
    assert sort_score(b"") == 0.0
    assert sort_score(b" 0x10") == 16.0
    assert sort_score(b"-InF") == float("-inf")
    assert sort_score(b"1\x00junk") == 1.0
    for bad in (b"1 ", b"nan", b"1e400", b"1e-320", b"0x", b"1_0", b"  ", b"e5"):
        assert sort_score(bad) is None, bad


def test_sort_store_sees_one_state_of_a_list_another_process_writes(tmp_path):
    """Another process appends n to a list and then sets w_n; every SORT ... BY w_* STORE sees
    the list and its weights as of one moment: a prefix 0..k-1 of what was written, in order."""
    path = str(tmp_path / "s")
    Structures(path).close()
    code = textwrap.dedent(
        """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as st:
            for n in range(300):
                with st.db.locked():
                    st.rpush("src", n)
                    st.set(f"w_{n}", -n)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", code, path], env=child_env())
    try:
        with Structures(path) as st:
            seen = 0
            while child.poll() is None or seen < 2:
                k = st.sort("src", by="w_*", get=["#"], store="dst")
                got = [int(x) for x in st.lrange("dst", 0, -1)]
                assert got == list(range(k - 1, -1, -1))
                seen += 1
    finally:
        child.wait(60)
    assert child.returncode == 0


def test_flushdb_removes_keys_that_expired_but_are_still_stored(tmp_path):
    """FLUSHALL left the records of keys that had expired (reads skip them), so kvb serve's active
    expiry found them afterwards and published ``expired`` events for keys of before the flush
    (redis-server publishes none)."""
    with Structures(str(tmp_path / "s")) as st:
        st.set("gone", "x", ex=0.001)
        st.set("live", "x", ex=100)
        time.sleep(0.01)
        assert st.expired_names(10) == [b"gone"]
        st.flushdb()
        assert st.expired_names(10) == []
        assert not st.remove_expired("gone") and st.dbsize() == 0
