"""Store, shelve, dbm and Structures arguments: review 13 (issues #4 and #7)."""

from __future__ import annotations

import dbm.dumb as dbm_dumb
import math
import os
import subprocess
import sys

import pytest

from kv_backend import DB, Store
from kv_backend import dbm as kv_dbm
from kv_backend import shelve as kv_shelve
from kv_backend.errors import (
    ConfigurationError,
    DatabaseClosedError,
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    NotAnIntegerError,
)
from kv_backend.structures import CommandError, Structures, WrongTypeError

LONG = "b" * 70_000  # longer than any key can be, and sorting between "b" and "c"


@pytest.fixture
def store(tmp_path):
    with Store(str(tmp_path / "s")) as s:
        s.update({"a": 1, "b": 2, "c": 3})
        yield s


def test_store_views_take_a_start_longer_than_any_key(store):
    """``start=`` is a bound, not a stored key: one over the key size limit raised
    KeyTooLargeError (a prefix that long already matched nothing); it now bounds the walk."""
    assert list(store.keys(start=LONG)) == ["c"]
    assert list(store.keys(start=LONG, reverse=True)) == ["b", "a"]
    assert list(store.items(start=LONG)) == [("c", 3)]
    assert list(store.values(start=LONG, reverse=True)) == [2, 1]
    assert len(store.keys(start=LONG)) == 1
    assert list(reversed(store.keys(start=LONG))) == ["c"]
    assert list(store.keys(prefix=LONG)) == []
    assert list(store.keys(prefix="b", start=LONG)) == []
    assert list(store.keys(prefix="b", start=LONG, reverse=True)) == ["b"]


def test_db_scans_take_bounds_of_any_length_and_refuse_non_bytes(store):
    """``DB.keys``/``items`` accepted a long bytes prefix but not a long start, nor a long
    bytearray prefix (KeyTooLargeError); and a falsy non-bytes prefix (``0``, ``""``) silently
    meant no prefix while ``"a"`` was refused. Any length is a bound now; the type is checked."""
    db: DB = store.db
    long = LONG.encode()
    assert list(db.keys(start=long)) == [b"c"]
    assert list(db.keys(start=bytearray(long), reverse=True)) == [b"b", b"a"]
    assert list(db.keys(prefix=bytearray(long))) == []
    assert list(db.keys(prefix=memoryview(b"b"))) == [b"b"]
    assert [k for k, _ in db.items(start=long)] == [b"c"]
    assert list(db.keys(prefix=None)) == [b"a", b"b", b"c"]  # None is no prefix, as b"" is
    for bad in (0, "", "a", []):
        with pytest.raises(InvalidKeyError, match="prefix must be bytes"):
            list(db.keys(prefix=bad))
    with pytest.raises(InvalidKeyError, match="start must be bytes"):
        list(db.keys(start=""))


@pytest.fixture
def structures(tmp_path):
    with Structures(str(tmp_path / "r")) as st:
        st.hset("h", {"a": 1})
        st.sadd("s", "a", "b")  # not an intset: walked with the count
        st.sadd("i", 1, 2)  # an intset: answered whole, the count unused
        st.zadd("z", {"a": 0})  # a listpack: answered whole, the count unused
        yield st


@pytest.mark.parametrize("count", [0, -1, "0", b"-5"])
def test_scans_refuse_a_count_below_one(structures, count):
    """``COUNT 0`` and negative counts are "ERR syntax error" in Redis (and kvb serve); in-process
    ``scan``/``hscan``/``sscan``/``zscan`` took them as 1. They raise CommandError now, also
    where a small set is answered whole; a missing key is still an empty result, as in Redis."""
    st = structures
    calls = [
        lambda: st.scan(0, count=count),
        lambda: st.hscan("h", 0, count=count),
        lambda: st.sscan("s", 0, count=count),
        lambda: st.sscan("i", 0, count=count),
        lambda: st.zscan("z", 0, count=count),
    ]
    for call in calls:
        with pytest.raises(CommandError, match="syntax error: a scan's count must be 1 or more"):
            call()
    assert st.hscan("nokey", 0, count=count) == (0, {})
    assert st.sscan("nokey", 0, count=count) == (0, [])
    assert st.zscan("nokey", 0, count=count) == (0, [])


