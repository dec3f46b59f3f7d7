"""DB.transaction(): reads see the block's writes, other processes see all of them or none, a
crash or an exception leaves none, and the write lock is held for the block."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time

import pytest
from helpers import data_files, spawn_python
from zygote import Zygote

from kv_backend import DB, ReadOnlyError, StorageError, TransactionError
from kv_backend.check import check

KEYS = [b"t%d" % i for i in range(20)]


def test_reads_inside_see_the_writes_and_other_processes_see_them_at_the_end(store_path):
    db = DB(store_path)
    other = DB(store_path, read_only=True)
    try:
        db.put(b"a", b"1")
        db.put(b"gone", b"x")
        with db.transaction() as tx:
            assert tx is db
            db.put(b"b", b"2")
            assert db.get(b"b") == b"2"
            assert db.incr(b"n", 5) == 5
            assert db.incr(b"n", 1) == 6  # reads its own earlier write
            db.update(b"a", lambda old: old + b"!")
            assert db[b"a"] == b"1!"
            with db.batch() as b:
                b.put(b"c", b"3")
                b.delete(b"gone")
            assert db.get(b"gone") is None and db.get(b"c") == b"3"
            assert list(db.keys(prefix=b"")) == [b"a", b"b", b"c", b"n"]
            assert db.pop(b"b") == b"2"
            db.expire(b"c", 3600)
            assert 3500 < db.ttl(b"c") <= 3600
            # Another process sees the store as it was before the block.
            assert other.get(b"n") is None and other.get(b"gone") == b"x" and other.get(b"a") == b"1"
        assert [other.get(k) for k in (b"a", b"b", b"c", b"n", b"gone")] == [b"1!", None, b"3", b"6", None]
        assert 3500 < other.ttl(b"c") <= 3600
    finally:
        other.close()
        db.close()
    with DB(store_path) as again:
        assert dict(again.items()) == {b"a": b"1!", b"c": b"3", b"n": b"6"}
    assert check(store_path).ok


def test_the_whole_transaction_is_one_batch_in_the_log(store_path):
    from kv_backend import record as rec

    with DB(store_path) as db:
        db.put(b"before", b"x")
        with db.transaction():
            db.put(b"a", b"1")
            db.delete(b"before")
            with db.batch() as b:
                b.put(b"b", b"2")
                b.put(b"c", b"3")
            db.incr(b"n")
    [path] = data_files(store_path)
    with open(path, "rb") as f:
        buf = f.read()
    found = rec.scan(buf, rec.FILE_HEADER_SIZE, len(buf))
    assert found.stop_reason in (None, rec.PREALLOCATED)
    assert [e[1] for e in found.entries] == [b"before", b"a", b"before", b"b", b"c", b"n"]
    types = []
    pos = rec.FILE_HEADER_SIZE
    while pos < found.end:
        _, rtype, flags, klen, vlen, _ = rec.HEADER.unpack_from(buf, pos)
        types.append(
            (rtype, flags & rec.FLAG_BATCH, buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen])
        )
        pos += rec.HEADER_SIZE + klen + vlen
    assert types == [
        (rec.PUT, 0, b"before"),
        (rec.PUT, 1, b"a"),
        (rec.DELETE, 1, b"before"),
        (rec.PUT, 1, b"b"),
        (rec.PUT, 1, b"c"),
        (rec.PUT, 1, b"n"),
        (rec.COMMIT, 0, b""),
    ]
    assert rec.COUNT.unpack_from(buf, pos - 4)[0] == 5


def test_an_exception_discards_every_write_of_the_block(store_path):
    db = DB(store_path, max_file_size=4096)
    other = DB(store_path, read_only=True)
    try:
        db.put(b"keep", b"1")
        size_before = [os.path.getsize(p) for p in data_files(store_path)]
        with pytest.raises(KeyError, match="boom"), db.transaction():
            for i in range(50):  # well past max_file_size: the block never rotates
                db.put(b"k%d" % i, b"v" * 100)
            db.delete(b"keep")
            assert db.get(b"keep") is None and db.get(b"k7") == b"v" * 100
            raise KeyError("boom")
        assert db.get(b"keep") == b"1" and db.get(b"k7") is None
        assert dict(db.items()) == {b"keep": b"1"}
        assert len(data_files(store_path)) == len(size_before)  # no rotation, the tail was cut off
        db.put(b"after", b"2")  # the store goes on as before
        assert other.get(b"after") == b"2" and other.get(b"k7") is None and other.get(b"keep") == b"1"
    finally:
        other.close()
        db.close()
    with DB(store_path) as again:
        assert dict(again.items()) == {b"keep": b"1", b"after": b"2"}
    assert check(store_path).ok


def test_a_transaction_larger_than_a_file_stays_in_one_file(store_path):
    with DB(store_path, max_file_size=4096) as db:
        with db.transaction():
            for i in range(100):
                db.put(b"k%03d" % i, b"v" * 100)
        assert len(data_files(store_path)) == 1  # grown past the limit rather than split
        with db.transaction():
            db.put(b"next", b"x")  # a transaction starting on a full file rotates first
        assert len(data_files(store_path)) == 2
        db.put(b"plain", b"x" * 5000)  # and plain writes rotate as usual
        assert len(data_files(store_path)) == 3
        db.merge()
        assert len(db) == 102
    with DB(store_path) as again:
        assert len(again) == 102 and again[b"k042"] == b"v" * 100
    assert check(store_path).ok


def test_nested_blocks_join_and_an_inner_exception_dooms_the_whole(store_path):
    with DB(store_path) as db:
        with db.transaction():
            db.put(b"a", b"1")
            with db.transaction():
                db.put(b"b", b"2")
            assert db.get(b"b") == b"2"
        assert db.get(b"a") == b"1" and db.get(b"b") == b"2"
        with pytest.raises(TransactionError, match="nested"), db.transaction():
            db.put(b"c", b"3")
            try:
                with db.transaction():
                    db.put(b"d", b"4")
                    raise ValueError("inner")
            except ValueError:
                pass  # caught inside the outer block: the outer block cannot commit half
        assert db.get(b"c") is None and db.get(b"d") is None
        # A batch whose block raises inside a transaction is dropped alone, as it never wrote.
        with db.transaction():
            db.put(b"e", b"5")
            try:
                with db.batch() as b:
                    b.put(b"f", b"6")
                    raise ValueError
            except ValueError:
                pass
        assert db.get(b"e") == b"5" and db.get(b"f") is None


def test_merge_is_refused_inside_and_read_only_stores_refuse_transactions(store_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        with pytest.raises(TransactionError, match="merge after the block"), db.transaction():
            db.put(b"b", b"2")
            db.merge()
        assert db.get(b"b") is None
        with DB(store_path, read_only=True) as ro, pytest.raises(ReadOnlyError):
            ro.transaction()


def test_the_change_token_moves_with_the_transactions_own_writes(store_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        t0 = db.change_token()
        with db.transaction():
            assert db.change_token() == t0  # nothing written yet
            db.put(b"b", b"2")
            t1 = db.change_token()
            assert t1 != t0
            db.get(b"b")
            assert db.change_token() == t1
            db.put(b"c", b"3")
            assert db.change_token() not in (t0, t1)
        assert db.change_token() not in (t0, t1)


def test_other_threads_wait_to_write_until_the_end(store_path):
    with DB(store_path, sync="always") as db:
        written = threading.Event()

        def writer() -> None:
            db.put(b"other", b"x")
            written.set()

        with db.transaction():
            db.put(b"a", b"1")
            t = threading.Thread(target=writer)
            t.start()
            assert not written.wait(0.2)
            db.put(b"b", b"2")
        t.join(10)
        assert written.is_set() and db.get(b"other") == b"x"
    with DB(store_path) as again:
        assert dict(again.items()) == {b"a": b"1", b"b": b"2", b"other": b"x"}


def test_a_failed_commit_discards_the_transaction(store_path, monkeypatch):
    from kv_backend import db_write

    with DB(store_path) as db:
        db.put(b"keep", b"1")
        real = db_write.rec.encode_commit

        def failing(count: int) -> bytes:
            raise StorageError(28, "No space left on device (simulated)")

        with pytest.raises(StorageError), db.transaction():
            db.put(b"a", b"1")
            monkeypatch.setattr(db_write.rec, "encode_commit", failing)
        monkeypatch.setattr(db_write.rec, "encode_commit", real)
        assert db.get(b"a") is None and db.get(b"keep") == b"1"
        db.put(b"b", b"2")
    with DB(store_path) as again:
        assert dict(again.items()) == {b"keep": b"1", b"b": b"2"}


def test_a_process_that_dies_mid_transaction_leaves_none_of_it(store_path):
    """A transaction left open by a dead process: the next writer cuts it off, and the store works."""
    code = """
