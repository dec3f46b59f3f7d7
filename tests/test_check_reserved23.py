"""`kvb check` counts in "bytes checked" the data files' records and headers, not the zeros a writer
reserved (fallocated) after the active file's end: those are reported apart, as `reserved`."""

from __future__ import annotations

import json
import os

from helpers import data_files

from kv_backend import DB
from kv_backend.check import check
from kv_backend.cli import main


def test_one_key_store_counts_its_record_not_the_reserved_space(store_path, capsys):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        end = db.stats()["active_end"]
    (active,) = data_files(store_path)
    size = os.path.getsize(active)
    assert size > end  # space is reserved ahead of the writes
    report = check(store_path)
    assert report.ok and report.notes == []
    assert (report.bytes, report.reserved) == (end, size - end)
    assert main(["check", store_path]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    reserved = f"plus {size - end} reserved after the active file's end (zeros)"
    assert first == f"1 files, 1 records, {end} bytes checked, {reserved}"
    assert main(["check", store_path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["bytes"], out["reserved"]) == (end, size - end)


def test_closed_files_count_whole_and_the_active_one_up_to_its_end(store_path, capsys):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(100):
            db.put(b"k%03d" % i, b"v" * 100)
        end = db.stats()["active_end"]
    *closed, active = data_files(store_path)
    assert closed
    report = check(store_path)
    assert report.ok and report.records == 100
    assert report.bytes == sum(os.path.getsize(p) for p in closed) + end
    assert report.reserved == os.path.getsize(active) - end


def test_a_store_without_reserved_space_prints_no_reserved_part(store_path, capsys):
    with DB(store_path) as db:
        db.put(b"k", b"v")
        end = db.stats()["active_end"]
    (active,) = data_files(store_path)
    os.truncate(active, end)  # as a file system without fallocate leaves it
    report = check(store_path)
    assert (report.bytes, report.reserved) == (end, 0)
    assert main(["check", store_path]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"1 files, 1 records, {end} bytes checked"
