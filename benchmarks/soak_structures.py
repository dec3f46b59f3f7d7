"""A randomized soak of the Redis data structures: servers and in-process users on one store, SIGKILLed.

Not a benchmark and not part of ``make test`` (which runs a ``--quick`` run,
tests/test_structures_soak_quick.py). See "Soak test" in docs/redis.md.

    python benchmarks/soak_structures.py run [--seconds 120] [--seed N] [--servers 2] [--inproc 1]
                                             [--kill-every 0.7] [--no-kills] [--dir D]
    python benchmarks/soak_structures.py run --quick    # a few seconds, a smoke test

Workers, all on ONE store directory whose files rotate all the time (``max_file_size`` of 4-64 KiB):

* server workers: a ``kvb serve`` (the same server, started with a small ``max_file_size``) on a
  loopback port of 28000-28999, driven by a redis-py client with random commands of every write
  family (strings, lists, hashes, sets, sorted sets, streams and consumer groups, RENAME / COPY /
  DEL / EXPIRE / RESTORE), ``MULTI``/``EXEC`` blocks of random commands, ``EVAL`` scripts and
  ``FCALL`` functions doing several writes;
* in-process workers: the same families through :class:`kv_backend.structures.Structures`;
* one auxiliary process: ``DB.merge()`` now and then.

Random commands work on a small key space (``k0``..``k5``, which never get a TTL, and ``e0``..``e2``,
which do; RENAME/COPY stay within each). Besides them every worker slot keeps its own counters,
incremented together with one list element, hash field, set member, sorted-set member and stream
entry per step, by a ``MULTI``/``EXEC``, a script, a function or (in-process) one ``incr``: each
acknowledged value is logged. The controller SIGKILLs a random worker every ``--kill-every``
seconds on average (the server and its driver together) and restarts it. At the end it kills
everything and checks the store with a fresh ``Structures``: ``kvb check`` finds no damage; every
key's metadata agrees with its member records (list indexes contiguous, counts, each sorted-set
member with exactly one score-index record of its score and back, stream length, last ID and
entries added, consumer groups' consumers and pending entries); no member records of another type
or without a key under the names that never expire (those that do may keep them until
``vacuum()``, which the check then runs); every transaction, script and function all or nothing;
every acknowledged counter value kept. Exit status 0 if all of it holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from soak import ROOT, Log, child_env, kill, run_in, working_dir  # noqa: E402  (benchmarks/soak.py)

sys.path.insert(0, ROOT)

KEYS = [f"k{i}" for i in range(6)]  # never given a TTL
EKEYS = [f"e{i}" for i in range(3)]  # may expire
VALUES = ["a", "b", "c", "1", "2", "10", "x" * 40]
PORTS = range(28000, 29000)
#: One step of a slot's own counters: every write of it, so that a crash keeps all or none.
TX_STEP = [
    ["INCR", "{p}:c"],
    ["RPUSH", "{p}:l", "{n}"],
    ["HSET", "{p}:h", "{n}", "{n}"],
    ["SADD", "{p}:s", "{n}"],
    ["ZADD", "{p}:z", "{n}", "m{n}"],
    ["XADD", "{p}:x", "*", "n", "{n}"],
]
STEP_LUA = """
local n = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], n)
redis.call('HSET', KEYS[3], n, n)
redis.call('SADD', KEYS[4], n)
redis.call('ZADD', KEYS[5], n, 'm' .. n)
redis.call('XADD', KEYS[6], '*', 'n', n)
if ARGV[1] ~= '' then redis.call('LPUSH', ARGV[1], n) end
return n
"""
SCRIPT = STEP_LUA
LIBRARY = "#!lua name=soaklib\nredis.register_function('step', function(KEYS, ARGV)\n" + STEP_LUA + "end)\n"
SUFFIXES = ["c", "l", "h", "s", "z", "x"]


# ------------------------------------------------------------------ random commands


def rkey(rnd: random.Random, ttl: bool = False) -> str:
    return rnd.choice(EKEYS if ttl else KEYS)


def same_kind(rnd: random.Random, key: str) -> str:
    return rnd.choice(EKEYS if key.startswith("e") else KEYS)


def rval(rnd: random.Random) -> str:
    return rnd.choice(VALUES)


def random_command(rnd: random.Random) -> list[str]:
    """One random write (or a read that sets up one) on the shared key space."""
    k = rkey(rnd, rnd.random() < 0.25)
    k2 = same_kind(rnd, k)
    v = rval(rnd)
    n = str(rnd.randrange(-3, 6))
    family = rnd.choice(["string", "list", "list", "hash", "set", "zset", "zset", "stream", "stream", "key"])
    if family == "string":
        return rnd.choice(
            [
                ["SET", k, v] + (["PX", str(rnd.randrange(5, 200))] if k.startswith("e") else []),
                ["APPEND", k, v],
                ["SETRANGE", k, str(rnd.randrange(0, 20)), v],
                ["INCRBYFLOAT", k, "1.5"],
                ["INCR", k],
                ["GETDEL", k],
                ["MSET", k, v, k2, v],
            ]
        )
    if family == "list":
        side = rnd.choice(["LEFT", "RIGHT"])
        return rnd.choice(
            [
                [rnd.choice(["LPUSH", "RPUSH"]), k] + [rval(rnd) for _ in range(rnd.randrange(1, 4))],
                [rnd.choice(["LPOP", "RPOP"]), k]
                + ([str(rnd.randrange(1, 4))] if rnd.random() < 0.5 else []),
                ["LINSERT", k, rnd.choice(["BEFORE", "AFTER"]), v, rval(rnd)],
                ["LREM", k, n, v],
                ["LTRIM", k, n, str(rnd.randrange(-3, 6))],
                ["LMOVE", k, k2, side, rnd.choice(["LEFT", "RIGHT"])],
                ["BLMOVE", k, k2, side, rnd.choice(["LEFT", "RIGHT"]), "0.01"],
                ["LSET", k, n, v],
                ["RPOPLPUSH", k, k2],
            ]
        )
    if family == "hash":
        return rnd.choice(
            [
                ["HSET", k, v, rval(rnd), rval(rnd), rval(rnd)],
                ["HDEL", k, v, rval(rnd)],
                ["HINCRBY", k, v, n],
                ["HINCRBYFLOAT", k, v, "0.5"],
                ["HSETNX", k, v, v],
            ]
        )
    if family == "set":
        return rnd.choice(
            [
                ["SADD", k] + [rval(rnd) for _ in range(rnd.randrange(1, 4))],
                ["SREM", k, v, rval(rnd)],
                ["SMOVE", k, k2, v],
                ["SPOP", k] + ([str(rnd.randrange(1, 3))] if rnd.random() < 0.5 else []),
                [rnd.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), k, k2, same_kind(rnd, k)],
            ]
        )
    if family == "zset":
        opts = rnd.choice([[], ["NX"], ["XX"], ["GT"], ["LT"], ["CH"], ["GT", "CH"]])
        return rnd.choice(
            [
                ["ZADD", k, *opts, n, v, str(rnd.random() * 10), rval(rnd)],
                ["ZADD", k, "INCR", n, v],
                ["ZINCRBY", k, n, v],
                ["ZREM", k, v, rval(rnd)],
                ["ZREMRANGEBYSCORE", k, "-inf", n],
                ["ZREMRANGEBYRANK", k, "0", str(rnd.randrange(0, 2))],
                ["ZREMRANGEBYLEX", k, "[a", "[c"],
                [rnd.choice(["ZPOPMIN", "ZPOPMAX"]), k, str(rnd.randrange(1, 3))],
                [
                    rnd.choice(["ZUNIONSTORE", "ZINTERSTORE"]),
                    k,
                    "2",
                    k2,
                    same_kind(rnd, k),
                    "AGGREGATE",
                    "MAX",
                ],
                ["ZDIFFSTORE", k, "2", k2, same_kind(rnd, k)],
                ["ZRANGESTORE", k, k2, "0", str(rnd.randrange(-1, 4))],
            ]
        )
    if family == "stream":
        g, c = rnd.choice(["g1", "g2"]), rnd.choice(["c1", "c2", "c3"])
        return rnd.choice(
            [
                ["XADD", k, "*", "f", v],
                ["XADD", k, "MAXLEN", rnd.choice(["~", "="]), str(rnd.randrange(0, 5)), "*", "f", v],
                ["XADD", k, "NOMKSTREAM", "MINID", "0-1", "*", "f", v],
                ["XTRIM", k, "MAXLEN", str(rnd.randrange(0, 6))],
                ["XDEL", k, "?"],  # filled in with a real entry ID by the caller
                ["XGROUP", "CREATE", k, g, rnd.choice(["0", "$"]), "MKSTREAM"],
                ["XGROUP", "DESTROY", k, g],
                ["XGROUP", "CREATECONSUMER", k, g, c],
                ["XGROUP", "DELCONSUMER", k, g, c],
                ["XGROUP", "SETID", k, g, "0"],
                ["XREADGROUP", "GROUP", g, c, "COUNT", "3", "STREAMS", k, ">"],
                ["XREADGROUP", "GROUP", g, c, "COUNT", "3", "STREAMS", k, ">"],
                ["XACK", k, g, "?"],
                ["XCLAIM", k, g, c, "0", "?"],
                ["XAUTOCLAIM", k, g, c, "0", "0", "COUNT", "2"],
            ]
        )
    return rnd.choice(
        [
            ["RENAME", k, k2],
            ["COPY", k, k2] + (["REPLACE"] if rnd.random() < 0.5 else []),
            ["DEL", k, k2],
            ["EXPIRE", k, "1"] if k.startswith("e") else ["PERSIST", k],
            ["PEXPIRE", k, str(rnd.randrange(1, 300))] if k.startswith("e") else ["EXISTS", k],
            ["RESTORE", k, "?"],  # the DUMP of k2, filled in by the caller
        ]
    )


# ------------------------------------------------------------------ workers


def free_port(rnd: random.Random) -> int:
    for _ in range(200):
        port = rnd.choice(PORTS)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 28000-28999")


SERVER_MAIN = """
import functools, sys
from kv_backend import DB
from kv_backend.server import resp
resp.DB = functools.partial(DB, max_file_size=int(sys.argv[2]))
resp.serve(sys.argv[1], port=int(sys.argv[3]))
"""


def start_server(args, rnd: random.Random):
    """A kvb serve on a free port (its files small), and a redis-py client connected to it."""
    import redis

    for _ in range(20):
        port = free_port(rnd)
        mfs = rnd.choice([4096, 16384, 65536])
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_MAIN, args.store, str(mfs), str(port)],
            env=child_env(),
            stderr=subprocess.PIPE,
        )
        line = proc.stderr.readline()  # "kvb serve: serving ..." once it listens and its store is open
        while line.startswith(b"kvb serve: listening on"):  # (the store still opening)
            line = proc.stderr.readline()
        if b"serving" in line:
            threading.Thread(target=forward, args=(proc.stderr,), daemon=True).start()
            client = redis.Redis(port=port, socket_timeout=30)
            # Raw ZADD replies: the soak sends ZADD ... INCR through execute_command, whose score
            # redis-py 5's ZADD parser (without zadd()'s as_score option) would take for an int.
            client.set_response_callback("ZADD", lambda response, **options: response)
            client.ping()
            return proc, client
        proc.wait()  # the port was taken meanwhile: try another
    raise RuntimeError("kvb serve did not start")


def forward(stream) -> None:
    """Copy what kvb serve writes to stderr to ours, but for its start-up vacuum's report."""
    for line in stream:
        if not line.startswith(b"kvb serve: removed"):
            sys.stderr.buffer.write(line)
            sys.stderr.flush()


