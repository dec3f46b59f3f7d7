"""Review 10 of the Django integration: what an experienced Django user expects of a cache backend."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from kv_backend_django.cache import KVCache

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"sync": "allways"}, "sync must be"),
        ({"max_file_size": "64MB"}, "max_file_size must be"),
        ({"auto_merge": 50}, "auto_merge must be"),
    ],
)
def test_a_bad_engine_option_value_is_refused_when_the_cache_is_created(tmp_path, options, message):
    """Not at the first request: creating the cache (as ``manage.py check`` does) raises, creating nothing."""
    location = tmp_path / "cache"
    with pytest.raises(ImproperlyConfigured, match=message):
        KVCache(str(location), {"OPTIONS": options})
    assert not location.exists()


def test_manage_py_check_reports_a_bad_engine_option_value(tmp_path):
    settings = tmp_path / "bad_value_settings.py"
    settings.write_text(
        "SECRET_KEY = 'x'\nINSTALLED_APPS = ['kv_backend_django']\nDATABASES = {}\n"
        f"CACHES = {{'default': {{'BACKEND': 'kv_backend_django.cache.KVCache', "
        f"'LOCATION': {str(tmp_path / 'cache')!r}, 'OPTIONS': {{'sync': 'allways'}}}}}}\n"
    )
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="bad_value_settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT, os.path.join(ROOT, "integrations")]),
    )
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "sync must be 'never', 'always' or a number of seconds >= 0, not 'allways'" in done.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("command", ["kv_stats", "kv_backup", "kv_merge"])
@pytest.mark.parametrize("existing", [False, True], ids=["missing", "empty"])
def test_commands_create_no_store_where_there_is_none(tmp_path, command, existing):
    """kv_stats and kv_backup only read, kv_merge compacts: a LOCATION without a store is an error.

    Run as root (cron) before the site's first request, creating it would leave a
    root-owned 0700 directory that the site's own user cannot use.
    """
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    location = tmp_path / "cache"
    if existing:
        location.mkdir()
    conf = {"fresh": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    args = [command] if command != "kv_backup" else [command, (tmp_path / "bk").as_uri()]
    with (
        override_settings(CACHES=conf),
        pytest.raises(CommandError, match=r"no kv_backend store at .*creates nothing"),
    ):
        call_command(*args, "--cache", "fresh", stdout=StringIO(), stderr=StringIO())
    assert (os.listdir(location) == []) if existing else not location.exists()
    assert not (tmp_path / "bk").exists()


def test_kv_restore_refuses_a_location_that_is_a_mount_point_before_reading_the_backup(tmp_path, monkeypatch):
    """A cache on a container volume: --replace renamed the mount point after a whole restore (EBUSY).

    That was a raw OSError traceback, after downloading and verifying the whole backup
    into the parent filesystem, where the restored copy stayed.
    """
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings

    pytest.importorskip("kv_backend.backup")
    location = tmp_path / "volume"
    conf = {"vol": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["vol"].set("k", "old", None)
        call_command("kv_backup", (tmp_path / "bk").as_uri(), "--cache", "vol", stdout=StringIO())
        caches["vol"].set("k", "newer", None)
        from kv_backend_django.cache import close_all

        close_all()
        real_ismount = os.path.ismount
        monkeypatch.setattr(os.path, "ismount", lambda p: os.fspath(p) == str(location) or real_ismount(p))
        with pytest.raises(CommandError, match=r"is a mount point.*inside the mounted filesystem"):
            call_command(
                "kv_restore", (tmp_path / "bk").as_uri(), "--cache", "vol", "--replace", stdout=StringIO()
            )
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "volume"]  # no restored copy left
        assert caches["vol"].get("k") == "newer"


def test_kv_restore_puts_the_old_store_back_when_the_swap_fails(tmp_path, monkeypatch):
    """Moving the restored store into LOCATION fails: the old store is back, no copy left, one error line."""
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings
    from kv_backend_django.cache import close_all

    pytest.importorskip("kv_backend.backup")
    location = tmp_path / "cache"
    conf = {"c": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["c"].set("k", "old", None)
        call_command("kv_backup", (tmp_path / "bk").as_uri(), "--cache", "c", stdout=StringIO())
        caches["c"].set("k", "newer", None)
        close_all()
        real_rename = os.rename

        def rename(src, dst):
            if os.fspath(dst) == str(location) and ".restoring-" in os.fspath(src):  # the final swap
                raise OSError(28, "No space left on device")
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rename)
        # the two renames of a system that cannot exchange paths in one step (see review12 for that)
        monkeypatch.setattr(
            "kv_backend_django.management.commands.kv_restore.exchange_paths", lambda a, b: False
        )
        with pytest.raises(CommandError, match=r"cannot move the restored store into .*No space"):
            call_command(
                "kv_restore", (tmp_path / "bk").as_uri(), "--cache", "c", "--replace", stdout=StringIO()
            )
        monkeypatch.undo()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "cache"]
        assert caches["c"].get("k") == "newer"


_TASK_VIEW_PROBE = """
import django
django.setup()
from unittest import mock
from django.test import Client
from pages import tasks

