"""A Redis key's metadata record written by another front end (a Store's key ``"\\x00mbar"``, a
``kvb http`` PUT of ``%00mbar``): the engine key ``\\x00m`` + name is kvb serve's record of the key.

An empty or malformed one made every command on the name answer ``ERR internal error in 'get':
IndexError`` (or ``error``, a struct.error), DEL included, so the name could not be used again
through the server, and one empty record made every ``SCAN ... TYPE`` fail. Now such a command says
which record it is and to DEL the key, DEL removes it, and SCAN's TYPE filter passes it over.
"""

from __future__ import annotations

import pytest
import redis
from resp_helpers import RunningServer

from kv_backend import DB
from kv_backend.structures import Structures
from kv_backend.structures.layout import foreign_meta

FOREIGN = {b"\x00mbar": b"", b"\x00mqux": b"l12", b"\x00mzz": b"z"}  # empty; a list's and a zset's too short


@pytest.fixture
def client(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.rpush("real", "a")
    with DB(path) as db:
        for key, value in FOREIGN.items():
            db.put(key, value)
    server = RunningServer(path).start()
    yield redis.Redis(port=server.port)
    server.stop()


@pytest.mark.parametrize("call", [("get", "bar"), ("type", "bar"), ("lrange", "qux", 0, -1), ("zcard", "zz")])
def test_a_command_on_such_a_key_says_what_it_is(client, call):
    with pytest.raises(redis.ResponseError) as info:
        client.execute_command(*call)
    name = call[1]
    engine_key = b"\x00m" + name.encode()
    assert str(info.value) == (
        f"the store's record of key '{name}' was not written by kvb serve but by another front end on "
        f"its directory (as the engine key {engine_key!r}); DEL the key to remove it"
    )


def test_del_removes_them_and_scan_passes_them_over(client):
    assert client.scan(0, _type="list") == (0, [b"real"])  # (qux: a list's tag, 3 bytes: no list's record)
    assert client.delete("bar", "qux", "zz") == 3
    assert client.keys("*") == [b"real"] and client.lrange("real", 0, -1) == [b"a"]


def test_what_kvb_serve_writes_is_never_taken_for_foreign(tmp_path):
    with Structures(str(tmp_path / "kv")) as s:
        s.set("str", "")
        s.setbit("bits", 100, 1)
        s.pfadd("hll", "a")
        s.hset("h", "f", "v")
        s.sadd("s", "m")
        s.zadd("z", {"m": 1})
        s.geoadd("geo", (13.36, 38.11, "p"))
        s.rpush("l", "x")
        s.xadd("x", {"a": "b"})
        s.xgroup_create("x", "g")
        metas = [s.db.get(b"\x00m" + name) for name in s.keys("*")]
        assert len(metas) == 9 and not any(map(foreign_meta, metas))
    assert all(map(foreign_meta, FOREIGN.values()))
