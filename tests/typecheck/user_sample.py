"""User code, type-checked by tests/test_typing11.py with ``mypy --strict`` (never run).

It uses the public API as docs/*.md show it; each ``assert_type`` states the type a user's
type checker must see, so an annotation that loses it (an ``Any`` where bytes are documented,
a missing overload, a mapping parameter that refuses a plain ``dict``) fails the test.
"""

from __future__ import annotations

import array
import json
import shelve
from collections.abc import MutableMapping
from datetime import datetime, timedelta
from typing import Any

from typing_extensions import assert_type

import kv_backend.dbm
import kv_backend.shelve
from kv_backend import DB, Store, restore
from kv_backend.backup import BackupReport, RestoreReport, list_backups, prune_backups
from kv_backend.merge import MergeReport
from kv_backend.serializers import JSONSerializer, PickleSerializer, RawSerializer
from kv_backend.structures import Structures


def engine(path: str) -> None:
    with DB(path, sync="always") as db:
        db.put(b"k", b"v", ttl=10)
        db.put(b"k", bytearray(b"v"))  # docs/engine.md: bytearray and memoryview are accepted
        db[b"k"] = memoryview(b"v")
        db.put_if_absent(b"k", bytearray(b"v"))
        with db.batch() as b:
            b.put(b"k", memoryview(b"v"))
        assert_type(db[b"k"], bytes)
        assert_type(db.get(b"k"), bytes | None)  # mypy saw bytes: a missing value looked impossible
        assert_type(db.get(b"k", b""), bytes)
        assert_type(db.get(b"k", 0), bytes | int)
        assert_type(db.pop(b"k", None), bytes | None)
        assert_type(db.delete(b"k"), bool)
        assert_type(db.incr(b"n"), int)
        assert_type(db.size_with_expiry(b"k"), tuple[int, float | None] | None)  # HEAD of kvb http
        report = db.backup("memory://kv-backups")  # was Any: report.files_copied went unchecked
        assert_type(report, BackupReport)
        print(report.files_copied, report.files_skipped, report.bytes_copied)
        assert_type(db.merge(), MergeReport)


def dbms(path: str) -> None:
    with kv_backend.dbm.open(path, "c") as db:
        assert_type(db.reorganize(), MergeReport)
        db[b"k"] = b"v"
        db["k"] = "v"
        db[b"k"] = bytearray(b"v")  # as the stdlib's dbm takes (typeshed: str | bytes | bytearray)
        db.setdefault(b"k", bytearray(b"v"))
        db[memoryview(b"k")] = array.array("b", b"v")  # any bytes-like object, key or value (docs/store.md)
        assert_type(db.get(bytearray(b"k")), bytes | None)
        assert_type(db[b"k"], bytes)
        assert_type(db.get(b"k"), bytes | None)  # the values and pairs below were all Any
        assert_type(db.get("k", b""), bytes)
        assert_type(db.pop(b"k"), bytes)
        assert_type(db.pop(b"k", None), bytes | None)
        assert_type(db.setdefault(b"k"), bytes)
        assert_type(db.keys(), list[bytes])
        for k, v in db.items():
            assert_type(k, bytes)
            assert_type(v, bytes)
        for v in db.values():
            assert_type(v, bytes)
    shelf_of_dbm: shelve.Shelf[Any] = shelve.Shelf(kv_backend.dbm.open(path, "c"))
    shelf_of_dbm.close()
    with kv_backend.shelve.open(path.encode(), "r") as by_bytes_path:  # as the stdlib's (typeshed) takes
        assert_type(kv_backend.dbm.whichdb(path.encode()), str | None)
        print(len(by_bytes_path))
    with kv_backend.shelve.open(path, writeback=True) as shelf:
        shelf["config"] = {"retries": 3}
        assert_type(shelf["config"], Any)
        print(shelf[b"config"])  # type: ignore[index]  # a shelf's keys are str
        assert_type(shelf.dict, kv_backend.dbm.Database)  # docs/store.md; was Any
        for name in shelf:  # was Any: __iter__ had no annotation
            assert_type(name, str)
        for name, value in shelf.items():
            assert_type(name, str)
            assert_type(value, Any)


