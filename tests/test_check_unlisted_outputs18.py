"""A merge of an earlier version whose live records filled more than 999 output files named those past
the 999th with a four-digit minor id (``0000000007-1000.data``, and its hint file), which no reader lists:
stores merged so hold them still, their keys missing since, and ``kvb check`` said nothing of them. It
now notes them by name, says what they are and that they are to be kept; they are no damage (the exit
status stays 0), and opening, checking or merging the store leaves them as they are."""

from __future__ import annotations

import json
import os
import shutil

from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name, hint_name, list_data_files

UNLISTED = ["0000000001-1000.data", "0000000001-1000.hint", "0000000001-1001.data"]


def _store_with_unlisted_outputs(tmp_path) -> str:
    """A merged store holding files named as that merge named its outputs past the 999th (copies of
    its merged data file and hint file)."""
    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k", b"old")
        db.put(b"k", b"kept")
        db.merge()
    fid = list_data_files(path)[0]
    for name, source in zip(UNLISTED, [data_name(fid), hint_name(fid), data_name(fid)], strict=True):
        shutil.copyfile(os.path.join(path, source), os.path.join(path, name))
    return path


def test_check_notes_files_with_a_four_digit_minor_id(tmp_path):
    path = _store_with_unlisted_outputs(tmp_path)
    present = sorted(UNLISTED)
    report = check(path)
    assert report.ok and not report.problems
    notes = [n for n in report.notes if "four-digit minor id" in n]
    assert len(notes) == 1, report.notes
    assert all(name in notes[0] for name in present), notes
    assert f"{len(present)} file(s)" in notes[0]
    assert "not part of the store" in notes[0] and "Keep" in notes[0]


def test_kvb_check_prints_the_note_and_exits_0(tmp_path, capsys):
    path = _store_with_unlisted_outputs(tmp_path)
    code, out, _ = run(capsys, "check", path)
    assert code == 0
    assert "0000000001-1000.data" in out and "four-digit minor id" in out
    code, out, _ = run(capsys, "check", path, "--json")
    assert code == 0
    assert any("0000000001-1001.data" in note for note in json.loads(out)["notes"])


def test_the_files_are_left_as_they_are(tmp_path):
    path = _store_with_unlisted_outputs(tmp_path)
    before = {n: (tmp_path / "s" / n).read_bytes() for n in UNLISTED}
    with DB(path) as db:
        db.merge()
        assert db.get(b"k") == b"kept"
    after = {n: (tmp_path / "s" / n).read_bytes() for n in UNLISTED}
    assert after == before


def test_no_note_without_such_files(tmp_path):
    path = str(tmp_path / "s")
    with DB(path) as db:
        db.put(b"k", b"v")
        db.merge()
    assert not any("minor id" in note for note in check(path).notes)
