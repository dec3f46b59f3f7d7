"""Copying the items of a store that another process changes (docs/store.md, "Copying the items").

dict(x) lists the keys, then reads each one, so a key another process deletes in between raised
KeyError, and the docs and the pickling error's message advised dict(x) for a copy; they now advise
dict(x.items()), which walks the items once and skips a key deleted meanwhile.
"""

from __future__ import annotations

import copy
import os
import signal

import pytest

import kv_backend.dbm as kdbm
import kv_backend.shelve as kshelve
from kv_backend import DB, Store
from kv_backend.serializers import PickleSerializationError

KEYS = 2000


def _churn(path: str, ready: int) -> None:  # pragma: no cover - runs in the forked child
    with Store(path) as s:
        i = 0
        while True:
            key = f"k{i % KEYS:05d}"
            s.pop(key, None)
            s[key] = i
            i += 1
            if i == 100:
                os.write(ready, b"x")


def test_dict_of_items_copies_while_another_process_deletes_keys(tmp_path):
    path = str(tmp_path / "s")
    with Store(path) as s:
        s.update({f"k{i:05d}": i for i in range(KEYS)})
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            _churn(path, ready_w)
        finally:
            os._exit(1)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"x"  # the churn is under way
        with Store(path) as s, kshelve.open(path) as shelf, kdbm.open(path, "r") as db:
            names = {f"k{i:05d}" for i in range(KEYS)}
            for _ in range(10):
                for copied in (dict(s.items()), dict(shelf.items())):
                    assert set(copied) <= names
                    assert len(copied) > KEYS // 2  # the churn has one key out at a time
                    assert all(isinstance(value, int) for value in copied.values())
                raw = dict(db.items())
                assert {key.decode() for key in raw} <= names
                assert len(raw) > KEYS // 2
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)


def test_a_walk_of_the_items_skips_a_key_deleted_after_it_was_listed(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({f"k{i}": i for i in range(5)})
        items = iter(s.items())
        assert next(items) == ("k0", 0)  # the walk has listed the next keys too
        del s["k3"]
        assert dict(items) == {"k1": 1, "k2": 2, "k4": 4}


@pytest.mark.parametrize("kind", ["dbm", "shelf", "db"])
def test_the_pickling_error_advises_a_copy_of_the_items(tmp_path, kind):
    path = str(tmp_path / "s")
    opened = {
        "dbm": lambda: kdbm.open(path, "c"),
        "shelf": lambda: kshelve.open(path),
        "db": lambda: DB(path),
    }
    with opened[kind]() as handle, pytest.raises(PickleSerializationError, match=r"dict\(x\.items\(\)\)"):
        copy.copy(handle)
