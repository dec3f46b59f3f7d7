"""An open that runs out of file descriptors (a store of more data files than the limit allows)
closed the files it had opened only when its error was dropped: a caller keeping the error (a test
runner's report, a logged traceback, an error kept for a retry) kept them all open, and its next
open of any store failed too. They are closed before the error is raised."""

from __future__ import annotations

import os
import resource

import pytest
from helpers import exit_code, fork_child

import kv_backend.filemaps as filemaps
from kv_backend import DB
from kv_backend.errors import StorageError

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("read_only", [True, False], ids=["read-only", "writer"])
def test_an_open_out_of_descriptors_keeps_none_while_its_error_is_kept(tmp_path, read_only):
    path = str(tmp_path / "store")
    with DB(path, max_file_size=4096) as db:
        for i in range(300):
            db.put(b"k%d" % i, os.urandom(1500))  # two records a file: ~150 data files

    def child() -> None:
        # Where maps keep a descriptor each (forced here: see kv_backend.filemaps, whose maps keep
        # none where the platform allows), such a store needs more than the limit.
        filemaps._place = None
        filemaps.MMAP_NO_FD = {}  # (Python 3.13+: maps made with trackfd=False keep none either)
        # The limit bounds descriptor numbers, and new ones take the lowest free: leave 60 free numbers
        # below it whatever the test process holds already (a worker late in a run holds more than a
        # fresh one), well short of the store's ~150 files, plenty for another store.
        used = {int(n) for n in os.listdir("/proc/self/fd")}
        limit = free = 0
        while free < 60:
            free += limit not in used
            limit += 1
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
        before = _open_fds()
        kept = []
        for _ in range(3):
            with pytest.raises(StorageError, match="Too many open files") as e:
                DB(path, read_only=read_only)
            kept.append(e.value)  # the error, and through its traceback the open's frames, kept
            assert _open_fds() == before, (before, _open_fds())
        with DB(str(tmp_path / "other")) as other:  # another store opens: descriptors are left
            other.put(b"k", b"v")

    assert exit_code(fork_child(child)) == 0  # (the child's traceback, if any, is on stderr)
