"""An independent reader of closed stores, written from docs/file-format.md and docs/protocol.md alone,
compared with the engine's own reads on stores the engine made: histories with merges (with and
without hint files), writers killed with SIGKILL, damaged fields, cut files, merges that keep damaged
records. Where the two differ, the docs (or the engine) are wrong.

The reader part (up to "The comparison") imports nothing from kv_backend. Its simplifications: it
does not check for a published end inside a committed batch, nor read a transaction a power failure
tore (none of which these stores hold), and reads the file before a rotation that died without a page
only roughly. Beyond tests/test_format_reader11.py it adds: a reader that follows the current text,
random damage to every record field with and without a page and hint files, merges that keep damaged
records, merge outputs cut short, and agreement with `kvb check` on whether there is damage at all.
"""

from __future__ import annotations

import os
import random
import re
import signal
import struct
import subprocess
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HEADER = struct.Struct("<IBBIId")  # crc, type, flags, key length, value length, expiry
PUT, DELETE, COMMIT = 1, 2, 3
MAX_KEY, MAX_VALUE = 65536, 1 << 30
DATA_NAME = re.compile(r"^(\d{10})-(\d{3})\.data$")


@dataclass
class Contents:
    """What a store holds: live keys (value, expiry), damaged keys and damaged regions."""

    live: dict[bytes, tuple[bytes, float]] = field(default_factory=dict)
    damaged: set[bytes] = field(default_factory=set)
    regions: int = 0
    records: int = 0
    """Damaged records (the newest of their key or not) and damaged regions, as `kvb check` finds them."""


@dataclass
class Record:
    """One record at an offset; `sound` when its CRC matches and it can be read."""

    pos: int
    end: int
    crc_ok: bool
    type: int
    flags: int
    key: bytes
    value: bytes
    expiry: float

    @property
    def sound(self) -> bool:
        if not self.crc_ok or self.type not in (PUT, DELETE, COMMIT):
            return False
        if self.type == COMMIT:
            return self.key == b"" and len(self.value) == 4
        return self.key != b""


def frame(buf: bytes, pos: int, end: int) -> Record | None:
    """The record at `pos` if its header frames one inside `end`, else None (a damaged header)."""
    if end - pos < 22:
        return None
    crc, typ, flags, k, v, exp = HEADER.unpack_from(buf, pos)
    if crc == 0 and typ == 0 and k == 0 and v == 0:
        return None
    if k > MAX_KEY or v > MAX_VALUE or pos + 22 + k + v > end:
        return None
    stop = pos + 22 + k + v
    ok = zlib.crc32(buf[pos + 4 : stop]) == crc
    return Record(pos, stop, ok, typ, flags, buf[pos + 22 : pos + 22 + k], buf[pos + 22 + k : stop], exp)


class Replay:
    """Applies records in log order to a Contents, holding the batch being read."""

    def __init__(self, out: Contents, now: float) -> None:
        self.out, self.now = out, now
        self.batch: list[tuple[str, Record]] | None = None

    def apply(self, kind: str, rec: Record) -> None:
        key = rec.key
        self.out.live.pop(key, None)
        self.out.damaged.discard(key)
        if kind == "damaged":
            self.out.damaged.add(key)
        elif rec.type == PUT and (rec.expiry == 0 or rec.expiry > self.now):
            self.out.live[key] = (rec.value, rec.expiry)

    def commit(self, n: int | None) -> None:
        """Apply the last `n` records of the open batch (all when None); damage is kept either way."""
        ops = self.batch or []
        cut = 0 if n is None else max(0, len(ops) - n)
        for kind, rec in ops[:cut]:
            if kind == "damaged":
                self.apply(kind, rec)
        for kind, rec in ops[cut:]:
            self.apply(kind, rec)
        self.batch = None

    def discard(self) -> None:
        self.commit(0)

    def sound(self, rec: Record) -> None:
        if rec.type == COMMIT:
            (n,) = struct.unpack("<I", rec.value)
            if self.batch is not None:
                self.commit(n)
            return
        if rec.flags & 1:
            if self.batch is None:
                self.batch = []
            self.batch.append(("op", rec))
            return
        if self.batch is not None:
            self.discard()
        self.apply("op", rec)

    def damaged(self, rec: Record) -> None:
        self.out.records += 1
        if not rec.key:
            self.commit(None)
        elif self.batch is not None:
            self.batch.append(("damaged", rec))
        else:
            self.apply("damaged", rec)


