"""More behaviour held to Django's own backends: culling, management commands, system checks."""

from __future__ import annotations

import os
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_set_many_of_stored_keys_culls_no_more_than_sets_one_by_one():
    # LocMemCache and FileBasedCache, re-setting keys one by one into a store one entry
    # short of MAX_ENTRIES (30), cull nothing; nor may a set_many of the same keys.
    c = caches["cull"]
    for i in range(29):
        c.set(f"k{i}", i)
    c.set_many({f"k{i}": -i for i in range(10)})
    assert len(c.db) == 29
    c.set_many({**{f"k{i}": i for i in range(5)}, "new": 1})  # one new key: fits at 30
    assert len(c.db) == 30
    assert c.get_many(["k3", "k7", "k20", "new"]) == {"k3": 3, "k7": -7, "k20": 20, "new": 1}
    c.set_many({"k0": 0, "k1": 1})  # the store is full: setting k0 alone would cull one round
    assert 20 <= len(c.db) <= 22 and c.get_many(["k0", "k1"]) == {"k0": 0, "k1": 1}


@pytest.mark.parametrize("command", ["kv_stats", "kv_merge", "kv_backup", "kv_restore"])
def test_commands_report_a_cache_that_cannot_be_created_as_a_command_error(command, tmp_path):
    """An alias whose BACKEND does not import, or a KVCache with bad OPTIONS: a CommandError, no traceback."""
    from django.test import override_settings

    kv = "kv_backend_django.cache.KVCache"
    conf = {
        "typo": {"BACKEND": kv, "LOCATION": str(tmp_path / "c"), "OPTIONS": {"SYNC": "always"}},
        "gone": {"BACKEND": "no_such_module.Cache", "LOCATION": str(tmp_path / "c")},
    }
    args = [command] if command in ("kv_stats", "kv_merge") else [command, (tmp_path / "b").as_uri()]
    with override_settings(CACHES=conf):
        with pytest.raises(CommandError, match=r"cache 'typo' cannot be created: unknown OPTIONS .*SYNC"):
            run(*args, "--cache", "typo")
        with pytest.raises(CommandError, match=r"cache 'gone' cannot be created: .*no_such_module"):
            run(*args, "--cache", "gone")
    assert not (tmp_path / "c").exists() and not (tmp_path / "b").exists()


def test_kv_backup_to_local_files_is_no_more_open_than_the_store(tmp_path):
    """A backup of a private (0700) cache is private too, whatever the umask; a 0750 one gives 0640 files."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings

    kv = "kv_backend_django.cache.KVCache"
    conf = {
        "private": {"BACKEND": kv, "LOCATION": str(tmp_path / "private")},
        "group": {"BACKEND": kv, "LOCATION": str(tmp_path / "group")},
    }
    (tmp_path / "group").mkdir(mode=0o750)
    os.chmod(tmp_path / "group", 0o750)
    old_umask = os.umask(0o022)
    try:
        with override_settings(CACHES=conf):
            for alias, forbidden in (("private", 0o077), ("group", 0o027)):
                caches[alias].set("session", "secret")  # kv_backup creates no store (review 10)
                run("kv_backup", (tmp_path / f"bk-{alias}").as_uri(), "--cache", alias)
                made = [tmp_path / f"bk-{alias}", *(tmp_path / f"bk-{alias}").rglob("*")]
                assert len(made) > 4
                for path in made:
                    assert os.stat(path).st_mode & forbidden == 0, (oct(os.stat(path).st_mode), path)
            store_files = list((tmp_path / "group").iterdir())  # the store itself: the umask's modes
            assert store_files and all(f.stat().st_mode & 0o044 == 0o044 for f in store_files)
        assert os.umask(0o022) == 0o022  # the command restores the umask
    finally:
        os.umask(old_umask)


def test_kv_restore_replace_keeps_a_symlinked_location_a_symlink(tmp_path):
    """--replace restores into the directory a symlinked LOCATION points at; the link stays."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings
    from kv_backend_django.cache import close_all

    (tmp_path / "disk" / "cache").mkdir(parents=True)
    (tmp_path / "cache").symlink_to(tmp_path / "disk" / "cache")
    kv = "kv_backend_django.cache.KVCache"
    conf = {
        "linked": {"BACKEND": kv, "LOCATION": str(tmp_path / "cache")},
        "direct": {"BACKEND": kv, "LOCATION": str(tmp_path / "disk" / "cache")},
    }
    url = (tmp_path / "backups").as_uri()
    with override_settings(CACHES=conf):
        caches["linked"].set("k", "backed up")
        run("kv_backup", url, "--cache", "linked")
        caches["linked"].set("k", "changed")
        close_all()
        run("kv_restore", url, "--cache", "linked", "--replace")
        assert (tmp_path / "cache").is_symlink()
        assert sorted(os.listdir(tmp_path)) == ["backups", "cache", "disk"]  # no leftovers
        assert os.listdir(tmp_path / "disk") == ["cache"]
        assert caches["direct"].get("k") == caches["linked"].get("k") == "backed up"
    close_all()


