"""DB.transaction() and the Redis server's transactions, reviewed: fork and close inside a block,
and the other edge cases the first tests did not cover."""

from __future__ import annotations

import time

import pytest
from helpers import exit_code, fork_child

from kv_backend import DB, TransactionError
from kv_backend.check import check


def test_a_child_forked_inside_a_transaction_neither_joins_it_nor_overwrites_it(store_path):
    """A child forked in the block used to write "in the transaction" at the parent's unpublished
    tail, with no lock: it overwrote the parent's records, and recovery then cut writes that had
    been committed. Now the child's writes wait for the parent's block and go after it."""
    with DB(store_path) as db:
        db.put(b"base", b"0")
        with db.transaction():
            db.put(b"a", b"1" * 100)

            def child() -> None:
                assert db.get(b"a") == b"1" * 100  # waits for the parent's block, which commits it
                db.put(b"child", b"c")

            pid = fork_child(child)
            time.sleep(0.05)  # the child waits for the lock meanwhile
            db.put(b"b", b"2" * 100)
        assert exit_code(pid) == 0
        assert db.get(b"child") == b"c"
    with DB(store_path) as again:
        assert dict(again.items()) == {b"base": b"0", b"a": b"1" * 100, b"b": b"2" * 100, b"child": b"c"}
    assert check(store_path).ok


def test_a_child_forked_inside_a_transaction_is_told_when_it_leaves_the_block(store_path):
    """The block's end in the child (os.fork() with the child going on) raised AssertionError."""
    with DB(store_path) as db:
        block = db.transaction()
        block.__enter__()
        db.put(b"a", b"1")

        def child() -> None:
            db.put(b"c", b"2")
            with pytest.raises(TransactionError, match="forked inside a transaction"):
                block.__exit__(None, None, None)
            block.__exit__(ValueError, ValueError("x"), None)  # an exception in flight: left alone

        pid = fork_child(child)
        time.sleep(0.02)
        block.__exit__(None, None, None)
        assert exit_code(pid) == 0
        assert dict(db.items()) == {b"a": b"1", b"c": b"2"}
