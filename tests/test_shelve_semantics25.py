"""kv_backend.shelve beside the stdlib's shelve, argument by argument (docs/store.md)."""

from __future__ import annotations

import array
import json
import pickle

import pytest
from helpers import run_python

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve


def test_a_serializer_may_return_any_bytes_like_object(tmp_path):
    """Python 3.15's shelve hands the serializer's result to the dbm as it is, and dbm.sqlite3 stores an
    array.array; this shelf refused one with InvalidValueError, as kv_backend.dbm refused it as a value."""

    def dumps(obj, protocol):
        return array.array("b", json.dumps(obj).encode())

    with kshelve.open(str(tmp_path / "s"), serializer=dumps, deserializer=json.loads) as sh:
        sh["a"] = [1, 2]
        sh.update(b={"x": 1})
        assert sh.setdefault("c", 3) == 3
    with kshelve.open(str(tmp_path / "s"), "r", serializer=dumps, deserializer=json.loads) as sh:
        assert dict(sh.items()) == {"a": [1, 2], "b": {"x": 1}, "c": 3}
        assert sh.dict[b"a"] == b"[1, 2]"


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL, -1])
def test_every_write_path_stores_the_protocols_pickle(tmp_path, protocol):
    """The stdlib pickles with the shelf's protocol wherever it writes; so does every path here that
    does not go through ``shelf[key] = value``: update(), setdefault() and the write-back of sync()."""
    path = str(tmp_path / "s")
    value = {"a": [1]}
    with kshelve.open(path, protocol=protocol, writeback=True) as sh:
        sh.update(upd=value)
        sh.setdefault("sd", value)
        sh["wb"] = {"a": []}
        sh.sync()
        sh["wb"]["a"].append(1)  # written back by close()
    with kdbm.open(path) as db:
        assert dict(db.items()) == dict.fromkeys((b"sd", b"upd", b"wb"), pickle.dumps(value, protocol))


def test_a_writeback_change_is_read_by_another_process_after_sync(tmp_path):
    path = str(tmp_path / "s")
    read = "import sys, kv_backend.shelve as s\nwith s.open(sys.argv[1], 'r') as sh: print(sh['cfg'])"
    with kshelve.open(path, writeback=True) as sh:
        sh["cfg"] = {"l": [1], "d": {"x": 1}}
        sh["cfg"]["l"].append(2)
        sh["cfg"]["d"]["y"] = 2
        assert run_python(read, path).stdout.strip() == "{'l': [1], 'd': {'x': 1}}"  # in the cache only
        sh.sync()
        assert run_python(read, path).stdout.strip() == "{'l': [1, 2], 'd': {'x': 1, 'y': 2}}"