def test_scans_refuse_a_count_that_is_no_integer_even_when_unused(structures):
    """A count of the wrong type was ignored where a small set is answered whole."""
    for call in (lambda: structures.sscan("i", 0, count=1.5), lambda: structures.zscan("z", 0, count="x")):
        with pytest.raises(NotAnIntegerError):
            call()
    assert structures.zscan("z", 0, count=1) == (0, [(b"a", 0.0)])


def test_store_incr_of_a_float_by_an_int_beyond_the_float_range(store):
    """A float and an int too large for a float (either one stored) raised a bare OverflowError
    from ``incr``; it is the documented InvalidValueError now, and nothing is written."""
    store["f"] = 1.5
    store["huge"] = 10**400
    with pytest.raises(InvalidValueError, match="float range is exceeded"):
        store.incr("f", 10**5000)  # (too long even for repr())
    with pytest.raises(InvalidValueError, match="float range is exceeded"):
        store.incr("huge", 1.5)
    assert (store["f"], store["huge"]) == (1.5, 10**400)
    assert store.incr("huge", 1) == 10**400 + 1  # int arithmetic has no such limit


def test_dbm_setdefault_without_default_stores_empty_bytes_unlike_dbm_dumb(tmp_path):
    """A documented difference: the default ``default`` is ``b""`` (dbm.gnu's and dbm.ndbm's);
    dbm.dumb inherits MutableMapping's ``None`` and refuses to store it."""
    with kv_dbm.open(str(tmp_path / "kv"), "c") as db, dbm_dumb.open(str(tmp_path / "dumb"), "c") as dumb:
        assert db.setdefault(b"a") == b"" and db[b"a"] == b""
        with pytest.raises(TypeError):
            dumb.setdefault(b"a")
        assert b"a" not in dumb
        for d in (db, dumb):
            d[b"k"] = b"v"
            assert d.setdefault(b"k") == b"v"


def test_shelf_writeback_sync_does_not_write_back_entries_only_read(tmp_path):
    """With writeback, sync() wrote back every cached entry, also those this process had only
    read: another process's write to such a key was undone, and a key it had deleted came back.
    Only the entries whose pickle changed since they were read or stored are written back now."""
    path = str(tmp_path / "sh")
    with kv_shelve.open(path, writeback=True) as a, kv_shelve.open(path) as b:
        a.update({"read": [1], "mutated": {"n": 1}, "gone": 1, "set": [0]})
        a.sync()
        assert (a["read"], a["mutated"], a["gone"]) == ([1], {"n": 1}, 1)  # cached, as read
        a["set"] = [5]
        b["read"] = ["from b"]
        del b["gone"]
        b["set"] = ["from b"]
        a["mutated"]["n"] = 2  # a change only the cache holds
        a.sync()
        assert b["read"] == ["from b"] and "gone" not in b and b["set"] == ["from b"]
        assert b["mutated"] == {"n": 2}
        assert a["read"] == ["from b"]  # sync emptied the cache: a sees b's write now
        a["read"].append(2)  # read, then changed: written back at close
        a.setdefault("new", []).append(1)
    with kv_shelve.open(path, "r") as c:
        assert (c["read"], c["new"]) == (["from b", 2], [1])


def test_shelf_writeback_entry_of_another_process_kept_across_sync(tmp_path):
    """The same with the other writer in another process."""
    path = str(tmp_path / "sh")
    with kv_shelve.open(path, writeback=True) as a:
        a["k"] = "old"
        a.sync()
        assert a["k"] == "old"
        code = f"import kv_backend.shelve as s\nwith s.open({path!r}) as b: b['k'] = 'new'"
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        a.sync()
        assert a["k"] == "new"


@pytest.mark.parametrize("count", [-1, b"-3"])
def test_stream_reads_take_a_negative_count_as_every_entry(tmp_path, count):
    """Redis (and kvb serve) read every entry for ``XREAD``/``XREADGROUP ... COUNT`` below 1; in-process
    a negative count gave ``xread`` no entry (with ``block`` it then waited for nothing) and
    ``xreadgroup`` a single one. Both read every entry now, as for None and 0."""
    with Structures(str(tmp_path / "r")) as st:
        st.xadd("x", {"f": "1"}, id="1-0")
        st.xadd("x", {"f": "2"}, id="2-0")
        ids = [b"1-0", b"2-0"]
        assert [i for i, _ in st.xread({"x": "0"}, count=count)[0][1]] == ids
        assert [i for i, _ in st.xread({"x": "0"}, count=count, block=1)[0][1]] == ids
        st.xgroup_create("x", "g", id="0")
        assert [i for i, _ in st.xreadgroup("g", "c", {"x": ">"}, count=count)[0][1]] == ids
        assert [i for i, _ in st.xreadgroup("g", "c", {"x": "0"}, count=count)[0][1]] == ids
        assert st.xrange("x", count=count) == []  # XRANGE's COUNT below 1 is no entry, as in Redis


