"""Review 11 of the Django integration: a miss is a miss everywhere, commands for operators, processes."""

from __future__ import annotations

import logging
import os
import pickle

import pytest
from kv_backend_django.cache import KVCache, close_all
from test_django_review10 import _damage

# What another serializer (or program) may have left under a cache key: none of it unpickles.
FOREIGN = [b'{"json": 1}', b"", b"\x80\x05\x95", pickle.dumps(1)[:-2], b"cos\nsystem_not_there\n."]


@pytest.mark.parametrize("raw", FOREIGN)
def test_a_value_that_does_not_unpickle_is_a_miss_for_every_method(tmp_path, raw, caplog):
    """get() raised UnpicklingError (a 500 on every request) while has_key() said True, add() False
    and touch() True: the entry is now a logged miss everywhere, and dropped, as a damaged record is."""
    cache = KVCache(str(tmp_path / "c"), {})
    names = ("get", "has", "add", "many", "gos", "incr", "version", "touch")
    for name in names:
        cache.db.put(cache.make_key(name).encode(), raw)
    with caplog.at_level(logging.WARNING, logger="kv_backend_django.cache"):
        assert cache.get("get", "miss") == "miss"
        assert cache.has_key("has") is False
        assert cache.add("add", "fresh") is True and cache.get("add") == "fresh"
        assert cache.get_many(["many"]) == {}
        assert cache.get_or_set("gos", "recomputed") == "recomputed" and cache.get("gos") == "recomputed"
        with pytest.raises(ValueError, match="not found"):
            cache.incr("incr")
        with pytest.raises(ValueError, match="not found"):
            cache.incr_version("version")
        assert cache.touch("touch", 60) is False
    assert len(cache.db) == 2  # only the fresh values of add and get_or_set: the rest was dropped
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == len(names) and all("does not unpickle" in m for m in messages)


def test_a_damaged_record_is_a_miss_for_has_key_and_add_before_any_get(tmp_path):
    """has_key() answered True and add() False for a record failing its checksum, until a get()
    happened to drop it."""
    cache = KVCache(str(tmp_path / "c"), {})
    cache.set("has", "<has-value>", None)
    cache.set("add", "<add-value>", None)
    close_all()
    _damage(tmp_path / "c", b"<has-value>")
    _damage(tmp_path / "c", b"<add-value>")
    assert cache.has_key("has") is False
    assert cache.add("add", "fresh") is True and cache.get("add") == "fresh"
    assert cache.add("add", "second") is False and cache.get("add") == "fresh"


def test_add_over_a_damaged_entry_keeps_the_value_another_process_added_meanwhile(tmp_path):
    """Of two add()s over one damaged entry exactly one wins: the one that reads the damaged value
    second must not delete the value the first stored meanwhile (and win too)."""
    first = KVCache(str(tmp_path / "c"), {})
    other = KVCache(str(tmp_path / "c"), {})
    k = first.make_key("lock").encode()
    first.db.put(k, b"not a pickle")
    other_won = []
    loads = first._loads

    def loads_after_the_other_added(db, key, raw):
        other_won.append(other.add("lock", "other"))  # between this add's read and its drop
        return loads(db, key, raw)

    first._loads = loads_after_the_other_added
    assert first.add("lock", "first") is False
    assert other_won == [True] and first.get("lock") == "other"


def test_many_processes_adding_over_one_damaged_entry_one_wins(tmp_path):
    """The same with forked processes racing: exactly one add() returns True, and its value stays."""
    cache = KVCache(str(tmp_path / "c"), {})
    for i in range(3):
        cache.db.put(cache.make_key(f"lock{i}").encode(), b"not a pickle")
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    pids = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.read(go_r, 1)
                won = [i for i in range(3) if cache.add(f"lock{i}", n)]
                os.write(w, f"{n}:{','.join(map(str, won))}\n".encode())
            finally:
                os._exit(0)
        pids.append(pid)
    os.close(w)
    os.write(go_w, b"g" * 4)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    for pid in pids:
        os.waitpid(pid, 0)
    winners: dict[int, list[int]] = {}
    for line in out.decode().split():
        n, won = line.split(":")
        for i in filter(None, won.split(",")):
            winners.setdefault(int(i), []).append(int(n))
    assert sorted(winners) == [0, 1, 2] and all(len(w) == 1 for w in winners.values())
    assert all(cache.get(f"lock{i}") == winners[i][0] for i in range(3))


