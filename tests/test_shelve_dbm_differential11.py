"""kv_backend.shelve and kv_backend.dbm against the stdlib's shelve and dbm.dumb (#4).

First, focused regression tests for each difference found. Then two
differential state machines that run the same random operations on one of
this project's objects and on the stdlib's, and compare what every call
returns or raises, and what is stored after a close and a reopen:

* ``ShelfDiff``: ``kv_backend.shelve.open(path_a, flag, protocol=P, writeback=W)``
  against ``shelve.Shelf`` on the interpreter's default dbm (``dbm.dumb``
  here; ``dbm.sqlite3`` too where this Python has it);
* ``DbmDiff``: ``kv_backend.dbm.open(path_a, flag)`` against
  ``dbm.dumb.open(path_b, flag)``.

Operations: set, ``[]``, del, ``in``, ``len``, iteration, ``keys()``,
``items()``, ``values()``, ``get``, ``setdefault``, ``pop``, ``popitem``,
``update`` (also one with a bad pair), ``clear``, ``sync``, ``close`` and a
reopen with each flag; with writeback, mutating a list read from the shelf
before a sync or a reopen; ``str`` and ``bytes`` keys (non-ASCII, lone
surrogates, empty, wrong types) and values (unpicklable for a shelf); every
operation after close. Where the stdlib raises, ours must raise an instance
of the same type (it may also be a ``KVError``); the differences that
docs/store.md lists are checked as documented there. Iteration order is
compared as sets: ``dbm.dumb`` iterates in hash order, ours in byte order.
"""

from __future__ import annotations

import copy
import dbm.dumb
import errno
import importlib
import importlib.util
import pickle
import shelve as std_shelve
import shutil
import tempfile
import threading
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

import kv_backend.dbm as kv_dbm
import kv_backend.shelve as kv_shelve
from kv_backend.errors import KeyTooLargeError
from kv_backend.serializers import PickleDeserializationError, PickleSerializationError


def test_clear_of_an_empty_read_only_database_does_nothing_as_in_the_stdlib(tmp_path):
    """clear() on an empty "r" database or shelf raised ReadOnlyDatabaseError; the stdlib's
    clear() removes nothing there and returns. A non-empty one still raises (as the stdlib's)."""
    for name, opener in (
        ("kv", kv_dbm.open),
        ("dumb", dbm.dumb.open),
        ("kvshelf", kv_shelve.open),
        ("shelf", lambda p, f: std_shelve.Shelf(dbm.dumb.open(p, f))),  # noqa: SIM115
    ):
        path = str(tmp_path / name)
        opener(path, "c").close()
        with opener(path, "r") as ro:
            ro.clear()
            assert len(ro) == 0
        with opener(path, "c") as rw:
            rw["k"] = b"v"
        with opener(path, "r") as ro:
            with pytest.raises(OSError):
                ro.clear()
            assert len(ro) == 1
        closed = opener(path, "r")
        closed.close()
        with pytest.raises((OSError, ValueError)):  # use after close still raises
            closed.clear()


def test_in_with_a_key_of_another_type_after_close_raises(tmp_path):
    """``1 in db`` answered False on a closed database or shelf, where every other use after
    close() raises (dbm.dumb: its error; shelve: ValueError); it now raises the same error
    as ``b"k" in db``. On an open one it is still simply False."""
    with kv_dbm.open(str(tmp_path / "d"), "c") as d:
        assert 1 not in d
    with pytest.raises(kv_dbm.ClosedError):
        1 in d  # noqa: B015
    dumb = dbm.dumb.open(str(tmp_path / "dumb"), "c")  # noqa: SIM115
    dumb.close()
    with pytest.raises(OSError):  # what the stdlib does
        1 in dumb  # noqa: B015
    with kv_shelve.open(str(tmp_path / "s")) as s:
        assert 1 not in s
    for key in (1, b"k", None):
        with pytest.raises(ValueError, match="closed shelf"):
            key in s  # noqa: B015


