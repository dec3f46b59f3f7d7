"""Redis streams in ``Structures``: XADD IDs, ranges, trimming, deletion, many processes, kills, bad input."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest
from helpers import spawn_python
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from zygote import Zygote

from kv_backend.structures import CommandError, Structures, WrongTypeError


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


def test_an_entry_record_keeps_its_layout_with_empty_fields_and_values(s):
    # docs/redis.md: an entry's record is its fields and values, each after a 4-byte length
    assert s.xadd("st", [("", ""), ("f", 12)], id="1-1") == b"1-1"
    assert s.xrange("st") == [(b"1-1", [(b"", b""), (b"f", b"12")])]
    raw = s.db.get(b"\x00x\x00\x00\x00\x02st" + (1).to_bytes(8, "big") + (1).to_bytes(8, "big"))
    assert raw == b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01f\x00\x00\x00\x0212"


def test_ids_ranges_and_fields(s):
    assert s.xadd("st", {"a": 1, "b": "two"}, id="1-1") == b"1-1"
    assert s.xadd("st", [("a", "3"), ("a", "dup")], id="1-*") == b"1-2"  # fields keep order and repeats
    assert s.xadd("st", {"c": b"\x00\xff"}, id="5") == b"5-0"
    assert s.xlen("st") == 3
    assert s.type("st") == "stream"
    assert s.xrange("st") == [
        (b"1-1", [(b"a", b"1"), (b"b", b"two")]),
        (b"1-2", [(b"a", b"3"), (b"a", b"dup")]),
        (b"5-0", [(b"c", b"\x00\xff")]),
    ]
    assert [e[0] for e in s.xrevrange("st", count=2)] == [b"5-0", b"1-2"]
    assert [e[0] for e in s.xrange("st", "(1-1", "5")] == [b"1-2", b"5-0"]
    assert [e[0] for e in s.xrange("st", "1", "1")] == [b"1-1", b"1-2"]  # a whole millisecond
    assert s.xrange("st", "5-1", "+") == [] and s.xrange("missing") == []
    with pytest.raises(CommandError, match="equal or smaller"):
        s.xadd("st", {"x": 1}, id="5-0")
    with pytest.raises(CommandError, match="greater than 0-0"):
        s.xadd("new", {"x": 1}, id="0-0")


def test_auto_ids_increase_even_within_one_millisecond(s):
    ids = [s.xadd("auto", {"i": i}) for i in range(300)]
    parsed = [tuple(map(int, i.split(b"-"))) for i in ids]
    assert parsed == sorted(parsed) and len(set(parsed)) == 300
    assert abs(parsed[-1][0] - time.time() * 1000) < 60_000
    s.xadd("future", {"a": 1}, id=f"{int(time.time() * 1000) + 10**9}-5")
    assert s.xadd("future", {"a": 2}).endswith(b"-6")  # the clock is behind the last ID: same ms, next seq


def test_trimming_and_deletion(s):
    for i in range(1, 11):
        s.xadd("t", {"i": i}, id=f"{i}-0")
    assert s.xtrim("t", maxlen=7) == 3
    assert s.xrange("t")[0][0] == b"4-0"
    assert s.xtrim("t", minid="6") == 2
    assert s.xadd("t", {"i": 11}, id="11-0", maxlen=3) == b"11-0"
    assert [e[0] for e in s.xrange("t")] == [b"9-0", b"10-0", b"11-0"]
    assert s.xtrim("t", maxlen=0, approximate=True, limit=1) == 1  # LIMIT caps what goes
    assert s.xdel("t", "10-0", "10-0", "99-0") == 1
    assert s.xdel("missing", "1-0") == 0
    assert s.xtrim("t", maxlen=0) == 1
    assert s.xlen("t") == 0 and s.exists("t") == 1  # an empty stream stays, as in Redis
    assert s.xadd("t", {"a": 1}, id="11-1") == b"11-1"  # its last ID too
    with pytest.raises(CommandError, match="equal or smaller"):
        s.xadd("t", {"a": 1}, id="10-0")
    assert s.xadd("gone", {"a": 1}, nomkstream=True) is None and s.exists("gone") == 0
    s.xadd("m0", {"a": 1}, maxlen=0)
    assert s.xlen("m0") == 0  # MAXLEN 0 trims the entry it adds


def test_streams_work_with_the_generic_key_commands(s):
    s.xadd("a", {"f": "v"}, id="1-0")
    s.expire("a", 100)
    assert 0 < s.ttl("a") <= 100
    s.xadd("a", {"f": "w"}, id="2-0")
    assert 99 < s.ttl("a") <= 100  # XADD keeps the TTL
    assert s.rename("a", "b")
    assert s.xrange("b") == [(b"1-0", [(b"f", b"v")]), (b"2-0", [(b"f", b"w")])]
    assert s.keys("*") == [b"b"] and s.scan(0, type="stream") == (0, [b"b"])
    assert s.delete("b") == 1
    s.xadd("b", {"f": "new"}, id="1-0")  # a new stream of that name starts empty
    assert s.xlen("b") == 1 and s.db.stats()["keys"] == 2  # its metadata and one entry, no leftovers


def test_bad_input(s):
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.xadd("str", {"a": 1})
    for fn in (s.xlen, s.xrange, s.xrevrange):
        with pytest.raises(WrongTypeError):
            fn("str")
    for bad in ("x", "1-x", "-1", "1-2-3", "", "18446744073709551616"):
        with pytest.raises(CommandError, match="Invalid stream ID"):
            s.xadd("st", {"a": 1}, id=bad)
        with pytest.raises(CommandError, match="Invalid stream ID"):
            s.xrange("st", bad, "+")
    with pytest.raises(CommandError):
        s.xadd("st", {})
    with pytest.raises(CommandError, match="MAXLEN and MINID"):
        s.xadd("st", {"a": 1}, maxlen=1, minid="1")
    with pytest.raises(CommandError, match="LIMIT"):
        s.xadd("st", {"a": 1}, maxlen=1, limit=5)
    with pytest.raises(CommandError, match=">= 0"):
        s.xtrim("st", maxlen=-1)
    with pytest.raises(TypeError):
        s.xadd("st", {"a": object()})
    assert not s.exists("st")  # nothing refused was written


class StreamModel(RuleBasedStateMachine):
    """Streams against a plain-Python model: entries, IDs, trimming, deletion."""

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = tempfile.mkdtemp(prefix="kvb-streams-")
        self.s = Structures(os.path.join(self.dir, "db"))
        self.model: list[tuple[tuple[int, int], list[tuple[bytes, bytes]]]] = []
        self.last = (0, 0)
        self.exists = False

    def teardown(self) -> None:
        self.s.close()
        import shutil

        shutil.rmtree(self.dir, ignore_errors=True)

    @rule(ms=st.integers(0, 6), seq=st.one_of(st.none(), st.integers(0, 3)), n=st.integers(1, 3))
    def add(self, ms: int, seq: int | None, n: int) -> None:
        raw = f"{ms}-*" if seq is None else f"{ms}-{seq}"
        pairs = [(f"f{i}".encode(), f"v{ms}.{i}".encode()) for i in range(n)]
        if seq is None:
            want = (ms, self.last[1] + 1) if ms == self.last[0] else (ms, 0)
            ok = ms >= self.last[0]
        else:
            want = (ms, seq)
            ok = want > self.last and want != (0, 0)
        if not ok:
            with pytest.raises(CommandError):
                self.s.xadd("k", pairs, id=raw)
            return
        assert self.s.xadd("k", pairs, id=raw) == b"%d-%d" % want
        self.model.append((want, pairs))
        self.last = want
        self.exists = True

    @rule(maxlen=st.integers(0, 5))
    def trim(self, maxlen: int) -> None:
        excess = max(0, len(self.model) - maxlen)
        assert self.s.xtrim("k", maxlen=maxlen) == (excess if self.exists else 0)
        del self.model[:excess]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        xid, _ = data.draw(st.sampled_from(self.model))
        assert self.s.xdel("k", f"{xid[0]}-{xid[1]}") == 1
        self.model = [e for e in self.model if e[0] != xid]

    @rule(lo=st.integers(0, 7), hi=st.integers(0, 7), count=st.one_of(st.none(), st.integers(1, 3)))
    def range_(self, lo: int, hi: int, count: int | None) -> None:
        want = [(b"%d-%d" % xid, pairs) for xid, pairs in self.model if lo <= xid[0] <= hi]
        assert self.s.xrange("k", str(lo), str(hi), count) == want[:count]
        assert self.s.xrevrange("k", str(hi), str(lo), count) == want[::-1][:count]

    @invariant()
    def length(self) -> None:
        assert self.s.xlen("k") == len(self.model)
        assert self.s.exists("k") == int(self.exists)


TestStreamModel = StreamModel.TestCase
TestStreamModel.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def test_processes_adding_to_one_stream_get_unique_increasing_ids(store_path):
    code = """
        import json, sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            ids = [s.xadd("shared", {"p": sys.argv[2], "i": i}).decode() for i in range(300)]
        print(json.dumps(ids))
    """
    procs = [spawn_python(code, store_path, str(p), stdout=subprocess.PIPE) for p in range(4)]
    per_process = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    for ids in per_process:  # each process sees its own IDs increase
        parsed = [tuple(map(int, i.split("-"))) for i in ids]
        assert parsed == sorted(parsed)
    with Structures(store_path) as s:
        entries = s.xrange("shared")
        assert [e[0].decode() for e in entries] == sorted(
            (i for ids in per_process for i in ids), key=lambda i: tuple(map(int, i.split("-")))
        )
        assert s.xlen("shared") == 1200


def test_sigkill_during_xadd_and_trim_keeps_stream_consistent(store_path):
    code = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            print("ready", flush=True)
            i = 0
            while True:
                s.xadd("log", {"i": i, "pad": "x" * (i % 50)}, maxlen=200 if i % 3 else None)
                if i % 11 == 0:
                    first = s.xrange("log", count=1)
                    if first:
                        s.xdel("log", first[0][0])
                i += 1
    """
    check = """
        import sys
        from kv_backend.structures import Structures
        with Structures(sys.argv[1]) as s:
            entries = s.xrange("log")
            assert s.xlen("log") == len(entries), (s.xlen("log"), len(entries))
            ids = [tuple(map(int, e[0].split(b"-"))) for e in entries]
            assert ids == sorted(ids) and len(set(ids)) == len(ids)
            values = [int(dict(e[1])[b"i"]) for e in entries]
            assert values == sorted(values)
    """
    rng = random.Random(3)
    with Zygote(code) as writers, Zygote(check) as checkers:
        for _ in range(4):
            writers.kill_when_ready(store_path, delay=rng.uniform(0.05, 0.4))
            checkers.run(store_path)


def test_xread_in_process(s):
    s.xadd("a", {"f": 1}, id="1-0")
    s.xadd("a", {"f": 2}, id="2-0")
    s.xadd("b", {"g": 1}, id="5-0")
    assert s.xread({"a": "1-0", "b": "0", "none": "0"}) == [
        (b"a", [(b"2-0", [(b"f", b"2")])]),
        (b"b", [(b"5-0", [(b"g", b"1")])]),
    ]
    assert s.xread({"a": "0"}, count=1) == [(b"a", [(b"1-0", [(b"f", b"1")])])]
    assert s.xread({"a": "$", "b": "$"}) == []
    s.set("str", "v")
    with pytest.raises(WrongTypeError):
        s.xread({"str": "0"})
    with pytest.raises(CommandError, match="Invalid stream ID"):
        s.xread({"a": "x"})