import os, signal, sys
from kv_backend import DB
db = DB(sys.argv[1])
with db.transaction():
    for i in range(20):
        db.put(b"t%d" % i, b"new")
    os.kill(os.getpid(), signal.SIGKILL)
"""
    with DB(store_path) as db:
        for k in KEYS:
            db.put(k, b"old")
        proc = spawn_python(code, store_path)
        assert proc.wait(30) == -signal.SIGKILL
        assert [db.get(k) for k in KEYS] == [b"old"] * 20
        db.put(b"t0", b"after")  # the next write recovers the dead writer's tail first
        assert db.get(b"t1") == b"old"
    with DB(store_path) as again:
        assert [again.get(k) for k in KEYS] == [b"after"] + [b"old"] * 19
    assert check(store_path).ok


CRASH_CHILD = """
import random, sys
from kv_backend import DB
path, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
db = DB(path, max_file_size=8192, sync=rnd.choice(["never", "always"]))
keys = [b"t%d" % i for i in range(20)]
print("ready", flush=True)
while True:
    with db.transaction():
        n = int(db.get(b"t0", b"0")) + 1
        for i, k in enumerate(rnd.sample(keys, len(keys))):
            if i % 7 == 3:
                with db.batch() as b:
                    b.put(k, b"%d" % n)
            else:
                db.put(k, b"%d" % n)
        db.put(b"pad", b"x" * rnd.randrange(2000))
    print(n, flush=True)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_keeps_every_transaction_whole(store_path):
    """Two writers run transactions of 21 writes; each is SIGKILLed at random, 12 times over."""
    rnd = random.Random(int.from_bytes(os.urandom(4), "little"))
    acked = 0
    with DB(store_path, max_file_size=8192) as survivor, Zygote(CRASH_CHILD) as zygote:
        reader = DB(store_path, read_only=True)
        try:
            for _ in range(12):
                procs = [zygote.start(store_path, str(rnd.randrange(1 << 30))) for _ in range(2)]
                for p in procs:
                    assert p.stdout.readline().strip() == "ready", p.stderr.read()
                deadline = time.monotonic() + rnd.uniform(0.05, 0.3)
                while time.monotonic() < deadline:
                    # A reader in another process never sees half a transaction.
                    # Reads in key order see ever newer committed states, so the values only go
                    # up; a write of an open transaction would show as a later key going down.
                    seen = [int(reader.get(k) or 0) for k in KEYS]
                    assert seen == sorted(seen), f"a reader saw half a transaction: {seen}"
                for p in procs:
                    p.send_signal(signal.SIGKILL)
                for p in procs:
                    out = p.stdout.read()
                    assert p.wait() == -signal.SIGKILL, p.stderr.read()
                    lines = out.split("\n")[:-1]  # the last piece may be cut by the kill
                    if lines:
                        acked = max(acked, int(lines[-1]))
                values = [survivor.get(k) for k in KEYS]
                assert len(set(values)) == 1, f"a transaction was cut by the kill: {values}"
                assert int(values[0] or 0) >= acked, f"acknowledged transaction {acked} lost: {values[0]!r}"
                survivor.put(b"between", b"%d" % acked)  # recovers the dead writers' tail
        finally:
            reader.close()
    with DB(store_path) as again:
        values = [again.get(k) for k in KEYS]
        assert len(set(values)) == 1 and int(values[0]) >= acked
    assert check(store_path).ok


