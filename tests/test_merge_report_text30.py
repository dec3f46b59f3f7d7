"""The text of a MergeReport (what kvb merge prints) says what a merge reclaimed, and says so plainly
where it reclaimed nothing and the store grew (a store of records larger than max_file_size, each in a
file of its own after the merge, with the headers of the files it added), rather than "-118 reclaimed"."""

from __future__ import annotations

import os

from kv_backend import DB
from kv_backend.merge import MergeReport


def test_reclaimed_bytes_are_said_as_before():
    text = str(MergeReport(files_before=3, files_after=1, bytes_before=5000, bytes_after=1000))
    assert "5000 -> 1000 bytes (4000 reclaimed)" in text


def test_a_merge_that_grew_the_store_says_so():
    text = str(MergeReport(files_before=4, files_after=13, bytes_before=180419, bytes_after=180537))
    assert "180419 -> 180537 bytes (nothing reclaimed: 118 more)" in text
    assert "-118" not in text
    text = str(MergeReport(files_before=1, files_after=1, bytes_before=40, bytes_after=40))
    assert "40 -> 40 bytes (0 reclaimed)" in text


def test_a_real_merge_that_grew_the_store(tmp_path):
    with DB(str(tmp_path / "s"), max_file_size=4096) as db:
        with db.batch() as b:  # one file of ten records, each of which fills a merged file of its own
            for i in range(10):
                b.put(b"k%d" % i, os.urandom(3000))
        report = db.merge()
    assert report.bytes_after > report.bytes_before
    assert f"(nothing reclaimed: {report.bytes_after - report.bytes_before} more)" in str(report)
    assert "(-" not in str(report)