def fill(r, cmd: list[str], rnd: random.Random) -> list[str] | None:
    """Replace a ``?`` placeholder by an entry ID of the stream (XDEL, XACK, XCLAIM) or a DUMP."""
    if "?" not in cmd:
        return cmd
    if cmd[0] == "RESTORE":
        payload = r.dump(same_kind(rnd, cmd[1]))
        if payload is None:
            return None
        ttl = str(rnd.randrange(50, 500)) if cmd[1].startswith("e") else "0"
        return ["RESTORE", cmd[1], ttl, payload, "REPLACE"]
    try:
        ids = [e[0] for e in r.xrange(cmd[1], count=4)]
    except Exception:
        return None
    if not ids:
        return None
    picked = rnd.sample(ids, rnd.randrange(1, len(ids) + 1))
    i = cmd.index("?")
    return cmd[:i] + picked + cmd[i + 1 :]


def server_worker(args) -> None:
    """Random commands, MULTI/EXEC blocks, scripts and functions through a kvb serve of our own."""
    rnd = random.Random(args.seed)
    log = Log(os.path.join(args.dir, "logs", f"{args.inc}.log"), fsync=False)
    import redis

    proc, r = start_server(args, rnd)
    try:
        r.function_load(LIBRARY, replace=True)
    except redis.ResponseError:
        pass
    slot = args.slot
    sha = r.script_load(SCRIPT)
    while True:
        x = rnd.random()
        try:
            if x < 0.12:  # a MULTI/EXEC: the slot's step, with random commands around it
                kind = "t"
                p = f"{slot}:t"
                pipe = r.pipeline(transaction=True)
                for cmd in [random_command(rnd) for _ in range(rnd.randrange(0, 3))]:
                    if "?" not in cmd:
                        pipe.execute_command(*cmd)
                for cmd in TX_STEP:
                    pipe.execute_command(*[a.format(p=p, n=rnd.randrange(1 << 40)) for a in cmd])
                replies = pipe.execute(raise_on_error=False)
                value = replies[-len(TX_STEP)]
            elif x < 0.2:  # a script
                kind = "e"
                keys = [f"{slot}:e:{s}" for s in SUFFIXES]
                extra = rnd.choice(["", f"{slot}:e:extra"])
                value = r.evalsha(sha, len(keys), *keys, extra)
            elif x < 0.25:
                kind = "f"
                keys = [f"{slot}:f:{s}" for s in SUFFIXES]
                value = r.fcall("step", len(keys), *keys, "")
            else:
                cmd = fill(r, random_command(rnd), rnd)
                if cmd is not None:
                    if rnd.random() < 0.15:
                        with r.pipeline(transaction=True) as pipe:
                            pipe.execute_command(*cmd)
                            pipe.execute_command(*fill(r, random_command(rnd), rnd) or ["PING"])
                            pipe.execute(raise_on_error=False)
                    else:
                        r.execute_command(*cmd)
                continue
        except redis.ResponseError:
            continue
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise SystemExit(f"kvb serve exited with {proc.returncode}") from None
            raise
        log.write({"k": kind, "v": int(value)})


