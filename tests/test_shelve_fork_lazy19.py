"""A writeback shelf's cache in a forked child (#4).

At every fork the child pickled the whole inherited cache again (to fingerprint it), at once, in the
at-fork hook: with a large cache every child paid for it, and a value whose pickling takes a lock that
another thread of the parent held at the fork hung the child in os.fork() for good. The child now pickles
an inherited entry only when it first uses it, and still writes back only what it changes after the fork.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from helpers import fork_child

import kv_backend.shelve as kv_shelve

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

_lock = threading.Lock()
_pickled_in: list[int] = []


class Guarded:
    """A value whose pickling takes a module lock (as objects guarding their state do)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        with _lock:
            _pickled_in.append(os.getpid())
            return (Guarded, (self.n,))


def _run_in_child(fn, timeout: float = 10.0) -> int:
    """Fork, run ``fn()`` in the child; its exit code, or -1 if it had not ended within ``timeout``."""
    pid = fork_child(fn)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


def test_fork_while_a_thread_holds_a_lock_pickling_takes(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["g"] = Guarded(1)
        shelf["plain"] = [1]
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            with _lock:
                holding.set()
                release.wait(20)

        t = threading.Thread(target=hold)
        t.start()
        assert holding.wait(5)
        try:

            def child() -> None:
                shelf["plain"].append(2)  # an entry the child uses (and changes)
                shelf.close()  # writes back "plain" only: "g" is not pickled

            assert _run_in_child(child) == 0
        finally:
            release.set()
            t.join()
        with kv_shelve.open(path, "r") as check:
            assert check["plain"] == [1, 2]


def test_the_child_pickles_only_entries_it_uses(tmp_path):
    path = str(tmp_path / "shelf")
    r, w = os.pipe()
    with kv_shelve.open(path, writeback=True) as shelf:
        for i in range(50):
            shelf[f"k{i}"] = Guarded(i)
        _pickled_in.clear()

        def child() -> None:
            os.close(r)
            assert shelf["k3"].n == 3
            shelf.sync()
            mine = sum(1 for pid in _pickled_in if pid == os.getpid())
            os.write(w, str(mine).encode())

        assert _run_in_child(child) == 0
        os.close(w)
        pickled = int(os.read(r, 100))
        os.close(r)
    assert pickled == 2  # k3: its fingerprint when first used, and at the sync compared with it


def test_inherited_entries_as_cached(tmp_path):
    """In the child an inherited entry is present, served, deleted and popped as a cached one."""
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["a"], shelf["b"], shelf["c"], shelf["d"] = [1], [2], [3], [4]
        shelf["a"].append("pending")  # the parent's change, in its cache only
        with kv_shelve.open(path) as other:
            del other["b"], other["c"]  # another process deletes two cached entries

        def child() -> None:
            assert "b" in shelf and shelf.get("a") == [1, "pending"]
            del shelf["b"]  # present for this process: deleting it succeeds
            assert "b" not in shelf
            assert shelf.pop("c") == [3]  # the object cached
            shelf["d"] = ["child"]
            assert shelf.pop("d") == ["child"] and "d" not in shelf
            with pytest.raises(KeyError):
                shelf["d"]
            grandchild = _run_in_child(lambda: shelf.close())
            assert grandchild == 0
            shelf.close()

        assert _run_in_child(child) == 0
        with kv_shelve.open(path, "r") as check:
            assert dict(check) == {"a": [1]}  # the parent's pending change is the parent's to write
    with kv_shelve.open(path, "r") as check:
        assert dict(check) == {"a": [1, "pending"]}