@pytest.mark.parametrize("path", ["dir\x00name", b"dir\x00name"])
def test_store_path_with_a_nul_is_a_configuration_error(tmp_path, path):
    """A path holding a NUL character raised a bare ValueError ("embedded null byte") from deep in
    the engine; it is the documented ConfigurationError (still a ValueError), naming the path."""
    with pytest.raises(ConfigurationError, match="NUL character"):
        Store(path)
    with pytest.raises(ValueError):  # kv_backend.dbm raises what the stdlib's dbm modules raise
        kv_dbm.open(os.path.join(str(tmp_path), "a\x00b"), "c")


@pytest.mark.parametrize("flag", ["r", "w", "c", "n"])
def test_dbm_and_shelve_open_of_an_empty_path_say_it_is_empty(flag):
    """``open("")`` raised "cannot create the database : No such file or directory" (or "no database
    at ;"), naming an empty path; it still raises DatabaseNotFoundError (a FileNotFoundError, what
    dbm.gnu raises), and says the path is empty."""
    with pytest.raises(kv_dbm.DatabaseNotFoundError, match="the database path is empty"):
        kv_dbm.open("", flag)
    with pytest.raises(kv_dbm.DatabaseNotFoundError, match="the database path is empty"):
        kv_shelve.open(b"", flag)


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ([("a", 1, 2)], r"element #0 \(tuple of length 3\) is not one"),
        ([("a", 1), 5], r"element #1 \(int\) is not one"),
        (5, "a mapping or an iterable of .key, value. pairs, not int"),
        (None, "not NoneType"),
    ],
)
def test_update_with_something_other_than_pairs_says_what_is_wrong(tmp_path, arg, message):
    """``update([("a", 1, 2)])`` raised "too many values to unpack (expected 2)" and ``update(5)``
    "'int' object is not iterable", from inside the front end; every front end now raises
    InvalidArgumentError (both the ValueError and the TypeError dict.update raises) naming the
    element, and writes nothing."""
    with (
        Store(str(tmp_path / "s")) as s,
        kv_shelve.open(str(tmp_path / "sh")) as sh,
        kv_dbm.open(str(tmp_path / "d"), "c") as d,
    ):
        for front in (s, s.db, sh, d):
            with pytest.raises(InvalidArgumentError, match=message) as info:
                front.update(arg)
            assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
            assert len(front) == 0


def test_store_set_many_with_something_other_than_pairs_says_what_is_wrong(store):
    """``set_many`` raised the same bare unpacking errors as ``update``."""
    with pytest.raises(InvalidArgumentError, match=r"element #1 \(str of length 3\) is not one"):
        store.set_many([("x", 1), "abc"], ttl=10)
    with pytest.raises(InvalidArgumentError, match="not int"):
        store.set_many(5)
    assert "x" not in store
    store.set_many(iter([("x", 1)]), ttl=10)
    assert store["x"] == 1 and store.ttl("x") > 0


def test_set_and_getex_refuse_an_exat_that_is_not_a_positive_time(tmp_path):
    """``set(..., exat=0)`` stored a key that never expires (the engine's 0 means "never"), and a
    negative exat raised the engine's error about ``expires_at`` "(0 for never)"; ``getex(exat=0)``
    deleted the key. Redis refuses both ("ERR invalid expire time"): so do they now, writing nothing."""
    with Structures(str(tmp_path / "r")) as st:
        st.set("k", "v")
        for exat in (0, -5, 0.0):
            with pytest.raises(CommandError, match="invalid expire time in 'set' command"):
                st.set("k", "other", exat=exat)
            with pytest.raises(CommandError, match="invalid expire time in 'getex' command"):
                st.getex("k", exat=exat)
        assert st.get("k") == b"v" and st.ttl("k") is None
        with pytest.raises(InvalidArgumentError, match="exat must be a number"):
            st.getex("missing", exat="soon")  # checked before the key is looked up, as ex is
        st.set("k", "v", exat=1)  # a past time stores the key already expired, as in Redis
        assert st.get("k") is None


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_expiry_arguments_that_are_not_finite_name_the_argument(tmp_path, bad):
    """A NaN or infinite ``ex``/``exat``/``expire``/``expireat`` argument raised the engine's error
    about its own ``ttl``/``expires_at`` ("0 for never", wrong for Structures); it names the
    argument now (the same ConfigurationError, a ValueError)."""
    with Structures(str(tmp_path / "r")) as st:
        st.set("k", "v")
        calls = {
            "ex": lambda: st.set("k", "v", ex=bad),
            "exat": lambda: st.set("k", "v", exat=bad),
            "the expire time": lambda: st.expire("k", bad),
            "the Unix time to expire at": lambda: st.expireat("k", bad),
        }
        for what, call in calls.items():
            with pytest.raises(ConfigurationError, match=f"^{what} must be a finite number of seconds"):
                call()
        assert st.get("k") == b"v" and st.ttl("k") is None


