"""A damaged data-file header counts in stats()['corrupt_records'] as kvb check, a backup and kvb
salvage count it: the engine never counted one (a merged file cut to 0 bytes, read through its hint
file as filled with zeros: kvb check 2, stats() 1; a damaged magic: kvb check 1, stats() 0). And kvb
salvage counts the zeros standing in for the records such a file lost as one region, as the others do,
where it listed one region per record its hint file points to there."""

from __future__ import annotations

import os

import pytest
from test_engine_rare16 import _merged_store

from kv_backend import DB, CorruptionError
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage


def _counts(
    store: str, tmp_path, name: str
) -> tuple[list[tuple[str, int]], list[int], list[tuple[str, int]], int]:
    """(kvb check's problems, stats()'s count for a read-only open, a writer's and a read-only one after,
    kvb salvage's regions, a backup's count of damaged records)."""
    problems = [(p.path, p.offset) for p in check(store).problems]
    stats = []
    for read_only in (True, False, True):
        with DB(store, read_only=read_only) as db:
            stats.append(db.stats()["corrupt_records"])
    regions = [(r.path, r.offset) for r in salvage(store, str(tmp_path / f"copy-{name}")).regions]
    with DB(store, read_only=True) as db:
        damaged = db.backup(f"file://{tmp_path / 'backups'}", name=name).damaged_records
    return problems, stats, regions, damaged


@pytest.mark.parametrize("length", [0, 5])
def test_a_merged_file_cut_inside_its_header_counts_its_header_and_its_records(store_path, tmp_path, length):
    merged = _merged_store(store_path)
    os.truncate(merged, length)
    problems, stats, regions, damaged = _counts(store_path, tmp_path, "cut")
    assert problems == [(merged, 0), (merged, 16)]
    assert stats == [2, 2, 2]
    assert regions == problems
    assert damaged == 2


@pytest.mark.parametrize("which", ["merged", "active"])
def test_a_damaged_magic_counts(store_path, tmp_path, which):
    merged = _merged_store(store_path)
    path = (
        merged if which == "merged" else os.path.join(store_path, data_name(list_data_files(store_path)[-1]))
    )
    with open(path, "r+b") as f:
        f.write(b"KVBD\xff")
    problems, stats, regions, damaged = _counts(store_path, tmp_path, which)
    assert problems == [(path, 0)]
    assert stats == [1, 1, 1]
    assert regions == problems
    assert damaged == 1
    with DB(store_path) as db:
        assert db.get(b"after") == b"merge"


def test_salvage_counts_the_records_a_merged_file_lost_as_one_region(store_path, tmp_path):
    """Cut past its header, below the size its hint file gives: one region, where kvb check has it, and
    every key whose record it lost is damaged (not copied)."""
    merged = _merged_store(store_path)
    with DB(store_path, read_only=True) as db:
        keys = sorted(k for k in db if k != b"after")
    os.truncate(merged, os.path.getsize(merged) // 2)
    problems, stats, regions, _ = _counts(store_path, tmp_path, "half")
    assert len(problems) == 1 and regions == problems and stats == [1, 1, 1]
    report = salvage(store_path, str(tmp_path / "again"))
    with DB(store_path, read_only=True) as db:
        lost = []
        for key in keys:
            try:
                db.get(key)
            except CorruptionError:
                lost.append(key)
    assert lost and report.damaged_keys == lost