def test_store_transaction_moves_money_between_keys_all_or_nothing(store_path):
    from kv_backend import Store

    with Store(store_path) as s:
        s["alice"], s["bob"] = 100, 0
        with s.transaction() as t:
            assert t is s
            s["alice"] -= 30
            s["bob"] += 30
            assert s["alice"] + s["bob"] == 100
        with pytest.raises(ZeroDivisionError), s.transaction():
            s["alice"] -= 50
            s["bob"] += 50 // 0
        assert (s["alice"], s["bob"]) == (70, 30)
    with Store(store_path) as again:
        assert dict(again.items()) == {"alice": 70, "bob": 30}


def test_kvb_check_during_a_live_transaction_says_it_may_still_commit(store_path):
    with DB(store_path) as db:
        db.put(b"a", b"1")
        with db.transaction():
            db.put(b"b", b"2")
            report = check(store_path)
            assert report.ok, report.problems
            assert any("if its writer is alive it is still writing it" in n for n in report.notes), (
                report.notes
            )
        assert check(store_path).ok


@pytest.mark.parametrize("block", ["transaction", "locked"])
def test_close_inside_a_block_does_not_wait_for_a_merge_waiting_for_the_lock(
    store_path, block, caplog, monkeypatch
):
    from kv_backend import merge
    from kv_backend.merge import maybe_auto_merge

    monkeypatch.setattr(merge, "AUTO_MERGE_MIN_BYTES", 0)

    db = DB(store_path, max_file_size=4096)
    for i in range(200):
        db.put(b"k%d" % (i % 5), b"v" * 200)  # many files, mostly dead
    db.auto_merge = 0.01  # an auto-merge is due: started below, inside the block
    done = threading.Event()

    def close_inside() -> None:
        try:
            with getattr(db, block)():
                maybe_auto_merge(db)  # starts the background merge, which waits for this lock
                assert db._merge_thread is not None and db._merge_thread.is_alive()
                db.close()
        except Exception:
            pass  # the transaction's end reports the close
        done.set()

    t = threading.Thread(target=close_inside, daemon=True)
    t.start()
    assert done.wait(20), "close() waited for a merge that waits for the lock the block holds"
    db._merge_thread.join(20)
    assert not db._merge_thread.is_alive()
    assert "auto-merge" not in caplog.text
    with DB(store_path) as again:
        assert len(again) == 5
    assert check(store_path).ok