@pytest.mark.skipif(
    os.geteuid() != 0 or not hasattr(os, "fork"), reason="drops to the nobody user: needs root"
)
def test_commands_run_by_a_user_lacking_permission_say_what_the_operator_needs():
    """kv_merge by a user who may only read the cache, and kv_stats/kv_backup by one who may not
    read it, ended with the engine's "or open it with read_only=True" (advice for a program, and
    kv_stats already opens it read-only); kv_restore --replace failed after the download on a
    staging directory. Each now names the user, what it needs of LOCATION, and whom to run it as."""
    import shutil
    import tempfile
    from io import StringIO

    from django.core.cache import caches
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings
    from helpers import run_as_nobody

    base = tempfile.mkdtemp(prefix="kvb-django-perm-")
    try:
        os.chmod(base, 0o755)
        readable, private = os.path.join(base, "readable"), os.path.join(base, "private")
        kv = "kv_backend_django.cache.KVCache"
        conf = {
            "default": {"BACKEND": kv, "LOCATION": readable},
            "private": {"BACKEND": kv, "LOCATION": private},
        }
        with override_settings(CACHES=conf):
            caches["default"].set("k", 1)
            caches["private"].set("k", 1)
            close_all()
            os.chmod(readable, 0o755)  # nobody may read it, not write it; "private" stays 0700

            def run_all() -> list[str]:
                said = []
                for args in (
                    ("kv_merge",),
                    ("kv_merge", "--cache", "private"),
                    ("kv_stats", "--cache", "private"),
                    ("kv_backup", "file:///nonexistent-kvb", "--cache", "private"),
                    ("kv_restore", "file:///nonexistent-kvb", "--replace"),
                ):
                    try:
                        call_command(*args, stdout=StringIO(), stderr=StringIO())
                        said.append("no error")
                    except CommandError as exc:
                        said.append(str(exc))
                return said

            said = run_as_nobody(run_all)
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
    for message, command, location in zip(
        said,
        ["kv_merge", "kv_merge", "kv_stats", "kv_backup", "kv_restore"],
        [readable, private, private, private, readable],
        strict=True,
    ):
        assert message.startswith(f"{command} may not use the cache at {location} as user nobody: "), message
        assert "read_only" not in message and "run it as the site's user (root, who owns LOCATION)" in message
    assert "read and write permission on LOCATION" in said[0]
    assert "read and search permission (r-x) on LOCATION" in said[2] and said[2][11:] == said[3][12:]
    assert f"permission denied on {base}. It needs write permission on LOCATION and on its parent" in said[4]


def test_delete_many_racing_a_set_many_deletes_all_of_it_or_none(tmp_path):
    """delete_many() checked which keys exist, then deleted those: a set_many() of the same keys by
    another process between the checks left it half deleted (the key checked before it stayed)."""
    cache = KVCache(str(tmp_path / "c"), {})
    other = KVCache(str(tmp_path / "c"), {})
    store = cache.db

    class SetManyAfterTheFirstCheck:
        """The store, with the other process's set_many landing just after the first existence check."""

        closed = False
        checks = 0

        def __contains__(self, k: bytes) -> bool:
            self.checks += 1
            if self.checks == 2:
                other.set_many({"a": 1, "b": 1})
            return k in store

        def __getattr__(self, name: str):
            return getattr(store, name)

    cache._db = SetManyAfterTheFirstCheck()
    cache.delete_many(["a", "b"])
    assert other.get_many(["a", "b"]) == {}


