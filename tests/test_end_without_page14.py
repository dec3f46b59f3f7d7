"""Without a STATE page, where the active file's data ends is read from its bytes
(docs/file-format.md, "The end of the active file", step 2): a damaged header followed by sound
records is damage, and the acknowledged records after it are kept; a writer's torn last write is
still cut, and the records a value holds are never taken for records of their own.

Tail recovery used to cut the file at any header whose lengths were not sound, as at a torn
write, losing every acknowledged record after it; `kvb check` called that an unfinished write.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import struct
import time

import pytest
from helpers import data_files, exit_code, fork_child, patch_engine, wait_for
from test_format_reader11 import DAMAGED, assert_same, records

from kv_backend import DB, StorageError
from kv_backend import record as rec
from kv_backend.check import check
from kv_backend.salvage import salvage

KEYS = [b"k%d" % i for i in range(12)]


def _store(path: str) -> tuple[str, dict[bytes, tuple]]:
    """An active file of 12 acknowledged puts (with reserved zeros after them) and no STATE page."""
    with DB(path) as db:
        for i, key in enumerate(KEYS):
            db.put(key, b"value %d " % i * 8)
    os.unlink(os.path.join(path, "STATE"))
    active = data_files(path)[-1]
    return active, {r[3]: r for r in records(active)}


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


DAMAGE = {
    # how, the keys lost with it, the key reported damaged
    "value length past the file": (lambda r: (r[0] + 10, struct.pack("<I", 0x3FFFFFFF)), set(), b"k4"),
    "value length above 2^30": (lambda r: (r[0] + 10, struct.pack("<I", 0x7FFFFFFF)), set(), b"k4"),
    "key length above 65536": (lambda r: (r[0] + 6, struct.pack("<I", 0x7FFFFFFF)), {b"k4"}, None),
    "value length into the next record": (lambda r: (r[0] + 10, struct.pack("<I", r[5] + 50)), set(), b"k4"),
    "value length short of its value": (lambda r: (r[0] + 10, struct.pack("<I", r[5] - 30)), set(), b"k4"),
    "zeroed header": (lambda r: (r[0], bytes(22)), {b"k4"}, None),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_acknowledged_records_after_a_damaged_header_are_kept(store_path, tmp_path, case):
    active, recs = _store(store_path)
    how, lost, damaged = DAMAGE[case]
    at, data = how(recs[b"k4"])
    _patch(active, at, data)
    report = check(store_path)
    assert [p.offset for p in report.problems] == [recs[b"k4"][0]], report
    copy = salvage(store_path, str(tmp_path / "copy"))
    view = assert_same(store_path)  # the reader, DB read-only, then DB opening it for writing
    want = {k: (b"value %d " % i * 8, 0.0) for i, k in enumerate(KEYS) if k not in lost}
    if damaged is not None:
        want[damaged] = DAMAGED
    assert view == want
    assert copy.damaged_keys == ([damaged] if damaged else [])
    with DB(str(tmp_path / "copy"), read_only=True) as db:
        assert dict(db.items()) == {k: v[0] for k, v in want.items() if v != DAMAGED}
    with DB(store_path) as db:  # recovery kept them: a second open (with the page now) sees them too
        assert sorted(db.keys()) == sorted(want)
        db.put(b"after", b"recovery")
    assert check(store_path).problems == report.problems


def test_a_damaged_last_record_before_the_reserved_zeros_is_still_cut(store_path):
    """It may be the torn last write: its lengths point inside the file, zeros follow."""
    active, recs = _store(store_path)
    last = recs[KEYS[-1]]
    _patch(active, last[0] + 30, b"\xff")
    assert check(store_path).ok
    view = assert_same(store_path)
    assert sorted(view) == sorted(KEYS[:-1])


def _encoded(rnd: random.Random) -> bytes:
    """A value that holds whole encoded records of a key nobody writes, two in a row (a stored data
    file, say), padded with zeros: what a torn write of it leaves must not read as records."""
    inner = rec.encode(rec.PUT, b"phantom", b"p" * rnd.randrange(100))
    return rnd.randbytes(rnd.randrange(50)) + inner + inner + bytes(rnd.randrange(5000))


def _writer(path: str, log: str, seed: int) -> None:
    rnd = random.Random(seed)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    with DB(path) as db:
        i = 0
        while True:
            key = b"w%d-%d" % (seed, i)
            if rnd.random() < 0.2:
                with db.transaction():
                    db.put(key, _encoded(rnd))
                    db.put(key + b"+", _encoded(rnd))
            else:
                db.put(key, _encoded(rnd) * rnd.randrange(1, 30))
            os.write(fd, key + b"\n")  # acknowledged
            i += 1


@pytest.mark.parametrize("run", range(18))
def test_sigkilled_writers_then_no_page_keeps_every_acknowledged_write_and_no_phantom(tmp_path, run):
    """Writers killed at random points, their store then opened without its STATE page.

    They are killed within 60 ms of their first acknowledged write: where a kill lands (between
    writes, inside a value's write, inside a transaction) does not depend on how long they ran, and
    the readers then check a few MB, not up to 100. With the engine taking a torn last write for
    damage, 13 of 60 such rounds fail (kvb check reports the torn value as damage): 18 rounds miss
    it about once in 90 suites, as the 12 rounds of 0.05 to 0.45 s did (9 of 30 failed)."""
    path = str(tmp_path / "s")
    DB(path).close()
    log = str(tmp_path / "log")
    open(log, "wb").close()
    pids = [fork_child(lambda s=s: _writer(path, log, run * 10 + s)) for s in range(2)]
    try:
        wait_for(lambda: os.path.getsize(log), what="a first acknowledged write")
        time.sleep(random.Random(run).random() * 0.06)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    assert [exit_code(pid) for pid in pids] == [-signal.SIGKILL] * 2
    os.unlink(os.path.join(path, "STATE"))
    with open(log, "rb") as f:
        acknowledged = set(f.read().split())
    assert acknowledged
    assert check(path).ok
    view = assert_same(path)
    assert b"phantom" not in view
    assert acknowledged <= {k for k in view if not k.endswith(b"+")}
    assert all(v != DAMAGED for v in view.values())


def test_what_failed_writes_left_past_the_tail_is_no_damage_and_no_data(store_path, monkeypatch):
    """A write the full disk cut leaves its first bytes past the tail; the next, shorter write
    overwrites only its start. A copy without the page must not read the rest (whole records of a
    batch that never committed, after bytes that look damaged) as damage, nor keep any of it."""
    real_pwrite = os.pwrite

    def full_pwrite(fd, data, offset):
        real_pwrite(fd, bytes(memoryview(data)[: len(data) * 3 // 4]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    with DB(store_path) as db:
        db.put(b"before", b"safe")
        monkeypatch.setattr(os, "pwrite", full_pwrite)
        patch_engine(monkeypatch, "_pwrite", full_pwrite)
        with pytest.raises(StorageError):
            db.put(b"lost", b"z" * 500)
        with pytest.raises(StorageError), db.batch() as b:
            for i in range(5):
                b.put(b"lost%d" % i, b"q" * 60)
        monkeypatch.setattr(os, "pwrite", real_pwrite)
        patch_engine(monkeypatch, "_pwrite", real_pwrite)
        db.put(b"after", b"ok")
    os.unlink(os.path.join(store_path, "STATE"))
    assert check(store_path).ok
    assert assert_same(store_path) == {b"before": (b"safe", 0.0), b"after": (b"ok", 0.0)}
    assert check(store_path).ok


def _random_file(rnd: random.Random) -> bytes:
    """A data file of records, batches (their COMMITs right or wrong), damage, zeros and a torn end."""
    out = [rec.FILE_HEADER_BYTES]
    for _ in range(rnd.randrange(1, 25)):
        kind = rnd.randrange(10)
        if kind < 4:
            flags = rec.FLAG_BATCH if kind < 2 else 0
            r = bytearray(
                rec.encode(
                    rnd.choice([rec.PUT, rec.DELETE]),
                    b"k%d" % rnd.randrange(9),
                    b"v" * rnd.randrange(40),
                    flags=flags,
                )
            )
            if rnd.random() < 0.2:
                r[rnd.randrange(len(r))] ^= 1 << rnd.randrange(8)
            out.append(bytes(r))
        elif kind < 6:
            out.append(rec.encode_commit(rnd.randrange(4)))
        elif kind == 6:
            out.append(bytes(rnd.randrange(1, 60)))
        elif kind == 7:
            out.append(rnd.randbytes(rnd.randrange(1, 40)))
        elif kind == 8:  # a header whose value length runs past any such file
            out.append(struct.pack("<IBBIId", 0, 1, 0, 2, 0x3FFFFF, 0.0) + b"kk")
        else:  # a batch of several records, committed or not
            count = rnd.randrange(1, 5)
            for i in range(count):
                out.append(rec.encode(rec.PUT, b"b%d" % i, b"x" * rnd.randrange(30), flags=rec.FLAG_BATCH))
            if rnd.random() < 0.6:
                out.append(rec.encode_commit(count if rnd.random() < 0.7 else rnd.randrange(4)))
    buf = b"".join(out)
    cut = rnd.random()
    if cut < 0.3:
        buf = buf[: rnd.randrange(16, len(buf) + 1)]  # a write torn at the end of the file
    elif cut < 0.6:
        buf += bytes(rnd.randrange(200))  # reserved zeros
    return buf


def test_the_end_without_a_page_is_the_one_the_format_document_names():
    """kv_backend.unpublished.data_end against the independent reader's step 2 (tests/
    test_format_reader11.py), on files of every kind of record, damage and ending."""
    from test_format_reader11 import _end_without_page

    from kv_backend.unpublished import data_end

    rnd = random.Random(214)
    for trial in range(3000):
        buf = _random_file(rnd)
        got = data_end(lambda o, n, buf=buf: buf[o : o + n], rec.FILE_HEADER_SIZE, len(buf))
        assert got == _end_without_page(buf), trial


def test_a_long_transaction_cut_by_a_crash_without_the_page_opens_quickly(store_path, tmp_path):
    """Stepping over each record of the cut transaction read to its end from every one: 8000 puts
    of 100 bytes took 140 s to open (and as long to check and salvage); now well under a second."""
    with DB(store_path) as db:
        db.put(b"a", b"1")

    def child() -> None:
        db = DB(store_path)
        with db.transaction():
            for i in range(8000):
                db.put(b"t%d" % i, b"x" * 100)
            os.kill(os.getpid(), signal.SIGKILL)

    assert exit_code(fork_child(child)) == -signal.SIGKILL
    os.unlink(os.path.join(store_path, "STATE"))
    start = time.process_time()
    assert check(store_path).ok
    assert salvage(store_path, str(tmp_path / "copy")).keys_copied == 1
    with DB(store_path, read_only=True) as db:
        assert dict(db.items()) == {b"a": b"1"}
    with DB(store_path) as db:
        assert dict(db.items()) == {b"a": b"1"}
    used = time.process_time() - start
    assert used < 10, f"{used:.1f} s of CPU"


def test_replay_check_salvage_and_the_reader_agree_on_random_damage_without_the_page(tmp_path):
    """As tests/test_engine_review13.py's random damage, in the newest files of a store without its
    STATE page: DB (read-only and read-write) and the format document's reader read the same keys,
    kvb check reports what replay counts, and salvage copies what DB reads."""
    import shutil

    from test_engine_review13 import assert_readers_agree, damage_record, random_store

    rnd = random.Random(1414)
    base = str(tmp_path / "base")
    random_store(base, rnd, 200)
    os.unlink(os.path.join(base, "STATE"))
    for it in range(30):
        path = str(tmp_path / f"s{it}")
        shutil.copytree(base, path)
        for _ in range(rnd.choice([1, 1, 2])):
            name = rnd.choice(data_files(path)[-2:])
            walkable = records(name)
            if not walkable:
                continue
            damage_record(name, rnd.choice(walkable), rnd, shorter=True, zeros=(22, 100))
        problems = assert_readers_agree(path, str(tmp_path / f"copy{it}"), it)
        assert check(path).problems == problems  # after recovery (and with the page it made)


def test_the_last_batch_with_a_damaged_record_is_kept_without_the_page(store_path, tmp_path):
    """A committed batch at the end of the active file, one record of it damaged: its COMMIT shows
    it is no torn write. It was cut with the damaged record (its other keys read their older values,
    with no damage reported), while kvb check reported the damage: now it commits, as with a page."""
    with DB(store_path) as db:
        db.put(b"a", b"old")
        db.put(b"c", b"old")
        with db.batch() as b:
            b.put(b"a", b"new")
            b.put(b"b", b"new")
            b.put(b"c", b"new")
    os.unlink(os.path.join(store_path, "STATE"))
    active = data_files(store_path)[-1]
    b_rec = next(r for r in records(active) if r[3] == b"b")
    _patch(active, b_rec[0] + 22 + 1, b"X")  # its value: the CRC fails, the lengths are sound
    assert [p.offset for p in check(store_path).problems] == [b_rec[0]]
    view = assert_same(store_path)
    assert view == {b"a": (b"new", 0.0), b"b": DAMAGED, b"c": (b"new", 0.0)}
    assert salvage(store_path, str(tmp_path / "copy")).damaged_keys == [b"b"]


def test_damage_at_the_end_of_the_file_before_the_active_one_is_damage_once_that_holds_records(
    store_path, tmp_path
):
    """Without a page, the file before the active one was read as a rotation that died may leave
    it, whose damaged last record is a torn write to cut; but a rotation closes that file before
    anything is written to the next one. DB and the format reader cut it, kvb check and salvage
    reported it as damage: all of them now take it as damage (its key reads as damaged)."""
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"k", b"old")
        db.put(b"pad", b"x" * 3000)
        db.put(b"k", b"new")  # the last record of the first file
        db.put(b"pad2", b"y" * 3000)  # in the next file
    os.unlink(os.path.join(store_path, "STATE"))
    first = data_files(store_path)[0]
    last = records(first)[-1]
    assert last[3] == b"k"
    _patch(first, last[0] + 22 + 1 + 1, b"X")
    assert [p.offset for p in check(store_path).problems] == [last[0]]
    assert assert_same(store_path)[b"k"] == DAMAGED
    assert salvage(store_path, str(tmp_path / "copy")).damaged_keys == [b"k"]


def test_a_published_rotation_closed_the_file_before_it(store_path, tmp_path):
    """A writer killed after publishing a rotation, before writing to the new file, leaves it with
    its header alone, and the page naming it: the file before it was closed first, so damage at its
    end is damage. kvb check and salvage took it for what a rotation that died before publishing
    leaves (a torn write: a note, and salvage copied the key's older value), while DB raised."""
    with DB(store_path, max_file_size=4096) as db:
        db.put(b"k", b"old")
        db.put(b"pad", b"x" * 3000)
        db.put(b"k", b"new")
        with db.locked():
            db._rotate()  # published; the write it was made for never came
    first, newest = data_files(store_path)
    assert os.path.getsize(newest) == rec.FILE_HEADER_SIZE
    last = records(first)[-1]
    _patch(first, last[0] + 22 + 1 + 1, b"X")
    assert [p.offset for p in check(store_path).problems] == [last[0]]
    assert salvage(store_path, str(tmp_path / "copy")).damaged_keys == [b"k"]
    assert assert_same(store_path)[b"k"] == DAMAGED


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_backup_counts_the_damage_a_check_of_its_restored_copy_finds(store_path, case):
    """A backup notes the damaged spots of each file it copies, as kvb check of a restored copy
    (which has no STATE page) reports them: a damaged header with records after it in the active
    file was an unfinished write to the backup, and damage to that check."""
    from kv_backend.check import snapshot_problems

    active, recs = _store(store_path)
    how, _, _ = DAMAGE[case]
    _patch(active, *how(recs[b"k4"]))
    with open(active, "rb") as f:
        buf = f.read()
    noted = snapshot_problems(lambda o, n: buf[o : o + n], len(buf), active, tail=True)
    assert [p.offset for p in noted] == [p.offset for p in check(store_path).problems] == [recs[b"k4"][0]]
