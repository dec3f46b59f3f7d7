"""Review 12 of the engine: defects found, each with the test that shows it fixed."""

from __future__ import annotations

import errno
import os
import signal
import struct
import time
import zlib

import pytest
from helpers import exit_code, fork_child, patch_engine, run_python

from kv_backend import DB, CorruptionError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.errors import StorageError, TransactionError
from kv_backend.salvage import salvage


def _records(path: str) -> list[tuple[int, bytes, bytes]]:
    """(offset, key, value) of every record of the data file at ``path``."""
    with open(path, "rb") as f:
        buf = f.read()
    out, pos = [], rec.FILE_HEADER_SIZE
    while pos + rec.HEADER_SIZE <= len(buf) and buf[pos : pos + rec.HEADER_SIZE].strip(b"\0"):
        _, _, _, klen, vlen, _ = rec.HEADER.unpack_from(buf, pos)
        end = pos + rec.HEADER_SIZE + klen + vlen
        out.append((pos, buf[pos + rec.HEADER_SIZE : pos + rec.HEADER_SIZE + klen], buf[end - vlen : end]))
        pos = end
    return out


def _retype(path: str, offset: int, rtype: int) -> None:
    """Give the record at ``offset`` the type ``rtype`` and a CRC that matches (a newer writer's record)."""
    with open(path, "r+b") as f:
        f.seek(offset)
        head = bytearray(f.read(rec.HEADER_SIZE))
        head[4] = rtype
        klen, vlen = struct.unpack_from("<II", head, 6)
        body = bytes(head[4:]) + f.read(klen + vlen)
        f.seek(offset)
        f.write(struct.pack("<I", zlib.crc32(body)) + bytes([rtype]))


def _store_with_unknown_type(path: str, *, closed: bool) -> str:
    """A store whose newest record of b"c" has an unknown type (CRC matching), with records after it."""
    with DB(path) as db:
        db.put(b"a", b"1")
        db.put(b"c", b"old-c")
        db.put(b"c", b"new-c")
        db.put(b"z", b"after")
        if closed:
            db._rotate(auto_merge=False)
            db.put(b"y", b"in the active file")
        name = os.path.join(path, "0000000001-000.data")
    off = next(o for o, _k, v in _records(name) if v == b"new-c")
    _retype(name, off, 9)
    return name


@pytest.mark.parametrize("closed", [True, False], ids=["closed file", "active file"])
def test_a_sound_record_of_an_unknown_type_is_damage_not_the_end_of_the_data(store_path, tmp_path, closed):
    """A CRC-valid record of an unknown type ended its file's data silently: every record after it
    was ignored (b"z" was gone, b"c" read as its older value) and `kvb check` found nothing wrong
    in a closed file. It is damage now, skipped by its length: the records after it are read, its
    key raises CorruptionError, check reports it, and merge keeps it as it is (still damage)."""
    name = _store_with_unknown_type(store_path, closed=closed)
    for read_only in (True, False):
        with DB(store_path, read_only=read_only) as db:
            assert db.get(b"z") == b"after"
            assert db.get(b"a") == b"1"
            with pytest.raises(CorruptionError, match="unknown type 9") as err:
                db.get(b"c")
            assert err.value.path == name
            with pytest.raises(CorruptionError):
                db.get_with_expiry(b"c")
            assert db.stats()["corrupt_records"] == 1
    report = check(store_path)
    assert [(p.path, p.what.split(" (")[0]) for p in report.problems] == [(name, "unknown record type 9")]
    salvaged = salvage(store_path, str(tmp_path / "copy"))
    assert salvaged.damaged_keys == [b"c"]
    with DB(store_path) as db:
        merged = db.merge()
        assert merged.corrupt_kept == 1
        with pytest.raises(CorruptionError, match="unknown type 9"):
            db.get(b"c")  # kept with its damage: never the older value, nor absent
        assert db.get(b"z") == b"after"
    assert [p.what.split(" (")[0] for p in check(store_path).problems] == ["unknown record type 9"]


# ------------------------------------------------------------------ stray hint files


def _hints(path: str) -> list[str]:
    return sorted(n for n in os.listdir(path) if n.endswith(".hint"))


def _merged_twice_ready(path: str) -> dict[bytes, bytes]:
    """A store that one merge already ran on (its outputs, with hint files, are the next one's inputs)."""
    model = {}
    with DB(path, max_file_size=4096) as db:
        for i in range(300):
            key, value = b"k%02d" % (i % 40), b"v%d" % i * 8
            db.put(key, value)
            model[key] = value
        db.merge()
        for i in range(100):
            key, value = b"k%02d" % (i % 50), b"w%d" % i * 8
            db.put(key, value)
            model[key] = value
    return model


