"""This session's new code attacked: review 13 (issues #2, #4, #5, #6, #7)."""

from __future__ import annotations

import pickle

from kv_backend import shelve as kv_shelve


def test_shelf_writeback_entry_read_from_another_protocol_is_not_written_back(tmp_path):
    """An entry read with writeback and left alone was written back at close when another
    process had stored it with another pickle protocol (or as a set of str under another hash
    seed): its fingerprint was the stored pickle's, never the one this shelf makes of the same
    object, so close() undid that process's later write to it."""
    path = str(tmp_path / "s")
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["x"], "n": 1}
        other["s"] = {"alpha", "beta"}
    reader = kv_shelve.open(path, writeback=True)
    assert reader["k"] == {"tags": ["x"], "n": 1}
    assert reader["s"] == {"alpha", "beta"}
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["y"], "n": 2}
        del other["s"]
    reader.close()
    with kv_shelve.open(path) as check:
        assert check["k"] == {"tags": ["y"], "n": 2}
        assert "s" not in check


def test_shelf_writeback_mutated_entry_read_from_another_protocol_is_written_back(tmp_path):
    """The fingerprint taken of what this shelf would write still sees a mutation."""
    path = str(tmp_path / "s")
    with kv_shelve.open(path, protocol=2) as other:
        other["k"] = {"tags": ["x"]}
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["k"]["tags"].append("z")
    with kv_shelve.open(path) as check:
        assert check["k"] == {"tags": ["x", "z"]}
        assert pickle.loads(check.dict[b"k"]) == {"tags": ["x", "z"]}
