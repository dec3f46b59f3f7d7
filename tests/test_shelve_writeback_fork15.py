"""A shelf with writeback=True, opened before a fork, in the child (#4).

The child inherited the parent's cache with the parent's fingerprints, so the
parent's changes not yet synced looked like the child's own: when the child
closed its copy of the shelf (as it does at exit, when the shelf is collected),
it wrote them back, undoing whatever another process had stored in those
entries meanwhile, though the child never used them. A child now takes the
inherited cache as read: it writes back only what it changes after the fork.
"""

from __future__ import annotations

import os

import pytest

import kv_backend.shelve as kv_shelve

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _fork(fn) -> int:
    """Run ``fn()`` in a forked child; return its pid (the child exits 0 if ``fn`` returned)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


def _exit_code(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_a_child_does_not_write_back_the_parents_pending_changes(tmp_path):
    path = str(tmp_path / "shelf")
    shelf = kv_shelve.open(path, writeback=True)
    try:
        shelf["cfg"] = [1]
        shelf["cfg"].append(2)  # the parent's change, in its cache only
        r, w = os.pipe()

        def child() -> None:
            os.close(w)
            os.read(r, 1)  # wait until the parent has synced and another process has written
            assert shelf["cfg"] == [1, 2]  # the child still sees the cache it inherited
            shelf.close()  # what the child's exit does to a shelf it never wrote to

        pid = _fork(child)
        os.close(r)
        shelf.sync()  # the parent writes its change back
        with kv_shelve.open(path) as other:
            other["cfg"] = ["other"]  # then another process replaces it
        os.write(w, b"x")
        os.close(w)
        assert _exit_code(pid) == 0
        with kv_shelve.open(path, "r") as check:
            assert check["cfg"] == ["other"]
    finally:
        shelf.close()


def test_a_child_writes_back_what_it_changes_after_the_fork(tmp_path):
    path = str(tmp_path / "shelf")
    with kv_shelve.open(path, writeback=True) as shelf:
        shelf["a"] = [1]
        shelf["b"] = {"n": 0}
        shelf["a"].append("parent")  # pending in the parent's cache

        def child() -> None:
            shelf["b"]["n"] = 5  # an inherited entry, changed in the child
            shelf["c"] = []
            shelf["c"].append("child")
            shelf.close()

        assert _exit_code(_fork(child)) == 0
        with kv_shelve.open(path, "r") as check:
            assert dict(check) == {"a": [1], "b": {"n": 5}, "c": ["child"]}
    with kv_shelve.open(path, "r") as check:  # the parent's close wrote its own change
        assert check["a"] == [1, "parent"]
        assert check["b"] == {"n": 5}  # the parent did not change its cached copy: not written back
