"""kv_backend.structures.Structures used directly from Python with arguments of every type a
Python program may pass: failures are the project's errors, and what is stored is what the
argument stands for."""

from __future__ import annotations

import pytest

from kv_backend.errors import ConfigurationError, InvalidArgumentError, KVError, UnencodableTextError
from kv_backend.structures import CommandError, Structures


@pytest.fixture
def s(store_path):
    with Structures(store_path) as st_:
        yield st_


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set("\udc80", "v"),
        lambda s: s.set("k", "\udc80"),
        lambda s: s.get("\udc80"),
        lambda s: s.hset("h", {"\udc80": "v"}),
        lambda s: s.rpush("l", "ok", "\udc80"),
        lambda s: s.zadd("z", {"\udc80": 1}),
        lambda s: s.sadd("s", "\udc80"),
    ],
)
def test_a_str_with_lone_surrogates_raises_a_project_error_and_writes_nothing(s, call):
    """UTF-8 cannot encode a lone surrogate: the str raised Python's bare UnicodeEncodeError, outside
    kv_backend.errors (Store raises KeyEncodingError, dbm UnencodableKeyError). It raises
    UnencodableTextError: still the UnicodeEncodeError redis-py raises, and a KVError."""
    with pytest.raises(UnencodableTextError) as info:
        call(s)
    assert isinstance(info.value, UnicodeEncodeError) and isinstance(info.value, KVError)
    assert "surrogates" in str(info.value)
    assert s.dbsize() == 0


def test_an_int_too_long_to_write_as_text_raises_a_project_error(s):
    """Python refuses to turn an int of more than 4300 digits into text: that ValueError escaped
    as it was. It is an InvalidArgumentError (also a ValueError) that says what to do."""
    with pytest.raises(InvalidArgumentError, match="digits") as info:
        s.set("k", 10**5000)
    assert isinstance(info.value, ValueError)
    with pytest.raises(InvalidArgumentError):
        s.rpush(10**5000, "v")
    assert s.dbsize() == 0


class _Float(float):
    """A float subclass with its own repr, as numpy's float64 has (``np.float64(1.5)``)."""

    def __repr__(self) -> str:
        return f"F({float(self)!r})"


class _Int(int):
    def __str__(self) -> str:
        return f"I({int(self)})"

    __repr__ = __str__


def test_a_number_of_a_subclass_of_float_or_int_is_stored_as_the_number(s):
    """A float or int subclass was written as its repr or str: numpy's float64 (a float) was stored
    as b"np.float64(1.5)" under numpy 2, which no read or INCRBYFLOAT takes for a number. It is
    written as the number's own text, as a plain float or int is."""
    s.set("f", _Float(1.5))
    s.hset("h", {"f": _Float(0.1), _Int(7): _Int(3)})
    s.rpush("l", _Int(-2), _Float(1e300))
    assert s.get("f") == b"1.5"
    assert s.incrbyfloat("f", 1) == 2.5
    assert s.hgetall("h") == {b"f": b"0.1", b"7": b"3"}
    assert s.hincrby("h", "7", 1) == 4
    assert s.lrange("l", 0, -1) == [b"-2", b"1e+300"]
    # An increment given as such a float was refused as "not a valid float".
    assert s.incrbyfloat("f", _Float(0.25)) == 2.75
    assert s.hincrbyfloat("h", "f", _Float(0.2)) == pytest.approx(0.3)
    assert s.hget("h", "f") == b"0.3"


def test_reads_that_read_several_records_work_on_a_read_only_store(store_path):
    """LCS, PFCOUNT, DUMP and SORT without STORE only read (Redis serves the first three on a
    read-only replica), but they took the write lock for one consistent view, which a store opened
    with read_only=True cannot take: they raised ReadOnlyError ("open it writable to change it")."""
    with Structures(store_path) as w:
        w.set("a", "ohmytext")
        w.set("b", "mynewtext")
        w.pfadd("p", "x", "y", "z")
        w.rpush("l", "3", "1", "2")
        with Structures(store_path, read_only=True) as r:
            assert r.lcs("a", "b") == b"mytext"
            assert r.pfcount("p") == 3
            assert r.dump("l") == w.dump("l")
            assert r.sort("l") == [b"1", b"2", b"3"]
            w.rpush("l", "0")  # another process's write is seen by the next read
            assert r.sort("l", desc=True) == [b"3", b"2", b"1", b"0"]
            assert r.pfcount("p") == w.pfcount("p") == 3


