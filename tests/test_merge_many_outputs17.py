"""A merge whose live records filled more than 999 output files (a store of more than 999 times its
``max_file_size``: 1 GB with ``max_file_size`` of 1 MiB) named the outputs past the 999th with a
four-digit minor id (``0000000007-1000.data``), which no reader lists: their keys were lost at once,
in the merging process too, and after every reopen, though the merge reported them kept. A merge now
sizes its outputs so that they fit in the minor ids left (larger than ``max_file_size`` where it
must), and never names a file past 999."""

from __future__ import annotations

import os
import re

from kv_backend import DB
from kv_backend.check import check

N = 1010  # one record per 4 KiB file: more than 999 outputs at max_file_size


def test_a_merge_of_more_than_999_files_keeps_every_key(tmp_path):
    path = str(tmp_path / "s")
    with DB(path, max_file_size=4096) as db:
        for i in range(N):
            db.put(b"k%05d" % i, b"%05d" % i * 600)
        db.put(b"k00000", b"new")  # (something to reclaim)
        report = db.merge()
        assert report.records_kept == N
        assert all(db.get(b"k%05d" % i) == b"%05d" % i * 600 for i in range(1, N))
    names = [n for n in os.listdir(path) if n.endswith((".data", ".hint"))]
    assert all(re.fullmatch(r"\d{10}-\d{3}\.(data|hint)", n) for n in names), sorted(names)[-3:]
    with DB(path, read_only=True) as db:
        assert len(db) == N
        assert db.get(b"k00000") == b"new"
        assert all(db.get(b"k%05d" % i) == b"%05d" % i * 600 for i in range(1, N))
    assert check(path).ok