def inproc_worker(args) -> None:
    """The same families through an in-process Structures, with the slot's counter as one incr."""
    from kv_backend import DB
    from kv_backend.structures import StructureError, Structures

    rnd = random.Random(args.seed)
    log = Log(os.path.join(args.dir, "logs", f"{args.inc}.log"), fsync=False)
    db = DB(args.store, max_file_size=rnd.choice([4096, 16384, 65536]))
    st = Structures(db)
    slot = args.slot
    calls = [
        lambda k, k2, v: st.set(k, v),
        lambda k, k2, v: st.append(k, v),
        lambda k, k2, v: st.setrange(k, rnd.randrange(0, 20), v),
        lambda k, k2, v: st.incrbyfloat(k, 1.5),
        lambda k, k2, v: st.rpush(k, v, rval(rnd)),
        lambda k, k2, v: st.lpush(k, v),
        lambda k, k2, v: st.lpop(k, rnd.randrange(1, 3)),
        lambda k, k2, v: st.linsert(k, "BEFORE", v, rval(rnd)),
        lambda k, k2, v: st.lrem(k, rnd.randrange(-2, 3), v),
        lambda k, k2, v: st.ltrim(k, rnd.randrange(-3, 3), rnd.randrange(-3, 5)),
        lambda k, k2, v: st.lmove(k, k2, "LEFT", "RIGHT"),
        lambda k, k2, v: st.lset(k, rnd.randrange(-2, 3), v),
        lambda k, k2, v: st.hset(k, mapping={v: rval(rnd), rval(rnd): v}),
        lambda k, k2, v: st.hdel(k, v),
        lambda k, k2, v: st.hincrby(k, v, 2),
        lambda k, k2, v: st.sadd(k, v, rval(rnd)),
        lambda k, k2, v: st.srem(k, v),
        lambda k, k2, v: st.smove(k, k2, v),
        lambda k, k2, v: st.sunionstore(k, k2, same_kind(rnd, k)),
        lambda k, k2, v: st.sinterstore(k, k2, same_kind(rnd, k)),
        lambda k, k2, v: st.zadd(k, {v: rnd.randrange(5), rval(rnd): rnd.random()}),
        lambda k, k2, v: st.zincrby(k, 1.0, v),
        lambda k, k2, v: st.zrem(k, v),
        lambda k, k2, v: st.zremrangebyscore(k, "-inf", rnd.randrange(3)),
        lambda k, k2, v: st.zpopmin(k, 2),
        lambda k, k2, v: st.zunionstore(k, [k2, same_kind(rnd, k)]),
        lambda k, k2, v: st.xadd(k, {"f": v}, maxlen=rnd.choice([None, 2, 4])),
        lambda k, k2, v: st.xtrim(k, maxlen=rnd.randrange(4)),
        lambda k, k2, v: st.xgroup_create(k, "g1", "0", mkstream=True),
        lambda k, k2, v: st.xreadgroup("g1", rnd.choice(["c1", "c2"]), {k: ">"}, count=2),
        lambda k, k2, v: st.xautoclaim(k, "g1", "c3", 0, "0", count=2),
        lambda k, k2, v: st.xgroup_delconsumer(k, "g1", rnd.choice(["c1", "c2", "c3"])),
        lambda k, k2, v: st.rename(k, k2),
        lambda k, k2, v: st.copy(k, k2, replace=True),
        lambda k, k2, v: st.delete(k),
        lambda k, k2, v: st.expire(k, rnd.choice([0.05, 1])) if k.startswith("e") else st.persist(k),
    ]
    while True:
        if rnd.random() < 0.15:
            log.write({"k": "i", "v": st.incr(f"{slot}:i:c")})
            continue
        k = rkey(rnd, rnd.random() < 0.25)
        try:
            rnd.choice(calls)(k, same_kind(rnd, k), rval(rnd))
        except (StructureError, KeyError):  # KeyError: RENAME of a missing key
            pass


