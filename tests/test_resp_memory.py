"""MEMORY, LATENCY and shard pub/sub (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE, PUBSUB SHARDCHANNELS /
SHARDNUMSUB) of ``kvb serve`` against a real redis-server (7.0, not in cluster mode), replies
compared as they come off the wire in RESP2 and RESP3, plus what kvb answers on its own: its
MEMORY USAGE estimate and the figures of MEMORY STATS."""

from __future__ import annotations

import shlex
import socket
import time

import pytest
import redis
from test_resp_geo import script

from kv_backend.record import HEADER_SIZE
from kv_backend.structures import Structures


def _client(port: int, protocol: int = 3) -> redis.Redis:
    client = redis.Redis(port=port, protocol=protocol)
    client.response_callbacks.clear()
    return client


# ---------------------------------------------------------------------------------- MEMORY


def test_memory_subcommands_and_errors_as_redis(raw):
    """MEMORY HELP/DOCTOR/PURGE, USAGE of a missing key (nil) and every SAMPLES mistake (checked
    before the key is looked up), arity and unknown-subcommand errors: Redis's bytes."""
    script(
        raw,
        """
        MEMORY HELP
        MEMORY DOCTOR
        MEMORY PURGE
        MEMORY USAGE nokey
        MEMORY USAGE nokey SAMPLES 0
        MEMORY USAGE nokey SAMPLES x
        MEMORY USAGE nokey SAMPLES -1
        SET k hello
        MEMORY USAGE k SAMPLES -1
        MEMORY USAGE k SAMPLES x
        MEMORY USAGE k SAMPLES 99999999999999999999
        MEMORY USAGE k SAMPLES
        MEMORY USAGE k foo 1
        MEMORY USAGE
        MEMORY
        MEMORY nosuch
        MEMORY HELP x
        MEMORY DOCTOR x
        MEMORY PURGE x
        MEMORY STATS x
        MEMORY MALLOC-STATS x
        """,
    )
    for cmd in (["MEMORY", "USAGE", "k"], ["MEMORY", "USAGE", "k", "SAMPLES", "1", "SAMPLES", "0"]):
        want, got = raw[0].call(*cmd), raw[1].call(*cmd)
        assert want[:1] == got[:1] == b":", cmd  # an integer, kvb's own estimate
    text = b"Stats not supported for the current allocator"
    assert raw[1].call("MEMORY", "MALLOC-STATS") == b"$%d\r\n%b\r\n" % (len(text), text)


def test_memory_usage_follows_the_documented_rule(tmp_path):
    """A string is its one record (22-byte header, engine key, type tag and value); a collection
    adds its member records, extrapolated from SAMPLES of them (0: all); missing and expired
    keys have none; a sorted set counts both of its records per member."""
    with Structures(str(tmp_path / "s")) as s:
        s.set("name", "value")
        assert s.memory_usage("name") == HEADER_SIZE + 2 + 4 + 1 + 5
        assert s.memory_usage("missing") is None
        s.set("gone", "x", ex=0.001)
        time.sleep(0.01)
        assert s.memory_usage("gone") is None
        s.hset("h", {f"f{i:02d}": "v" * 10 for i in range(20)})
        meta = len(s.db.get(b"\x00mh"))
        one = HEADER_SIZE + 2 + 4 + 1 + 3 + 10  # prefix, name length, name, field, value
        assert s.memory_usage("h") == s.memory_usage("h", 0) == HEADER_SIZE + 3 + meta + 20 * one
        s.hset("h", {"zz": "v" * 1000})  # the last field: SAMPLES 5 reads five small ones
        big = HEADER_SIZE + 2 + 4 + 1 + 2 + 1000
        assert s.memory_usage("h", 0) - s.memory_usage("h", 5) == big - one
        s.zadd("z", {"a": 1})
        zmeta = len(s.db.get(b"\x00mz"))
        rec_z = HEADER_SIZE + 2 + 4 + 1 + 1 + 8
        rec_idx = HEADER_SIZE + 2 + 4 + 1 + 8 + 1
        assert s.memory_usage("z") == HEADER_SIZE + 3 + zmeta + rec_z + rec_idx
        with pytest.raises(ValueError):
            s.memory_usage("h", -1)


def test_memory_stats_has_redis_fields_and_types(ports):
    """MEMORY STATS answers the fields redis-server 7.0 answers, in its order, each of its type
    (integer or double; ``db.0`` a map of three integers, present only when there are keys), in
    RESP3 and RESP2; kvb's figures are the documented ones."""
    real, ours = (_client(p) for p in ports)
    for c in (real, ours):
        c.flushall()

    def shape(reply):
        return [(k, type(v).__name__ if not isinstance(v, dict) else list(v)) for k, v in reply.items()]

    assert shape(ours.execute_command("MEMORY", "STATS")) == shape(real.execute_command("MEMORY", "STATS"))
    for c in (real, ours):
        c.set("k", "v")
    want, got = real.execute_command("MEMORY", "STATS"), ours.execute_command("MEMORY", "STATS")
    assert shape(got) == shape(want)
    assert got[b"keys.count"] == 1 and got[b"aof.buffer"] == 0 and got[b"replication.backlog"] == 0
    assert got[b"total.allocated"] >= HEADER_SIZE + 2 + 1 + 1 + 1
    resp2 = [_client(p, 2).execute_command("MEMORY", "STATS") for p in ports]
    assert resp2[1][::2] == resp2[0][::2]
    assert [type(v).__name__ for v in resp2[1]] == [type(v).__name__ for v in resp2[0]]