def _merge_killed_after(path: str, call: str, target: str) -> None:
    """Merge in a forked child that SIGKILLs itself right after its first ``os.<call>`` whose path
    ends with ``target``."""

    def child() -> None:
        db = DB(path, max_file_size=4096)
        real = getattr(os, call)

        def hooked(*args, **kwargs):
            out = real(*args, **kwargs)
            if str(args[-1] if call == "replace" else args[0]).endswith(target):
                os.kill(os.getpid(), signal.SIGKILL)
            return out

        setattr(os, call, hooked)
        db.merge()

    assert exit_code(fork_child(child)) == -signal.SIGKILL


@pytest.mark.parametrize(
    "call, target",
    [("replace", ".hint"), ("unlink", ".data")],
    ids=["between an output's hint and data renames", "between an input's data and hint unlinks"],
)
def test_a_hint_file_left_alone_by_a_killed_merge_is_removed_by_the_next_writer(store_path, call, target):
    """A merge killed between renaming an output's hint file and its data file, or between unlinking
    an input data file and its hint file, left a hint file without its data file, for ever: no
    open or merge removed it. A writable open removes it (a read-only one leaves it)."""
    model = _merged_twice_ready(store_path)
    _merge_killed_after(store_path, call, target)
    stray = [n for n in _hints(store_path) if not os.path.exists(os.path.join(store_path, n[:-5] + ".data"))]
    assert stray
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == model
    assert all(os.path.exists(os.path.join(store_path, n)) for n in stray)
    with DB(store_path) as db:
        assert dict(db.items()) == model
        assert not any(os.path.exists(os.path.join(store_path, n)) for n in stray)
        db.merge()
        assert dict(db.items()) == model
    assert not [n for n in os.listdir(store_path) if n.endswith(".tmp")]


def test_merge_removes_stray_hint_files(store_path):
    """A process that keeps its store open merges without reopening: its merges remove the stray hint
    files (another process's killed merge left) too."""
    model = _merged_twice_ready(store_path)
    with DB(store_path, max_file_size=4096) as db:
        hint = _hints(store_path)[0]
        with open(os.path.join(store_path, hint), "rb") as f:
            data = f.read()
        stray = os.path.join(store_path, "0000000001-007.hint")
        with open(stray, "wb") as f:
            f.write(data)
        db.put(b"new", b"x")
        model[b"new"] = b"x"
        db.merge()
        assert not os.path.exists(stray)
        assert dict(db.items()) == model


# ------------------------------------------------------------------ disk full


def test_a_storage_error_without_a_file_name_does_not_end_in_none(store_path, monkeypatch):
    """A write on a full disk raised StorageError("... nothing acknowledged was lost.: None"): the
    wrapped OSError had no file name, and setting ``filename`` to None makes OSError print it."""
    with DB(store_path) as db:
        db.put(b"a", b"1")

        def full(fd, data, offset):
            raise OSError(errno.ENOSPC, "No space left on device")

        patch_engine(monkeypatch, "_pwrite", full)
        with pytest.raises(StorageError) as info:
            db.put(b"b", b"2")
        assert info.value.errno == errno.ENOSPC
        assert str(info.value).endswith("nothing acknowledged was lost."), str(info.value)
        assert not str(info.value).endswith("None")
        monkeypatch.undo()
        db.put(b"b", b"2")
        assert dict(db.items()) == {b"a": b"1", b"b": b"2"}


# ------------------------------------------------------------------ fork


_FORK_DURING_FIRST_MERGE = """
import importlib.abc, os, signal, sys, threading
from kv_backend import DB

entered, release = threading.Event(), threading.Event()


class SlowFinder(importlib.abc.MetaPathFinder):
    # Holds kv_backend.merge's import lock, as a thread that is importing it does.
    def find_spec(self, name, path=None, target=None):
        if name == "kv_backend.merge":
            entered.set()
            release.wait(5)
        return None


sys.meta_path.insert(0, SlowFinder())
db = DB(sys.argv[1])
db.put(b"k", b"v")
merger = threading.Thread(target=db.merge)  # its first merge: the first use of kv_backend.merge
merger.start()
entered.wait(0.3)  # with the module imported with the engine, nothing ever enters the finder
pid = os.fork()
if pid == 0:
    signal.alarm(3)  # a child that hangs dies of SIGALRM
    db.put(b"child", b"1")
    db.merge(wait=True)
    os._exit(0)
_, status = os.waitpid(pid, 0)
release.set()
merger.join()
print(os.waitstatus_to_exitcode(status))
"""


def test_a_child_forked_while_a_thread_runs_the_first_merge_can_merge(store_path):
    """kv_backend.merge was imported by the first merge() (or auto-merge) of a process. A child
    forked while another thread was importing it (gunicorn --preload, Celery prefork: a DB opened
    and written to before the fork, its first rotation starting an auto-merge thread) inherited the
    module's import lock, held by a thread it does not have: its own first merge, or the auto-merge
    of its first rotation, hung for ever. The engine imports its merge module with the DB."""
    out = run_python(_FORK_DURING_FIRST_MERGE, store_path, timeout=30)
    assert out.stdout.strip() == "0", out.stdout + out.stderr
    with DB(store_path) as db:
        assert db.get(b"child") == b"1"


