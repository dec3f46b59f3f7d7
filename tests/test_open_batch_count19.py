"""A closed data file cut at a record boundary inside a batch (its COMMIT and what followed lost): kvb
check reported the batch still open there as damage and a backup counted it, but stats() did not, and
kvb salvage listed no region for it. The batch is ignored, as the format has it (its keys read their
older values), and every reader counts it as one damaged region."""

from __future__ import annotations

import os

import test_format_reader11 as reader

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.salvage import salvage


def test_a_closed_file_that_lost_a_batch_s_commit_counts_one_region(store_path, tmp_path):
    with DB(store_path, max_file_size=4096) as db:
        for i in range(40):
            with db.batch() as b:
                for j in range(3):
                    b.put(b"k%d-%d" % (i % 7, j), b"%d-" % i + b"v" * 60)
    assert len(list_data_files(store_path)) > 2
    closed = os.path.join(store_path, data_name(list_data_files(store_path)[0]))
    records = reader.records(closed)
    # (the second record of the last batch whose three records and COMMIT lie in the file)
    commits = [r[0] for r in records if r[1] == rec.COMMIT]
    batch = [r for r in records if r[0] > commits[-2] and r[0] < commits[-1]]
    first = batch[0][0]
    os.truncate(closed, batch[1][0])
    problems = [(p.path, p.offset) for p in check(store_path).problems]
    assert problems == [(closed, first)]
    counts = []
    for read_only in (True, False, True):
        with DB(store_path, read_only=read_only) as db:
            counts.append(db.stats()["corrupt_records"])
    assert counts == [1, 1, 1]
    report = salvage(store_path, str(tmp_path / "copy"))
    assert [(r.path, r.offset, r.length) for r in report.regions] == [(closed, first, batch[1][0] - first)]
    with DB(store_path, read_only=True) as db:
        assert db.backup(f"file://{tmp_path / 'backups'}").damaged_records == 1
    reader.assert_same(store_path)
