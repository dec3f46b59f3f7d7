"""A randomized soak of the engine and of backups: many processes on one store, SIGKILLed at random.

Not a benchmark and not part of ``make test``: it runs for as long as it is told and then checks
everything the processes were told had happened. See the "Soak test" section of docs/protocol.md.

    python benchmarks/soak.py run [--seconds 300] [--seed N] [--writers 2] [--kill-every 0.5] [--dir D]
    python benchmarks/soak.py run --quick        # 3 seconds, a smoke test (tests/test_engine_soak_quick.py)

Processes (a killed one is restarted under a new incarnation id, so every operation id is unique):

* writers: random puts (small, large, larger than ``max_file_size``, with a long TTL), deletes,
  ``pop``, ``expire``/``persist``, ``update`` read-modify-writes, batches over groups of keys, some
  of them written as ``db.transaction()`` blocks of single puts and deletes (some aborted by an
  exception, some big ones SIGKILLed by their own process while being written),
  reads, ``with db.locked()`` reads of a whole group, ``incr``, ``put_if_absent``, short TTLs, a
  forked child writing through the inherited ``DB``, backups, closing and reopening; each
  incarnation opens the store with a random ``sync`` mode, a ``max_file_size`` of 4 KiB to 256 KiB
  (files rotate all the time) and sometimes ``auto_merge``;
* one auxiliary process: merges, backups to a local ``file://`` URL (from a writable or a read-only
  ``DB``), read-only openers that read and scan, and ``prune_backups(keep=4)``.

The controller SIGKILLs one of them every ``--kill-every`` seconds on average (0.05 s at the least),
and after half the kills runs ``kvb check`` (now and then ``kvb salvage`` too) on the files as the
kill left them, holding the write lock so that no writer recovers them meanwhile: a dead process's
leftovers must read as unfinished writes, never as damage.
Every process logs each operation to its own append-only file before the call and acknowledges it
after the call returns (fsynced); a value names the key and the operation that wrote it. At the end
every process is killed and the checker verifies, with the monotonic times of the logs: every read
returned a value the key held at some instant during the read (so no acknowledged write is lost, no
deleted key comes back, nothing never written is returned); ``update``, ``incr`` and
``put_if_absent`` were atomic; locked group reads saw whole batches; then, on the store exactly as
the kills left it: ``kvb check`` and ``kvb salvage`` find no damage, and the store read read-only and
then recovered by a writer holds a state consistent with the logs (counters within the acknowledged
and attempted increments, whole batches), which a merge then leaves unchanged; every listed backup
restores, and holds a state the store had at some instant between the start and the end of that
backup (batches all or nothing); and no process wrote anything to its stderr. Exit status 0 if all
of it holds, 1 otherwise (the errors are printed; the directory is kept).
"""

from __future__ import annotations

import argparse
import bisect
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable

from _services import kill_group

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MONO = time.monotonic
NREG = 64  # regular keys r:0..
NGROUP = 3  # batch groups g<i>:0..7
GSIZE = 8
NCTR = 4
NPIA = 400
NTTL = 24


def now() -> float:
    """Monotonic time, comparable between processes (CLOCK_MONOTONIC is system-wide on Linux)."""
    return MONO()


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout's kv_backend first on its path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, os.path.join(ROOT, "integrations"), env.get("PYTHONPATH", "")])
    return env


class Log:
    """One process's append-only log of JSON lines: intents before a call, acks after it returns."""

    def __init__(self, path: str, fsync: bool) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.fsync = fsync

    def write(self, obj: dict, sync: bool = False) -> None:
        os.write(self.fd, (json.dumps(obj, separators=(",", ":")) + "\n").encode())
        if sync and self.fsync:
            os.fdatasync(self.fd)