@pytest.mark.parametrize("flag", ["r", "w"])
def test_opening_a_missing_database_raises_file_not_found_as_dbm_dumb(tmp_path, flag):
    """dbm.dumb.open(missing, "r" or "w") raises FileNotFoundError; kv_backend.dbm.open raised
    only its error (an OSError), which ``except FileNotFoundError:`` missed. It is now both."""
    with pytest.raises(FileNotFoundError):
        dbm.dumb.open(str(tmp_path / "dumb"), flag)  # noqa: SIM115
    for open_ in (kv_dbm.open, kv_shelve.open):
        with pytest.raises(FileNotFoundError, match="use flag 'c' or 'n'") as info:
            open_(str(tmp_path / "kv"), flag)
        assert isinstance(info.value, kv_dbm.DatabaseNotFoundError)
        assert isinstance(info.value, kv_dbm.error) and info.value.errno == errno.ENOENT
    assert not (tmp_path / "kv").exists()


@pytest.mark.parametrize("data", [b"", pickle.dumps([1, 2])[:-2], b"x"])
def test_an_unreadable_value_raises_one_error_whatever_the_stdlib_raises(tmp_path, data):
    """Documented: the stdlib's shelf raises EOFError or UnpicklingError, as unpickling did;
    ours always PickleDeserializationError (a ValueError and an UnpicklingError)."""
    for opener, path in ((kv_dbm.open, tmp_path / "kv"), (dbm.dumb.open, tmp_path / "dumb")):
        with opener(str(path), "c") as d:
            d[b"k"] = data
    with (
        std_shelve.Shelf(dbm.dumb.open(str(tmp_path / "dumb"), "r")) as theirs,
        pytest.raises((EOFError, pickle.UnpicklingError)),
    ):
        theirs["k"]
    with kv_shelve.open(str(tmp_path / "kv"), "r") as ours:
        with pytest.raises(pickle.UnpicklingError) as info:
            ours["k"]
        assert isinstance(info.value, PickleDeserializationError) and isinstance(info.value, ValueError)


def test_writing_while_iterating_a_shelf_sees_the_keys_as_they_were_like_the_stdlib(tmp_path):
    """The stdlib's shelf iterates over its dbm's keys() (a list): the loop body may write and
    the loop ends. Ours walked the live keys, so a loop that added a key after each one it met
    never ended (it wrote keys until one was over 65,536 bytes); it now walks a snapshot too."""
    results = []
    for s in (
        std_shelve.Shelf(dbm.dumb.open(str(tmp_path / "dumb"), "c")),  # noqa: SIM115
        kv_shelve.open(str(tmp_path / "kv")),
    ):
        with s:
            s.update({"a": 1, "b": 2})
            seen = []
            for k in s:
                seen.append(k)
                s[k + "x"] = 0
                assert len(seen) < 10, "the loop meets the keys it adds"
            results.append((sorted(seen), sorted(s)))
    assert results[0] == results[1] == (["a", "b"], ["a", "ax", "b", "bx"])


def test_writing_while_looping_over_dbm_keys_ends(tmp_path):
    """Documented: iterating a Database walks its live keys (dbm.dumb raises RuntimeError when it
    changes during the loop); a loop over keys(), a list, may write and ends."""
    with kv_dbm.open(str(tmp_path / "kv"), "c") as d:
        d.update({b"a": b"1", b"b": b"2"})
        for k in d.keys():  # noqa: SIM118 - the documented snapshot
            d[k + b"x"] = d[k]
        assert d.keys() == [b"a", b"ax", b"b", b"bx"]
        seen = []
        for k in d:  # the live walk meets keys added after the ones it has passed
            seen.append(k)
            if len(seen) == 20:
                break
            d[k + b"y"] = b"new"
        assert len(seen) == 20


@pytest.mark.parametrize("flag", ["c", "n"])
def test_creating_a_database_in_a_missing_directory_raises_file_not_found_as_dbm_dumb(tmp_path, flag):
    """dbm.dumb.open("missing/db", "c") raises FileNotFoundError; ours raised only its error."""
    with pytest.raises(FileNotFoundError):
        dbm.dumb.open(str(tmp_path / "missing" / "dumb"), flag)  # noqa: SIM115
    for open_ in (kv_dbm.open, kv_shelve.open):
        with pytest.raises(kv_dbm.DatabaseNotFoundError, match="cannot create the database") as info:
            open_(str(tmp_path / "missing" / "kv"), flag)
        assert isinstance(info.value, FileNotFoundError) and info.value.errno == errno.ENOENT