def confirmed_sound(buf: bytes, pos: int, end: int) -> bool:
    """A sound record at `pos` followed by another sound record or by zeros only up to `end`."""
    rec = frame(buf, pos, end)
    if rec is None or not rec.sound:
        return False
    if buf[rec.end : end].count(0) == end - rec.end:
        return True
    nxt = frame(buf, rec.end, end)
    return nxt is not None and nxt.sound


def lengths_confirmed(buf: bytes, rec: Record, end: int) -> bool:
    """Rule 1: a damaged record's lengths point to the end, a sound record or a confirmed damaged one;
    the end not where the zeros that end the data reach into the key of the record pointing to it."""
    while True:
        if rec.end == end:
            return not in_end_zeros(buf, rec.pos + 22 + len(rec.key) if rec.key else 0, end)
        nxt = frame(buf, rec.end, end)
        if nxt is None:
            return False
        if nxt.sound:
            return True
        rec = nxt


def in_end_zeros(buf: bytes, key_end: int, end: int) -> bool:
    """Whether the zeros that end `buf[:end]` reach into the key ending at `key_end` (0: no key)."""
    return key_end > 0 and not buf[key_end - 1 : end].strip(b"\0")


def read_published(buf: bytes, start: int, end: int, replay: Replay) -> None:
    """Rules 1 to 3 of the published part, from `start` to `end`."""
    pos = start
    while pos < end:
        rec = frame(buf, pos, end)
        if rec is not None and rec.sound:
            replay.sound(rec)
            pos = rec.end
            continue
        if rec is not None and lengths_confirmed(buf, rec, end):
            replay.damaged(rec)
            pos = rec.end
            continue
        # Rule 3: a damaged header.
        if replay.batch is not None:
            replay.commit(None)
        if end - pos >= 22:
            k = HEADER.unpack_from(buf, pos)[3]
            if 1 <= k <= MAX_KEY and pos + 22 + k <= end and not in_end_zeros(buf, pos + 22 + k, end):
                key = buf[pos + 22 : pos + 22 + k]
                replay.apply("damaged", Record(pos, pos, False, 0, 0, key, b"", 0.0))
        replay.out.regions += 1
        pos = next((p for p in range(pos + 1, end) if confirmed_sound(buf, p, end)), end)


def read_unpublished(buf: bytes, start: int, replay: Replay) -> tuple[int, int]:
    """The unpublished rules from `start`: keep whole records and committed batches.

    Returns (the end of what was kept, where the record that stopped the reading starts)."""
    pos, kept, batch = start, start, []
    while True:
        if pos >= len(buf):
            return kept, len(buf)
        rec = frame(buf, pos, len(buf))
        if rec is None or not rec.sound:
            return kept, pos
        if rec.type == COMMIT:
            (n,) = struct.unpack("<I", rec.value)
            if n != len(batch):
                return kept, pos
            for r in batch:
                replay.sound(r)
            replay.sound(rec)
            batch = []
            kept = rec.end
        elif rec.flags & 1:
            batch.append(rec)
        else:
            batch = []
            replay.sound(rec)
            kept = rec.end
        pos = rec.end


def end_without_page(buf: bytes, now: float) -> tuple[int, bool]:
    """Step 2 of "The end of the active file": where the data ends with no published end to go by, and
    whether a stop there was damage rather than an unfinished write."""
    size = len(buf)

    def strict(at: int) -> tuple[int, int]:
        return read_unpublished(buf, at, Replay(Contents(), now))

    best, origin = strict(16)
    pos, damage = best, False
    while True:
        while size - pos >= 22 and buf[pos : pos + 22].count(0) < 22:
            k, v = HEADER.unpack_from(buf, pos)[3:5]
            nxt = pos + 22 + k + v
            if k > MAX_KEY or v > MAX_VALUE or nxt > size:
                break
            found, stop = strict(nxt)
            if found > nxt:
                best, origin, pos = found, stop, found
            else:
                pos = nxt
        if origin >= size or unfinished_write(buf, origin):
            return best, damage
        # Damage: published rules 1 and 2 from the end found so far, the end of the file confirming nothing.
        damage = True
        pos = best
        while True:
            rec = frame(buf, pos, size)
            if rec is None or not (rec.sound or (rec.end < size and lengths_confirmed(buf, rec, size))):
                break
            pos = rec.end
        if pos > best:
            best, origin = pos, pos
            continue
        resume = next((p for p in range(origin + 1, size) if confirmed_sound(buf, p, size)), None)
        if resume is None:
            return best, True
        best, origin = strict(resume)
        pos = best