def test_check_reports_aliases_sharing_a_location_with_other_engine_options(settings, tmp_path):
    """Found by ``manage.py check``, not by the first request that uses the second alias."""
    from django.core.checks import run_checks
    from django.test import override_settings

    kv = "kv_backend_django.cache.KVCache"
    store = tmp_path / "store"
    (tmp_path / "link").symlink_to(store, target_is_directory=True)
    settings.CACHES = {
        "default": {"BACKEND": kv, "LOCATION": str(store), "OPTIONS": {"MAX_ENTRIES": 10}},
        "same": {"BACKEND": kv, "LOCATION": str(store) + "/", "OPTIONS": {"sync": "never"}},  # the default
        "prefixed": {"BACKEND": kv, "LOCATION": str(store), "KEY_PREFIX": "p", "TIMEOUT": 5},
        "fsync": {"BACKEND": kv, "LOCATION": str(store), "OPTIONS": {"sync": "always"}},
        "linked": {"BACKEND": kv, "LOCATION": str(tmp_path / "link"), "OPTIONS": {"auto_merge": 0.5}},
        "elsewhere": {"BACKEND": kv, "LOCATION": str(tmp_path / "other"), "OPTIONS": {"sync": "always"}},
    }
    found = [m for m in run_checks(tags=["caches"]) if m.id.startswith("kv_backend")]
    assert sorted((m.id, m.obj) for m in found) == [
        ("kv_backend_django.E001", "CACHES['fsync']"),
        ("kv_backend_django.E001", "CACHES['linked']"),
    ]
    assert "'fsync' and 'default' caches share the LOCATION" in found[0].msg
    assert "sync 'never' and 'always'" in found[0].msg
    with override_settings(CACHES=settings.CACHES):  # what the check foresees
        caches["default"].get("k")
        with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):
            caches["fsync"].get("k")


def test_aliases_reaching_one_directory_through_a_symlink_share_one_store(tmp_path):
    """One DB per directory and process, as documented, whatever path leads to it."""
    from django.test import override_settings

    kv = "kv_backend_django.cache.KVCache"
    (tmp_path / "link").symlink_to(tmp_path / "store", target_is_directory=True)
    conf = {
        "direct": {"BACKEND": kv, "LOCATION": str(tmp_path / "store")},
        "linked": {"BACKEND": kv, "LOCATION": str(tmp_path / "link"), "KEY_PREFIX": "p"},
        "fsync": {"BACKEND": kv, "LOCATION": str(tmp_path / "link"), "OPTIONS": {"sync": "always"}},
    }
    with override_settings(CACHES=conf):
        caches["direct"].set("k", 1)
        assert caches["linked"].db is caches["direct"].db
        assert caches["linked"].location == str(tmp_path / "link")  # LOCATION as configured
        with pytest.raises(ImproperlyConfigured, match="different engine OPTIONS"):  # check E001's case
            caches["fsync"].get("k")


def test_kv_restore_replace_refuses_a_location_holding_another_caches_location(tmp_path):
    """--replace deletes the old directory: a store nested inside it (sessions, say) must not go too."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings
    from kv_backend_django.cache import close_all

    kv = "kv_backend_django.cache.KVCache"
    conf = {
        "main": {"BACKEND": kv, "LOCATION": str(tmp_path / "cache")},
        "sessions": {"BACKEND": kv, "LOCATION": str(tmp_path / "cache" / "sessions")},
    }
    url = (tmp_path / "backups").as_uri()
    with override_settings(CACHES=conf):
        caches["main"].set("page", "html")
        caches["sessions"].set("session", "logged in")
        run("kv_backup", url, "--cache", "main")
        close_all()
        with pytest.raises(CommandError, match=r"directories that are not part of its store \(sessions\)"):
            run("kv_restore", url, "--cache", "main", "--replace")
        assert caches["sessions"].get("session") == "logged in"
        assert sorted(os.listdir(tmp_path)) == ["backups", "cache"]  # no restoring/replaced leftovers
    close_all()


def test_commands_are_silent_with_verbosity_0(tmp_path, monkeypatch):
    """``-v 0`` (a cron job, whose output is mailed) prints nothing and shows no progress, as Django's own."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings
    from kv_backend_django.cache import close_all

    import kv_backend.progress

    bars: list[str] = []
    real_bar = kv_backend.progress.progress_bar
    monkeypatch.setattr(kv_backend.progress, "progress_bar", lambda what: bars.append(what) or real_bar(what))
    conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(tmp_path / "c")}}
    url = (tmp_path / "b").as_uri()
    with override_settings(CACHES=conf):
        caches["default"].set("k", 1)
        for args in (["kv_merge"], ["kv_backup", url], ["kv_restore", url, "--replace"]):
            close_all()
            out, err = StringIO(), StringIO()
            call_command(*args, verbosity=0, stdout=out, stderr=err)
            assert (out.getvalue(), err.getvalue(), bars) == ("", "", []), args
            close_all()
            assert "finished" in run(*args)  # the default verbosity reports, with a progress bar
            assert bars.pop() == args[0][3:]
        assert caches["default"].get("k") == 1


