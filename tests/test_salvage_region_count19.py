"""kvb salvage counts a damaged region as kvb check and replay do (docs/engine.md: the region runs up
to the next sound record, or the published end): a damaged record whose lengths lead to nothing but
zeros is a damaged header, so the record and the zeros after it are one region. Salvage took zeros
after where such a record's lengths point for a confirmation of them, and reported two regions (the
record, then the zeros) where kvb check reported one: for a data file cut below its published end, as
for a closed file whose last records were zeroed. And for a merged file read through its hint file,
salvage listed one region per entry pointing to a damaged record, where kvb check lists the regions of
its records."""

from __future__ import annotations

import os

import pytest
import test_format_reader11 as reader
from test_engine_rare16 import _merged_store

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage
from kv_backend.state import published_tail


def _regions(store: str, dst: str) -> tuple[list[tuple[str, int]], list[tuple[str, int, int]], list[bytes]]:
    """(kvb check's problems, kvb salvage's regions, its damaged keys) of ``store``."""
    sv = salvage(store, dst)
    problems = [(p.path, p.offset) for p in check(store).problems]
    return problems, [(r.path, r.offset, r.length) for r in sv.regions], sv.damaged_keys


def _filled_store(path: str) -> tuple[str, int, list]:
    """A store whose active file has a newer file after it (a rotation that died): (that file, its
    published end, its records)."""
    with DB(path) as db:
        for i in range(20):
            db.put(b"k%d" % i, b"v" * 50)
    major, end = published_tail(path)
    with open(os.path.join(path, data_name((major + 1, 0))), "wb") as f:
        f.write(rec.FILE_HEADER_BYTES)
    active = os.path.join(path, data_name((major, 0)))
    return active, end, reader.records(active)


@pytest.mark.parametrize("value", [False, True])
def test_a_file_cut_below_its_published_end_is_one_region(store_path, tmp_path, value):
    """Cut inside the second to last record (its header, or its value): that record's lengths point at
    the zeros that stand in for the last one, up to the published end."""
    active, end, records = _filled_store(store_path)
    at = records[-2][0]
    os.truncate(active, at + (rec.HEADER_SIZE + records[-2][4] + 1 if value else 1))
    problems, regions, damaged = _regions(store_path, str(tmp_path / "copy"))
    assert problems == [(active, at)]
    assert regions == [(active, at, end - at)]
    with DB(store_path, read_only=True) as db:
        assert db.stats()["corrupt_records"] == 1
    if value:
        assert damaged == [records[-2][3]]  # (its key is whole: it reads as damaged, as for replay)


def test_a_closed_file_whose_last_record_was_zeroed_is_one_region(store_path, tmp_path):
    """A closed file whose last record's value and the records after it turned to zeros, in place."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(80):
            db.put(b"k%d" % (i % 10), b"%d-" % i + b"v" * 100)
    closed = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    records = reader.records(closed)
    at = records[-3][0]
    with open(closed, "r+b") as f:
        f.seek(at + rec.HEADER_SIZE + records[-3][4] + 2)
        f.write(bytes(os.path.getsize(closed) - f.tell()))
    problems, regions, _ = _regions(store_path, str(tmp_path / "copy"))
    assert problems == [(closed, at)]
    assert regions == [(closed, at, os.path.getsize(closed) - at)]


@pytest.mark.parametrize("damage", ["zeros", "values"])
def test_a_merged_file_read_through_its_hint_file_has_the_regions_kvb_check_has(store_path, tmp_path, damage):
    """A merged file read through its hint file: salvage listed one region per entry pointing to a
    damaged record, so two records zeroed in place (one region for kvb check and replay: the zeros hide
    where the second starts) were two; two records whose values took a bit flip each stay two regions
    (their lengths are confirmed)."""
    merged = _merged_store(store_path)
    records = reader.records(merged)
    first, second = records[3], records[4]
    with open(merged, "r+b") as f:
        if damage == "zeros":
            f.seek(first[0])
            f.write(bytes(records[5][0] - first[0]))
        else:
            for r in (first, second):
                f.seek(r[0] + rec.HEADER_SIZE + r[4])
                f.write(b"\xff")
    problems, regions, damaged = _regions(store_path, str(tmp_path / "copy"))
    assert [(path, offset) for path, offset, _ in regions] == problems
    want = [(merged, first[0])] if damage == "zeros" else [(merged, first[0]), (merged, second[0])]
    assert problems == want
    assert damaged == sorted([first[3], second[3]])