def aux(args) -> None:
    """Merges now and then."""
    from kv_backend import DB

    rnd = random.Random(args.seed)
    db = DB(args.store, max_file_size=16384)
    while True:
        time.sleep(rnd.uniform(0.1, 0.8))
        db.merge()


# ------------------------------------------------------------------ controller


def spawn(args, role: str, slot: str, inc: str, seed: int) -> subprocess.Popen:
    cmd = [sys.executable, os.path.abspath(__file__), role, "--dir", args.dir, "--inc", inc, "--slot", slot]
    cmd += ["--seed", str(seed)]
    with open(os.path.join(args.dir, "stderr", f"{inc}.err"), "wb") as err:
        # A session of its own: a kill takes the worker and its kvb serve (see soak.kill()).
        return subprocess.Popen(cmd, stderr=err, stdout=err, env=child_env(), start_new_session=True)


def run(args) -> int:
    rnd = random.Random(args.seed)
    os.makedirs(args.dir)
    for d in ("logs", "stderr"):
        os.makedirs(os.path.join(args.dir, d))
    from kv_backend import DB

    DB(args.store).close()
    roles = {f"s{i}": "server" for i in range(args.servers)}
    roles.update({f"p{i}": "inproc" for i in range(args.inproc)})
    roles["a0"] = "aux"
    procs: dict[str, tuple[str, subprocess.Popen]] = {}
    counter = 0

    def start(slot: str) -> None:
        nonlocal counter
        counter += 1
        inc = f"{slot}i{counter}"
        procs[slot] = (inc, spawn(args, roles[slot], slot, inc, rnd.randrange(1 << 30)))

    for slot in roles:
        start(slot)
    kills = {"server": 0, "inproc": 0, "aux": 0}
    deaths = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and deaths <= 5:
        time.sleep(rnd.uniform(0.05, args.kill_every * 2) if args.kill_every else 0.2)
        for slot, (inc, p) in list(procs.items()):
            rc = p.poll()
            if rc is not None:
                print(f"!! {inc} exited with {rc}: see stderr/{inc}.err", flush=True)
                deaths += 1
                start(slot)
        if args.kill_every:
            slot = rnd.choice(sorted(roles))
            inc, p = procs[slot]
            if p.poll() is None:
                kill(p)
                kills[roles[slot]] += 1
                start(slot)
    for _, p in procs.values():
        kill(p)
    print(f"run done: {args.seconds:.0f} s, kills {kills}, unexpected exits {deaths}", flush=True)
    errors = check(args, roles)
    for name in sorted(os.listdir(os.path.join(args.dir, "stderr"))):
        with open(os.path.join(args.dir, "stderr", name), "rb") as f:
            text = f.read()
        if text:  # a traceback, a warning: nothing is expected there
            errors.append(f"stderr/{name} is not empty: {text[-400:]!r}")
    for e in errors[:40]:
        print("ERROR", e)
    return 1 if errors or deaths else 0


