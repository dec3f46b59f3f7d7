"""A hint file whose size field and entries are both damaged, beside a data file that lost bytes.

The hint file's header is outside its checksum. Where a merged data file lost its last records and the
size field of its hint file was damaged too (a bit flipped high), the hint file still checked out for
that size with records past the data file's end: every reader took the data file for one that lost
bytes up to that size, 2^40 of them. `kvb check` searched those zeros for a record for hours, and a
writer's recovery grew the file to a terabyte. A merge output holds nothing but the records its hint
file lists, so the size a merge writes is where the last of them ends: a hint file giving another is
damaged, and ignored (docs/file-format.md, "Hint files"). Where the entries are damaged too, the
checksum refuses the hint file, as before. Either way no reader hangs, returns a value that is not
there, or loses a record the data file still holds.
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest
from helpers import run_python
from test_engine_rare16 import _merged_store
from test_engine_review13 import _offsets

from kv_backend import DB, CorruptionError
from kv_backend.hint import HINT_HEADER, lost_from

#: The readers, in a child with a timeout (kvb check ran for hours before the fix): each key the data
#: file still holds reads as before, none other than those it lost is missing or damaged, and the file is
#: not grown past the size a merge gave it.
_READERS = """
import json, os, sys
sys.path.insert(0, sys.argv[2])
from test_hint_damage24 import _view
from kv_backend.backup import backup_store
from kv_backend.check import check
from kv_backend.salvage import salvage

store, scratch, merged = sys.argv[1], sys.argv[3], sys.argv[4]
views = [_view(store, read_only=True)]
report = check(store)
salvaged = salvage(store, scratch + "/salvaged")
backup_store(store, scratch + "/backups")
views.append(_view(store, read_only=False))
views.append(_view(store, read_only=True))
with open(scratch + "/out.json", "w") as f:
    json.dump({
        "views": [{k.decode(): getattr(v, "decode", lambda: v)() for k, v in view.items()} for view in views],
        "problems": [[p.path, p.offset] for p in report.problems],
        "salvaged": salvaged.keys_copied,
        "size": os.path.getsize(merged),
    }, f)
"""


def _view(store: str, *, read_only: bool) -> dict:
    out: dict = {}
    with DB(store, read_only=read_only) as db:
        for key in db:
            try:
                out[key] = db.get(key)
            except CorruptionError:
                out[key] = "damaged"
    return out


def _hint_of(merged: str) -> str:
    return merged[: -len(".data")] + ".hint"


def _set_size(hint: str, size: int) -> None:
    with open(hint, "r+b") as f:
        f.seek(16)
        f.write(struct.pack("<Q", size))


def _readers(store: str, tmp_path, merged: str) -> dict:
    import json

    run_python(_READERS, store, os.path.dirname(__file__), str(tmp_path), merged, timeout=60)
    with open(tmp_path / "out.json") as f:
        return json.load(f)


@pytest.mark.parametrize("flipped", [1 << 40, 1 << 33, 100])
def test_a_data_file_that_lost_bytes_beside_a_hint_file_whose_size_is_damaged(store_path, tmp_path, flipped):
    merged = _merged_store(store_path)
    before = {k.decode(): v.decode() for k, v in _view(store_path, read_only=True).items()}
    size = os.path.getsize(merged)
    offsets = _offsets(merged)
    cut = sorted(offsets.values())[-3]
    lost = {k.decode() for k, o in offsets.items() if o >= cut}
    os.truncate(merged, cut)  # (its last three records lost, at a record boundary)
    hint = _hint_of(merged)
    _set_size(hint, size + flipped if flipped == 100 else size | flipped)
    assert lost_from(hint, cut) is None  # (a size past its last record's end: no merge writes one)
    out = _readers(store_path, tmp_path, merged)
    assert out["size"] <= size  # (not filled up to the damaged size)
    for view in out["views"]:
        # The records the data file holds read as before; those it lost are gone (the hint file that
        # named them is damaged), never another value.
        kept = {k: v for k, v in before.items() if k not in lost}
        assert {k: v for k, v in view.items() if k not in lost} == kept
        assert all(view[k] in (before[k], "damaged") for k in lost & set(view))
    assert out["salvaged"] >= len(before) - len(lost)


def test_a_hint_file_whose_size_field_and_entries_are_damaged_is_ignored(store_path, tmp_path):
    """Its entries damaged as well (a location's offset flipped past the data file's end), its checksum
    not matching them: the hint file is ignored, the data file, whole, replayed."""
    merged = _merged_store(store_path)
    before = {k.decode(): v.decode() for k, v in _view(store_path, read_only=True).items()}
    size = os.path.getsize(merged)
    hint = _hint_of(merged)
    with open(hint, "r+b") as f:
        head = f.read(HINT_HEADER.size)
        count = HINT_HEADER.unpack(head)[2]
        at = HINT_HEADER.size + 4 * count + 8 * (count - 1)  # (the last entry's location)
        f.seek(at)
        loc = struct.unpack("<Q", f.read(8))[0]
        f.seek(at)
        f.write(struct.pack("<Q", loc | (1 << 60)))  # (its offset 2^28 past where it was)
    _set_size(hint, size | (1 << 40))
    assert lost_from(hint, size) is None
    out = _readers(store_path, tmp_path, merged)
    assert out["size"] == size and out["problems"] == []
    assert all(view == before for view in out["views"])
    assert out["salvaged"] == len(before)


def test_a_lost_tail_is_still_filled_where_the_size_is_where_the_last_record_ends(store_path):
    """The hint file intact (its size the end of its last record, as a merge writes it): the data file
    that lost bytes is read as filled up to there, each key lost damaged, as before."""
    merged = _merged_store(store_path)
    size = os.path.getsize(merged)
    offsets = _offsets(merged)
    cut = sorted(offsets.values())[-3]
    os.truncate(merged, cut)
    hint = _hint_of(merged)
    with open(hint, "rb") as f:
        raw = f.read()
    assert zlib.crc32(raw[HINT_HEADER.size :]) == HINT_HEADER.unpack(raw[: HINT_HEADER.size])[4]
    assert lost_from(hint, cut) == size
    view = _view(store_path, read_only=False)
    lost = sorted(k for k, o in offsets.items() if o >= cut)
    assert sorted(k for k, v in view.items() if v == "damaged") == lost
    assert os.path.getsize(merged) == size
