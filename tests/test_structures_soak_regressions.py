"""Data-structure defects found by the Redis data-structures soak (benchmarks/soak_structures.py), or
while working out the crash states it reaches, reduced to deterministic cases."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

import pytest
from helpers import exit_code, fork_child

import kv_backend.db_write as db_write
from kv_backend import DB
from kv_backend.structures import Structures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
from soak_structures import check_structures


def _killed_at_second_write(store: str, command: Callable[[Structures], object]) -> int:
    """Run ``command`` in a forked child that SIGKILLs itself when it appends to the log a second
    time (a command that is one engine batch never gets there); return the child's exit code."""

    def child() -> None:
        db = DB(store)
        real = db_write._pwrite  # (every append to the log: a put's, a batch's)
        writes = []

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            writes.append(1)
            if len(writes) == 2:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(fd, data, offset)

        db_write._pwrite = pwrite  # (in the child only)
        command(Structures(db))

    return exit_code(fork_child(child))


@pytest.mark.parametrize(
    ("src", "dst", "wherefrom", "whereto"),
    [("a", "b", "LEFT", "RIGHT"), ("a", "new", "RIGHT", "LEFT"), ("a", "a", "LEFT", "RIGHT")],
)
def test_lmove_killed_half_way_loses_no_element(tmp_path, src, dst, wherefrom, whereto):
    # LMOVE (RPOPLPUSH, BLMOVE, BRPOPLPUSH) popped from the source in one batch and pushed to the
    # destination in another: killed between them, the element was in neither list.
    store = str(tmp_path / "s")
    with Structures(store) as st:
        st.rpush("a", "x", "y", "z")
        st.rpush("b", "q")
    code = _killed_at_second_write(store, lambda st: st.lmove(src, dst, wherefrom, whereto))
    assert code == 0  # one write: the kill never came
    with Structures(store) as st:
        assert check_structures(st) == []
        elements = st.lrange("a", 0, -1) + (st.lrange(dst, 0, -1) if dst != src else [])
        assert sorted(elements) == sorted([b"x", b"y", b"z"] + ([b"q"] if dst == "b" else []))
        moved = b"x" if wherefrom == "LEFT" else b"z"
        target = st.lrange(dst, 0, -1)
        assert (target[0] if whereto == "LEFT" else target[-1]) == moved


def test_lmove_within_a_one_element_list_keeps_it_and_its_ttl(tmp_path):
    # The pop emptied (deleted) the list and the push made a new one without the TTL; Redis
    # keeps the list, and so its TTL.
    with Structures(str(tmp_path / "s")) as st:
        st.rpush("l", "a")
        st.expire("l", 100)
        assert st.lmove("l", "l", "RIGHT", "LEFT") == b"a"
        assert st.lrange("l", 0, -1) == [b"a"]
        assert 99 <= st.ttl("l") <= 100
        assert st.rpoplpush("l", "l") == b"a" and 99 <= st.ttl("l") <= 100
        assert check_structures(st) == []
