"""The kv_merge, kv_backup, kv_restore and kv_stats management commands."""

from __future__ import annotations

import json
import os
import subprocess
from io import StringIO

import pytest
from django.core.cache import cache, caches
from django.core.management import call_command
from django.core.management.base import CommandError
from kv_backend_django._commands import parse_storage_options


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.parametrize("command", ["kv_merge", "kv_stats", "kv_backup", "kv_restore"])
def test_commands_refuse_other_caches(command, tmp_path):
    args = [command] if command in ("kv_merge", "kv_stats") else [command, tmp_path.as_uri()]
    with pytest.raises(CommandError, match=r"LocMemCache, not a kv_backend cache"):
        run(*args, "--cache", "locmem")
    with pytest.raises(CommandError, match=r"no cache alias 'nope'.*default"):
        run(*args, "--cache", "nope")


def test_kv_stats_table_and_json():
    cache.set_many({f"k{i}": "x" * 100 for i in range(20)})
    cache.delete("k0")
    table = run("kv_stats")
    assert "kv_backend cache 'default'" in table
    assert caches["default"].location in table
    assert "keys" in table and "dead bytes" in table and "max entries" in table
    data = json.loads(run("kv_stats", "--json"))
    assert data["keys"] == 19
    assert data["alias"] == "default" and data["max_entries"] == 300 and data["timeout"] == 300
    assert data["dead_bytes"] > 0 and 0 < data["dead_ratio"] < 1
    other = json.loads(run("kv_stats", "--json", "--cache", "other"))
    assert other["keys"] == 0 and other["location"] == caches["other"].location


def test_kv_merge_compacts_and_keeps_data(tmp_path):
    from django.test import override_settings

    location = str(tmp_path / "merge")
    conf = {
        "merge": {
            "BACKEND": "kv_backend_django.cache.KVCache",
            "LOCATION": location,
            "OPTIONS": {"max_file_size": 16384, "MAX_ENTRIES": 10_000},
        }
    }
    with override_settings(CACHES=conf):
        c = caches["merge"]
        for round_ in range(5):
            c.set_many({f"k{i}": f"{round_}" * 200 for i in range(40)}, None)
        before = c.db.stats()
        out = run("kv_merge", "--cache", "merge")
        after = c.db.stats()
        assert "Merge finished" in out and "merged" in out
        assert after["dead_bytes"] < before["dead_bytes"]
        assert c.get_many([f"k{i}" for i in range(40)]) == {f"k{i}": "4" * 200 for i in range(40)}


def test_storage_options_parsing():
    from kv_backend.backup import backup, restore

    assert parse_storage_options(
        ["anon=true", "endpoint-url=http://127.0.0.1:9", "n=3", "s=abc"], backup
    ) == {
        "anon": True,
        "endpoint_url": "http://127.0.0.1:9",
        "n": 3,
        "s": "abc",
    }
    with pytest.raises(CommandError, match="KEY=VALUE"):
        parse_storage_options(["novalue"], backup)
    with pytest.raises(CommandError, match="KEY=VALUE"):
        parse_storage_options(["=1"], backup)
    for target, key in ((backup, "name"), (backup, "progress"), (restore, "path")):
        with pytest.raises(CommandError, match=f"{key!r} is set by the command itself"):
            parse_storage_options([f"{key}=x"], target)


def test_backup_commands_refuse_a_storage_option_that_names_their_own_argument(tmp_path):
    pytest.importorskip("kv_backend.backup")
    for command in ("kv_backup", "kv_restore"):
        with pytest.raises(CommandError, match="'name' is set by the command itself"):
            call_command(command, str(tmp_path / "bk"), "--storage-option", "name=x")
        # self: kv_backup calls db.backup(), whose own self it collided with (a TypeError traceback)
        with pytest.raises(CommandError, match="none can be named 'self'"):
            call_command(command, str(tmp_path / "bk"), "--storage-option", "self=x")