def state_tail(path: str) -> tuple[int, int, bool] | None:
    """(major, published end, intent equals tail) from a STATE page, None without a valid one."""
    try:
        with open(os.path.join(path, "STATE"), "rb") as f:
            page = f.read(48)
    except FileNotFoundError:
        return None
    if len(page) < 48 or page[:8] != b"KVBSTAT2" or struct.unpack_from("<I", page, 8)[0] != 2:
        return None
    tail, _gen, intent = struct.unpack_from("<QQQ", page, 16)
    major, end = tail >> 40, tail & ((1 << 40) - 1)
    imajor, iend = intent >> 40, intent & ((1 << 40) - 1)
    vouched = intent == tail or (imajor == major and iend > end) or (imajor == major + 1 and iend == 16)
    if end < 16 or not vouched:
        return None
    return major, end, intent == tail


def end_inside_record(buf: bytes, end: int, intent_is_tail: bool) -> bool:
    """A published end no writer leaves: inside a sound record, where the bytes there are no record header."""
    at = buf[end : end + 22]
    if len(at) == 22:
        if intent_is_tail and at.count(0) == 22:
            return False
        _crc, typ, flags, k, v, _exp = HEADER.unpack_from(at)
        if 1 <= typ <= 3 and flags <= 1 and k <= MAX_KEY and v <= MAX_VALUE:
            return False
    pos = 16
    while pos < end:
        rec = frame(buf, pos, len(buf))
        if rec is not None and (rec.sound or lengths_confirmed(buf, rec, len(buf))):
            pos = rec.end
            continue
        pos = next((p for p in range(pos + 1, len(buf)) if confirmed_sound(buf, p, len(buf))), len(buf))
        if pos > end:
            return False
    return pos > end


