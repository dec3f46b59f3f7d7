"""Smoke test of benchmarks/bench_engine.py: every part runs on tiny sizes (no timing assertions)."""

from __future__ import annotations

import gc
import math
import os
import sys

import pytest

BENCH_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH_DIR)

import bench_engine as be  # noqa: E402

N = 200


@pytest.fixture(scope="module", autouse=True)
def _earlier_objects_frozen():
    """The benchmark calls gc.collect() between its steps (20 times in the command-line run), and in a
    test process that has run a few thousand tests first each call walked its whole heap (over a
    million objects, 0.3 s a call: 7 s for that run instead of 1 s). The objects alive before these
    tests are set aside from the collector meanwhile (gc.freeze), so each collection walks what the
    benchmark made, and are handed back to it after them (gc.unfreeze)."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """One tiny run of every part: each store in one process, the key directory, two processes."""
    tmp = str(tmp_path_factory.mktemp("bench"))
    keys = be.make_keys(N)
    value = be.make_value()
    single = be.bench_one_process(
        list(be.STORES), keys, value, tmp, cap=5.0, min_time=0.0, reopens=1, memory=False
    )
    memory = be.keydir_memory(2_000, tmp)
    multi = {name: be.bench_multi(name, tmp, procs=2, ops=100, keyspace=50) for name in be.STORES}
    leftovers = os.listdir(tmp)
    return single, multi, memory, leftovers


def test_keys_are_distinct_and_sized():
    keys = be.make_keys(1_000, seed=5)
    assert len(set(keys)) == 1_000
    assert {len(k) for k in keys} == {be.KEY_SIZE}
    assert keys == be.make_keys(1_000, seed=5)
    assert len(be.make_value()) == be.VALUE_SIZE


def test_every_store_runs_every_operation(results):
    single, _, _, leftovers = results
    assert leftovers == []  # every temporary store was removed
    for name, r in single.items():
        if r.skipped:
            assert r.skipped == "not installed", name
            continue
        for op in (r.set, r.get, r.delete):
            assert op is not None and op.total == N and op.done > 0, name
            assert op.seconds > 0
        assert r.open_ms > 0
    assert single[be.KVB].skipped is None
    assert single["dict+pickle"].skipped is None
    assert single["dbm"].label.startswith("dbm (dbm.")


def test_memory_is_measured_in_a_child(results):
    _, _, memory, _ = results
    # a 16-byte key costs at least its bytes object in the key directory, and far less than a kilobyte
    assert memory["keys"] == 2_000
    assert 33 < memory["heap_per_key"] < 1_000
    assert not math.isnan(memory["rss_per_key"])


def test_several_processes_share_one_store(results):
    _, multi, _, _ = results
    kvb = multi[be.KVB]
    assert kvb.skipped is None, kvb.errors
    assert kvb.procs == 2 and kvb.ops == 100
    assert kvb.ops_per_s > 0 and 0 < kvb.p50_us <= kvb.p99_us
    assert kvb.set_p99_us > 0 and kvb.get_p99_us > 0
    for name in ("sqlitedict", "dbm", "dict+pickle"):
        assert multi[name].skipped == "not safe for several processes"
    if multi["diskcache"].skipped is None:
        assert multi["diskcache"].ops_per_s > 0


def test_report_tables_checks_and_chart(results, tmp_path):
    single, multi, memory, _ = results
    found = be.checks(single, multi, memory)
    names = [c.name for c in found]
    assert any(n.startswith("set >= 10x") for n in names)
    keydir = next(c for c in found if c.name.startswith("key directory"))
    assert "at 2,000 keys" in keydir.detail and "indicative only" in keydir.detail
    assert all(c.line().split()[0] in ("PASS", "FAIL", "SKIP") for c in found)
    params = {"keys": N, "procs": 2, "mp_ops": 100, "keyspace": 50, "quick": True}
    md = be.markdown(single, multi, memory, found, params, note="Provisional figures.")
    assert "| kv_backend |" in md and "![" in md and "charts/engine.png" in md
    assert "**Provisional figures.**" in md
    text = be.text_table(*be.single_table(single))
    assert "kv_backend" in text and "diskcache" in text
    assert any(line.startswith("get: ") for line in be.ratio_lines(single))
    chart = tmp_path / "engine.png"
    be.draw_chart(single, multi, str(chart))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_library_is_skipped_not_fatal(monkeypatch, tmp_path):
    fake = be.Store(
        "nosuchstore",
        "no_such_module_for_kv_backend_bench",
        be._kvb_open,
        lambda h: h.close(),
        lambda h: h.put,
        lambda h: h.get,
        lambda h: h.delete,
        "nothing",
    )
    monkeypatch.setitem(be.STORES, "nosuchstore", fake)
    r = be.bench_one_process(["nosuchstore"], be.make_keys(10), be.make_value(), str(tmp_path))["nosuchstore"]
    assert r.skipped == "not installed"
    m = be.bench_multi("nosuchstore", str(tmp_path))
    assert m.skipped == "not installed"
    _, rows = be.single_table({"nosuchstore": r})
    assert rows[0][1] == "skipped: not installed"
    assert be.checks({"nosuchstore": r}, {}, None)[0].ok is None


def test_a_store_that_raises_is_reported_and_the_others_go_on(monkeypatch, tmp_path):
    def broken_put(handle):
        def put(key, value):
            if len(handle) >= 5:
                raise RuntimeError("disk on fire")
            handle[key] = value

        return put

    broken = be.Store(
        "brokenstore",
        "pickle",
        be.PickledDict.load,
        lambda d: d.close(),
        broken_put,
        lambda d: d.__getitem__,
        lambda d: d.__delitem__,
        "nothing",
    )
    monkeypatch.setitem(be.STORES, "brokenstore", broken)
    got = be.bench_one_process(
        ["brokenstore", "dict+pickle"],
        be.make_keys(50),
        be.make_value(),
        str(tmp_path),
        min_time=0.0,
        reopens=1,
    )
    assert got["brokenstore"].skipped == "failed: RuntimeError: disk on fire"
    ok = got["dict+pickle"]
    assert ok.skipped is None and ok.set.done == ok.get.done == ok.delete.done == 50
    assert os.listdir(tmp_path) == []


def test_command_line_run_prints_targets(capsys, tmp_path):
    args = be.parse_args(
        [
            "--quick",  # each figure measured for 0.3 s, not 1 s: the same output, sooner
            "--keys",
            "100",
            "--memory-keys",
            "0",
            "--procs",
            "2",
            "--mp-ops",
            "50",
            "--rounds",
            "2",
            "--only",
            "kv_backend",
            "--dir",
            str(tmp_path),
            "--no-write",
        ]
    )
    assert be.run(args) == 0
    out = capsys.readouterr().out
    assert "One process, microseconds per operation" in out
    assert "SKIP  set >= 10x faster than diskcache" in out  # diskcache was left out of this run
    assert os.listdir(tmp_path) == []


def test_best_of_two_rounds_keeps_the_fastest_figures():
    a = be.SingleResult("kv_backend", label="kv_backend", open_ms=5.0, heap_per_key=120.0, memory_keys=10)
    a.set, a.get, a.delete = be.Timing(2.0, 100, 100), be.Timing(1.0, 100, 100), be.Timing(1.0, 50, 100)
    b = be.SingleResult("kv_backend", label="kv_backend", open_ms=7.0)
    b.set, b.get, b.delete = be.Timing(1.0, 100, 100), be.Timing(3.0, 100, 100), be.Timing(4.0, 100, 100)
    best = be.best_of(a, b)
    assert best.set is b.set and best.get is a.get and best.delete is a.delete
    assert best.open_ms == 5.0 and best.heap_per_key == 120.0 and best.memory_keys == 10
    assert best.notes == ["delete: 50 of 100 keys"]
    skipped = be.SingleResult("lmdb", skipped="not installed")
    assert be.best_of(skipped, skipped).skipped == "not installed"


def test_percentile_nearest_rank():
    values = list(range(1, 101))
    assert be.percentile(values, 50) == 50
    assert be.percentile(values, 99) == 99
    assert be.percentile(values, 100) == 100
    assert be.percentile([7], 99) == 7
    assert math.isnan(be.percentile([], 50))