def test_example_settings_work_from_a_fresh_checkout(tmp_path, monkeypatch):
    """docs/django.md: from example_project/, ``manage.py migrate`` first; var/ is git-ignored, so absent."""
    import runpy
    import sqlite3

    from helpers import ROOT

    var = tmp_path / "checkout" / "example_project" / "var"
    monkeypatch.setenv("KVB_EXAMPLE_VAR", str(var))
    monkeypatch.delenv("KVB_EXAMPLE_CACHE", raising=False)
    example = runpy.run_path(os.path.join(ROOT, "example_project", "mysite", "settings.py"))
    sqlite3.connect(example["DATABASES"]["default"]["NAME"]).close()  # what migrate opens first
    assert (var / "db.sqlite3").exists()


def test_check_warns_about_a_location_inside_another_caches_location(settings, tmp_path):
    """The outer cache refuses a new directory already holding the inner store: found by check."""
    from django.core.checks import run_checks
    from django.test import override_settings

    kv = "kv_backend_django.cache.KVCache"
    settings.CACHES = {
        "default": {"BACKEND": kv, "LOCATION": str(tmp_path / "site")},
        "prefixed": {"BACKEND": kv, "LOCATION": str(tmp_path / "site"), "KEY_PREFIX": "p"},  # shares: fine
        "sessions": {"BACKEND": kv, "LOCATION": str(tmp_path / "site" / "sessions")},
        "fragments": {"BACKEND": kv, "LOCATION": str(tmp_path / "site" / "x" / "fragments")},
        "beside": {"BACKEND": kv, "LOCATION": str(tmp_path / "site-other")},  # a prefix of the name only
    }
    found = [m for m in run_checks(tags=["caches"]) if m.id.startswith("kv_backend")]
    assert sorted((m.id, m.obj) for m in found) == [
        ("kv_backend_django.W003", "CACHES['default']"),
        ("kv_backend_django.W007", "CACHES['default']"),  # it holds the sessions, without MAX_ENTRIES
    ]
    (w003,) = [m for m in found if m.id == "kv_backend_django.W003"]
    assert "contains the LOCATION of 'sessions', 'fragments'" in w003.msg
    with override_settings(CACHES=settings.CACHES):  # what the check foresees, on a fresh deployment
        caches["sessions"].set("s", 1)
        with pytest.raises(ImproperlyConfigured, match="not a kv_backend store"):
            caches["default"].get("k")


@pytest.mark.skipif(
    os.geteuid() != 0 or not hasattr(os, "fork"), reason="drops to the nobody user: needs root"
)
def test_kv_stats_and_kv_backup_work_for_a_user_who_may_only_read_the_cache():
    """A backup or monitoring account that may read the cache's directory but not write it: the
    commands told it to "open it with read_only=True", which a KVCache cannot; they now open the
    store read-only for such a user (they only read it)."""
    import json
    import shutil
    import tempfile

    from django.test import override_settings
    from kv_backend_django.cache import close_all

    pytest.importorskip("fsspec")
    # (imported here: the child may not read the standard library nor site-packages, and the backup
    # reads the boot id as ascii)
    import encodings.ascii  # noqa: F401

    import fsspec.implementations.local  # noqa: F401

    base = tempfile.mkdtemp(prefix="kvb-django-ro-")
    try:
        os.chmod(base, 0o755)
        out_dir = os.path.join(base, "backups")
        os.mkdir(out_dir)
        os.chown(out_dir, 65534, 65534)  # where the reader may write its backup
        location = os.path.join(base, "c")
        conf = {"default": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": location}}
        with override_settings(CACHES=conf):
            caches["default"].set("k", 1)
            close_all()
            os.chmod(os.path.join(base, "c"), 0o755)
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                code = 1
                try:
                    os.close(r)
                    os.setgid(65534)
                    os.setuid(65534)
                    stats = json.loads(run("kv_stats", "--json"))
                    report = run("kv_backup", f"file://{out_dir}", "--name", "ro")
                    os.write(w, json.dumps([stats["keys"], "Backup finished" in report]).encode())
                    code = 0
                except BaseException as exc:
                    os.write(w, repr(exc).encode())
                finally:
                    os._exit(code)
            os.close(w)
            with os.fdopen(r, "rb") as f:
                said = f.read().decode()
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0, said
            assert json.loads(said) == [1, True]
            from kv_backend.backup import list_backups

            assert [b.name for b in list_backups(out_dir)] == ["ro"]
    finally:
        close_all()
        shutil.rmtree(base, ignore_errors=True)
