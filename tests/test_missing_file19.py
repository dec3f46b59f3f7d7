"""A closed data file deleted from a store (by hand, by a cleanup script) went unnoticed: the keys whose
newest records it held read their older values, or were gone, and nothing said so (kvb check, salvage
and an open all read the other files as a whole store). The names of the files say some of it: a
rotation names its file after the active one, a merge its outputs after its newest input and the active
file after its outputs, and a merge removes its inputs oldest first, so a gap in the sequence the names
follow is a file missing. kvb check and kvb salvage note it, an open logs a warning naming it (#2)."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from helpers import exit_code, fork_child, kill_at_call

from kv_backend import DB
from kv_backend.check import check
from kv_backend.files import data_name, hint_name, list_data_files, missing_data_files
from kv_backend.salvage import salvage


def _store(path: str) -> None:
    """Merged outputs (a group of a major), then files of minor id 0 after them."""
    with DB(path, max_file_size=4096) as db:
        for i in range(120):
            db.put(b"k%03d" % i, b"old" * 30)
        db.merge(wait=True)
        for i in range(120):
            db.put(b"k%03d" % i, b"new" * 30)
    fids = list_data_files(path)
    assert len([f for f in fids if f[1]]) >= 3 and len([f for f in fids if not f[1]]) >= 4


def _missing_notes(notes: list[str]) -> list[str]:
    return [n for n in notes if "missing from the sequence" in n]


def test_an_intact_store_has_no_gap(store_path):
    _store(store_path)
    assert missing_data_files(list_data_files(store_path)) == []
    assert _missing_notes(check(store_path).notes) == []


@pytest.mark.parametrize("which", ["middle", "first after the merge", "middle output"])
def test_a_deleted_file_is_noted_by_kvb_check_salvage_and_an_open(store_path, tmp_path, caplog, which):
    _store(store_path)
    fids = list_data_files(store_path)
    outputs, actives = [f for f in fids if f[1]], [f for f in fids if not f[1]]
    gone = {"middle": actives[2], "first after the merge": actives[0], "middle output": outputs[1]}[which]
    with DB(store_path, read_only=True) as db:
        held = [k for k in db.unordered_keys() if db[k] == b"new" * 30]
    os.unlink(os.path.join(store_path, data_name(gone)))
    if os.path.exists(os.path.join(store_path, hint_name(gone))):
        os.unlink(os.path.join(store_path, hint_name(gone)))
    assert missing_data_files(list_data_files(store_path)) == [gone]
    report = check(store_path)
    (note,) = _missing_notes(report.notes)
    assert data_name(gone) in note and report.ok  # (a note: which keys it held cannot be known)
    salvaged = salvage(store_path, str(tmp_path / "copy"))
    assert [data_name(gone) in n for n in _missing_notes(salvaged.notes)] == [True]
    caplog.set_level(logging.WARNING, logger="kv_backend.db")
    with DB(store_path, read_only=True) as db:
        warned = [r.getMessage() for r in caplog.records if "missing from the sequence" in r.getMessage()]
        assert len(warned) == 1 and data_name(gone) in warned[0]
        if gone[1] == 0:  # (what it means: its keys read their older values, or are gone)
            assert any(db.get(k) != b"new" * 30 for k in held)


@pytest.mark.parametrize("call, killed_at", [("replace", 2), ("replace", 3), ("unlink", 1), ("unlink", 3)])
def test_a_merge_killed_midway_leaves_no_gap(store_path, call, killed_at):
    """Renames output by output and removals oldest first: whatever step a kill stops it at, the names
    left follow their sequence (no note for a store nothing was taken from)."""
    _store(store_path)

    def child() -> None:
        kill_at_call(call, killed_at)  # (the child's own os module)
        with DB(store_path, max_file_size=4096) as db:
            db.merge()

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    assert missing_data_files(list_data_files(store_path)) == []
    assert _missing_notes(check(store_path).notes) == []
    with DB(store_path) as db:  # (and the next merge leaves none either)
        db.merge(wait=True)
        db.put(b"after", b"merge")
    assert missing_data_files(list_data_files(store_path)) == []


def test_the_sequence_the_names_follow():
    assert missing_data_files([(1, 0), (2, 0), (4, 0)]) == [(3, 0)]
    assert missing_data_files([(2, 0), (3, 0)]) == []  # (the first of a store cannot be told)
    assert missing_data_files([(5, 1), (5, 2), (6, 0), (7, 0)]) == []
    assert missing_data_files([(5, 1), (5, 2), (7, 0)]) == [(6, 0)]  # (the file after the outputs)
    assert missing_data_files([(5, 1), (5, 3), (6, 0)]) == [(5, 2)]
    # (a merge killed before removing all its inputs: what is left of them comes first, unchecked)
    assert missing_data_files([(3, 0), (5, 0), (5, 1), (6, 0)]) == []