class Result:
    id, state = "t1", "SUCCESS"
    def get(self, timeout):
        return {"waited_up_to": timeout}

client = Client(HTTP_HOST="127.0.0.1", raise_request_exception=False)
with mock.patch.object(tasks.word_count, "delay", return_value=Result()) as delay:
    for query in ["timeout=abc", "timeout=nan", "timeout=0", "timeout=-5", "timeout=1e9", "timeout=2.5", ""]:
        response = client.get("/task/?" + query)
        print(query or "-", response.status_code, delay.call_count, response.json().get("result"))
"""


def test_example_task_view_refuses_a_bad_timeout_before_starting_the_task(tmp_path):
    """/task/?timeout=abc started the task, then failed with a 500; timeout=1e9 held a worker for years."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="mysite.settings",
        KVB_EXAMPLE_VAR=str(tmp_path / "var"),
        PYTHONPATH=os.pathsep.join(
            [os.path.join(ROOT, "example_project"), ROOT, os.path.join(ROOT, "integrations")]
        ),
    )
    done = subprocess.run(
        [sys.executable, "-c", _TASK_VIEW_PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "timeout=abc 400 0 None",
        "timeout=nan 400 0 None",
        "timeout=0 400 0 None",
        "timeout=-5 400 0 None",
        "timeout=1e9 400 0 None",
        "timeout=2.5 200 1 {'waited_up_to': 2.5}",
        "- 200 2 {'waited_up_to': 10.0}",
    ]


_BROKEN_ALIASES = """
SECRET_KEY = "x"
INSTALLED_APPS = ["kv_backend_django"]
DATABASES = {}
KV = "kv_backend_django.cache.KVCache"
CACHES = {
    "default": {"BACKEND": KV, "LOCATION": LOCATION},
    "typo": {"BACKEND": KV, "LOCATION": LOCATION + "-t", "OPTIONS": {"SYNC": "always"}},
    "keyfunc": {"BACKEND": KV, "LOCATION": LOCATION + "-k", "KEY_FUNCTION": "no_such_module.make_key"},
}
"""


def test_commands_report_a_cache_that_cannot_be_created_from_the_command_line(tmp_path):
    """Not only through call_command: ``manage.py kv_stats`` ran Django's system checks first, which
    create every cache, so a bad alias was a traceback (and stopped the commands on every alias)."""
    (tmp_path / "broken_settings.py").write_text(
        f"LOCATION = {str(tmp_path / 'cache')!r}\n" + _BROKEN_ALIASES
    )
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="broken_settings",
        PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT, os.path.join(ROOT, "integrations")]),
    )
    probe = (
        "import sys\nfrom django.core.management import execute_from_command_line\n"
        "for args in (['kv_stats', '--cache', 'typo'], ['kv_merge', '--cache', 'keyfunc'], ['kv_stats']):\n"
        "    try:\n"
        "        execute_from_command_line(['manage.py', *args])\n"
        "    except SystemExit as exc:\n"
        "        print('exit', exc.code, flush=True)\n"
    )
    from kv_backend_django.cache import KVCache

    KVCache(str(tmp_path / "cache"), {}).set("k", 1)  # the default alias has a store
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "CommandError: cache 'typo' cannot be created: unknown OPTIONS" in done.stderr
    assert (
        "CommandError: cache 'keyfunc' cannot be created: ModuleNotFoundError: No module named" in done.stderr
    )
    assert done.stdout.count("exit 1") == 2 and "kv_backend cache 'default'" in done.stdout