def hint_entries(path: str, name: str, size: int) -> tuple[int, list[tuple[bytes, int, int, float]]] | None:
    """The data file size and entries (key, offset, size, expiry) of a hint file that checks out."""
    try:
        with open(os.path.join(path, name[:-5] + ".hint"), "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    if len(data) < 40 or data[:8] != b"KVBHINT\0":
        return None
    version, n, dsize, crc, _res, total = struct.unpack_from("<IIQIIQ", data, 8)
    if version != 3 or dsize < size or len(data) != 40 + 20 * n + total:
        return None
    if zlib.crc32(data[40:]) != crc:
        return None
    klens = struct.unpack_from(f"<{n}I", data, 40)
    locs = struct.unpack_from(f"<{n}Q", data, 40 + 4 * n)
    exps = struct.unpack_from(f"<{n}d", data, 40 + 12 * n)
    if sum(klens) != total:
        return None
    out, kpos = [], 40 + 20 * n
    for klen, loc, exp in zip(klens, locs, exps, strict=True):
        off, rsize = loc >> 32, loc & 0xFFFFFFFF
        if off + rsize > dsize:
            return None
        out.append((data[kpos : kpos + klen], off, rsize, exp))
        kpos += klen
    # A data file shorter than the hint's size is used through it only where an entry lies past its end.
    if dsize > size and not any(off + rsize > size for _k, off, rsize, _e in out):
        return None
    return dsize, out


def read_store(path: str, now: float) -> Contents:
    """Every live key, damaged key and damaged region of a store no process has open."""
    names = sorted((int(m[1]), int(m[2]), n) for n in os.listdir(path) if (m := DATA_NAME.match(n)))
    out = Contents()
    replay = Replay(out, now)
    tail = state_tail(path)
    newest = os.path.join(path, names[-1][2]) if names else ""
    # A newest file holding at most its header, which no page names: a rotation may have died after it.
    dead_rotation_after = (
        bool(names)
        and names[-1][1] == 0
        and os.path.getsize(newest) <= 16
        and (tail is None or tail[0] != names[-1][0])
    )
    for i, (major, minor, name) in enumerate(names):
        with open(os.path.join(path, name), "rb") as f:
            buf = f.read()
        active = i == len(names) - 1 and minor == 0
        hinted = None if active else hint_entries(path, name, len(buf))
        if hinted is not None and hinted[0] > len(buf):
            out.regions += 1  # lost bytes, read as zeros up to the size the hint file gives
            buf += bytes(hinted[0] - len(buf))
        if len(buf) < 16:
            out.regions += 0 if active else 1
            continue
        version = struct.unpack_from("<I", buf, 8)[0]
        if buf[:8] == b"KVBDATA\0" and version not in (0, 1):
            raise ValueError(f"{name}: data file of format version {version}: not a store this reader reads")
        if buf[:8] != b"KVBDATA\0" or version != 1:
            out.regions += 1
        if hinted is not None:
            for key, off, rsize, exp in hinted[1]:
                found = frame(buf, off, off + rsize)
                if exp != 0 and exp <= now:  # expired: absent, whatever its record holds
                    replay.apply("op", Record(off, off, True, DELETE, 0, key, b"", exp))
                elif found is not None and found.sound and found.key == key and found.type == PUT:
                    found.expiry = exp  # the expiry comes from the hint
                    replay.apply("op", found)
                else:  # an entry pointing to a damaged record: its key reads as damaged
                    out.records += 1
                    replay.apply("damaged", Record(off, off, False, PUT, 0, key, b"", exp))
            continue
        named = tail is not None and tail[0] == major and minor == 0
        if named and i < len(names) - 1 and tail is not None:
            # The file before the active one, which a rotation that died may have left unclosed: read
            # as if zeros followed its bytes up to its published end, then as past any published end.
            buf += bytes(max(0, tail[1] - len(buf)))
            if not end_inside_record(buf, tail[1], tail[2]):
                read_published(buf, 16, tail[1], replay)
                replay.discard()
                read_unpublished(buf, tail[1], replay)
                continue
        if not active:
            end = len(buf)
            if i == len(names) - 2 and minor == 0 and dead_rotation_after:
                # The file before the one a rotation that died created (without a page naming it):
                # what a killed writer leaves at its end is an unfinished write, anything else data.
                found, damage = end_without_page(buf, now)
                end = end if damage else found
            read_published(buf, 16, end, replay)
            replay.discard()  # a batch open at the end of a closed file lost its COMMIT
            continue
        if (
            named
            and tail is not None
            and len(buf) >= tail[1]
            and not end_inside_record(buf, tail[1], tail[2])
        ):
            read_published(buf, 16, tail[1], replay)
            replay.discard()
            read_unpublished(buf, tail[1], replay)
        else:
            read_published(buf, 16, end_without_page(buf, now)[0], replay)
            replay.discard()
    return out


def unfinished_write(buf: bytes, pos: int) -> bool:
    """Step 2: zeros to the end, a header cut by the end, or a record whose lengths point to zeros only."""
    if buf[pos:].count(0) == len(buf) - pos or len(buf) - pos < 22:
        return True
    _crc, _t, _f, k, v, _e = HEADER.unpack_from(buf, pos)
    stop = pos + 22 + k + v
    if stop > len(buf):
        return True  # a record cut by the end of the file, which nothing can follow
    return k <= MAX_KEY and v <= MAX_VALUE and buf[stop:].count(0) == len(buf) - stop


# --- The comparison with the engine -------------------------------------------------------------

from kv_backend import DB  # noqa: E402
from kv_backend.check import check  # noqa: E402
from kv_backend.errors import CorruptionError  # noqa: E402
from tests.helpers import spawn_python  # noqa: E402

KEYS = [b"k%d" % i for i in range(30)]


def write_history(db: DB, rnd: random.Random, n: int) -> None:
    """Random puts, deletes, TTLs (expired and not), batches and transactions."""
    for _ in range(n):
        key, r = rnd.choice(KEYS), rnd.random()
        if r < 0.45:
            db.put(key, rnd.randbytes(rnd.randrange(0, 200)))
        elif r < 0.55:
            db.put(key, b"t", ttl=rnd.choice([0.001, 1000]))
        elif r < 0.7:
            db.delete(key)
        elif r < 0.85:
            with db.batch() as b:
                for _ in range(rnd.randrange(1, 5)):
                    b.put(rnd.choice(KEYS), rnd.randbytes(20))
                b.delete(rnd.choice(KEYS))
        else:
            with db.transaction():
                for _ in range(rnd.randrange(1, 4)):
                    db.put(rnd.choice(KEYS), rnd.randbytes(30))


def make_store(path: str, seed: int, *, merge: bool, hints: bool = True) -> None:
    rnd = random.Random(seed)
    with DB(path, max_file_size=4096) as db:
        write_history(db, rnd, 120)
        if merge:
            db.merge()
        write_history(db, rnd, 40)
    if not hints:
        for name in os.listdir(path):
            if name.endswith(".hint"):
                os.unlink(os.path.join(path, name))


def assert_reads_alike(path: str) -> Contents:
    """The docs' reader and the engine agree on every key's value, expiry and damage, and `kvb check`
    finds damage where the reader does, and only there. (A key whose expiry falls while the two
    read is left out: a TTL of a millisecond may expire between them.)"""
    before = time.time()
    mine = read_store(path, before)
    live: dict[bytes, tuple[bytes, float]] = {}
    damaged = set()
    with DB(path, read_only=True) as db:
        for key in set(KEYS) | set(mine.live) | mine.damaged | set(db.unordered_keys()):
            try:
                got = db.get_with_expiry(key)
            except CorruptionError:
                damaged.add(key)
                continue
            if got is not None:
                live[key] = (got[0], got[1] or 0.0)
    after = time.time()
    expiring = {k for k, (_v, exp) in mine.live.items() if before <= exp <= after}
    assert {k: v for k, v in mine.live.items() if k not in expiring} == {
        k: v for k, v in live.items() if k not in expiring
    }
    assert mine.damaged == damaged
    assert bool(check(path).problems) == bool(mine.regions or mine.records)
    return mine


def data_files_of(path: str) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if DATA_NAME.match(n))