def pad(opid: str, n: int) -> bytes:
    unit = (opid + ";").encode()
    return (unit * (n // len(unit) + 1))[:n]


def mkval(key: bytes, opid: str, n: int, extra: str = "") -> bytes:
    head = f"{key.decode()}|{opid}|{extra}|".encode()
    return head + pad(opid, n)


def parse_val(key: bytes, v: bytes) -> tuple[str, str]:
    """Return (opid, extra); raise ValueError if the value is not one we write for key."""
    parts = v.split(b"|", 3)
    if len(parts) != 4 or parts[0] != key:
        raise ValueError(f"value of {key!r} is not ours: {v[:80]!r}")
    opid = parts[1].decode()
    if parts[3] != pad(opid, len(parts[3])):
        raise ValueError(f"value of {key!r} has a damaged body: {v[:80]!r}")
    return opid, parts[2].decode()


# ------------------------------------------------------------------ workers


def open_db(args, rnd: random.Random, read_only: bool = False):
    from kv_backend import DB

    if read_only:
        return DB(args.store, read_only=True), {"ro": True}
    sync = rnd.choice(["never", "never", "always", 0.02])
    mfs = rnd.choice([4096, 8192, 16384, 65536, 262144])
    am = rnd.choice([None, None, 0.3, 0.6])
    return DB(args.store, sync=sync, max_file_size=mfs, auto_merge=am), {"sync": sync, "mfs": mfs, "am": am}


def self_killer(delay: float) -> None:
    time.sleep(delay)
    os.kill(os.getpid(), signal.SIGKILL)


def writer(args) -> None:
    rnd = random.Random(args.seed)
    inc = args.inc
    log = Log(os.path.join(args.logs, f"{inc}.log"), not args.no_log_fsync)
    db, conf = open_db(args, rnd)
    log.write({"op": "open", "conf": conf, "t": now()})
    seq = 0
    auto = None
    while True:
        if db._merge_thread is not None and db._merge_thread is not auto:
            auto = db._merge_thread  # an auto_merge started in the background
            log.write({"op": "auto", "t": now()})
        seq += 1
        opid = f"{inc}.{seq}"
        r = rnd.random()
        t0 = now()
        if r < 0.30:  # put (sometimes with a long TTL, sometimes big)
            k = f"r:{rnd.randrange(NREG)}".encode()
            n = rnd.choice([0, 10, 100, 1000, 3000]) if rnd.random() > 0.03 else 20000
            ttl = 1000.0 if rnd.random() < 0.2 else None
            log.write({"op": "put", "k": k.decode(), "id": opid, "t0": t0})
            db.put(k, mkval(k, opid, n), ttl=ttl)
        elif r < 0.38:
            k = f"r:{rnd.randrange(NREG)}".encode()
            log.write({"op": "del", "k": k.decode(), "id": opid, "t0": t0})
            res = db.delete(k)
            log.write({"ack": opid, "t1": now(), "res": res}, sync=True)
            continue
        elif r < 0.40:  # pop: a delete that reads
            k = f"r:{rnd.randrange(NREG)}".encode()
            log.write({"op": "del", "k": k.decode(), "id": opid, "t0": t0, "pop": 1})
            v = db.pop(k, None)
            t1 = now()
            got = None if v is None else parse_val(k, v)[0]
            log.write({"ack": opid, "t1": t1, "got": got}, sync=True)
            log.write({"op": "get", "k": k.decode(), "t0": t0, "t1": t1, "got": got, "pop": 1})
            continue
        elif r < 0.42:  # expire / persist: the value stays
            k = f"r:{rnd.randrange(NREG)}".encode()
            if rnd.random() < 0.5:
                db.expire(k, 1000)
            else:
                db.persist(k)
            continue
        elif r < 0.50:  # get
            k = f"r:{rnd.randrange(NREG)}".encode()
            v = db.get(k)
            t1 = now()
            got = None if v is None else parse_val(k, v)[0]
            log.write({"op": "get", "k": k.decode(), "t0": t0, "t1": t1, "got": got})
            continue
        elif r < 0.58:  # update (read-modify-write, chained)
            k = f"r:{rnd.randrange(NREG)}".encode()
            seen = {}

            def fn(old, k=k, opid=opid, seen=seen):
                prev = None if old is None else parse_val(k, old)[0]
                seen["prev"] = prev
                return mkval(k, opid, rnd.choice([5, 200]), extra=prev or "")

            log.write({"op": "upd", "k": k.decode(), "id": opid, "t0": t0})
            db.update(k, fn)
            log.write({"ack": opid, "t1": now(), "prev": seen.get("prev")}, sync=True)
            continue
        elif r < 0.68:  # batch over a group
            g = rnd.randrange(NGROUP)
            members = [i for i in range(GSIZE) if rnd.random() < 0.6]
            big = rnd.random() < 0.1
            n = 30000 if big else rnd.choice([10, 300])
            selfkill = big and rnd.random() < 0.3
            log.write({"op": "batch", "g": g, "set": members, "id": opid, "t0": t0, "sk": selfkill})
            if selfkill:
                threading.Thread(target=self_killer, args=(rnd.random() * 0.003,), daemon=True).start()
            if rnd.random() < 0.4:  # the same writes as a transaction: one write per key
                with db.transaction():
                    for i in range(GSIZE):
                        k = f"g{g}:{i}".encode()
                        if i in members:
                            db.put(k, mkval(k, opid, n))
                            if db.get(k) != mkval(k, opid, n):
                                raise AssertionError(f"a transaction did not read its own write of {k!r}")
                        else:
                            db.delete(k)
            else:
                with db.batch() as b:
                    for i in range(GSIZE):
                        k = f"g{g}:{i}".encode()
                        if i in members:
                            b.put(k, mkval(k, opid, n))
                        else:
                            b.delete(k)
        elif r < 0.70:  # an aborted batch: must leave no trace
            g = rnd.randrange(NGROUP)
            try:
                if rnd.random() < 0.5:
                    with db.batch() as b:
                        for i in range(GSIZE):
                            k = f"g{g}:{i}".encode()
                            b.put(k, mkval(k, "aborted-" + opid, 10))
                        raise KeyError("abort")
                with db.transaction():  # an aborted transaction: its writes are discarded
                    for i in range(GSIZE):
                        k = f"g{g}:{i}".encode()
                        db.put(k, mkval(k, "aborted-" + opid, 10))
                    raise KeyError("abort")
            except KeyError:
                pass
            continue
        elif r < 0.74:  # locked read of a whole group
            g = rnd.randrange(NGROUP)
            with db.locked():
                vals = [db.get(f"g{g}:{i}".encode()) for i in range(GSIZE)]
            t1 = now()
            ids = [None if v is None else parse_val(f"g{g}:{i}".encode(), v)[0] for i, v in enumerate(vals)]
            log.write({"op": "gread", "g": g, "ids": ids, "t0": t0, "t1": t1})
            continue
        elif r < 0.80:  # incr
            c = f"c:{rnd.randrange(NCTR)}".encode()
            log.write({"op": "incr", "k": c.decode(), "id": opid, "t0": t0})
            res = db.incr(c)
            log.write({"ack": opid, "t1": now(), "res": res}, sync=True)
            continue
        elif r < 0.86:  # put_if_absent
            k = f"p:{rnd.randrange(NPIA)}".encode()
            log.write({"op": "pia", "k": k.decode(), "id": opid, "t0": t0})
            res = db.put_if_absent(k, mkval(k, opid, 50))
            log.write({"ack": opid, "t1": now(), "res": res}, sync=True)
            continue
        elif r < 0.93:  # short TTL
            k = f"t:{rnd.randrange(NTTL)}".encode()
            ttl = rnd.choice([-1, 0, 0.01, 0.2, 1.0, 3.0])
            exp = time.time() + ttl
            log.write({"op": "ttl", "k": k.decode(), "id": opid, "t0": t0})
            db.put(k, mkval(k, opid, 40, extra=repr(exp + 0.5)), ttl=ttl)  # expiry bound (time taken before)
        elif r < 0.97:  # read a TTL key
            k = f"t:{rnd.randrange(NTTL)}".encode()
            v = db.get(k)
            w = time.time()
            got = None if v is None else parse_val(k, v)[0]
            log.write({"op": "get", "k": k.decode(), "t0": t0, "t1": now(), "got": got})
            if v is not None:
                _, extra = parse_val(k, v)
                if w > float(extra) + 0.5:
                    log.write(
                        {"op": "BAD", "what": f"expired value of {k!r} returned: {v[:60]!r}"}, sync=True
                    )
            continue
        elif r < 0.975:  # fork a child that writes through the inherited DB
            with warnings.catch_warnings():
                # (Python 3.12+ warns of a fork in a process with threads: under sync=<seconds>, the DB's
                # sync timer, which holds no lock across a fork; docs/engine.md, Processes, threads and fork)
                warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
                pid = os.fork()
            if pid == 0:
                try:
                    clog = Log(os.path.join(args.logs, f"{inc}f{seq}.log"), not args.no_log_fsync)
                    for j in range(20):
                        cid = f"{inc}f{seq}.{j}"
                        k = f"r:{rnd.randrange(NREG)}".encode()
                        clog.write({"op": "put", "k": k.decode(), "id": cid, "t0": now()})
                        db.put(k, mkval(k, cid, 50))
                        clog.write({"ack": cid, "t1": now()}, sync=True)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
            continue
        elif r < 0.978:  # a backup from a writer, perhaps while the auxiliary process backs up too
            name = f"b{opid.replace('.', '-')}"
            log.write({"op": "backup", "id": opid, "name": name, "t0": t0})
            rep = db.backup("file://" + args.backups, name=name)
            log.write({"ack": opid, "t1": now(), "rep": str(rep)}, sync=True)
            continue
        elif r < 0.985:  # close and reopen
            db.close()
            db, conf = open_db(args, rnd)
            log.write({"op": "open", "conf": conf, "t": now()})
            continue
        else:
            time.sleep(rnd.random() * 0.01)
            continue
        log.write({"ack": opid, "t1": now()}, sync=True)
        if args.throttle:
            time.sleep(args.throttle)


def aux(args) -> None:
    rnd = random.Random(args.seed)
    inc = args.inc
    log = Log(os.path.join(args.logs, f"{inc}.log"), not args.no_log_fsync)
    from kv_backend.backup import prune_backups
    from kv_backend.errors import MergeInProgressError

    seq = 0
    while True:
        seq += 1
        opid = f"{inc}.{seq}"
        r = rnd.random()
        if r < 0.35:
            db, _ = open_db(args, rnd)
            try:
                t0 = now()
                log.write({"op": "merge", "id": opid, "t0": t0})
                try:
                    rep = db.merge(wait=rnd.random() < 0.3)
                    log.write({"ack": opid, "t1": now(), "rep": str(rep)}, sync=True)
                except MergeInProgressError:
                    log.write({"ack": opid, "t1": now(), "rep": "busy"}, sync=True)
            finally:
                db.close()
        elif r < 0.70:
            db, _ = open_db(args, rnd, read_only=rnd.random() < 0.5)
            try:
                name = f"b{opid.replace('.', '-')}"
                t0 = now()
                log.write({"op": "backup", "id": opid, "name": name, "t0": t0})
                rep = db.backup("file://" + args.backups, name=name)
                log.write({"ack": opid, "t1": now(), "rep": str(rep)}, sync=True)
            finally:
                db.close()
        elif r < 0.95:
            from kv_backend import DB

            db = DB(args.store, read_only=True)
            try:
                for _ in range(rnd.randrange(20, 200)):
                    k = f"r:{rnd.randrange(NREG)}".encode()
                    t0 = now()
                    v = db.get(k)
                    t1 = now()
                    got = None if v is None else parse_val(k, v)[0]
                    log.write({"op": "get", "k": k.decode(), "t0": t0, "t1": t1, "got": got})
                for k, v in db.items():
                    parse_val(k, v) if not k.startswith(b"c:") else int(v)
            finally:
                db.close()
        else:
            t0 = now()
            log.write({"op": "prune", "id": opid, "t0": t0})
            removed = prune_backups("file://" + args.backups, keep=4)
            log.write({"ack": opid, "t1": now(), "removed": removed}, sync=True)
        time.sleep(rnd.random() * 0.2)


# ------------------------------------------------------------------ controller


def spawn(args, role: str, inc: str, seed: int) -> subprocess.Popen:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        role,
        "--dir",
        args.dir,
        "--inc",
        inc,
        "--seed",
        str(seed),
    ]
    if args.no_log_fsync:
        cmd.append("--no-log-fsync")
    if args.throttle:
        cmd += ["--throttle", str(args.throttle)]
    with open(os.path.join(args.dir, "stderr", f"{inc}.err"), "wb") as err:
        # A session of its own: a kill takes the process and any child it forked (see kill()).
        return subprocess.Popen(cmd, stderr=err, stdout=err, env=child_env(), start_new_session=True)


kill = kill_group  # (SIGKILL of a child's process group, and reaping it: soak_structures uses it too)


def locked_check(args, errors: list[str], salvage_too: bool) -> None:
    """Run ``kvb check`` (and ``kvb salvage``) on the store as the last kill left it, holding its
    write lock so that no writer recovers or appends meanwhile: what a dead process left behind
    must read as unfinished writes, never as damage."""
    from kv_backend.check import check as kvb_check
    from kv_backend.locking import WriteLock
    from kv_backend.salvage import salvage

    # (The engine's WriteLock, not a bare flock: salvage, which reads its source's id under this lock,
    # sees that this thread holds it and reads it at once.)
    lock = WriteLock(os.path.join(args.store, "LOCK"), create=False)
    try:
        with lock:
            report = kvb_check(args.store)
            if not report.ok:
                problems = [str(p) for p in report.problems]
                errors.append(f"kvb check of the store as a kill left it: {problems}")
            if salvage_too:
                copy = os.path.join(args.dir, "salvage-midrun")
                shutil.rmtree(copy, ignore_errors=True)
                srep = salvage(args.store, copy)
                if srep.regions or srep.damaged_keys:
                    errors.append(f"kvb salvage of the store as a kill left it: {srep}")
    finally:
        lock.close()


def run(args) -> int:
    rnd = random.Random(args.seed)
    os.makedirs(args.dir)
    for d in ("logs", "stderr", "backups"):
        os.makedirs(os.path.join(args.dir, d))
    from kv_backend import DB

    DB(args.store).close()  # so that a read-only opener never starts before the store exists
    procs: dict[str, tuple[str, subprocess.Popen]] = {}
    counter = 0

    def start(slot: str) -> None:
        nonlocal counter
        counter += 1
        role = "aux" if slot.startswith("a") else "writer"
        inc = f"{slot}i{counter}"
        procs[slot] = (inc, spawn(args, role, inc, rnd.randrange(1 << 30)))

    slots = [f"w{i}" for i in range(args.writers)] + ["a0"]
    for s in slots:
        start(s)
    kills = {"writer": 0, "aux": 0}
    deaths = 0
    locked_checks = 0
    midrun: list[str] = []
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline:
        time.sleep(rnd.uniform(0.05, args.kill_every * 2))
        for s in slots:
            inc, p = procs[s]
            rc = p.poll()
            if rc is not None:
                if rc != -signal.SIGKILL:
                    print(f"!! {inc} exited with {rc}: see stderr/{inc}.err", flush=True)
                    deaths += 1
                    if deaths > 20:
                        break
                start(s)
        s = rnd.choice(slots)
        inc, p = procs[s]
        if p.poll() is None:
            kill(p)
            kills["aux" if s.startswith("a") else "writer"] += 1
            if rnd.random() < 0.5:
                locked_checks += 1
                locked_check(args, midrun, salvage_too=rnd.random() < 0.1)
            start(s)
    for s in slots:
        kill(procs[s][1])
    print(
        f"run done: kills {kills}, unexpected exits {deaths}, {locked_checks} checks of the store "
        "as a kill left it",
        flush=True,
    )
    for e in midrun[:20]:
        print("ERROR", e)
    rc = check(args) or len(midrun)
    noisy = 0
    for path in sorted(glob.glob(os.path.join(args.dir, "stderr", "*.err"))):
        with open(path, "rb") as f:
            text = f.read()
        if text:  # a traceback, an "Exception ignored in ...", a warning: nothing is expected there
            noisy += 1
            print(f"ERROR {path} is not empty: {text[-300:]!r}")
    return 1 if deaths or rc or noisy else 0


# ------------------------------------------------------------------ checker


INF = float("inf")


class _PrefixMax:
    """Ops selected by ``keep``, sorted by field ``by``, with the running max of field ``of``:
    max_before(t) = the largest ``of`` among ops whose ``by`` < t (-inf if none)."""

    def __init__(self, ops, keep, by: str, of: str) -> None:
        sel = sorted((o[by], o[of]) for o in ops if keep(o))
        self.keys = [b for b, _ in sel]
        self.maxes = []
        m = -INF
        for _, v in sel:
            m = max(m, v)
            self.maxes.append(m)

    def max_before(self, t: float) -> float:
        i = bisect.bisect_left(self.keys, t)
        return self.maxes[i - 1] if i else -INF


class History:
    def __init__(self, logdir: str) -> None:
        self.ops: dict[str, dict] = {}
        self.reads: list[dict] = []
        self.greads: list[dict] = []
        self.bad: list[str] = []
        self.opens: int = 0
        self.autos: int = 0
        for path in sorted(glob.glob(os.path.join(logdir, "*.log"))):
            with open(path, "rb") as f:
                lines = f.read().split(b"\n")
            for line in lines:
                if not line:
                    continue
                try:
                    o = json.loads(line)
                except ValueError:
                    continue  # a line torn by SIGKILL (the last one)
                if "ack" in o:
                    op = self.ops.get(o["ack"])
                    if op is not None:
                        op.update(o)
                elif o["op"] in ("get",):
                    self.reads.append(o)
                elif o["op"] == "gread":
                    self.greads.append(o)
                elif o["op"] == "BAD":
                    self.bad.append(o["what"])
                elif o["op"] == "open":
                    self.opens += 1
                elif o["op"] == "auto":
                    self.autos += 1
                else:
                    o.setdefault("t1", INF)
                    self.ops[o["id"]] = o
        for o in self.ops.values():
            o["acked"] = "ack" in o
            if not o["acked"]:
                o["t1"] = INF
        self._ix: dict = {}
        self.by_key: dict[str, list[dict]] = {}
        for o in self.ops.values():
            if "k" in o:
                self.by_key.setdefault(o["k"], []).append(o)
        self.batches = {o["id"]: o for o in self.ops.values() if o["op"] == "batch"}
        self.by_group: dict[int, list[dict]] = {}
        for o in self.batches.values():
            self.by_group.setdefault(o["g"], []).append(o)

    def _index(self, k: str):
        """Per key: (acked non-delete writes sorted by t1 with prefix max of t0,
        deletes sorted by t0 with prefix max of t1)."""
        ix = self._ix.get(k)
        if ix is None:
            ops = [o for o in self.by_key.get(k, []) if o["op"] in ("put", "del", "upd", "ttl")]
            ix = (
                _PrefixMax(ops, lambda o: o["acked"], "t1", "t0"),
                _PrefixMax(ops, lambda o: True, "t1", "t0"),
                _PrefixMax(ops, lambda o: o["op"] == "del", "t0", "t1"),
            )
            self._ix[k] = ix
        return ix

    def check_reg(self, k: str, got: str | None, rs: float, re: float, errors: list[str], what: str) -> None:
        """Is ``got`` (an opid, or None for absent) a value key k may have had at some
        instant in [rs, re]?"""
        acked_any, _, dels = self._index(k)
        if got is not None:
            w = self.ops.get(got)
            if w is None or w.get("k") != k:
                errors.append(f"{what}: {k} = {got}, which was never written to it")
                return
            if w["t0"] > re:
                errors.append(f"{what}: {k} = {got}, written only after ({w['t0']:.4f} > {re:.4f})")
                return
            # an acked write (any kind) that started after w ended and ended before rs
            m = acked_any.max_before(rs)
            if m > w["t1"]:
                errors.append(
                    f"{what}: {k} = {got} (ended {w['t1']:.4f}) superseded by an acked write "
                    f"that started at {m:.4f} and ended before {rs:.4f}"
                )
        elif not k.startswith("t:"):  # (a key with a TTL may be absent at any time: it expired)
            m = self._index_puts(k).max_before(rs)
            if m == -INF:
                return
            if dels.max_before(re) >= m:
                return
            errors.append(f"{what}: {k} absent, but acked writes leave no delete that explains it")

    def _index_puts(self, k: str):
        key = ("puts", k)
        ix = self._ix.get(key)
        if ix is None:
            ops = [o for o in self.by_key.get(k, []) if o["op"] in ("put", "upd")]
            ix = self._ix[key] = _PrefixMax(ops, lambda o: o["acked"], "t1", "t0")
        return ix

    def check_rmw(self, errors: list[str]) -> None:
        for k, ops in self.by_key.items():
            seen: dict[str, str] = {}
            for o in ops:
                if o["op"] == "upd" and o.get("prev"):
                    if o["prev"] in seen:
                        errors.append(
                            f"lost update on {k}: {seen[o['prev']]} and {o['id']} both read {o['prev']}"
                        )
                    seen[o["prev"]] = o["id"]

    def check_incr(self, errors: list[str]) -> None:
        for k, ops in self.by_key.items():
            if not k.startswith("c:"):
                continue
            results = [o["res"] for o in ops if o["acked"]]
            if len(results) != len(set(results)):
                errors.append(f"incr on {k} returned a value twice")

    def check_pia(self, errors: list[str]) -> None:
        for k, ops in self.by_key.items():
            if not k.startswith("p:"):
                continue
            wins = [o for o in ops if o["acked"] and o["res"]]
            if len(wins) > 1:
                errors.append(f"put_if_absent on {k} won twice: {[o['id'] for o in wins]}")
            losses = [o for o in ops if o["acked"] and not o["res"]]
            if losses and not wins and not any(not o["acked"] for o in ops):
                errors.append(f"put_if_absent on {k} lost but nobody won")

    def check_group(self, g: int, ids: list, t_lo: float, t_hi: float, errors: list[str], what: str) -> None:
        present = {i: v for i, v in enumerate(ids) if v is not None}
        bids = set(present.values())
        if not bids:
            cands = [-INF] + [b["t1"] for b in self.by_group.get(g, []) if not b["set"] and b["t0"] < t_hi]
        elif len(bids) > 1:
            errors.append(f"{what}: group {g} mixes batches {sorted(bids)}")
            return
        else:
            bid = bids.pop()
            b = self.batches.get(bid)
            if b is None or b["g"] != g:
                errors.append(f"{what}: group {g} holds unknown batch {bid}")
                return
            if sorted(present) != sorted(b["set"]):
                errors.append(
                    f"{what}: group {g} holds keys {sorted(present)} of batch {bid}, which wrote {b['set']}"
                )
                return
            if b["t0"] > t_hi:
                errors.append(f"{what}: group {g} holds batch {bid} that started later")
                return
            cands = [b["t1"]]
        key = ("group", g)
        ix = self._ix.get(key)
        if ix is None:
            ix = self._ix[key] = _PrefixMax(self.by_group.get(g, []), lambda o: o["acked"], "t1", "t0")
        m = ix.max_before(t_lo)
        if any(m <= end for end in cands):
            return
        errors.append(f"{what}: group {g} state {ids} was superseded by an acked batch before {t_lo:.4f}")

    def check_state(self, db, t_lo: float, t_hi: float, errors: list[str], what: str) -> None:
        """Check every key of an opened store as a state at some instant in [t_lo, t_hi]."""
        items = dict(db.items())
        for k, v in items.items():
            ks = k.decode()
            if ks.startswith("c:"):
                continue
            try:
                parse_val(k, v)
            except ValueError as exc:
                errors.append(f"{what}: {exc}")
        for i in range(NREG):
            k = f"r:{i}".encode()
            v = items.get(k)
            self.check_reg(k.decode(), None if v is None else parse_val(k, v)[0], t_lo, t_hi, errors, what)
        for g in range(NGROUP):
            ids = []
            for i in range(GSIZE):
                k = f"g{g}:{i}".encode()
                v = items.get(k)
                ids.append(None if v is None else parse_val(k, v)[0])
            self.check_group(g, ids, t_lo, t_hi, errors, what)
        for c in range(NCTR):
            k = f"c:{c}"
            ops = self.by_key.get(k, [])
            lo = sum(1 for o in ops if o["acked"] and o["t1"] < t_lo)
            hi = sum(1 for o in ops if o["t0"] < t_hi)
            val = int(items.get(k.encode(), b"0"))
            if not lo <= val <= hi:
                errors.append(f"{what}: counter {k} = {val}, expected {lo}..{hi}")
        for i in range(NPIA):
            k = f"p:{i}"
            v = items.get(k.encode())
            ops = self.by_key.get(k, [])
            wins = [o for o in ops if o["acked"] and o["res"] and o["t1"] < t_lo]
            if v is None:
                if wins:
                    errors.append(f"{what}: {k} won by {wins[0]['id']} is absent")
            else:
                opid = parse_val(k.encode(), v)[0]
                o = self.ops.get(opid)
                if o is None or o["k"] != k or o["t0"] > t_hi:
                    errors.append(f"{what}: {k} = {opid}, never written")
                elif o.get("acked") and not o.get("res"):
                    errors.append(f"{what}: {k} = {opid}, whose put_if_absent said it lost")
                elif wins and wins[0]["id"] != opid:
                    errors.append(f"{what}: {k} = {opid} but {wins[0]['id']} won")
        time.time()
        for i in range(NTTL):
            k = f"t:{i}".encode()
            v = items.get(k)
            if v is not None:
                opid, extra = parse_val(k, v)
                self.check_reg(k.decode(), opid, t_lo, t_hi, errors, what)
                if time.time() > float(extra) + 0.5:
                    errors.append(f"{what}: {k!r} = {opid}, which has expired")


def check(args) -> int:
    from kv_backend import DB
    from kv_backend.backup import list_backups, restore
    from kv_backend.check import check as kvb_check

    h = History(os.path.join(args.dir, "logs"))
    errors: list[str] = [f"worker saw: {b}" for b in h.bad]
    for r in h.reads:
        h.check_reg(r["k"], r["got"], r["t0"], r["t1"], errors, "live read")
    for r in h.greads:
        h.check_group(r["g"], r["ids"], r["t0"], r["t1"], errors, "locked group read")
    h.check_rmw(errors)
    h.check_incr(errors)
    h.check_pia(errors)
    t_end = now()
    for old in (args.store + ".salvaged", os.path.join(args.dir, "restored")):  # of an earlier check
        shutil.rmtree(old, ignore_errors=True)
    # kvb check first, on the store exactly as the kills left it (no writer has recovered it yet)
    rep = kvb_check(args.store)
    if not rep.ok:
        errors.append(f"kvb check before recovery: {[str(p) for p in rep.problems]}")
    if os.environ.get("SOAK_KEEP"):
        shutil.copytree(args.store, args.store + ".as-killed")
    from kv_backend.salvage import salvage

    srep = salvage(args.store, args.store + ".salvaged")
    if srep.regions or srep.damaged_keys:
        errors.append(f"salvage before recovery: {srep}")
    db = DB(args.store + ".salvaged", read_only=True)
    try:
        h.check_state(db, t_end, t_end, errors, "salvaged copy")
    finally:
        db.close()
    # read-only first (no recovery), then writable (recovers the dead writers' tails)
    for ro in (True, False):
        db = DB(args.store, read_only=ro)
        try:
            h.check_state(db, t_end, t_end, errors, "final " + ("read-only" if ro else "writable"))
        finally:
            db.close()

    def lasting(db: DB) -> dict[bytes, bytes]:
        """The items that cannot expire while they are compared (no short TTL)."""
        return {k: v for k, v in db.items() if not k.startswith(b"t:")}

    with DB(args.store) as db:  # a merge changes nothing that can be read
        before = lasting(db)
        db.merge()
        if lasting(db) != before:
            errors.append("a final merge changed the store's contents")
    with DB(args.store, read_only=True) as db:
        if lasting(db) != before:
            errors.append("the store read through the final merge's hint files differs")
    rep = kvb_check(args.store)
    if not rep.ok:
        errors.append(f"kvb check: {[str(p) for p in rep.problems]}")
    env = child_env()
    out = subprocess.run(
        [sys.executable, "-m", "kv_backend", "check", args.store], capture_output=True, env=env
    )
    if out.returncode != 0:
        errors.append(f"kvb check CLI exit {out.returncode}: {out.stdout[-500:]!r} {out.stderr[-500:]!r}")
    # backups
    infos = list_backups("file://" + args.backups)
    bops = {o["name"]: o for o in h.ops.values() if o["op"] == "backup"}
    nrest = 0
    for info in infos:
        if not info.ok:
            errors.append(f"backup {info.name} damaged: {info}")
            continue
        b = bops.get(info.name)
        if b is None:
            errors.append(f"backup {info.name} not in the logs")
            continue
        dest = os.path.join(args.dir, "restored", info.name)
        try:
            restore("file://" + args.backups, dest, name=info.name)
        except Exception as exc:
            errors.append(f"restore of {info.name} failed: {exc!r}")
            continue
        nrest += 1
        db = DB(dest, read_only=True)
        try:
            h.check_state(db, b["t0"], b["t1"], errors, f"backup {info.name}")
        finally:
            db.close()
        db = DB(dest)  # a writable open of the restored store works, and reads the same
        try:
            h.check_state(db, b["t0"], b["t1"], errors, f"backup {info.name} (writable)")
            db.put(b"r:0", mkval(b"r:0", "x", 1))
        finally:
            db.close()
    nops = len(h.ops)
    acked = sum(1 for o in h.ops.values() if o["acked"])
    kinds: dict[str, int] = {}
    for o in h.ops.values():
        kinds[o["op"]] = kinds.get(o["op"], 0) + 1
    merges = sum(1 for o in h.ops.values() if o["op"] == "merge" and o["acked"] and o.get("rep") != "busy")
    print(
        f"checked: {nops} ops ({acked} acked) {kinds}, {len(h.reads)} reads, {len(h.greads)} group reads, "
        f"{h.opens} opens, {merges} merges done, {h.autos} auto-merges started, "
        f"{len(infos)} backups listed, {nrest} restored"
    )
    for e in errors[:40]:
        print("ERROR", e)
    if errors:
        print(f"{len(errors)} errors")
    return 1 if errors else 0


def working_dir(ap: argparse.ArgumentParser, args: argparse.Namespace, prefix: str) -> bool:
    """Set ``args.dir`` (absolute; a new temporary one for a run without ``--dir``) and ``args.store``;
    return whether the directory is temporary."""
    temporary = args.dir is None
    if temporary:
        if args.role != "run":
            ap.error("--dir is required")
        args.dir = os.path.join(tempfile.mkdtemp(prefix=prefix), "run")
    args.dir = os.path.abspath(args.dir)
    args.store = os.path.join(args.dir, "store")
    return temporary


def run_in(args: argparse.Namespace, temporary: bool, run: Callable[[argparse.Namespace], int]) -> int:
    """Run the soak; keep its directory if it failed (and say where), else remove a temporary one."""
    rc = run(args)
    if rc:
        print(f"kept {args.dir}")
    elif temporary and not args.keep:
        shutil.rmtree(os.path.dirname(args.dir))
    return rc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "role", choices=["run", "writer", "aux", "check"], help="run: the soak; the others are its parts"
    )
    ap.add_argument("--dir", help="working directory (must not exist); default: a new temporary one")
    ap.add_argument("--seconds", type=float, default=60, help="how long the writers run (default: 60)")
    ap.add_argument(
        "--seed", type=int, default=1, help="seed of the kills and of the processes' keys (default: 1)"
    )
    ap.add_argument(
        "--writers", type=int, default=2, help="writer processes killed and restarted (default: 2)"
    )
    ap.add_argument("--kill-every", type=float, default=0.5, help="mean seconds between two SIGKILLs")
    ap.add_argument("--quick", action="store_true", help="a 3-second run")
    ap.add_argument("--keep", action="store_true", help="keep --dir after a run that passed")
    ap.add_argument("--inc", default="x", help=argparse.SUPPRESS)
    ap.add_argument("--throttle", type=float, default=0.0, help="seconds writers sleep after each write")
    ap.add_argument("--no-log-fsync", action="store_true", help="do not fsync the logs")
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.kill_every = 3.0, 0.25
    temporary = working_dir(ap, args, "kvb-soak-")
    args.logs = os.path.join(args.dir, "logs")
    args.backups = os.path.join(args.dir, "backups")
    if args.role == "run":
        return run_in(args, temporary, run)
    if args.role == "check":
        return check(args)
    if args.role == "writer":
        writer(args)
    else:
        aux(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
