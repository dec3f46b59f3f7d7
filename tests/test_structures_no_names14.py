"""In-process methods given no names, fields or members answer as redis-py with redis-server does: it
sends the command without them, and Redis refuses it (a wrong argument count, or its error for a
key count of 0); kvb returned 0, an empty answer, or another error (``brpop([])`` named ``blpop``,
``bzpopmin([])`` spoke of a key count)."""

from __future__ import annotations

import pytest
import redis
from helpers import require_tool
from resp_helpers import start_redis_server, stop_process

from kv_backend.structures import CommandError, Structures


def _arity(command: str) -> str:
    return f"ERR wrong number of arguments for '{command}' command"


def _no_key(command: str) -> str:
    return f"ERR at least 1 input key is needed for '{command}' command"


# (what is called, with the same arguments on Structures and on redis-py, and Redis's error)
_CALLS: list[tuple[str, tuple, dict, str]] = [
    ("delete", (), {}, _arity("del")),
    ("unlink", (), {}, _arity("unlink")),
    ("exists", (), {}, _arity("exists")),
    ("touch", (), {}, _arity("touch")),
    ("hdel", ("h",), {}, _arity("hdel")),
    ("hmget", ("h", []), {}, _arity("hmget")),
    ("srem", ("s",), {}, _arity("srem")),
    ("smismember", ("s", []), {}, _arity("smismember")),
    ("sinter", ([],), {}, _arity("sinter")),
    ("sunion", ([],), {}, _arity("sunion")),
    ("sdiff", ([],), {}, _arity("sdiff")),
    ("sinterstore", ("d", []), {}, _arity("sinterstore")),
    ("sunionstore", ("d", []), {}, _arity("sunionstore")),
    ("sdiffstore", ("d", []), {}, _arity("sdiffstore")),
    ("zrem", ("z",), {}, _arity("zrem")),
    ("mset", ({},), {}, _arity("mset")),
    ("msetnx", ({},), {}, _arity("msetnx")),
    ("brpop", ([], 1), {}, _arity("brpop")),
    ("bzpopmin", ([], 1), {}, _arity("bzpopmin")),
    ("bzpopmax", ([], 1), {}, _arity("bzpopmax")),
    ("geoadd", ("g", []), {}, _arity("geoadd")),
    ("zunion", ([],), {}, _arity("zunion")),
    ("zinter", ([],), {}, _arity("zinter")),
    ("zdiff", ([],), {}, _arity("zdiff")),
    ("zunionstore", ("d", []), {}, _arity("zunionstore")),
    ("zinterstore", ("d", []), {}, _arity("zinterstore")),
    ("zdiffstore", ("d", []), {}, _arity("zdiffstore")),
    ("zunion", ([],), {"withscores": True}, _no_key("zunion")),
    ("zinterstore", ("d", []), {"aggregate": "MAX"}, _no_key("zinterstore")),
]

# Calls whose Structures signature differs from redis-py's (see docs/redis.md): the error only
_KVB_ONLY: list[tuple[str, tuple, dict, str]] = [
    ("sintercard", (), {}, "ERR numkeys should be greater than 0"),  # redis-py: sintercard(0, [])
    ("zintercard", ([],), {}, _no_key("zintercard")),
    ("lmpop", ([],), {}, "ERR numkeys should be greater than 0"),  # redis-py: lmpop(0, direction=...)
    ("zmpop", ([],), {}, "ERR numkeys should be greater than 0"),
    ("zmscore", ("z", []), {}, _arity("zmscore")),  # redis-py refuses it before sending
    ("xread", ({},), {}, _arity("xread")),  # likewise
    ("xreadgroup", ("g", "c", {}), {}, _arity("xreadgroup")),
    ("blpop", ([], 1), {}, _arity("blpop")),
    ("hmset", ("h", {}), {}, _arity("hmset")),  # redis-py refuses it before sending; it said 'hset'
    ("hmset", ("h", None), {}, _arity("hmset")),
]


@pytest.mark.parametrize(("method", "args", "kwargs", "error"), _CALLS + _KVB_ONLY)
def test_no_names_is_redis_error(store_path, method, args, kwargs, error):
    """The method raises Redis's error as a CommandError and writes nothing."""
    with Structures(store_path) as st:
        st.set("d", "kept")
        with pytest.raises(CommandError) as info:
            getattr(st, method)(*args, **kwargs)
        assert str(info.value) == error
        assert st.get("d") == b"kept" and st.dbsize() == 1


@pytest.fixture(scope="module")
def real_redis(tmp_path_factory):
    """A redis-py client of a throw-away redis-server (skipped when there is none)."""
    require_tool("redis-server")
    proc, port = start_redis_server(str(tmp_path_factory.mktemp("redis")))
    client = redis.Redis(port=port)
    yield client
    client.close()
    stop_process(proc)


@pytest.mark.parametrize(("method", "args", "kwargs", "error"), _CALLS)
def test_redis_py_gets_the_same_error_from_redis_server(real_redis, method, args, kwargs, error):
    """The errors above are what redis-py raises with redis-server 7 for the same call."""
    real_redis.set("d", "kept")
    with pytest.raises(redis.ResponseError) as info:
        getattr(real_redis, method)(*args, **kwargs)
    assert "ERR " + str(info.value) == error
    assert real_redis.get("d") == b"kept"
