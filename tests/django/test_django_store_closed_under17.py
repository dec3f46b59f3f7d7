"""close_all() closes the stores of the process, documented to reopen on next use; but a cache call
in flight in another thread meanwhile (a request served while a shutdown hook, a test or
call_command("kv_restore") ran it) failed with DatabaseClosedError: about four per close_all() with
four busy threads. Such a call now runs again on the reopened store (the engine raises that
error only for a call that wrote nothing, so no increment counts twice). And kv_restore closed the
stores of every alias of the process, not only the one it replaces."""

from __future__ import annotations

import threading
import time
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import override_settings
from kv_backend_django.cache import close_all

KV = "kv_backend_django.cache.KVCache"


def test_calls_in_flight_survive_close_all(tmp_path):
    errors: list[BaseException] = []
    counted = [0] * 4
    stop = threading.Event()

    def work(n: int) -> None:
        cache = caches["c"]
        i = 0
        while not stop.is_set():
            try:
                cache.set(f"k{n}:{i % 50}", i)
                assert cache.get(f"k{n}:{i % 50}") == i
                cache.incr("n")
                counted[n] += 1
                cache.add(f"a{i % 7}", n)
                cache.get_or_set(f"g{i % 7}", n)
                cache.set_many({f"m{n}": i, f"m{n}x": i})
                assert cache.get_many([f"m{n}", f"m{n}x"]) == {f"m{n}": i, f"m{n}x": i}
                cache.delete_many([f"m{n}"])
                assert cache.has_key(f"m{n}x") and cache.touch(f"m{n}x", 60)
                cache.delete(f"m{n}x")
            except BaseException as exc:
                errors.append(exc)
                return
            i += 1

    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(tmp_path / "c")}}):
        caches["c"].set("n", 0, None)
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for _ in range(3):
                time.sleep(0.3)
                close_all()
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors[:3]
        assert caches["c"].get("n") == sum(counted) > 0  # every increment once, none lost or doubled
        close_all()


@pytest.mark.parametrize(
    ("engine_call", "cache_call", "expected"),
    [
        ("get", lambda c: c.get("k"), 1),
        ("__contains__", lambda c: c.has_key("k"), True),
        ("put", lambda c: c.set("s", 2), None),
        ("put_if_absent", lambda c: c.add("a", 3), True),
        ("update", lambda c: c.incr("k"), 2),
        ("delete", lambda c: c.delete("k"), True),
        ("expire", lambda c: c.touch("k", 60), True),
        ("locked", lambda c: c.clear(), None),  # (clear() deletes its own keys under locked())
        ("batch", lambda c: c.set_many({"m": 1, "n": 2}), []),
        ("locked", lambda c: c.get_or_set("g", 4), 4),
        # keys given as a generator, read once for the call run again
        ("get", lambda c: c.get_many(k for k in ("k", "x")), {"k": 1}),
        ("__contains__", lambda c: (c.delete_many(k for k in ("k", "x")), c.get("k", "gone"))[1], "gone"),
    ],
)
def test_a_call_whose_store_closes_under_it_runs_again(
    tmp_path, monkeypatch, engine_call, cache_call, expected
):
    """The store is closed (close_all() in another thread) just as the call reaches the engine."""
    from kv_backend import DB

    original = getattr(DB, engine_call)
    closed = []

    def closing_first(db, *args, **kwargs):
        if not closed:
            closed.append(db)
            t = threading.Thread(target=close_all)
            t.start()
            t.join()
        return original(db, *args, **kwargs)

    with override_settings(CACHES={"c": {"BACKEND": KV, "LOCATION": str(tmp_path / "c")}}):
        cache = caches["c"]
        cache.set("k", 1)
        monkeypatch.setattr(DB, engine_call, closing_first)
        assert cache_call(cache) == expected
        monkeypatch.undo()
        assert closed and closed[0].closed and not cache.db.closed
        if engine_call == "update":
            assert cache.get("k") == 2  # counted once
        close_all()


def test_kv_restore_leaves_the_stores_of_other_aliases_open(tmp_path):
    pytest.importorskip("kv_backend.backup")
    url = (tmp_path / "backups").as_uri()
    conf = {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "default")},
        "fragments": {"BACKEND": KV, "LOCATION": str(tmp_path / "fragments")},
    }
    with override_settings(CACHES=conf):
        caches["fragments"].set("f", 1)
        call_command("kv_backup", url, "--cache", "fragments", stdout=StringIO())
        caches["default"].set("page", "<html>")
        db = caches["default"].db
        call_command("kv_restore", url, "--cache", "fragments", "--replace", stdout=StringIO())
        assert not db.closed and caches["default"].db is db
        assert caches["fragments"].get("f") == 1
        close_all()