# ------------------------------------------------------------------ checker

_U32 = struct.Struct(">I")
_XID = struct.Struct(">QQ")


def split_member_key(key: bytes) -> tuple[bytes, bytes]:
    """``(name, rest)`` of a member record's key (prefix, length-prefixed name, rest)."""
    (n,) = _U32.unpack_from(key, 2)
    return key[6 : 6 + n], key[6 + n :]


def check_structures(st, strict_names=None) -> list[str]:
    """Every key's metadata against its member records; orphans under ``strict_names`` (None: all).

    Returns a list of problems (empty: all is well).
    """
    from kv_backend.structures import decode_score
    from kv_backend.structures import layout as L

    db = st.db
    errors: list[str] = []
    members: dict[bytes, dict[bytes, list[tuple[bytes, bytes]]]] = {}
    for prefix in L.ALL_PREFIXES[1:]:
        for key, value in db.items(prefix=prefix):
            name, rest = split_member_key(key)
            members.setdefault(name, {}).setdefault(prefix, []).append((rest, value))
    metas = {key[2:]: value for key, value in db.items(prefix=L.META)}
    for name, meta in metas.items():
        tag = meta[0]
        recs = members.get(name, {})
        own = L.MEMBER_PREFIXES.get(tag, ())
        others = [p for p in recs if p not in own]
        if others and (strict_names is None or name in strict_names):
            errors.append(f"{name!r} ({L.TYPE_NAMES.get(tag)}) has records of another type: {others}")
        if tag == L.T_LIST:
            head, tail, _ = L._LST.unpack_from(meta, 1)
            idx = sorted(struct.unpack(">Q", rest)[0] - (1 << 63) for rest, _ in recs.get(L.LIST, []))
            if idx != list(range(head, tail)):
                errors.append(f"list {name!r}: metadata says [{head}, {tail}), records have {idx[:10]}...")
        elif tag in (L.T_HASH, L.T_SET):
            count, _ = L._CNT.unpack_from(meta, 1)
            got = len(recs.get(L.HASH if tag == L.T_HASH else L.SET, []))
            if count != got:
                errors.append(f"{L.TYPE_NAMES[tag]} {name!r}: count {count}, {got} member records")
        elif tag == L.T_ZSET:
            count, _ = L._CNT.unpack_from(meta, 1)
            mem = {rest: value for rest, value in recs.get(L.ZMEM, [])}
            idx = [(rest[8:], rest[:8]) for rest, _ in recs.get(L.ZIDX, [])]
            if count != len(mem) or len(idx) != len(mem) or dict(idx) != mem:
                errors.append(f"zset {name!r}: count {count}, {len(mem)} members, {len(idx)} index records")
            for m, s in mem.items():
                if s != L.encode_score(decode_score(s)):
                    errors.append(f"zset {name!r}: member {m!r} has a bad score record {s!r}")
        elif tag == L.T_STREAM:
            count, _, ms, seq, added, _, _ = struct.unpack_from(">QQQQQQQ", meta, 1)
            ids = [_XID.unpack(rest) for rest, _ in recs.get(L.STREAM, [])]
            if count != len(ids):
                errors.append(f"stream {name!r}: count {count}, {len(ids)} entries")
            if ids and max(ids) > (ms, seq):
                errors.append(f"stream {name!r}: entry {max(ids)} after the last ID {(ms, seq)}")
            if added < count:
                errors.append(f"stream {name!r}: {added} entries added but {count} there")
            groups = {rest for rest, _ in recs.get(L.GROUP, [])}
            consumers = set()
            for rest, _ in recs.get(L.CONSUMER, []):
                (n,) = _U32.unpack_from(rest)
                group, consumer = rest[4 : 4 + n], rest[4 + n :]
                consumers.add((group, consumer))
                if group not in groups:
                    errors.append(f"stream {name!r}: consumer {consumer!r} of a missing group {group!r}")
            for rest, value in recs.get(L.PENDING, []):
                (n,) = _U32.unpack_from(rest)
                group, consumer = rest[4 : 4 + n], value[16:]
                if group not in groups:
                    errors.append(f"stream {name!r}: pending entry of a missing group {group!r}")
                elif (group, consumer) not in consumers:
                    errors.append(
                        f"stream {name!r}: pending entry of a missing consumer {group!r}/{consumer!r}"
                    )
            for rest, value in recs.get(L.GROUP, []):
                entries_read = struct.unpack_from(">q", value, 16)[0]
                if entries_read > added:
                    errors.append(f"stream {name!r}: group {rest!r} read {entries_read} of {added} entries")
    for name in members:
        if name not in metas and (strict_names is None or name in strict_names):
            errors.append(f"member records of {name!r} without a key: {sorted(members[name])}")
    return errors


