"""kvb check of a merged (closed) data file cut short, whose hint file still names the keys of the records
it lost, said "N bytes cannot be read as records (what they held is lost)", without saying that the hint
file names those keys, or that their reads raise CorruptionError, as the engine's warning now does. It
says so, naming the keys, in text and --json, before a writer fills the file with zeros and after."""

from __future__ import annotations

import json
import os

import pytest
from test_backup_hint_damage18 import _merged_store
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)
from test_cut_closed_file_words32 import _cut_first_file

from kv_backend import DB
from kv_backend.errors import CorruptionError

HINTED = "its hint file names the keys they held ({keys}), whose reads raise CorruptionError"


@pytest.mark.parametrize("filled", [False, True], ids=["cut", "filled-by-a-writer"])
def test_check_says_the_hint_file_names_the_lost_keys_whose_reads_raise(store_path, capsys, filled):
    store = _merged_store(store_path)
    first = sorted(f for f in os.listdir(store) if f.endswith(".data"))[0]
    size = os.path.getsize(os.path.join(store, first))
    key = _cut_first_file(store, inside="header")
    cut = os.path.getsize(os.path.join(store, first))
    if filled:
        # (a writer's open fills the file with zeros up to its hint file's size)
        with DB(store) as db, pytest.raises(CorruptionError):
            db.get(key)
        assert os.path.getsize(os.path.join(store, first)) == size
    code, out, _ = run(capsys, "check", store)
    assert code == 1
    (line,) = [ln for ln in out.splitlines() if ln.startswith("DAMAGED:")]
    assert "cannot be read as records" in line and HINTED.format(keys=repr(key)) in line, line
    lost = f"the file lost bytes below the size its hint file gives ({cut} of {size} bytes left)"
    assert (lost in line) is not filled, line
    code, out, _ = run(capsys, "check", "--json", store)
    (problem,) = json.loads(out)["problems"]
    assert code == 1 and HINTED.format(keys=repr(key)) in problem["what"]


def test_a_record_the_cut_falls_in_says_so_and_names_its_key(store_path, capsys):
    """Cut inside a value, the record's lengths are whole: its problem is a checksum mismatch, which says
    the same of the one key the hint file names there."""
    store = _merged_store(store_path)
    key = _cut_first_file(store, inside="value")
    code, out, _ = run(capsys, "check", store)
    (line,) = [ln for ln in out.splitlines() if ln.startswith("DAMAGED:")]
    assert code == 1 and "checksum mismatch; the file lost bytes below the size its hint file gives" in line
    assert f"its hint file names its key ({key!r}), whose reads raise CorruptionError" in line, line


def test_a_record_of_the_hint_file_before_the_damage_is_not_named(store_path, capsys):
    """Only the keys whose records lie in the bytes lost: the others read as they did."""
    store = _merged_store(store_path)
    key = _cut_first_file(store, inside="header")
    code, out, _ = run(capsys, "check", store)
    assert code == 1 and f"({key!r})" in out and "b'k00'" not in out
    with DB(store, read_only=True) as db:
        assert db.get(b"k00") == b"v" * 100
        with pytest.raises(CorruptionError):
            db.get(key)