def test_blocking_calls_take_a_timeout_beyond_the_float_range(tmp_path):
    """A timeout (or xread's block) given as an int too large for a float raised a bare
    OverflowError; it is as long as an infinite wait now, and a hugely negative one is
    "ERR timeout is negative" like any negative timeout."""
    with Structures(str(tmp_path / "r")) as st:
        st.rpush("l", "a")
        st.xadd("x", {"f": "v"}, id="1-0")
        assert st.blpop(["l"], timeout=10**400) == (b"l", b"a")
        assert st.xread({"x": "0"}, block=10**400)[0][0] == b"x"
        with pytest.raises(CommandError, match="timeout is negative"):
            st.blpop(["l"], timeout=-(10**400))
        with pytest.raises(CommandError, match="timeout is negative"):
            st.xread({"x": "0"}, block=-(10**400))


def test_iter_keys_takes_after_as_any_name(tmp_path):
    """``iter_keys(after="a")`` raised "can't concat str to bytes": ``after`` is a key name, which
    every other argument takes as bytes, str or a number."""
    with Structures(str(tmp_path / "r")) as st:
        for name in ("a", "b", "1", "2"):
            st.set(name, "v")
        assert list(st.iter_keys(after="a")) == [b"b"]
        assert list(st.iter_keys(after=1)) == [b"2", b"a", b"b"]
        assert list(st.iter_keys(after=b"a" * 70_000)) == [b"b"]


def test_spop_and_srandmember_take_a_count_as_the_commands_do(tmp_path):
    """The in-process methods follow the Redis commands' arguments (docs/redis.md), as hrandfield()
    and zrandmember() take a count; spop() and srandmember() took none (a TypeError)."""
    with Structures(str(tmp_path / "r")) as st:
        st.sadd("s", "a", "b", "c")
        picked = st.srandmember("s", 2)
        assert len(picked) == 2 and set(picked) <= {b"a", b"b", b"c"} and len(set(picked)) == 2
        assert sorted(st.srandmember("s", 10)) == [b"a", b"b", b"c"]
        assert len(st.srandmember("s", -5)) == 5 and st.srandmember("s", 0) == []
        assert st.srandmember("missing", -3) == [] and st.srandmember("s") in {b"a", b"b", b"c"}
        popped = st.spop("s", 2)
        assert len(popped) == 2 and st.smembers("s") == {b"a", b"b", b"c"} - set(popped)
        remaining = list(st.smembers("s"))
        assert st.spop("s", "5") == remaining and st.scard("s") == 0
        assert st.spop("s", 1) == [] and st.spop("missing", 2) == [] and st.spop("s") is None
        with pytest.raises(CommandError, match="must be positive"):
            st.spop("s", -1)
        st.set("str", "v")
        with pytest.raises(WrongTypeError):
            st.spop("str", 0)


def test_store_views_raise_after_close_whatever_is_asked(tmp_path):
    """After close() every call raises (docs/store.md), and ``1 in store`` does; but ``in`` on a
    keys or items view answered False after close for a key of the wrong type, a pair that is no
    pair, or a key outside the view's bounds."""
    s = Store(str(tmp_path / "s"))
    s["a"] = 1
    keys, items, bounded = s.keys(), s.items(), s.keys(prefix="b")
    s.close()
    for probe in (
        lambda: 1 in keys,
        lambda: "a" in bounded,
        lambda: 5 in items,
        lambda: (1, 1) in items,
        lambda: ("a", 1) in s.items(prefix="b"),
        lambda: "a" in keys,
    ):
        with pytest.raises(DatabaseClosedError):
            probe()