def test_a_child_forked_inside_a_locked_block_keeps_a_sound_lock(store_path):
    """A child forked inside ``with db.locked():`` got a fresh lock (as documented), but leaving the
    block released it anyway: a raw RuntimeError ("cannot release un-acquired lock"), and a nesting
    count of -1, so that each of the child's later writes took no file lock at all (try_acquire
    succeeded while the parent held the lock). Leaving the block in the child now raises
    TransactionError, as leaving a transaction does, and the child's lock stays sound."""
    db = DB(store_path)
    try:
        db.put(b"a", b"1")
        to_child, from_parent = os.pipe()
        to_parent, from_child = os.pipe()
        pid = -1
        try:
            with db.locked():
                pid = os.fork()
                if pid == 0:
                    os.close(from_parent)
                    os.close(to_parent)
        except TransactionError as exc:
            assert pid == 0 and "forked inside a locked() block" in str(exc)
            os.read(to_child, 1)  # the parent holds the lock again
            ok = not db._lock.try_acquire() and db._lock._depth == 0
            os.write(from_child, b"x")  # until this, the parent holds it
            db.put(b"child", b"1")  # waits for the parent's block
            os._exit(0 if ok and db._lock._depth == 0 else 1)
        except BaseException:
            if pid == 0:
                os._exit(2)
            raise
        if pid == 0:
            os._exit(3)  # the child left the block without an error
        os.close(to_child)
        os.close(from_child)
        with db.locked():
            os.write(from_parent, b"x")
            assert os.read(to_parent, 1) == b"x"  # the child tried the lock while this block held it
            time.sleep(0.05)  # (the child's put, next, waits for the block)
            assert db.get(b"child") is None
        assert exit_code(pid) == 0
        assert db.get(b"child") == b"1"
        with db.locked():  # the parent's own lock is intact
            db.put(b"b", b"2")
    finally:
        db.close()


def test_a_child_forked_while_another_thread_indexes_a_write_sees_that_write(store_path):
    """A put marks the tail seen, then indexes its record, both under the index lock. A child
    forked by another thread between the two inherited a view that had "seen" the record without
    indexing it: it never read that write (nor any write whose indexing the fork interrupted),
    for as long as the key was not written again. A child forked while the index lock is held
    now rebuilds its view at its first call."""
    with DB(store_path) as db, DB(store_path) as other:
        db.put(b"k", b"old")
        other.put(b"k", b"new")  # published, not yet indexed by db
        db._rlock.acquire()  # where a thread of db that indexes the record stands ...
        seen = db._seen
        db._seen = db._tailw.value  # ... having marked it seen
        try:
            pid = fork_child(lambda: os._exit(0 if db.get(b"k") == b"new" and db[b"k"] == b"new" else 1))
        finally:
            db._seen = seen
            db._rlock.release()
        assert exit_code(pid) == 0
        assert db.get(b"k") == b"new"


def test_a_sound_commit_without_a_count_is_damage_not_the_end_of_the_data(store_path, tmp_path):
    """As for an unknown type: a CRC-valid COMMIT whose value is not a 4-byte count ended its
    closed file's data silently. It is a damaged COMMIT now: it closes the batch before it, the
    records after it are read, and check, salvage and merge report it."""
    with DB(store_path) as db:
        db.put(b"a", b"1")
        db._rotate(auto_merge=False)
        db.put(b"y", b"in the active file")
    name = os.path.join(store_path, "0000000001-000.data")
    with open(name, "wb") as f:
        f.write(
            rec.FILE_HEADER_BYTES
            + rec.encode(rec.PUT, b"a", b"1")
            + rec.encode(rec.PUT, b"b", b"in a batch", flags=rec.FLAG_BATCH)
            + rec.encode(rec.DELETE, b"a", b"", flags=rec.FLAG_BATCH)
            + rec.encode(rec.COMMIT, b"", b"")  # no count
            + rec.encode(rec.PUT, b"z", b"after")
        )
    for read_only in (True, False):
        with DB(store_path, read_only=read_only) as db:
            assert dict(db.items()) == {b"b": b"in a batch", b"y": b"in the active file", b"z": b"after"}
            assert db.stats()["corrupt_records"] == 1
    report = check(store_path)
    assert [p.what.split(" (")[0] for p in report.problems] == [
        "a COMMIT whose value is 0 bytes, not a 4-byte count"
    ]
    salvaged = salvage(store_path, str(tmp_path / "copy"))
    with DB(str(tmp_path / "copy"), read_only=True) as copy:
        assert dict(copy.items()) == {b"b": b"in a batch", b"y": b"in the active file", b"z": b"after"}
    assert salvaged.regions
    with DB(store_path) as db:
        db.merge()
        assert dict(db.items()) == {b"b": b"in a batch", b"y": b"in the active file", b"z": b"after"}
    assert check(store_path).ok
