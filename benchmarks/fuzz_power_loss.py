"""A fuzzer of SIGKILLs and power failures: one writer at a time on a store, killed at a random point,
then (with ``--damage``) the disk as a power failure would leave it, read by every reader.

Not a benchmark and not part of ``make test`` (tests/test_fuzz_power_loss22.py runs a few seeds of each
mode). Each seed is deterministic: the same seed writes the same records, kills at the same step and
damages the same bytes. See the "Power-failure fuzzer" section of docs/protocol.md.

    python benchmarks/fuzz_power_loss.py [--seeds 200] [--start 0] [--damage] [--dir D] [--keep]

Per seed, one to three writer processes run one after the other on one store (forked, each opening the
store, so the second and third run tail recovery first), each doing puts and deletes (some with a TTL,
some with a TTL of 0 or less), ``expire``, batches, transactions (some aborted by an exception),
merges and reopens, with a ``max_file_size`` of 4 KiB (files rotate all the time) and one ``sync``
mode for the seed. Each logs every operation before the call and acknowledges it after it returns.
Each is SIGKILLed at a chosen system call (a ``pwrite``, ``ftruncate``, ``fsync``, ``rename``,
``unlink``), a ``pwrite`` sometimes torn first. While it runs it records what a power failure cannot
take: each data file's bytes as they were at its last fsync, the directory at its last fsync, and the
STATE page's words at every system call (and at each flush of the page).

With ``--damage`` the store is then changed as a power failure may leave it (and, half the time, also
before a writer that follows another, which recovers what it left): each data file keeps its
fsynced bytes, and of the bytes written since, sectors are kept or lost (read as what was there at the
fsync, zeros past it), in order or at random, its size either; a newest file no directory fsync made
durable is lost or cut short (a dead rotation's short new file); the STATE page is lost, left as
zeros, or one its writers left at some system call (not older than its last flush), then sometimes a
bit flipped in its tail or intent word, or its end moved back to another record boundary of its file;
and now and then the type byte of a record that a sound record follows is damaged (more often the one
at the page's end: two damages in one place), not one with a key that records of a batch that never
commits follow (without a page, that reads as a transaction a writer died in, its first record damaged
by the power failure, which readers need not tell from it).

Then every reader reads the store: a read-only open, the format reader of the tests
(tests/test_format_reader11.py, where the tests are there), ``kvb check``, ``kvb salvage`` (and the
salvaged store), a backup (restored where it is sound), a writer's open (its recovery), a read-only
open after it, and a merge. The seed is bad where: a reader returns a value that was never committed
(of an aborted transaction, or of the batch or transaction a kill cut short before its COMMIT); without
damage reported, the store is not the state after some prefix of the operations (each one in flight at
a kill in or out) that holds every acknowledged one (without ``--damage``) or every one an fsync made
durable (with ``--damage``: every acknowledged one under ``sync="always"``; ``sync="never"`` promises
nothing, not even a prefix); the readers disagree (on
the values, or on whether there is damage, but for what docs/protocol.md says only some of them find);
a reader raises, or a writer does (but for a merge or an ``expire``, which reads its key, refused by
damage a power failure before that writer left, kvb check having reported it: then counted as not
done); a merge of a store without damage fails or changes it; or, without ``--damage``, any damage is
reported. Bad seeds are printed with a one-line reason, and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from itertools import product

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kv_backend import DB  # noqa: E402
from kv_backend.backup import backup_store, restore  # noqa: E402
from kv_backend.check import check  # noqa: E402
from kv_backend.errors import CorruptionError  # noqa: E402
from kv_backend.files import data_name  # noqa: E402
from kv_backend.record import COMMIT, FILE_HEADER_SIZE, FLAG_BATCH, HEADER, reader_of, sound_size  # noqa: E402
from kv_backend.salvage import salvage  # noqa: E402

SECTOR = 512
TAIL = struct.Struct("=Q")  # (a word of the STATE page)
PAGE_WORDS = 48  # the STATE page's magic, version, tail, generation, intent, last fsync time
KEYS = [b"k%d" % i for i in range(12)]
GROUPS = [[b"g%d:%d" % (g, i) for i in range(4)] for g in range(3)]
CORRUPT = "<damaged>"
# What kvb check reports alone, by design, where the STATE page lags records after a stop past its end
# that a writer's recovery cuts (docs/file-format.md, "The end of the active file", step 1).
LAGGING = "past the end the STATE page publishes"
# The syscalls a writer may be killed at (and that the recorder follows).
CALLS = ("pwrite", "ftruncate", "fsync", "fdatasync", "replace", "rename", "unlink")
_real = {name: getattr(os, name) for name in CALLS}


# ------------------------------------------------------------------ the writer (a forked child)


class Recorder:
    """In a writer: counts the system calls that change the store, kills the process at the chosen one,
    and records what a power failure cannot take (see the module's docstring)."""

    def __init__(self, store: str, logdir: str, kill_at: int, rnd: random.Random) -> None:
        self.store, self.logdir, self.kill_at, self.rnd = store, logdir, kill_at, rnd
        self.calls = 0
        self.op = 0
        self.log_fd = os.open(os.path.join(logdir, "ops.log"), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.last_page = b""

    def log(self, **entry: object) -> None:
        os.write(self.log_fd, (json.dumps(entry) + "\n").encode())

    def install(self) -> None:
        for name in CALLS:
            setattr(os, name, self._hook(name, _real[name]))
        for mod in [m for n, m in sys.modules.items() if n.startswith("kv_backend") and m is not None]:
            if getattr(mod, "_pwrite", None) is _real["pwrite"]:
                mod._pwrite = os.pwrite  # type: ignore[attr-defined]
        from kv_backend.state import SharedState

        def flushed(page: SharedState) -> None:
            self._page(flushed=True)  # (recorded, not run, as an fsync)

        SharedState.flush = flushed  # type: ignore[method-assign]

    def _hook(self, name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            self.calls += 1
            self._page()
            if self.calls == self.kill_at:
                if name == "pwrite" and self.rnd.random() < 0.5:
                    fd, data, offset = args[0], memoryview(args[1]), args[2]  # type: ignore[arg-type]
                    _real["pwrite"](fd, data[: self.rnd.randrange(len(data) + 1)], offset)
                os.kill(os.getpid(), signal.SIGKILL)
            if name in ("replace", "rename"):
                self._renamed(str(args[0]), str(args[1]))
            elif name == "unlink":
                self._forget(str(args[0]))
            if name in ("fsync", "fdatasync"):
                # (Recorded, not run: the power failure is this script's, and the disk's would only slow it.)
                self._synced(args[0])  # type: ignore[arg-type]
                return None
            return real(*args)

        return call

    def _page(self, flushed: bool = False) -> None:
        try:
            with open(os.path.join(self.store, "STATE"), "rb") as f:
                words = f.read(PAGE_WORDS)
        except OSError:
            return
        if words != self.last_page or flushed:
            self.last_page = words
            self.log(page=words.hex(), flushed=flushed)

    def _synced(self, fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isdir(path):
            if os.path.realpath(path) == os.path.realpath(self.store):
                self.log(dir=sorted(os.listdir(self.store)))
            return
        name = os.path.basename(path)
        if os.path.dirname(os.path.realpath(path)) != os.path.realpath(self.store) or name == "STATE":
            return
        if ".data" not in name and ".hint" not in name:
            return
        size = os.fstat(fd).st_size
        with open(path, "rb") as f:  # (the descriptor may be open for writing only)
            data = f.read(size).rstrip(b"\0")
        with open(os.path.join(self.logdir, "durable", name), "wb") as f:
            f.write(
                size.to_bytes(8, "little") + data
            )  # (its size, then its bytes up to the zeros at its end)
        self.log(synced=name, size=size, op=self.op, data_file=name.endswith(".data"))

    def _renamed(self, src: str, dst: str) -> None:
        if os.path.dirname(os.path.realpath(src)) == os.path.realpath(self.store):
            old = os.path.join(self.logdir, "durable", os.path.basename(src))
            if os.path.exists(old):
                os.rename(old, os.path.join(self.logdir, "durable", os.path.basename(dst)))
                self.log(moved=os.path.basename(src), to=os.path.basename(dst))

    def _forget(self, path: str) -> None:
        if os.path.dirname(os.path.realpath(path)) == os.path.realpath(self.store):
            try:
                os.remove(os.path.join(self.logdir, "durable", os.path.basename(path)))
            except FileNotFoundError:
                pass


def value(key: bytes, opid: str, rnd: random.Random) -> bytes:
    """A value naming its key and the operation that wrote it; its body sometimes runs of zeros."""
    n = rnd.choice([0, 8, 60, 300, 900, 2500])
    body = bytes(n) if rnd.random() < 0.25 else (opid.encode() + b";") * (n // (len(opid) + 1))
    return b"%s|%s|" % (key, opid.encode()) + body


def writer(
    store: str,
    logdir: str,
    seed: int,
    child: int,
    first_op: int,
    n_ops: int,
    kill_at: int,
    sync: object,
    damaged: bool = False,
) -> None:
    """One writer process (forked): ``n_ops`` random operations numbered from ``first_op``, killed at its
    ``kill_at``-th system call (or after the last operation); ``damaged``: kvb check reported damage a
    power failure before it left, which an operation that reads a key may find (it raises)."""
    rnd = random.Random(f"{seed}/{child}")
    clock = [2_000_000_000.0 + child * 1000]  # (a clock of its own: the expiries written are the seed's)

    def tick() -> float:
        clock[0] += 0.001
        return clock[0]

    for mod in [m for n, m in sys.modules.items() if n.startswith("kv_backend") and m is not None]:
        if getattr(mod, "_time", None) is time.time:
            mod._time = tick  # type: ignore[attr-defined]
    time.time = tick
    rec = Recorder(store, logdir, kill_at, random.Random(f"{seed}/{child}/kill"))
    rec.install()
    rec.log(child=child)
    db = DB(store, sync=sync, max_file_size=4096)
    for i in range(first_op, first_op + n_ops):
        rec.op = i
        opid = f"{child}.{i}"
        r = rnd.random()
        if r < 0.35:
            key = rnd.choice(KEYS)
            ttl = rnd.choice([None, None, None, 3600.0, 0.0, -1.0])
            v = value(key, opid, rnd)
            rec.log(
                i=i, op="put", w={key.decode(): None if ttl is not None and ttl <= 0 else v.decode("latin-1")}
            )
            db.put(key, v, ttl=ttl)
        elif r < 0.45:
            key = rnd.choice(KEYS)
            rec.log(i=i, op="delete", w={key.decode(): None})
            db.delete(key)
        elif r < 0.5:
            key = rnd.choice(KEYS)
            ttl = rnd.choice([3600.0, 0.0])
            rec.log(i=i, op="expire", w={} if ttl > 0 else {key.decode(): None})
            try:
                db.expire(key, ttl)  # (it reads the key)
            except CorruptionError:
                if not damaged:
                    raise
                # (Refused: the key's newest record is damage a power failure before this writer left.)
                rec.log(ack=i, file=data_name(db._tail[0]), refused=True)
                continue
        elif r < 0.8:
            group = rnd.choice(GROUPS)
            w = {
                k: (value(k, opid, rnd) if rnd.random() < 0.7 else None) for k in group if rnd.random() < 0.8
            }
            how = rnd.choice(["batch", "transaction", "transaction", "aborted"])
            rec.log(
                i=i, op=how, w={k.decode(): None if v is None else v.decode("latin-1") for k, v in w.items()}
            )
            if how == "batch":
                with db.batch() as b:
                    for k, v in w.items():
                        b.delete(k) if v is None else b.put(k, v)
            else:
                try:
                    with db.transaction():
                        for k, v in w.items():
                            db.delete(k) if v is None else db.put(k, v)
                        if how == "aborted":
                            rec.log(aborting=i)
                            raise KeyError("aborted")
                except KeyError:
                    pass
        elif r < 0.88:
            rec.log(i=i, op="merge", w={})
            try:
                db.merge(wait=True)
            except CorruptionError:  # (refused: damage a power failure before this writer left)
                rec.log(ack=i, file=data_name(db._tail[0]), refused=True)
                continue
        elif r < 0.92:
            rec.log(i=i, op="reopen", w={})
            db.close()
            db = DB(store, sync=sync, max_file_size=4096)
        else:
            continue
        rec.log(ack=i, file=data_name(db._tail[0]))  # (the file its records went to)
    rec.log(done=first_op + n_ops)
    os.kill(os.getpid(), signal.SIGKILL)


def run_writer(logdir: str, *args: object) -> str | None:
    """Run :func:`writer` in a forked process; why it failed (it raised), None where it was killed."""
    pid = os.fork()
    if pid == 0:
        try:
            writer(args[0], logdir, *args[1:])  # type: ignore[arg-type]
        except BaseException as exc:
            with open(os.path.join(logdir, "raised"), "w", encoding="utf-8") as f:
                f.write(f"{type(exc).__name__}: {str(exc)[:200]}")
        finally:
            os._exit(3)  # (only where it raised: a writer ends killed)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return None
    try:
        with open(os.path.join(logdir, "raised"), encoding="utf-8") as f:
            return "a writer raised " + f.read()
    except FileNotFoundError:
        return f"a writer exited with status {status}"


# ------------------------------------------------------------------ what the writers logged


class History:
    """The operations the writers logged, in order, and what their logs say of them."""

    def __init__(self, logdir: str) -> None:
        self.ops: list[dict] = []
        self.acked: set[int] = set()
        self.aborted: set[int] = set()
        self.fsynced: set[int] = set()  # the acknowledged operations a later fsync made durable
        self.bounds = [0]  # where each run of operations between power failures starts (positions in ops)
        file_of: dict[int, str] = {}
        self.pages: list[tuple[bytes, bool]] = []
        self.durable_dir: list[str] | None = None
        with open(os.path.join(logdir, "ops.log"), encoding="utf-8") as f:
            for line in f:
                e = json.loads(line)
                if "i" in e:
                    self.ops.append(e)
                elif "ack" in e:
                    self.acked.add(e["ack"])
                    file_of[e["ack"]] = e["file"]
                    if e.get("refused") and self.ops[-1]["op"] != "merge":
                        self.aborted.add(e["ack"])  # (refused, as damage read: it did nothing)
                    if self.ops[-1]["op"] == "merge" and not e.get("refused"):
                        # (its outputs, fsynced, hold what came before it since the last power failure)
                        self.fsynced |= set(file_of) - {e["ack"]}
                elif "aborting" in e:
                    self.aborted.add(e["aborting"])
                elif "page" in e:
                    self.pages.append((bytes.fromhex(e["page"]), e["flushed"]))
                elif "dir" in e:
                    self.durable_dir = e["dir"]
                elif "power_failure" in e:
                    self.bounds.append(len(self.ops))
                    file_of.clear()  # (an fsync after it makes no operation before it durable)
                elif e.get("data_file"):
                    self.fsynced |= {i for i, name in file_of.items() if name == e["synced"]}
        for op in self.ops:
            if op["op"] == "aborted":
                self.aborted.add(op["i"])

    def in_flight(self) -> list[int]:
        """The operations a kill cut short (logged, never acknowledged), that wrote something."""
        return [op["i"] for op in self.ops if op["i"] not in self.acked | self.aborted and op["w"]]

    def durable(self, sync: object) -> list[int]:
        """Per run of operations between power failures, how many of all the operations up to its end are
        promised to survive the power failure that ends it (at least the run's start)."""
        promised = self.acked if sync == "always" else self.fsynced
        at = [n + 1 for n, op in enumerate(self.ops) if op["i"] in promised]
        ends = [*self.bounds[1:], len(self.ops)]
        return [
            max([start] + [n for n in at if start < n <= end])
            for start, end in zip(self.bounds, ends, strict=True)
        ]

    def never_committed(self, committed: set[int]) -> dict[str, set[str]]:
        """Per key, the values no reader may ever return: of aborted transactions, and of the operations
        in flight at a kill whose COMMIT did not reach the files (not in ``committed``)."""
        out: dict[str, set[str]] = {}
        for op in self.ops:
            if op["i"] in self.aborted or (op["i"] in self.in_flight() and op["i"] not in committed):
                for k, v in op["w"].items():
                    if v is not None:
                        out.setdefault(k, set()).add(v)
        return out

    def a_prefix(self, view: dict[str, str], at_least: list[int]) -> bool:
        """Whether ``view`` is the state after some prefix of each run of operations between power failures,
        the one of run ``r`` at least ``at_least[r]`` operations from the first long (a power failure ends a
        run where it cut it: the next starts from there), each operation in flight at a kill in it or out."""
        flying = self.in_flight()
        for outs in product([False, True], repeat=len(flying)):
            left_out = self.aborted | {i for i, out in zip(flying, outs, strict=True) if out}
            if self._cut(view, 0, {}, at_least, left_out):
                return True
        return False

    def _cut(
        self, view: dict[str, str], run: int, state: dict, at_least: list[int], left_out: set[int]
    ) -> bool:
        """Whether some prefix of ``run`` and of each run after it, applied to ``state``, gives ``view``."""
        start = self.bounds[run]
        end = self.bounds[run + 1] if run + 1 < len(self.bounds) else len(self.ops)
        state = dict(state)
        for n in range(start, end + 1):
            if n >= at_least[run]:
                if run + 1 < len(self.bounds):
                    if self._cut(view, run + 1, state, at_least, left_out):
                        return True
                elif {k: v for k, v in state.items() if v is not None} == view:
                    return True
            if n < end and self.ops[n]["i"] not in left_out:
                state.update(self.ops[n]["w"])
        return False


# ------------------------------------------------------------------ the power failure


def power_failure(store: str, logdir: str, hist: History, rnd: random.Random, rot: bool = True) -> list[str]:
    """Change the store as a power failure may leave it (see the module's docstring); what was done."""
    done: list[str] = []
    names = sorted(n for n in os.listdir(store) if n.endswith(".data"))
    for name in names:
        path = os.path.join(store, name)
        with open(path, "rb") as f:
            now = f.read()
        try:
            with open(os.path.join(logdir, "durable", name), "rb") as f:
                then = f.read()
            then = then[8:].ljust(int.from_bytes(then[:8], "little"), b"\0")
        except FileNotFoundError:
            then = b""
        size = len(now)
        if (
            hist.durable_dir is not None
            and name not in hist.durable_dir
            and name == names[-1]
            and len(names) > 1
        ):
            if rnd.random() < 0.3:
                os.remove(path)
                done.append(f"{name} lost")
                continue
            if rnd.random() < 0.4:
                size = rnd.randrange(17)
                done.append(f"{name} cut to {size}")
        elif rnd.random() < 0.5:
            size = rnd.choice([len(then), len(now), max(len(then), rnd.randrange(len(now) + 1))])
        # Each sector holds what was written since the last fsync, or what was there then (zeros past it).
        image, old = bytearray(now[:size].ljust(size, b"\0")), then[:size].ljust(size, b"\0")
        changed = [at for at in range(0, size, SECTOR) if image[at : at + SECTOR] != old[at : at + SECTOR]]
        if changed:
            ordered, keep = rnd.random() < 0.5, rnd.random()
            cut = rnd.randrange(len(changed) + 1)
            lost = [at for j, at in enumerate(changed) if (j >= cut if ordered else rnd.random() > keep)]
            for at in lost:
                image[at : at + SECTOR] = old[at : at + SECTOR]
            if lost:
                done.append(f"{name}: {len(lost)} of {len(changed)} unsynced sectors lost")
        if size != len(now):
            done.append(f"{name}: {len(now)} -> {size} bytes")
        with open(path, "wb") as f:
            f.write(image.rstrip(b"\0"))  # (the zeros after, a hole: less to write)
            f.truncate(size)
    page = _page_lost(store, hist, rnd, done)
    # (More often where the page's end was moved back to a record boundary: two damages in one place.)
    inside = page is not None and page[1] in _records(os.path.join(store, data_name((page[0], 0))), True)
    if rot and rnd.random() < (0.6 if inside else 0.2):
        _bit_rot(store, page, rnd, done)
    return done


def _page_lost(store: str, hist: History, rnd: random.Random, done: list[str]) -> tuple[int, int] | None:
    """The STATE page as a power failure leaves it (see the module's docstring); the ``(major, end)`` of its
    tail, None without one."""
    state = os.path.join(store, "STATE")
    if not os.path.exists(state) or not hist.pages:
        return None
    r = rnd.random()
    flushed = max([j for j, (_, fl) in enumerate(hist.pages) if fl], default=-1)
    if flushed < 0 and r < 0.15:
        os.remove(state)
        done.append("STATE lost")
        return None
    if flushed < 0 and r < 0.25:
        page = bytearray(PAGE_WORDS)
        done.append("STATE zeros")
    else:
        j = rnd.randrange(max(flushed, 0), len(hist.pages))
        page = bytearray(hist.pages[j][0].ljust(PAGE_WORDS, b"\0"))
        done.append(f"STATE as at its version {j} of {len(hist.pages)}")
    major, end = divmod(TAIL.unpack_from(page, 16)[0], 1 << 40)
    starts = [at for at in _records(os.path.join(store, data_name((major, 0)))) if at < end]
    if any(page) and starts and rnd.random() < 0.15:
        # (Bits flipped that move the end back to an earlier record boundary of its file: rare as it is,
        # the shape that asks the most of the readers, which must tell it from what a writer leaves.)
        at = rnd.choice(starts)
        TAIL.pack_into(page, 16, (major << 40) | at)
        done.append(f"the tail's end moved back to the record boundary {at}")
    elif any(page) and rnd.random() < 0.4:
        word = 32 if rnd.random() < 0.3 else 16
        bit = rnd.randrange(40) if rnd.random() < 0.85 else 40 + rnd.randrange(8)
        page[word + bit // 8] ^= 1 << (bit % 8)
        done.append(f"bit {bit} of the {'intent' if word == 32 else 'tail'} word flipped")
    with open(state, "r+b") as f:
        f.write(page)
    major, end = divmod(TAIL.unpack_from(page, 16)[0], 1 << 40)
    return major, end


def _records(path: str, followed: bool = False) -> list[int]:
    """Where the records of the data file at ``path`` start, stepping over them by their lengths (with
    ``followed``, only those a sound record follows, and not one with a key that records of a batch that
    never commits follow: see :func:`_bit_rot`)."""
    try:
        with open(path, "rb") as f:
            buf = f.read()
    except OSError:
        return []
    read = reader_of(buf)
    pos, starts = FILE_HEADER_SIZE, []
    while pos + HEADER.size <= len(buf) and buf[pos : pos + HEADER.size].strip(b"\0"):
        _, _, _, klen, vlen, _ = HEADER.unpack_from(buf, pos)
        nxt = pos + HEADER.size + klen + vlen
        if not followed or (sound_size(read, nxt, len(buf)) and not (klen and _uncommitted(buf, nxt))):
            starts.append(pos)
        pos = nxt
    return starts


def _uncommitted(buf: bytes, pos: int) -> bool:
    """Whether the sound records from ``pos`` on are records of a batch that reach no COMMIT (a transaction
    a writer died in, some of it perhaps lost), nor any record without the batch flag."""
    read = reader_of(buf)
    while n := sound_size(read, pos, len(buf)):
        _, rtype, flags, _, _, _ = HEADER.unpack_from(buf, pos)
        if rtype == COMMIT or not flags & FLAG_BATCH:
            return False
        pos += n
    return True


def _bit_rot(store: str, page: tuple[int, int] | None, rnd: random.Random, done: list[str]) -> None:
    """Damage the type byte of one record followed by a sound record (without one after it, a damaged
    record can be a torn write, which readers need not tell): the one at the page's end, or any. Not a
    record with a key that a batch that never commits follows: without a page, that reads as a transaction a
    writer died in, its first record damaged by a power failure (docs/file-format.md, "The end of the
    active file", step 2), and readers need not tell that either."""
    names = sorted(n for n in os.listdir(store) if n.endswith(".data"))
    if page is not None and data_name((page[0], 0)) in names and rnd.random() < 0.5:
        name = data_name((page[0], 0))
        starts = [at for at in _records(os.path.join(store, name), followed=True) if at == page[1]]
    else:
        name = rnd.choice(names) if names else ""
        starts = _records(os.path.join(store, name), followed=True) if names else []
    if not starts:
        return
    at = rnd.choice(starts)
    with open(os.path.join(store, name), "r+b") as f:
        f.seek(at + 4)
        f.write(bytes([rnd.choice([0, 4, 0x81, 0xFF])]))
    done.append(f"{name} @ {at}: the type byte damaged")


# ------------------------------------------------------------------ the readers


def _format_reader() -> Callable[[str], dict] | None:
    """The second reader of the on-disk format the tests hold (tests/test_format_reader11.py: written from
    docs/file-format.md alone), where the tests and pytest are there; None otherwise."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    try:
        from test_format_reader11 import read_store
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    return read_store


format_reader = _format_reader()


def view_of(path: str, *, read_only: bool) -> tuple[dict[str, str], int]:
    with DB(path, read_only=read_only) as db:
        out = {}
        for k in list(db):
            try:
                v = db.get(k)
            except CorruptionError:
                out[k.decode()] = CORRUPT
            else:
                if v is not None:
                    out[k.decode()] = v.decode("latin-1")
        return out, db.stats()["corrupt_records"]


def committed(store: str, scratch: str, hist: History) -> set[int]:
    """The operations in flight at the kill whose writes a read-only open of the store as the kill left
    it reads (their COMMIT reached the files)."""
    flying = hist.in_flight()
    if not flying:
        return set()
    view, _ = view_of(store, read_only=True)
    return {
        i
        for i in flying
        if any(
            view.get(k) == v for op in hist.ops if op["i"] == i for k, v in op["w"].items() if v is not None
        )
    }


def judge(
    store: str,
    scratch: str,
    hist: History,
    sync: object,
    damage: bool,
    committed_ops: set[int],
) -> str | None:
    """Read the store with every reader; why the seed is bad, None if it is not."""
    views: dict[str, dict[str, str]] = {}
    damaged: dict[str, bool] = {}
    step = ""
    try:
        step = "read-only open"
        views["read-only"], n = view_of(store, read_only=True)
        damaged["read-only"] = n > 0
        if format_reader is not None:
            step = "the format reader"
            views["format reader"] = {
                k.decode(): CORRUPT if v == "DAMAGED" else v[0].decode("latin-1")
                for k, v in format_reader(store).items()
            }
        step = "kvb check"
        problems = check(store).problems
        damaged["check"] = any(LAGGING not in p.what for p in problems)
        lagging = any(LAGGING in p.what for p in problems)
        # (An open reads a file through its hint file, and so finds only the damage of the records it reads;
        # the stop after a lagging page is no damage an open finds, whatever else kvb check reports.)
        hinted = all(
            os.path.exists(p.path[: -len(".data")] + ".hint") for p in problems if LAGGING not in p.what
        )
        step = "kvb salvage"
        report = salvage(store, os.path.join(scratch, "salvaged"))
        damaged["salvage"] = bool(report.regions or report.records_skipped or report.damaged_keys)
        salvaged, _ = view_of(os.path.join(scratch, "salvaged"), read_only=True)
        step = "backup"
        backups = "file://" + os.path.join(scratch, "backups")
        damaged["backup"] = backup_store(store, backups).damaged_records > 0
        if not damaged["backup"]:
            step = "restore"
            restore(backups, os.path.join(scratch, "restored"))
            views["restored"], _ = view_of(os.path.join(scratch, "restored"), read_only=True)
        step = "writer's open"
        views["writer"], n = view_of(store, read_only=False)
        damaged["writer"] = n > 0
        step = "read-only open after it"
        views["read-only after"], n = view_of(store, read_only=True)
        damaged["read-only after"] = n > 0
    except Exception as exc:
        return f"{step} raised {type(exc).__name__}: {str(exc)[:200]}"
    forbidden = hist.never_committed(committed_ops)
    for who, view in {**views, "salvaged": salvaged}.items():
        for k, v in view.items():
            if v in forbidden.get(k, ()):
                return f"{who} returned a value never committed: {k}={v[:24]!r}"
    base = views["read-only"]
    for who, view in views.items():
        if view != base:
            diff = sorted(k for k in set(view) | set(base) if view.get(k) != base.get(k))
            return f"{who} disagrees with the read-only open on {diff[:4]}"
    if salvaged != {k: v for k, v in base.items() if v != CORRUPT}:
        return "the salvaged store disagrees with the read-only open"
    opens = ("read-only", "writer", "read-only after")
    if hinted and not any(damaged[k] for k in opens) and CORRUPT not in base.values():
        damaged = {k: v for k, v in damaged.items() if k not in opens}
    if len(set(damaged.values())) > 1:
        return "readers disagree on damage: " + ", ".join(f"{k}={v}" for k, v in damaged.items())
    if any(damaged.values()) or lagging:
        return "damage reported after plain kills" if not damage else None
    if not damage:
        last = len(hist.ops)
        while last and hist.ops[last - 1]["i"] not in hist.acked:
            last -= 1
        at_least = [last]
    else:
        at_least = hist.durable(sync)
    # (sync="never" promises nothing of a power failure: the unsynced records of a file a rotation closed can
    # be lost while a newer file's are kept, which a page that lags both cannot tell from unfinished writes.)
    if (not damage or sync != "never") and not hist.a_prefix(base, at_least):
        return f"no damage reported, and the store is not the state after {at_least} operations or more"
    try:
        with DB(store) as db:
            db.merge(wait=True)
        merged, n = view_of(store, read_only=True)
    except Exception as exc:
        return f"a merge of a store without damage raised {type(exc).__name__}: {str(exc)[:200]}"
    if (merged, n) != (base, 0):
        return "a merge changed the store"
    return None


# ------------------------------------------------------------------ one seed


def run_seed(seed: int, damage: bool, workdir: str, keep: bool = False) -> tuple[str | None, list[str]]:
    """Run one seed in ``workdir`` (made empty): (why it is bad or None, the damage done); with ``keep``, a
    copy of the store as the readers find it in ``as-left`` there."""
    rnd = random.Random(f"{seed}/{damage}")
    store, logdir, scratch = (os.path.join(workdir, d) for d in ("store", "logs", "scratch"))
    for d in (store, os.path.join(logdir, "durable"), scratch):
        os.makedirs(d)
    sync = rnd.choice(["always", "always", "always", 0.05, "never"] if damage else ["always", "never", 0.05])
    first = 0
    committed_ops: set[int] = set()
    done: list[str] = []
    reported = False
    writers = rnd.choice([1, 1, 2, 3] if not damage else [1, 1, 2, 2])
    for child in range(writers):
        n_ops = rnd.randint(15, 60)
        kill_at = rnd.randint(1, 12) if child and rnd.random() < 0.5 else rnd.randint(1, 6 * n_ops)
        if (
            raised := run_writer(logdir, store, seed, child, first, n_ops, kill_at, sync, reported)
        ) is not None:
            return raised, []
        hist = History(logdir)
        first = hist.ops[-1]["i"] + 1 if hist.ops else first
        try:
            committed_ops |= committed(store, scratch, hist)
        except Exception as exc:
            return f"read-only open after the kill raised {type(exc).__name__}: {str(exc)[:200]}", done
        if damage and child < writers - 1 and rnd.random() < 0.5 and _is_store(store):
            # A power failure before the next writer, which recovers what it left (and is killed in turn).
            # (No bit rot then: a writer's recovery cuts, without a word, a damaged record a stale page's end
            # leaves it at, with what follows, as it cuts a torn write; docs/file-format.md, "The end of the
            # active file", step 1. Only kvb check, before it, would say.)
            done += [f"then {what}" for what in power_failure(store, logdir, hist, rnd, rot=False)]
            _settled(store, logdir)
            if keep:
                shutil.copytree(store, os.path.join(workdir, f"as-left-{child}"))  # (before the next writer)
            # Damage reported then: the next writer's merge or expire that reads a damaged key is refused.
            reported = reported or any(LAGGING not in p.what for p in check(store).problems)
    hist = History(logdir)
    if not _is_store(store):
        # (The first writer was killed while it created the store: there is none, and nothing was written.)
        return (f"no store, after {len(hist.acked)} acknowledged operations" if hist.acked else None), []
    done += power_failure(store, logdir, hist, rnd) if damage else []
    if keep:
        shutil.copytree(store, os.path.join(workdir, "as-left"))  # (kept with a bad seed, for a look)
    return judge(store, scratch, hist, sync, damage, committed_ops), done


def _is_store(store: str) -> bool:
    return os.path.exists(os.path.join(store, "KVB_FORMAT"))


def _settled(store: str, logdir: str) -> None:
    """Record the store as a power failure left it as what the disk holds (for the next power failure):
    every data file as fsynced, the directory too, the STATE page as flushed."""
    log = open(os.path.join(logdir, "ops.log"), "a", encoding="utf-8")  # noqa: SIM115
    with log:
        log.write(json.dumps({"power_failure": True}) + "\n")
        for name in set(os.listdir(os.path.join(logdir, "durable"))) - set(os.listdir(store)):
            os.remove(os.path.join(logdir, "durable", name))  # (a file the power failure lost)
        for name in os.listdir(store):
            if name.endswith((".data", ".hint")):
                with open(os.path.join(store, name), "rb") as f:
                    data = f.read()
                with open(os.path.join(logdir, "durable", name), "wb") as f:
                    f.write(len(data).to_bytes(8, "little") + data.rstrip(b"\0"))
        log.write(json.dumps({"dir": sorted(os.listdir(store))}) + "\n")
        try:
            with open(os.path.join(store, "STATE"), "rb") as f:
                words = f.read(PAGE_WORDS)
        except FileNotFoundError:
            words = b""  # (a page the next writer makes may be on the disk as zeros)
        log.write(json.dumps({"page": words.hex(), "flushed": True}) + "\n")


def _skip(fd: int) -> None:
    """An fsync that does nothing (see :func:`main`)."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))  # 1st paragraph
    ap.add_argument("--seeds", type=int, default=200, help="how many seeds to run")
    ap.add_argument("--start", type=int, default=0, help="the first seed")
    ap.add_argument(
        "--damage", action="store_true", help="a power failure after the kills (else plain kills)"
    )
    ap.add_argument("--dir", help="where to run (default: a temporary directory, removed)")
    ap.add_argument(
        "--keep", action="store_true", help="keep the directory of each bad seed (as-left: the store as read)"
    )
    args = ap.parse_args(argv)
    # The power failures are this script's: the disk's fsyncs would only slow the readers (the writers'
    # are recorded, not run, see Recorder).
    os.fsync = os.fdatasync = _skip  # type: ignore[assignment]
    logging.getLogger("kv_backend").setLevel(logging.CRITICAL)  # (damage is logged: the reports count)
    base = args.dir or tempfile.mkdtemp(prefix="kvb-fuzz-")
    bad = 0
    try:
        for seed in range(args.start, args.start + args.seeds):
            workdir = os.path.join(base, f"seed{seed}")
            shutil.rmtree(workdir, ignore_errors=True)
            why, done = run_seed(seed, args.damage, workdir, args.keep)
            if why is not None:
                bad += 1
                print(f"seed {seed}: {why}" + (f" [{'; '.join(done)}]" if done else ""), flush=True)
            if why is None or not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        if args.dir is None and not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    mode = "power failures" if args.damage else "plain kills"
    print(f"{args.seeds} seeds ({mode}, from {args.start}): {bad} bad")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