# --------------------------------------------------------------------------------- LATENCY


def test_latency_answers_as_redis_without_a_latency_monitor(raw):
    """LATENCY's subcommands answer as redis-server with latency-monitor-threshold 0 (nothing
    sampled): empty LATEST/HISTORY, RESET 0, GRAPH's and DOCTOR's texts, an empty HISTOGRAM of
    unknown commands; arity errors; scripts may call LATENCY HELP but no other subcommand, refused
    after the unknown-subcommand and argument-count checks, as Redis refuses them."""
    script(
        raw,
        """
        LATENCY HELP
        LATENCY LATEST
        LATENCY HISTORY command
        LATENCY HISTORY fork
        LATENCY RESET
        LATENCY RESET command fork
        LATENCY GRAPH command
        LATENCY GRAPH "ev ent"
        LATENCY DOCTOR
        LATENCY HISTOGRAM nosuch
        LATENCY HISTOGRAM nosuch alsonot
        LATENCY
        LATENCY nosuch
        LATENCY HELP x
        LATENCY LATEST x
        LATENCY HISTORY
        LATENCY HISTORY a b
        LATENCY GRAPH
        LATENCY DOCTOR x
        EVAL "return redis.call('latency', 'help')" 0
        EVAL "return redis.call('latency', 'latest')" 0
        EVAL "return redis.call('latency', 'history', 'command')" 0
        EVAL "return redis.call('latency', 'reset')" 0
        EVAL "return redis.call('latency', 'graph', 'command')" 0
        EVAL "return redis.call('latency', 'doctor')" 0
        EVAL "return redis.call('latency', 'histogram')" 0
        EVAL "return redis.pcall('latency', 'reset', 'a', 'b')" 0
        EVAL "return redis.call('latency', 'nosuch')" 0
        EVAL "return redis.call('latency', 'graph')" 0
        EVAL "return redis.call('latency')" 0
        """,
    )


def test_latency_command_info_has_redis_noscript_flags(ports):
    """COMMAND INFO LATENCY: each subcommand as Redis describes it, ``noscript`` included (on all
    but HELP), the container itself without it."""
    real, ours = (_client(p) for p in ports)

    def described(client):
        (entry,) = client.execute_command("COMMAND", "INFO", "latency")
        return entry[:9], sorted(entry[9], key=lambda sub: sub[0])

    assert described(ours) == described(real)
    assert [sub[0] for sub in described(ours)[1] if b"noscript" not in sub[2]] == [b"latency|help"]


# ------------------------------------------------------------------------ shard pub/sub


class Wire:
    """A bare connection that sends commands and returns every byte the server sent back."""

    def __init__(self, port: int, protocol: int = 2) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        if protocol == 3:
            self.send("HELLO 3")
            assert self.read().startswith(b"%")

    def send(self, *lines: str) -> None:
        out = b""
        for line in lines:
            words = [w.encode() for w in shlex.split(line)]
            out += b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%b\r\n" % (len(w), w) for w in words)
        self.sock.sendall(out)

    def read(self, quiet: float = 0.05, expected: bool = True) -> bytes:
        """What arrives until nothing more comes for ``quiet`` seconds, once the first byte came (up
        to 30 s: a loaded machine may take longer than ``quiet`` to answer) if ``expected``."""
        data = b""
        self.sock.settimeout(30 if expected else quiet)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                self.sock.settimeout(quiet)
        except TimeoutError:
            pass
        return data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=[2, 3], ids=lambda p: f"RESP{p}")
def wires(ports, request):
    """Per server, a factory of connections speaking RESP2 or RESP3 (closed afterwards)."""
    made: list[Wire] = []

    def make(i: int) -> Wire:
        made.append(Wire(ports[i], request.param))
        return made[-1]

    yield make
    for w in made:
        w.close()


def _both(wires, *lines: str) -> None:
    """Send ``lines`` (one batch) on a fresh connection to each server: the same bytes come back."""
    got = []
    for i in (0, 1):
        w = wires(i)
        w.send(*lines)
        got.append(w.read())
        w.close()
    assert got[1] == got[0], lines