def test_a_read_only_stores_read_of_several_records_runs_again_after_another_write(store_path):
    """Without the write lock, a read that another process's write overtook runs again, so that it
    returns one consistent view rather than records from before and after the change."""
    with Structures(store_path) as w, Structures(store_path, read_only=True) as r:
        w.set("a", "old")
        calls = []

        def read():
            calls.append(1)
            first = r.get("a")
            if len(calls) == 1:
                w.set("a", "new")  # lands between the two reads of the first run
            return first, r.get("a")

        assert r._read_consistent(read) == (b"new", b"new")
        assert len(calls) == 2


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.set("k", "new", ex=100, keepttl=True),
        lambda s: s.set("k", "new", exat=2_000_000_000, keepttl=True),
        lambda s: s.set("k", "new", ex=100, exat=2_000_000_000),
        lambda s: s.getex("k", ex=100, persist=True),
        lambda s: s.getex("k", exat=2_000_000_000, persist=True),
        lambda s: s.getex("k", ex=100, exat=2_000_000_000),
    ],
)
def test_expiry_options_that_exclude_each_other_are_refused(s, call):
    """SET's KEEPTTL with EX or EXAT, and GETEX's EX, EXAT and PERSIST together, are a syntax error
    in Redis (and kvb serve); in-process one of them silently won: set(ex=100, keepttl=True) gave
    the key a new TTL, getex(ex=100, persist=True) one too. They raise and change nothing."""
    s.set("k", "old", ex=50)
    with pytest.raises(CommandError, match="syntax error"):
        call(s)
    assert s.get("k") == b"old" and 49 < s.ttl("k") <= 50


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.hset("h", [("f", "v"), ("g",)]),
        lambda s: s.hset("h", "fv"),
        lambda s: s.hset_pairs("h", [("f", "v"), ("g",)]),
        lambda s: s.mset(None),
        lambda s: s.mset([("a", "1"), "bc"]),
        lambda s: s.msetnx(None),
        lambda s: s.zadd("z", None),
        lambda s: s.zadd("z", [("a", 1), ("b", 2, 3)]),
        lambda s: s.zadd("z", ["a1"]),
        lambda s: s.xadd("x", None),
        lambda s: s.xadd("x", ["fv"]),
        lambda s: s.xadd("x", [("f", "v"), ("g",)]),
        lambda s: s.xread(None),
        lambda s: s.xread(["x"]),
        lambda s: s.xreadgroup("g", "c", None),
        lambda s: s.xreadgroup("g", "c", [("x",)], block=1),
        lambda s: s.geoadd("g", None),
        lambda s: s.blpop(None, timeout=0.01),
        lambda s: s.bzmpop(None, timeout=0.01),
        lambda s: s.lmpop(None),
        lambda s: s.zunion(None),
    ],
)
def test_a_mapping_pairs_or_names_argument_of_a_wrong_shape_is_an_invalid_argument(s, call):
    """A mapping or pairs argument that is None, a str, or holds something other than pairs, and a
    list of names that is None, raised Python's AttributeError, ValueError ("not enough values to
    unpack") or TypeError ("'NoneType' object is not iterable"), outside kv_backend.errors; a
    2-character str among pairs was even read as one pair. They raise InvalidArgumentError (a
    TypeError) naming the argument, and nothing is written."""
    with pytest.raises(InvalidArgumentError):
        call(s)
    assert s.dbsize() == 0


def test_a_misspelt_option_is_a_configuration_error_naming_the_options(store_path):
    """Structures(path, sync_mode=...) raised Python's TypeError from DB.__init__ ("unexpected
    keyword argument"), where Store names the options in a ConfigurationError; so does Structures."""
    with pytest.raises(ConfigurationError, match=r"'sync_mode'.*auto_merge, max_file_size, read_only, sync"):
        Structures(store_path, sync_mode="always")
    with Structures(store_path, sync="always", max_file_size=1 << 20) as s:
        assert s.db.sync_mode == "always"


def test_sort_with_get_none_means_no_get_pattern_as_in_redis_py(s):
    """redis-py's sort() takes get=None for "no GET"; here it raised Python's TypeError ('NoneType'
    object is not iterable)."""
    s.rpush("l", "2", "1")
    assert s.sort("l", get=None) == [b"1", b"2"]


def test_xclaim_and_xautoclaim_take_min_idle_time_by_the_name_the_docs_give(s):
    """docs/redis.md named the argument min_idle_ms, which as a keyword raised TypeError
    ("unexpected keyword argument"); the methods take redis-py's min_idle_time."""
    s.xadd("x", {"f": "v"}, id="1-1")
    s.xgroup_create("x", "g", id="0")
    s.xreadgroup("g", "a", {"x": ">"})
    assert s.xclaim("x", "g", "b", min_idle_time=0, ids=["1-1"], justid=True) == [b"1-1"]
    assert s.xautoclaim("x", "g", "c", min_idle_time=0, justid=True)[1] == [b"1-1"]
