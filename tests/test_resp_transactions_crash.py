"""A ``kvb serve`` SIGKILLed in the middle of an EXEC, a script or a function: after a restart
the store holds all of its writes or none of them, and no other process ever saw a part."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest
import redis
from resp_helpers import RunningServer, serve_zygote

from kv_backend import DB

N = 3000

SCRIPT = "for i = 1, tonumber(ARGV[2]) do redis.call('SET', KEYS[1] .. i, ARGV[1]) end return 1"
LIBRARY = (
    "#!lua name=crashlib\n"
    "redis.register_function('fill', function(keys, args)\n"
    "  for i = 1, tonumber(args[2]) do\n"
    "    redis.call('RPUSH', keys[1], args[1])\n"
    "    redis.call('SET', keys[1] .. i, args[1])\n"
    "  end\n"
    "  return 1\n"
    "end)\n"
)


def _command(*args: str) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _send(port: int, payload: bytes) -> socket.socket:
    """Send ``payload`` without waiting for replies (the server is killed while it works)."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(payload)
    return sock


def _block(kind: str, value: str) -> tuple[list[bytes], bytes]:
    """The keys a block of ``kind`` writes (in the order it writes them) and its request bytes."""
    if kind == "exec":
        keys = [b"x%d" % i for i in range(N)]
        payload = _command("MULTI") + b"".join(_command("SET", k.decode(), value) for k in keys)
        return keys, payload + _command("EXEC")
    if kind == "eval":
        return [b"s%d" % i for i in range(1, N + 1)], _command("EVAL", SCRIPT, "1", "s", value, str(N))
    keys = [b"f%d" % i for i in range(1, N // 2 + 1)]
    return keys, _command("FCALL", "fill", "1", "f", value, str(N // 2))


def _values(db: DB, keys: list[bytes]) -> list[bytes | None]:
    """The string values of ``keys``, read from the store's records (b"\x00m" name -> b"s" value)."""
    out = []
    for k in keys:
        meta = db.get(b"\x00m" + k)
        assert meta is None or meta[:1] == b"s", meta
        out.append(None if meta is None else meta[1:])
    return out


@pytest.mark.slow
def test_exec_script_and_function_are_all_or_nothing_across_a_sigkill(tmp_path):
    path = str(tmp_path / "store")
    zygote = serve_zygote()  # the server is started 13 times
    server = RunningServer(path, zygote=zygote).start()
    rnd = random.Random()
    outcomes: dict[str, set[str]] = {"exec": set(), "eval": set(), "fcall": set()}
    problems: list[str] = []
    took: dict[str, float] = {}
    try:
        r = redis.Redis(port=server.port)
        r.function_load(LIBRARY)
        r.close()
        for kind in outcomes:
            # A first run of each kind, to its end: how long the server takes for it.
            t0 = time.perf_counter()
            sock = _send(server.port, _block(kind, "1")[1])
            sock.recv(1)
            took[kind] = time.perf_counter() - t0
            sock.close()
        reader = DB(path, read_only=True)
        try:
            for round_no in range(2, 14):
                kind = ("exec", "eval", "fcall")[round_no % 3]
                value = str(round_no)
                keys, payload = _block(kind, value)
                before = _values(reader, keys)
                stop = threading.Event()

                def watch(keys=keys, stop=stop, kind=kind) -> None:
                    # The block writes the keys in this order, and a reader reading them in the
                    # same order sees ever newer committed states: the values only go up. Seeing
                    # the block's writes before it ends would show as a newer value first.
                    while not stop.is_set():
                        seen = [int(v or 0) for v in _values(reader, keys)]
                        if seen != sorted(seen):
                            problems.append(f"{kind}: a reader saw part of the block")
                            return

                watcher = threading.Thread(target=watch)
                watcher.start()
                sock = _send(server.port, payload)
                time.sleep(rnd.uniform(0.0, 1.2) * took[kind])
                server.kill()
                stop.set()
                watcher.join(10)
                sock.close()
                server.start()
                with DB(path, read_only=True) as after:
                    got = _values(after, keys)
                if got == [value.encode()] * len(keys):
                    outcomes[kind].add("all")
                elif got == before:
                    outcomes[kind].add("none")
                else:
                    kept = sum(1 for v in got if v == value.encode())
                    problems.append(f"{kind} round {round_no}: {kept} of {len(keys)} writes kept")
                if kind == "fcall":
                    r = redis.Redis(port=server.port)
                    n = r.llen("f")
                    r.close()
                    if n % (N // 2):  # each whole call pushes N // 2 elements
                        problems.append(f"fcall round {round_no}: a list of {n} elements")
        finally:
            reader.close()
    finally:
        server.stop()
        zygote.close()
    assert not problems, problems