def test_shard_subscriptions_answer_as_redis(wires, ports):
    """SSUBSCRIBE/SUNSUBSCRIBE confirmations (``ssubscribe``/``sunsubscribe`` pushes counting shard
    channels only, apart from SUBSCRIBE's count), SUNSUBSCRIBE of everything and of nothing,
    the RESP2 subscribe mode they enter (PING's pong array, other commands refused), SSUBSCRIBE
    refused inside MULTI at EXEC, PUBSUB SHARDCHANNELS/SHARDNUMSUB."""
    _both(wires, "SSUBSCRIBE a b a", "PING", "GET x", "SUBSCRIBE c", "SUNSUBSCRIBE a", "SUNSUBSCRIBE")
    _both(wires, "SSUBSCRIBE a", "SUBSCRIBE c", "UNSUBSCRIBE c", "GET x", "SUNSUBSCRIBE a", "GET x")
    _both(wires, "SUBSCRIBE c", "SSUBSCRIBE a", "SUNSUBSCRIBE a", "GET x", "UNSUBSCRIBE", "GET x")
    _both(wires, "SUNSUBSCRIBE", "SUNSUBSCRIBE x y", "SPUBLISH nobody m", "GET x")
    _both(wires, "MULTI", "SSUBSCRIBE a", "SUNSUBSCRIBE a", "EXEC", "PUBSUB SHARDNUMSUB a")
    _both(wires, "SSUBSCRIBE", "SUNSUBSCRIBE", "SPUBLISH a", "PUBSUB SHARDCHANNELS a b")
    subscribers = [wires(i) for i in (0, 1)]
    for s in subscribers:
        s.send("SSUBSCRIBE s:1 s:2 other", "SUBSCRIBE s:1")
        s.read()
    _both(
        wires,
        "PUBSUB SHARDCHANNELS s:[2]",
        "PUBSUB SHARDCHANNELS o*",
        "PUBSUB SHARDNUMSUB s:1 s:2 nosuch",
        "PUBSUB SHARDNUMSUB",
        "PUBSUB CHANNELS",
        "PUBSUB NUMSUB s:1 s:2",
    )
    real, ours = (_client(p) for p in ports)
    for cmd in (["PUBSUB", "SHARDCHANNELS"], ["PUBSUB", "SHARDCHANNELS", "s:*"]):  # in any order
        assert sorted(ours.execute_command(*cmd)) == sorted(real.execute_command(*cmd))


def test_shard_messages_reach_shard_subscribers_only(wires):
    """SPUBLISH reaches SSUBSCRIBE's subscribers (``smessage``), never SUBSCRIBE's or PSUBSCRIBE's
    of the same name, and PUBLISH never reaches shard subscribers; each answers how many got it."""
    got = []
    for i in (0, 1):
        shard, plain, publisher = wires(i), wires(i), wires(i)
        shard.send("SSUBSCRIBE ch")
        plain.send("SUBSCRIBE ch", "PSUBSCRIBE c*")
        shard.read(), plain.read()
        publisher.send("SPUBLISH ch one", "PUBLISH ch two", "SPUBLISH ch three", "SPUBLISH other x")
        got.append((publisher.read(), shard.read(), plain.read()))
    assert got[1] == got[0]
    assert b"smessage" in got[1][1] and b"smessage" not in got[1][2]


def test_keyspace_events_are_not_sent_to_shard_channels(wires):
    """With keyspace notifications on, a SUBSCRIBE to ``__keyspace@0__:k`` gets SET's event and an
    SSUBSCRIBE to the same channel gets nothing, as in Redis."""
    got = []
    for i in (0, 1):
        admin, shard, plain = wires(i), wires(i), wires(i)
        admin.send("CONFIG SET notify-keyspace-events KA")
        admin.read()
        shard.send("SSUBSCRIBE __keyspace@0__:k")
        plain.send("SUBSCRIBE __keyspace@0__:k")
        shard.read(), plain.read()
        admin.send("SET k v", "CONFIG SET notify-keyspace-events ''")
        got.append((admin.read(), shard.read(expected=False), plain.read()))
    assert got[1] == got[0]
    assert got[1][1] == b"" and b"set" in got[1][2]


def test_shard_pubsub_in_scripts_and_command_info(raw, ports):
    """Scripts may SPUBLISH (not from EVAL_RO) but not SSUBSCRIBE/SUNSUBSCRIBE; COMMAND INFO of
    SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE and PUBSUB as Redis, ``noscript`` included; CLIENT INFO
    of a shard subscriber counts its shard channels (``ssub``) and flags it ``P``."""
    script(
        raw,
        """
        EVAL "return redis.call('spublish', 'ch', 'm')" 0
        EVAL_RO "return redis.call('spublish', 'ch', 'm')" 0
        EVAL "return redis.call('ssubscribe', 'ch')" 0
        EVAL "return redis.call('sunsubscribe')" 0
        EVAL "return redis.call('pubsub', 'shardnumsub', 'ch')" 0
        """,
    )
    real, ours = (_client(p) for p in ports)

    def described(client, name):
        (entry,) = client.execute_command("COMMAND", "INFO", name)
        return entry[:9], sorted(entry[9], key=lambda sub: sub[0])

    for name in ("spublish", "ssubscribe", "sunsubscribe", "pubsub"):
        assert described(ours, name) == described(real, name), name
    for port in ports:
        w = Wire(port, 3)
        w.send("SSUBSCRIBE a b", "CLIENT INFO")
        reply = w.read()
        w.close()
        assert b" ssub=2 " in reply and b" flags=P " in reply, port
