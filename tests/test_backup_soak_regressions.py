"""Backup defects found by the randomized multi-process soak harness (benchmarks/soak.py), reduced
to deterministic cases."""

from __future__ import annotations

import os
import signal

from helpers import exit_code, fork_child

import kv_backend.db_write as W
from kv_backend import DB
from kv_backend.backup import restore
from kv_backend.files import data_name, list_data_files


def _die_creating_the_next_file(store: str) -> None:
    """In a child: fill the active file so the next put rotates, and SIGKILL the child between
    creating the next data file and writing its header (what a killed rotation leaves)."""

    def child() -> None:
        db = DB(store, max_file_size=4096)

        def write_all(fd, data, offset):
            os.kill(os.getpid(), signal.SIGKILL)

        W.write_all = write_all
        db.put(b"doomed", b"r" * 3600)

    assert exit_code(fork_child(child)) == -signal.SIGKILL


def test_backup_skips_the_empty_file_of_a_rotation_killed_before_its_header(tmp_path):
    store = str(tmp_path / "store")
    with DB(store, max_file_size=4096) as db:
        for i in range(5):
            db.put(b"k%d" % i, b"v" * 100)
    reader = DB(store, read_only=True)  # a reader does not recover the dead writer's leftovers
    try:
        _die_creating_the_next_file(store)
        newest = list_data_files(store)[-1]
        assert os.path.getsize(os.path.join(store, data_name(newest))) == 0
        url = "file://" + str(tmp_path / "backups")
        report = reader.backup(url, name="one")
        restore(url, str(tmp_path / "restored"), name="one")  # raised BackupError: damaged file header
        assert report.files == 1  # the unpublished file is not part of the store's state
        with DB(str(tmp_path / "restored")) as db:
            assert dict(db.items()) == {b"k%d" % i: b"v" * 100 for i in range(5)}
            db.put(b"after", b"1")  # a writer takes over the restored store
    finally:
        reader.close()
