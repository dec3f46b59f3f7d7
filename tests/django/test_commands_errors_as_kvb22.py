"""The management commands say of a failure what the matching ``kvb`` command says of it.

kv_merge, kv_stats and kv_restore printed the text of the OSError a failure is (the engine's
``StorageError``, or a system call's own), "[Errno 20] PATH is a file, not a kv_backend store
directory", "[Errno 17] File exists: 'PATH'"; kv_backup already printed the message alone. Each now
prints kvb's line (a system call's own error with the file it names in front, without the errno).
"""

from __future__ import annotations

import errno
import os
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from test_cli import run  # kvb in this process: (exit code, stdout, stderr)

from kv_backend import DB

KV = "kv_backend_django.cache.KVCache"


def _location(tmp_path, kind):
    location = tmp_path / "cache"
    if kind == "a file":
        location.write_text("x")
    else:
        location.mkdir()
        (location / "notes.txt").write_text("x")
    return location


def _command_error(location, *args):
    caches = {"default": {"BACKEND": KV, "LOCATION": str(location)}}
    with override_settings(CACHES=caches), pytest.raises(CommandError) as info:
        call_command(*args, "-v", "0", stdout=StringIO())
    return str(info.value)


def _kvb_line(capsys, *args):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "", (code, out, err)
    return err.strip().removeprefix("kvb: ")


@pytest.mark.parametrize("kind", ["other files", "a file"])
@pytest.mark.parametrize(
    "command, kvb_command, prefix",
    [("kv_merge", "merge", "merge of {} failed: "), ("kv_stats", "stats", "cannot read the stats of {}: ")],
)
def test_kv_merge_and_kv_stats_say_what_kvb_says(tmp_path, capsys, kind, command, kvb_command, prefix):
    location = _location(tmp_path, kind)
    said = _kvb_line(capsys, kvb_command, str(location))
    msg = _command_error(location, command)
    assert "[Errno" not in msg, msg
    assert msg == prefix.format(location) + said, (msg, said)
    assert sorted(os.listdir(tmp_path)) == ["cache"]  # nothing made


@pytest.fixture
def url(one_backup_url):
    """A URL holding one backup, b1 (see conftest's one_backup_url)."""
    return one_backup_url


@pytest.mark.parametrize("failure", ["under a file", "no such backup"])
def test_kv_restore_says_what_kvb_restore_says(tmp_path, capsys, url, failure):
    if failure == "under a file":
        (tmp_path / "file").write_text("x")
        location, args = tmp_path / "file" / "cache", ()
    else:
        location, args = tmp_path / "cache", ("--name", "b9")
    said = _kvb_line(capsys, "restore", url, str(location), *args)
    msg = _command_error(location, "kv_restore", url, *args)
    assert msg == f"restore of {location} from {url} failed: {said}", (msg, said)
    assert not os.path.lexists(location)


def test_kv_restore_names_the_file_of_a_system_calls_error(tmp_path, url):
    """A file where --replace makes its staging directory (not one kv_restore made, which it would
    delete) stopped it with "[Errno 17] File exists: 'PATH'"."""
    location = tmp_path / "cache"
    with DB(str(location)) as db:
        db.put(b"old", b"1")
    staging = f"{location}.restoring-{os.getpid()}"
    with open(staging, "w") as f:
        f.write("someone else's")
    msg = _command_error(location, "kv_restore", url, "--replace")
    assert "[Errno" not in msg, msg
    assert msg == f"restore of {location} from {url} failed: {staging}: File exists", msg
    with open(staging) as f:
        assert f.read() == "someone else's"
    with DB(str(location), read_only=True) as db:
        assert db.get(b"old") == b"1"


def test_kv_restore_says_why_the_restored_store_could_not_be_moved(tmp_path, url, monkeypatch):
    import kv_backend_django.management.commands.kv_restore as kv_restore

    location = tmp_path / "cache"
    with DB(str(location)) as db:
        db.put(b"old", b"1")

    def refused(src, dst):
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV), src, None, dst)

    monkeypatch.setattr(kv_restore, "exchange_paths", refused)
    msg = _command_error(location, "kv_restore", url, "--replace")
    staging = f"{location}.restoring-{os.getpid()}"
    assert msg == (
        f"cannot move the restored store into {location}: {staging} -> {location}: {os.strerror(errno.EXDEV)}"
    ), msg
    assert not os.path.exists(staging)
    with DB(str(location), read_only=True) as db:
        assert db.get(b"old") == b"1"


@pytest.mark.parametrize("replace", [(), ("--replace",)])
@pytest.mark.parametrize("where", ["LOCATION", "above LOCATION"])
def test_kv_restore_refuses_a_link_to_nothing_as_kvb_restore_does(tmp_path, capsys, url, where, replace):
    """A LOCATION that is (or lies under) a symbolic link to nothing, a volume not mounted, was
    followed: kv_restore made the directory the link names, on the disk below the missing mount, and
    restored the cache there, where the cache itself (and kvb restore) refuse the link."""
    link = tmp_path / "volume"
    link.symlink_to(tmp_path / "mnt" / "volume")
    location = link if where == "LOCATION" else link / "cache"
    said = _kvb_line(capsys, "restore", url, str(location))
    msg = _command_error(location, "kv_restore", url, *replace)
    assert msg == f"restore of {location} from {url} failed: {said}", (msg, said)
    assert "symbolic link to" in msg
    assert not (tmp_path / "mnt").exists()