def read_acks(args) -> dict[tuple[str, str], int]:
    """The largest acknowledged counter value of each (slot, kind)."""
    import json

    acks: dict[tuple[str, str], int] = {}
    for fname in os.listdir(os.path.join(args.dir, "logs")):
        slot = fname.split("i", 1)[0]
        with open(os.path.join(args.dir, "logs", fname)) as f:
            for line in f:
                if not line.endswith("\n"):
                    continue  # cut by the kill
                obj = json.loads(line)
                acks[(slot, obj["k"])] = max(acks.get((slot, obj["k"]), 0), obj["v"])
    return acks


def check(args, roles: dict[str, str]) -> list[str]:
    from kv_backend.check import check as kvb_check
    from kv_backend.structures import Structures

    errors: list[str] = []
    report = kvb_check(args.store)
    if not report.ok:
        errors.append(f"kvb check: {[str(p) for p in report.problems]}")
    strict = {k.encode() for k in KEYS} | {
        f"{slot}:{kind}:{s}".encode() for slot in roles for kind in "tefi" for s in [*SUFFIXES, "extra"]
    }
    with Structures(args.store) as st:
        errors += check_structures(st, strict)
        acks = read_acks(args)
        checked = 0
        for slot, role in roles.items():
            for kind in "tef" if role == "server" else "i" if role == "inproc" else "":
                p = f"{slot}:{kind}"
                value = int(st.get(f"{p}:c") or 0)
                acked = acks.get((slot, kind), 0)
                if not acked <= value <= acked + 1:
                    errors.append(f"{p}:c is {value}, its last acknowledged value {acked}")
                if kind == "i":
                    continue
                checked += 1
                sizes = [st.llen(f"{p}:l"), st.hlen(f"{p}:h"), st.scard(f"{p}:s"), st.zcard(f"{p}:z")]
                sizes.append(st.xlen(f"{p}:x"))
                if any(size != value for size in sizes):  # a step is one EXEC, script or function
                    errors.append(f"{p}: counter {value} but list/hash/set/zset/stream sizes {sizes}")
        removed = st.vacuum()
        errors += [f"after vacuum: {e}" for e in check_structures(st)]
    print(
        f"checked: {len(acks)} acknowledged counters, {checked} transaction/script/function groups, "
        f"{removed} records of expired keys vacuumed, {len(errors)} problems",
        flush=True,
    )
    return errors


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument(
        "role", choices=["run", "server", "inproc", "aux"], help="run: the soak; the others: its parts"
    )
    ap.add_argument("--dir", help="working directory (must not exist); default: a new temporary one")
    ap.add_argument("--seconds", type=float, default=120, help="how long the workers run (default: 120)")
    ap.add_argument(
        "--seed", type=int, default=1, help="seed of the kills and of the workers' commands (default: 1)"
    )
    ap.add_argument("--servers", type=int, default=2, help="kvb serve workers")
    ap.add_argument("--inproc", type=int, default=1, help="in-process Structures workers")
    ap.add_argument("--kill-every", type=float, default=0.7, help="mean seconds between two SIGKILLs")
    ap.add_argument("--no-kills", action="store_true", help="only concurrency: no process is killed")
    ap.add_argument("--quick", action="store_true", help="a short run (a smoke test)")
    ap.add_argument("--keep", action="store_true", help="keep --dir after a run that passed")
    ap.add_argument("--inc", default="x", help=argparse.SUPPRESS)
    ap.add_argument("--slot", default="x", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.kill_every = 4.0, 0.5
    if args.no_kills:
        args.kill_every = 0.0
    temporary = working_dir(ap, args, "kvb-ssoak-")
    if args.role == "run":
        return run_in(args, temporary, run)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    {"server": server_worker, "inproc": inproc_worker, "aux": aux}[args.role](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
