"""A rotation that died after creating the next data file, before the directory fsync that makes the file's
name durable (and before publishing it): the next writer's recovery takes that file as the active one and
writes into it. Under sync="always" its writes were fsynced and acknowledged, but nothing had fsynced the
directory, so a power failure could lose the file and every acknowledged write in it (the power-failure
fuzzer, --damage seed 1755). Now a writer's recovery that changes what the page publishes fsyncs the
directory before it publishes, where the store's writes are made durable.
"""

from __future__ import annotations

import os

from helpers import FsyncSpy

from kv_backend import DB
from kv_backend.files import data_name
from kv_backend.record import FILE_HEADER_BYTES
from kv_backend.state import published_tail


def _died_after_creating(path: str) -> str:
    """A store whose page names file 1, and file 2 holding its header alone (a rotation that died before
    it fsynced the directory); the path of file 2."""
    with DB(path) as db:
        db.put(b"a", b"1")
    assert published_tail(path) is not None and published_tail(path)[0] == 1
    new = os.path.join(path, data_name((2, 0)))
    with open(new, "wb") as f:
        f.write(FILE_HEADER_BYTES)
    return new


def test_the_directory_is_fsynced_before_a_write_into_the_adopted_file(store_path, monkeypatch):
    new = _died_after_creating(store_path)
    spy = FsyncSpy(monkeypatch)
    with DB(store_path, sync="always") as db:
        db.put(b"b", b"acknowledged")
        assert db._active.path == new  # (the rotation's file, now the active one, holds the write)
        acknowledged = next(
            n
            for n, (p, c) in enumerate(zip(spy.paths, spy.contents, strict=True))
            if p == new and b"acknowledged" in c
        )
    directory = os.path.realpath(store_path)
    assert directory in spy.paths[:acknowledged]


def test_not_where_writes_are_not_made_durable(store_path, monkeypatch):
    _died_after_creating(store_path)
    spy = FsyncSpy(monkeypatch)
    with DB(store_path, sync="never") as db:
        db.put(b"b", b"acknowledged")
    assert os.path.realpath(store_path) not in spy.paths