# -- differential state machines ------------------------------------------------------------------


def outcome(fn: Any) -> tuple[str, Any]:
    """``("ok", result)`` or ``("exc", exception)``: what calling ``fn`` did."""
    try:
        return ("ok", fn())
    except Exception as exc:
        return ("exc", exc)


def same(ours: tuple[str, Any], theirs: tuple[str, Any], what: str, norm: Any = None) -> None:
    """Both calls returned equal results (after ``norm``), or ours raised an instance of the stdlib's type."""
    if theirs[0] == "exc":
        assert ours[0] == "exc", f"{what}: the stdlib raised {theirs[1]!r}, ours returned {ours[1]!r}"
        if SQLITE3_ERROR is not None and type(theirs[1]) is SQLITE3_ERROR:
            # dbm.sqlite3 raises its own class; ours raises kv_backend.dbm.error, which the
            # portable ``except dbm.error:`` catches as well (docs/store.md lists it).
            assert isinstance(ours[1], kv_dbm.error), f"{what}: stdlib {theirs[1]!r}, ours {ours[1]!r}"
            return
        assert isinstance(ours[1], type(theirs[1])), (
            f"{what}: the stdlib raised {theirs[1]!r}, ours {ours[1]!r} is not a {type(theirs[1]).__name__}"
        )
        return
    assert ours[0] == "ok", f"{what}: the stdlib returned {theirs[1]!r}, ours raised {ours[1]!r}"
    a, b = ours[1], theirs[1]
    if norm is not None:
        a, b = norm(a), norm(b)
    assert a == b, f"{what}: ours {a!r} != stdlib {b!r}"


def by_repr(values: Any) -> list[str]:
    """Values (unhashable, unorderable) compared as a multiset."""
    return sorted(repr(v) for v in values)


def as_bytes(value: Any) -> Any:
    """What a dbm stores for ``value`` (setdefault returns it as given in dbm.dumb, stored in ours)."""
    return (
        value.encode() if isinstance(value, str) else bytes(value) if isinstance(value, bytearray) else value
    )


STD_SHELF_DBMS = ["dbm.dumb"] + (["dbm.sqlite3"] if importlib.util.find_spec("dbm.sqlite3") else [])
#: dbm.sqlite3's error class (Python 3.13+), or None where this Python has no dbm.sqlite3.
SQLITE3_ERROR = importlib.import_module("dbm.sqlite3").error if len(STD_SHELF_DBMS) > 1 else None
FLAGS = st.sampled_from(["r", "w", "c", "n"])
SHELF_KEYS = st.sampled_from(["a", "b", "ab", "é", "✓x", "\U0001f600"])
BAD_SHELF_KEYS = st.sampled_from([1, None, b"a", "\ud800", "x\udcff"])
SCALARS = st.none() | st.integers(-3, 3) | st.text(alphabet="ab\u00e9", max_size=2) | st.binary(max_size=2)
SHELF_VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=2) | st.tuples(inner), max_leaves=3
)


