"""Stream consumer groups in ``Structures`` and over RESP: delivery, PEL, claims, XINFO, processes, kills."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time

import pytest
import redis
from helpers import spawn_python
from resp_helpers import RunningServer
from zygote import Zygote

from kv_backend.structures import CommandError, Structures, WrongTypeError


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


def _ids(entries):
    return [e[0] for e in entries]


def test_groups_deliver_each_entry_once_and_track_pending(s):
    assert s.xgroup_create("st", "g", "$", mkstream=True)
    for i in range(1, 6):
        s.xadd("st", {"i": i}, id=f"{i}-0")
    [(name, first)] = s.xreadgroup("g", "alice", {"st": ">"}, count=2)
    assert name == b"st" and first == [(b"1-0", [(b"i", b"1")]), (b"2-0", [(b"i", b"2")])]
    assert _ids(s.xreadgroup("g", "bob", {"st": ">"})[0][1]) == [b"3-0", b"4-0", b"5-0"]
    assert s.xreadgroup("g", "bob", {"st": ">"}) == []  # nothing new
    assert s.xpending("st", "g") == (5, b"1-0", b"5-0", [(b"alice", 2), (b"bob", 3)])
    # history: only the consumer's own pending entries, after the ID given
    assert _ids(s.xreadgroup("g", "alice", {"st": "0"})[0][1]) == [b"1-0", b"2-0"]
    assert _ids(s.xreadgroup("g", "alice", {"st": "1-0"})[0][1]) == [b"2-0"]
    assert s.xack("st", "g", "1-0", "1-0", "9-9") == 1
    rows = s.xpending_range("st", "g", "-", "+", 10)
    assert [(r[0], r[1], r[3]) for r in rows] == [
        (b"2-0", b"alice", 3),  # delivered once, read twice more as history
        (b"3-0", b"bob", 1),
        (b"4-0", b"bob", 1),
        (b"5-0", b"bob", 1),
    ]
    assert [r[0] for r in s.xpending_range("st", "g", "(2-0", "+", 2, consumer="bob")] == [b"3-0", b"4-0"]
    assert s.xpending_range("st", "g", "-", "+", 10, idle=60_000) == []
    # a pending entry deleted from the stream is returned with no fields
    s.xdel("st", "2-0")
    assert s.xreadgroup("g", "alice", {"st": "0"}) == [(b"st", [(b"2-0", None)])]
    # NOACK delivers without adding to the PEL
    s.xadd("st", {"i": 6}, id="6-0")
    assert _ids(s.xreadgroup("g", "carol", {"st": ">"}, noack=True)[0][1]) == [b"6-0"]
    assert s.xpending("st", "g")[0] == 4


def test_new_entries_come_in_id_order_through_runs_of_consecutive_ids_and_gaps(s, monkeypatch):
    # XREADGROUP looks the ID after the last delivered one up directly and scans only on a miss:
    # every way of reading (one at a time, a few, all) must deliver the same entries in order
    top = 2**64 - 1
    ids = ["5-0", "5-1", "5-2", "7-0", "7-1", "7-2", "9-3", f"9-{top}", "10-0", "10-1", "12-0", "12-2"]
    ids.append("13-0")  # 12-1 is missing: 12-2, not 13-0, comes after 12-0
    for i, xid in enumerate(ids):
        s.xadd("st", {"i": i}, id=xid)
    s.xdel("st", "7-1")  # a hole inside a run
    expected = [xid.encode() for xid in ids if xid != "7-1"]
    for group, count in (("one", 1), ("two", 2), ("three", 3), ("all", None)):
        s.xgroup_create("st", group, "0")
        got = []
        while batch := s.xreadgroup(group, "c", {"st": ">"}, count=count):
            got += _ids(batch[0][1])
        assert got == expected, group
        assert _ids(s.xreadgroup(group, "c", {"st": "0"})[0][1]) == expected  # all pending, in order
    info = {g["name"]: (g["last-delivered-id"], g["entries-read"], g["lag"]) for g in s.xinfo_groups("st")}
    assert set(info.values()) == {(b"13-0", 13, 0)}
    # a run of consecutive IDs is read without an ordered scan of the store
    for xid in ("3-0", "4-0", "4-1", "4-2"):
        s.xadd("other", {"i": 1}, id=xid)
    s.xgroup_create("other", "g", "0")
    s.xreadgroup("g", "c", {"other": ">"}, count=2)  # 3-0, then 4-0: not next to 3-0, found by a scan
    scans = []
    keys = s.db.keys
    monkeypatch.setattr(s.db, "keys", lambda **kw: scans.append(kw) or keys(**kw))
    assert _ids(s.xreadgroup("g", "c", {"other": ">"})[0][1]) == [b"4-1", b"4-2"]
    assert scans == []


def test_a_stream_named_twice_sees_its_first_read(s):
    s.xgroup_create("st", "g", "$", mkstream=True)
    s.xadd("st", {"a": 1}, id="1-0")
    # as Redis: the second ">" finds nothing new, and a history read sees what the first delivered
    assert s.xreadgroup("g", "c", [("st", ">"), ("st", ">")]) == [(b"st", [(b"1-0", [(b"a", b"1")])])]
    s.xadd("st", {"a": 2}, id="2-0")
    got = s.xreadgroup("g", "c", [("st", ">"), ("st", "0")])
    assert [(n, _ids(e)) for n, e in got] == [(b"st", [b"2-0"]), (b"st", [b"1-0", b"2-0"])]
    assert s.xpending("st", "g")[0] == 2


def test_claims_move_pending_entries(s):
    s.xgroup_create("st", "g", "0", mkstream=True)
    for i in range(1, 5):
        s.xadd("st", {"i": i}, id=f"{i}-0")
    s.xreadgroup("g", "alice", {"st": ">"})
    assert s.xclaim("st", "g", "bob", 60_000, ["1-0"]) == []  # not idle long enough
    assert s.xclaim("st", "g", "bob", 0, ["1-0", "2-0"], justid=True) == [b"1-0", b"2-0"]
    got = s.xclaim("st", "g", "bob", 0, ["3-0"], retrycount=7, idle=5_000)
    assert got == [(b"3-0", [(b"i", b"3")])]
    [row] = s.xpending_range("st", "g", "3-0", "3-0", 1)
    assert row[1] == b"bob" and row[3] == 7 and row[2] >= 5_000
    assert s.xclaim("st", "g", "bob", 0, ["9-0"]) == []  # no such entry
    s.xadd("st", {"i": 9}, id="9-0")
    assert s.xclaim("st", "g", "carol", 0, ["9-0"], force=True, justid=True) == [b"9-0"]
    s.xdel("st", "4-0")
    cursor, claimed, deleted = s.xautoclaim("st", "g", "dave", 0, "0-0", count=2)
    assert (cursor, _ids(claimed), deleted) == (b"3-0", [b"1-0", b"2-0"], [])
    cursor, claimed, deleted = s.xautoclaim("st", "g", "dave", 0, cursor, count=5, justid=True)
    assert (cursor, claimed, deleted) == (b"0-0", [b"3-0", b"9-0"], [b"4-0"])
    assert s.xpending("st", "g") == (4, b"1-0", b"9-0", [(b"dave", 4)])
    assert s.xclaim("st", "g", "erin", 0, [], lastid="100-0") == []
    assert s.xinfo_groups("st")[0]["last-delivered-id"] == b"100-0"


def test_group_management_and_info(s):
    with pytest.raises(CommandError, match="requires the key to exist"):
        s.xgroup_create("none", "g")
    s.xadd("st", {"a": 1}, id="1-0")
    s.xadd("st", {"a": 2}, id="2-0")
    s.xgroup_create("st", "g", "0")
    with pytest.raises(CommandError, match="BUSYGROUP"):
        s.xgroup_create("st", "g", "$")
    with pytest.raises(CommandError, match="NOGROUP"):
        s.xgroup_setid("st", "nope", "0")
    with pytest.raises(CommandError, match="NOGROUP"):
        s.xreadgroup("nope", "c", {"st": ">"})
    with pytest.raises(CommandError, match="meaningless"):
        s.xreadgroup("g", "c", {"st": "$"})
    assert s.xgroup_createconsumer("st", "g", "c1") == 1
    assert s.xgroup_createconsumer("st", "g", "c1") == 0
    s.xreadgroup("g", "c2", {"st": ">"}, count=1)
    [info] = s.xinfo_groups("st")
    assert info == {
        "name": b"g",
        "consumers": 2,
        "pending": 1,
        "last-delivered-id": b"1-0",
        "entries-read": 1,
        "lag": 1,
    }
    consumers = s.xinfo_consumers("st", "g")
    assert [(c["name"], c["pending"], c["inactive"] >= 0) for c in consumers] == [
        (b"c1", 0, False),  # never active: -1
        (b"c2", 1, True),
    ]
    stream = s.xinfo_stream("st")
    assert stream["length"] == 2 and stream["groups"] == 1 and stream["entries-added"] == 2
    assert stream["first-entry"] == (b"1-0", [(b"a", b"1")]) and stream["last-entry"][0] == b"2-0"
    full = s.xinfo_stream("st", full=True)
    assert full["groups"][0]["pending"][0][:2] == (b"1-0", b"c2")
    assert full["groups"][0]["consumers"][1]["pel-count"] == 1
    s.xdel("st", "2-0")
    assert s.xinfo_groups("st")[0]["lag"] is None  # a deleted entry ahead of the group: not knowable
    assert s.xgroup_setid("st", "g", "$", entries_read=2)
    assert s.xinfo_groups("st")[0]["lag"] == 0
    assert s.xgroup_delconsumer("st", "g", "c2") == 1
    assert s.xpending("st", "g")[0] == 0
    assert s.xgroup_destroy("st", "g") == 1 and s.xgroup_destroy("st", "g") == 0
    assert s.xinfo_groups("st") == []
    assert s.xsetid("st", "50-0", entries_added=10)
    assert s.xinfo_stream("st")["last-generated-id"] == b"50-0"
    with pytest.raises(CommandError, match="smaller than the target stream top item"):
        s.xsetid("st", "0-1")


def test_groups_follow_the_key(s):
    s.xgroup_create("st", "g", "0", mkstream=True)
    s.xadd("st", {"a": 1}, id="1-0")
    s.xreadgroup("g", "c", {"st": ">"})
    s.rename("st", "moved")
    assert s.xpending("moved", "g")[0] == 1
    with pytest.raises(CommandError, match="NOGROUP"):
        s.xpending("st", "g")
    s.delete("moved")
    s.xadd("moved", {"a": 1}, id="1-0")  # a new stream under the name has no groups
    assert s.xinfo_groups("moved") == []
    assert not [k for k in s.db.keys(prefix=b"\x00") if k.startswith((b"\x00g", b"\x00c", b"\x00p"))]
    # an expired stream leaves its group records behind until vacuum (or the name is reused)
    s.xgroup_create("moved", "g", "0")
    s.xreadgroup("g", "c", {"moved": ">"})
    s.expire("moved", 0.05)
    time.sleep(0.1)
    assert s.vacuum() == 4  # the entry, the group, the consumer and the pending entry
    assert not [k for k in s.db.keys(prefix=b"\x00") if k.startswith((b"\x00g", b"\x00c", b"\x00p"))]


def test_bad_input(s):
    s.set("str", "x")
    with pytest.raises(WrongTypeError):
        s.xgroup_create("str", "g", "$")
    with pytest.raises(WrongTypeError):
        s.xreadgroup("g", "c", {"str": ">"})
    with pytest.raises(WrongTypeError):
        s.xack("str", "g", "1-0")
    s.xgroup_create("st", "g", "$", mkstream=True)
    for bad in ("x", "1-x", "-", "+"):
        with pytest.raises(CommandError, match="Invalid stream ID"):
            s.xack("st", "g", bad)
    with pytest.raises(CommandError, match="Invalid stream ID"):
        s.xgroup_create("st", "g2", "nope")
    with pytest.raises(CommandError, match="ENTRIESREAD"):
        s.xgroup_create("st", "g2", "$", entries_read=-5)
    with pytest.raises(CommandError, match="COUNT"):
        s.xautoclaim("st", "g", "c", 0, "0", count=0)
    with pytest.raises(CommandError, match="no such key"):
        s.xinfo_stream("missing")
    assert s.xack("missing", "g", "1-0") == 0
    assert s.get("str") == b"x" and s.xinfo_groups("st")[0]["name"] == b"g"  # nothing lost


def test_consumer_processes_share_a_group_without_duplicates(store_path):
    """Four processes read one group while a fifth adds: each entry is handed out to exactly one."""
    with Structures(store_path) as s:
        s.xgroup_create("jobs", "workers", "$", mkstream=True)
    consumer = """
        import json, sys, time
        from kv_backend.structures import Structures
        got = []
        with Structures(sys.argv[1]) as s:
            idle_since = time.monotonic()
            while time.monotonic() - idle_since < 1.5:
                found = s.xreadgroup("workers", sys.argv[2], {"jobs": ">"}, count=5)
                if not found:
                    time.sleep(0.005)
                    continue
                idle_since = time.monotonic()
                ids = [e[0] for e in found[0][1]]
                s.xack("jobs", "workers", *ids)
                got += [i.decode() for i in ids]
        print(json.dumps(got))
    """
    procs = [spawn_python(consumer, store_path, f"w{i}", stdout=subprocess.PIPE) for i in range(4)]
    with Structures(store_path) as s:
        added = [s.xadd("jobs", {"n": i}).decode() for i in range(600)]
    seen = [i for p in procs for i in json.loads(p.communicate(timeout=120)[0])]
    assert sorted(seen) == sorted(added)  # all delivered, none twice
    with Structures(store_path) as s:
        assert s.xpending("jobs", "workers")[0] == 0
        [info] = s.xinfo_groups("jobs")
        assert info["entries-read"] == 600 and info["lag"] == 0


def test_sigkill_during_reads_and_acks_keeps_the_group_consistent(store_path):
    with Structures(store_path) as s:
        s.xgroup_create("q", "g", "0", mkstream=True)
        for i in range(9000):
            s.xadd("q", {"i": i}, id=f"{i + 1}-0")
    code = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            print("ready", flush=True)
            while True:
                found = s.xreadgroup("g", "c", {"q": ">"}, count=3)
                if not found:
                    break
                ids = [e[0] for e in found[0][1]]
                s.xack("q", "g", *ids[:2])  # the third stays pending
    """
    check = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            [g] = s.xinfo_groups("q")
            last = int(g["last-delivered-id"].split(b"-")[0])
            pending = [int(r[0].split(b"-")[0]) for r in s.xpending_range("q", "g", "-", "+", 10**6)]
            # every pending entry was delivered, and each batch of 3 is either wholly pending
            # (killed between read and ack) or left with only its third entry pending
            assert all(p <= last for p in pending), (pending[-3:], last)
            assert g["pending"] == len(pending) and g["entries-read"] == last and last % 3 == 0
            batches = {}
            for p in pending:
                batches.setdefault((p - 1) // 3, []).append(p % 3)
            assert all(b in ([0], [1, 2, 0]) for b in batches.values()), batches
            assert len(batches) == last // 3, (len(batches), last)
    """
    rng = random.Random(5)
    with Zygote(code) as consumers, Zygote(check) as checkers:
        for _ in range(4):
            consumers.kill_when_ready(store_path, delay=rng.uniform(0.02, 0.2))
            checkers.run(store_path)


def test_blocking_reads_in_process_wake_on_another_process(s, store_path):
    s.xgroup_create("st", "g", "$", mkstream=True)
    assert s.xreadgroup("g", "c", {"st": ">"}, block=50) == []  # times out
    assert s.xread({"st": "$"}, block=50) == []
    adder = spawn_python(
        """
        import sys, time
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            time.sleep(0.3)
            s.xadd("st", {"f": "v"}, id="7-0")
        """,
        store_path,
    )
    t = time.monotonic()
    got = s.xreadgroup("g", "c", {"st": ">"}, block=10_000)
    assert got == [(b"st", [(b"7-0", [(b"f", b"v")])])] and time.monotonic() - t < 5
    adder.wait(30)
    assert s.xread({"st": "0"}, block=0) == [(b"st", [(b"7-0", [(b"f", b"v")])])]  # data: no wait
    with pytest.raises(CommandError, match="negative"):
        s.xreadgroup("g", "c", {"st": ">"}, block=-1)


# ----------------------------------------------------------------- over RESP


@pytest.fixture
def server(tmp_path):
    srv = RunningServer(str(tmp_path / "srv")).start()
    yield srv
    srv.stop()


def test_blocked_xreadgroup_is_served_by_xadd_and_by_destroy(server):
    r = redis.Redis(port=server.port)
    r.xgroup_create("s", "g", "$", mkstream=True)
    results: dict[str, object] = {}

    def read(tag: str, group: str) -> None:
        client = redis.Redis(port=server.port)
        try:
            results[tag] = client.xreadgroup(group, "c", {"s": ">"}, block=5000)
        except redis.ResponseError as exc:
            results[tag] = exc

    t = threading.Thread(target=read, args=("first", "g"))
    t.start()
    time.sleep(0.3)
    xid = r.xadd("s", {"f": "v"})
    t.join(10)
    assert results["first"] == [[b"s", [(xid, {b"f": b"v"})]]]
    assert r.xpending("s", "g")["pending"] == 1

    r.xgroup_create("s", "g2", "$")
    t = threading.Thread(target=read, args=("destroyed", "g2"))
    t.start()
    time.sleep(0.3)
    assert r.xgroup_destroy("s", "g2") == 1
    t.join(10)
    assert "NOGROUP" in str(results["destroyed"])
    assert r.xreadgroup("g", "c", {"s": ">"}, block=50) == []  # times out: redis-py's empty reply


def test_resp_replies_for_groups(server):
    r = redis.Redis(port=server.port)
    r.xadd("s", {"a": "1"}, id="1-0")
    assert r.xgroup_create("s", "g", "0") is True
    assert r.xreadgroup("g", "c", {"s": ">"}) == [[b"s", [(b"1-0", {b"a": b"1"})]]]
    summary = r.xpending("s", "g")
    assert summary["pending"] == 1 and summary["consumers"] == [{"name": b"c", "pending": 1}]
    assert r.xclaim("s", "g", "d", 0, ["1-0"], justid=True) == [b"1-0"]
    assert r.xautoclaim("s", "g", "e", 0, "0-0")[1] == [(b"1-0", {b"a": b"1"})]
    assert r.xinfo_groups("s")[0]["pending"] == 1
    assert {c["name"] for c in r.xinfo_consumers("s", "g")} == {b"c", b"d", b"e"}
    assert r.xinfo_stream("s")["entries-added"] == 1
    assert r.xack("s", "g", "1-0") == 1
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'xgroup\\|create'"):
        r.execute_command("XGROUP", "CREATE", "s")
    pipe = r.pipeline(transaction=True)
    pipe.execute_command("XGROUP", "NOPE")
    with pytest.raises(redis.ResponseError, match="unknown subcommand"):
        pipe.execute()