def stores(path: str) -> None:
    s = Store(path)
    assert_type(s, Store[str])
    s["user:42"] = {"name": "Ada"}
    assert_type(s["user:42"], Any)
    print(s[b"user:42"])  # type: ignore[index]  # a Store[str]'s keys are str
    assert_type(s.get("a"), Any | None)
    for key, _value in s.items(prefix="user:"):
        assert_type(key, str)
    raw = Store(path, serializer="raw", key_type=bytes)
    assert_type(raw, Store[bytes])
    for raw_key in raw.keys(start=b"b", reverse=True):
        assert_type(raw_key, bytes)
    Store(path, serializer=json)
    Store(path, serializer=PickleSerializer(protocol=5))
    Store(path, serializer=JSONSerializer(sort_keys=True))
    Store(path, serializer=RawSerializer())
    with Store(path, serializer="json", sync="always") as sessions:
        assert_type(sessions, Store[str])
        sessions.set("token:abc", {"user": 42}, ttl=3600)
        with sessions.batch() as b:
            b.set("k", 1)
            b.delete("k")
        with sessions.transaction() as t:
            t["k"] = 2
        sessions.update({"a": 1}, b=2)
        assert_type(sessions.get_many(["a"]), dict[str, Any])
        assert_type(sessions.popitem(), tuple[str, Any])
        assert_type(sessions.ttl("k"), float | None)
    mapping: MutableMapping[str, Any] = s
    print(mapping)


def backups(path: str) -> None:
    for info in list_backups("memory://kv-backups"):
        print(info.name, info.ok)
    assert_type(restore("memory://kv-backups", path), RestoreReport)
    assert_type(prune_backups("memory://kv-backups", keep=7), list[str])


def structures(path: str) -> None:
    with DB(path) as db:
        r = Structures(db)
        fields: dict[str, str] = {"a": "1"}
        r.hset("h", mapping=fields)  # a dict[str, str] was no Mapping[Name, Value] (invariant keys)
        r.mset(fields)
        r.msetnx(fields)
        r.zadd("z", {"a": 1.0})  # even a literal was refused
        r.xadd("x", fields)
        r.xread({"x": "0"})
        pairs: list[tuple[bytes, bytes]] = [(b"a", b"b")]
        r.hset_pairs("h", pairs)
        patterns: list[str] = ["#"]
        r.sort("l", get=patterns)
        assert_type(r.get("k"), bytes | None)
        assert_type(r.hgetall("h"), dict[bytes, bytes])
        assert_type(r.lpop("l"), bytes | None)  # was Any
        assert_type(r.rpop("l", 2), list[bytes] | None)
        # redis-py's call forms (docs/redis.md, "In-process API")
        r.hset("h", "f", "v")
        r.hset("h", items=["f", 1])
        r.hset("h", {"f": 1})
        names: list[str] = ["a", "b"]
        assert_type(r.mget(names), list[bytes | None])
        r.hmget("h", names)
        r.sinter(names)
        r.zmscore("z", names)
        r.expire("k", timedelta(seconds=10), nx=True)
        r.expireat("k", datetime.now(), gt=True)
        r.pexpire("k", 1500, xx=True)
        r.set("k", "v", px=timedelta(milliseconds=1500))
        r.set("k", "v", pxat=datetime.now())
        assert_type(r.pttl("k"), int | None)
        r.incr("n", 5)
        r.decr("n", 2)
        r.lmove("a", "b")
        r.zrange("z", 0, 10, byscore=True, offset=0, num=5)
        r.zrangestore("d", "z", 0, -1)
        r.sort("l", start=0, num=10)


class AppStore(Store[str]):
    """A user's subclass: ``with`` must give it back, not a plain Store."""

    def users(self) -> list[str]:
        return list(self.keys(prefix="user:"))


class AppDB(DB):
    def greeting(self) -> bytes | None:
        return self.get(b"greeting")


class AppDatabase(kv_backend.dbm.Database):
    pass


def subclasses(path: str) -> None:
    with AppStore(path) as app_store:
        assert_type(app_store, AppStore)  # was Store[str]: app_store.users() failed to type-check
        print(app_store.users())
    with AppDB(path) as app_db:
        assert_type(app_db, AppDB)
        print(app_db.greeting())
    with AppDatabase(DB(path), "c") as app_database:
        assert_type(app_database, AppDatabase)