def test_kv_backup_and_restore_round_trip(tmp_path):
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings

    url = (tmp_path / "backups").as_uri()
    cache.set_many({"a": 1, "b": {"x": [1, 2]}, "c": None}, None)
    out = run("kv_backup", url, "--name", "first")
    assert "Backup finished" in out
    cache.set("a", "changed")
    cache.delete("b")
    # Restoring over a live location needs --replace.
    with pytest.raises(CommandError, match="--replace"):
        run("kv_restore", url)
    out = run("kv_restore", url, "--replace", "--name", "first")
    assert "Restore finished" in out
    # the report names LOCATION, not the staging directory the restore was swapped in from
    assert f"to {cache.location}: " in out and ".restoring-" not in out, out
    assert cache.get_many(["a", "b", "c"]) == {"a": 1, "b": {"x": [1, 2]}, "c": None}
    assert not [
        p for p in os.listdir(os.path.dirname(cache.location)) if ".restoring-" in p or ".replaced-" in p
    ]
    # Restoring into a fresh directory (another alias) needs no flag.
    fresh = str(tmp_path / "fresh")
    conf = {"fresh": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": fresh}}
    with override_settings(CACHES=conf):
        run("kv_restore", url, "--cache", "fresh")
        assert caches["fresh"].get("b") == {"x": [1, 2]}
    with pytest.raises(CommandError, match="failed"):
        run("kv_restore", (tmp_path / "no-backups-here").as_uri(), "--replace")
    assert cache.get("a") == 1  # a failed restore leaves the cache as it was


def test_kv_restore_refuses_to_replace_a_store_another_process_has_open(tmp_path):
    """A worker that kept the old store open would go on writing to deleted files."""
    pytest.importorskip("kv_backend.backup")
    from helpers import spawn_python

    url = (tmp_path / "backups").as_uri()
    cache.set("k", "backed up")
    run("kv_backup", url)
    cache.set("k", "newer")
    worker = spawn_python(
        """
        import sys
        from kv_backend import DB
        db = DB(sys.argv[1])
        print("open", flush=True)
        sys.stdin.readline()  # hold the store open until the test says
        """,
        cache.location,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "open"
        with pytest.raises(CommandError, match="open in another process"):
            run("kv_restore", url, "--replace")
        assert cache.get("k") == "newer"  # nothing was replaced
    finally:
        worker.communicate("go\n", timeout=30)
    run("kv_restore", url, "--replace")
    assert cache.get("k") == "backed up"


def test_kv_restore_replace_refuses_a_location_that_is_not_a_store(tmp_path):
    """--replace deletes the old LOCATION: a directory of other files must survive a wrong LOCATION."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings

    url = (tmp_path / "backups").as_uri()
    cache.set("k", 1)
    run("kv_backup", url)
    project = tmp_path / "project"
    project.mkdir()
    (project / "settings.py").write_text("DEBUG = True\n")
    conf = {"wrong": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(project)}}
    with (
        override_settings(CACHES=conf),
        pytest.raises(CommandError, match=r"not a kv_backend store.*settings\.py"),
    ):
        run("kv_restore", url, "--cache", "wrong", "--replace")
    assert os.listdir(project) == ["settings.py"]
    assert sorted(os.listdir(tmp_path)) == ["backups", "project"]  # no restoring/replaced leftovers


def test_kv_restore_keeps_a_private_location_private(tmp_path):
    """A restored LOCATION has the mode the cache gives it: its old one, or 0700 (parents too) when new."""
    pytest.importorskip("kv_backend.backup")
    from django.test import override_settings

    url = (tmp_path / "backups").as_uri()
    old_umask = os.umask(0o022)
    try:
        kv = "kv_backend_django.cache.KVCache"
        conf = {
            "private": {"BACKEND": kv, "LOCATION": str(tmp_path / "private")},
            "fresh": {"BACKEND": kv, "LOCATION": str(tmp_path / "new" / "cache")},
            "shared": {"BACKEND": kv, "LOCATION": str(tmp_path / "shared")},
        }
        with override_settings(CACHES=conf):
            caches["private"].set("session", "secret")
            run("kv_backup", url, "--cache", "private")
            run("kv_restore", url, "--cache", "private", "--replace")
            run("kv_restore", url, "--cache", "fresh")
            (tmp_path / "shared").mkdir()
            os.chmod(tmp_path / "shared", 0o750)
            run("kv_restore", url, "--cache", "shared")
            for f in os.listdir(tmp_path / "shared"):  # as restored, before the cache opens it
                assert os.stat(tmp_path / "shared" / f).st_mode & 0o007 == 0, f  # nothing for others
            assert caches["fresh"].get("session") == caches["shared"].get("session") == "secret"
        assert os.umask(0o022) == 0o022  # the command restores the umask
    finally:
        os.umask(old_umask)
    for name, mode in [("private", 0o700), ("new", 0o700), ("new/cache", 0o700), ("shared", 0o750)]:
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode, name


@pytest.mark.parametrize("command", ["kv_stats", "kv_merge", "kv_backup"])
def test_commands_report_an_unusable_location_as_a_command_error(command, tmp_path):
    """A LOCATION the cache cannot open is a one-line CommandError, not a traceback."""
    from django.test import override_settings

    project = tmp_path / "project"
    project.mkdir()
    (project / "settings.py").write_text("DEBUG = True\n")
    conf = {"wrong": {"BACKEND": "kv_backend_django.cache.KVCache", "LOCATION": str(project)}}
    args = [command] if command != "kv_backup" else [command, (tmp_path / "b").as_uri()]
    with override_settings(CACHES=conf), pytest.raises(CommandError, match="not a kv_backend store"):
        run(*args, "--cache", "wrong")