def records_of(buf: bytes) -> list[Record]:
    """The records a data file holds from its header on, as long as they frame."""
    out, pos = [], 16
    while (rec := frame(buf, pos, len(buf))) is not None:
        out.append(rec)
        pos = rec.end
    return out


FIELDS = {"crc": 0, "type": 4, "key length": 6, "value length": 10, "expiry": 20, "key": 22}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("hints", [True, False], ids=["hints", "no-hints"])
def test_histories_with_merges(tmp_path, seed, hints):
    path = str(tmp_path / "kv")
    make_store(path, seed, merge=seed > 0, hints=hints)
    assert assert_reads_alike(path).live


@pytest.mark.parametrize("field", [*FIELDS, "value"])
@pytest.mark.parametrize("page", [True, False], ids=["page", "no-page"])
def test_a_damaged_field(tmp_path, field, page):
    path = str(tmp_path / "kv")
    rnd = random.Random(f"{field}{page}")
    for attempt in range(3):
        make_store(path + str(attempt), attempt, merge=attempt == 1)
        name = rnd.choice(data_files_of(path + str(attempt)))
        buf = bytearray(Path(name).read_bytes())
        rec = rnd.choice([r for r in records_of(bytes(buf)) if r.key and r.value])
        at = rnd.randrange(rec.end - len(rec.value), rec.end) if field == "value" else rec.pos + FIELDS[field]
        buf[at] ^= 1 << rnd.randrange(8)
        Path(name).write_bytes(buf)
        if not page:
            os.unlink(os.path.join(path + str(attempt), "STATE"))
        assert_reads_alike(path + str(attempt))


@pytest.mark.parametrize("hints", [True, False], ids=["hints", "no-hints"])
def test_a_merge_keeps_a_damaged_record(tmp_path, hints):
    path = str(tmp_path / "kv")
    with DB(path, max_file_size=4096) as db:
        db.put(b"target", b"v" * 40)
    make_store(path, 7, merge=False)
    name = data_files_of(path)[0]
    buf = bytearray(Path(name).read_bytes())
    rec = next(r for r in records_of(bytes(buf)) if r.key == b"target")
    buf[rec.pos] ^= 0xFF  # its CRC: lengths sound, so the merge copies it as it is
    Path(name).write_bytes(buf)
    with DB(path) as db:
        assert db.merge().corrupt_kept == 1
    if not hints:
        for n in os.listdir(path):
            if n.endswith(".hint"):
                os.unlink(os.path.join(path, n))
    assert b"target" in assert_reads_alike(path).damaged


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9])
def test_a_merge_output_cut_short_reads_through_its_hint_file(tmp_path, cut):
    path = str(tmp_path / "kv")
    make_store(path, 11, merge=True)
    output = next(n for n in data_files_of(path) if not n.endswith("-000.data"))
    os.truncate(output, int(os.path.getsize(output) * cut))
    assert assert_reads_alike(path).damaged


