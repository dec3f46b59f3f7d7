"""The management commands refuse what they can check before they say they started, as kvb does.

``manage.py kv_backup URL --storage-option anon=false`` to a file:// URL printed "Backing up cache
..." and only then failed, where ``kvb backup`` refuses the same option before printing anything;
so did a bad --name, a URL inside LOCATION, a LOCATION without a store. kv_restore printed
"Restoring cache ..." (and made LOCATION, then removed it) before it refused the same option, a bad
--name or a URL without backups; kv_merge printed "Merging cache ..." before it found no store.
Each now fails with kvb's text and nothing on stdout, as Django's CommandError.
"""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from helpers import child_env, run_as_nobody
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB

KV = "kv_backend_django.cache.KVCache"
EXAMPLE = Path(__file__).resolve().parent.parent.parent / "example_project"


def _refused(location, *args):
    """(the CommandError's text, what the command printed on stdout) of a command that fails."""
    out = StringIO()
    caches = {"default": {"BACKEND": KV, "LOCATION": str(location)}}
    with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
        call_command(*args, stdout=out)
    return str(info.value), out.getvalue()


def _kvb_line(capsys, *args):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", (code, out, err)
    return err.strip().removeprefix("kvb: ")


@pytest.fixture
def store(tmp_path):
    location = tmp_path / "cache"
    with DB(str(location)) as db:
        db.put(b"k", b"v")
    return location


@pytest.fixture
def url(one_backup_url):
    """A URL holding one backup, b1 (see conftest's one_backup_url)."""
    return one_backup_url


def _url(tmp_path, form):
    return {"file": f"file://{tmp_path}/out", "path": str(tmp_path / "out")}[form]


@pytest.mark.parametrize("form", ["file", "path"])
@pytest.mark.parametrize(
    "extra",
    [
        ("--storage-option", "anon=false"),
        ("--storage-option", "anon=false", "--storage-option", "key=k"),
        ("--name", "not a name"),
    ],
)
def test_kv_backup_refuses_before_it_says_it_started(tmp_path, capsys, store, form, extra):
    url = _url(tmp_path, form)
    said = _kvb_line(capsys, "backup", str(store), url, *extra)
    msg, printed = _refused(store, "kv_backup", url, *extra)
    assert printed == ""
    assert msg == f"backup of {store} to {url} failed: {said}", (msg, said)
    assert not (tmp_path / "out").exists()


def test_kv_backup_refuses_a_url_inside_location_before_it_says_it_started(tmp_path, capsys, store):
    url = str(store / "bk")
    said = _kvb_line(capsys, "backup", str(store), url)
    msg, printed = _refused(store, "kv_backup", url)
    assert printed == ""
    assert msg == f"backup of {store} to {url} failed: {said}", (msg, said)
    assert "lies inside the store" in msg
    assert not (store / "bk").exists()


def test_kv_backup_refuses_a_location_without_a_store_before_it_says_it_started(tmp_path):
    location = tmp_path / "nothing"
    msg, printed = _refused(location, "kv_backup", str(tmp_path / "out"))
    assert printed == ""
    assert "this command creates nothing" in msg
    assert sorted(os.listdir(tmp_path)) == []


@pytest.mark.parametrize(
    "extra",
    [("--storage-option", "anon=false"), ("--name", "not a name"), ("--name", "b9")],
)
@pytest.mark.parametrize("occupied", [False, True])
def test_kv_restore_refuses_before_it_says_it_started(tmp_path, capsys, url, extra, occupied):
    location = tmp_path / "cache"
    if occupied:
        with DB(str(location)) as db:
            db.put(b"old", b"1")
        extra = (*extra, "--replace")
    said = _kvb_line(capsys, "restore", url, str(tmp_path / "elsewhere"), *extra[:2])
    msg, printed = _refused(location, "kv_restore", url, *extra)
    assert printed == ""
    assert msg == f"restore of {location} from {url} failed: {said}", (msg, said)
    assert sorted(os.listdir(tmp_path)) == (["bk", "cache", "src"] if occupied else ["bk", "src"])
    if occupied:
        with DB(str(location), read_only=True) as db:
            assert db.get(b"old") == b"1"


