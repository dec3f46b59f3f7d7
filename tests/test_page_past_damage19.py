"""A STATE page whose tail names an older data file (damage to its major id) with an end inside one of
its records is damaged (read as without a page), found by following the file's records from its header
to that end. A damaged record before the end (a bit flipped in its value) stopped the search, so the
page was trusted: kvb check reported the records after the end as cut off, and a writer's recovery
closed that file at the end, cutting off every acknowledged record after it. A damaged record whose
lengths the sound record right after it confirms is stepped over, as replay steps over it, and so is a
damaged region, up to where replay reads on after it."""

from __future__ import annotations

import os
import sys

import pytest
import test_format_reader11 as reader
from test_rotation_damage15 import _view

from kv_backend import DB
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.files import data_name, list_data_files
from kv_backend.state import published_tail


@pytest.mark.parametrize("damage", ["value", "header"])
def test_damage_before_the_end_does_not_make_the_page_trusted(store_path, damage):
    """A bit flipped in a record's value (its lengths confirmed), or zeros over its header (a damaged
    region, up to where replay reads on)."""
    with DB(store_path, max_file_size=4096) as db:
        for i in range(90):
            db.put(b"k%02d" % i, b"\xff" * 100)
    major = published_tail(store_path)[0]
    older = os.path.join(store_path, data_name((major - 1, 0)))
    assert (major - 1, 0) in list_data_files(store_path)
    records = reader.records(older)
    flipped, inside = records[2], records[-4]
    with open(older, "r+b") as f:
        if damage == "value":
            f.seek(flipped[0] + rec.HEADER_SIZE + flipped[4] + 5)
            f.write(b"\x00")
        else:
            f.seek(flipped[0])
            f.write(bytes(rec.HEADER_SIZE))
    with open(os.path.join(store_path, "STATE"), "r+b") as f:
        f.seek(16)  # (the tail word: an end in the value of a record of the older file)
        f.write(
            (((major - 1) << 40) | (inside[0] + rec.HEADER_SIZE + inside[4] + 30)).to_bytes(8, sys.byteorder)
        )
    report = check(store_path)
    assert [(p.path, p.offset) for p in report.problems] == [(older, flipped[0])]
    assert any("a damaged page" in note for note in report.notes)
    want = {b"k%02d" % i: b"\xff" * 100 for i in range(90)}
    if damage == "value":
        want[flipped[3]] = "damaged"
    else:
        del want[flipped[3]]  # (its header lost: which key the region held cannot be known)
    assert _view(store_path, read_only=True) == (want, 1)
    reader.assert_same(store_path)
    assert _view(store_path, read_only=False) == (want, 1)
    assert os.path.getsize(older) == records[-1][0] + rec.HEADER_SIZE + records[-1][4] + records[-1][5]
    assert [(p.path, p.offset) for p in check(store_path).problems] == [(older, flipped[0])]
