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
from helpers import data_files, exit_code, fork_child, patch_engine
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


@pytest.mark.parametrize("run", range(12))
def test_sigkilled_writers_then_no_page_keeps_every_acknowledged_write_and_no_phantom(tmp_path, run):
    """Writers killed at random points, their store then opened without its STATE page."""
    path = str(tmp_path / "s")
    DB(path).close()
    log = str(tmp_path / "log")
    open(log, "wb").close()
    pids = [fork_child(lambda s=s: _writer(path, log, run * 10 + s)) for s in range(2)]
    time.sleep(0.05 + random.Random(run).random() * 0.4)
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