def test_kv_restore_refuses_a_url_without_backups_before_it_says_it_started(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    url = f"file://{tmp_path}/empty"
    location = tmp_path / "deep" / "cache"
    said = _kvb_line(capsys, "restore", url, str(tmp_path / "elsewhere"))
    msg, printed = _refused(location, "kv_restore", url)
    assert printed == ""
    assert msg == f"restore of {location} from {url} failed: {said}", (msg, said)
    assert sorted(os.listdir(tmp_path)) == ["empty"]


@pytest.mark.parametrize("kind", ["missing", "other files"])
def test_kv_merge_refuses_before_it_says_it_started(tmp_path, capsys, kind):
    location = tmp_path / "cache"
    if kind == "other files":
        location.mkdir()
        (location / "notes.txt").write_text("x")
    msg, printed = _refused(location, "kv_merge")
    assert printed == ""
    if kind == "other files":
        said = _kvb_line(capsys, "merge", str(location))
        assert msg == f"merge of {location} failed: {said}", (msg, said)
    else:
        assert "this command creates nothing" in msg
        assert not location.exists()


@pytest.mark.parametrize(
    "command", [("kv_merge",), ("kv_stats",), ("kv_backup", "file:///tmp/x"), ("kv_restore", "file:///tmp/x")]
)
@pytest.mark.parametrize("alias", ["nope", "locmem"])
def test_every_command_refuses_a_bad_alias_before_it_says_it_started(tmp_path, command, alias):
    out = StringIO()
    caches = {
        "default": {"BACKEND": KV, "LOCATION": str(tmp_path / "cache")},
        "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    }
    with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
        call_command(*command, "--cache", alias, stdout=out)
    assert out.getvalue() == ""
    assert ("no cache alias 'nope'" if alias == "nope" else "not a kv_backend cache") in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_kv_restore_refuses_a_location_it_cannot_make_before_it_says_it_started(tmp_path, capsys, url, where):
    (tmp_path / "file").write_text("x")
    location = tmp_path / "file" if where == "a file" else tmp_path / "file" / "cache"
    said = _kvb_line(capsys, "restore", url, str(location))
    msg, printed = _refused(location, "kv_restore", url)
    assert printed == ""
    assert msg == f"restore of {location} from {url} failed: {said}", (msg, said)
    assert (tmp_path / "file").read_text() == "x"
    assert sorted(os.listdir(tmp_path)) == ["bk", "file", "src"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to run the command as another user")
def test_kv_merge_refuses_a_user_it_cannot_merge_for_before_it_says_it_started(store):
    """Run by a user who may not write LOCATION (a backup account's cron), kv_merge printed "Merging
    cache ..." and then said it may not use the cache."""
    caches = {"default": {"BACKEND": KV, "LOCATION": str(store)}}

    def merge() -> tuple[str, str]:
        out = StringIO()
        with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
            call_command("kv_merge", stdout=out)
        return str(info.value), out.getvalue()

    msg, printed = run_as_nobody(merge)
    assert printed == ""
    assert msg.startswith(f"kv_merge may not use the cache at {store} as user nobody: permission denied")


def test_kv_backup_refuses_a_name_taken_before_it_says_it_started(tmp_path, capsys, store, url):
    # (The store of the URL's backup, by its id: a URL holds the backups of one store.)
    (store / "KVB_FORMAT").write_bytes((tmp_path / "src" / "KVB_FORMAT").read_bytes())
    said = _kvb_line(capsys, "backup", str(store), url, "--name", "b1")
    msg, printed = _refused(store, "kv_backup", url, "--name", "b1")
    assert printed == ""
    assert msg == f"backup of {store} to {url} failed: {said}", (msg, said)
    assert "a backup named 'b1' already exists" in msg


def test_manage_py_kv_backup_exits_1_saying_only_why(tmp_path, capsys, store):
    """The command line of the report: manage.py (the example project's) exits with the status of a
    CommandError, 1, with kvb backup's text on stderr and nothing on stdout."""
    url = f"file://{tmp_path}/out"
    said = _kvb_line(capsys, "backup", str(store), url, "--storage-option", "anon=false")
    env = {**child_env(), "KVB_EXAMPLE_VAR": str(tmp_path / "var"), "KVB_EXAMPLE_CACHE": str(store)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), "kv_backup", url, "--storage-option", "anon=false"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout) == (1, ""), (done.returncode, done.stdout, done.stderr)
    assert done.stderr == f"CommandError: backup of {store} to {url} failed: {said}\n"
    assert not (tmp_path / "out").exists()