@pytest.mark.parametrize("page", [True, False], ids=["page", "no-page"])
def test_an_active_file_cut_inside_a_record(tmp_path, page):
    """A record cut by the end of the file is the file's unfinished last write, not damage."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        for i in range(5):
            db.put(b"k%d" % i, bytes([i]) * 50)
        db.put(b"k1", b"new" * 20)
    active = data_files_of(path)[-1]
    data = Path(active).read_bytes().rstrip(b"\0")
    last = records_of(data)[-1]
    for at in (last.end - 5, last.pos + 10, last.pos + 22 + 1):
        Path(active).write_bytes(data[:at])
        if not page and os.path.exists(os.path.join(path, "STATE")):
            os.unlink(os.path.join(path, "STATE"))
        mine = assert_reads_alike(path)
        assert mine.live[b"k1"][0] == b"\1" * 50 and not mine.damaged and not mine.regions


WRITER = """
import random, sys
from kv_backend import DB
from tests.test_docs_reader23 import write_history
db = DB(sys.argv[1], max_file_size=8192)
rnd = random.Random(int(sys.argv[2]))
print("open", flush=True)
for i in range(100000):
    write_history(db, rnd, 10)
    if i == 5 and sys.argv[2] == "0":
        db.merge()
    print(i, flush=True)
"""


@pytest.mark.parametrize("run", range(3))
def test_writers_killed_at_random_points(tmp_path, run):
    path = str(tmp_path / "kv")
    rnd = random.Random(run)
    procs = [
        spawn_python(WRITER, path, str(seed), stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
        for seed in (run, run + 100)
    ]
    for proc in procs:
        assert proc.stdout is not None
        for _ in range(rnd.randrange(2, 12)):
            proc.stdout.readline()
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
    assert_reads_alike(path)
    if run == 2:
        os.unlink(os.path.join(path, "STATE"))
        assert_reads_alike(path)


def test_a_batch_torn_at_the_end_of_the_active_file_without_a_page(tmp_path):
    """The record that stopped the reading decides whether the stop is an unfinished write: here a
    torn record of a batch whose first record is whole (what a writer killed inside its pwrite
    leaves: the first bytes written, zeros after them)."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"k1", b"old")
        with db.batch() as b:
            b.put(b"k1", b"new" * 10)
            b.put(b"k2", b"x" * 50)
    active = data_files_of(path)[-1]
    buf = bytearray(Path(active).read_bytes())
    torn, commit = records_of(bytes(buf))[-2:]
    buf[torn.pos + 30 : commit.end] = bytes(commit.end - torn.pos - 30)
    Path(active).write_bytes(buf)
    os.unlink(os.path.join(path, "STATE"))
    mine = assert_reads_alike(path)
    assert mine.live[b"k1"][0] == b"old" and b"k2" not in mine.live and not mine.regions


def test_a_damaged_last_record_of_an_active_file_without_a_page(tmp_path):
    """Past the end step 2 finds, nothing is reported as damage: without a page, a record whose
    header was zeroed reads as an unfinished write, and its key as its older value."""
    path = str(tmp_path / "kv")
    with DB(path) as db:
        db.put(b"k1", b"old" * 10)
        db.put(b"k1", b"new" * 10)
    active = data_files_of(path)[-1]
    buf = bytearray(Path(active).read_bytes())
    last = records_of(bytes(buf))[-1]
    buf[last.pos : last.pos + 22] = bytes(22)
    Path(active).write_bytes(buf)
    os.unlink(os.path.join(path, "STATE"))
    mine = assert_reads_alike(path)
    assert mine.live[b"k1"][0] == b"old" * 10 and not mine.regions