def test_options_that_are_not_a_dict_are_a_configuration_error(tmp_path):
    """Django's BaseCache raised AttributeError ('list' object has no attribute 'get'); None is no options."""
    for options in ([("sync", "never")], "sync=never", 3):
        with pytest.raises(ImproperlyConfigured, match=r"OPTIONS of KVCache at .* must be a dict"):
            KVCache(str(tmp_path / "c"), {"OPTIONS": options})
    cache = KVCache(str(tmp_path / "c"), {"OPTIONS": None, "TIMEOUT": 60})
    assert cache._max_entries == 300 and cache.default_timeout == 60
    cache.set("k", 1)
    assert cache.get("k") == 1


@pytest.mark.parametrize(
    "name, value", [("MAX_ENTRIES", "1e5"), ("MAX_ENTRIES", None), ("CULL_FREQUENCY", "a third")]
)
def test_cull_options_django_cannot_read_are_refused_not_replaced_by_defaults(tmp_path, name, value):
    """Django's BaseCache silently used MAX_ENTRIES 300 (CULL_FREQUENCY 3) for a value int() refuses."""
    with pytest.raises(
        ImproperlyConfigured, match=rf"OPTIONS {name} of KVCache at .* must be a whole number"
    ):
        KVCache(str(tmp_path / "c"), {"OPTIONS": {name: value}})
    assert KVCache(str(tmp_path / "c"), {"OPTIONS": {"MAX_ENTRIES": "100_000"}})._max_entries == 100_000


def test_a_timeout_setting_django_cannot_read_is_refused_and_infinity_is_forever(tmp_path):
    """TIMEOUT "1h" silently became 300 s in Django's BaseCache; float("inf") was a raw OverflowError."""
    for timeout in ("1h", "none", [300], float("nan")):
        with pytest.raises(
            ImproperlyConfigured, match=r"TIMEOUT of KVCache at .* must be a number of seconds"
        ):
            KVCache(str(tmp_path / "c"), {"TIMEOUT": timeout})
    assert KVCache(str(tmp_path / "c"), {"TIMEOUT": float("inf")}).default_timeout is None
    assert KVCache(str(tmp_path / "c"), {"TIMEOUT": "60"}).default_timeout == 60
    assert KVCache(str(tmp_path / "c"), {"TIMEOUT": None}).default_timeout is None


@pytest.mark.skipif(
    os.geteuid() != 0 or not hasattr(os, "fork"), reason="drops to the nobody user: needs root"
)
def test_kv_restore_by_a_user_who_may_not_read_the_location_is_a_command_error(tmp_path):
    """An admin account running kv_restore on the web user's private (0700) cache: was a raw
    PermissionError traceback from listing LOCATION."""
    from django.core.management import call_command
    from django.test import override_settings
    from kv_backend_django.cache import close_all

    pytest.importorskip("kv_backend.backup")
    location = tmp_path / "cache"  # tmp_path's parents are 0700: nobody cannot even see it exists
    conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["default"].set("k", 1)
        call_command("kv_backup", (tmp_path / "bk").as_uri(), stdout=StringIO())
        close_all()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                os.setgid(65534)
                os.setuid(65534)
                call_command("kv_restore", (tmp_path / "bk").as_uri(), "--replace", stdout=StringIO())
                os.write(w, b"no error")
            except BaseException as exc:
                os.write(w, f"{type(exc).__name__}: {exc}".encode())
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            said = f.read().decode()
        os.waitpid(pid, 0)
        assert caches["default"].get("k") == 1  # the store is untouched
    assert said.startswith("CommandError: cannot read "), said
    assert "run kv_restore as the user that owns the cache" in said


