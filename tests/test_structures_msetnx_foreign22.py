"""MSETNX over a key's metadata record that another front end wrote (a Store's ``"\\x00mbar"``).

It answered 0 (the key "exists"), where SET ... NX, SETNX, RENAMENX and COPY onto the same name
answer the error saying the record is another front end's, as every write to the name does
(docs/redis.md, "Storage layout"). It now raises ForeignRecordError in-process and answers that
error through kvb serve, whichever of its names the record is; the record is left as it was.
"""

from __future__ import annotations

import pickle

import pytest

from kv_backend.server import resp
from kv_backend.structures import ForeignRecordError, Structures

MESSAGE = (
    "ERR the store's record of key 'bar' was not written by kvb serve but by another front end on "
    "its directory (as the engine key b'\\x00mbar'); DEL the key to remove it"
)
VALUE = pickle.dumps({"a": 1})


@pytest.fixture
def path(tmp_path):
    path = str(tmp_path / "kv")
    with Structures(path) as s:
        s.set("real", "r")
        s.db.put(b"\x00mbar", VALUE)
    return path


@pytest.mark.parametrize("mapping", [{"bar": "v"}, {"new": "v", "bar": "v"}, {"real": "v", "bar": "v"}])
def test_in_process(path, mapping):
    with Structures(path) as s:
        for call in (lambda: s.msetnx(mapping), lambda: s.set("bar", "v", nx=True)):
            with pytest.raises(ForeignRecordError) as info:
                call()
            assert str(info.value) == MESSAGE
        assert s.db.get(b"\x00mbar") == VALUE and s.exists("new") == 0 and s.get("real") == b"r"
        assert s.msetnx({"new": "v", "other": "w"}) is True and s.msetnx({"new": "x"}) is False
        assert s.mget("new", "other") == [b"v", b"w"]


def test_kvb_serve(path):
    server = resp.Server(path)
    try:
        conn = resp.Connection(server)
        assert conn.execute([b"MSETNX", b"new", b"v", b"bar", b"v"]).message == MESSAGE
        assert conn.execute([b"SET", b"bar", b"v", b"NX"]).message == MESSAGE
        assert server.db.get(b"\x00mbar") == VALUE and conn.execute([b"EXISTS", b"new"]) == 0
    finally:
        server.db.close()
