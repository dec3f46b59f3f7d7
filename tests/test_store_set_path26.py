"""The Python functions a put runs: the hottest write (a Store's or a shelf's set of a key without
expiry, outside a transaction, that fits in the active file) makes no call beyond encoding the record
and taking and releasing the write lock; every other put takes the general write, as before."""

from __future__ import annotations

import os
import signal
import time

from helpers import exit_code, fork_child, python_calls, run_python

import kv_backend.shelve as kshelve
from kv_backend import DB, Store


def _calls(fn) -> list[str]:
    """The names of the Python functions ``fn()`` calls, in order (C functions and ``fn`` itself left out)."""
    return python_calls(fn)[1:]


def test_the_hottest_put_calls_only_encode_and_the_lock(tmp_path):
    with Store(str(tmp_path / "s")) as store, kshelve.open(str(tmp_path / "h")) as shelf:
        for target in (store, shelf):
            target["warm"] = 0
            calls = _calls(lambda t=target: t.__setitem__("k", {"a": 1}))
            assert calls == ["__setitem__", "put", "encode", "acquire", "release"], calls
            assert target["k"] == {"a": 1}


def test_other_puts_take_the_general_write_and_read_back(tmp_path):
    path = str(tmp_path / "s")
    with DB(path, max_file_size=4096) as db:
        db.put(b"ttl", b"1", ttl=3600)  # with an expiry
        assert "_write" in _calls(lambda: db.put(b"ttl2", b"2", ttl=3600))
        with db.transaction():
            db.put(b"txn", b"3")
        for i in range(100):  # files fill and rotate
            db.put(b"k%d" % i, b"v" * 100)
        assert len([f for f in os.listdir(path) if f.endswith(".data")]) > 1
        run_python(  # another process writes: this one appends without indexing first, then catches up
            """
            import sys
            from kv_backend import DB
            with DB(sys.argv[1], max_file_size=4096) as db:
                db.put(b"other", b"o")
            """,
            path,
        )
        db.put(b"after", b"a")
        assert db.get(b"ttl") == b"1" and db.get(b"txn") == b"3" and db.get(b"other") == b"o"
        assert db.get(b"after") == b"a" and all(db.get(b"k%d" % i) == b"v" * 100 for i in range(100))
        assert 3599 < db.get_with_expiry(b"ttl2")[1] - time.time() <= 3600
    with DB(path, max_file_size=4096) as db:  # and from the files
        assert sorted(db.keys()) == sorted(
            [b"ttl", b"ttl2", b"txn", b"other", b"after"] + [b"k%d" % i for i in range(100)]
        )


def test_sets_that_returned_survive_a_kill_and_are_seen_by_another_process(tmp_path):
    """Store and shelf sets on the hottest path, the process killed (SIGKILL) as the last returns:
    every one is in the files, and a process that had the store open reads each of them."""
    path, shelf_path = str(tmp_path / "s"), str(tmp_path / "h")
    with Store(path) as reader, kshelve.open(shelf_path) as shelf_reader:
        reader["k0"] = shelf_reader["k0"] = "before"

        def child() -> None:
            with Store(path) as store, kshelve.open(shelf_path) as shelf:
                for i in range(300):
                    store[f"k{i}"] = shelf[f"k{i}"] = {"i": i}
                os.kill(os.getpid(), signal.SIGKILL)

        assert exit_code(fork_child(child)) == -signal.SIGKILL
        assert all(reader[f"k{i}"] == shelf_reader[f"k{i}"] == {"i": i} for i in range(300))
    with Store(path) as store, kshelve.open(shelf_path) as shelf:
        assert len(store) == len(shelf) == 300
        assert all(store[f"k{i}"] == shelf[f"k{i}"] == {"i": i} for i in range(300))