@pytest.mark.parametrize("end", ["commit", "raise"])
def test_other_threads_never_read_a_transaction_before_it_ends(store_path, end):
    """Threads sharing the DB read the store as before the block, or after it: never part of it."""
    with DB(store_path) as db:
        for k in KEYS:
            db.put(k, b"0")
        seen: list[list[bytes | None]] = []
        started = threading.Event()
        stop = threading.Event()

        def reader() -> None:
            started.set()
            while not stop.is_set():
                seen.append([db.get(k) for k in KEYS])

        t = threading.Thread(target=reader)
        t.start()
        started.wait(5)
        expect = pytest.raises(RuntimeError) if end == "raise" else contextlib.nullcontext()
        with expect, db.transaction():
            for i, k in enumerate(KEYS):
                db.put(k, b"1")
                if i % 5 == 0:
                    time.sleep(0.01)  # the reader runs meanwhile
                assert db.get(k) == b"1"
            if end == "raise":
                raise RuntimeError("discarded")
        time.sleep(0.05)
        stop.set()
        t.join(10)
        final = b"1" if end == "commit" else b"0"
        assert [db.get(k) for k in KEYS] == [final] * len(KEYS)
        # The block writes the keys in order; a thread reading them in order across the commit may see
        # the old values then the new ones, but a read of the block's writes before it ended would
        # show a new value before an old one (and, for a discarded block, any new value at all).
        torn = [s for s in seen if s != sorted(s) or (end == "raise" and b"1" in s)]
        assert not torn, f"a thread read part of a transaction: {torn[0]}"
        assert seen
