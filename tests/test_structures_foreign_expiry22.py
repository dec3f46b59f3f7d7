"""The expiry of a key's metadata record that another front end wrote (a Store's ``"\\x00mbar"``).

kvb serve's EXPIRE, TTL and PERSIST on such a key answered the error saying the record is another
front end's, but in-process ``expire()``, ``expireat()``, ``pexpire()``, ``pexpireat()``, ``ttl()``
and ``pttl()`` acted on the record as on any key: ``expire("bar", 100)`` gave the Store's value a time
to live (the Store's key then vanished 100 s later), ``expire("bar", 0)`` deleted it, ``ttl()`` read
it, while ``persist()``, ``expiretime()`` and the NX/XX/GT/LT forms refused it. Every one of them now
raises ForeignRecordError and leaves the record and its expiry alone, as kvb serve does (docs/redis.md,
"Storage layout": DEL alone removes such a record); the layout's own keys expire as before.
"""

from __future__ import annotations

import time

import pytest

from kv_backend import Store
from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures

MESSAGE = (
    "ERR the store's record of key 'bar' was not written by kvb serve but by another front end on "
    "its directory (as the engine key b'\\x00mbar'); DEL the key to remove it"
)

CALLS = {
    "expire": lambda s: s.expire("bar", 100),
    "expire 0": lambda s: s.expire("bar", 0),
    "expire None": lambda s: s.expire("bar", None),
    "expire nx": lambda s: s.expire("bar", 100, nx=True),
    "pexpire": lambda s: s.pexpire("bar", 100_000),
    "expireat": lambda s: s.expireat("bar", time.time() + 100),
    "expireat past": lambda s: s.expireat("bar", 1),
    "pexpireat": lambda s: s.pexpireat("bar", int(time.time() * 1000) + 100_000),
    "ttl": lambda s: s.ttl("bar"),
    "pttl": lambda s: s.pttl("bar"),
    "expiretime": lambda s: s.expiretime("bar"),
    "persist": lambda s: s.persist("bar"),
}

COMMANDS = [
    [b"EXPIRE", b"bar", b"100"],
    [b"EXPIRE", b"bar", b"0"],
    [b"PEXPIRE", b"bar", b"100000"],
    [b"EXPIREAT", b"bar", b"1"],
    [b"PEXPIREAT", b"bar", b"99999999999999"],
    [b"TTL", b"bar"],
    [b"PTTL", b"bar"],
    [b"EXPIRETIME", b"bar"],
    [b"PERSIST", b"bar"],
]


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Store(path) as store:
        store["\x00mbar"] = {"a": 1}  # a pickle
        store.set("\x00mbar", {"a": 1}, ttl=500)
    return path


def _untouched(s: Structures, value: bytes) -> None:
    assert s.db.get(b"\x00mbar") == value
    assert 499 < s.db.ttl(b"\x00mbar") <= 500


@pytest.mark.parametrize("call", CALLS)
def test_in_process_refuses_it(path, call):
    with Structures(path) as s:
        value = s.db.get(b"\x00mbar")
        with pytest.raises(ForeignRecordError) as info:
            CALLS[call](s)
        assert str(info.value) == MESSAGE
        _untouched(s, value)


def test_kvb_serve_refuses_it_the_same_way(path):
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        value = server.db.get(b"\x00mbar")
        for args in COMMANDS:
            assert conn.execute(args).message == MESSAGE, args
        assert server.db.get(b"\x00mbar") == value and 499 < server.db.ttl(b"\x00mbar") <= 500
        assert conn.execute([b"DEL", b"bar"]) == 1
    finally:
        server.db.close()


def test_keys_of_the_layout_expire_as_before(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.set("a", "1")
        s.rpush("l", "x")
        assert s.expire("a", 100) is True and 99 < s.ttl("a") <= 100 and 99_000 < s.pttl("a") <= 100_000
        assert s.expireat("l", time.time() + 50) is True and 49 < s.ttl("l") <= 50
        assert s.expire("a", None) is True and s.ttl("a") is None
        assert s.persist("l") is True and s.ttl("l") is None and s.persist("l") is False
        assert s.expire("missing", 10) is False and s.expireat("missing", 1) is False
        with pytest.raises(KeyError):
            s.ttl("missing")
        assert s.expire("a", 0) is True and s.exists("a") == 0  # a time to live of 0 deletes
        assert s.expireat("l", 1) is True and s.exists("l") == 0  # so does a time past
        assert s.expire("x" * 70_000, 10) is False  # a name too long to be stored: missing