def test_an_empty_key_made_by_a_key_function_is_stored_as_by_djangos_backends(tmp_path):
    """KEY_FUNCTION returning the key as given: cache.set("", 1) raised KeyTooLargeError ("keys must
    be 1 to 65536 bytes long, got 0 bytes"), where LocMemCache and FileBasedCache store it."""
    cache = KVCache(str(tmp_path / "c"), {"KEY_FUNCTION": lambda key, prefix, version: key})
    cache.set("", 1)
    assert cache.get("") == 1 and cache.has_key("") and cache.incr("") == 2
    assert cache.get_many(["", "x"]) == {"": 2} and cache.add("", 3) is False
    assert cache.delete("") is True and cache.get("", "gone") == "gone"


def test_kv_restore_without_replace_does_not_call_a_directory_of_other_files_a_cache_store(tmp_path):
    """It said "already holds a cache store; ... run again with --replace", which then refused."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "settings.py").write_text("DEBUG = True\n")
    conf = {"wrong": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(project)}}
    with override_settings(CACHES=conf), pytest.raises(CommandError) as raised:
        call_command("kv_restore", (tmp_path / "bk").as_uri(), "--cache", "wrong", stdout=StringIO())
    assert "is not a kv_backend store" in str(raised.value) and "holds a cache store" not in str(raised.value)
    assert os.listdir(project) == ["settings.py"]


@pytest.mark.skipif(
    os.geteuid() != 0 or not hasattr(os, "fork"), reason="drops to the nobody user: needs root"
)
def test_a_worker_that_may_not_write_the_cache_is_not_told_to_open_it_read_only():
    """A web worker of another user than the store's owner: the error ended with the engine's "or open
    it with read_only=True", which a KVCache cannot be (an unknown OPTIONS key)."""
    import errno
    import shutil
    import tempfile

    from helpers import run_as_nobody

    from kv_backend.errors import StorageError

    base = tempfile.mkdtemp(prefix="kvb-django-perm-")
    try:
        os.chmod(base, 0o755)
        location = os.path.join(base, "c")
        KVCache(location, {}).set("k", 1)
        close_all()
        os.chmod(location, 0o755)

        def get() -> tuple[int | None, str]:
            try:
                KVCache(location, {}).get("k")
            except StorageError as exc:
                return exc.errno, str(exc)
            return None, "no error"

        code, message = run_as_nobody(get)
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
    assert code == errno.EACCES and "read_only" not in message, message
    assert f"the cache at {location} cannot open its store ({location}/LOCK: Permission denied)" in message
    assert "runs as user nobody" in message and "read and write permission on LOCATION" in message


def test_kv_merge_while_another_process_merges_says_so_to_the_operator(tmp_path):
    """A worker's auto_merge (or a second kv_merge from cron) merging at the same time: the message
    ended "or call merge(wait=True)", an API call, not something to do with manage.py."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    from kv_backend.files import MERGE_LOCK_FILE
    from kv_backend.locking import MergeLock

    location = tmp_path / "c"
    conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["default"].set("k", 1)
        other = MergeLock(str(location / MERGE_LOCK_FILE))  # another process's merge, as far as flock knows
        assert other.try_acquire()
        try:
            with pytest.raises(CommandError) as raised:
                call_command("kv_merge", stdout=StringIO())
        finally:
            other.release()
            close_all()
    message = str(raised.value)
    assert "merge(wait=True)" not in message, message
    assert (
        message.startswith(f"another process is merging the cache at {location} right now")
        and "kv_merge" in message
    )


@pytest.mark.parametrize("name", ["MAX_ENTRIES", "CULL_FREQUENCY"])
@pytest.mark.parametrize("value", [float("inf"), -float("inf")])
def test_an_infinite_max_entries_or_cull_frequency_is_refused_as_improperly_configured(tmp_path, name, value):
    """MAX_ENTRIES float("inf") (meant as "unlimited", as TIMEOUT float("inf") means forever) was
    Django's raw OverflowError, not the ImproperlyConfigured that docs/django.md promises for a value
    int() cannot read."""
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(
        ImproperlyConfigured, match=rf"OPTIONS {name} of KVCache at .* must be a whole number"
    ):
        KVCache(str(tmp_path / "c"), {"OPTIONS": {name: value}})
