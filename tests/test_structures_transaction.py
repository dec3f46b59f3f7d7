"""Structures.transaction(): several commands as one unit, in-process (MULTI/EXEC's twin)."""

from __future__ import annotations

import pytest

from kv_backend import DB
from kv_backend.structures import Structures


def test_commands_in_a_transaction_see_each_other_and_land_together(store_path):
    with Structures(store_path) as s, DB(store_path, read_only=True) as other:
        s.rpush("queue", "a", "b")
        with s.transaction():
            assert s.lmove("queue", "working", "LEFT", "RIGHT") == b"a"
            assert s.lrange("working", 0, -1) == [b"a"]  # reads the block's own writes
            s.hincrby("stats", "started", 1)
            with Structures(other) as outside:  # another process's view: the store before the block
                assert outside.lrange("queue", 0, -1) == [b"a", b"b"] and not outside.exists("working")
        with Structures(other) as outside:
            assert outside.lrange("queue", 0, -1) == [b"b"]
            assert outside.lrange("working", 0, -1) == [b"a"]
            assert outside.hget("stats", "started") == b"1"


def test_an_exception_in_the_block_leaves_none_of_its_commands(store_path):
    with Structures(store_path) as s:
        s.rpush("queue", "a", "b")
        s.zadd("board", {"ada": 1})
        with pytest.raises(RuntimeError), s.transaction():
            s.lmove("queue", "working", "LEFT", "RIGHT")
            s.zincrby("board", 5, "ada")
            s.delete("queue")
            raise RuntimeError("worker failed")
        assert s.lrange("queue", 0, -1) == [b"a", b"b"]
        assert not s.exists("working")
        assert s.zscore("board", "ada") == 1.0
    with Structures(store_path) as again:
        assert again.lrange("queue", 0, -1) == [b"a", b"b"] and not again.exists("working")