class ShelfDiff(RuleBasedStateMachine):
    """``kv_backend.shelve.open`` against ``shelve.open`` on a stdlib dbm, same operations on both."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvb-shelfdiff-")
        self.ours: Any = None
        self.theirs: Any = None

    @initialize(
        mod=st.sampled_from(STD_SHELF_DBMS),
        writeback=st.booleans(),
        protocol=st.sampled_from([None, 0, 2, pickle.HIGHEST_PROTOCOL]),
    )
    def start(self, mod: str, writeback: bool, protocol: int | None) -> None:
        self.mod, self.writeback, self.protocol = importlib.import_module(mod), writeback, protocol
        self.open("c")

    def open(self, flag: str) -> None:
        self.flag = flag
        self.ours = kv_shelve.open(f"{self.dir}/a", flag, protocol=self.protocol, writeback=self.writeback)
        std_db = self.mod.open(f"{self.dir}/b", flag)
        self.theirs = std_shelve.Shelf(std_db, protocol=self.protocol, writeback=self.writeback)

    def teardown(self) -> None:
        for s in (self.ours, self.theirs):
            if s is not None:
                s.cache.clear()
                s.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, what: str, fn: Any, norm: Any = None) -> None:
        theirs = outcome(lambda: fn(self.theirs))
        same(outcome(lambda: fn(self.ours)), theirs, what, norm)
        if theirs[0] == "exc":
            self.forget_failed_writes()

    def forget_failed_writes(self) -> None:
        """Documented: the stdlib caches a value before it fails to store it ("r", a bad key); ours not."""
        self.theirs.cache = copy.deepcopy(self.ours.cache)

    def both_bad_key(self, what: str, fn: Any, contains: bool = False) -> None:
        """Documented: a non-str key raises TypeError (the stdlib AttributeError); ``in`` is False."""
        ours, theirs = outcome(lambda: fn(self.ours)), outcome(lambda: fn(self.theirs))
        if theirs[0] == "exc" and isinstance(theirs[1], AttributeError):
            if contains:
                assert ours == ("ok", False), f"{what}: ours {ours!r}"
            else:
                assert ours[0] == "exc" and isinstance(ours[1], TypeError), f"{what}: ours {ours!r}"
        else:
            same(ours, theirs, what)
        self.forget_failed_writes()

    def close_both(self) -> None:
        """Close both, and check what is stored is the same."""
        theirs = outcome(self.theirs.close)
        ours = outcome(self.ours.close)
        if theirs[0] == "exc" and self.flag == "r" and self.writeback:
            assert isinstance(theirs[1], OSError)  # documented: ours drops the cache instead
            assert ours == ("ok", None), ours
            self.theirs.cache = {}  # (a stdlib bug: its closed shelf still serves this cache)
        else:
            same(ours, theirs, "s.close()")
        with (
            kv_shelve.open(f"{self.dir}/a", "r") as a,
            std_shelve.Shelf(self.mod.open(f"{self.dir}/b", "r")) as b,
        ):
            assert dict(a) == dict(b)
            # Documented: the stored bytes are exactly the stdlib's pickles.
            assert {k: a.dict[k] for k in a.dict} == {k: b.dict[k] for k in b.dict.keys()}  # noqa: SIM118

    # writes

    @rule(k=SHELF_KEYS, v=SHELF_VALUES)
    def setitem(self, k: str, v: Any) -> None:
        self.both(f"s[{k!r}] = {v!r}", lambda s: s.__setitem__(k, v))

    @rule(k=SHELF_KEYS)
    def delitem(self, k: str) -> None:
        self.both(f"del s[{k!r}]", lambda s: s.__delitem__(k))

    @rule(k=SHELF_KEYS, v=SHELF_VALUES, given=st.booleans())
    def setdefault(self, k: str, v: Any, given: bool) -> None:
        self.both(f"s.setdefault({k!r}, {v!r})", lambda s: s.setdefault(k, v) if given else s.setdefault(k))

    @rule(k=SHELF_KEYS, d=SHELF_VALUES, given=st.booleans())
    def pop(self, k: str, d: Any, given: bool) -> None:
        self.both(f"s.pop({k!r}, {d!r})", lambda s: s.pop(k, d) if given else s.pop(k))

    @rule()
    def popitem(self) -> None:
        ours = outcome(self.ours.popitem)
        if ours[0] == "ok":  # documented: ours takes the smallest key; the stdlib's is in dbm order
            k = ours[1][0]
            assert all(k <= other for other in self.theirs)
            same(ours, outcome(lambda: (k, self.theirs.pop(k))), "s.popitem()")
        else:
            same(ours, outcome(self.theirs.popitem), "s.popitem()")

    @rule(pairs=st.lists(st.tuples(SHELF_KEYS, SHELF_VALUES), max_size=3), how=st.sampled_from("dlk"))
    def update(self, pairs: list[tuple[str, Any]], how: str) -> None:
        if how == "k":
            self.both(f"s.update(**{pairs!r})", lambda s: s.update(**dict(pairs)))
        else:
            arg = dict(pairs) if how == "d" else pairs
            self.both(f"s.update({arg!r})", lambda s: s.update(arg))

    @rule(pairs=st.lists(st.tuples(SHELF_KEYS, SHELF_VALUES), min_size=1, max_size=2), bad_key=st.booleans())
    def failed_update(self, pairs: list[tuple[str, Any]], bad_key: bool) -> None:
        """Documented: ours writes nothing when a pair is bad; the stdlib wrote the pairs before it."""
        bad = (1, "v") if bad_key else ("zz", threading.Lock())
        before = dict(self.ours)
        ours = outcome(lambda: self.ours.update([*pairs, bad]))
        theirs = outcome(lambda: self.theirs.update([*pairs, bad]))
        assert ours[0] == theirs[0] == "exc", (ours, theirs)
        assert isinstance(ours[1], TypeError)  # before the read-only error of "r" (the stdlib's)
        assert dict(self.ours) == before
        if self.flag != "r":
            self.ours.update(pairs)
        self.forget_failed_writes()

    @rule()
    def clear(self) -> None:
        self.both("s.clear()", lambda s: s.clear())

    @rule(k=SHELF_KEYS, x=st.integers(0, 3))
    def mutate(self, k: str, x: int) -> None:
        """Mutate a list read from the shelf: kept with writeback once synced or closed, else lost."""

        def go(s: Any) -> Any:
            v = s[k]
            if isinstance(v, list):
                v.append(x)
            return v

        self.both(f"s[{k!r}].append({x})", go)

    @precondition(lambda self: len(self.ours) <= 20)
    @rule(x=SHELF_VALUES)
    def write_while_iterating(self, x: Any) -> None:
        """The loop sees the keys as they were when it started (the stdlib's dbm keys() is a list)."""

        def go(s: Any) -> list[str]:
            seen: list[str] = []
            n = len(s)
            for k in s:
                seen.append(k)
                assert len(seen) <= n, "the loop meets the keys it adds"
                s[k + "+"] = x
            return sorted(seen)

        self.both("for k in s: s[k + '+'] = x", go)

    # reads

    @rule(k=SHELF_KEYS)
    def getitem(self, k: str) -> None:
        self.both(f"s[{k!r}]", lambda s: s[k])

    @rule(k=SHELF_KEYS, d=SHELF_VALUES)
    def get(self, k: str, d: Any) -> None:
        self.both(f"s.get({k!r})", lambda s: s.get(k))
        self.both(f"s.get({k!r}, {d!r})", lambda s: s.get(k, d))
        self.both(f"{k!r} in s", lambda s: k in s)

    @rule()
    def reads(self) -> None:
        self.both("len(s)", len)
        self.both("list(s)", list, norm=sorted)
        self.both("list(s.keys())", lambda s: list(s.keys()), norm=sorted)
        self.both("list(s.items())", lambda s: list(s.items()), norm=by_repr)
        self.both("list(s.values())", lambda s: list(s.values()), norm=by_repr)
        self.both("len(s.items())", lambda s: len(s.items()))
        self.both("s == {}", lambda s: s == {})

    # error paths

    @rule(
        k=BAD_SHELF_KEYS,
        v=SHELF_VALUES,
        op=st.sampled_from(["set", "[]", "get", "del", "pop", "setdefault", "in"]),
    )
    def bad_key(self, k: Any, v: Any, op: str) -> None:
        fns = {
            "set": lambda s: s.__setitem__(k, v),
            "[]": lambda s: s[k],
            "get": lambda s: s.get(k, v),
            "del": lambda s: s.__delitem__(k),
            "pop": lambda s: s.pop(k, v),
            "setdefault": lambda s: s.setdefault(k, v),
            "in": lambda s: k in s,
        }
        self.both_bad_key(f"{op} {k!r}", fns[op], contains=op == "in")

    @precondition(lambda self: not self.writeback)  # the stdlib caches the value before it pickles it
    @rule(k=SHELF_KEYS)
    def unpicklable(self, k: str) -> None:
        value = threading.Lock()
        ours = outcome(lambda: self.ours.__setitem__(k, value))
        same(ours, outcome(lambda: self.theirs.__setitem__(k, value)), f"s[{k!r}] = <lock>")
        if self.flag != "r":
            assert isinstance(ours[1], PickleSerializationError)

    @rule(v=SHELF_VALUES)
    def empty_key(self, v: Any) -> None:
        """Documented: a key is 1 to 65,536 bytes; an empty key is never stored, never present."""
        assert "" not in self.ours
        assert self.ours.get("", 7) == 7
        if self.flag != "r":
            ours = outcome(lambda: self.ours.__setitem__("", v))
            assert ours[0] == "exc" and isinstance(ours[1], KeyTooLargeError), ours

    # lifecycle

    @rule()
    def sync(self) -> None:
        if self.flag == "r" and self.writeback and self.theirs.cache:
            # Documented: ours drops what it cannot write back; the stdlib fails (and, a stdlib
            # bug, leaves its writeback switched off).
            assert outcome(self.ours.sync) == ("ok", None)
            assert isinstance(outcome(self.theirs.sync)[1], OSError)
            self.theirs.writeback, self.theirs.cache = True, {}
            assert self.ours.cache == {}
            return
        self.both("s.sync()", lambda s: s.sync())

    @rule(flag=FLAGS)
    def reopen(self, flag: str) -> None:
        self.close_both()
        self.open(flag)

    @rule(flag=FLAGS, k=SHELF_KEYS, v=SHELF_VALUES)
    def use_after_close(self, flag: str, k: str, v: Any) -> None:
        """After close() every operation raises ValueError, and close() again does nothing."""
        self.close_both()
        for what, fn in [
            ("s[k]", lambda s: s[k]),
            ("s[k] = v", lambda s: s.__setitem__(k, v)),
            ("del s[k]", lambda s: s.__delitem__(k)),
            ("k in s", lambda s: k in s),
            ("s.get(k)", lambda s: s.get(k)),
            ("len(s)", len),
            ("list(s)", list),
            ("s.keys()", lambda s: list(s.keys())),
            ("s.items()", lambda s: list(s.items())),
            ("s.values()", lambda s: list(s.values())),
            ("s.pop(k, v)", lambda s: s.pop(k, v)),
            ("s.popitem()", lambda s: s.popitem()),
            ("s.setdefault(k, v)", lambda s: s.setdefault(k, v)),
            ("s.update({k: v})", lambda s: s.update({k: v})),
            ("s.update()", lambda s: s.update()),
            ("s.clear()", lambda s: s.clear()),
            ("s.sync()", lambda s: s.sync()),
            ("s.close()", lambda s: s.close()),
        ]:
            self.both(what, fn)
        self.open(flag)


DBM_KEYS = st.sampled_from([b"a", "a", b"b", "b", "é", "é".encode(), b"\xff", b"ab", "ab", "✓"])
BAD_DBM_KEYS = st.sampled_from([1, None, 1.5, "\ud800"])
DBM_VALUES = (
    st.binary(max_size=3)
    | st.text(alphabet="ab\u00e9", max_size=2)
    | st.builds(bytearray, st.binary(max_size=2))
)
BAD_DBM_VALUES = st.sampled_from([1, None, ["x"], "\udc80"])


class DbmDiff(RuleBasedStateMachine):
    """``kv_backend.dbm.open`` against ``dbm.dumb.open``, same operations on both."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="kvb-dbmdiff-")
        self.open("c")

    def open(self, flag: str) -> None:
        self.flag = flag
        self.ours = kv_dbm.open(f"{self.dir}/a", flag)
        self.theirs = dbm.dumb.open(f"{self.dir}/b", flag)  # noqa: SIM115

    def teardown(self) -> None:
        self.ours.close()
        self.theirs.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def both(self, what: str, fn: Any, norm: Any = None) -> None:
        same(outcome(lambda: fn(self.ours)), outcome(lambda: fn(self.theirs)), what, norm)

    def close_both(self) -> None:
        self.both("d.close()", lambda d: d.close())
        with kv_dbm.open(f"{self.dir}/a", "r") as a, dbm.dumb.open(f"{self.dir}/b", "r") as b:
            assert {k: a[k] for k in a.keys()} == {k: b[k] for k in b.keys()}  # noqa: SIM118

    @rule(k=DBM_KEYS, v=DBM_VALUES)
    def setitem(self, k: Any, v: Any) -> None:
        self.both(f"d[{k!r}] = {v!r}", lambda d: d.__setitem__(k, v))

    @rule(k=DBM_KEYS)
    def delitem(self, k: Any) -> None:
        self.both(f"del d[{k!r}]", lambda d: d.__delitem__(k))

    @rule(k=DBM_KEYS, d=DBM_VALUES)
    def reads_of_a_key(self, k: Any, d: Any) -> None:
        self.both(f"d[{k!r}]", lambda db: db[k])
        self.both(f"d.get({k!r})", lambda db: db.get(k))
        self.both(f"d.get({k!r}, {d!r})", lambda db: db.get(k, d))
        self.both(f"{k!r} in d", lambda db: k in db)

    @rule(k=DBM_KEYS, v=DBM_VALUES)
    def setdefault(self, k: Any, v: Any) -> None:
        # Documented: ours returns the stored bytes, as dbm.gnu does (dbm.dumb: ``v`` as given).
        ours = outcome(lambda: self.ours.setdefault(k, v))
        same(ours, outcome(lambda: self.theirs.setdefault(k, v)), f"d.setdefault({k!r}, {v!r})", as_bytes)
        assert ours[0] == "exc" or type(ours[1]) is bytes

    @rule(k=DBM_KEYS, given=st.booleans())
    def pop(self, k: Any, given: bool) -> None:
        self.both(f"d.pop({k!r})", lambda d: d.pop(k, None) if given else d.pop(k))

    @rule()
    def popitem(self) -> None:
        ours = outcome(self.ours.popitem)
        if ours[0] == "ok":  # documented: ours takes the smallest key
            k = ours[1][0]
            assert all(k <= other for other in self.theirs.keys())  # noqa: SIM118
            same(ours, outcome(lambda: (k, self.theirs.pop(k))), "d.popitem()")
        else:
            same(ours, outcome(self.theirs.popitem), "d.popitem()")

    @rule(pairs=st.lists(st.tuples(DBM_KEYS, DBM_VALUES), max_size=3), as_dict=st.booleans())
    def update(self, pairs: list[tuple[Any, Any]], as_dict: bool) -> None:
        arg: Any = dict(pairs) if as_dict else pairs
        self.both(f"d.update({arg!r})", lambda d: d.update(arg))

    @rule(
        pairs=st.lists(st.tuples(DBM_KEYS, DBM_VALUES), min_size=1, max_size=2),
        bad=st.sampled_from([(1, b"v"), (b"k", 1)]),
    )
    def failed_update(self, pairs: list[tuple[Any, Any]], bad: tuple[Any, Any]) -> None:
        """Documented: ours writes nothing when a pair is bad; dbm.dumb wrote the pairs before it."""
        before = {k: self.ours[k] for k in self.ours.keys()}  # noqa: SIM118
        ours, theirs = (
            outcome(lambda: self.ours.update([*pairs, bad])),
            outcome(lambda: self.theirs.update([*pairs, bad])),
        )
        if self.flag == "r":  # which error comes first differs (ours checks every pair first)
            assert ours[0] == theirs[0] == "exc" and isinstance(ours[1], (TypeError, OSError)), ours
        else:
            same(ours, theirs, f"d.update({[*pairs, bad]!r})")
            assert {k: self.ours[k] for k in self.ours.keys()} == before  # noqa: SIM118
            self.ours.update(pairs)

    @rule()
    def clear(self) -> None:
        self.both("d.clear()", lambda d: d.clear())

    @rule()
    def reads(self) -> None:
        self.both("len(d)", len)
        self.both("list(d)", list, norm=sorted)
        self.both("d.keys()", lambda d: d.keys(), norm=sorted)
        self.both("list(d.items())", lambda d: list(d.items()), norm=sorted)
        self.both("list(d.values())", lambda d: list(d.values()), norm=sorted)

    @rule(k=BAD_DBM_KEYS | DBM_KEYS, v=BAD_DBM_VALUES | DBM_VALUES)
    def bad_types(self, k: Any, v: Any) -> None:
        ours, theirs = (
            outcome(lambda: self.ours.__setitem__(k, v)),
            outcome(lambda: self.theirs.__setitem__(k, v)),
        )
        if self.flag == "r":  # which error comes first differs (dbm.gnu checks the types first)
            assert theirs[0] == ours[0] == "exc"
            assert isinstance(ours[1], (TypeError, ValueError, OSError)), f"d[{k!r}] = {v!r}: ours {ours!r}"
        else:
            same(ours, theirs, f"d[{k!r}] = {v!r}")

    @rule(k=BAD_DBM_KEYS, op=st.sampled_from(["[]", "get", "del", "pop", "in", "setdefault"]))
    def bad_key_reads(self, k: Any, op: str) -> None:
        """Documented: a key of a wrong type raises TypeError on reads too, as in dbm.gnu (dbm.dumb
        looks it up: KeyError, or None from get); ``in`` is False in both."""
        fns = {
            "[]": lambda d: d[k],
            "get": lambda d: d.get(k),
            "del": lambda d: d.__delitem__(k),
            "pop": lambda d: d.pop(k, None),
            "in": lambda d: k in d,
            "setdefault": lambda d: d.setdefault(k, b"v"),
        }
        ours, theirs = outcome(lambda: fns[op](self.ours)), outcome(lambda: fns[op](self.theirs))
        if self.flag == "r" and op == "del":  # which error comes first differs (dbm.dumb: "r"'s)
            assert ours[0] == theirs[0] == "exc" and isinstance(ours[1], (TypeError, ValueError)), ours
        elif isinstance(k, str) or op == "in":
            same(ours, theirs, f"{op} {k!r}")
        else:
            assert ours[0] == "exc" and isinstance(ours[1], TypeError), f"{op} {k!r}: ours {ours!r}"
            assert theirs[0] == "exc" or theirs[1] is None

    @rule(k=st.sampled_from(["", b""]), v=DBM_VALUES)
    def empty_key(self, k: Any, v: Any) -> None:
        """Documented: a key is 1 to 65,536 bytes; an empty key is never stored, never present."""
        assert k not in self.ours
        assert self.ours.get(k, b"d") == b"d"
        with pytest.raises(KeyError):
            self.ours[k]
        if self.flag != "r":
            with pytest.raises(kv_dbm.KeySizeError):
                self.ours[k] = v

    @rule()
    def sync(self) -> None:
        self.both("d.sync()", lambda d: d.sync())

    @rule(flag=FLAGS)
    def reopen(self, flag: str) -> None:
        self.close_both()
        self.open(flag)

    @rule(flag=FLAGS, k=DBM_KEYS | BAD_DBM_KEYS, v=DBM_VALUES)
    def use_after_close(self, flag: str, k: Any, v: Any) -> None:
        """After close() every operation raises the dbm error; close() again does nothing."""
        self.close_both()
        ops = [
            ("d[k]", lambda d: d[k]),
            ("d[k] = v", lambda d: d.__setitem__(k, v)),
            ("del d[k]", lambda d: d.__delitem__(k)),
            ("k in d", lambda d: k in d),
            ("d.get(k)", lambda d: d.get(k)),
            ("len(d)", len),
            ("list(d)", list),
            ("d.keys()", lambda d: d.keys()),
            ("d.items()", lambda d: list(d.items())),
            ("d.values()", lambda d: list(d.values())),
            ("d.pop(k, v)", lambda d: d.pop(k, v)),
            ("d.popitem()", lambda d: d.popitem()),
            ("d.setdefault(k, v)", lambda d: d.setdefault(k, v)),
            ("d.update({k: v})", lambda d: d.update({k: v})),
            ("d.update()", lambda d: d.update()),
            ("d.clear()", lambda d: d.clear()),
            ("d.close()", lambda d: d.close()),
        ]
        for what, fn in ops:
            ours, theirs = outcome(lambda fn=fn: fn(self.ours)), outcome(lambda fn=fn: fn(self.theirs))
            if (isinstance(k, bytes) or (isinstance(k, str) and k.isprintable())) or what in (
                "len(d)",
                "list(d)",
                "d.keys()",
                "d.items()",
                "d.values()",
                "d.popitem()",
                "d.clear()",
                "d.update()",
                "d.close()",
            ):
                same(ours, theirs, what)
            else:  # which error comes first differs (dbm.dumb's is about the closed database)
                assert ours[0] == "exc" and isinstance(ours[1], (TypeError, ValueError, OSError)), (
                    what,
                    ours,
                )
        # Documented: sync() after close() raises the dbm error, as in dbm.gnu (dbm.dumb: nothing).
        with pytest.raises(kv_dbm.error):
            self.ours.sync()
        self.open(flag)


SETTINGS = settings(
    max_examples=50,
    stateful_step_count=25,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

TestShelfDiff = ShelfDiff.TestCase
TestShelfDiff.settings = SETTINGS
TestDbmDiff = DbmDiff.TestCase
TestDbmDiff.settings = SETTINGS