def test_kv_restore_does_not_swap_under_a_process_that_opened_the_store_during_the_restore(
    tmp_path, monkeypatch
):
    """The open-elsewhere check ran only before a restore that may take minutes: a worker started
    meanwhile kept writing to the replaced store, and those writes were lost."""
    pytest.importorskip("kv_backend.backup")
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.test import override_settings
    from helpers import spawn_python
    from kv_backend_django.cache import close_all

    from kv_backend import DB
    from kv_backend import backup as backup_module

    location = tmp_path / "cache"
    conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(location)}}
    url = (tmp_path / "bk").as_uri()
    real_restore = backup_module.restore
    workers = []

    def restore_while_a_worker_starts(*args, **kwargs):
        report = real_restore(*args, **kwargs)
        worker = spawn_python(
            """
            import sys
            from kv_backend import DB
            db = DB(sys.argv[1])
            db[b"written-meanwhile"] = b"1"
            print("open", flush=True)
            sys.stdin.readline()  # hold the store open until the test says
            """,
            str(location),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        workers.append(worker)
        assert worker.stdout.readline().strip() == "open"
        return report

    with override_settings(CACHES=conf):
        from django.core.cache import caches

        caches["default"].set("k", "old", None)
        call_command("kv_backup", url, stdout=StringIO())
        close_all()
        monkeypatch.setattr(backup_module, "restore", restore_while_a_worker_starts)
        try:
            with pytest.raises(CommandError, match=r"opened by another process .* nothing was replaced"):
                call_command("kv_restore", url, "--replace", stdout=StringIO())
        finally:
            for worker in workers:
                worker.communicate("go\n", timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "cache"]
    with DB(str(location), read_only=True) as db:
        assert db[b"written-meanwhile"] == b"1"


def _damage(location, marker: bytes) -> None:
    """Flip one byte of the value holding ``marker`` in the store's data files (a disk fault)."""
    import glob

    for path in glob.glob(os.path.join(str(location), "*.data")):
        with open(path, "r+b") as f:
            data = f.read()
            at = data.find(marker)
            if at >= 0:
                f.seek(at + 2)
                f.write(bytes([data[at + 2] ^ 0xFF]))
                return
    raise AssertionError(f"{marker!r} not found")


def test_a_damaged_entry_is_a_logged_miss_not_an_error_on_every_read(tmp_path, caplog):
    """A record failing its checksum raised CorruptionError on every get() of the key (a cached page:
    a 500 on every request) until it expired, never with timeout=None, and add() could not replace it."""
    import logging

    from kv_backend_django.cache import close_all

    cache = KVCache(str(tmp_path / "c"), {})
    for name in ("page", "many", "gos", "counter", "versioned", "touched"):
        cache.set(name, f"<{name}-value>" if name != "counter" else 10**30 + 7, None)
    cache.set("intact", 1, None)
    close_all()  # write the damage as another process would, then read through a fresh open
    for marker in (
        b"<page-value>",
        b"<many-value>",
        b"<gos-value>",
        b"<versioned-value>",
        b"<touched-value>",
    ):
        _damage(tmp_path / "c", marker)
    _damage(tmp_path / "c", pickle.dumps(10**30 + 7, pickle.HIGHEST_PROTOCOL)[-10:])
    with caplog.at_level(logging.WARNING, logger="kv_backend_django.cache"):
        assert cache.get("page", "miss") == "miss"
        assert not cache.has_key("page") and cache.add("page", "again") and cache.get("page") == "again"
        assert cache.get_many(["many", "intact"]) == {"intact": 1}
        assert cache.get_or_set("gos", "recomputed") == "recomputed" and cache.get("gos") == "recomputed"
        with pytest.raises(ValueError, match="not found"):
            cache.incr("counter")
        with pytest.raises(ValueError, match="not found"):
            cache.incr_version("versioned")
        assert cache.touch("touched", 60) is False and not cache.has_key("touched")
    assert sum("dropping a damaged entry" in r.getMessage() for r in caplog.records) == 6


@pytest.mark.parametrize("command", ["kv_stats", "kv_merge"])
def test_commands_still_accept_skip_checks(command):
    """They run no system checks now, so Django no longer adds --skip-checks: scripts passing it
    (and call_command(skip_checks=False)) must not break."""
    from django.core.cache import cache
    from django.core.management import call_command

    cache.set("k", 1)
    call_command(command, "--skip-checks", stdout=StringIO())
    call_command(command, skip_checks=False, stdout=StringIO())


@pytest.mark.parametrize("timeout", ["10", [1], b"5"])
def test_a_timeout_that_is_not_a_number_says_so(timeout):
    """Still a TypeError, as LocMemCache raises, but no longer "'<=' not supported between ..."."""
    from django.core.cache import cache

    cache.set("k", 1)
    for call in (
        lambda: cache.set("k", 2, timeout),
        lambda: cache.add("new", 2, timeout),
        lambda: cache.touch("k", timeout),
        lambda: cache.get_or_set("new", 2, timeout),
        lambda: cache.set_many({"k": 2}, timeout),
    ):
        with pytest.raises(TypeError, match=r"a cache timeout is a number of seconds or None, not "):
            call()
    assert cache.get("k") == 1 and not cache.has_key("new")
